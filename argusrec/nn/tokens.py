"""The real (non-padded) tokens of a padded batch as one (T, D) matrix, for position-wise layers.

Position-wise layers (norms, projections, feed-forward networks, dropout) compute each token from that
token alone, so running them on the T real tokens instead of all B x N slots gives the same output at
every real token and skips the work on padding. Only attention needs the (B, N) layout: it unpacks its
projected queries, keys and values, attends, and packs the result (:class:`CausalSelfAttention`).

This pays where batches are mostly padding: Amazon histories are short, so a batch of randomly mixed
users padded to its longest history is mostly empty slots. On the CPU it raised the sasrec-beauty preset's
training throughput by about half (docs/benchmarks.md, ``benchmarks/rectools_throughput.py`` before and after).

:meth:`RealTokens.of` returns None (use the padded layout) where packing does not pay or cannot be
used: no padding; off the CPU (finding the real tokens is a device-to-host sync, and a GPU has
throughput to spare for padding); while ``torch.compile`` traces (the token count is data-dependent).

Letters (docs/notation.md): B batch, N length, D width; T the number of real tokens.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["RealTokens", "as_grid", "as_tokens", "enter", "leave"]


class RealTokens:
    """Where the real tokens of a (B, N) ``valid`` mask sit, to pack (B, N, ...) -> (T, ...) and back."""

    def __init__(self, valid: Tensor) -> None:
        self.rows, self.cols = valid.shape
        self.index = valid.reshape(-1).nonzero().squeeze(1)  # (T,) flat positions of the real tokens, in order

    @classmethod
    def of(cls, valid: Tensor) -> RealTokens | None:
        """The packing of ``valid`` (B, N) bool, or None where the padded layout should be kept (module doc)."""
        if valid.device.type != "cpu" or torch.compiler.is_compiling() or bool(valid.all()):
            return None
        return cls(valid)

    def pack(self, x: Tensor) -> Tensor:
        """(B, N, ...) -> (T, ...): the real tokens, row by row."""
        return x.reshape(self.rows * self.cols, *x.shape[2:]).index_select(0, self.index)

    def unpack(self, t: Tensor) -> Tensor:
        """(T, ...) -> (B, N, ...), exactly zero at padded positions."""
        out = t.new_zeros((self.rows * self.cols, *t.shape[1:]))
        return out.index_copy(0, self.index, t).view(self.rows, self.cols, *t.shape[1:])


# The four steps of a layer that runs its position-wise parts on the real tokens; with ``tokens`` None
# (the padded layout) each is the identity or a masking, so one code path serves both layouts.


def enter(x: Tensor, valid: Tensor, *, enabled: bool = True) -> tuple[RealTokens | None, Tensor]:
    """(B, N, D) ``x`` -> (packing or None, h): the real tokens (T, D) where packing pays, else ``x`` with
    zeros in its padded slots (a masked key has weight 0, but 0 x NaN is still NaN)."""
    tokens = RealTokens.of(valid) if enabled else None
    return tokens, (tokens.pack(x) if tokens is not None else x.masked_fill(~valid.unsqueeze(-1), 0.0))


def as_grid(tokens: RealTokens | None, t: Tensor) -> Tensor:
    """A layer's per-token tensor in the (B, N, ...) layout, for attention (zero at padding when packed)."""
    return t if tokens is None else tokens.unpack(t)


def as_tokens(tokens: RealTokens | None, g: Tensor) -> Tensor:
    """An attention output (B, N, ...) back in the layer's per-token layout."""
    return g if tokens is None else tokens.pack(g)


def leave(tokens: RealTokens | None, h: Tensor, valid: Tensor) -> Tensor:
    """The layer's output in the (B, N, D) layout, exactly zero at padded positions."""
    return tokens.unpack(h) if tokens is not None else h.masked_fill(~valid.unsqueeze(-1), 0.0)
