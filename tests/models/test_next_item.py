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
