"""Id embeddings: an exact per-id table, the ARGUS unified hashed table, and learned positions.

- :class:`IdEmbedding` — one row per id, row 0 = padding (zero, never updated). Exact ids; what
  published baselines (SASRec, HSTU) use on small catalogs.
- :class:`HashedEmbedding` — ARGUS's "unified embedding" (reference/ARGUS.md §4): every
  high-cardinality feature (item id, artist id, ...) shares ONE table of ``num_buckets`` rows; a value
  is hashed by ``k`` independent hash functions and its ``k`` rows are summed, or concatenated and
  projected. Memory is ``num_buckets × row_dim`` whatever the catalog size, and an id never seen in
  training still gets a vector.
- :class:`PositionEmbedding` — learned absolute positions counted from the most recent event (see
  :func:`event_positions`).

Letters (docs/notation.md): B batch, N length, D width, V catalog; ``...`` = any leading shape.
"""

from __future__ import annotations

import math
from typing import Literal, TypeVar

import torch
from torch import Tensor, nn

__all__ = [
    "HashedEmbedding",
    "IdEmbedding",
    "PositionEmbedding",
    "event_positions",
    "hash_buckets",
    "hash_constants",
]

PAD_ID = 0
DEFAULT_INIT_STD = 0.02  # GPT-2 / HSTU initialisation scale for embedding tables

Combine = Literal["sum", "concat"]


class IdEmbedding(nn.Module):
    """A plain table with one row per id; the padding row is a zero vector that gets no gradient.

    Args:
        num_embeddings: rows in the table, padding included: pass V + 1 for item ids 1..V
            (the same meaning as in :class:`torch.nn.Embedding`).
        dim: D, the vector width.
        padding_idx: the id of padding (0 in argusrec), or None for a table without padding.
        init_std: standard deviation of the normal initialisation.
    """

    def __init__(
        self, num_embeddings: int, dim: int, *, padding_idx: int | None = PAD_ID, init_std: float = DEFAULT_INIT_STD
    ) -> None:
        super().__init__()
        if num_embeddings < 1 or dim < 1:
            raise ValueError(f"IdEmbedding needs num_embeddings >= 1 and dim >= 1, got {num_embeddings}, {dim}")
        # nn.Embedding's padding_idx keeps the row out of the gradient, so the optimiser never moves it.
        self.table = nn.Embedding(num_embeddings, dim, padding_idx=padding_idx)
        self.padding_idx = padding_idx
        nn.init.normal_(self.table.weight, std=init_std)
        if padding_idx is not None:
            with torch.no_grad():
                self.table.weight[padding_idx].zero_()

    @property
    def weight(self) -> Tensor:
        """(num_embeddings, D) the table itself (row ``padding_idx`` is zero)."""
        return self.table.weight

    @property
    def dim(self) -> int:
        return self.table.embedding_dim

    def forward(self, ids: Tensor) -> Tensor:
        """Vectors of ``ids``.

        Args:
            ids: (...) int64 ids in [0, num_embeddings).

        Returns:
            (..., D); zero where ``ids == padding_idx``.
        """
        return self.table(ids)

    def all_vectors(self, num_ids: int | None = None) -> Tensor:
        """(V + 1, D) vectors of ids 0..V for full-catalog scoring; row 0 is padding (zero).

        ``num_ids`` (= V) defaults to the whole table; a smaller value gives the first V + 1 rows.
        """
        if num_ids is None:
            return self.table.weight
        if not 0 <= num_ids < self.table.num_embeddings:
            raise ValueError(f"num_ids={num_ids} outside the table of {self.table.num_embeddings} rows")
        return self.table.weight[: num_ids + 1]


# ---------------------------------------------------------------------------------------------
# Hashing. Every intermediate value stays below 2**62, so int64 arithmetic never overflows and the
# result is bit-identical on any device and any torch version (overflow of signed int64 is not
# something to rely on across backends). The same code runs on Python ints, which the tests use as
# an exact reference.
# ---------------------------------------------------------------------------------------------
_MASK31 = (1 << 31) - 1

IntLike = TypeVar("IntLike", int, Tensor)


def _mix31(x: IntLike, m1: IntLike, m2: IntLike) -> IntLike:
    """A bijection of [0, 2**31): xorshift-multiply-xorshift-multiply-xorshift (the "0x45d9f3b" family).

    Each step is invertible (a right xorshift; a product with an odd number modulo 2**31), so distinct
    inputs stay distinct; the multiplies push low bits up and the shifts bring high bits down, so every
    output bit depends on every input bit. ``x, m1, m2 < 2**31`` keeps each product below 2**62.
    """
    x = x ^ (x >> 16)
    x = (x * m1) & _MASK31
    x = x ^ (x >> 15)
    x = (x * m2) & _MASK31
    return x ^ (x >> 16)


def _splitmix(state: int) -> tuple[int, int]:
    """One step of SplitMix64 on Python ints: (next state, 64-bit output). Used only to draw constants."""
    state = (state + 0x9E3779B97F4A7C15) & ((1 << 64) - 1)
    z = state
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & ((1 << 64) - 1)
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & ((1 << 64) - 1)
    return state, z ^ (z >> 31)


def hash_constants(num_hashes: int, seed: int = 0) -> list[tuple[int, int, int]]:
    """(start value, odd multiplier 1, odd multiplier 2) for each of ``num_hashes`` hash functions.

    Every hash function gets its own multipliers, not only its own start value: functions that differ
    only by a value XOR-ed into the input would map the same id *differences* to collisions in all of them.
    """
    state = seed & ((1 << 64) - 1)
    out = []
    for _ in range(num_hashes):
        state, a = _splitmix(state)
        state, b = _splitmix(state)
        state, c = _splitmix(state)
        out.append((a & _MASK31, (b & _MASK31) | 1, (c & _MASK31) | 1))
    return out


def hash_buckets(ids: Tensor, constants: Tensor, num_buckets: int, feature: int = 0) -> Tensor:
    """Bucket of each id under each hash function.

    The 64 bits of an id are read as limbs of 31, 31 and 2 bits and absorbed one after another into a
    31-bit state after the feature number (the salt): ``s = mix(s ^ limb)``. Each absorb is a bijection
    of the state, so two ids of the same feature never share the full 31-bit state — only the final
    ``% num_buckets`` creates collisions, at the rate of a random function.

    Args:
        ids: (...) int64, any value (negative ids, e.g. raw 64-bit hashes, are read as their bits).
        constants: (3, k) int64 rows (start values, multipliers 1, multipliers 2), from :func:`hash_constants`.
        num_buckets: table rows; at most 2**31.
        feature: salt; ``feature`` f and g ≠ f put the same id in unrelated buckets.

    Returns:
        (..., k) int64 buckets in [0, num_buckets).
    """
    if ids.dtype != torch.int64:
        raise TypeError(f"hash_buckets needs int64 ids, got {ids.dtype}")
    if not 0 <= feature <= _MASK31:
        raise ValueError(f"feature salt must be in [0, 2**31), got {feature}")
    start, m1, m2 = constants.to(ids.device).unbind(0)  # 3 × (k,)
    state = _mix31(start ^ feature, m1, m2)  # (k,) the salt is absorbed first, like a leading limb
    x = ids.unsqueeze(-1)  # (..., 1) broadcast against the k hash functions
    # `>>` on int64 is an arithmetic shift; masking afterwards takes exactly the wanted bits, sign included.
    for limb in (x & _MASK31, (x >> 31) & _MASK31, (x >> 62) & 3):
        state = _mix31(state ^ limb, m1, m2)  # (..., k)
    return torch.remainder(state, num_buckets)


class HashedEmbedding(nn.Module):
    """ARGUS unified hashed embedding: one shared table, ``k`` hashed rows per value, summed or concatenated.

    Memory is ``num_buckets × row_dim`` (+ ``k·row_dim × D`` for the concat projection) regardless of
    how many ids or features use the table: the article's production setting is 3 hashes into a
    512K-row table (reference/ARGUS.md §4). Different features share the table but hash with a
    different salt (``feature=``), so ``artist 5`` and ``item 5`` get unrelated rows. Two ids collide
    completely only if all ``k`` of their buckets agree (probability about ``num_buckets**-k`` per pair).
    Id 0 (padding) of every feature is the zero vector; its rows receive no gradient from it.

    Args:
        num_buckets: table rows (at most 2**31).
        dim: D, the output width.
        num_hashes: k, hash functions per value.
        combine: ``"sum"`` adds the k rows (row_dim must equal D); ``"concat"`` concatenates them and
            projects k·row_dim → D with a bias-free linear layer.
        row_dim: table width; defaults to D.
        seed: picks the hash functions; fixed by default so that every run hashes the same way.
        init_std: standard deviation of the combined vector at initialisation.
    """

    hash_params: Tensor  # (3, k) int64 buffer: start values and the two multipliers of each hash function

    def __init__(
        self,
        num_buckets: int,
        dim: int,
        *,
        num_hashes: int = 3,
        combine: Combine = "sum",
        row_dim: int | None = None,
        seed: int = 0,
        init_std: float = DEFAULT_INIT_STD,
    ) -> None:
        super().__init__()
        if not 1 <= num_buckets <= 1 << 31:
            raise ValueError(f"num_buckets must be in [1, 2**31], got {num_buckets}")
        if num_hashes < 1 or dim < 1:
            raise ValueError(f"HashedEmbedding needs num_hashes >= 1 and dim >= 1, got {num_hashes}, {dim}")
        if combine not in ("sum", "concat"):
            raise ValueError(f"combine must be 'sum' or 'concat', got {combine!r}")
        row_dim = dim if row_dim is None else row_dim
        if combine == "sum" and row_dim != dim:
            raise ValueError(f"combine='sum' adds rows of width row_dim={row_dim}; it must equal dim={dim}")
        self.num_buckets = num_buckets
        self.num_hashes = num_hashes
        self.combine = combine
        self.dim = dim
        self.row_dim = row_dim
        self.table = nn.Parameter(torch.empty(num_buckets, row_dim))
        # A sum of k independent rows has √k times their spread; scale the rows so the vector starts at init_std.
        std = init_std / math.sqrt(num_hashes) if combine == "sum" else init_std
        nn.init.normal_(self.table, std=std)
        self.proj = nn.Linear(num_hashes * row_dim, dim, bias=False) if combine == "concat" else None
        # Saved with the weights: a checkpoint carries the hash functions that placed its ids.
        constants = torch.tensor(hash_constants(num_hashes, seed), dtype=torch.int64).T.contiguous()  # (3, k)
        self.register_buffer("hash_params", constants)

    def buckets(self, ids: Tensor, *, feature: int = 0) -> Tensor:
        """(..., k) int64 table rows of ``ids`` (..., int64) under ``feature``'s salt."""
        return hash_buckets(ids, self.hash_params, self.num_buckets, feature)

    def forward(self, ids: Tensor, *, feature: int = 0) -> Tensor:
        """Vectors of ``ids`` of one feature.

        Args:
            ids: (...) int64 feature values; 0 is padding.
            feature: which feature the values belong to (its hash salt), e.g. 0 items, 1 artists.

        Returns:
            (..., D); zero where ``ids == 0``.
        """
        rows = self.table[self.buckets(ids, feature=feature)]  # (..., k, row_dim)
        if self.proj is None:
            out = rows.sum(dim=-2)  # (..., D)
        else:
            out = self.proj(rows.flatten(-2))  # (..., k·row_dim) -> (..., D)
        # masked_fill (not a product) so the padding vector is exactly zero and its rows get zero gradient.
        return out.masked_fill((ids == PAD_ID).unsqueeze(-1), 0.0)

    def all_vectors(self, num_ids: int, *, feature: int = 0) -> Tensor:
        """(V + 1, D) vectors of ids 0..V (V = ``num_ids``) for full-catalog scoring; row 0 is zero."""
        ids = torch.arange(num_ids + 1, device=self.table.device)  # (V + 1,)
        return self(ids, feature=feature)

    def extra_repr(self) -> str:
        return f"num_buckets={self.num_buckets}, dim={self.dim}, num_hashes={self.num_hashes}, combine={self.combine}"


def event_positions(valid: Tensor, *, from_end: bool = True) -> Tensor:
    """Index of every real event within its row; -1 on padding.

    ``from_end=True`` (the default) counts back from the most recent real event: the last event is 0,
    the one before it 1, and so on. With left padding this is what SASRec's left-padded absolute
    positions give, but independent of N and of the padding layout, and the event whose hidden state
    serves the next recommendation always has position 0, in training and at inference alike.
    ``from_end=False`` counts from the first real event of the row (0, 1, 2, ...).

    Args:
        valid: (B, N) bool, True for real events.

    Returns:
        (B, N) int64.
    """
    valid_long = valid.long()
    if from_end:
        # Real events strictly after n: total - inclusive prefix count.
        index = valid_long.sum(-1, keepdim=True) - valid_long.cumsum(-1)  # (B, N)
    else:
        index = valid_long.cumsum(-1) - 1  # (B, N)
    return index.masked_fill(~valid, -1)


class PositionEmbedding(nn.Module):
    """Learned absolute position vectors, positions as given by :func:`event_positions`.

    Positions at or beyond ``max_len`` share the last row (a history longer than the table is still
    accepted); negative positions (padding) give the zero vector.

    Args:
        max_len: rows of the table.
        dim: D.
        from_end: the convention of :meth:`positions` and of an integer ``forward`` argument.
        init_std: standard deviation of the normal initialisation.
    """

    def __init__(self, max_len: int, dim: int, *, from_end: bool = True, init_std: float = DEFAULT_INIT_STD) -> None:
        super().__init__()
        if max_len < 1 or dim < 1:
            raise ValueError(f"PositionEmbedding needs max_len >= 1 and dim >= 1, got {max_len}, {dim}")
        self.max_len = max_len
        self.from_end = from_end
        self.table = nn.Parameter(torch.empty(max_len, dim))
        nn.init.normal_(self.table, std=init_std)

    def positions(self, valid: Tensor) -> Tensor:
        """(B, N) int64 positions of the real events of ``valid`` (B, N) in this module's convention."""
        return event_positions(valid, from_end=self.from_end)

    def forward(self, positions: Tensor | int) -> Tensor:
        """Position vectors.

        Args:
            positions: (B, N) int64 positions (negative = padding), or an int n meaning n events and no
                padding (positions n-1..0 if ``from_end`` else 0..n-1).

        Returns:
            (B, N, D), or (1, n, D) for an int.
        """
        if isinstance(positions, int):
            index = torch.arange(positions, device=self.table.device)  # (n,)
            if self.from_end:
                index = index.flip(0)
            return self.table[index.clamp(max=self.max_len - 1)].unsqueeze(0)  # (1, n, D)
        out = self.table[positions.clamp(0, self.max_len - 1)]  # (B, N, D)
        return out.masked_fill((positions < 0).unsqueeze(-1), 0.0)
