"""train.activation_checkpointing: switched on every encoder, same losses and gradients, refused where it can't act."""

from __future__ import annotations

import pytest
import torch

from argusrec.config import LossConfig, ModelConfig, TrainConfig
from argusrec.errors import ArgusrecError
from argusrec.models.builders import build_model
from argusrec.nn import transformer
from argusrec.training.loop import _FREE_TO_CHANGE, set_activation_checkpointing
from tests.training import TinyModel


def _loss_and_grads(kind: str, on: bool) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    torch.manual_seed(0)
    model = build_model(
        ModelConfig(kind=kind, dim=16, layers=2, heads=2, dropout=0.3), LossConfig(), n_items=40, max_len=12
    )
    assert set_activation_checkpointing(model, on) == 1
    model.train()
    g = torch.Generator().manual_seed(1)
    items = torch.randint(1, 41, (3, 10), generator=g)
    valid = torch.ones(3, 10, dtype=torch.bool)
    ts = torch.cumsum(torch.randint(1, 500, (3, 10), generator=g), dim=1)
    torch.manual_seed(7)  # the same dropout masks: checkpointing replays the RNG state in its recomputation
    loss = model(items, valid, ts, ts + 1).pow(2).mean()
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("kind", ["sasrec", "hstu"])
def test_checkpointing_changes_no_loss_or_gradient(kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []

    def counting(*args, **kw):
        calls.append(1)
        return real(*args, **kw)

    real = transformer.checkpoint
    monkeypatch.setattr(transformer, "checkpoint", counting)
    loss_off, grads_off = _loss_and_grads(kind, False)
    assert calls == []
    loss_on, grads_on = _loss_and_grads(kind, True)
    assert len(calls) == 2  # both blocks really were recomputed through torch.utils.checkpoint
    assert torch.equal(loss_off, loss_on)
    assert grads_off.keys() == grads_on.keys() and len(grads_on) > 4
    for name in grads_off:
        torch.testing.assert_close(grads_on[name], grads_off[name], rtol=1e-6, atol=1e-7, msg=name)


def test_switched_off_again_and_refused_without_an_encoder() -> None:
    model = build_model(ModelConfig(dim=8, layers=1, heads=1), LossConfig(), n_items=10, max_len=5)
    set_activation_checkpointing(model, True)
    assert model.encoder.activation_checkpointing is True
    set_activation_checkpointing(model, False)
    assert model.encoder.activation_checkpointing is False
    with pytest.raises(ArgusrecError, match=r"train\.activation_checkpointing"):
        set_activation_checkpointing(TinyModel(), True)
    assert set_activation_checkpointing(TinyModel(), False) == 0  # off: nothing to do, no error


def test_setting_is_in_the_config_and_free_to_change_on_resume() -> None:
    assert TrainConfig().activation_checkpointing is False
    assert TrainConfig(activation_checkpointing=True).activation_checkpointing is True
    assert "activation_checkpointing" in _FREE_TO_CHANGE
