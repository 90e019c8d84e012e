"""ARGUS pre-training from a :class:`RunConfig` with ``task: argus``, top to bottom (reference/ARGUS.md §1-§3, §6).

    config -> prepared dataset -> split (temporal, §6) -> which ARGUS parts the data supports -> training chunks
    -> Argus + ArgusTask (NIP + FP in one causal pass) -> fit (validation NIP loss / FP metrics, early stop,
    checkpoint) -> best checkpoint -> validation and test metrics + popularity baseline -> run directory

The run directory is the one :func:`argusrec.recipes.train.train` writes (its helpers are reused):
``config.yaml``, ``run.json``, ``checkpoints/``, ``train_log.csv``, ``metrics.csv``, ``metrics.json``,
``model_card.md``.

What the data supports decides the model:

* no feedback columns -> no feedback input and no FP head: "training NIP only" is logged (a warning). If the
  config *explicitly* sets ``argus.feedback_prediction: true`` this is an error instead: the user asked for FP.
* ``argus.feedback_prediction: false`` with feedback columns: feedback stays an input, the FP loss is off.
* no context columns (or ``argus.use_context: false``) -> context embeddings disabled (logged); time
  features still come from the timestamps.

Continuous feedback (stars, seconds played) is mapped onto [0, 1] by its *training-period* range for the feedback
input and the FP labels (:func:`feedback_ranges`, :mod:`argusrec.nn.feedback_scale`; logged, and stored in the
summary's ``feedback_ranges``); validation and test reuse the training map.
"""

from __future__ import annotations

import json
import logging
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch

from argusrec import __version__
from argusrec.config import RunConfig
from argusrec.data.batching import ChunkBatches, chunk_ranges
from argusrec.data.negatives import item_frequencies
from argusrec.data.splits import EVAL_ROLES, EvalRole, EventRole, Split
from argusrec.data.store import SequenceStore
from argusrec.errors import ArgusrecError
from argusrec.eval.argus_eval import FULL_CATALOG_MAX, evaluate_argus, popularity_nip_loss
from argusrec.models.argus import Argus, transformer_parameters
from argusrec.models.argus_task import ArgusTask
from argusrec.models.builders import build_argus_model, count_parameters
from argusrec.models.sequential import FixedTemperature
from argusrec.nn.feedback_scale import FeedbackRange, feedback_batch, fit_feedback_range
from argusrec.recipes.train import _prepare_run_dir, data_fingerprint, fit_and_restore_best, make_split
from argusrec.training import distributed

log = logging.getLogger(__name__)

NO_FEEDBACK = "no feedback columns: feedback prediction disabled, training NIP only"
NO_CONTEXT = "no context columns: context embeddings disabled"


def data_parts(config: RunConfig, store: SequenceStore) -> tuple[list[str], dict[str, str], dict[str, str], list[str]]:
    """Which ARGUS parts the data supports (module docstring).

    Returns:
        ``(context_fields, feedback_inputs, fp_kinds, notes)``: context columns fed to the model, feedback
        signal -> kind fed to the model, signal -> kind of the signals with an FP loss, and the lines logged.

    Raises:
        ArgusrecError: FP explicitly required without feedback columns, or ARGUS options naming unknown columns.
    """
    schema, a = store.schema, config.argus
    notes: list[str] = []
    feedback = {s: schema.feedback_kind(s).value for s in schema.feedback}
    if not feedback:
        if a.feedback_prediction and "feedback_prediction" in a.model_fields_set:
            raise ArgusrecError(
                f"{config.data.path}: argus.feedback_prediction is true but the dataset has no feedback columns; "
                "set argus.feedback_prediction=false (NIP only) or prepare the data with its feedback columns"
            )
        notes.append(NO_FEEDBACK)
    fp_kinds = dict(feedback) if a.feedback_prediction else {}
    if feedback and not a.feedback_prediction:
        notes.append("argus.feedback_prediction is false: feedback is an input only, no FP loss")
    context = list(schema.context) if a.use_context else []
    if not schema.context:
        notes.append(NO_CONTEXT)
    elif not a.use_context:
        notes.append("argus.use_context is false: context embeddings disabled (ablation)")
    unknown = sorted(set(a.fp_weights) - set(fp_kinds))
    if unknown:
        raise ArgusrecError(f"argus.fp_weights names {unknown}, not FP signals of this run ({sorted(fp_kinds)})")
    if a.positive_signal is not None and a.positive_signal not in feedback:
        raise ArgusrecError(
            f"argus.positive_signal={a.positive_signal!r} is not a feedback column; columns: {sorted(feedback)}"
        )
    if a.nip_on == "positives" and a.positive_signal is None:
        raise ArgusrecError("argus.nip_on=positives needs argus.positive_signal (a feedback column, e.g. like)")
    for c in context:
        if not store.vocab(c):
            raise ArgusrecError(f"{config.data.path}: context column {c!r} has no vocabulary in the manifest")
    return context, feedback, fp_kinds, notes


def feedback_ranges(
    store: SequenceStore, split: Split, feedback: dict[str, str], fp_kinds: dict[str, str]
) -> tuple[dict[str, FeedbackRange], list[str]]:
    """The map onto [0, 1] of every continuous ``feedback`` signal whose training values leave it
    (:func:`~argusrec.nn.feedback_scale.fit_feedback_range`), fitted on the split's TRAIN rows only; then checks
    that every ``fp_kinds`` label of the store maps into [0, 1] (so no device skips a label check that matters).

    Deterministic in the data and the split: :func:`argusrec.recipes.evaluate.evaluate_run` and fine-tuning
    recompute the pre-training run's ranges.

    Returns:
        ``(ranges, notes)``: signal -> range (identity signals left out) and one logged line per mapped signal.

    Raises:
        ArgusrecError: infinite values, or continuous FP labels outside [0, 1] where no map applies (their
            training values lie in [0, 1] or are all missing, but other periods' do not).
    """
    continuous = [s for s, kind in feedback.items() if kind == "continuous"]
    ranges: dict[str, FeedbackRange] = {}
    notes: list[str] = []
    if not continuous:
        return ranges, notes
    train = split.event_roles() == EventRole.TRAIN
    for s in continuous:
        try:
            r = fit_feedback_range(np.asarray(store[s])[train])
        except ValueError as e:
            raise ArgusrecError(f"{store.path}: continuous feedback {s!r} has {e} in the training period") from None
        if r is None:
            continue
        ranges[s] = r
        how = "log1p (heavy-tailed), then scaled" if r.log1p else "scaled"
        use = "the feedback input and the FP loss" if s in fp_kinds else "the feedback input"
        notes.append(
            f"continuous signal {s!r} in [{r.lo:g}, {r.hi:g}]: {how} to [0, 1] by its training range for {use}"
        )
    for s in continuous:
        if s in fp_kinds:
            _check_mapped_labels(store, s, ranges)
    return ranges, notes


def _check_mapped_labels(
    store: SequenceStore, signal: str, ranges: dict[str, FeedbackRange], chunk: int = 1 << 22
) -> None:
    """Raise unless every observed value of ``signal``, through the run's map, lies in [0, 1]."""
    column = store[signal]
    for a in range(0, len(column), chunk):
        values = torch.from_numpy(np.array(column[a : a + chunk], dtype=np.float32))  # a writable copy
        y = feedback_batch({signal: values}, [signal], ranges)[signal]
        bad = y[(y < 0) | (y > 1)]  # NaN compares False: not observed
        if bad.numel():
            raise ArgusrecError(
                f"{store.path}: continuous feedback {signal!r} has values outside [0, 1] (e.g. {bad[:3].tolist()}) "
                "outside the training period, while its training values lie in [0, 1] (or are all missing), so no "
                "map applies; fix the data (values in [0, 1]) or the split"
            )


def check_argus_config(config: RunConfig, store: SequenceStore) -> None:
    """Checks that need the dataset; errors name the key to change."""
    if config.task != "argus":
        raise ArgusrecError(f"pretrain needs task: argus, the config has task: {config.task} (use `argusrec train`)")
    loss = config.loss
    if loss.kind != "sampled_softmax":
        raise ArgusrecError("ARGUS pre-training uses loss.kind=sampled_softmax (ARGUS.md §3)")
    if loss.uniform_negatives >= store.n_items:
        raise ArgusrecError(
            f"loss.uniform_negatives={loss.uniform_negatives} is not smaller than the catalog ({store.n_items} items)"
        )
    if store.n_items > FULL_CATALOG_MAX and config.train.monitor.endswith("/NIP_loss"):
        raise ArgusrecError(
            f"the catalog ({store.n_items:,} items) is above the exact-evaluation limit ({FULL_CATALOG_MAX:,}): "
            "validation reports a sampled estimate; set train.monitor=valid/NIP_loss_sampled8192"
        )


def log_chunking(lengths: np.ndarray, kept: int, max_len: int, max_chunks_per_user: int | None) -> None:
    """Say how training histories were cut: users chunked into several windows (info), events left out by
    ``data.max_chunks_per_user`` (a warning: never dropped silently). ``lengths``: (U,) training events per user;
    ``kept``: events in the chunks."""
    lengths = np.asarray(lengths, dtype=np.int64)
    chunked = int((lengths > max_len).sum())
    if chunked:
        log.info("%d users have more than data.max_len=%d training events: cut into several chunks", chunked, max_len)
    dropped = int(lengths.sum()) - kept
    if dropped:
        assert max_chunks_per_user is not None
        users = int((lengths > max_len * max_chunks_per_user).sum())
        log.warning(
            "data.max_chunks_per_user=%d: %d oldest training events of %d users left out (%.1f%% of training events)",
            max_chunks_per_user, dropped, users, 100.0 * dropped / lengths.sum(),
        )  # fmt: skip


@dataclass
class ArgusTraining:
    """What pre-training fits (:func:`argus_training`): the recipe, the distributed tests and benchmarks share it."""

    model: Argus
    task: ArgusTask
    batches: ChunkBatches
    train_freq: np.ndarray  # (V + 1,) item counts of the training NIP targets (the in-batch sampler's distribution)


def argus_training(
    config: RunConfig,
    store: SequenceStore,
    split: Split,
    context: list[str],
    feedback: dict[str, str],
    fp_kinds: dict[str, str],
    ranges: dict[str, FeedbackRange],
    device: torch.device,
) -> ArgusTraining:
    """The model, the NIP + FP task and the training batches of a run (after :func:`data_parts` and
    :func:`feedback_ranges`); seed torch first for reproducible initial weights."""
    a = config.argus
    # Item frequencies of the *training* NIP targets only (logQ must not see evaluation periods, §3).
    train_rows = split.event_roles() == EventRole.TRAIN
    if a.nip_on == "positives":
        assert a.positive_signal is not None
        train_rows &= np.asarray(store[a.positive_signal]) >= a.positive_threshold
    train_freq = item_frequencies(store.items, store.n_items, mask=train_rows)

    # Pre-training chunks do not overlap (§5): each user's training prefix cut into chunks of max_len events;
    # every event of a chunk is supervised at its own position (its query sees the events before it).
    lo, hi = split.train_ranges()
    chunks = chunk_ranges(lo, hi, config.data.max_len, max_chunks_per_user=config.data.max_chunks_per_user)
    if len(chunks) == 0:
        raise ArgusrecError(f"{config.data.path}: no training events before the validation/test cut-off")
    log_chunking(hi - lo, chunks.n_events, config.data.max_len, config.data.max_chunks_per_user)

    model = argus_model_for(config, store, context, feedback)
    task = ArgusTask(
        n_items=store.n_items,
        context_fields=context,
        feedback_inputs=list(feedback),
        fp_kinds=fp_kinds,
        uniform_negatives=config.loss.uniform_negatives,
        in_batch_negatives=config.loss.in_batch_negatives,
        item_freq=torch.from_numpy(train_freq),
        logq=config.loss.logq,
        similarity=config.similarity,
        uniform_sharing=config.loss.uniform_sharing,
        nip_on=a.nip_on,
        positive_signal=a.positive_signal,
        positive_threshold=a.positive_threshold,
        fp_weights=a.fp_weights,
        nip_weight=a.nip_weight,
        feedback_ranges=ranges,
        check_labels=device.type == "cpu",  # the check syncs the device; feedback_ranges validated the labels
        seed=config.train.seed,
    )
    batches = ChunkBatches(
        store,
        chunks,
        batch_size=config.train.batch_size,
        columns=task.columns(),
        seed=config.train.seed,
        n=None,  # pad each batch to its longest chunk; with length buckets that is little padding
        bucket=config.train.bucket_batches,
    )
    return ArgusTraining(model, task, batches, train_freq)


def pretrain(config: RunConfig, *, run_dir: str | Path | None = None, progress: bool = True) -> dict[str, Any]:
    """Run the whole recipe; returns the summary (also written to ``<run dir>/metrics.json``).

    Summary keys: ``metrics`` (valid and test NIP / FP metrics, ``events_per_s``), ``popularity_baseline``
    (``<role>/NIP_loss`` of add-one-smoothed training popularity), ``notes`` (what the data disabled, how continuous
    feedback was mapped), ``feedback_ranges`` (signal -> ``{lo, hi, log1p}``, :func:`feedback_ranges`),
    ``best_epoch``, ``epochs_run``, ``steps``, ``stopped_early``, ``train_seconds``, ``seconds``, ``parameters`` (all)
    and ``transformer_parameters`` (outside embedding tables, the size the article quotes).
    """
    start = time.perf_counter()
    store = SequenceStore.open(config.data.path)
    check_argus_config(config, store)
    context, feedback, fp_kinds, notes = data_parts(config, store)
    split = make_split(store, config)
    ranges, range_notes = feedback_ranges(store, split, feedback, fp_kinds)  # checks the FP labels up front
    notes += range_notes
    for line in notes:
        log.warning(line)  # a warning: shown even when the caller configured no logging
    run_dir = Path(run_dir) if run_dir is not None else Path(config.output_dir) / config.name
    _prepare_run_dir(run_dir, config)
    torch.manual_seed(config.train.seed)
    device = distributed.setup(config.train).device  # under torchrun: this rank's device
    t = argus_training(config, store, split, context, feedback, fp_kinds, ranges, device)
    model, task, batches, train_freq = t.model, t.task, t.batches, t.train_freq

    def evaluate(m: torch.nn.Module) -> dict[str, float]:
        return evaluate_argus_roles(
            cast(Argus, m), store, split, config, list(fp_kinds), ("valid",), device, feedback_ranges=ranges
        )

    result = fit_and_restore_best(model, task, batches, config, run_dir, evaluate, device, progress=progress)
    model.eval()
    metrics = distributed.run_eval(  # under torchrun: on every rank (FSDP gathers weights), rank 0's result
        model,
        lambda m: evaluate_argus_roles(
            cast(Argus, m), store, split, config, list(fp_kinds), EVAL_ROLES, device, feedback_ranges=ranges
        ),
    )
    baseline: dict[str, float] = {}
    for role in EVAL_ROLES:
        baseline.update(popularity_nip_loss(store, split, role, train_freq))
    metrics["events_per_s"] = result.targets_per_s
    summary = {
        "metrics": metrics,
        "popularity_baseline": baseline,
        "notes": notes,
        "feedback_ranges": {s: r.as_dict() for s, r in ranges.items()},
        **result.progress(),
        "seconds": time.perf_counter() - start,
        "parameters": count_parameters(model)[0],
        "transformer_parameters": transformer_parameters(model),
    }
    if distributed.is_main():
        (run_dir / "metrics.json").write_text(json.dumps(summary, indent=2))
        (run_dir / "model_card.md").write_text(argus_model_card(config, store, split, model, summary, device))
    return summary


def argus_model_for(config: RunConfig, store: SequenceStore, context: list[str], feedback: dict[str, str]) -> Argus:
    """The ARGUS model of a run: sizes from ``config.model``, shape from ``config.argus``, fields from the data."""
    model = build_argus_model(
        config.model,
        config.argus,
        vocab_sizes={c: len(store.vocab(c)) for c in context},
        feedback_signals=feedback,
        n_items=store.n_items,
        max_len=config.data.max_len,
    )
    if config.loss.temperature != "learned":
        model.temperature = FixedTemperature(float(config.loss.temperature))
    return model


def evaluate_argus_roles(
    model: Argus,
    store: SequenceStore,
    split: Split,
    config: RunConfig,
    fp_signals: list[str],
    roles: tuple[EvalRole, ...],
    device: torch.device,
    *,
    feedback_ranges: dict[str, FeedbackRange] | None = None,
) -> dict[str, float]:
    """NIP loss and FP metrics on each role's period, with the run's settings and continuous feedback map
    (:func:`feedback_ranges`)."""
    metrics: dict[str, float] = {}
    for role in roles:
        metrics.update(
            evaluate_argus(
                model,
                store,
                split,
                role,
                max_len=config.data.max_len,
                batch_size=config.eval.batch_size,
                device=device,
                fp_signals=fp_signals,
                positive_signal=config.argus.positive_signal,
                positive_threshold=config.argus.positive_threshold,
                similarity=config.similarity,
                feedback_ranges=feedback_ranges,
            )
        )
    return metrics


def argus_model_card(
    config: RunConfig, store: SequenceStore, split: Split, model: torch.nn.Module, summary: dict, device: torch.device
) -> str:
    """The model card of an ARGUS run (the next-item card of recipes/train.py describes other models)."""
    total, _ = count_parameters(model)
    a, loss = config.argus, config.loss
    m = summary["metrics"]
    rows = "\n".join(f"| {k} | {v:.4f} |" for k, v in m.items() if "/" in k and isinstance(v, float))
    base = "\n".join(f"| {k} | {v:.4f} |" for k, v in summary["popularity_baseline"].items() if k.endswith("loss"))
    notes = "".join(f"\n- **note**: {n}" for n in summary["notes"])
    return f"""# Model card: {config.name} (ARGUS pre-training)

- **architecture**: ARGUS {a.variant} ({a.encoder} encoder), {config.model.layers} layers, {config.model.heads} heads,
  width {config.model.dim}, item embedding {config.model.item_embedding}, context {a.use_context}, FP heads
  {list(cast(Argus, model).signals) if a.feedback_prediction else "off"}
- **parameters**: {total:,} in all, {transformer_parameters(model):,} excluding embeddings
- **data**: {store.manifest.get("name")} at `{config.data.path}` — {store.n_users:,} users, {store.n_items:,} items,
  {store.n_events:,} events; fingerprint `{data_fingerprint(store)}`
- **protocol**: {config.data.split} ({json.dumps(split.summary())}); windows of {config.data.max_len} events, the whole
  earlier history as context, losses only on the period's events; NIP loss = full-catalog softmax (no logQ);
  model selected on validation `{config.train.monitor}` only
- **training**: NIP on {a.nip_on} (weight {a.nip_weight}), sampled softmax ({loss.uniform_negatives} uniform negatives
  per {loss.uniform_sharing}, in-batch {loss.in_batch_negatives}, logQ {loss.logq}, temperature {loss.temperature},
  {loss.similarity}); FP weights {a.fp_weights or "all 1"}; AdamW lr {config.optim.lr}; best epoch
  {summary["best_epoch"]} of {summary["epochs_run"]}, {summary["steps"]} steps, {summary["train_seconds"]:.1f} s,
  {m.get("events_per_s", float("nan")):,.0f} NIP targets/s{notes}
- **hardware**: {device} ({platform.processor() or platform.machine()}, torch {torch.__version__});
  argusrec {__version__}

| metric | value |
|---|---|
{rows}

Popularity baseline (add-one-smoothed training item frequencies) on the same events:

| metric | value |
|---|---|
{base}
"""
