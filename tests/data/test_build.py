"""The out-of-core builder: round trip, ordering, id maps, rejects, duplicates, partitions, atomicity."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from argusrec.data.adapters.base import EventSource
from argusrec.data.build import build_store
from argusrec.data.schema import DatasetSchema
from argusrec.data.store import SequenceStore
from argusrec.errors import DataError

SCHEMA = DatasetSchema.of(
    context=["surface"],
    feedback={"like": "binary", "ratio": "continuous"},
    item_features=["artist"],
    request=True,
)


def _source(batches: list[dict], schema: DatasetSchema = SCHEMA, items: pa.Table | None = None, name="t.csv"):
    def read():
        for b in batches:
            yield name, pa.record_batch(b)

    return EventSource(name="test", schema=schema, read=read, items=items)


def _random_events(n: int, n_users: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    return {
        "user_id": rng.integers(1000, 1000 + n_users, n),
        "item_id": rng.integers(1, 50, n) * 7,  # sparse external ids
        "timestamp": rng.integers(0, 1000, n),
        "surface": pa.array(rng.choice(["feed", "search", "radio"], n)),
        "like": (rng.random(n) < 0.3).astype(np.float32),
        "ratio": rng.random(n).astype(np.float32),
        "request_id": rng.integers(-1, 5, n),
        "artist": rng.integers(0, 3, n),
    }


def _sequences(store: SequenceStore) -> dict[object, list[tuple]]:
    """external user id -> list of (external item, timestamp, surface value, like) in store order."""
    users = store.user_table().column("user_id").to_pylist()
    items = store.item_table().column("item_id").to_pylist()
    vocab = store.vocab("surface")
    out = {}
    for u, ext in enumerate(users):
        sl = store.user_slice(u)
        out[ext] = [
            (items[i - 1], int(t), vocab[s - 1], float(lk))
            for i, t, s, lk in zip(
                store.items[sl],
                store.timestamps[sl],
                store["surface"][sl],
                store["like"][sl],
                strict=True,
            )
        ]
    return out


def test_round_trip_matches_a_naive_sort(tmp_path: Path) -> None:
    ev = _random_events(3000, 40)
    build_store(_source([ev]), tmp_path / "ds", progress=False)
    store = SequenceStore.open(tmp_path / "ds")
    # naive reference: group by user, stable sort by timestamp (input order breaks ties), drop exact dups
    expected: dict[object, list[tuple]] = {}
    seen = set()
    names = ("user_id", "item_id", "timestamp", "surface", "like", "ratio", "request_id")
    rows = list(zip(*(ev[k] for k in names), strict=True))
    order = sorted(range(len(rows)), key=lambda r: (rows[r][0], rows[r][2], r))
    for r in order:
        u, i, t, s, lk, ra, rq = rows[r]
        key = (u, i, t, str(s), float(lk), float(ra), rq)
        if key in seen:
            continue
        seen.add(key)
        expected.setdefault(int(u), []).append((int(i), int(t), str(s), float(lk)))
    assert _sequences(store) == expected
    assert store.n_events == sum(len(v) for v in expected.values())
    assert store.manifest["rejected"].get("duplicate_event", 0) == len(rows) - store.n_events


def test_ids_are_dense_and_item_zero_is_padding(tmp_path: Path) -> None:
    build_store(_source([_random_events(500, 10)]), tmp_path / "ds", progress=False)
    store = SequenceStore.open(tmp_path / "ds")
    items = store.item_table()
    assert items.column("item_index").to_pylist() == list(range(1, store.n_items + 1))
    ext = items.column("item_id").to_pylist()
    assert ext == sorted(ext)  # integer ids keep their numeric order
    assert store.items.min() == 1 and store.items.max() == store.n_items
    assert store.user_table().column("user_index").to_pylist() == list(range(store.n_users))
    assert store.vocab("surface") == ["feed", "radio", "search"]  # sorted, code k -> vocab[k-1]
    assert set(np.unique(store["surface"])) == {1, 2, 3}


def test_partitions_do_not_change_any_user_sequence(tmp_path: Path) -> None:
    ev = _random_events(5000, 300, seed=3)
    build_store(_source([ev]), tmp_path / "p1", partitions=1, progress=False)
    build_store(_source([ev]), tmp_path / "p7", partitions=7, progress=False)
    one, seven = SequenceStore.open(tmp_path / "p1"), SequenceStore.open(tmp_path / "p7")
    assert seven.manifest["partitions"] == 7
    assert _sequences(one) == _sequences(seven)


def test_string_ids_and_batches_split_anywhere(tmp_path: Path) -> None:
    ev = _random_events(1000, 20, seed=5)
    ev["user_id"] = pa.array([f"user-{u}" for u in ev["user_id"]])
    ev["item_id"] = pa.array([f"it{i}" for i in ev["item_id"]])
    whole = [ev]
    halves = [{k: v[:333] for k, v in ev.items()}, {k: v[333:] for k, v in ev.items()}]
    build_store(_source(whole), tmp_path / "a", progress=False)
    build_store(_source(halves), tmp_path / "b", progress=False)
    a, b = SequenceStore.open(tmp_path / "a"), SequenceStore.open(tmp_path / "b")
    assert _sequences(a) == _sequences(b)
    ext = a.item_table().column("item_id").to_pylist()
    assert ext == sorted(ext) and all(isinstance(x, str) for x in ext)


def test_item_features_from_events_and_items_table(tmp_path: Path) -> None:
    first = {
        "user_id": [1, 1, 2, 2],
        "item_id": [10, 20, 10, 40],
        "timestamp": [1, 2, 3, 4],
        "artist": pa.array([None, 8, 9, None], pa.int64()),
    }
    second = {"user_id": [3, 3], "item_id": [20, 10], "timestamp": [5, 6], "artist": pa.array([5, 6], pa.int64())}
    schema = DatasetSchema.of(item_features=["artist", "title"])
    items = pa.table({"item_id": [20, 10, 30, 40], "title": ["b", "a", "unused", "d"]})
    build_store(_source([first, second], schema, items=items), tmp_path / "ds", progress=False)
    table = SequenceStore.open(tmp_path / "ds").item_table().to_pydict()
    assert table["item_id"] == [10, 20, 40]
    assert table["artist"] == [9, 8, None]  # first non-null value seen per item; null when never given
    assert table["title"] == ["a", "b", "d"]


def test_bad_rows_are_counted_written_aside_and_strict_fails(tmp_path: Path) -> None:
    ev = {
        "user_id": pa.array([1, None, 2, 3, 1, 1]),
        "item_id": pa.array([5, 5, None, 5, 6, 6]),
        "timestamp": pa.array([10, 11, 12, -4, 13, 13]),
        "__line": pa.array([2, 3, 4, 5, 6, 7], pa.int64()),
        "__reject": pa.array([None, None, None, None, None, None], pa.string()),
    }
    ev2 = {
        "user_id": pa.array([4]),
        "item_id": pa.array([5]),
        "timestamp": pa.array([None], pa.int64()),
        "__line": pa.array([8], pa.int64()),
        "__reject": pa.array(["bad_timestamp: 'noon'"]),
    }
    schema = DatasetSchema()
    report = build_store(_source([ev, ev2], schema), tmp_path / "ds", rejects=tmp_path / "rej.csv", progress=False)
    assert report.rejected == {
        "bad_timestamp": 1,
        "duplicate_event": 1,
        "missing_item_id": 1,
        "missing_user_id": 1,
        "negative_timestamp": 1,
    }
    assert report.n_events == 2 and report.input_rows == 7
    with open(tmp_path / "rej.csv") as f:
        rows = {(r["line"], r["reason"]) for r in csv.DictReader(f)}
    assert rows == {
        ("3", "missing_user_id"),
        ("4", "missing_item_id"),
        ("5", "negative_timestamp"),
        ("8", "bad_timestamp: 'noon'"),
        ("7", "duplicate_event"),  # the second of two identical rows (lines 6 and 7)
    }
    with pytest.raises(DataError, match=r"t\.csv, line 3: bad row: missing_user_id"):
        build_store(_source([ev, ev2], schema), tmp_path / "strict", strict=True, progress=False)
    assert not (tmp_path / "strict").exists()
    assert not list(tmp_path.glob("strict.partial*"))  # nothing half-written is left behind


def test_strict_mode_reports_duplicates_with_their_line(tmp_path: Path) -> None:
    ev = {"user_id": [1, 2, 1], "item_id": [3, 3, 3], "timestamp": [9, 9, 9], "__line": pa.array([11, 12, 13])}
    with pytest.raises(DataError, match="line 13: duplicate event"):
        build_store(_source([ev], DatasetSchema()), tmp_path / "ds", strict=True, progress=False)


def test_binary_feedback_outside_zero_one_is_rejected(tmp_path: Path) -> None:
    ev = {"user_id": [1, 1, 1], "item_id": [1, 2, 3], "timestamp": [1, 2, 3], "like": [0.0, 2.0, float("nan")]}
    report = build_store(_source([ev], DatasetSchema.of(feedback={"like": "binary"})), tmp_path / "d", progress=False)
    assert report.rejected == {"bad_binary_feedback_like": 1}
    store = SequenceStore.open(tmp_path / "d")
    assert store["like"][0] == 0.0 and np.isnan(store["like"][1])


def test_empty_input_and_existing_output_are_refused(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no events"):
        build_store(_source([]), tmp_path / "empty", progress=False)
    assert not (tmp_path / "empty").exists()
    build_store(_source([_random_events(10, 2)]), tmp_path / "ds", progress=False)
    with pytest.raises(DataError, match="already exists"):
        build_store(_source([_random_events(10, 2)]), tmp_path / "ds", progress=False)
    build_store(_source([_random_events(20, 2)]), tmp_path / "ds", overwrite=True, progress=False)
    assert SequenceStore.open(tmp_path / "ds").manifest["input_rows"] == 20


def test_adapter_missing_a_declared_column_is_an_error(tmp_path: Path) -> None:
    ev = {"user_id": [1], "item_id": [1], "timestamp": [1]}
    with pytest.raises(DataError, match=r"lacks columns \['surface'"):
        build_store(_source([ev]), tmp_path / "ds", progress=False)


def test_manifest_records_roles_and_counts(tmp_path: Path) -> None:
    build_store(_source([_random_events(100, 5)]), tmp_path / "ds", progress=False)
    manifest = json.loads((tmp_path / "ds" / "manifest.json").read_text())
    roles = {c["name"]: c["role"] for c in manifest["schema"]["columns"]}
    assert roles == {
        "surface": "context",
        "like": "feedback",
        "ratio": "feedback",
        "artist": "item_feature",
        "request_id": "request",
    }
    assert manifest["n_events"] + sum(manifest["rejected"].values()) == manifest["input_rows"] == 100


def test_string_request_ids_are_encoded_and_null_means_none(tmp_path: Path) -> None:
    ev = {
        "user_id": [1, 1, 1, 1],
        "item_id": [1, 2, 3, 4],
        "timestamp": [1, 2, 3, 4],
        "request_id": pa.array(["r-a", "r-a", None, "r-b"]),
    }
    build_store(_source([ev], DatasetSchema.of(request=True)), tmp_path / "ds", progress=False)
    req = SequenceStore.open(tmp_path / "ds")["request_id"].tolist()
    assert req[0] == req[1] and req[2] == -1 and req[3] not in (req[0], -1)
