"""Shared by the attention-layer tests: real events placed into padded batches full of garbage."""

from __future__ import annotations

import torch


def make_events(batch: int, length: int, dim: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Real events: x (B, L, D), timestamps (B, L), query timestamps (B, L) = the next event's time."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, length, dim, generator=g)
    times = 1_600_000_000 + torch.randint(1, 200_000, (batch, length + 1), generator=g).cumsum(1)
    return x, times[:, :-1], times[:, 1:]


def place(
    events: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    lengths: list[int],
    n: int,
    *,
    layout: str = "left",
    seed: int = 1,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, list[slice]]:
    """Put the first lengths[b] events of row b into a padded (B, n) batch full of garbage elsewhere.

    Returns x, valid, timestamps, query_timestamps and, per row, the slice holding the real events.
    """
    x_real, ts_real, qts_real = events
    batch, _, dim = x_real.shape
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, n, dim, generator=g) * 1e3
    x[:, ::3] = float("nan")  # padded NaN must not leak (real rows are overwritten below)
    ts = torch.randint(0, 2_000_000_000, (batch, n), generator=g)
    qts = torch.randint(0, 2_000_000_000, (batch, n), generator=g)
    valid = torch.zeros(batch, n, dtype=torch.bool)
    spans = []
    for b, length in enumerate(lengths):
        start = n - length if layout == "left" else 0
        span = slice(start, start + length)
        x[b, span], ts[b, span], qts[b, span] = x_real[b, :length], ts_real[b, :length], qts_real[b, :length]
        valid[b, span] = True
        spans.append(span)
    return x, valid, ts, qts, spans
