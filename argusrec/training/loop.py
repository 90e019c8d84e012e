"""The generic training loop: any model, any loss (a :class:`Task`), resumable to the bit.

``fit`` runs epochs over a :class:`~argusrec.data.batching.ChunkBatches` (anything with ``len()`` and
``epoch(epoch, start_batch)``), steps AdamW with the configured schedule and clipping, evaluates every
``train.eval_every`` epochs, keeps ``checkpoints/best.pt`` and stops early, and writes
``checkpoints/last.pt`` so that a crashed or stopped run continues exactly where it was:

- at the end of every epoch (after its evaluation), when ``train.max_steps`` stops the run, and
  mid-epoch every ``checkpoint_every_steps`` steps and/or every ``checkpoint_every_seconds`` seconds
  (default 15 minutes: one checkpoint costs a write of the weights and two Adam moments, negligible
  against 15 minutes of training, and it bounds the work a crash loses on long epochs);
- the checkpoint holds the model, optimizer, scheduler, every RNG state, the position in the epoch's
  batch order and the loss-logging window, so resuming replays nothing and skips nothing: the losses
  and final weights are bit-identical to an uninterrupted run (on the same device and software).

Epochs are 0-based everywhere (``metrics.csv``, ``FitResult.best_epoch``, checkpoints), like
``ChunkBatches.epoch``. The final epoch is always evaluated, whatever ``eval_every`` says, so that
``best.pt`` considers the end of training. A run stopped by ``max_steps`` in the middle of an epoch is
not evaluated (call ``evaluate`` yourself on smoke runs). The lr schedule spans
``train.epochs x len(batches)`` steps; ``max_steps`` and early stopping cut it short without
reshaping it, so a run resumed with a larger ``max_steps`` follows the same lr curve.

With ``train.ema_decay`` (single process only) an exponential moving average of the weights
(:mod:`argusrec.training.averaging`) is updated after every step: evaluations and ``best.pt`` use it, ``fit``
ends with the model holding it, and ``last.pt`` carries it beside the raw weights the optimizer continues from.

Under ``torchrun`` (``train.strategy`` ddp / fsdp, see :mod:`argusrec.training.distributed` and
docs/distributed.md) every rank runs ``fit``: each takes a disjoint, equally long share of every epoch's batches
(:class:`~argusrec.training.distributed.ShardedBatches`: the last ``len(batches) % world_size`` batches of
each epoch's order are skipped), gradients are averaged across ranks, logged losses and targets/s are global,
evaluation runs on every rank with rank 0's metrics deciding, and only rank 0 writes logs and checkpoints.
DDP checkpoints are the usual ``last.pt`` / ``best.pt`` (the plain model's weights: they load in one process);
FSDP writes ``checkpoints/last.dcp/`` (sharded, ``torch.distributed.checkpoint``) and a gathered ``best.pt``.
Both keep every rank's RNG states, so a resumed distributed run is exact like a single-process one (on the
same number of processes).
"""

from __future__ import annotations

import contextlib
import logging
import math
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from argusrec.config import OptimConfig, TrainConfig
from argusrec.errors import ArgusrecError
from argusrec.training import distributed
from argusrec.training.averaging import WeightAverage
from argusrec.training.checkpoint import load_checkpoint, make_checkpoint, save_checkpoint
from argusrec.training.device import (
    autocast,
    release_freed_memory,
    resolve_device,
    rng_state,
    seed_everything,
    set_rng_state,
    to_device,
)
from argusrec.training.logs import RunLogs
from argusrec.training.optim import build_optimizer, build_scheduler, clip_gradients

log = logging.getLogger(__name__)

CHECKPOINT_DIR = "checkpoints"
LAST = "last.pt"
BEST = "best.pt"
#: FSDP runs resume from this distributed-checkpoint directory (next to ``last.pt``) instead of ``last.pt``.
LAST_DCP = "last.dcp"
#: Settings that may change between a run and its resumption without breaking exactness.
_FREE_TO_CHANGE = {
    "max_steps",
    "log_every",
    "num_threads",
    "compile",
    "device",
    "patience",
    "epochs",
    "strategy",
    "activation_checkpointing",
}


class Batches(Protocol):
    """What ``fit`` needs from a batch source (:class:`~argusrec.data.batching.ChunkBatches` is one)."""

    def __len__(self) -> int: ...

    def epoch(self, epoch: int, start_batch: int = 0) -> Iterator[dict[str, np.ndarray]]: ...


@runtime_checkable
class Task(Protocol):
    """A training objective: the loss of one batch."""

    def loss(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int | torch.Tensor]:
        """Scalar loss to minimise, and the number of supervised targets in the batch (for targets/s).

        The count may be a 0-d tensor on the device: it is only read back when a log line is written,
        so returning ``mask.sum()`` costs no GPU synchronisation per step.
        """
        ...


@dataclass
class FitResult:
    """What a ``fit`` call achieved; counts and times are totals over the run including earlier resumes."""

    best_metric: float | None
    best_epoch: int | None
    epochs_run: int
    steps: int
    seconds: float
    targets_per_s: float
    history: list[dict[str, float]]
    stopped_early: bool
    last_checkpoint: Path | None = None
    best_checkpoint: Path | None = None

    def progress(self) -> dict[str, Any]:
        """The run-summary keys every recipe reports: ``best_epoch``, ``epochs_run``, ``steps``, ``stopped_early``,
        ``train_seconds``."""
        return {
            "best_epoch": self.best_epoch,
            "epochs_run": self.epochs_run,
            "steps": self.steps,
            "stopped_early": self.stopped_early,
            "train_seconds": self.seconds,
        }


@dataclass
class _Window:
    """Accumulators between two loss log lines (kept in the checkpoint so resumed log lines are exact)."""

    loss_sum: torch.Tensor | None = None
    grad_norm_sum: torch.Tensor | None = None
    count: int = 0
    targets: int | torch.Tensor = 0
    events: int = 0
    seconds: float = 0.0
    lr: float = float("nan")  # the lr of the latest update (a Python float: reading it costs no sync)

    def add(self, loss: torch.Tensor, targets: int | torch.Tensor, events: int, norm: torch.Tensor | None) -> None:
        # Summed on the device: reading the loss every step would force a GPU sync per step.
        loss = loss.detach().float()
        self.loss_sum = loss if self.loss_sum is None else self.loss_sum + loss
        if norm is not None:
            norm = norm.detach().float()
            self.grad_norm_sum = norm if self.grad_norm_sum is None else self.grad_norm_sum + norm
        self.count += 1
        self.targets = self.targets + (targets.detach() if isinstance(targets, torch.Tensor) else int(targets))
        self.events += events

    def state(self) -> dict[str, Any]:
        return {
            "loss_sum": None if self.loss_sum is None else self.loss_sum.cpu(),
            "grad_norm_sum": None if self.grad_norm_sum is None else self.grad_norm_sum.cpu(),
            "count": self.count,
            "targets": int(self.targets),
            "events": self.events,
            "seconds": self.seconds,
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any], device: torch.device) -> _Window:
        def move(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t.to(device)

        return cls(
            loss_sum=move(state["loss_sum"]),
            grad_norm_sum=move(state["grad_norm_sum"]),
            count=int(state["count"]),
            targets=int(state["targets"]),
            events=int(state["events"]),
            seconds=float(state["seconds"]),
        )


@dataclass
class _Progress:
    """Where the run is; saved as the checkpoint's ``progress``."""

    epoch: int = 0  # the epoch being run (0-based); == train.epochs when done
    batch: int = 0  # batches of ``epoch`` already done
    step: int = 0  # optimizer steps done
    batches_per_epoch: int = 0
    best_metric: float | None = None
    best_epoch: int | None = None
    bad_evals: int = 0  # evaluations since the last improvement
    stopped_early: bool = False
    seconds: float = 0.0  # wall time of all fit calls of this run
    train_seconds: float = 0.0  # time spent in training steps (throughput denominator)
    targets: int = 0
    events: int = 0
    window: dict[str, Any] = field(default_factory=dict)


def fit(
    model: nn.Module,
    task: Task,
    batches: Batches,
    *,
    optim: OptimConfig,
    train: TrainConfig,
    run_dir: str | Path,
    evaluate: Callable[[nn.Module], dict[str, float]] | None = None,
    stateful: dict[str, Any] | None = None,
    resume: bool = True,
    progress: bool = True,
    checkpoint_every_steps: int | None = None,
    checkpoint_every_seconds: float | None = 900.0,
    tensorboard: bool = True,
) -> FitResult:
    """Train ``model`` on ``task`` over ``batches``; see the module doc for the checkpoint policy.

    Args:
        model: any module; moved to the training device. Seed before building it: ``fit`` seeds
            python/numpy/torch from ``train.seed`` only at the start of a fresh run.
        task: computes each batch's loss and target count.
        batches: ``len()`` batches per epoch; ``epoch(e, start_batch)`` yields numpy dicts,
            deterministically per ``(seed, e)``, which become tensors on the device.
        optim: AdamW, schedule and clipping settings.
        train: epochs, device, bf16, compile, threads, seed, evaluation cadence, early stopping, ...
        run_dir: receives ``checkpoints/{last,best}.pt``, ``train_log.csv``, ``metrics.csv`` and
            ``tensorboard/``.
        evaluate: ``evaluate(model) -> {name: value}``, called in eval mode under ``no_grad`` on the
            uncompiled model; must contain ``train.monitor`` (better = ``train.monitor_mode``). None: no
            evaluation, no ``best.pt``, no early stopping.
        stateful: extra objects with ``state_dict()`` / ``load_state_dict()`` (negative samplers,
            curricula) saved in and restored from ``last.pt``; their states must hold only tensors
            and plain values.
        resume: continue from ``checkpoints/last.pt`` when it exists. A fresh start (False, or no
            ``last.pt``) discards the old ``last.pt``/``best.pt`` and logs of ``run_dir``. Settings
            that differ from the checkpoint's (other than max_steps, epochs, patience, log_every,
            device, threads, compile) are logged as a warning; the lr schedule stays the checkpoint's.
        progress: show a tqdm bar (also needs stderr to be a terminal).
        checkpoint_every_steps: also write ``last.pt`` every this many steps within an epoch.
        checkpoint_every_seconds: also write ``last.pt`` when this long has passed since the last one.
        tensorboard: write TensorBoard events when the ``tensorboard`` package is installed.

    Raises:
        ArgusrecError: a refused checkpoint, an empty batch source, a missing monitor metric, a
            non-finite loss, or a resume whose data or stateful objects changed.
    """
    run_dir = Path(run_dir)
    ckpt_dir = run_dir / CHECKPOINT_DIR
    last_path, best_path = ckpt_dir / LAST, ckpt_dir / BEST
    stateful = dict(stateful or {})
    steps_per_epoch = len(batches)
    if steps_per_epoch < 1:
        raise ArgusrecError("no training batches: the batch source is empty (no chunks, or drop_last with too few)")
    if checkpoint_every_steps is not None and checkpoint_every_steps < 1:
        raise ValueError(f"checkpoint_every_steps must be >= 1 or None, got {checkpoint_every_steps}")

    if train.num_threads is not None:
        torch.set_num_threads(train.num_threads)
    ctx = distributed.setup(train)
    if ctx.distributed and train.ema_decay is not None:
        raise ArgusrecError(
            f"train.ema_decay={train.ema_decay}: the weight average is kept in single-process runs only, not under "
            f"{ctx.strategy} with {ctx.world_size} processes; set train.ema_decay=null"
        )
    par: distributed.Parallel | None = None
    if ctx.distributed:
        device = ctx.device
        model.to(device)
        par = distributed.parallelize(model, ctx)  # before the optimizer: FSDP replaces the parameters
        batches = distributed.ShardedBatches(batches, ctx.rank, ctx.world_size)
        steps_per_epoch = len(batches)
        if steps_per_epoch < 1:
            raise ArgusrecError(
                f"{len(batches.source)} training batches cannot be shared by {ctx.world_size} processes: "
                "use fewer processes or a smaller train.batch_size"
            )
    else:
        device = resolve_device(train.device)
        model.to(device)
    fsdp = par is not None and par.fsdp
    dcp_path = ckpt_dir / LAST_DCP
    optimizer = build_optimizer(model, optim)
    scheduler = build_scheduler(optimizer, optim, train.epochs * steps_per_epoch)
    config = {"optim": optim.model_dump(mode="json"), "train": train.model_dump(mode="json")}

    state = _Progress(batches_per_epoch=steps_per_epoch)
    history: list[dict[str, float]] = []
    average: WeightAverage | None = None  # train.ema_decay: built below, from the resumed or initial weights
    source = (
        _resume_source(resume, fsdp, last_path, dcp_path)
        if not ctx.distributed
        else distributed.main_only(lambda: _resume_source(resume, fsdp, last_path, dcp_path))
    )
    resumed = source is not None
    if source is not None:
        if source == last_path:
            ckpt = load_checkpoint(last_path, model=model, kind="last")
            ckpt = _rank_share(ckpt, last_path, ctx)
            state, history = _restore(ckpt, last_path, model, optimizer, scheduler, stateful, config, steps_per_epoch)
        else:
            assert par is not None
            ckpt = _rank_share(distributed.load_dcp_meta(source), source, ctx)
            state, history = _restore(
                ckpt, source, model, optimizer, scheduler, stateful, config, steps_per_epoch,
                load_states=lambda: par.load_sharded(optimizer, source),
            )  # fmt: skip
        if train.ema_decay is not None and ckpt.get("average") is not None:
            average = WeightAverage(model, train.ema_decay)
            average.load_state_dict(ckpt["average"])
        elif train.ema_decay is not None:
            log.warning(
                "%s holds no weight average: the average starts from the resumed weights, and the best score so far "
                "(and best.pt) came from the raw weights it is now compared with",
                source,
            )
        elif ckpt.get("average") is not None:
            log.warning(
                "%s holds a weight average and train.ema_decay is now off: the average is dropped, the best score so "
                "far (and best.pt) came from averaged weights the raw ones are now compared with",
                source,
            )
        # A larger patience on resume lets an early-stopped run continue; a smaller one stops it.
        state.stopped_early = train.patience is not None and state.bad_evals >= train.patience
        log.info("resuming %s at epoch %d, batch %d, step %d", source, state.epoch, state.batch, state.step)
    else:
        if ctx.is_main:
            for stale in (last_path, best_path):  # leftovers of an earlier run would be mistaken for this one's
                stale.unlink(missing_ok=True)
            distributed.remove_dcp(dcp_path)
        seed_everything(train.seed + ctx.rank)  # ranks draw different dropout masks
    if train.ema_decay is not None and average is None:
        average = WeightAverage(model, train.ema_decay)
    window = _Window.from_state(state.window, device) if state.window else _Window()

    logs: RunLogs | _NoLogs = (
        RunLogs(run_dir, resume_step=state.step if resumed else None, resume_epoch=state.epoch, tensorboard=tensorboard)
        if ctx.is_main
        else _NoLogs()
    )
    set_activation_checkpointing(model, train.activation_checkpointing)
    # The compiled wrapper runs the forward passes; ``model`` keeps the state_dict keys checkpoints use.
    forward_model: nn.Module = torch.compile(model) if train.compile else model  # type: ignore[assignment]
    max_steps = train.max_steps
    total = train.epochs * steps_per_epoch if max_steps is None else min(max_steps, train.epochs * steps_per_epoch)
    bar = tqdm(
        total=total,
        initial=min(state.step, total),
        disable=not (progress and ctx.is_main and sys.stderr.isatty()),
        unit="step",
        dynamic_ncols=True,
    )
    clock = time.perf_counter()
    seconds_before = state.seconds
    last_save = clock

    def reached_max() -> bool:
        return max_steps is not None and state.step >= max_steps

    def time_to_save(log_now: bool) -> bool:
        assert checkpoint_every_seconds is not None
        due = time.perf_counter() - last_save >= checkpoint_every_seconds
        if not ctx.distributed:
            return due
        # Ranks' clocks differ and saving is collective: decide together, once per log interval.
        return log_now and distributed.all_reduce_sum([float(due)])[0] > 0

    def save_last() -> None:
        nonlocal last_save
        state.seconds = seconds_before + time.perf_counter() - clock
        state.window = window.state()
        if par is not None:
            _save_distributed_last()
        else:
            save_checkpoint(last_path, _last_checkpoint(rng_state()))
        last_save = time.perf_counter()

    def _last_checkpoint(rng: dict) -> dict:
        """The single-file ``last`` checkpoint (weights, optimizer, scheduler, progress, average) with ``rng``."""
        ckpt = make_checkpoint(
            "last",
            model=model,
            progress=asdict(state),
            history=history,
            optimizer=optimizer,
            scheduler=scheduler,
            rng=rng,
            stateful=stateful,
            config=config,
        )
        if average is not None:
            ckpt["average"] = average.state_dict()
        return ckpt

    def _save_distributed_last() -> None:
        """Every rank's RNG / stateful / window state; DDP: rank 0 writes last.pt; FSDP: all write last.dcp."""
        assert par is not None
        ranks = distributed.rank_states(rng_state(), stateful, window.state())
        info = {"strategy": ctx.strategy, "world_size": ctx.world_size, "ranks": ranks}
        if par.fsdp:
            meta = {
                "kind": "last",
                "progress": asdict(state),
                "history": [dict(h) for h in history],
                "scheduler": scheduler.state_dict(),
                "config": config,
                "rng": ranks[0]["rng"],
                "stateful": ranks[0]["stateful"],
                "distributed": info,
            }
            distributed.save_dcp(par.sharded_state(optimizer), meta, dcp_path)
        elif ctx.is_main:
            ckpt = _last_checkpoint(ranks[0]["rng"])
            ckpt["distributed"] = info
            save_checkpoint(last_path, ckpt)

    def write_log_line() -> None:
        nonlocal window
        assert window.loss_sum is not None
        loss_sum, count = window.loss_sum.item(), window.count  # the one GPU sync per log interval
        targets, events = int(window.targets), window.events
        if ctx.distributed:  # global: the mean loss over every rank's steps, every rank's targets and events
            loss_sum, n, t, e = distributed.all_reduce_sum([loss_sum, count, targets, events])
            count, targets, events = int(n), int(t), int(e)
        loss = loss_sum / count
        if not math.isfinite(loss):
            raise ArgusrecError(
                f"training loss is {loss} at step {state.step} (epoch {state.epoch}): lower optim.lr, turn on "
                f"optim.grad_clip or check the data; {dcp_path if fsdp else last_path} holds the last good state"
            )
        state.targets += targets
        state.events += events
        secs = max(window.seconds, 1e-9)
        row = {
            "step": state.step,
            "epoch": state.epoch,
            "loss": loss,
            "lr": window.lr,
            "grad_norm": None if window.grad_norm_sum is None else window.grad_norm_sum.item() / window.count,
            "targets_per_s": targets / secs,
            "events_per_s": events / secs,
            "seconds": seconds_before + time.perf_counter() - clock,
        }
        logs.log_train(row)
        bar.set_postfix(loss=f"{loss:.4f}", lr=f"{row['lr']:.2e}", refresh=False)
        window = _Window()

    def weights_in_use() -> contextlib.AbstractContextManager[None]:
        """The weights validated and kept as best.pt: the average with train.ema_decay, else the raw ones."""
        return average.applied(model) if average is not None else contextlib.nullcontext()

    def end_of_epoch() -> None:
        epoch = state.epoch
        due = (epoch + 1) % train.eval_every == 0 or epoch + 1 == train.epochs
        if evaluate is not None and due:
            if par is None:
                with weights_in_use():
                    metrics = _run_evaluate(evaluate, model)
            else:  # every rank evaluates (FSDP gathers weights collectively); rank 0's metrics decide everywhere
                metrics = par.evaluate(lambda m: _run_evaluate(evaluate, m))
            logs.log_metrics(epoch, state.step, metrics)
            history.append({"epoch": epoch, "step": state.step, **metrics})
            if train.monitor not in metrics:
                raise ArgusrecError(
                    f"evaluate() returned no {train.monitor!r} (train.monitor); it returned {sorted(metrics)}"
                )
            value = metrics[train.monitor]
            log.info("epoch %d step %d: %s", epoch, state.step, ", ".join(f"{k}={v:.5g}" for k, v in metrics.items()))
            improved = state.best_metric is None or (
                value > state.best_metric if train.monitor_mode == "max" else value < state.best_metric
            )
            if math.isfinite(value) and improved:
                state.best_metric, state.best_epoch, state.bad_evals = value, epoch, 0
                best = asdict(state) | {"epoch": epoch + 1, "batch": 0, "window": {}}
                if par is None:
                    with weights_in_use():
                        save_checkpoint(
                            best_path,
                            make_checkpoint("best", model=model, progress=best, history=history, config=config),
                        )
                else:
                    weights = par.full_state_dict()  # FSDP: gathered to rank 0 (collective); plain keys
                    if ctx.is_main:
                        save_checkpoint(
                            best_path,
                            make_checkpoint(
                                "best", model=model, model_state=weights, progress=best, history=history, config=config
                            ),
                        )
            else:
                state.bad_evals += 1
                if train.patience is not None and state.bad_evals >= train.patience:
                    state.stopped_early = True
                    log.info(
                        "early stopping after epoch %d: %s has not improved on %.5g (epoch %s) for %d evaluations",
                        epoch, train.monitor, state.best_metric or float("nan"), state.best_epoch, state.bad_evals,
                    )  # fmt: skip
        state.epoch += 1
        state.batch = 0
        save_last()

    trim_every = train.release_memory_every if device.type == "cpu" else None  # the host heap (config doc)
    try:
        while state.epoch < train.epochs and not state.stopped_early and not reached_max():
            model.train()
            for np_batch in batches.epoch(state.epoch, state.batch):
                started = time.perf_counter()
                batch = to_device(np_batch, device)
                mask = np_batch.get("mask")
                events = int(np.count_nonzero(mask)) if mask is not None else 0  # counted on the host: no sync
                with autocast(device, train.bf16):
                    if par is None:
                        loss, n_targets = task.loss(forward_model, batch)
                    else:  # inside the DDP / FSDP forward: every parameter the loss reads is gathered / reduced
                        loss, n_targets = par(task.loss, forward_model, batch)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if par is None:
                    norm = clip_gradients(model.parameters(), optim.grad_clip)
                else:
                    par.after_backward()
                    norm = par.clip(optim.grad_clip)
                window.lr = float(optimizer.param_groups[0]["lr"])  # the lr this update uses, for the log
                optimizer.step()
                scheduler.step()
                if average is not None:
                    average.update(model)
                state.step += 1
                state.batch += 1
                window.add(loss, n_targets, events, norm)
                log_now = state.step % train.log_every == 0
                if log_now and device.type == "cuda":
                    # Kernels run asynchronously: wait for them so that the timed interval covers them.
                    torch.cuda.synchronize(device)
                if trim_every is not None and state.step % trim_every == 0:
                    release_freed_memory()  # counted in the step's time: it is part of the cost of training
                elapsed = time.perf_counter() - started
                window.seconds += elapsed
                state.train_seconds += elapsed
                if log_now:
                    write_log_line()
                bar.update(1)
                if reached_max():
                    break
                if state.batch < steps_per_epoch and (
                    (checkpoint_every_steps is not None and state.step % checkpoint_every_steps == 0)
                    or (checkpoint_every_seconds is not None and time_to_save(log_now))
                ):
                    save_last()
            if state.batch >= steps_per_epoch:
                end_of_epoch()
            else:  # max_steps stopped the run mid-epoch: keep the exact position for a resume
                save_last()
                break
        state.seconds = seconds_before + time.perf_counter() - clock
        if average is not None:
            average.copy_to(model)  # the run's result is the average (last.pt keeps the raw weights to resume)
        unlogged = int(window.targets)  # the targets of the last, not yet logged window count too
        if ctx.distributed:
            unlogged = int(distributed.all_reduce_sum([unlogged])[0])
            distributed.barrier()  # rank 0's files are complete before any rank returns and reads them
    finally:
        bar.close()
        logs.close()

    last_file = dcp_path if fsdp else last_path
    return FitResult(
        best_metric=state.best_metric,
        best_epoch=state.best_epoch,
        epochs_run=state.epoch,
        steps=state.step,
        seconds=state.seconds,
        targets_per_s=(state.targets + unlogged) / state.train_seconds if state.train_seconds > 0 else 0.0,
        history=[dict(h) for h in history],
        stopped_early=state.stopped_early,
        last_checkpoint=last_file if last_file.exists() else None,
        best_checkpoint=best_path if best_path.is_file() else None,
    )


class _NoLogs:
    """The logs of ranks other than 0: they write nothing."""

    def log_train(self, row: Mapping[str, Any]) -> None:
        pass

    def log_metrics(self, epoch: int, step: int, metrics: Mapping[str, float]) -> None:
        pass

    def close(self) -> None:
        pass


def _resume_source(resume: bool, fsdp: bool, last_path: Path, dcp_path: Path) -> Path | None:
    """The checkpoint this run continues from (``last.pt``, or ``last.dcp`` for FSDP), None for a fresh start.

    Raises:
        ArgusrecError: only the other kind exists (written with another ``train.strategy``).
    """
    if not resume:
        return None
    found_dcp = distributed.dcp_location(dcp_path)
    if fsdp:
        if found_dcp is None and last_path.is_file():
            raise ArgusrecError(
                f"{last_path} was written by a single-process or DDP run, and train.strategy=fsdp resumes from "
                f"{dcp_path}: resume with the strategy that wrote it, or use a new run directory"
            )
        return found_dcp
    if last_path.is_file():
        return last_path
    if found_dcp is not None:
        raise ArgusrecError(
            f"{found_dcp} was written by an FSDP run (train.strategy=fsdp): resume it with the same strategy and "
            "number of processes, or use a new run directory"
        )
    return None


def _rank_share(ckpt: dict[str, Any], path: Path, ctx: distributed.DistContext) -> dict[str, Any]:
    """``ckpt`` with this rank's RNG, stateful and log-window states; refuses another world size."""
    info = ckpt.get("distributed")
    saved_world = int(info["world_size"]) if info else 1
    if saved_world != ctx.world_size:
        raise ArgusrecError(
            f"{path}: written by a run of {saved_world} process(es), this run has {ctx.world_size}: each process's "
            "share of the batches and its RNG states differ, so it cannot continue exactly; resume with "
            f"{saved_world} process(es) or use a new run directory"
        )
    if not info:
        return ckpt
    mine = info["ranks"][ctx.rank]
    progress = dict(ckpt["progress"]) | {"window": mine["window"]}
    return {**ckpt, "rng": mine["rng"], "stateful": mine["stateful"], "progress": progress}


def _run_evaluate(evaluate: Callable[[nn.Module], dict[str, float]], model: nn.Module) -> dict[str, float]:
    """``evaluate(model)`` in eval mode without gradients; the model goes back to train mode after."""
    model.eval()
    try:
        with torch.no_grad():
            metrics = evaluate(model)
    finally:
        model.train()
    return {str(k): float(v) for k, v in metrics.items()}


def _restore(
    ckpt: dict[str, Any],
    path: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    stateful: dict[str, Any],
    config: dict[str, Any],
    steps_per_epoch: int,
    load_states: Callable[[], None] | None = None,
) -> tuple[_Progress, list[dict[str, float]]]:
    """Check that ``ckpt`` fits this run, then load every state from it (RNG last).

    ``load_states`` loads model and optimizer instead of ``ckpt["model"]`` / ``ckpt["optimizer"]`` (FSDP shards).
    """
    saved = dict(ckpt["progress"])
    known = {f for f in _Progress.__dataclass_fields__}
    state = _Progress(**{k: v for k, v in saved.items() if k in known})
    if state.batches_per_epoch != steps_per_epoch:
        raise ArgusrecError(
            f"{path}: the checkpoint was trained with {state.batches_per_epoch} batches per epoch, the data now "
            f"gives {steps_per_epoch}: the data or batch size changed, so the run cannot continue exactly; "
            "restore them, or pass resume=False to start over"
        )
    saved_names, names = set(ckpt["stateful"]), set(stateful)
    if saved_names != names:
        raise ArgusrecError(
            f"{path}: the checkpoint holds stateful objects {sorted(saved_names)}, this run passes {sorted(names)}; "
            "pass the same objects to resume, or resume=False to start over"
        )
    changed = sorted(
        f"{section}.{k}: {ckpt['config'].get(section, {}).get(k)!r} -> {v!r}"
        for section, values in config.items()
        for k, v in values.items()
        if k not in _FREE_TO_CHANGE and ckpt["config"].get(section, {}).get(k, v) != v
    )
    if changed:
        log.warning(
            "resuming %s with changed settings (%s); the lr schedule and progress come from the checkpoint",
            path,
            "; ".join(changed),
        )
    if load_states is not None:
        try:
            load_states()
        except (ValueError, KeyError, RuntimeError) as e:
            raise ArgusrecError(
                f"{path}: the sharded model / optimizer state does not fit this model ({type(e).__name__}: {e}); "
                "was the model config, optim.weight_decay or the set of trainable parameters changed?"
            ) from None
    else:
        try:
            optimizer.load_state_dict(ckpt["optimizer"])
        except (ValueError, KeyError) as e:
            raise ArgusrecError(
                f"{path}: the optimizer state does not fit this model ({e}); was optim.weight_decay switched "
                "between zero and non-zero, or parameters frozen / unfrozen?"
            ) from None
        model.load_state_dict(ckpt["model"])
    if ckpt.get("scheduler") is not None:
        scheduler.load_state_dict(ckpt["scheduler"])
    for name, obj in stateful.items():
        obj.load_state_dict(ckpt["stateful"][name])
    # Last: nothing above may draw random numbers after the generators are put back.
    set_rng_state(ckpt["rng"])
    return state, [dict(h) for h in ckpt.get("history", [])]


def set_activation_checkpointing(model: nn.Module, on: bool) -> int:
    """Switch activation checkpointing on every encoder of ``model`` that supports it (modules with an
    ``activation_checkpointing`` attribute, e.g. :class:`~argusrec.nn.transformer.TransformerEncoder`); returns how
    many were set. With ``on`` and none found this is an error: the setting would silently do nothing."""
    found = [m for m in model.modules() if hasattr(m, "activation_checkpointing")]
    for m in found:
        setattr(m, "activation_checkpointing", on)  # noqa: B010 - modules of several classes
    if on and not found:
        raise ArgusrecError(f"train.activation_checkpointing: {type(model).__name__} has no encoder that supports it")
    return len(found)
