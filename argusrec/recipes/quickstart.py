"""``argusrec quickstart``: simulate a small streaming service, pre-train ``argus-tiny`` on it, evaluate.

    simulate (OUTPUT/data, ground truth kept) -> argus-tiny config pointed at it -> fresh run directory
    (OUTPUT/run) -> :func:`argusrec.recipes.pretrain.pretrain` -> the headline test metrics

The CLI composes these steps so it can print between them; a notebook can do the same.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from argusrec.config import RunConfig, load_config
from argusrec.errors import ArgusrecError

if TYPE_CHECKING:
    from argusrec.data.splits import EvalRole

PRESET = "argus-tiny"
EVENTS = 200_000
ORACLE_EVENTS = 20_000  # test events the NIP oracle scores (its cost is O(catalog) per search event)
POSITIVE = "like"  # the simulator's explicit positive feedback: NDCG@10 is reported over liked events


def quickstart_config(data_dir: Path, *, epochs: int | None = None, seed: int = 0, device: str = "auto") -> RunConfig:
    """The ``argus-tiny`` preset on ``data_dir`` (absolute, so the run directory works from anywhere)."""
    overrides = [
        f"data.path={Path(data_dir).resolve()}",
        f"train.seed={seed}",
        f"train.device={device}",
        f"argus.positive_signal={POSITIVE}",
    ]
    if epochs is not None:
        overrides.append(f"train.epochs={epochs}")
    return load_config(PRESET, overrides)


def fresh_run_dir(run_dir: Path) -> Path:
    """Remove an earlier quickstart run at ``run_dir`` (the data under it was just replaced); refuse anything else."""
    if run_dir.exists():
        if not (run_dir / "run.json").is_file() and any(run_dir.iterdir()):
            raise ArgusrecError(f"{run_dir} exists and is not a run directory; choose another --output")
        shutil.rmtree(run_dir)
    return run_dir


def reference_columns(config: RunConfig, popularity_nip: dict, role: EvalRole = "test") -> dict[str, dict[str, float]]:
    """The quickstart table's reference columns on the ``role`` period: ``popularity`` (training item frequencies for
    NIP, per-item training means for FP) and ``oracle`` (the simulator's true probabilities; NIP on a seeded subset
    of at most ``ORACLE_EVENTS`` events). ``popularity_nip`` is the pre-training summary's ``popularity_baseline``."""
    from argusrec.data.store import SequenceStore
    from argusrec.eval.oracle import oracle_feedback_metrics, oracle_nip, popularity_feedback_metrics
    from argusrec.recipes.train import make_split

    store = SequenceStore.open(config.data.path)
    split = make_split(store, config)
    popularity = {**popularity_nip, **popularity_feedback_metrics(store, split, role)}
    oracle = {
        **oracle_feedback_metrics(store, split, role),
        **oracle_nip(store, split, role, max_events=ORACLE_EVENTS),
    }
    return {"popularity": popularity, "oracle": oracle}


def headline_keys(metrics: dict, role: str = "test") -> list[str]:
    """The metrics the quickstart shows: NIP loss, NDCG@10 on positives, then FP AUC and NE per signal."""
    keys = [f"{role}/NIP_loss", f"{role}/NDCG@10_positive"]
    signals = [k.rsplit("/", 1)[1] for k in metrics if k.startswith(f"{role}/FP_AUC/")]
    keys += [f"{role}/FP_{m}/{s}" for s in signals for m in ("AUC", "NE")]
    return [k for k in keys if k in metrics]
