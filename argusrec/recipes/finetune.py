"""ARGUS fine-tuning from a :class:`RunConfig` with ``task: finetune``, top to bottom (reference/ARGUS.md §5-§6).

    config -> prepared dataset -> temporal split (as pre-training) -> impressions and pairs of the training period
    (the history before it stays context) and of the validation / test periods -> fine-tuning examples ->
    TwoTower from the pre-training run's best checkpoint (refused with the reason when it does not fit; none = the
    no-pre-training ablation) -> fit with the one-pass pairwise loss (monitor valid/PairAccuracy_weighted, mode max) ->
    best checkpoint -> valid / test PairAccuracy, with item popularity and (simulated data) the oracle on the same
    pairs -> per-impression scores for the final ranker -> run directory

The run directory is the one :func:`argusrec.recipes.train.train` writes (``config.yaml``, ``run.json``,
``checkpoints/``, ``train_log.csv``, ``metrics.csv``, ``metrics.json``, ``model_card.md``) plus ``scores/valid.npz``
and ``scores/test.npz``: per impression of the period's fine-tuning examples its CSR ``rows``, the two-tower
``score`` and ``has_state`` (False: no event before ``t - lag`` in its history window, no score), and with
``finetune.export_vectors`` the ``user_vec`` / ``item_vec`` (I, D_o) float16. ``argusrec rank`` reads them.

**Same pairs for every scorer.** The two-tower, popularity and the oracle are all scored on the pairs of the
period's fine-tuning examples whose two impressions have a lagged user state (``<role>/pairs``); pairs dropped by
the example limits (``finetune.max_impressions``, ``finetune.min_len``) or without a state are counted in
``pair_stats``.

**Throughput.** ``pairs_per_s`` is the training loop's rate of pairs scored per second of training steps;
``events_per_s`` the history events encoded per second (``pairs_per_s`` times the events-per-pair ratio of the
training examples): one causal pass per example serves all its impressions.

:func:`quickstart_finetune` runs pre-train -> fine-tune -> final ranker end to end on a small simulation.
"""

from __future__ import annotations

import json
import logging
import math
import platform
import time
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
import yaml

from argusrec import __version__
from argusrec.config import RunConfig, load_config
from argusrec.data.batching import concat_aranges
from argusrec.data.negatives import item_frequencies
from argusrec.data.splits import EVAL_ROLES, PERIODS, EventRole, Period, Split
from argusrec.data.store import SequenceStore
from argusrec.errors import ArgusrecError
from argusrec.finetune.one_pass import (
    FinetuneChunks,
    ImpressionBatches,
    PairwiseTask,
    assemble_finetune_batch,
    finetune_chunks,
    lagged_state_columns,
)
from argusrec.finetune.oracle_pairs import oracle_scores, pair_metrics, popularity_scores
from argusrec.finetune.pairs import Pairs, build_pairs, pair_weights_table, resolve_group_by
from argusrec.finetune.two_tower import TwoTower, two_tower_from_checkpoint
from argusrec.models.builders import count_parameters
from argusrec.nn.feedback_scale import feedback_batch
from argusrec.recipes.pretrain import argus_model_for, data_parts, feedback_ranges
from argusrec.recipes.train import _prepare_run_dir, data_fingerprint, fit_and_restore_best, make_split
from argusrec.training import distributed
from argusrec.training.device import to_device

log = logging.getLogger(__name__)

__all__ = [
    "ARCHITECTURE_KEYS",
    "MONITORS",
    "chunk_pairs",
    "finetune",
    "finetune_config",
    "period_pairs",
    "quickstart_finetune",
    "resolve_checkpoint",
    "score_impressions",
]

MONITORS = ("valid/PairAccuracy_weighted", "valid/PairAccuracy")
#: Config keys that shape the weights: a pre-training run with other values cannot initialise this model.
ARCHITECTURE_KEYS = (
    "data.max_len",
    *(
        f"model.{k}"
        for k in (
            "kind",
            "dim",
            "layers",
            "heads",
            "ffn_dim",
            "qk_dim",
            "v_dim",
            "hstu_variant",
            "item_embedding",
            "hash_buckets",
            "num_hashes",
            "normalize",
        )
    ),
    *(
        f"argus.{k}"
        for k in (
            "variant",
            "encoder",
            "retrieval_dim",
            "combine",
            "use_context",
            "feedback_prediction",
            "time_features",
        )
    ),
)


# ---------------------------------------------------------------------------------------------- config
def finetune_config(pretrained: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> RunConfig:
    """The fine-tuning config of a pre-training run directory: its ``config.yaml`` (architecture, data, split) with
    ``task: finetune``, ``finetune.checkpoint`` = the run, the PairAccuracy monitor and ``name: <name>-finetune``;
    then ``overrides`` (``key.path=value``, e.g. ``finetune.lag=3600`` or ``finetune.checkpoint=null``)."""
    run = Path(pretrained)
    source = run / "config.yaml"
    if not source.is_file():
        raise ArgusrecError(f"{run}: not a run directory (no config.yaml); pass a pre-training run directory")
    name = (yaml.safe_load(source.read_text()) or {}).get("name", "run")
    base = [
        "task=finetune",
        f"finetune.checkpoint={run.resolve()}",
        "train.monitor=valid/PairAccuracy_weighted",
        "train.monitor_mode=max",
        f"name={name}-finetune",
    ]
    return load_config(source, [*base, *overrides])


def resolve_checkpoint(spec: str | Path) -> tuple[Path, Path | None]:
    """``finetune.checkpoint`` -> (checkpoint file, its run directory or None).

    A run directory gives ``checkpoints/best.pt`` (``last.pt`` when the run never evaluated); a file is used as is.
    """
    path = Path(spec)
    if path.is_dir():
        for name in ("best.pt", "last.pt"):
            if (path / "checkpoints" / name).is_file():
                if name == "last.pt":
                    log.warning("%s has no checkpoints/best.pt: fine-tuning starts from last.pt", path)
                return path / "checkpoints" / name, path
        raise ArgusrecError(
            f"finetune.checkpoint={spec}: the directory has no checkpoints/best.pt or last.pt; point it at an "
            "`argusrec pretrain` run directory (or at a checkpoint file)"
        )
    if path.is_file():
        run = path.parent.parent if path.parent.name == "checkpoints" else None
        return path, run if run is not None and (run / "config.yaml").is_file() else None
    raise ArgusrecError(f"finetune.checkpoint={spec}: no such run directory or checkpoint file")


def _lookup(data: dict[str, Any], key: str) -> Any:
    node: Any = data
    for k in key.split("."):
        node = node.get(k) if isinstance(node, dict) else None
    return node


def check_pretrained_run(run: Path, config: RunConfig) -> None:
    """Refuse a pre-training run whose task or architecture differs from ``config`` (the reason named)."""
    saved = yaml.safe_load((run / "config.yaml").read_text()) or {}
    if saved.get("task") != "argus":
        raise ArgusrecError(
            f"finetune.checkpoint={run} is a {saved.get('task', 'next_item')!r} run, not ARGUS pre-training "
            "(task: argus): fine-tuning starts from `argusrec pretrain`'s run directory"
        )
    ours = config.model_dump(mode="json")
    diff = [
        f"{k}: pre-trained {_lookup(saved, k)!r}, this config {_lookup(ours, k)!r}"
        for k in ARCHITECTURE_KEYS
        if _lookup(saved, k) != _lookup(ours, k)
    ]
    if diff:
        raise ArgusrecError(
            f"finetune.checkpoint={run} was pre-trained with another architecture:\n  "
            + "\n  ".join(diff)
            + f"\nfine-tune with the pre-training run's config (argusrec finetune --pretrained {run})"
        )
    theirs = Path(str(_lookup(saved, "data.path"))).resolve()
    if theirs != Path(config.data.path).resolve():
        log.warning("fine-tuning data %s is not the pre-training data %s", config.data.path, theirs)


def check_finetune_config(config: RunConfig) -> None:
    """Checks that need no data; errors name the key to change."""
    if config.task != "finetune" or config.finetune is None:
        raise ArgusrecError(
            f"finetune needs task: finetune and a finetune section, the config has task: {config.task} "
            "(argusrec finetune --pretrained RUN_DIR builds one from a pre-training run)"
        )
    if config.data.split != "temporal":
        raise ArgusrecError(
            "fine-tuning needs data.split=temporal: pairs are impressions of a period (ARGUS.md §6), and "
            "leave-one-out periods hold one event per user"
        )
    if config.data.valid_fraction <= 0:
        raise ArgusrecError("fine-tuning needs a validation period for model selection: data.valid_fraction > 0")
    if config.train.monitor not in MONITORS or config.train.monitor_mode != "max":
        raise ArgusrecError(
            f"fine-tuning reports {', '.join(MONITORS)}: set train.monitor=valid/PairAccuracy_weighted and "
            f"train.monitor_mode=max (got {config.train.monitor}, {config.train.monitor_mode})"
        )
    ctx = distributed.launch_env()
    if ctx is not None and ctx[0] > 1:
        raise ArgusrecError("fine-tuning runs in one process; launch it without torchrun (train.strategy=single)")


# ---------------------------------------------------------------------------------------------- pairs
def period_pairs(store: SequenceStore, split: Split, config: RunConfig, role: Period) -> Pairs:
    """The pairs of one period (``train``, ``valid`` or ``test``); the earlier history stays context."""
    ft = config.finetune
    assert ft is not None
    lo, hi = split.train_ranges() if role == "train" else split.target_range(role)
    try:
        return build_pairs(store, ft.pairs, lo, hi)
    except ArgusrecError as e:
        period = {"train": "training", "valid": "validation", "test": "test"}[role]
        raise ArgusrecError(f"{config.data.path}, {period} period: {e}") from None


def chunk_pairs(chunks: FinetuneChunks) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(P,) better, (P,) worse as global impression indices (into ``chunks.imp_row``), (P,) weights."""
    owner = np.repeat(np.arange(len(chunks), dtype=np.int64), chunks.n_pairs)
    base = chunks.imp_offsets[owner]
    return base + chunks.pair_better, base + chunks.pair_worse, chunks.pair_weight


@torch.no_grad()
def score_impressions(
    model: TwoTower,
    store: SequenceStore,
    chunks: FinetuneChunks,
    task: PairwiseTask,
    *,
    batch_size: int,
    device: torch.device | str = "cpu",
    vectors: bool = False,
) -> dict[str, np.ndarray]:
    """Every impression of ``chunks`` scored in one pass per example (eval mode).

    Returns ``score`` (I,) float32 (NaN without a state), ``has_state`` (I,) bool, ``rows`` (I,) CSR rows and, with
    ``vectors``, ``user_vec`` / ``item_vec`` (I, D_o) float32.
    """
    was_training = model.training
    model.eval()
    dev = torch.device(device)
    n = len(chunks.imp_row)
    score = np.full(n, np.nan, dtype=np.float32)
    ok = np.zeros(n, dtype=bool)
    user_vec = np.zeros((n, model.out_dim), dtype=np.float32) if vectors else None
    item_vec = np.zeros((n, model.out_dim), dtype=np.float32) if vectors else None
    order = np.argsort(chunks.history.length, kind="stable")  # similar lengths together: little padding
    columns = PairwiseTask.columns(model)
    try:
        for i in range(0, len(order), batch_size):
            ids = order[i : i + batch_size]
            batch = to_device(assemble_finetune_batch(store, chunks, ids, columns=columns), dev)
            s, has = task.scores(model, batch)  # (B, M)
            k = chunks.imp_offsets[ids + 1] - chunks.imp_offsets[ids]
            bi = np.repeat(np.arange(len(ids)), k)
            slot = concat_aranges(np.zeros(len(ids), dtype=np.int64), k)
            idx = concat_aranges(chunks.imp_offsets[ids], k)
            score[idx] = s.float().cpu().numpy()[bi, slot]
            ok[idx] = has.cpu().numpy()[bi, slot]
            if user_vec is not None and item_vec is not None:
                mask = batch["mask"].bool()
                states = model(
                    batch["item_id"].long(),
                    {c: batch[c].long() for c in model.context_fields},
                    feedback_batch(batch, model.feedback_fields, task.feedback_ranges),
                    batch["timestamp"],
                    mask,
                )
                col, _ = lagged_state_columns(
                    batch["timestamp"], mask, batch["imp_time"], batch["imp_limit"], batch["imp_mask"], task.lag
                )
                picked = states.gather(1, col.unsqueeze(-1).expand(-1, -1, states.shape[-1]))
                user_vec[idx] = model.user_vectors(picked).float().cpu().numpy()[bi, slot]
                item_vec[idx] = model.item_vectors(batch["imp_item"].long()).float().cpu().numpy()[bi, slot]
    finally:
        model.train(was_training)
    score[~ok] = np.nan
    out: dict[str, np.ndarray] = {"rows": chunks.imp_row.astype(np.int64), "score": score, "has_state": ok}
    if user_vec is not None and item_vec is not None:
        out.update(user_vec=user_vec, item_vec=item_vec)
    return out


# ---------------------------------------------------------------------------------------------- recipe
def finetune(config: RunConfig, *, run_dir: str | Path | None = None, progress: bool = True) -> dict[str, Any]:
    """Run the whole recipe; returns the summary (also written to ``<run dir>/metrics.json``).

    Summary keys: ``metrics`` (``valid/`` and ``test/PairAccuracy`` (unweighted), ``..._weighted``, ``.../pairs``,
    ``pairs_per_s``, ``events_per_s``), ``baselines`` (``popularity`` and, on simulated data, ``oracle``: the same
    metrics on the same test pairs), ``pair_stats`` (pairs per grade combination, what the example limits and the
    lag dropped), ``pretrained`` (the checkpoint, or None), ``notes``, ``feedback_ranges`` (continuous feedback's map
    onto [0, 1], as pre-training's: :func:`argusrec.recipes.pretrain.feedback_ranges`), ``best_epoch``,
    ``epochs_run``, ``steps``, ``stopped_early``, ``train_seconds``, ``seconds``, ``parameters``.

    Raises:
        ArgusrecError: a config that is not a fine-tuning config, data that forms no pairs (what it needs is
            named), an incompatible pre-trained checkpoint (the reason is named).
    """
    start = time.perf_counter()
    check_finetune_config(config)
    ft = config.finetune
    assert ft is not None
    store = SequenceStore.open(config.data.path)
    context, feedback, _, notes = data_parts(config, store)
    notes = [n for n in notes if "FP" not in n and "feedback prediction" not in n]  # no FP loss when fine-tuning
    split = make_split(store, config)
    ranges, range_notes = feedback_ranges(store, split, feedback, {})  # pre-training's map (same data and split)
    notes += range_notes
    group_by = resolve_group_by(store, ft.pairs)

    # pairs of every period, before any model is built: data without pairs fails fast
    pairs = {role: period_pairs(store, split, config, role) for role in PERIODS}
    chunks = {
        role: finetune_chunks(
            p, store.offsets, max_len=config.data.max_len, min_len=ft.min_len, max_impressions=ft.max_impressions
        )
        for role, p in pairs.items()
    }

    # the model: pre-trained ARGUS (checked) or, for the ablation, the same architecture at random
    pretrained: Path | None = None
    if ft.checkpoint is not None:
        pretrained, run = resolve_checkpoint(ft.checkpoint)
        if run is not None:
            check_pretrained_run(run, config)
    run_dir = Path(run_dir) if run_dir is not None else Path(config.output_dir) / config.name
    _prepare_run_dir(run_dir, config)
    torch.manual_seed(config.train.seed)
    device = distributed.setup(config.train).device
    argus = argus_model_for(config, store, context, feedback)
    if pretrained is not None:
        model = two_tower_from_checkpoint(pretrained, argus, item_tower=ft.item_tower, dim=ft.dim)
    else:
        notes.append("finetune.checkpoint is null: no pre-training (ablation), random initialisation")
        model = TwoTower(argus, item_tower=ft.item_tower, dim=ft.dim, copy=False)
    for line in notes:
        log.warning(line)

    task = PairwiseTask(lag=ft.lag, check=device.type == "cpu", feedback_ranges=ranges)
    batches = ImpressionBatches(
        store,
        chunks["train"],
        batch_size=config.train.batch_size,
        columns=PairwiseTask.columns(model),
        seed=config.train.seed,
        bucket=config.train.bucket_batches,
    )
    train_cfg = config.train
    if ft.train_fraction < 1.0:
        steps = max(1, math.ceil(ft.train_fraction * config.train.epochs * len(batches)))
        if train_cfg.max_steps is not None:
            steps = min(steps, train_cfg.max_steps)
        train_cfg = train_cfg.model_copy(update={"max_steps": steps})
    run_config = config.model_copy(update={"train": train_cfg})
    eval_batch = max(1, config.eval.batch_size // 4)

    def evaluate_role(m: torch.nn.Module, role: Period) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        out = score_impressions(
            cast(TwoTower, m), store, chunks[role], task, batch_size=eval_batch, device=device,
            vectors=ft.export_vectors and role != "train",
        )  # fmt: skip
        better, worse, weight = chunk_pairs(chunks[role])
        return pair_metrics(out["score"], better, worse, weight, has_score=out["has_state"], prefix=f"{role}/"), out

    def evaluate(m: torch.nn.Module) -> dict[str, float]:
        return cast(dict[str, float], evaluate_role(m, "valid")[0])

    result = fit_and_restore_best(
        model, task, cast(Any, batches), run_config, run_dir, evaluate, device, progress=progress
    )
    model.eval()
    metrics: dict[str, Any] = {}
    scores: dict[str, dict[str, np.ndarray]] = {}
    for role in EVAL_ROLES:
        m, scores[role] = evaluate_role(model, role)
        metrics.update(m)
    events = float(chunks["train"].history.length.sum())
    n_pairs = max(1, int(chunks["train"].stats["pairs"]))
    metrics["pairs_per_s"] = result.targets_per_s
    metrics["events_per_s"] = result.targets_per_s * events / n_pairs

    # baselines on exactly the pairs the two-tower scored
    train_rows = split.event_roles() == EventRole.TRAIN
    counts = item_frequencies(store.items, store.n_items, mask=train_rows)
    baselines: dict[str, dict[str, Any]] = {}
    better, worse, weight = chunk_pairs(chunks["test"])
    has = scores["test"]["has_state"]
    rows = chunks["test"].imp_row
    baselines["popularity"] = pair_metrics(
        popularity_scores(store, rows, counts), better, worse, weight, has_score=has, prefix="test/"
    )
    oracle = oracle_scores(store, rows)
    if oracle is not None:
        baselines["oracle"] = pair_metrics(oracle, better, worse, weight, has_score=has, prefix="test/")

    pair_stats = {
        role: {**pairs[role].stats, **{f"examples/{k}": v for k, v in chunks[role].stats.items()}} for role in pairs
    }
    for role in EVAL_ROLES:
        pair_stats[role]["pairs_no_state"] = int(chunks[role].stats["pairs"]) - int(metrics[f"{role}/pairs"])
    summary = {
        "metrics": metrics,
        "baselines": baselines,
        "pair_stats": pair_stats,
        "group_by": group_by,
        "pretrained": str(pretrained) if pretrained is not None else None,
        "notes": notes,
        "feedback_ranges": {s: r.as_dict() for s, r in ranges.items()},
        **result.progress(),
        "seconds": time.perf_counter() - start,
        "parameters": count_parameters(model)[0],
    }
    if distributed.is_main():
        out = run_dir / "scores"
        out.mkdir(exist_ok=True)
        for period, arrays in scores.items():
            saved = {k: (v.astype(np.float16) if k.endswith("_vec") else v) for k, v in arrays.items()}
            np.savez(out / f"{period}.npz", **saved)  # type: ignore[arg-type]
        (run_dir / "metrics.json").write_text(json.dumps(summary, indent=2))
        (run_dir / "model_card.md").write_text(finetune_model_card(config, store, split, model, summary, device))
    return summary


def finetune_model_card(
    config: RunConfig, store: SequenceStore, split: Split, model: TwoTower, summary: dict, device: torch.device
) -> str:
    """The model card of a fine-tuning run."""
    ft = config.finetune
    assert ft is not None
    total, _ = count_parameters(model)
    m = summary["metrics"]
    rows = [("two-tower (this run)", m)] + [(k, v) for k, v in summary["baselines"].items()]
    table = "\n".join(
        f"| {name} | {v['test/PairAccuracy_weighted']:.4f} | {v['test/PairAccuracy']:.4f} | {v['test/pairs']:,} |"
        for name, v in rows
    )
    weights = ", ".join(f"{k} {w:g}" for k, w in pair_weights_table(ft.pairs).items())
    notes = "".join(f"\n- **note**: {n}" for n in summary["notes"])
    init = f"`{summary['pretrained']}`" if summary["pretrained"] else "none (random initialisation: ablation)"
    window = f" (windows of {ft.pairs.window_s} s)" if summary["group_by"] == "window" else ""
    return f"""# Model card: {config.name} (ARGUS fine-tuning, two-tower pairwise ranking)

- **architecture**: two-tower over ARGUS {config.argus.variant} ({config.argus.encoder}), {config.model.layers}
  layers, width {config.model.dim}; user vector = MLP(encoder state), item tower {ft.item_tower}, vector width
  {model.out_dim}; score = dot product; {total:,} parameters
- **initialisation**: {init}
- **data**: {store.manifest.get("name")} at `{config.data.path}` — {store.n_users:,} users, {store.n_items:,} items,
  {store.n_events:,} events; fingerprint `{data_fingerprint(store)}`
- **pairs**: impressions grouped by {summary["group_by"]}{window};
  grades {dict(ft.pairs.grades)}; weights {weights}
- **protocol**: {config.data.split} ({json.dumps(split.summary())}); pairs of the training period train, the
  validation period selects the checkpoint (`{config.train.monitor}`), the test period reports; user state = the
  last event at least {ft.lag} s before the request (lag), history windows of {config.data.max_len} events, at most
  {ft.max_impressions} impressions per example, min history {ft.min_len}
- **training**: one-pass pairwise logistic loss, AdamW lr {config.optim.lr}; best epoch {summary["best_epoch"]} of
  {summary["epochs_run"]}, {summary["steps"]} steps, {summary["train_seconds"]:.1f} s, {m["pairs_per_s"]:,.0f} pairs/s,
  {m["events_per_s"]:,.0f} history events/s{notes}
- **hardware**: {device} ({platform.processor() or platform.machine()}, torch {torch.__version__});
  argusrec {__version__}

Test-period PairAccuracy on the same pairs (popularity = training-period item counts; oracle = the simulator's
true affinity, a ceiling, on simulated data only):

| scorer | PairAccuracy (weighted) | unweighted | pairs |
|---|---|---|---|
{table}
"""


# ---------------------------------------------------------------------------------------------- end to end
def quickstart_finetune(
    data_dir: str | Path,
    out_dir: str | Path,
    *,
    pretrained: str | Path | None = None,
    preset: str = "argus-tiny",
    pretrain_epochs: int = 4,
    finetune_epochs: int = 3,
    lag: int = 3_600,
    seed: int = 0,
    device: str = "auto",
    ranker: bool = True,
    progress: bool = False,
    pretrain_overrides: tuple[str, ...] = (),
    finetune_overrides: tuple[str, ...] = (),
) -> dict[str, Any]:
    """Pre-train (unless ``pretrained`` names a run) -> fine-tune -> final-ranker uplift on a prepared dataset.

    Writes ``out_dir/pretrain`` (when pre-training here), ``out_dir/finetune`` and ``out_dir/finetune/rank``.
    Returns ``{"pretrain": summary or None, "finetune": summary, "rank": summary or None, "seconds": ...}``;
    ``rank`` is None when ``ranker`` is False or LightGBM is not installed (logged).
    """
    from argusrec.recipes.pretrain import pretrain

    start = time.perf_counter()
    out = Path(out_dir)
    pre_summary = None
    if pretrained is None:
        pre_cfg = load_config(
            preset,
            [
                f"data.path={Path(data_dir).resolve()}",
                f"train.epochs={pretrain_epochs}",
                f"train.seed={seed}",
                f"train.device={device}",
                *pretrain_overrides,
            ],
        )
        pretrained = out / "pretrain"
        pre_summary = pretrain(pre_cfg, run_dir=pretrained, progress=progress)
    cfg = finetune_config(
        pretrained,
        [f"train.epochs={finetune_epochs}", f"finetune.lag={lag}", f"train.device={device}", *finetune_overrides],
    )
    ft_dir = out / "finetune"
    ft_summary = finetune(cfg, run_dir=ft_dir, progress=progress)
    rank_summary = None
    if ranker:
        from argusrec.ranker import lightgbm_available
        from argusrec.recipes.rank import rank

        if lightgbm_available():
            rank_summary = rank(ft_dir, seed=seed)
        else:
            log.warning("LightGBM is not installed: the final-ranker step is skipped (pip install 'argusrec[ranker]')")
    return {
        "pretrain": pre_summary,
        "finetune": ft_summary,
        "rank": rank_summary,
        "seconds": time.perf_counter() - start,
    }
