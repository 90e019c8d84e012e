"""The next-item task: every position, or the last position of each window only."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from argusrec.config import LossConfig, ModelConfig
from argusrec.models.builders import build_model
from argusrec.models.next_item import NextItemTask


def _batch() -> dict[str, torch.Tensor]:
    items = torch.tensor([[0, 0, 3, 5, 7], [1, 2, 4, 6, 8], [0, 0, 0, 9, 2]])  # left-padded windows
    mask = items > 0
    ts = torch.cumsum(torch.ones_like(items), dim=1) * 60
    return {"item_id": items, "mask": mask, "timestamp": ts}


def test_last_only_is_the_full_softmax_of_each_window_last_state() -> None:
    torch.manual_seed(0)
    model = build_model(ModelConfig(dim=8, layers=1, heads=1, dropout=0.0), LossConfig(), n_items=9, max_len=4).eval()
    batch = _batch()
    loss, m = NextItemTask(n_items=9, kind="full_softmax", last_only=True).loss(model, batch)
    assert m == 3  # one target per window
    items = batch["item_id"]
    states = model(items[:, :-1], batch["mask"][:, :-1])[:, -1]  # (3, D) after the events before each target
    logits = states @ model.all_item_vectors().T / float(model.temperature())
    logits[:, 0] = float("-inf")  # the padding item is never a candidate
    torch.testing.assert_close(loss, F.cross_entropy(logits, items[:, -1]))
    _, every = NextItemTask(n_items=9, kind="full_softmax").loss(model, batch)
    assert every == 2 + 4 + 1  # every real input followed by a real event


def _empty_history_batch() -> dict[str, torch.Tensor]:
    items = torch.tensor([[0, 3, 5], [0, 0, 4], [1, 2, 6]])  # row 1: the target alone (no history)
    mask = items > 0
    return {"item_id": items, "mask": mask, "timestamp": torch.cumsum(mask.long(), dim=1) * 60}


def _expected_loss(model, states: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    logits = states @ model.all_item_vectors().T / float(model.temperature())
    logits[:, 0] = float("-inf")  # the padding item is never a candidate
    return F.cross_entropy(logits, targets)


def test_a_window_without_history_is_predicted_from_the_learned_empty_state() -> None:
    torch.manual_seed(0)
    cfg = ModelConfig(dim=8, layers=1, heads=1, dropout=0.0, empty_state=True)
    model = build_model(cfg, LossConfig(), n_items=9, max_len=4).eval()
    with torch.no_grad():
        model.empty_state.normal_()  # trained value stand-in: not the zero it starts at
    batch = _empty_history_batch()
    loss, m = NextItemTask(n_items=9, kind="full_softmax", last_only=True).loss(model, batch)
    assert m == 3  # the empty-history window counts
    items, mask = batch["item_id"], batch["mask"]
    states = model(items[:, :-1], mask[:, :-1])[:, -1]  # (3, D); row 1 has no event
    expected = torch.stack([states[0], model.empty_state, states[2]])
    torch.testing.assert_close(loss, _expected_loss(model, expected, items[:, -1]))
    loss.backward()
    assert model.empty_state.grad is not None and bool(model.empty_state.grad.abs().sum() > 0)


def test_without_an_empty_state_such_windows_are_skipped() -> None:
    torch.manual_seed(0)
    model = build_model(ModelConfig(dim=8, layers=1, heads=1, dropout=0.0), LossConfig(), n_items=9, max_len=4).eval()
    batch = _empty_history_batch()
    loss, m = NextItemTask(n_items=9, kind="full_softmax", last_only=True).loss(model, batch)
    assert m == 2
    items, mask = batch["item_id"], batch["mask"]
    states = model(items[:, :-1], mask[:, :-1])[:, -1]
    torch.testing.assert_close(loss, _expected_loss(model, states[[0, 2]], items[[0, 2], -1]))


def test_a_batch_of_targets_alone_gets_one_padded_input_slot() -> None:
    """Length-bucketed batches can hold only empty-history windows: (B, 1) batches, no input column."""
    torch.manual_seed(0)
    for kind in ("sasrec", "bsarec"):
        cfg = ModelConfig(kind=kind, dim=8, layers=1, heads=1, dropout=0.0, empty_state=True)
        model = build_model(cfg, LossConfig(), n_items=9, max_len=4).eval()
        items = torch.tensor([[3], [7]])
        batch = {"item_id": items, "mask": items > 0, "timestamp": items * 60}
        loss, m = NextItemTask(n_items=9, kind="full_softmax", last_only=True).loss(model, batch)
        assert m == 2
        torch.testing.assert_close(loss, _expected_loss(model, model.empty_state.expand(2, 8), items[:, 0]))


def test_the_empty_state_is_normalised_with_the_model_vectors() -> None:
    cfg = ModelConfig(dim=8, layers=1, heads=1, dropout=0.0, empty_state=True, normalize=True)
    model = build_model(cfg, LossConfig(), n_items=9, max_len=4).eval()
    with torch.no_grad():
        model.empty_state.fill_(3.0)
    states, has = model.last_states(torch.zeros(2, 3, 8), torch.zeros(2, 3, dtype=torch.bool))
    assert has.all()
    torch.testing.assert_close(states.norm(dim=-1), torch.ones(2))
