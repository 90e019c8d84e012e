"""From per-user event ranges to padded (B, N) batches read out of the sequence store.

Three steps, each vectorised with numpy (no Python loop over users or events):

1. :func:`chunk_ranges` cuts each user's training range ``[start, end)`` into non-overlapping chunks
   of at most ``max_len`` events, aligned from the end; :func:`history_windows` gives the window of
   up to ``max_len`` events before each evaluation target. Both return :class:`Chunks`.
2. :func:`assemble_batch` gathers the wanted store columns for B chunks into (B, N) arrays padded
   with the schema's pad values, plus ``mask``, ``positions`` and ``user_index``.
3. :class:`ChunkBatches` walks the chunks in a seeded per-epoch order, and can restart at any batch
   of an epoch so that a resumed run sees exactly the batches it would have seen.

Letters (docs/notation.md): B batch, N length; C = number of chunks, U = users, E = events.
Indices called ``start``/``index`` are global CSR rows of the store (0..E-1), not positions within
a user; a user's position of row ``i`` is ``i - offsets[user]``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from argusrec.data.schema import (
    ITEM_ID,
    NO_REQUEST,
    PAD_CODE,
    PAD_ITEM,
    TIMESTAMP,
    DatasetSchema,
    Role,
)
from argusrec.data.store import SequenceStore

MASK = "mask"
POSITIONS = "positions"
USER_INDEX = "user_index"
#: Keys every batch from :func:`assemble_batch` has besides the event columns; no column may use them.
RESERVED_KEYS = (MASK, POSITIONS, USER_INDEX)
PAD_POSITION = -1

Padding = Literal["left", "right"]

_PAD_BY_ROLE: dict[Role, int | float] = {
    Role.ITEM: PAD_ITEM,
    Role.TIMESTAMP: 0,
    Role.CONTEXT: PAD_CODE,
    Role.FEEDBACK: float("nan"),  # NaN = not observed, so losses on padding are masked like missing labels
    Role.REQUEST: NO_REQUEST,
    Role.TRUTH: float("nan"),
}


def concat_aranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """``concatenate([arange(s, s + n) for s, n in zip(starts, lengths)])`` without the loop.

    Args:
        starts: (R,) integer first value of each range.
        lengths: (R,) non-negative integer length of each range.

    Returns:
        (sum(lengths),) int64.
    """
    starts = np.asarray(starts, dtype=np.int64)
    lengths = np.asarray(lengths, dtype=np.int64)
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    # Each output element is its range's start plus its rank inside the range; the rank is the
    # global arange minus the output offset where the range begins.
    begins = np.cumsum(lengths) - lengths
    return np.repeat(starts - begins, lengths) + np.arange(total, dtype=np.int64)


@dataclass(frozen=True, eq=False)  # arrays have no single truth value for ==
class Chunks:
    """C contiguous event ranges, each inside one user's sequence.

    Attributes:
        user: (C,) int64 user index of each chunk.
        start: (C,) int64 first CSR row of each chunk.
        length: (C,) int64 number of events (rows ``start:start + length``).
    """

    user: np.ndarray
    start: np.ndarray
    length: np.ndarray

    def __len__(self) -> int:
        return len(self.start)

    @property
    def end(self) -> np.ndarray:
        """(C,) int64 exclusive last row."""
        return self.start + self.length

    @property
    def n_events(self) -> int:
        return int(self.length.sum())

    def take(self, ids: np.ndarray) -> Chunks:
        """The chunks ``ids`` ((B,) integer), in that order."""
        return Chunks(user=self.user[ids], start=self.start[ids], length=self.length[ids])


def chunk_ranges(
    starts: np.ndarray,
    ends: np.ndarray,
    max_len: int,
    *,
    min_len: int = 1,
    max_chunks_per_user: int | None = None,
    users: np.ndarray | None = None,
) -> Chunks:
    """Cut each range ``[starts[r], ends[r])`` into non-overlapping chunks of at most ``max_len`` rows.

    Chunks are aligned from the end: the most recent chunk is full and only the oldest may be short,
    because the most recent events matter most and a short chunk then wastes the least context.
    Chunks are returned user by user, oldest first within a user.

    Args:
        starts: (R,) int first CSR row of each range (usually ``split.offsets[:-1]``).
        ends: (R,) int exclusive end (usually ``split.train_end``).
        max_len: N, the most events in one chunk.
        min_len: drop chunks shorter than this (the oldest chunk of a range is the only short one).
        max_chunks_per_user: keep only this many most recent chunks of each range; 1 gives the
            SASRec-style "last ``max_len`` events".
        users: (R,) user index of each range; defaults to ``arange(R)``.

    Returns:
        :class:`Chunks` with C chunks.
    """
    if max_len < 1:
        raise ValueError(f"max_len must be >= 1, got {max_len}")
    if min_len < 1 or min_len > max_len:
        raise ValueError(f"min_len must be in [1, max_len={max_len}], got {min_len}")
    if max_chunks_per_user is not None and max_chunks_per_user < 1:
        raise ValueError(f"max_chunks_per_user must be >= 1 or None, got {max_chunks_per_user}")
    starts = np.asarray(starts, dtype=np.int64)
    ends = np.asarray(ends, dtype=np.int64)
    if starts.shape != ends.shape or starts.ndim != 1:
        raise ValueError(f"starts and ends must be 1-d of the same length, got {starts.shape}, {ends.shape}")
    if np.any(ends < starts):
        raise ValueError("every range needs end >= start")
    users = np.arange(len(starts), dtype=np.int64) if users is None else np.asarray(users, dtype=np.int64)

    n_chunks = -(-(ends - starts) // max_len)  # ceil division; 0 for empty ranges  # (R,)
    if max_chunks_per_user is not None:
        n_chunks = np.minimum(n_chunks, max_chunks_per_user)
    owner = np.repeat(np.arange(len(starts), dtype=np.int64), n_chunks)  # (C,) range of each chunk
    # k = how many chunks separate this one from the range's end; counting down gives oldest-first.
    rank = concat_aranges(np.zeros(len(starts), dtype=np.int64), n_chunks)  # (C,)
    k = n_chunks[owner] - 1 - rank
    chunk_end = ends[owner] - k * max_len
    chunk_start = np.maximum(starts[owner], chunk_end - max_len)
    length = chunk_end - chunk_start
    keep = length >= min_len
    return Chunks(user=users[owner][keep], start=chunk_start[keep], length=length[keep])


def history_windows(
    offsets: np.ndarray,
    user: np.ndarray,
    index: np.ndarray,
    max_len: int,
    *,
    include_target: bool = False,
) -> Chunks:
    """The input window of each evaluation target: the up-to-``max_len`` events just before it.

    With ``include_target`` the window ends with the target itself and holds at most ``max_len``
    events in all (so at most ``max_len - 1`` of history); use it when the model reads the target's
    own context (surface, time) at the last position.

    Args:
        offsets: (U + 1,) int64 CSR offsets of the store.
        user: (T,) int user of each target.
        index: (T,) int CSR row of each target.
        max_len: N, the longest window.
        include_target: end the window at the target (inclusive) instead of just before it.

    Returns:
        :class:`Chunks` with one window per target, in the targets' order; a target at its user's
        first event gets an empty window unless ``include_target``.
    """
    if max_len < 1:
        raise ValueError(f"max_len must be >= 1, got {max_len}")
    offsets = np.asarray(offsets, dtype=np.int64)
    user = np.asarray(user, dtype=np.int64)
    index = np.asarray(index, dtype=np.int64)
    first = offsets[user]
    if np.any(index < first) or np.any(index >= offsets[user + 1]):
        raise ValueError("every target index must lie inside its user's rows")
    end = index + 1 if include_target else index
    start = np.maximum(first, end - max_len)
    return Chunks(user=user, start=start, length=end - start)


def pad_value(schema: DatasetSchema, name: str) -> int | float:
    """The value that fills padded positions of store column ``name``."""
    if name == ITEM_ID:
        return _PAD_BY_ROLE[Role.ITEM]
    if name == TIMESTAMP:
        return _PAD_BY_ROLE[Role.TIMESTAMP]
    for c in schema.columns:
        if c.name == name and c.role in _PAD_BY_ROLE:
            return _PAD_BY_ROLE[c.role]
    raise KeyError(f"no per-event store column {name!r}; columns: {sorted(schema.store_columns())}")


def assemble_batch(
    store: SequenceStore,
    start: np.ndarray,
    length: np.ndarray,
    *,
    columns: Sequence[str] | None = None,
    user: np.ndarray | None = None,
    n: int | None = None,
    padding: Padding = "left",
) -> dict[str, np.ndarray]:
    """Read B chunks from the store into padded (B, N) arrays with one fancy-indexing gather per column.

    Args:
        store: the sequence store (memory-mapped or in memory).
        start: (B,) int first CSR row of each chunk.
        length: (B,) int number of events of each chunk.
        columns: store columns to read; all of them by default.
        user: (B,) int user of each chunk; found from ``store.offsets`` when omitted.
        n: N, the padded length; defaults to the longest chunk of the batch. A fixed ``n``
            (= ``max_len``) keeps shapes static across batches.
        padding: ``"left"`` puts the latest event in the last column (causal models read the
            prediction at position N - 1 for every row); ``"right"`` starts every row at column 0.

    Returns:
        ``{column: (B, N) in the column's dtype, "mask": (B, N) bool (True = real event),
        "positions": (B, N) int64 position of the event in its user's whole sequence (-1 on padding),
        "user_index": (B,) int64}``. Padding holds the schema's pad values: item 0, context 0,
        feedback NaN, timestamp 0, request -1, truth NaN.
    """
    offsets = store.offsets
    start = np.asarray(start, dtype=np.int64)
    length = np.asarray(length, dtype=np.int64)
    if start.shape != length.shape or start.ndim != 1:
        raise ValueError(f"start and length must be 1-d of the same length, got {start.shape}, {length.shape}")
    if np.any(length < 0):
        raise ValueError("chunk lengths must be >= 0")
    if user is None:
        # side="right" maps a row to the last user whose first row is <= it, skipping empty users.
        user = np.clip(np.searchsorted(offsets, start, side="right") - 1, 0, max(store.n_users - 1, 0))
    user = np.asarray(user, dtype=np.int64)
    if len(start) and (np.any(start < offsets[user]) or np.any(start + length > offsets[user + 1])):
        raise ValueError("every chunk must lie inside its user's rows (chunks never cross users)")
    columns = list(store.columns) if columns is None else list(columns)
    clash = sorted(set(columns) & set(RESERVED_KEYS))
    if clash:
        raise ValueError(f"column names {clash} collide with batch keys {RESERVED_KEYS}")

    b = len(start)
    longest = int(length.max(initial=0))
    width = longest if n is None else int(n)
    if width < longest:
        raise ValueError(f"n={width} is shorter than the longest chunk in the batch ({longest})")
    col = np.arange(width, dtype=np.int64)  # (N,)
    if padding == "left":
        shift = width - length  # (B,) number of pad columns before the first event
        mask = col[None, :] >= shift[:, None]  # (B, N)
        rows = start[:, None] - shift[:, None] + col[None, :]  # (B, N)
    elif padding == "right":
        mask = col[None, :] < length[:, None]  # (B, N)
        rows = start[:, None] + col[None, :]  # (B, N)
    else:
        raise ValueError(f"padding must be 'left' or 'right', got {padding!r}")
    # Row-major order of the True cells = chunk by chunk, ascending rows: sequential memmap reads,
    # and exactly ``length[b]`` cells per chunk, which is what the np.repeat below relies on.
    flat = rows[mask]  # (sum(length),)

    out: dict[str, np.ndarray] = {}
    for name in columns:
        source = store[name]
        arr = np.full((b, width), pad_value(store.schema, name), dtype=source.dtype)  # (B, N)
        arr[mask] = source[flat]
        out[name] = arr
    positions = np.full((b, width), PAD_POSITION, dtype=np.int64)  # (B, N)
    positions[mask] = flat - np.repeat(offsets[user], length)
    out[MASK] = mask
    out[POSITIONS] = positions
    out[USER_INDEX] = user
    return out


class ChunkBatches:
    """Seeded, resumable batches of chunks: epoch ``e`` visits the chunks in a fixed order.

    The order of epoch ``e`` is a permutation drawn from ``numpy.random.default_rng([seed, e])``,
    so it depends on nothing but ``(seed, e)``: a run restarted at batch ``k`` of epoch ``e`` (see
    :meth:`epoch`) gets the same batches as the uninterrupted run from batch ``k`` on.

    With ``bucket`` set, the shuffled chunks are cut into windows of ``bucket`` batches, each window is
    sorted by chunk length and split into batches, and the full batches are shuffled again: batches
    hold chunks of similar length, so padding to the longest chunk of the batch (``n=None``) wastes
    little. Short histories (Amazon: ~9 events on average) otherwise spend most compute on padding.
    """

    def __init__(
        self,
        store: SequenceStore,
        chunks: Chunks,
        *,
        batch_size: int,
        columns: Sequence[str] | None = None,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = False,
        n: int | None = None,
        padding: Padding = "left",
        bucket: int | None = None,
    ) -> None:
        """See :func:`assemble_batch` for ``columns``, ``n`` and ``padding``; the class doc for ``bucket``."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if bucket is not None and bucket < 1:
            raise ValueError(f"bucket must be >= 1 batches, got {bucket}")
        self.bucket = bucket
        self.store = store
        self.chunks = chunks
        self.batch_size = int(batch_size)
        self.columns = None if columns is None else list(columns)
        self.shuffle = shuffle
        self.seed = int(seed)
        self.drop_last = drop_last
        self.n = n
        self.padding: Padding = padding

    def __len__(self) -> int:
        """Batches per epoch."""
        c = len(self.chunks)
        return c // self.batch_size if self.drop_last else -(-c // self.batch_size)

    def order(self, epoch: int) -> np.ndarray:
        """(C,) int64 chunk ids in the order epoch ``epoch`` visits them."""
        c = len(self.chunks)
        if not self.shuffle:
            return np.arange(c, dtype=np.int64)
        rng = np.random.default_rng([self.seed, int(epoch)])
        ids = rng.permutation(c).astype(np.int64)
        if self.bucket is None:
            return ids
        window = self.bucket * self.batch_size
        lengths = self.chunks.length[ids]
        for lo in range(0, c, window):  # sort each window by length (stable: ties keep the shuffle)
            sl = slice(lo, lo + window)
            ids[sl] = ids[sl][np.argsort(-lengths[sl], kind="stable")]
        full = c // self.batch_size
        batches = ids[: full * self.batch_size].reshape(full, self.batch_size)  # (full batches, B)
        batches = batches[rng.permutation(full)]
        return np.concatenate([batches.reshape(-1), ids[full * self.batch_size :]])  # the short batch stays last

    def batch_ids(self, epoch: int, start_batch: int = 0) -> Iterator[np.ndarray]:
        """(B,) chunk ids of each batch of ``epoch``, from batch ``start_batch`` on."""
        total = len(self)
        if not 0 <= start_batch <= total:
            raise ValueError(f"start_batch must be in [0, {total}], got {start_batch}")
        return self.selected_ids(epoch, range(start_batch, total))

    def selected_ids(self, epoch: int, batches: Sequence[int]) -> Iterator[np.ndarray]:
        """(B,) chunk ids of batches ``batches`` (indices into the epoch's order) of ``epoch``, in the given order."""
        total = len(self)
        ids = self.order(epoch)
        for i in batches:
            if not 0 <= i < total:
                raise ValueError(f"batch index must be in [0, {total}), got {i}")
            yield ids[i * self.batch_size : (i + 1) * self.batch_size]

    def epoch(self, epoch: int, start_batch: int = 0) -> Iterator[dict[str, np.ndarray]]:
        """The batches of ``epoch`` (see :func:`assemble_batch` for their keys), from ``start_batch`` on."""
        for ids in self.batch_ids(epoch, start_batch):
            yield self._assemble(ids)

    def select(self, epoch: int, batches: Sequence[int]) -> Iterator[dict[str, np.ndarray]]:
        """Only batches ``batches`` (indices into the epoch's order) of ``epoch``, in the given order.

        Data-parallel training uses it to read one rank's share of an epoch without assembling the rest.
        """
        for ids in self.selected_ids(epoch, batches):
            yield self._assemble(ids)

    def _assemble(self, ids: np.ndarray) -> dict[str, np.ndarray]:
        part = self.chunks.take(ids)
        return assemble_batch(
            self.store,
            part.start,
            part.length,
            columns=self.columns,
            user=part.user,
            n=self.n,
            padding=self.padding,
        )
