"""Splits: exact outputs on hand-built stores, and leakage proofs on random stores."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from argusrec.data.schema import ITEM_ID, TIMESTAMP, DatasetSchema
from argusrec.data.splits import (
    EventRole,
    Split,
    TemporalCutoffs,
    leave_one_out,
    temporal_cutoffs,
    temporal_split,
    timestamp_order_statistic,
)
from argusrec.data.store import SequenceStore
from argusrec.errors import DataError

R = EventRole


def make_store(lengths: list[int] | np.ndarray, timestamps: list[int] | np.ndarray) -> SequenceStore:
    lengths = np.asarray(lengths, dtype=np.int64)
    n = int(lengths.sum())
    return SequenceStore.from_arrays(
        lengths=lengths,
        columns={ITEM_ID: np.arange(1, n + 1), TIMESTAMP: np.asarray(timestamps, dtype=np.int64)},
    )


def random_store(seed: int, n_users: int = 60, cut: int = 50) -> SequenceStore:
    """Users of every kind around ``cut``: empty, 1-2 events, all before, all after, straddling.

    Timestamps come from a narrow range so that many events tie, including exactly at the cut.
    """
    rng = np.random.default_rng(seed)
    lengths = rng.integers(0, 9, size=n_users)
    lengths[:4] = [0, 1, 2, 2]
    ts = []
    for u, n in enumerate(lengths):
        kind = u % 4 if u >= 4 else rng.integers(0, 4)
        lo, hi = [(cut - 30, cut - 1), (cut, cut + 30), (cut - 15, cut + 15), (cut - 2, cut + 2)][kind]
        ts.append(np.sort(rng.integers(lo, hi + 1, size=n)))
    return make_store(lengths, np.concatenate(ts))


def naive_temporal_role(t: int, *, test_start: int, test_end: int | None, valid_start: int | None, gap: int) -> R:
    """The protocol's definition, one event at a time (the reference the vectorised split must match)."""
    first_cut = (test_start if valid_start is None else valid_start) - gap
    if t < first_cut:
        return R.TRAIN
    if valid_start is not None and t < valid_start:
        return R.GAP
    if valid_start is not None and t < test_start - gap:
        return R.VALID
    if t < test_start:
        return R.GAP
    if test_end is None or t < test_end:
        return R.TEST
    return R.UNUSED


def users_of_rows(offsets: np.ndarray) -> np.ndarray:
    return np.repeat(np.arange(len(offsets) - 1), np.diff(offsets))


# ---------------------------------------------------------------------------------------- leave-one-out
def test_leave_one_out_exact() -> None:
    store = make_store([5, 2, 3, 1, 0], np.arange(11))
    split = leave_one_out(store)
    np.testing.assert_array_equal(split.train_end, [3, 7, 8, 11, 11])
    np.testing.assert_array_equal(split.valid_lo, [3, 7, 8, 11, 11])
    np.testing.assert_array_equal(split.valid_hi, [4, 7, 9, 11, 11])
    np.testing.assert_array_equal(split.test_lo, [4, 7, 9, 11, 11])
    np.testing.assert_array_equal(split.test_hi, [5, 7, 10, 11, 11])
    test = split.targets("test")
    np.testing.assert_array_equal(test.user, [0, 2])
    np.testing.assert_array_equal(test.index, [4, 9])
    np.testing.assert_array_equal(test.position, [4, 2])
    valid = split.targets("valid")
    np.testing.assert_array_equal(valid.user, [0, 2])
    np.testing.assert_array_equal(valid.index, [3, 8])
    np.testing.assert_array_equal(valid.position, [3, 1])
    t, v, e = R.TRAIN, R.VALID, R.TEST
    np.testing.assert_array_equal(split.event_roles(), [t, t, t, v, e, t, t, t, v, e, t])
    assert split.summary() == {
        "users": 5,
        "events": 11,
        "train_events": 7,
        "valid_targets": 2,
        "test_targets": 2,
        "users_with_valid": 2,
        "users_with_test": 2,
    }


def test_leave_one_out_drop_short_users_and_no_valid() -> None:
    store = make_store([5, 2, 3, 1, 0], np.arange(11))
    dropped = leave_one_out(store, short_users="drop")
    u, t, v, e = R.UNUSED, R.TRAIN, R.VALID, R.TEST
    np.testing.assert_array_equal(dropped.event_roles(), [t, t, t, v, e, u, u, t, v, e, u])
    np.testing.assert_array_equal(dropped.train_end, [3, 5, 8, 10, 11])

    meta = leave_one_out(store, with_valid=False, min_events=2)
    np.testing.assert_array_equal(meta.event_roles(), [t, t, t, t, e, t, e, t, t, e, t])
    assert meta.n_targets("valid") == 0
    np.testing.assert_array_equal(meta.targets("test").index, [4, 6, 9])


@pytest.mark.parametrize("min_events", [3, 5])
@pytest.mark.parametrize("short_users", ["train", "drop"])
@pytest.mark.parametrize("seed", range(5))
def test_leave_one_out_leakage_on_random_stores(seed: int, min_events: int, short_users: str) -> None:
    store = random_store(seed)
    split = leave_one_out(store, min_events=min_events, short_users=short_users)  # type: ignore[arg-type]
    offsets, lengths = store.offsets, store.lengths
    kept = lengths >= min_events
    last = offsets[1:] - 1

    test, valid = split.targets("test"), split.targets("valid")
    np.testing.assert_array_equal(test.user, np.flatnonzero(kept))
    np.testing.assert_array_equal(test.index, last[kept])
    np.testing.assert_array_equal(valid.index, last[kept] - 1)
    # The test history includes the validation event; the validation history excludes the test event.
    np.testing.assert_array_equal(test.position, lengths[kept] - 1)
    np.testing.assert_array_equal(valid.position, lengths[kept] - 2)
    assert np.all(valid.position >= 1)  # every target has a history

    # No target is inside any training prefix, and the training prefix is everything else.
    users = users_of_rows(offsets)
    rows = np.arange(store.n_events)
    in_train = rows < split.train_end[users]
    assert not in_train[test.index].any()
    assert not in_train[valid.index].any()
    expected_train = np.where(kept[users], rows < last[users] - 1, short_users == "train")
    np.testing.assert_array_equal(in_train, expected_train)
    roles = split.event_roles()
    np.testing.assert_array_equal(roles == R.TRAIN, in_train)
    np.testing.assert_array_equal(np.flatnonzero(roles == R.TEST), test.index)
    np.testing.assert_array_equal(np.flatnonzero(roles == R.VALID), valid.index)
    assert set(np.unique(roles)) <= {R.TRAIN, R.VALID, R.TEST, R.UNUSED}


def test_leave_one_out_rejects_bad_arguments() -> None:
    store = make_store([3], [1, 2, 3])
    with pytest.raises(ValueError, match="min_events"):
        leave_one_out(store, min_events=2)
    with pytest.raises(ValueError, match="short_users"):
        leave_one_out(store, short_users="keep")  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------- temporal
def test_temporal_exact_with_ties_gap_valid_and_test_end() -> None:
    # user 0 straddles every period, user 1 lies entirely in the test period, user 2 entirely before
    # the validation period (its event at t=3 falls in the gap), user 3 has no events.
    store = make_store([7, 2, 2, 0], [1, 5, 9, 10, 10, 12, 20, 10, 11, 2, 3])
    split = temporal_split(store, valid_start=5, test_start=10, gap=2, test_end=20, chunk_size=3)
    np.testing.assert_array_equal(split.train_end, [1, 7, 10, 11])
    np.testing.assert_array_equal(split.valid_lo, [1, 7, 11, 11])
    np.testing.assert_array_equal(split.valid_hi, [2, 7, 11, 11])
    np.testing.assert_array_equal(split.test_lo, [3, 7, 11, 11])
    np.testing.assert_array_equal(split.test_hi, [6, 9, 11, 11])
    t, g, v, e, u = R.TRAIN, R.GAP, R.VALID, R.TEST, R.UNUSED
    np.testing.assert_array_equal(split.event_roles(chunk_size=4), [t, v, g, e, e, e, u, e, e, t, g])
    np.testing.assert_array_equal(split.event_roles(np.array([8, 2, 0])), [e, g, t])

    test = split.targets("test")
    np.testing.assert_array_equal(test.user, [0, 0, 0, 1, 1])
    np.testing.assert_array_equal(test.index, [3, 4, 5, 7, 8])
    np.testing.assert_array_equal(test.position, [3, 4, 5, 0, 1])
    np.testing.assert_array_equal(split.targets("test", min_history=1).index, [3, 4, 5, 8])
    np.testing.assert_array_equal(split.targets("test", min_history=4).index, [4, 5])
    valid = split.targets("valid")
    np.testing.assert_array_equal(valid.index, [1])
    np.testing.assert_array_equal(valid.position, [1])
    assert split.params == {"test_start": 10, "test_end": 20, "valid_start": 5, "gap": 2}


def test_temporal_without_valid_keeps_gap_events_as_history() -> None:
    store = make_store([5], [1, 7, 8, 10, 10])
    split = temporal_split(store, test_start=10, gap=3)  # gap = [7, 10)
    t, g, e = R.TRAIN, R.GAP, R.TEST
    np.testing.assert_array_equal(split.event_roles(), [t, g, g, e, e])
    assert split.n_targets("valid") == 0
    # The first test target's history is every earlier event, the gap events included.
    np.testing.assert_array_equal(split.targets("test").position, [3, 4])


CONFIGS = [
    {"test_start": 50, "test_end": None, "valid_start": None, "gap": 0},
    {"test_start": 50, "test_end": None, "valid_start": None, "gap": 3},
    {"test_start": 50, "test_end": 60, "valid_start": 40, "gap": 0},
    {"test_start": 50, "test_end": 53, "valid_start": 38, "gap": 4},
]


@pytest.mark.parametrize("cfg", CONFIGS)
@pytest.mark.parametrize("seed", range(6))
def test_temporal_leakage_on_random_stores(seed: int, cfg: dict) -> None:
    store = random_store(seed, cut=cfg["test_start"])
    split = temporal_split(store, chunk_size=5, **cfg)
    ts, offsets = store.timestamps, store.offsets
    users = users_of_rows(offsets)
    rows = np.arange(store.n_events)

    # 1. Every event's role is the protocol's definition applied to its timestamp.
    naive = np.array([naive_temporal_role(int(x), **cfg) for x in ts], dtype=np.int8)
    np.testing.assert_array_equal(split.event_roles(chunk_size=7), naive)

    # 2. The training prefix holds exactly the training events: nothing at or after test_start,
    #    nothing inside a gap, no validation event -- and no training event is missing.
    in_train = rows < split.train_end[users]
    np.testing.assert_array_equal(in_train, naive == R.TRAIN)
    assert np.all(ts[in_train] < cfg["test_start"] - cfg["gap"])
    if cfg["valid_start"] is not None:
        assert np.all(ts[in_train] < cfg["valid_start"] - cfg["gap"])

    # 3. Targets are exactly the events of their period, never in training, with full history.
    for role, code in (("test", R.TEST), ("valid", R.VALID)):
        tg = split.targets(role)  # type: ignore[arg-type]
        np.testing.assert_array_equal(tg.index, np.flatnonzero(naive == code))
        np.testing.assert_array_equal(tg.user, users[tg.index])
        assert not in_train[tg.index].any()
        assert np.all(tg.index >= split.train_end[tg.user])
        np.testing.assert_array_equal(tg.position, tg.index - offsets[tg.user])
        # The history is the whole earlier sequence: every earlier event of the user (timestamp
        # strictly before the target, whatever its role) lies in offsets[u]:index.
        n_earlier = np.array(
            [np.sum(ts[offsets[u] : offsets[u + 1]] < ts[i]) for u, i in zip(tg.user, tg.index, strict=True)]
        )
        assert np.all(tg.position >= n_earlier)
    if cfg["test_end"] is None:
        test = split.targets("test")
        assert np.all(ts[test.index] >= cfg["test_start"])
        np.testing.assert_array_equal(np.sort(test.index), np.flatnonzero(ts >= cfg["test_start"]))


def test_temporal_on_memory_mapped_store_matches_in_memory(tmp_path: Path) -> None:
    mem = random_store(7, n_users=200)
    for name, arr in {"offsets": mem.offsets, **mem.columns}.items():
        np.save(tmp_path / f"{name}.npy", arr)
    mapped = SequenceStore(
        schema=DatasetSchema(),
        offsets=np.load(tmp_path / "offsets.npy", mmap_mode="r"),
        columns={n: np.load(tmp_path / f"{n}.npy", mmap_mode="r") for n in mem.columns},
        n_items=mem.n_items,
    )
    assert isinstance(mapped.timestamps, np.memmap)
    a = temporal_split(mem, test_start=50, valid_start=40, gap=2, chunk_size=64)
    b = temporal_split(mapped, test_start=50, valid_start=40, gap=2, chunk_size=64)
    for name in ("train_end", "valid_lo", "valid_hi", "test_lo", "test_hi"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    np.testing.assert_array_equal(a.event_roles(), b.event_roles(chunk_size=100))


def test_temporal_rejects_bad_arguments() -> None:
    store = make_store([3], [1, 2, 3])
    with pytest.raises(ValueError, match="gap"):
        temporal_split(store, test_start=2, gap=-1)
    with pytest.raises(ValueError, match="test_end"):
        temporal_split(store, test_start=2, test_end=2)
    with pytest.raises(ValueError, match="valid_start"):
        temporal_split(store, test_start=10, valid_start=8, gap=2)


@pytest.mark.parametrize("chunk_size", [1, 2, 3, 100])
def test_temporal_checks_time_order_within_users_only(chunk_size: int) -> None:
    # user 0 ends at 9 and user 1 starts at 1: a drop at a user boundary is fine.
    ok = make_store([3, 3], [1, 5, 9, 1, 2, 2])
    temporal_split(ok, test_start=5, chunk_size=chunk_size)
    bad = make_store([3, 3], [1, 5, 9, 1, 3, 2])
    with pytest.raises(DataError, match="user index 1 \\(row 5"):
        temporal_split(bad, test_start=5, chunk_size=chunk_size)
    temporal_split(bad, test_start=5, check_order=False)  # the check can be skipped


def test_split_refuses_disordered_boundaries() -> None:
    offsets = np.array([0, 4], dtype=np.int64)
    good = {k: np.array([2]) for k in ("train_end", "valid_lo", "valid_hi", "test_lo", "test_hi")}
    Split(protocol="x", offsets=offsets, **good)
    with pytest.raises(ValueError, match="boundaries"):
        Split(protocol="x", offsets=offsets, **{**good, "test_lo": np.array([1])})
    with pytest.raises(ValueError, match="boundaries"):
        Split(protocol="x", offsets=offsets, **{**good, "test_hi": np.array([5])})
    with pytest.raises(ValueError, match="shape"):
        Split(protocol="x", offsets=offsets, **{**good, "train_end": np.array([1, 2])})


# ---------------------------------------------------------------------------------------- cut-offs
@pytest.mark.parametrize(("low", "high"), [(0, 40), (1_600_000_000, 1_700_000_000), (-(2**62), 2**62), (-5, -5)])
def test_order_statistic_equals_sort(low: int, high: int) -> None:
    rng = np.random.default_rng(0)
    values = rng.integers(low, high, size=1000, endpoint=True, dtype=np.int64)
    ordered = np.sort(values)
    for k in [0, 1, 499, 900, 999]:
        # few bins and small chunks force several refinement passes over several chunks
        assert timestamp_order_statistic(values, k, chunk_size=97, bins=4) == ordered[k]
        assert timestamp_order_statistic(values, k, chunk_size=1000) == ordered[k]
    with pytest.raises(IndexError):
        timestamp_order_statistic(values, 1000)


def test_temporal_cutoffs_by_events_and_by_time() -> None:
    rng = np.random.default_rng(3)
    ts = np.sort(rng.integers(0, 1000, size=500))
    store = make_store([500], ts)
    cut = temporal_cutoffs(store, test_fraction=0.1, valid_fraction=0.2, chunk_size=64)
    assert cut.test_start == ts[450]
    assert cut.valid_start == ts[350]
    assert np.sum(ts >= cut.test_start) >= 50
    assert temporal_cutoffs(store, test_fraction=0.1).valid_start is None

    span = make_store([3], [100, 150, 200])
    assert temporal_cutoffs(span, test_fraction=0.1, valid_fraction=0.1, by="time") == TemporalCutoffs(
        test_start=190, valid_start=180
    )
    # Tied timestamps leave no room for a validation period: a clear error, not an empty period.
    flat = make_store([4], [7, 7, 7, 7])
    with pytest.raises(ValueError, match="too coarse"):
        temporal_cutoffs(flat, test_fraction=0.25, valid_fraction=0.25)
    with pytest.raises(ValueError, match="test_fraction"):
        temporal_cutoffs(store, test_fraction=1.5)
