"""The deployment metric: final-ranker PairAccuracy with and without the ARGUS score (reference/ARGUS.md §6).

    fine-tuning run -> its config, data and split -> pairs of the validation and test periods (the run's pair
    config) -> baseline features (:mod:`argusrec.ranker.features`) + the run's per-impression two-tower scores
    (``scores/*.npz``) -> LightGBM ``ranker-baseline`` and ``ranker+argus`` trained on the validation period ->
    test PairAccuracy of both -> relative gain -> ``<run>/rank/``

**Which period trains the ranker [our choice].** The two-tower was trained on the training period's pairs, so its
score there is in-sample and better than anywhere else; a ranker fitted on it would learn to over-trust it. The
final ranker is therefore fitted on the **validation period** (after the two-tower's training data; the two-tower
used it only to pick its best epoch) and tested on the test period, where the score is out-of-sample in the same
way. Baseline features are computed for each period from the events before it plus the lagged history
(:mod:`argusrec.ranker.features`), so both rankers see the same information apart from the ARGUS feature.

**Pairs.** ``test/...`` metrics are over the test pairs whose two impressions have a two-tower score (the pairs of
the fine-tuning run's ``test/PairAccuracy_weighted``: every scorer on the same pairs); ``test_all/...`` over every
test pair
(the ARGUS feature is missing — NaN, which LightGBM handles — where the two-tower had no lagged state or dropped
the group). The headline is ``gain = (PA(ranker+argus) - PA(ranker-baseline)) / PA(ranker-baseline)`` on ``test/``,
weighted PairAccuracy.

With ``vectors`` (the run must have been fine-tuned with ``finetune.export_vectors``) the user and item vectors
are features too (``ranker+argus+vectors``).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from argusrec.config import RunConfig, load_config
from argusrec.data.splits import EVAL_ROLES
from argusrec.data.store import SequenceStore
from argusrec.errors import ArgusrecError
from argusrec.finetune.oracle_pairs import pair_metrics
from argusrec.finetune.pairs import Pairs
from argusrec.ranker.features import EventArrays, baseline_features
from argusrec.ranker.lgbm import RankerParams, fit_ranker, require_lightgbm
from argusrec.recipes.train import make_split

__all__ = ["ARGUS_FEATURE", "rank"]

ARGUS_FEATURE = "argus_score"


def _load_run(run: Path) -> RunConfig:
    if not (run / "config.yaml").is_file():
        raise ArgusrecError(f"{run}: not a run directory (no config.yaml); pass an `argusrec finetune` run directory")
    config = load_config(run / "config.yaml")
    if config.task != "finetune" or config.finetune is None:
        raise ArgusrecError(f"{run} is a {config.task} run; `argusrec rank` needs a fine-tuning run (task: finetune)")
    for role in EVAL_ROLES:
        if not (run / "scores" / f"{role}.npz").is_file():
            raise ArgusrecError(f"{run}: no scores/{role}.npz; the fine-tuning run did not finish (run it again)")
    return config


def _argus_columns(run: Path, role: str, rows: np.ndarray, vectors: bool) -> tuple[np.ndarray, list[str], np.ndarray]:
    """(I, 1 [+ 2 D_o]) ARGUS features of impressions at CSR ``rows`` (NaN where the run has no score), their names,
    and (I,) bool has-a-score."""
    with np.load(run / "scores" / f"{role}.npz") as z:
        data = {k: z[k] for k in z.files}
    order = np.argsort(data["rows"])
    srows = data["rows"][order]
    pos = np.clip(np.searchsorted(srows, rows), 0, max(len(srows) - 1, 0))
    found = (srows[pos] == rows) if len(srows) else np.zeros(len(rows), dtype=bool)
    idx = order[pos]
    has = found & data["has_state"][idx]
    score = np.where(has, data["score"][idx], np.nan)
    cols, names = [score[:, None]], [ARGUS_FEATURE]
    if vectors:
        if "user_vec" not in data:
            raise ArgusrecError(
                f"{run}: the run exported no vectors; fine-tune with --set finetune.export_vectors=true to use them"
            )
        for key, tag in (("user_vec", "u"), ("item_vec", "i")):
            v = np.where(has[:, None], data[key][idx].astype(np.float32), np.nan)
            cols.append(v)
            names += [f"argus_{tag}{j}" for j in range(v.shape[1])]
    return np.concatenate(cols, axis=1).astype(np.float32), names, has


def _labels(pairs: Pairs, config: RunConfig) -> np.ndarray:
    """(I,) int relevance: the rank of each impression's grade level among the distinct levels (0 = worst)."""
    assert config.finetune is not None
    grades = config.finetune.pairs.grades
    levels = np.array([grades[g] for g in pairs.grade_names], dtype=np.float64)
    rank_of = np.searchsorted(np.unique(levels), levels)
    return rank_of[pairs.grade].astype(np.int32)


def rank(
    finetune_run: str | Path,
    *,
    out_dir: str | Path | None = None,
    vectors: bool = False,
    params: RankerParams | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Train and test the final rankers of a fine-tuning run (module docstring); returns the summary, also written
    to ``<out_dir>/metrics.json`` (default ``<run>/rank``) with the boosters (``*.txt``).

    Summary keys: ``models`` (``ranker-baseline``, ``ranker+argus`` [, ``ranker+argus+vectors``], ``argus-twotower``
    — the score alone — each with ``test/`` and ``test_all/`` PairAccuracy metrics), ``gain`` (relative weighted
    PairAccuracy gain on ``test/``), ``gain_unweighted``, ``importance`` (share of split gain per feature),
    ``ranker_train`` (impressions, pairs, groups of the validation period), ``seconds``.
    """
    require_lightgbm()
    start = time.perf_counter()
    run = Path(finetune_run)
    config = _load_run(run)
    ft = config.finetune
    assert ft is not None
    params = params or RankerParams(seed=seed)
    store = SequenceStore.open(config.data.path)
    split = make_split(store, config)
    ev = EventArrays.from_store(store)
    row_user = ev.row_users()

    from argusrec.recipes.finetune import period_pairs

    data: dict[str, dict[str, Any]] = {}
    for role in EVAL_ROLES:
        pairs = period_pairs(store, split, config, role)
        lo, _ = split.target_range(role)
        group_time, group_first = pairs.group_time[pairs.group], pairs.group_first[pairs.group]
        table = baseline_features(ev, pairs.rows, group_time, group_first, lo, ft.lag)
        argus_x, argus_names, has = _argus_columns(run, role, pairs.rows, vectors)
        data[role] = {
            "pairs": pairs,
            "base": table,
            "argus_x": argus_x,
            "argus_names": argus_names,
            "has": has,
            "label": _labels(pairs, config),
            "user": row_user[pairs.rows],
        }

    variants: dict[str, tuple[bool, bool]] = {"ranker-baseline": (False, False), "ranker+argus": (True, False)}
    if vectors:
        variants["ranker+argus+vectors"] = (True, True)
    models: dict[str, dict[str, Any]] = {}
    importance: dict[str, dict[str, float]] = {}
    out = Path(out_dir) if out_dir is not None else run / "rank"
    out.mkdir(parents=True, exist_ok=True)
    for name, (use_score, use_vectors) in variants.items():

        def matrix(role: str, use_score: bool = use_score, use_vectors: bool = use_vectors) -> np.ndarray:
            d = data[role]
            parts = [d["base"].values]
            if use_score:
                parts.append(d["argus_x"] if use_vectors else d["argus_x"][:, :1])
            return np.concatenate(parts, axis=1)

        base_names = data["valid"]["base"].names
        names = base_names + (data["valid"]["argus_names"] if use_vectors else [ARGUS_FEATURE] if use_score else [])
        tr = data["valid"]
        p = tr["pairs"]
        fitted = fit_ranker(
            matrix("valid"),
            tr["label"],
            p.group,
            tr["user"],
            (p.better, p.worse, p.weight),
            names,
            tr["base"].categorical,
            params,
        )
        fitted.booster.save_model(str(out / f"{name.replace('+', '_plus_')}.txt"), num_iteration=fitted.best_iteration)
        te = data["test"]
        scores = fitted.predict(matrix("test"))
        tp = te["pairs"]
        metrics = pair_metrics(scores, tp.better, tp.worse, tp.weight, has_score=te["has"], prefix="test/")
        metrics.update(pair_metrics(scores, tp.better, tp.worse, tp.weight, prefix="test_all/"))
        metrics["holdout/PairAccuracy_weighted"] = fitted.holdout_pair_accuracy
        metrics["best_iteration"] = fitted.best_iteration
        models[name] = metrics
        importance[name] = fitted.importance()
    te = data["test"]
    tp = te["pairs"]
    models["argus-twotower"] = pair_metrics(
        te["argus_x"][:, 0].astype(np.float64), tp.better, tp.worse, tp.weight, has_score=te["has"], prefix="test/"
    )

    def gain(key: str) -> float:
        base, plus = models["ranker-baseline"][key], models["ranker+argus"][key]
        return float((plus - base) / base)

    summary = {
        "models": models,
        "gain": gain("test/PairAccuracy_weighted"),
        "gain_unweighted": gain("test/PairAccuracy"),
        "gain_all_pairs": gain("test_all/PairAccuracy_weighted"),
        "importance": importance,
        "ranker_train": {
            "period": "valid",
            "impressions": int(data["valid"]["pairs"].n_impressions),
            "pairs": int(data["valid"]["pairs"].n_pairs),
            "groups": int(data["valid"]["pairs"].n_groups),
            "argus_coverage": float(data["valid"]["has"].mean()),
        },
        "test_coverage": float(te["has"].mean()),
        "features": data["valid"]["base"].names,
        "finetune_run": str(run),
        "seconds": time.perf_counter() - start,
    }
    (out / "metrics.json").write_text(json.dumps(summary, indent=2))
    return summary
