"""Weight averaging (train.ema_decay): the average's recurrence, the swap, and fit() validating, saving, returning
and resuming the average."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch

from argusrec.errors import ArgusrecError
from argusrec.training import CHECKPOINT_DIR, LAST, load_checkpoint, load_weights
from argusrec.training import loop as loop_module
from argusrec.training.averaging import WeightAverage, load_average
from argusrec.training.distributed import DistContext
from tests.training import TinyModel, params_of
from tests.training.test_loop import STEPS_PER_EPOCH, assert_same_run, run


def test_average_follows_the_ramped_recurrence_by_hand() -> None:
    torch.manual_seed(0)
    model = TinyModel()
    avg = WeightAverage(model, decay=0.9)
    expected = model.out.weight.detach().clone()
    for n in range(1, 101):  # the ramp (1 + n) / (10 + n) stays below 0.9 up to n = 80, then the decay holds
        with torch.no_grad():
            model.out.weight.add_(torch.randn_like(model.out.weight))
        d = min(0.9, (1 + n) / (10 + n))
        expected = d * expected + (1 - d) * model.out.weight.detach()
        avg.update(model)
        torch.testing.assert_close(avg.shadow["out.weight"], expected)
    assert avg.updates == 100


def test_average_uses_the_decay_once_the_ramp_passes_it() -> None:
    avg = WeightAverage(TinyModel(), decay=0.5)
    assert avg.rate() == pytest.approx(2 / 11)  # first update: (1 + 1) / (10 + 1)
    avg.updates = 100
    assert avg.rate() == 0.5


def test_applied_swaps_in_the_average_and_restores_the_raw_weights_even_on_error() -> None:
    torch.manual_seed(1)
    model = TinyModel()
    avg = WeightAverage(model, decay=0.99)
    with torch.no_grad():
        model.out.weight.add_(1.0)
    raw = params_of(model)
    with avg.applied(model):
        assert torch.equal(model.out.weight, avg.shadow["out.weight"])
        assert not torch.equal(model.out.weight, raw["out.weight"])
    assert all(torch.equal(v, raw[k]) for k, v in params_of(model).items())
    with pytest.raises(RuntimeError, match="boom"), avg.applied(model):
        raise RuntimeError("boom")
    assert all(torch.equal(v, raw[k]) for k, v in params_of(model).items())


def test_the_average_loads_into_frozen_parameters_and_a_misfit_is_refused_before_anything_is_copied() -> None:
    torch.manual_seed(2)
    trained = TinyModel()
    state = WeightAverage(trained, decay=0.9).state_dict()
    target = TinyModel().requires_grad_(False)  # e.g. a model loaded for evaluation only
    assert load_average({"average": state}, target)
    assert all(torch.equal(v, state["shadow"][k]) for k, v in params_of(target).items())
    other = TinyModel(dim=4)
    before = params_of(other)
    with pytest.raises(ArgusrecError, match=r"does not fit this model .*other shapes: \['emb.weight', 'out.weight'\]"):
        load_average({"average": state}, other)
    assert all(torch.equal(v, before[k]) for k, v in params_of(other).items())
    assert not load_average({}, other)


def test_the_average_of_low_precision_weights_is_kept_in_float32() -> None:
    torch.manual_seed(3)
    model = TinyModel().to(torch.bfloat16)
    avg = WeightAverage(model, decay=0.999)
    avg.updates = 100_000  # past the ramp: each update moves the average by 0.001 of the difference
    start = avg.shadow["out.weight"].clone()
    with torch.no_grad():
        model.out.weight.add_(1.0)
    avg.update(model)
    assert avg.shadow["out.weight"].dtype == torch.float32
    moved = avg.shadow["out.weight"] - start
    # bfloat16 would round a step of ~0.001 on weights of ~0.1-1 away; float32 keeps it
    torch.testing.assert_close(moved, torch.full_like(moved, 0.001), rtol=0.02, atol=1e-5)


def test_decay_outside_the_open_unit_interval_is_refused() -> None:
    with pytest.raises(ValueError, match="decay"):
        WeightAverage(TinyModel(), decay=1.0)


def test_fit_validates_saves_and_returns_the_average(tmp_path: Path) -> None:
    seen: list[dict[str, torch.Tensor]] = []

    def evaluate(model: torch.nn.Module) -> dict[str, float]:
        seen.append(params_of(model))
        return {"valid/score": float(model.out.weight.sum())}

    model, result = run(tmp_path, evaluate=evaluate, ema_decay=0.9)
    last = load_checkpoint(tmp_path / CHECKPOINT_DIR / LAST)
    shadow = last["average"]["shadow"]
    assert last["average"]["updates"] == result.steps == 3 * STEPS_PER_EPOCH
    # The run ends holding the average; last.pt keeps the raw weights it would resume from.
    assert torch.equal(model.out.weight, shadow["out.weight"])
    assert not torch.equal(last["model"]["out.weight"], shadow["out.weight"])
    # The last evaluation saw the average, and best.pt holds the weights of the best evaluation.
    assert torch.equal(seen[-1]["out.weight"], shadow["out.weight"])
    assert result.best_epoch is not None and result.best_checkpoint is not None
    best = TinyModel()
    load_weights(result.best_checkpoint, best)
    assert all(torch.equal(v, seen[result.best_epoch][k]) for k, v in params_of(best).items())
    # Loading last.pt for evaluation gives the average too.
    from_last = TinyModel()
    load_weights(tmp_path / CHECKPOINT_DIR / LAST, from_last)
    assert torch.equal(from_last.out.weight, shadow["out.weight"])


def test_the_average_differs_from_the_raw_run(tmp_path: Path) -> None:
    """Same seed, same steps: only what is validated and returned changes, not the training itself."""
    raw_model, raw = run(tmp_path / "raw")
    ema_model, ema = run(tmp_path / "ema", ema_decay=0.9)
    assert raw.steps == ema.steps
    raw_last = load_checkpoint(tmp_path / "raw" / CHECKPOINT_DIR / LAST)["model"]
    ema_last = load_checkpoint(tmp_path / "ema" / CHECKPOINT_DIR / LAST)["model"]
    assert all(torch.equal(raw_last[k], ema_last[k]) for k in raw_last)  # the optimizer saw the same weights
    assert not torch.equal(raw_model.out.weight, ema_model.out.weight)
    assert raw.history != ema.history


@pytest.mark.parametrize("stop_at", [STEPS_PER_EPOCH, STEPS_PER_EPOCH + 2], ids=["end-of-epoch", "mid-epoch"])
def test_resume_with_the_average_is_bit_identical(tmp_path: Path, stop_at: int) -> None:
    ref = run(tmp_path / "ref", ema_decay=0.9)
    run(tmp_path / "split", ema_decay=0.9, max_steps=stop_at)
    resumed = run(tmp_path / "split", ema_decay=0.9, init_seed=999, sampler_seed=42)
    assert_same_run(tmp_path / "ref", ref, tmp_path / "split", resumed)


def test_resume_of_a_run_without_average_starts_one_and_warns(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    run(tmp_path, max_steps=STEPS_PER_EPOCH)
    with caplog.at_level(logging.WARNING, logger=loop_module.log.name):
        _, result = run(tmp_path, ema_decay=0.9)
    assert "holds no weight average" in caplog.text
    assert load_checkpoint(tmp_path / CHECKPOINT_DIR / LAST)["average"]["updates"] == result.steps - STEPS_PER_EPOCH


def test_resume_without_the_average_drops_it_and_warns(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    run(tmp_path, ema_decay=0.9, max_steps=STEPS_PER_EPOCH)
    with caplog.at_level(logging.WARNING, logger=loop_module.log.name):
        run(tmp_path)
    assert "train.ema_decay is now off: the average is dropped" in caplog.text
    assert "average" not in load_checkpoint(tmp_path / CHECKPOINT_DIR / LAST)


def test_distributed_runs_refuse_the_average(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loop_module.distributed, "setup", lambda train: DistContext(strategy="ddp", world_size=2))
    with pytest.raises(ArgusrecError, match=r"train.ema_decay=0.9: .*single-process runs only.*ddp with 2"):
        run(tmp_path, ema_decay=0.9)
