"""Train and evaluate a sequential recommender from a :class:`RunConfig`, top to bottom.

    config -> prepared dataset -> split -> training chunks -> model + next-item task -> fit (validate,
    early stop, checkpoint) -> best checkpoint -> validation and test metrics -> run directory

The run directory holds ``config.yaml`` (resolved), ``run.json`` (versions), ``checkpoints/``,
``train_log.csv``, ``metrics.csv``, ``metrics.json`` and ``model_card.md``.
"""

from __future__ import annotations

import hashlib
import json
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch

from argusrec import __version__
from argusrec.config import RunConfig
from argusrec.data.batching import ChunkBatches, Chunks, chunk_ranges, concat_aranges, history_windows
from argusrec.data.negatives import item_frequencies
from argusrec.data.schema import ITEM_ID, TIMESTAMP
from argusrec.data.splits import EVAL_ROLES, EvalRole, Split, leave_one_out, temporal_cutoffs, temporal_split
from argusrec.data.store import SequenceStore
from argusrec.errors import ArgusrecError
from argusrec.eval.protocols import evaluate_next_item, evaluate_popularity
from argusrec.models.builders import build_model, count_parameters
from argusrec.models.next_item import NextItemTask
from argusrec.models.sequential import SequentialRecommender
from argusrec.training import distributed
from argusrec.training.loop import FitResult, Task, fit

RUN_FORMAT = 1


def make_split(store: SequenceStore, config: RunConfig) -> Split:
    data = config.data
    if data.split == "leave_one_out":
        return leave_one_out(store, min_events=data.min_events)
    cut = temporal_cutoffs(store, test_fraction=data.test_fraction, valid_fraction=data.valid_fraction)
    return temporal_split(store, test_start=cut.test_start, valid_start=cut.valid_start, gap=data.gap)


def check_config(config: RunConfig, store: SequenceStore) -> None:
    """Checks that need the dataset: refuse impossible values with the key named."""
    if config.loss.kind == "sampled_softmax" and config.loss.uniform_negatives >= store.n_items:
        raise ArgusrecError(
            f"loss.uniform_negatives={config.loss.uniform_negatives} is not smaller than the catalog "
            f"({store.n_items} items); use loss.kind=full_softmax for so small a catalog"
        )
    if max(config.eval.ks) > store.n_items:
        raise ArgusrecError(f"eval.ks={list(config.eval.ks)}: k larger than the catalog ({store.n_items} items)")


def train(config: RunConfig, *, run_dir: str | Path | None = None, progress: bool = True) -> dict[str, Any]:
    """Run the whole recipe; returns the final metrics (also written to ``<run dir>/metrics.json``)."""
    start = time.perf_counter()
    store = SequenceStore.open(config.data.path)
    check_config(config, store)
    run_dir = Path(run_dir) if run_dir is not None else Path(config.output_dir) / config.name
    _prepare_run_dir(run_dir, config)
    torch.manual_seed(config.train.seed)
    device = distributed.setup(config.train).device  # under torchrun: this rank's device
    split = make_split(store, config)

    chunks = training_chunks(store, split, config)
    if len(chunks) == 0:
        raise ArgusrecError(f"{config.data.path}: no user has two training events; nothing to train on")
    batches = ChunkBatches(
        store,
        chunks,
        batch_size=config.train.batch_size,
        columns=[ITEM_ID, TIMESTAMP],
        seed=config.train.seed,
        n=None,  # pad each batch to its longest chunk; with length buckets that is little padding
        bucket=config.train.bucket_batches,
    )

    model = build_model(config.model, config.loss, n_items=store.n_items, max_len=config.data.max_len)
    freq = None
    if config.loss.logq and config.loss.in_batch_negatives:
        train_rows = split.event_roles() == 0  # training events only: logQ must not see test targets
        freq = torch.from_numpy(item_frequencies(store.items, store.n_items, mask=train_rows))
    task = NextItemTask(
        n_items=store.n_items,
        kind=config.loss.kind,
        uniform_negatives=config.loss.uniform_negatives,
        in_batch_negatives=config.loss.in_batch_negatives,
        item_freq=freq,
        logq=config.loss.logq,
        uniform_sharing=config.loss.uniform_sharing,
        last_only=config.train.targets == "last",
        seed=config.train.seed,
    )

    def evaluate(m: torch.nn.Module) -> dict[str, float]:
        return evaluate_roles(cast(SequentialRecommender, m), store, split, config, ("valid",), device, sampled=False)

    result = fit_and_restore_best(model, task, batches, config, run_dir, evaluate, device, progress=progress)
    metrics = distributed.run_eval(  # under torchrun: on every rank (FSDP gathers weights), rank 0's result
        model, lambda m: evaluate_roles(cast(SequentialRecommender, m), store, split, config, EVAL_ROLES, device)
    )
    baseline = evaluate_popularity(store, split, "test", ks=config.eval.ks, filter_history=config.eval.filter_history)
    seconds = time.perf_counter() - start
    metrics["events_per_s"] = result.targets_per_s
    summary = {
        "metrics": metrics,
        "popularity_baseline": baseline,
        **result.progress(),
        "seconds": seconds,
    }
    if distributed.is_main():
        (run_dir / "metrics.json").write_text(json.dumps(summary, indent=2))
        (run_dir / "model_card.md").write_text(model_card(config, store, split, model, summary, device))
    return summary


def training_chunks(store: SequenceStore, split: Split, config: RunConfig) -> Chunks:
    """The training samples, as left-padded windows of the store (``train.targets``).

    ``all``: each user's training prefix cut into non-overlapping chunks of max_len + 1 events (the +1:
    every one of the max_len input positions predicts the event after it). ``last``: one window per
    training event after the user's first, holding that event and the up-to-max_len events before it
    (the task reads the loss at the last position only); with ``model.empty_state`` the user's first
    training event too, in a window of its own (predicted from the empty-history state).
    """
    lo, hi = split.train_ranges()
    max_len = config.data.max_len
    if config.train.targets == "all":
        return chunk_ranges(lo, hi, max_len + 1, min_len=2, max_chunks_per_user=config.data.max_chunks_per_user)
    skip = 0 if config.model.empty_state else 1  # the first event has no history to predict it from
    per_user = np.maximum(hi - lo - skip, 0)  # (U,) training events that are targets
    user = np.repeat(np.arange(len(lo), dtype=np.int64), per_user)  # (S,)
    index = concat_aranges(lo + skip, per_user)  # (S,) CSR row of each sample's target
    return history_windows(store.offsets, user, index, max_len + 1, include_target=True)  # lo = user's first row


def fit_and_restore_best(
    model: torch.nn.Module,
    task: Task,
    batches: ChunkBatches,
    config: RunConfig,
    run_dir: Path,
    evaluate: Callable[[torch.nn.Module], dict[str, float]],
    device: torch.device,
    *,
    progress: bool,
) -> FitResult:
    """Train (validating, early-stopping, checkpointing), then load the best checkpoint's weights into ``model``."""
    result = fit(
        model,
        task,
        batches,
        optim=config.optim,
        train=config.train,
        run_dir=run_dir,
        evaluate=evaluate,
        stateful={"task": task},
        progress=progress,
    )
    best = run_dir / "checkpoints" / "best.pt"
    if best.exists():
        distributed.load_weights(best, model)  # also fills an FSDP-sharded model
    model.to(device)
    return result


def evaluate_roles(
    model: SequentialRecommender,
    store: SequenceStore,
    split: Split,
    config: RunConfig,
    roles: tuple[EvalRole, ...],
    device: torch.device,
    *,
    sampled: bool = True,
) -> dict[str, float]:
    """Next-item metrics on each role's targets, with the run's evaluation settings."""
    metrics: dict[str, float] = {}
    for role in roles:
        metrics.update(
            evaluate_next_item(
                model,
                store,
                split,
                role,
                max_len=config.data.max_len,
                ks=config.eval.ks,
                filter_history=config.eval.filter_history,
                batch_size=config.eval.batch_size,
                device=device,
                sampled_negatives=config.eval.sampled_negatives if sampled else None,
            )
        )
    return metrics


def _prepare_run_dir(run_dir: Path, config: RunConfig) -> None:
    """Check / write ``run.json`` and ``config.yaml``; under torchrun rank 0 does it, the others wait for it."""
    distributed.setup(config.train)
    distributed.main_only(lambda: _write_run_dir(run_dir, config))


def _write_run_dir(run_dir: Path, config: RunConfig) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    info = run_dir / "run.json"
    if info.exists():
        previous = json.loads(info.read_text())
        if previous.get("format") != RUN_FORMAT:
            raise ArgusrecError(
                f"{run_dir} was written by argusrec {previous.get('argusrec_version')} (run format "
                f"{previous.get('format')}); this is {__version__} (format {RUN_FORMAT}): use a new run directory"
            )
        old = (run_dir / "config.yaml").read_text() if (run_dir / "config.yaml").exists() else None
        if old is not None and old != config.to_yaml():
            raise ArgusrecError(
                f"{run_dir} holds a run with a different config; resume needs the same config (or a new directory)"
            )
    info.write_text(json.dumps({"format": RUN_FORMAT, "argusrec_version": __version__}, indent=2))
    (run_dir / "config.yaml").write_text(config.to_yaml())


def data_fingerprint(store: SequenceStore) -> str:
    """Short hash of the dataset's identity: manifest counts + the offsets and a sample of items."""
    h = hashlib.sha256()
    h.update(json.dumps({k: store.manifest.get(k) for k in ("name", "n_users", "n_items", "n_events")}).encode())
    h.update(np.ascontiguousarray(store.offsets).tobytes())
    step = max(1, store.n_events // 100_000)
    h.update(np.ascontiguousarray(store.items[::step]).tobytes())
    return h.hexdigest()[:16]


def model_card(
    config: RunConfig, store: SequenceStore, split: Split, model: torch.nn.Module, summary: dict, device: torch.device
) -> str:
    total, non_embedding = count_parameters(model)
    m = summary["metrics"]
    rows = "\n".join(f"| {k} | {v:.4f} |" for k, v in m.items() if isinstance(v, float))
    base = "\n".join(f"| {k} | {v:.4f} |" for k, v in summary["popularity_baseline"].items())
    return f"""# Model card: {config.name}

- **architecture**: {config.model.kind}, {config.model.layers} layers, {config.model.heads} heads,
  width {config.model.dim}, item embedding {config.model.item_embedding}, normalised vectors: {config.model.normalize}
- **parameters**: {total:,} in all, {non_embedding:,} excluding embeddings
- **data**: {store.manifest.get("name")} at `{config.data.path}` — {store.n_users:,} users, {store.n_items:,} items,
  {store.n_events:,} events; fingerprint `{data_fingerprint(store)}`
- **protocol**: {config.data.split} ({json.dumps(split.summary())}), history length {config.data.max_len},
  full-catalog ranking, history items {"removed" if config.eval.filter_history else "kept"}, pessimistic ties;
  model selected on validation `{config.train.monitor}` only
- **training**: {config.loss.kind} ({config.loss.uniform_negatives} uniform negatives per
  {config.loss.uniform_sharing}, in-batch {config.loss.in_batch_negatives}, logQ {config.loss.logq}, temperature
  {config.loss.temperature}), AdamW lr {config.optim.lr}; best epoch {summary["best_epoch"]} of
  {summary["epochs_run"]}, {summary["steps"]} steps, {summary["train_seconds"]:.1f} s,
  {m.get("events_per_s", float("nan")):,.0f} training targets/s
- **hardware**: {device} ({platform.processor() or platform.machine()}, torch {torch.__version__});
  argusrec {__version__}

| metric | value |
|---|---|
{rows}

Most-popular baseline on the same test targets:

| metric | value |
|---|---|
{base}
"""
