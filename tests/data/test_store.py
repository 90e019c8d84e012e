"""Sequence store: the .npy appender, in-memory stores, and refusing corrupted or foreign directories."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from argusrec.data.adapters.base import EventSource
from argusrec.data.build import build_store
from argusrec.data.schema import ColumnSpec, DatasetSchema, Role
from argusrec.data.store import NpyAppender, SequenceStore
from argusrec.errors import DataError


def _built(tmp_path: Path) -> Path:
    def read():
        yield "x", pa.record_batch({"user_id": [1, 1, 2], "item_id": [4, 5, 4], "timestamp": [1, 2, 3]})

    build_store(EventSource(name="x", schema=DatasetSchema(), read=read), tmp_path / "ds", progress=False)
    return tmp_path / "ds"


@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.float32])
def test_appender_writes_a_loadable_npy(tmp_path: Path, dtype) -> None:
    path = tmp_path / "a.npy"
    app = NpyAppender(path, np.dtype(dtype))
    parts = [np.arange(5), np.arange(0), np.arange(7, 10)]
    for p in parts:
        app.append(p)
    app.close()
    loaded = np.load(path, mmap_mode="r")
    assert loaded.dtype == dtype
    np.testing.assert_array_equal(loaded, np.concatenate(parts).astype(dtype))


def test_from_arrays_builds_offsets_and_checks_lengths() -> None:
    store = SequenceStore.from_arrays(lengths=[2, 0, 3], columns={"item_id": [1, 2, 3, 1, 2], "timestamp": range(5)})
    assert store.offsets.tolist() == [0, 2, 2, 5]
    assert store.n_users == 3 and store.n_events == 5 and store.n_items == 3
    assert store.items[store.user_slice(2)].tolist() == [3, 1, 2]
    with pytest.raises(ValueError, match="has 4 rows"):
        SequenceStore.from_arrays(lengths=[5], columns={"item_id": [1, 2, 3, 4], "timestamp": range(5)})


def test_open_refuses_foreign_or_corrupted_directories(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not a prepared dataset"):
        SequenceStore.open(tmp_path)
    ds = _built(tmp_path)
    manifest = json.loads((ds / "manifest.json").read_text())

    (ds / "manifest.json").write_text(json.dumps({**manifest, "format_version": 99}))
    with pytest.raises(DataError, match="version 99 is not supported"):
        SequenceStore.open(ds)

    (ds / "manifest.json").write_text(json.dumps({**manifest, "n_events": 4}))
    with pytest.raises(DataError, match="corrupted"):
        SequenceStore.open(ds)

    (ds / "manifest.json").write_text(json.dumps(manifest))
    (ds / "events" / "timestamp.npy").write_bytes(b"garbage")
    with pytest.raises(DataError, match=r"timestamp\.npy.*corrupted"):
        SequenceStore.open(ds)

    (ds / "manifest.json").write_text("{not json")
    with pytest.raises(DataError, match="not valid JSON"):
        SequenceStore.open(ds)


def test_schema_rejects_inconsistent_declarations() -> None:
    with pytest.raises(ValueError, match="needs kind"):
        ColumnSpec(name="like", role=Role.FEEDBACK)
    with pytest.raises(ValueError, match="must be named 'request_id'"):
        ColumnSpec(name="req", role=Role.REQUEST)
    with pytest.raises(ValueError, match="declared twice"):
        DatasetSchema.of(context=["a"], truth=["a"])
    schema = DatasetSchema.of(context=["s"], feedback={"like": "binary"}, item_features=["artist"], truth=["p"])
    assert schema.event_columns() == ["user_id", "item_id", "timestamp", "s", "like", "p"]
    assert list(schema.store_columns()) == ["item_id", "timestamp", "s", "like", "p"]
