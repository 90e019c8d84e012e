"""Tests for the Yambda adapter on small Parquet files written with Yambda's own dtypes."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from argusrec.data.adapters.yambda import EVENT_TYPES, SCHEMA, open_yambda
from argusrec.data.schema import LINE, REJECT
from argusrec.errors import DataError

NAN = float("nan")
# Yambda's event_type is a Polars enum: a dictionary of strings with uint8 indices in Arrow.
ENUM = pa.dictionary(pa.uint8(), pa.string(), ordered=True)


def multi_event_table(rows: list[tuple], *, enum: bool = True) -> pa.Table:
    """rows: (uid, timestamp, item_id, is_organic, event_type, played_ratio_pct, track_length_seconds)."""
    cols = list(zip(*rows, strict=True)) if rows else [()] * 7
    if enum:
        # Yambda's five values first (the enum's categories), then any odd values a test adds.
        values = list(EVENT_TYPES) + sorted({e for e in cols[4] if e is not None} - set(EVENT_TYPES))
        codes = pa.array([None if e is None else values.index(e) for e in cols[4]], pa.uint8())
        event_type = pa.DictionaryArray.from_arrays(codes, pa.array(values, pa.string()), ordered=True)
    else:
        event_type = pa.array(cols[4], pa.string())
    return pa.table(
        {
            "uid": pa.array(cols[0], pa.uint32()),
            "timestamp": pa.array(cols[1], pa.uint32()),
            "item_id": pa.array(cols[2], pa.uint32()),
            "is_organic": pa.array(cols[3], pa.uint8()),
            "event_type": event_type,
            "played_ratio_pct": pa.array(cols[5], pa.uint16()),
            "track_length_seconds": pa.array(cols[6], pa.uint32()),
        }
    )


def event_table(rows: list[tuple], *, listens: bool = False) -> pa.Table:
    """A per-event file: rows (uid, timestamp, item_id, is_organic[, played_ratio_pct, track_length])."""
    cols = list(zip(*rows, strict=True))
    data = {
        "uid": pa.array(cols[0], pa.uint32()),
        "timestamp": pa.array(cols[1], pa.uint32()),
        "item_id": pa.array(cols[2], pa.uint32()),
        "is_organic": pa.array(cols[3], pa.uint8()),
    }
    if listens:
        data["played_ratio_pct"] = pa.array(cols[4], pa.uint16())
        data["track_length_seconds"] = pa.array(cols[5], pa.uint32())
    return pa.table(data)


ROWS = [
    # uid, timestamp, item_id, is_organic, event_type, played_ratio_pct, track_length_seconds
    (30, 106_910, 9_270_848, 1, "listen", 100, 215),
    (30, 146_130, 6_185_100, 0, "listen", 37, 180),
    (30, 146_130, 6_185_100, 0, "like", None, None),
    (30, 146_135, 5_021_833, 1, "listen", 250, 61),  # rewound and replayed
    (10, 15_929_455, 6_928_395, 1, "dislike", None, None),
    (10, 15_929_460, 6_928_395, 1, "undislike", None, None),
    (20, 18_111_700, 6_417_612, 0, "unlike", None, None),
    (20, 18_111_945, 6_983_647, 1, "listen", None, None),  # a listen without ratio or length
    (20, 18_111_950, 6_983_647, 1, "listen", 0, 300),
]


def collect(source) -> dict[str, list]:
    """All batches of a source concatenated into one dict of Python lists."""
    batches = [batch for _, batch in source.read()]
    return pa.Table.from_batches(batches).to_pydict()


def same(actual: list, expected: list) -> bool:
    """List equality where NaN equals NaN."""
    if len(actual) != len(expected):
        return False
    for a, e in zip(actual, expected, strict=True):
        if isinstance(e, float) and math.isnan(e):
            if not (isinstance(a, float) and math.isnan(a)):
                return False
        elif a != e:
            return False
    return True


def write(table: pa.Table, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)
    return path


@pytest.mark.parametrize("enum", [True, False], ids=["enum", "string"])
def test_multi_event_exact_values(tmp_path: Path, enum: bool) -> None:
    file = write(multi_event_table(ROWS, enum=enum), tmp_path / "flat" / "50m" / "multi_event.parquet")
    assert (pq.read_schema(file).field("event_type").type == ENUM) is enum
    source = open_yambda(file)
    assert source.name == "yambda-50m"
    assert source.schema == SCHEMA
    assert source.estimated_rows == len(ROWS)
    assert source.info["layout"] == "multi_event"

    out = collect(source)
    assert out["user_id"] == [30, 30, 30, 30, 10, 10, 20, 20, 20]
    assert out["item_id"] == [r[2] for r in ROWS]
    # Timestamps are already seconds (5-second steps): passed through unchanged.
    assert out["timestamp"] == [r[1] for r in ROWS]
    assert out["is_organic"] == [1, 0, 0, 1, 1, 1, 0, 1, 1]
    assert same(out["listen"], [1.0, 1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0, 1.0])
    assert same(out["like"], [0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0])
    assert same(out["dislike"], [0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0])
    assert same(out["undislike"], [0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0])
    assert same(out["unlike"], [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0])
    ratio37 = float(np.float32(0.37))
    assert same(out["played_ratio"], [1.0, ratio37, NAN, 1.0, NAN, NAN, NAN, NAN, 0.0])
    assert out["track_length_s"] == [215.0, 180.0, None, 61.0, None, None, None, None, 300.0]
    assert out[LINE] == list(range(1, len(ROWS) + 1))
    assert out[REJECT] == [None] * len(ROWS)


def test_output_dtypes_follow_the_contract(tmp_path: Path) -> None:
    file = write(multi_event_table(ROWS), tmp_path / "multi_event.parquet")
    _, batch = next(open_yambda(file).read())
    types = {field.name: field.type for field in batch.schema}
    assert types["user_id"] == pa.int64()
    assert types["item_id"] == pa.int64()
    assert types["timestamp"] == pa.int64()
    assert types["is_organic"] == pa.int64()
    for name in SCHEMA.feedback:
        assert types[name] == pa.float32(), name
    assert types[LINE] == pa.int64()
    assert types[REJECT] == pa.string()
    assert set(SCHEMA.event_columns()) <= set(types)


def test_streams_in_bounded_batches(tmp_path: Path) -> None:
    file = write(multi_event_table(ROWS), tmp_path / "multi_event.parquet")
    batches = [batch for _, batch in open_yambda(file, batch_size=4).read()]
    assert [b.num_rows for b in batches] == [4, 4, 1]
    lines = [line for b in batches for line in b.column(LINE).to_pylist()]
    assert lines == list(range(1, len(ROWS) + 1))


def test_unknown_and_missing_event_types_are_rejected_not_mapped(tmp_path: Path) -> None:
    rows = [
        (1, 5, 100, 1, "listen", 80, 200),
        (1, 10, 101, 1, "skip", None, None),
        (1, 15, 102, 0, None, None, None),
    ]
    for enum in (True, False):
        file = write(multi_event_table(rows, enum=enum), tmp_path / str(enum) / "multi_event.parquet")
        out = collect(open_yambda(file))
        assert out[REJECT] == [None, "unknown_event_type: 'skip'", "missing_event_type"]
        assert out["item_id"] == [100, 101, 102]  # the parsed values are kept
        assert out["timestamp"] == [5, 10, 15]
        for name in SCHEMA.feedback:
            assert math.isnan(out[name][1]) and math.isnan(out[name][2]), name
        assert out["listen"][0] == 1.0
        assert out["played_ratio"][0] == pytest.approx(0.8)


def test_bad_is_organic_is_rejected(tmp_path: Path) -> None:
    rows = [(1, 5, 100, 1, "like", None, None), (1, 10, 101, 7, "like", None, None)]
    file = write(multi_event_table(rows), tmp_path / "multi_event.parquet")
    out = collect(open_yambda(file))
    assert out[REJECT] == [None, "bad_is_organic: 7"]
    assert out["like"][0] == 1.0 and math.isnan(out["like"][1])


def test_per_event_files_are_merged(tmp_path: Path) -> None:
    folder = tmp_path / "flat" / "500m"
    write(event_table([(1, 5, 100, 1, 120, 200), (2, 10, 101, 0, 30, None)], listens=True), folder / "listens.parquet")
    write(event_table([(1, 5, 100, 1)]), folder / "likes.parquet")
    write(event_table([(2, 15, 102, 0)]), folder / "dislikes.parquet")
    write(event_table([(2, 20, 102, 0)]), folder / "undislikes.parquet")
    source = open_yambda(folder)
    assert source.name == "yambda-500m"
    assert source.info["layout"] == "per_event"
    assert source.estimated_rows == 5
    assert "unlike" in source.info["notes"][0]  # the absent file is reported, not silently skipped

    files = [Path(f).name for f, _ in source.read()]
    assert files == ["listens.parquet", "likes.parquet", "dislikes.parquet", "undislikes.parquet"]
    out = collect(source)
    assert out["user_id"] == [1, 2, 1, 2, 2]
    assert out["timestamp"] == [5, 10, 5, 15, 20]
    assert out["is_organic"] == [1, 0, 1, 0, 0]
    assert out["listen"] == [1.0, 1.0, 0.0, 0.0, 0.0]
    assert out["like"] == [0.0, 0.0, 1.0, 0.0, 0.0]
    assert out["dislike"] == [0.0, 0.0, 0.0, 1.0, 0.0]
    assert out["undislike"] == [0.0, 0.0, 0.0, 0.0, 1.0]
    assert out["unlike"] == [0.0] * 5
    assert same(out["played_ratio"], [1.0, float(np.float32(0.3)), NAN, NAN, NAN])
    assert out["track_length_s"] == [200.0, None, None, None, None]
    assert out[LINE] == [1, 2, 1, 1, 1]  # rows of each file, counted per file
    assert out[REJECT] == [None] * 5


def test_folder_prefers_multi_event_over_per_event_files(tmp_path: Path) -> None:
    write(multi_event_table(ROWS[:2]), tmp_path / "multi_event.parquet")
    write(event_table([(9, 5, 100, 1)]), tmp_path / "likes.parquet")
    source = open_yambda(tmp_path)
    assert [Path(f).name for f in source.info["files"]] == ["multi_event.parquet"]
    assert collect(source)["user_id"] == [30, 30]


def test_single_per_event_file(tmp_path: Path) -> None:
    file = write(event_table([(4, 25, 7, 0), (4, 30, 8, 1)]), tmp_path / "unlikes.parquet")
    out = collect(open_yambda(file))
    assert out["unlike"] == [1.0, 1.0]
    assert out["listen"] == [0.0, 0.0]
    assert all(math.isnan(v) for v in out["played_ratio"])


def test_missing_column_names_file_missing_and_found(tmp_path: Path) -> None:
    table = multi_event_table(ROWS).drop_columns(["event_type", "is_organic"])
    file = write(table, tmp_path / "multi_event.parquet")
    with pytest.raises(DataError) as info:
        open_yambda(file)
    text = str(info.value)
    assert str(file) in text
    assert "'is_organic'" in text and "'event_type'" in text
    assert "found ['uid', 'timestamp', 'item_id', 'played_ratio_pct', 'track_length_seconds']" in text


def test_listens_file_without_ratio_column(tmp_path: Path) -> None:
    file = write(event_table([(1, 5, 100, 1)]), tmp_path / "listens.parquet")
    with pytest.raises(DataError, match="played_ratio_pct"):
        open_yambda(file)


def test_wrong_dtype_names_the_column(tmp_path: Path) -> None:
    table = multi_event_table(ROWS)
    table = table.set_column(1, "timestamp", pa.array([str(r[1]) for r in ROWS]))
    file = write(table, tmp_path / "multi_event.parquet")
    with pytest.raises(DataError) as info:
        open_yambda(file)
    assert info.value.column == "timestamp"
    assert str(file) in str(info.value) and "expected an integer type" in str(info.value)


def test_sequential_layout_gets_a_hint(tmp_path: Path) -> None:
    table = pa.table(
        {
            "uid": pa.array([1], pa.uint32()),
            "timestamp": pa.array([[5, 10]], pa.list_(pa.uint32())),
            "item_id": pa.array([[1, 2]], pa.list_(pa.uint32())),
            "is_organic": pa.array([[1, 0]], pa.list_(pa.uint8())),
        }
    )
    file = write(table, tmp_path / "likes.parquet")
    with pytest.raises(DataError, match="sequential"):
        open_yambda(file)


def test_truncated_parquet_file(tmp_path: Path) -> None:
    file = write(multi_event_table(ROWS), tmp_path / "multi_event.parquet")
    data = file.read_bytes()
    file.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError) as info:
        open_yambda(file)
    assert str(file) in str(info.value) and "not a readable Parquet file" in str(info.value)


def test_not_a_parquet_file(tmp_path: Path) -> None:
    file = tmp_path / "multi_event.parquet"
    file.write_text("uid,timestamp,item_id\n1,5,100\n")
    with pytest.raises(DataError, match="not a readable Parquet file"):
        open_yambda(file)


def test_corrupt_data_pages_fail_while_reading(tmp_path: Path) -> None:
    file = tmp_path / "multi_event.parquet"
    pq.write_table(multi_event_table(ROWS), file, compression="snappy")
    data = bytearray(file.read_bytes())
    footer = int.from_bytes(data[-8:-4], "little") + 8
    data[4 : len(data) - footer] = b"\xff" * (len(data) - footer - 4)  # keep magic and footer intact
    file.write_bytes(bytes(data))
    source = open_yambda(file)  # the footer is fine
    with pytest.raises(DataError) as info:
        collect(source)
    assert str(file) in str(info.value)


def test_empty_file(tmp_path: Path) -> None:
    file = tmp_path / "multi_event.parquet"
    file.write_bytes(b"")
    with pytest.raises(DataError, match="empty file") as info:
        open_yambda(file)
    assert info.value.file == str(file)


def test_file_with_zero_rows(tmp_path: Path) -> None:
    file = write(multi_event_table([]), tmp_path / "multi_event.parquet")
    with pytest.raises(DataError, match="zero rows"):
        open_yambda(file)


def test_missing_path_and_folder_without_yambda_files(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such file"):
        open_yambda(tmp_path / "nope")
    (tmp_path / "readme.txt").write_text("hi")
    with pytest.raises(DataError) as info:
        open_yambda(tmp_path)
    assert "multi_event.parquet" in str(info.value) and "readme.txt" in str(info.value)


def test_nothing_is_read_until_asked(tmp_path: Path) -> None:
    file = write(multi_event_table(ROWS), tmp_path / "multi_event.parquet")
    source = open_yambda(file)
    file.unlink()  # open_yambda only read the footer
    with pytest.raises(DataError, match="cannot read the file"):
        collect(source)


def test_schema_roles() -> None:
    assert SCHEMA.context == ["is_organic"]
    assert SCHEMA.feedback == ["listen", "played_ratio", "like", "dislike", "unlike", "undislike"]
    assert SCHEMA.item_features == ["track_length_s"]
    kinds = {name: SCHEMA.feedback_kind(name).value for name in SCHEMA.feedback}
    assert kinds == {
        "listen": "binary",
        "played_ratio": "continuous",
        "like": "binary",
        "dislike": "binary",
        "unlike": "binary",
        "undislike": "binary",
    }
