"""Tests of argusrec.training; this module holds the toy model, task and data they share.

The toy setup exercises the real batch machinery: a :class:`SequenceStore` built from arrays, chunked
and batched by :class:`ChunkBatches` (seeded per-epoch order, resumable at any batch). The task draws
from every RNG a checkpoint must restore: torch (dropout, and a stateful sampler's own generator),
NumPy's global generator and Python's ``random``.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from argusrec.data.batching import MASK, ChunkBatches, chunk_ranges
from argusrec.data.schema import ITEM_ID, TIMESTAMP
from argusrec.data.store import SequenceStore

N_ITEMS = 20
MAX_LEN = 6


def toy_batches(*, batch_size: int = 4, seed: int = 5, n_users: int = 12) -> ChunkBatches:
    """About 6 shuffled batches per epoch of next-item chunks from a random in-memory store."""
    rng = np.random.default_rng(0)
    lengths = rng.integers(3, 15, size=n_users)
    n = int(lengths.sum())
    store = SequenceStore.from_arrays(
        lengths=lengths, columns={ITEM_ID: rng.integers(1, N_ITEMS + 1, size=n), TIMESTAMP: np.arange(n)}
    )
    chunks = chunk_ranges(store.offsets[:-1], store.offsets[1:], MAX_LEN, min_len=2)
    return ChunkBatches(store, chunks, batch_size=batch_size, seed=seed, n=MAX_LEN, columns=[ITEM_ID])


class TinyModel(nn.Module):
    """Embedding → dropout → linear over the catalog."""

    def __init__(self, dim: int = 8, dropout: float = 0.3) -> None:
        super().__init__()
        self.emb = nn.Embedding(N_ITEMS + 1, dim)
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(dim, N_ITEMS + 1)

    def forward(self, items: torch.Tensor) -> torch.Tensor:
        """items (B, N) int → logits (B, N, V + 1)."""
        return self.out(self.drop(self.emb(items)))


class Sampler:
    """A stateful object with its own torch generator (stands in for a negative sampler)."""

    def __init__(self, seed: int = 1) -> None:
        self.gen = torch.Generator().manual_seed(seed)
        self.calls = 0

    def draw(self, n: int) -> torch.Tensor:
        self.calls += 1
        return torch.rand(n, generator=self.gen)

    def state_dict(self) -> dict[str, Any]:
        return {"gen": self.gen.get_state(), "calls": self.calls}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.gen.set_state(state["gen"])
        self.calls = int(state["calls"])


class NextItemTask:
    """Cross-entropy on the next item, randomly re-weighted per target by the sampler and the global RNGs."""

    def __init__(self, sampler: Sampler, crash_at_call: int | None = None) -> None:
        self.sampler = sampler
        self.calls = 0
        self.crash_at_call = crash_at_call

    def loss(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        self.calls += 1
        if self.crash_at_call is not None and self.calls == self.crash_at_call:
            raise RuntimeError("simulated crash")
        items = batch[ITEM_ID].long()
        valid = batch[MASK][:, :-1] & batch[MASK][:, 1:]  # (B, N - 1) both input and target are events
        logits = model(items[:, :-1])  # (B, N - 1, V + 1)
        per_target = F.cross_entropy(logits[valid], items[:, 1:][valid], reduction="none")  # (T,)
        weights = 0.5 + self.sampler.draw(per_target.numel()).to(per_target.device)  # (T,)
        scale = 1.0 + 0.1 * float(np.random.rand()) + 0.1 * random.random()  # noqa: NPY002 - global RNG on purpose
        return scale * (weights * per_target).mean(), valid.sum()


def params_of(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}
