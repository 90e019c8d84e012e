"""Chunking, padded batch assembly and the resumable batch iterator."""

from __future__ import annotations

import numpy as np
import pytest

from argusrec.data.batching import (
    MASK,
    POSITIONS,
    USER_INDEX,
    ChunkBatches,
    Chunks,
    assemble_batch,
    chunk_ranges,
    concat_aranges,
    history_windows,
    pad_value,
)
from argusrec.data.schema import ITEM_ID, REQUEST_ID, TIMESTAMP, DatasetSchema
from argusrec.data.store import SequenceStore

SCHEMA = DatasetSchema.of(context=["surface"], feedback={"like": "binary"}, request=True, truth=["p_like"])
PADS = {ITEM_ID: 0, TIMESTAMP: 0, "surface": 0, "like": np.nan, REQUEST_ID: -1, "p_like": np.nan}


def rich_store(seed: int = 0, n_users: int = 30) -> SequenceStore:
    """A store with every column role; values are distinct per row so a wrong gather shows."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(0, 25, size=n_users)
    n = int(lengths.sum())
    rows = np.arange(n)
    return SequenceStore.from_arrays(
        lengths=lengths,
        schema=SCHEMA,
        columns={
            ITEM_ID: rows % 97 + 1,
            TIMESTAMP: 1_000 + rows,
            "surface": rows % 5 + 1,
            "like": np.where(rows % 3 == 0, np.nan, rows % 2).astype(np.float32),
            REQUEST_ID: rows // 4,
            "p_like": (rows / (n + 1)).astype(np.float32),
        },
    )


# ---------------------------------------------------------------------------------------- chunking
def test_concat_aranges() -> None:
    np.testing.assert_array_equal(concat_aranges(np.array([5, 0, 10]), np.array([2, 0, 3])), [5, 6, 10, 11, 12])
    assert concat_aranges(np.array([1]), np.array([0])).shape == (0,)


def test_chunk_ranges_exact() -> None:
    starts, ends = np.array([0, 10, 20]), np.array([10, 13, 20])
    c = chunk_ranges(starts, ends, 4)
    np.testing.assert_array_equal(c.user, [0, 0, 0, 1])
    np.testing.assert_array_equal(c.start, [0, 2, 6, 10])
    np.testing.assert_array_equal(c.length, [2, 4, 4, 3])
    c = chunk_ranges(starts, ends, 4, min_len=3)
    np.testing.assert_array_equal(c.start, [2, 6, 10])
    c = chunk_ranges(starts, ends, 4, max_chunks_per_user=1)  # SASRec: the last max_len events
    np.testing.assert_array_equal(c.start, [6, 10])
    np.testing.assert_array_equal(c.length, [4, 3])
    c = chunk_ranges(starts, ends, 4, users=np.array([7, 8, 9]))
    np.testing.assert_array_equal(c.user, [7, 7, 7, 8])


@pytest.mark.parametrize("max_chunks", [None, 1, 2])
@pytest.mark.parametrize("min_len", [1, 3])
@pytest.mark.parametrize("max_len", [1, 4, 7])
@pytest.mark.parametrize("seed", range(3))
def test_chunk_ranges_properties(seed: int, max_len: int, min_len: int, max_chunks: int | None) -> None:
    min_len = min(min_len, max_len)  # min_len > max_len is rejected (tested below)
    rng = np.random.default_rng(seed)
    lengths = rng.integers(0, 30, size=40)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]) + 100
    ends = starts + lengths
    c = chunk_ranges(starts, ends, max_len, min_len=min_len, max_chunks_per_user=max_chunks)
    assert np.all(c.length >= min_len) and np.all(c.length <= max_len)
    for u in range(len(starts)):
        mine = c.user == u
        s, ln = c.start[mine], c.length[mine]
        covered = concat_aranges(s, ln)
        # never overlapping, oldest first, contiguous, and ending at the range's end
        assert np.all(np.diff(covered) == 1)
        if not len(s):
            assert lengths[u] < min_len or lengths[u] == 0
            continue
        assert covered[-1] == ends[u] - 1 and covered[0] >= starts[u]
        # only the oldest chunk may be short
        assert np.all(ln[1:] == max_len)
        # what is left out is only what the options ask to leave out
        n_full = lengths[u] // max_len
        rest = lengths[u] % max_len
        expect_chunks = n_full + (rest >= min_len and rest > 0)
        if max_chunks is not None:
            expect_chunks = min(expect_chunks, max_chunks)
        assert len(s) == expect_chunks
        if max_chunks is None and min_len == 1:
            np.testing.assert_array_equal(covered, np.arange(starts[u], ends[u]))


def test_chunk_ranges_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="max_len"):
        chunk_ranges(np.array([0]), np.array([3]), 0)
    with pytest.raises(ValueError, match="min_len"):
        chunk_ranges(np.array([0]), np.array([3]), 2, min_len=3)
    with pytest.raises(ValueError, match="end >= start"):
        chunk_ranges(np.array([3]), np.array([0]), 2)


def test_history_windows() -> None:
    offsets = np.array([0, 5, 8])
    w = history_windows(offsets, np.array([0, 0, 1, 1]), np.array([0, 4, 5, 7]), 3)
    np.testing.assert_array_equal(w.start, [0, 1, 5, 5])
    np.testing.assert_array_equal(w.length, [0, 3, 0, 2])
    w = history_windows(offsets, np.array([0, 0, 1, 1]), np.array([0, 4, 5, 7]), 3, include_target=True)
    np.testing.assert_array_equal(w.start, [0, 2, 5, 5])
    np.testing.assert_array_equal(w.length, [1, 3, 1, 3])
    np.testing.assert_array_equal(w.user, [0, 0, 1, 1])
    with pytest.raises(ValueError, match="inside its user"):
        history_windows(offsets, np.array([0]), np.array([5]), 3)


# ---------------------------------------------------------------------------------------- assembly
def naive_batch(store: SequenceStore, start, length, n: int, padding: str) -> dict[str, np.ndarray]:
    """Row by row, event by event: the reference assemble_batch must equal."""
    out: dict[str, np.ndarray] = {}
    for name, col in store.columns.items():
        out[name] = np.full((len(start), n), PADS[name], dtype=col.dtype)
    out[MASK] = np.zeros((len(start), n), dtype=bool)
    out[POSITIONS] = np.full((len(start), n), -1, dtype=np.int64)
    users = []
    for b, (s, ln) in enumerate(zip(start, length, strict=True)):
        u = next(u for u in range(store.n_users) if store.offsets[u] <= s < store.offsets[u + 1])
        users.append(u)
        for j in range(ln):
            col_j = n - ln + j if padding == "left" else j
            for name, col in store.columns.items():
                out[name][b, col_j] = col[s + j]
            out[MASK][b, col_j] = True
            out[POSITIONS][b, col_j] = s + j - store.offsets[u]
    out[USER_INDEX] = np.array(users, dtype=np.int64)
    return out


@pytest.mark.parametrize("padding", ["left", "right"])
@pytest.mark.parametrize("fixed_n", [None, 12])
def test_assemble_batch_equals_naive_reference(padding: str, fixed_n: int | None) -> None:
    store = rich_store()
    start, end = store.offsets[:-1], store.offsets[1:]
    chunks = chunk_ranges(start, end, 12, min_len=1)
    rng = np.random.default_rng(1)
    ids = rng.choice(len(chunks), size=9, replace=False)
    part = chunks.take(ids)
    got = assemble_batch(store, part.start, part.length, n=fixed_n, padding=padding)  # type: ignore[arg-type]
    n = int(part.length.max()) if fixed_n is None else fixed_n
    want = naive_batch(store, part.start, part.length, n, padding)
    assert set(got) == set(want)
    for key, arr in want.items():
        assert got[key].dtype == arr.dtype, key
        np.testing.assert_array_equal(got[key], arr, err_msg=key)  # NaN equals NaN here
    # passing the users explicitly gives the same batch
    again = assemble_batch(store, part.start, part.length, user=part.user, n=fixed_n, padding=padding)  # type: ignore[arg-type]
    np.testing.assert_array_equal(again[ITEM_ID], got[ITEM_ID])
    np.testing.assert_array_equal(got[USER_INDEX], part.user)


def test_padding_values_mask_and_sides_on_a_tiny_store() -> None:
    store = SequenceStore.from_arrays(
        lengths=np.array([3, 1]),
        schema=SCHEMA,
        columns={
            ITEM_ID: [5, 6, 7, 8],
            TIMESTAMP: [10, 20, 30, 40],
            "surface": [1, 2, 1, 3],
            "like": [1.0, 0.0, np.nan, 1.0],
            REQUEST_ID: [4, 4, 9, 11],
            "p_like": [0.5, 0.25, 0.125, 1.0],
        },
    )
    left = assemble_batch(store, np.array([3, 0]), np.array([1, 3]), n=4)
    np.testing.assert_array_equal(left[ITEM_ID], [[0, 0, 0, 8], [0, 5, 6, 7]])
    np.testing.assert_array_equal(left[TIMESTAMP], [[0, 0, 0, 40], [0, 10, 20, 30]])
    np.testing.assert_array_equal(left["surface"], [[0, 0, 0, 3], [0, 1, 2, 1]])
    np.testing.assert_array_equal(left["like"], [[np.nan] * 3 + [1.0], [np.nan, 1.0, 0.0, np.nan]])
    np.testing.assert_array_equal(left[REQUEST_ID], [[-1, -1, -1, 11], [-1, 4, 4, 9]])
    np.testing.assert_array_equal(left[MASK], [[False, False, False, True], [False, True, True, True]])
    np.testing.assert_array_equal(left[POSITIONS], [[-1, -1, -1, 0], [-1, 0, 1, 2]])
    np.testing.assert_array_equal(left[USER_INDEX], [1, 0])
    assert left["like"].dtype == np.float32 and left[TIMESTAMP].dtype == np.int64

    right = assemble_batch(store, np.array([3, 1]), np.array([1, 2]), columns=[ITEM_ID], padding="right")
    assert set(right) == {ITEM_ID, MASK, POSITIONS, USER_INDEX}
    np.testing.assert_array_equal(right[ITEM_ID], [[8, 0], [6, 7]])  # N = longest chunk = 2
    np.testing.assert_array_equal(right[MASK], [[True, False], [True, True]])
    np.testing.assert_array_equal(right[POSITIONS], [[0, -1], [1, 2]])

    assert np.isnan(pad_value(SCHEMA, "p_like")) and pad_value(SCHEMA, REQUEST_ID) == -1
    with pytest.raises(KeyError):
        pad_value(SCHEMA, "nope")
    with pytest.raises(ValueError, match="shorter than the longest"):
        assemble_batch(store, np.array([0]), np.array([3]), n=2)
    with pytest.raises(ValueError, match="cross users"):
        assemble_batch(store, np.array([1]), np.array([3]))
    with pytest.raises(ValueError, match="padding"):
        assemble_batch(store, np.array([0]), np.array([3]), padding="middle")  # type: ignore[arg-type]


def test_history_window_batch_ends_just_before_the_target() -> None:
    store = rich_store(2)
    users = np.flatnonzero(store.lengths >= 2)
    index = store.offsets[users + 1] - 1  # each user's last event as the target
    w = history_windows(store.offsets, users, index, 6)
    batch = assemble_batch(store, w.start, w.length, user=w.user, n=6)
    np.testing.assert_array_equal(batch[TIMESTAMP][:, -1], store.timestamps[index - 1])
    np.testing.assert_array_equal(batch[POSITIONS][:, -1], store.lengths[users] - 2)
    w = history_windows(store.offsets, users, index, 6, include_target=True)
    batch = assemble_batch(store, w.start, w.length, user=w.user, n=6)
    np.testing.assert_array_equal(batch[ITEM_ID][:, -1], store.items[index])


# ---------------------------------------------------------------------------------------- iterator
def make_batches(**kwargs) -> ChunkBatches:
    store = rich_store(3, n_users=50)
    chunks = chunk_ranges(store.offsets[:-1], store.offsets[1:], 8)
    return ChunkBatches(store, chunks, **{"batch_size": 7, "n": 8, **kwargs})


def test_iterator_len_and_every_chunk_once_per_epoch() -> None:
    it = make_batches()
    c = len(it.chunks)
    assert c % 7 != 0  # the last batch is partial, so drop_last changes the count
    assert len(it) == c // 7 + 1
    assert len(make_batches(drop_last=True)) == c // 7
    ids = np.concatenate(list(it.batch_ids(epoch=0)))
    np.testing.assert_array_equal(np.sort(ids), np.arange(c))
    dropped = list(make_batches(drop_last=True).batch_ids(epoch=0))
    assert len(dropped) == c // 7 and all(len(b) == 7 for b in dropped)
    np.testing.assert_array_equal(np.concatenate(list(make_batches(shuffle=False).batch_ids(0))), np.arange(c))


def test_iterator_is_deterministic_per_seed_and_epoch() -> None:
    a, b = make_batches(seed=5), make_batches(seed=5)
    np.testing.assert_array_equal(a.order(3), b.order(3))
    assert not np.array_equal(a.order(3), a.order(4))
    assert not np.array_equal(a.order(3), make_batches(seed=6).order(3))
    for x, y in zip(a.epoch(3), b.epoch(3), strict=True):
        for key in x:
            np.testing.assert_array_equal(x[key], y[key])


@pytest.mark.parametrize("start_batch", [0, 1, 4])
def test_resume_at_batch_equals_the_uninterrupted_epoch(start_batch: int) -> None:
    full = list(make_batches(seed=11).epoch(2))
    resumed = list(make_batches(seed=11).epoch(2, start_batch=start_batch))  # a fresh process
    assert len(resumed) == len(full) - start_batch
    for x, y in zip(full[start_batch:], resumed, strict=True):
        assert x.keys() == y.keys()
        for key in x:
            np.testing.assert_array_equal(x[key], y[key])
    assert list(make_batches().epoch(0, start_batch=len(full))) == []
    with pytest.raises(ValueError, match="start_batch"):
        next(make_batches().epoch(0, start_batch=len(full) + 1))


def test_iterator_batches_are_the_assembled_chunks() -> None:
    it = make_batches(seed=1, padding="right", columns=[ITEM_ID, "like"])
    for ids, batch in zip(it.batch_ids(1), it.epoch(1), strict=True):
        part: Chunks = it.chunks.take(ids)
        want = assemble_batch(it.store, part.start, part.length, columns=[ITEM_ID, "like"], n=8, padding="right")
        assert batch[ITEM_ID].shape == (len(ids), 8)
        for key in want:
            np.testing.assert_array_equal(batch[key], want[key])


def test_length_buckets_keep_every_chunk_once_and_reduce_padding() -> None:
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 40, 500)
    store = SequenceStore.from_arrays(
        lengths=lengths, columns={"item_id": np.ones(lengths.sum()), "timestamp": np.arange(lengths.sum())}
    )
    chunks = chunk_ranges(store.offsets[:-1], store.offsets[1:], 40)
    plain = ChunkBatches(store, chunks, batch_size=16, seed=3)
    bucketed = ChunkBatches(store, chunks, batch_size=16, seed=3, bucket=8)
    for batches in (plain, bucketed):
        order = batches.order(0)
        assert sorted(order.tolist()) == list(range(len(chunks)))  # a permutation: every chunk once
    assert (bucketed.order(1) == bucketed.order(1)).all() and not (bucketed.order(1) == bucketed.order(2)).all()

    def padded_cells(batches: ChunkBatches) -> int:
        return sum(int(b["mask"].size) for b in batches.epoch(0))

    assert padded_cells(bucketed) < 0.7 * padded_cells(plain)
    # the short last batch stays last, so drop_last still drops exactly it
    tail = ChunkBatches(store, chunks, batch_size=16, seed=3, bucket=8, drop_last=True)
    assert len(tail) == len(chunks) // 16
    assert all(len(ids) == 16 for ids in tail.batch_ids(0))
    with pytest.raises(ValueError, match="bucket must be"):
        ChunkBatches(store, chunks, batch_size=16, bucket=0)
