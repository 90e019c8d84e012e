"""fit(): exact resume (end of epoch, mid-epoch, after a crash), early stopping, max_steps, logs."""

from __future__ import annotations

import csv
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from argusrec.config import OptimConfig, TrainConfig
from argusrec.errors import ArgusrecError
from argusrec.training import BEST, CHECKPOINT_DIR, LAST, FitResult, fit, load_checkpoint, load_weights
from argusrec.training import logs as logs_module
from argusrec.training.logs import METRICS_LOG, TRAIN_LOG, RunLogs
from tests.training import NextItemTask, Sampler, TinyModel, params_of, toy_batches

STEPS_PER_EPOCH = len(toy_batches())  # 5
OPTIM = OptimConfig(lr=2e-2, weight_decay=0.01, schedule="cosine", warmup_steps=3, grad_clip=0.5)


def train_cfg(**kw: Any) -> TrainConfig:
    base: dict[str, Any] = {
        "epochs": 3,
        "seed": 7,
        "device": "cpu",
        "patience": None,
        "monitor": "valid/score",
        "log_every": 1,
    }
    return TrainConfig(**(base | kw))


def score(model: nn.Module) -> dict[str, float]:
    """A metric that depends on the weights (and draws from torch's RNG, as real evaluators may)."""
    assert not model.training and not torch.is_grad_enabled()
    noise = float(torch.rand(()))
    return {"valid/score": float(model.out.weight.sum()), "valid/noise": noise}


def run(
    run_dir: Path,
    *,
    init_seed: int = 123,
    crash_at_call: int | None = None,
    evaluate: Callable[[nn.Module], dict[str, float]] | None = score,
    sampler_seed: int = 1,
    **kw: Any,
) -> tuple[TinyModel, FitResult]:
    """One fit call on a freshly built model (a new process after a crash would also rebuild it)."""
    torch.manual_seed(init_seed)
    model = TinyModel()
    sampler = Sampler(sampler_seed)
    extra = {k: kw.pop(k) for k in ("checkpoint_every_steps", "resume") if k in kw}
    result = fit(
        model,
        NextItemTask(sampler, crash_at_call),
        toy_batches(),
        optim=OPTIM,
        train=train_cfg(**kw),
        run_dir=run_dir,
        evaluate=evaluate,
        stateful={"sampler": sampler},
        progress=False,
        tensorboard=False,
        **extra,
    )
    return model, result


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def assert_same_run(
    a_dir: Path, a: tuple[TinyModel, FitResult], b_dir: Path, b: tuple[TinyModel, FitResult], every: int = 1
) -> None:
    """Bit-identical weights, per-step losses and lrs, metrics and history."""
    (ma, ra), (mb, rb) = a, b
    pa, pb = params_of(ma), params_of(mb)
    assert pa.keys() == pb.keys()
    for k in pa:
        assert torch.equal(pa[k], pb[k]), f"parameter {k} differs"
    la, lb = read_csv(a_dir / TRAIN_LOG), read_csv(b_dir / TRAIN_LOG)
    # Every logged step exactly once, in order.
    assert [r["step"] for r in lb] == [str(s) for s in range(every, ra.steps + 1, every)]
    assert [(r["step"], r["epoch"], r["loss"], r["lr"], r["grad_norm"]) for r in la] == [
        (r["step"], r["epoch"], r["loss"], r["lr"], r["grad_norm"]) for r in lb
    ]
    drop = ("seconds",)
    assert [{k: v for k, v in r.items() if k not in drop} for r in read_csv(a_dir / METRICS_LOG)] == [
        {k: v for k, v in r.items() if k not in drop} for r in read_csv(b_dir / METRICS_LOG)
    ]
    assert ra.history == rb.history
    assert (ra.steps, ra.epochs_run, ra.best_metric, ra.best_epoch) == (
        rb.steps,
        rb.epochs_run,
        rb.best_metric,
        rb.best_epoch,
    )


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, tuple[TinyModel, FitResult]]:
    """The uninterrupted run, shared by the resume tests."""
    d = tmp_path_factory.mktemp("reference")
    return d, run(d)


@pytest.mark.parametrize("stop_at", [STEPS_PER_EPOCH, STEPS_PER_EPOCH + 2], ids=["end-of-epoch", "mid-epoch"])
def test_resume_after_max_steps_is_bit_identical(
    tmp_path: Path, reference: tuple[Path, tuple[TinyModel, FitResult]], stop_at: int
) -> None:
    ref_dir, ref = reference
    assert ref[1].steps == 3 * STEPS_PER_EPOCH and len(ref[1].history) == 3
    first = run(tmp_path, max_steps=stop_at)
    assert first[1].steps == stop_at
    progress = load_checkpoint(tmp_path / CHECKPOINT_DIR / LAST)["progress"]
    assert (progress["epoch"], progress["batch"]) == divmod(stop_at, STEPS_PER_EPOCH)
    # A new "process": different initial weights and sampler seed; all state must come from last.pt.
    resumed = run(tmp_path, init_seed=999, sampler_seed=42)
    assert_same_run(ref_dir, ref, tmp_path, resumed)


def test_resume_after_crash_replays_from_last_checkpoint(
    tmp_path: Path, reference: tuple[Path, tuple[TinyModel, FitResult]]
) -> None:
    ref_dir, ref = reference
    # Crash inside step 14 (epoch 2, batch 3); mid-epoch checkpoints every 4 steps → last.pt at step 12.
    with pytest.raises(RuntimeError, match="simulated crash"):
        run(tmp_path, crash_at_call=14, checkpoint_every_steps=4)
    steps_logged = [int(r["step"]) for r in read_csv(tmp_path / TRAIN_LOG)]
    assert steps_logged == list(range(1, 14))  # the crashed run logged step 13 after last.pt
    assert load_checkpoint(tmp_path / CHECKPOINT_DIR / LAST)["progress"]["step"] == 12
    resumed = run(tmp_path, init_seed=5, sampler_seed=6)
    assert_same_run(ref_dir, ref, tmp_path, resumed)  # no duplicated steps, identical values


def test_resume_inside_a_log_interval_keeps_the_logged_means(tmp_path: Path) -> None:
    """With log_every=4 a stop at step 6 splits the interval 5..8; its logged mean loss must not change."""
    ref_dir = tmp_path / "ref"
    ref = run(ref_dir, log_every=4)
    run(tmp_path / "split", log_every=4, max_steps=6)
    resumed = run(tmp_path / "split", log_every=4, init_seed=3)
    assert [int(r["step"]) for r in read_csv(ref_dir / TRAIN_LOG)] == [4, 8, 12]
    assert_same_run(ref_dir, ref, tmp_path / "split", resumed, every=4)


def test_max_steps_honoured_and_resume_is_idempotent(tmp_path: Path) -> None:
    _, result = run(tmp_path, max_steps=3, evaluate=None)
    assert result.steps == 3 and result.epochs_run == 0 and result.history == []
    assert [int(r["step"]) for r in read_csv(tmp_path / TRAIN_LOG)] == [1, 2, 3]
    model, again = run(tmp_path, max_steps=3, evaluate=None, init_seed=77)
    assert again.steps == 3  # nothing more to do: no step was taken
    assert [int(r["step"]) for r in read_csv(tmp_path / TRAIN_LOG)] == [1, 2, 3]
    saved = load_checkpoint(tmp_path / CHECKPOINT_DIR / LAST)["model"]
    assert all(torch.equal(saved[k], v) for k, v in model.state_dict().items())


def test_early_stopping_and_best_checkpoint(tmp_path: Path) -> None:
    values = iter([0.1, 0.5, 0.3, 0.2, 0.9, 1.0])
    snapshots: list[dict[str, torch.Tensor]] = []

    def evaluate(model: nn.Module) -> dict[str, float]:
        snapshots.append(params_of(model))
        return {"valid/score": next(values)}

    model, result = run(tmp_path, evaluate=evaluate, epochs=6, patience=2)
    assert result.stopped_early
    assert (result.best_metric, result.best_epoch, result.epochs_run) == (0.5, 1, 4)
    assert result.steps == 4 * STEPS_PER_EPOCH
    assert [h["valid/score"] for h in result.history] == [0.1, 0.5, 0.3, 0.2]
    assert [int(r["epoch"]) for r in read_csv(tmp_path / METRICS_LOG)] == [0, 1, 2, 3]
    assert result.best_checkpoint == tmp_path / CHECKPOINT_DIR / BEST
    best = TinyModel()
    progress = load_weights(result.best_checkpoint, best)
    assert progress["best_epoch"] == 1
    for k, v in best.state_dict().items():
        assert torch.equal(v, snapshots[1][k]), f"best.pt {k} is not epoch 1's"
    assert not torch.equal(best.out.weight, model.out.weight)  # the final weights moved on
    # Resuming a run that stopped early (same patience) trains no further.
    _, again = run(tmp_path, evaluate=evaluate, epochs=6, patience=2)
    assert again.steps == result.steps and again.stopped_early


def test_monitor_mode_min_keeps_the_lowest_loss(tmp_path: Path) -> None:
    values = iter([0.9, 0.4, 0.6, 0.7])
    _, result = run(
        tmp_path, evaluate=lambda m: {"valid/score": next(values)}, epochs=4, patience=2, monitor_mode="min"
    )
    assert (result.best_metric, result.best_epoch, result.epochs_run, result.stopped_early) == (0.4, 1, 4, True)


def test_eval_every_and_final_epoch(tmp_path: Path) -> None:
    _, result = run(tmp_path, epochs=3, eval_every=2)
    assert [h["epoch"] for h in result.history] == [1, 2]  # every 2nd epoch, and always the last


def test_monitor_missing_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ArgusrecError, match=r"no 'valid/score'.*\['valid/other'\]"):
        run(tmp_path, evaluate=lambda m: {"valid/other": 1.0})


def test_resume_refuses_changed_data_or_stateful(tmp_path: Path) -> None:
    run(tmp_path, max_steps=2)
    torch.manual_seed(0)
    with pytest.raises(ArgusrecError, match="batches per epoch"):
        fit(TinyModel(), NextItemTask(Sampler()), toy_batches(batch_size=3), optim=OPTIM, train=train_cfg(),
            run_dir=tmp_path, stateful={"sampler": Sampler()}, progress=False, tensorboard=False)  # fmt: skip
    with pytest.raises(ArgusrecError, match="stateful objects"):
        fit(TinyModel(), NextItemTask(Sampler()), toy_batches(), optim=OPTIM, train=train_cfg(),
            run_dir=tmp_path, progress=False, tensorboard=False)  # fmt: skip


def test_resume_with_changed_settings_warns(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    run(tmp_path, max_steps=2)
    with caplog.at_level(logging.WARNING, logger="argusrec.training.loop"):
        run(tmp_path, max_steps=3, seed=8)
    assert any("changed settings" in r.message and "train.seed: 7 -> 8" in r.message for r in caplog.records)


def test_fresh_start_discards_old_run(tmp_path: Path) -> None:
    run(tmp_path, max_steps=4)
    _, result = run(tmp_path, max_steps=2, resume=False)
    assert result.steps == 2
    assert [int(r["step"]) for r in read_csv(tmp_path / TRAIN_LOG)] == [1, 2]


def test_nan_loss_is_reported(tmp_path: Path) -> None:
    class NanTask:
        def loss(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
            return model.out.weight.sum() * float("nan"), 1

    with pytest.raises(ArgusrecError, match="training loss is nan at step 1"):
        fit(TinyModel(), NanTask(), toy_batches(), optim=OPTIM, train=train_cfg(), run_dir=tmp_path,
            progress=False, tensorboard=False)  # fmt: skip


def test_run_logs_drop_torn_rows_and_widen_header(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # makes `import tensorboard` fail
    monkeypatch.setattr(logs_module, "_said_no_tensorboard", False)
    with caplog.at_level(logging.INFO, logger=logs_module.__name__):
        logs = RunLogs(tmp_path)
        RunLogs(tmp_path / "other").close()
    assert logs.writer is None
    assert sum("tensorboard is not installed" in r.message for r in caplog.records) == 1  # said once
    for step in (1, 2, 3):
        logs.log_train({"step": step, "epoch": 0, "loss": 0.5 / step})
    logs.log_metrics(0, 3, {"valid/a": 1.0})
    logs.log_metrics(1, 6, {"valid/a": 2.0, "valid/b": 3.0})  # a new metric widens the header
    logs.close()
    assert [(r["epoch"], r["valid/a"], r["valid/b"]) for r in read_csv(tmp_path / METRICS_LOG)] == [
        ("0", "1.0", ""),
        ("1", "2.0", "3.0"),
    ]
    with open(tmp_path / TRAIN_LOG, "a") as f:
        f.write("4,0,0.12,,,,,1.2")  # a crash in the middle of a row: every cell there, but no newline
    resumed = RunLogs(tmp_path, resume_step=4, resume_epoch=1, tensorboard=False)
    resumed.log_train({"step": 5, "epoch": 0, "loss": 0.125})
    resumed.close()
    rows = read_csv(tmp_path / TRAIN_LOG)
    assert [(r["step"], r["loss"]) for r in rows] == [("1", "0.5"), ("2", "0.25"), ("3", str(0.5 / 3)), ("5", "0.125")]
    again = RunLogs(tmp_path, resume_step=2, resume_epoch=1, tensorboard=False)  # rows after step 2 go
    again.close()
    assert [r["step"] for r in read_csv(tmp_path / TRAIN_LOG)] == ["1", "2"]
    assert [r["epoch"] for r in read_csv(tmp_path / METRICS_LOG)] == ["0"]


def test_run_logs_write_tensorboard_scalars_and_a_resume_purges_the_later_ones(tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    def scalars(tag: str) -> list[tuple[int, float]]:
        acc = EventAccumulator(str(tmp_path / "tensorboard"))
        acc.Reload()
        return [(e.step, round(e.value, 6)) for e in acc.Scalars(tag)]

    logs = RunLogs(tmp_path)
    for step in (1, 2, 3):
        logs.log_train({"step": step, "epoch": 0, "loss": 1.0 / step})
    logs.log_metrics(0, 3, {"valid/NDCG@10": 0.25})
    logs.close()
    assert scalars("train/loss") == [(1, 1.0), (2, 0.5), (3, round(1 / 3, 6))]
    assert scalars("valid/NDCG@10") == [(3, 0.25)]
    resumed = RunLogs(tmp_path, resume_step=1, resume_epoch=0)  # steps after 1 are replayed: their events go
    resumed.log_train({"step": 2, "epoch": 0, "loss": 0.75})
    resumed.close()
    assert scalars("train/loss") == [(1, 1.0), (2, 0.75)]


def test_the_progress_bar_shows_on_a_terminal_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    def fit_with_bar(run_dir: Path) -> str:
        torch.manual_seed(123)
        fit(TinyModel(), NextItemTask(Sampler(1), None), toy_batches(), optim=OPTIM, train=train_cfg(max_steps=3),
            run_dir=run_dir, evaluate=score, progress=True, tensorboard=False)  # fmt: skip
        return capsys.readouterr().err

    assert "step/s" not in fit_with_bar(tmp_path / "a")  # stderr captured: not a terminal
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    err = fit_with_bar(tmp_path / "b")
    assert "3/3" in err and "step/s" in err and "loss=" in err, err[-500:]  # steps done / planned, the loss


def test_cpu_runs_release_freed_memory_every_n_steps(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """release_memory_every=N trims the heap after steps N, 2N, ... (CPU); null never; the run is unchanged."""
    import argusrec.training.loop as loop_module

    calls: list[int] = []
    real = loop_module.release_freed_memory

    def counted() -> bool:  # the real trim, counted: the weights below must not depend on it
        calls.append(1)
        return real()

    monkeypatch.setattr(loop_module, "release_freed_memory", counted)
    ref_model, _ = run(tmp_path / "ref", release_memory_every=None)
    assert calls == []
    model, result = run(tmp_path / "trim", release_memory_every=2)
    assert len(calls) == result.steps // 2 == (3 * STEPS_PER_EPOCH) // 2
    assert all(torch.equal(a, b) for a, b in zip(params_of(ref_model).values(), params_of(model).values(), strict=True))


def test_release_freed_memory_runs_where_glibc_is() -> None:
    from argusrec.training.device import _malloc_trim, release_freed_memory

    if _malloc_trim() is None:
        assert release_freed_memory() is False
    else:
        assert release_freed_memory() is True
    if sys.platform.startswith("linux") and Path("/lib/x86_64-linux-gnu/libc.so.6").exists():
        assert _malloc_trim() is not None  # glibc here: the trim must be found
