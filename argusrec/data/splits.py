"""Train / validation / test splits of a sequence store: leave-one-out and global temporal.

Both protocols produce one :class:`Split`. Because a user's events are sorted by time in the store,
every role is a contiguous range of each user's rows, in this order::

    offsets[u] ... train_end[u] ... valid_lo[u] ... valid_hi[u] ... test_lo[u] ... test_hi[u] ... offsets[u+1]
    |---- train ----|---- gap ----|---- valid ----|---- gap ----|---- test ----|---- unused ----|

so a split is five (U,) int64 arrays of CSR rows, whatever the size of the store. Training reads
the prefix ``offsets[u]:train_end[u]``; an evaluation target at row ``i`` of user ``u`` sees the
history ``offsets[u]:i`` -- every earlier event, gap and validation events included. Nothing at or
after ``valid_lo`` is ever inside a training prefix, which is the leakage guarantee
(:meth:`Split.__post_init__` checks the ordering).

* :func:`leave_one_out` -- the SASRec/HSTU protocol (reference/PEERS.md §4): last event = test,
  second-to-last = validation.
* :func:`temporal_split` -- the ARGUS/Yambda protocol (reference/ARGUS.md §6): targets are the
  events of a time period, with a gap before each period that is neither trained on nor evaluated.
  :func:`temporal_cutoffs` picks the cut-off times from quantiles of the timestamps.

Letters: U users, E events, T evaluation targets.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, Literal

import numpy as np

from argusrec.data.batching import concat_aranges
from argusrec.data.store import SequenceStore
from argusrec.errors import DataError

EvalRole = Literal["valid", "test"]
EVAL_ROLES: tuple[EvalRole, ...] = ("valid", "test")  # the periods a model is scored on, in order
Period = Literal["train", "valid", "test"]
PERIODS: tuple[Period, ...] = ("train", *EVAL_ROLES)  # training, then the scored periods
DEFAULT_CHUNK = 1 << 22  # events per pass over a memmap: 32 MB of int64 temporaries


class EventRole(IntEnum):
    """What a split does with one event (see :meth:`Split.event_roles`)."""

    TRAIN = 0  # inside the training prefix: model input and training target
    GAP = 1  # context for later targets only (temporal gap)
    VALID = 2  # validation target
    TEST = 3  # test target
    UNUSED = 4  # after the test period, or a dropped user


# Number of per-user boundaries a row is at or past -> its role (see the module docstring).
_LEVEL_ROLE = np.array(
    [EventRole.TRAIN, EventRole.GAP, EventRole.VALID, EventRole.GAP, EventRole.TEST, EventRole.UNUSED],
    dtype=np.int8,
)


@dataclass(frozen=True, eq=False)  # arrays have no single truth value for ==
class EvalTargets:
    """T evaluation targets; the history of target t is rows ``offsets[user[t]]:index[t]``.

    Attributes:
        user: (T,) int64 user index.
        index: (T,) int64 CSR row of the target event in the store.
        position: (T,) int64 position of the target in its user's sequence = length of its history.
    """

    user: np.ndarray
    index: np.ndarray
    position: np.ndarray

    def __len__(self) -> int:
        return len(self.index)


@dataclass(frozen=True, eq=False)  # arrays have no single truth value for ==
class Split:
    """Per-user CSR boundaries of every role; all arrays (U,) int64 except ``offsets`` (U + 1,).

    Attributes:
        protocol: ``"leave_one_out"`` or ``"temporal"``.
        offsets: (U + 1,) the store's CSR offsets (user u = rows ``offsets[u]:offsets[u + 1]``).
        train_end: exclusive end of each user's training prefix ``offsets[u]:train_end[u]``.
        valid_lo, valid_hi: validation targets are rows ``valid_lo[u]:valid_hi[u]``.
        test_lo, test_hi: test targets are rows ``test_lo[u]:test_hi[u]``.
        params: the protocol's parameters, for the run record.
    """

    protocol: str
    offsets: np.ndarray
    train_end: np.ndarray
    valid_lo: np.ndarray
    valid_hi: np.ndarray
    test_lo: np.ndarray
    test_hi: np.ndarray
    params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        u = len(self.offsets) - 1
        chain = [self.offsets[:-1], self.train_end, self.valid_lo, self.valid_hi, self.test_lo, self.test_hi]
        for arr in chain[1:]:
            if arr.shape != (u,):
                raise ValueError(f"split boundaries must have shape ({u},), got {arr.shape}")
        chain.append(self.offsets[1:])
        # The leakage guarantee is this ordering: train < valid < test within every user.
        for a, b in itertools.pairwise(chain):
            if np.any(a > b):
                raise ValueError("split boundaries must satisfy start <= train_end <= valid <= test <= end")

    @property
    def n_users(self) -> int:
        return len(self.offsets) - 1

    def train_ranges(self) -> tuple[np.ndarray, np.ndarray]:
        """((U,) start, (U,) end) of each user's training prefix; feed to ``chunk_ranges``."""
        return self.offsets[:-1], self.train_end

    def target_range(self, role: EvalRole) -> tuple[np.ndarray, np.ndarray]:
        """((U,) lo, (U,) hi): user u's ``role`` targets are rows ``lo[u]:hi[u]``."""
        if role == "valid":
            return self.valid_lo, self.valid_hi
        if role == "test":
            return self.test_lo, self.test_hi
        raise ValueError(f"role must be 'valid' or 'test', got {role!r}")

    def n_targets(self, role: EvalRole) -> int:
        lo, hi = self.target_range(role)
        return int((hi - lo).sum())

    def targets(self, role: EvalRole, *, min_history: int = 0) -> EvalTargets:
        """The ``role`` targets, user by user and in time order within a user.

        Args:
            role: ``"valid"`` or ``"test"``.
            min_history: skip targets with fewer earlier events than this (e.g. 1 to leave out
                users whose first event falls in the evaluation period).
        """
        lo, hi = self.target_range(role)
        lo = np.minimum(np.maximum(lo, self.offsets[:-1] + min_history), hi)
        count = hi - lo  # (U,)
        user = np.repeat(np.arange(self.n_users, dtype=np.int64), count)  # (T,)
        index = concat_aranges(lo, count)  # (T,)
        return EvalTargets(user=user, index=index, position=index - self.offsets[user])

    def event_roles(self, index: np.ndarray | None = None, *, chunk_size: int = DEFAULT_CHUNK) -> np.ndarray:
        """:class:`EventRole` codes of rows ``index`` ((K,) int), or of all E rows; int8, same shape."""
        if index is None:
            n = int(self.offsets[-1])
            out = np.empty(n, dtype=np.int8)
            for a in range(0, n, chunk_size):
                b = min(a + chunk_size, n)
                out[a:b] = self._roles(np.arange(a, b, dtype=np.int64))
            return out
        index = np.asarray(index, dtype=np.int64)
        if index.size and (index.min() < 0 or index.max() >= self.offsets[-1]):
            raise IndexError(f"row index out of range [0, {int(self.offsets[-1])})")
        return self._roles(index)

    def _roles(self, index: np.ndarray) -> np.ndarray:
        user = np.searchsorted(self.offsets, index, side="right") - 1
        level = np.zeros(index.shape, dtype=np.int8)
        for bound in (self.train_end, self.valid_lo, self.valid_hi, self.test_lo, self.test_hi):
            level += index >= bound[user]
        return _LEVEL_ROLE[level]

    def summary(self) -> dict[str, int]:
        """Counts for logs and run records."""
        start = self.offsets[:-1]
        return {
            "users": self.n_users,
            "events": int(self.offsets[-1]),
            "train_events": int((self.train_end - start).sum()),
            "valid_targets": self.n_targets("valid"),
            "test_targets": self.n_targets("test"),
            "users_with_valid": int((self.valid_hi > self.valid_lo).sum()),
            "users_with_test": int((self.test_hi > self.test_lo).sum()),
        }


def leave_one_out(
    store: SequenceStore,
    *,
    min_events: int = 3,
    short_users: Literal["train", "drop"] = "train",
    with_valid: bool = True,
) -> Split:
    """Last event of each user = test target, second-to-last = validation target, the rest = training.

    Args:
        store: the sequence store (only its offsets are read).
        min_events: users with fewer events get no targets; at least 3 with validation (so that
            the validation target has a history), 2 without.
        short_users: ``"train"`` puts all events of short users into training, ``"drop"`` marks
            them unused.
        with_valid: ``False`` gives Meta's setting (no validation target; second-to-last trains).
    """
    lowest = 3 if with_valid else 2
    if min_events < lowest:
        raise ValueError(f"min_events must be >= {lowest} (every target needs a history), got {min_events}")
    if short_users not in ("train", "drop"):
        raise ValueError(f"short_users must be 'train' or 'drop', got {short_users!r}")
    offsets = np.asarray(store.offsets, dtype=np.int64)
    start, end = offsets[:-1], offsets[1:]
    kept = (end - start) >= min_events
    short_end = end if short_users == "train" else start
    test_lo = np.where(kept, end - 1, short_end)
    valid_lo = np.where(kept, end - 2, short_end) if with_valid else test_lo
    return Split(
        protocol="leave_one_out",
        offsets=offsets,
        train_end=valid_lo.copy(),
        valid_lo=valid_lo,
        valid_hi=test_lo.copy(),
        test_lo=test_lo,
        test_hi=np.where(kept, end, short_end),
        params={"min_events": min_events, "short_users": short_users, "with_valid": with_valid},
    )


def temporal_split(
    store: SequenceStore,
    *,
    test_start: int,
    test_end: int | None = None,
    valid_start: int | None = None,
    gap: int = 0,
    check_order: bool = True,
    chunk_size: int = DEFAULT_CHUNK,
) -> Split:
    """Global temporal split: targets are the events of a time period; every earlier event is context.

    By timestamp t (seconds):

    * train: ``t < cut - gap`` where ``cut = valid_start`` (or ``test_start`` without validation);
    * validation targets: ``valid_start <= t < test_start - gap``;
    * test targets: ``test_start <= t < test_end`` (no upper limit when ``test_end`` is None);
    * gap: ``[valid_start - gap, valid_start)`` and ``[test_start - gap, test_start)`` -- neither
      trained on nor evaluated, but part of the history of later targets (the gap keeps
      near-duplicate sessions that straddle the cut out of training, as Yambda's 30 minutes);
    * unused: ``t >= test_end``.

    Events with equal timestamps at a cut all fall on its later side.

    Args:
        store: the sequence store; its timestamps are read by binary search per user (O(U log N)
            reads, no per-event temporaries), plus one chunked pass when ``check_order``.
        check_order: verify that timestamps are non-decreasing within each user (the store builder
            guarantees it; the per-user binary search relies on it).
        chunk_size: events per chunk of the order check.
    """
    test_start, gap = int(test_start), int(gap)
    if gap < 0:
        raise ValueError(f"gap must be >= 0 seconds, got {gap}")
    if test_end is not None and int(test_end) <= test_start:
        raise ValueError(f"test_end ({test_end}) must be after test_start ({test_start})")
    if valid_start is not None and int(valid_start) >= test_start - gap:
        raise ValueError(
            f"valid_start ({valid_start}) must be before test_start - gap ({test_start - gap}); "
            "the validation period would be empty"
        )
    offsets = np.asarray(store.offsets, dtype=np.int64)
    ts = store.timestamps
    if check_order:
        _check_time_ordered(ts, offsets, chunk_size, store)
    start, end = offsets[:-1], offsets[1:]
    # Each boundary is searched only right of the previous one: cut times increase, rows follow.
    first_cut = (test_start if valid_start is None else int(valid_start)) - gap
    train_end = _segment_lower_bound(ts, start, end, first_cut)
    if valid_start is None:
        valid_lo, valid_hi = train_end.copy(), train_end.copy()
    else:
        valid_lo = _segment_lower_bound(ts, train_end, end, int(valid_start))
        valid_hi = _segment_lower_bound(ts, valid_lo, end, test_start - gap)
    test_lo = _segment_lower_bound(ts, valid_hi, end, test_start)
    test_hi = end.copy() if test_end is None else _segment_lower_bound(ts, test_lo, end, int(test_end))
    return Split(
        protocol="temporal",
        offsets=offsets,
        train_end=train_end,
        valid_lo=valid_lo,
        valid_hi=valid_hi,
        test_lo=test_lo,
        test_hi=test_hi,
        params={
            "test_start": test_start,
            "test_end": None if test_end is None else int(test_end),
            "valid_start": None if valid_start is None else int(valid_start),
            "gap": gap,
        },
    )


@dataclass(frozen=True)
class TemporalCutoffs:
    """Cut-off times (seconds) for :func:`temporal_split`."""

    test_start: int
    valid_start: int | None = None


def temporal_cutoffs(
    store: SequenceStore,
    *,
    test_fraction: float,
    valid_fraction: float = 0.0,
    by: Literal["events", "time"] = "events",
    chunk_size: int = DEFAULT_CHUNK,
) -> TemporalCutoffs:
    """Cut-offs that put the last ``test_fraction`` of the data in the test period.

    ``by="events"``: ``test_start`` is the timestamp of event number ``E - round(test_fraction * E)``
    in time order, so at least that many events (more when timestamps tie at the cut) are at or
    after it; computed exactly by :func:`timestamp_order_statistic` in chunked passes.
    ``by="time"``: ``test_start`` cuts the last ``test_fraction`` of the span ``[min t, max t]``.
    ``valid_fraction`` > 0 places ``valid_start`` the same way, just before the test share.
    """
    if not 0 < test_fraction < 1 or not 0 <= valid_fraction < 1 - test_fraction:
        raise ValueError(
            f"need 0 < test_fraction < 1 and 0 <= valid_fraction < 1 - test_fraction, "
            f"got {test_fraction}, {valid_fraction}"
        )
    ts = store.timestamps
    e = len(ts)
    if e == 0:
        raise ValueError("the store has no events")
    if by == "events":

        def cut(fraction: float) -> int:
            return timestamp_order_statistic(ts, e - max(1, round(fraction * e)), chunk_size=chunk_size)

    elif by == "time":
        lo, hi = _min_max(ts, chunk_size)

        def cut(fraction: float) -> int:
            return lo + math.ceil((1 - fraction) * (hi - lo))

    else:
        raise ValueError(f"by must be 'events' or 'time', got {by!r}")
    test_start = cut(test_fraction)
    if valid_fraction == 0:
        return TemporalCutoffs(test_start=test_start)
    valid_start = cut(test_fraction + valid_fraction)
    if valid_start >= test_start:
        raise ValueError(
            f"the validation share falls on the same timestamp as the test cut ({test_start}); "
            "timestamps are too coarse for this valid_fraction, choose a larger one"
        )
    return TemporalCutoffs(test_start=test_start, valid_start=valid_start)


def timestamp_order_statistic(
    values: np.ndarray, k: int, *, chunk_size: int = DEFAULT_CHUNK, bins: int = 1 << 16
) -> int:
    """``np.sort(values)[k]`` for an int64 (memory-mapped) array without sorting or copying it.

    Histogram refinement: each chunked pass counts values into ``bins`` equal-width buckets of the
    current candidate interval and keeps the bucket holding rank k, shrinking the interval
    ``bins``-fold; a span of 2^31 seconds needs a min/max pass plus two counting passes.
    """
    n = len(values)
    if not 0 <= k < n:
        raise IndexError(f"k={k} out of range for {n} values")
    lo, hi = _min_max(values, chunk_size)
    rank = k  # rank of the answer among the values inside [lo, hi]
    while lo < hi:
        width = -(-(hi - lo + 1) // bins)
        counts = np.zeros(bins, dtype=np.int64)
        # Offsets from lo as uint64 so that spans wider than int64 (negative to positive) cannot overflow.
        lo_u = np.uint64(lo % (1 << 64))
        for a in range(0, n, chunk_size):
            x = np.asarray(values[a : a + chunk_size])
            x = x[(x >= lo) & (x <= hi)]
            bucket = (x.astype(np.uint64) - lo_u) // np.uint64(width)
            counts += np.bincount(bucket.astype(np.int64), minlength=bins)
        cum = np.cumsum(counts)
        j = int(np.searchsorted(cum, rank, side="right"))  # first bucket whose cumulative count > rank
        rank -= int(cum[j - 1]) if j else 0
        lo = lo + j * width
        hi = min(hi, lo + width - 1)
    return lo


def _min_max(values: np.ndarray, chunk_size: int) -> tuple[int, int]:
    lo, hi = None, None
    for a in range(0, len(values), chunk_size):
        x = np.asarray(values[a : a + chunk_size])
        lo = int(x.min()) if lo is None else min(lo, int(x.min()))
        hi = int(x.max()) if hi is None else max(hi, int(x.max()))
    if lo is None or hi is None:
        raise ValueError("no values")
    return lo, hi


def _segment_lower_bound(values: np.ndarray, lo: np.ndarray, hi: np.ndarray, target: int) -> np.ndarray:
    """Per segment, the first row ``i`` in ``[lo, hi)`` with ``values[i] >= target`` (``hi`` if none).

    A binary search run for all segments at once: each round halves every active segment, so
    ``log2(longest segment)`` rounds of (U,) vector ops; ``values`` must be sorted within segments.
    """
    lo = np.array(lo, dtype=np.int64)
    hi = np.array(hi, dtype=np.int64)
    active = np.flatnonzero(lo < hi)
    while active.size:
        mid = (lo[active] + hi[active]) // 2
        below = values[mid] < target  # mid ascends with active, so memmap reads stay ordered
        lo[active[below]] = mid[below] + 1
        hi[active[~below]] = mid[~below]
        active = active[lo[active] < hi[active]]
    return lo


def _check_time_ordered(ts: np.ndarray, offsets: np.ndarray, chunk_size: int, store: SequenceStore) -> None:
    """Raise :class:`DataError` at the first row whose timestamp is earlier than its predecessor's in the same user."""
    n = len(ts)
    for a in range(0, max(n - 1, 0), chunk_size):
        b = min(a + chunk_size, n - 1)
        x = np.asarray(ts[a : b + 1])  # one row of overlap so drops across chunk borders are seen
        drop = np.flatnonzero(x[1:] < x[:-1]) + a + 1  # rows earlier than the row before them
        # A drop at a user's first row is the boundary between two users, not a disorder.
        first_rows = offsets[np.searchsorted(offsets, a + 1) : np.searchsorted(offsets, b, side="right")]
        drop = drop[~np.isin(drop, first_rows)]
        if drop.size:
            row = int(drop[0])
            user = int(np.searchsorted(offsets, row, side="right") - 1)
            raise DataError(
                f"timestamps are not sorted within user index {user} (row {row}: {int(ts[row])} after "
                f"{int(ts[row - 1])})",
                file=None if store.path is None else str(store.path),
                column="timestamp",
                hint="rebuild the store; the builder sorts events by (user, timestamp)",
            )
