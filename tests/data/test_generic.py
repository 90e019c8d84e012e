"""Tests for the generic adapter: config parsing, CSV and Parquet input, conversions and errors."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from argusrec.data.adapters.generic import GenericConfig, open_generic, parse_datetimes
from argusrec.data.schema import ITEM_ID, LINE, REJECT, REQUEST_ID, TIMESTAMP, USER_ID, FeedbackKind, Role
from argusrec.errors import DataError

MAPS = ["user_id=uid", "item_id=song", "timestamp=ts"]


def read_all(source) -> pa.Table:
    return pa.Table.from_batches([batch for _, batch in source.read()])


def write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


# ---------------------------------------------------------------------------------------------- config


def test_from_cli_builds_the_schema() -> None:
    config = GenericConfig.from_cli(
        [*MAPS, "like=liked"],
        context=["surface"],
        feedback=["like:binary", "played:continuous"],
        item_features=["artist"],
        request_id="req",
        timestamp_unit="ms",
        separator="tab",
    )
    assert config.columns == {"user_id": "uid", "item_id": "song", "timestamp": "ts", "like": "liked"}
    assert config.separator == "\t"
    assert config.raw("like") == "liked" and config.raw("played") == "played" and config.raw(REQUEST_ID) == "req"
    schema = config.dataset_schema()
    assert schema.context == ["surface"] and schema.feedback == ["like", "played"]
    assert schema.feedback_kind("played").value == "continuous"
    assert schema.names(Role.ITEM_FEATURE) == ["artist"] and schema.has_request


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"maps": ["user_id"]}, r"bad column map 'user_id': expected NAME=COLUMN"),
        ({"maps": ["=uid"]}, r"bad column map '=uid'"),
        ({"maps": [*MAPS, "user_id=x"]}, r"column 'user_id' is mapped twice"),
        ({"maps": MAPS, "feedback": ["like"]}, r"bad feedback spec 'like': expected NAME:binary or NAME:continuous"),
        ({"maps": MAPS, "feedback": ["like:bin"]}, r"bad feedback spec 'like:bin'"),
        ({"maps": MAPS[:2]}, r"columns must map \['timestamp'\]"),
        ({"maps": MAPS, "timestamp_unit": "hours"}, r"timestamp_unit: Input should be 's', 'ms'"),
        ({"maps": MAPS, "separator": "ab"}, r"separator must be one character"),
        ({"maps": [*MAPS, "surface=tab"]}, r"columns maps \['surface'\], which are not"),
        ({"maps": MAPS, "context": ["x"], "feedback": ["x:binary"]}, r"columns declared twice: \['x'\]"),
        ({"maps": MAPS, "context": ["uid"]}, r"raw column\(s\) \['uid'\] are used for more than one"),
    ],
)
def test_from_cli_errors(kwargs: dict, message: str) -> None:
    maps = kwargs.pop("maps")
    with pytest.raises(DataError, match=message):
        GenericConfig.from_cli(maps, **kwargs)


def test_config_file_yaml_and_json(tmp_path: Path) -> None:
    yaml_file = write(
        tmp_path,
        "events.yaml",
        "columns: {user_id: uid, item_id: song, timestamp: ts}\nfeedback: {like: binary}\ntimestamp_unit: ms\n",
    )
    config = GenericConfig.from_file(yaml_file)
    assert config.timestamp_unit == "ms" and config.feedback["like"].value == "binary"
    json_file = write(tmp_path, "events.json", json.dumps({"columns": config.columns, "header": False, "names": ["a"]}))
    assert GenericConfig.from_file(json_file).header is False


def test_config_file_unknown_key_names_key_and_file(tmp_path: Path) -> None:
    p = write(tmp_path, "bad.yaml", "columns: {user_id: uid, item_id: song, timestamp: ts}\ncontexts: [surface]\n")
    with pytest.raises(DataError) as err:
        GenericConfig.from_file(p)
    text = str(err.value)
    assert "bad.yaml" in text and "unknown key 'contexts'" in text and "known keys: columns, context" in text


def test_config_file_not_a_mapping_and_missing(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"list\.yaml: expected a mapping"):
        GenericConfig.from_file(write(tmp_path, "list.yaml", "- a\n- b\n"))
    with pytest.raises(DataError, match=r"none\.yaml: config file not found"):
        GenericConfig.from_file(tmp_path / "none.yaml")


# ---------------------------------------------------------------------------------------------- CSV


def test_csv_sniffed_separator_and_conversions(tmp_path: Path) -> None:
    text = (
        "uid;song;ts;liked;played;surface;artist\n"
        "u1;0205;1700000000123;true;0.5;home;A\n"
        "u2;s2;1700000001999;FALSE;;search;B\n"
    )
    config = GenericConfig.from_cli(
        [*MAPS, "like=liked"],
        context=["surface"],
        feedback=["like:binary", "played:continuous"],
        item_features=["artist"],
        timestamp_unit="ms",
    )
    source = open_generic(write(tmp_path, "events.csv", text), config)
    assert source.info["separator"] == ";" and source.name == "generic-events"
    t = read_all(source)
    assert t.column(USER_ID).to_pylist() == ["u1", "u2"]
    assert t.column(ITEM_ID).to_pylist() == ["0205", "s2"]  # leading zero: kept as text
    assert t.column(TIMESTAMP).to_pylist() == [1700000000, 1700000001]
    assert t.column("like").to_pylist() == [1.0, 0.0]
    assert t.column("played").to_pylist()[0] == 0.5 and math.isnan(t.column("played").to_pylist()[1])
    assert t.column("surface").to_pylist() == ["home", "search"]
    assert t.column("artist").to_pylist() == ["A", "B"]
    assert t.column(LINE).to_pylist() == [2, 3]
    assert t.schema.field("like").type == pa.float32()


def test_csv_int_ids_and_request_ids(tmp_path: Path) -> None:
    text = "uid,song,ts,req\n1,10,100,7\n2,20,200,\n"
    config = GenericConfig.from_cli(MAPS, request_id="req")
    t = read_all(open_generic(write(tmp_path, "e.csv", text), config))
    assert t.column(USER_ID).to_pylist() == [1, 2] and t.schema.field(USER_ID).type == pa.int64()
    assert t.column(REQUEST_ID).to_pylist() == [7, -1]


def test_csv_without_header(tmp_path: Path) -> None:
    config = GenericConfig.from_cli(MAPS, separator="\t", header=False, names=["uid", "song", "ts"])
    t = read_all(open_generic(write(tmp_path, "e.tsv", "1\ta\t5\n2\tb\t6\n"), config))
    assert t.select([USER_ID, ITEM_ID, TIMESTAMP, LINE]).to_pylist() == [
        {USER_ID: 1, ITEM_ID: "a", TIMESTAMP: 5, LINE: 1},
        {USER_ID: 2, ITEM_ID: "b", TIMESTAMP: 6, LINE: 2},
    ]


def test_csv_datetime_timestamps(tmp_path: Path) -> None:
    text = (
        "uid,song,ts\n"
        "1,a,2024-01-02T03:04:05Z\n"
        "1,b,2024-01-02 03:04:05.250\n"
        "1,c,2024-01-02T05:04:05+02:00\n"
        "1,d,2024-01-02\n"
        "1,e,02/01/2024\n"
    )
    config = GenericConfig.from_cli(MAPS, timestamp_unit="datetime")
    t = read_all(open_generic(write(tmp_path, "e.csv", text), config))
    assert t.column(TIMESTAMP).to_pylist() == [1704164645, 1704164645, 1704164645, 1704153600, None]
    assert t.column(REJECT).to_pylist() == [None, None, None, None, "bad_timestamp: '02/01/2024'"]


def test_csv_non_numeric_timestamp_rejected_with_line(tmp_path: Path) -> None:
    config = GenericConfig.from_cli(MAPS)
    t = read_all(open_generic(write(tmp_path, "e.csv", "uid,song,ts\n1,a,100\n1,b,abc\n1,c,-5\n"), config))
    assert t.column(TIMESTAMP).to_pylist() == [100, None, -5]  # negative kept for the builder
    assert t.column(REJECT).to_pylist() == [None, "bad_timestamp: 'abc'", None]
    assert t.column(LINE).to_pylist() == [2, 3, 4]


def test_csv_truncated_last_line(tmp_path: Path) -> None:
    config = GenericConfig.from_cli(MAPS)
    t = read_all(open_generic(write(tmp_path, "e.csv", "uid,song,ts\n1,a,100\n2,b"), config))
    assert t.column(REJECT).to_pylist() == [None, "malformed_line: expected 3 fields, got 2"]
    assert t.column(LINE).to_pylist() == [2, 3]


def test_csv_missing_column_lists_found(tmp_path: Path) -> None:
    config = GenericConfig.from_cli(MAPS, context=["surface"])
    with pytest.raises(DataError) as err:
        open_generic(write(tmp_path, "e.csv", "uid,song,ts\n1,a,1\n"), config)
    text = str(err.value)
    assert "e.csv" in text and "'surface'" in text and "found columns ['uid', 'song', 'ts']" in text


def test_csv_unknown_separator(tmp_path: Path) -> None:
    config = GenericConfig.from_cli(MAPS)
    with pytest.raises(DataError, match=r"e\.txt: cannot tell the separator"):
        open_generic(write(tmp_path, "e.txt", "uid song ts\n1 a 1\n"), config)


def test_csv_empty_and_missing(tmp_path: Path) -> None:
    config = GenericConfig.from_cli(MAPS)
    with pytest.raises(DataError, match=r"e\.csv: file is empty"):
        open_generic(write(tmp_path, "e.csv", ""), config)
    with pytest.raises(DataError, match=r"nope\.csv: file not found"):
        open_generic(tmp_path / "nope.csv", config)


# ---------------------------------------------------------------------------------------------- Parquet


def canonical_table(n: int = 5) -> pa.Table:
    return pa.table(
        {
            USER_ID: pa.array(np.arange(n) % 2, pa.int64()),
            ITEM_ID: pa.array(np.arange(n) + 100, pa.int64()),
            TIMESTAMP: pa.array(np.arange(n) + 1_700_000_000, pa.int64()),
            "like": pa.array([True, False, True, None, False][:n]),
            "plays": pa.array(np.arange(n), pa.int8()),
            "surface": pa.DictionaryArray.from_arrays(
                pa.array([0, 1, 0, 1, 0][:n], pa.int8()), pa.array(["home", "search"])
            ),
        }
    )


CANONICAL = GenericConfig(
    columns={USER_ID: USER_ID, ITEM_ID: ITEM_ID, TIMESTAMP: TIMESTAMP},
    context=["surface"],
    feedback={"like": FeedbackKind.BINARY, "plays": FeedbackKind.CONTINUOUS},
)


def test_parquet_canonical_names(tmp_path: Path) -> None:
    p = tmp_path / "events.parquet"
    pq.write_table(canonical_table(), p)
    source = open_generic(p, CANONICAL)
    assert source.estimated_rows == 5 and source.info["format"] == "generic-parquet"
    t = read_all(source)
    assert t.column(USER_ID).to_pylist() == [0, 1, 0, 1, 0]
    assert t.column(TIMESTAMP).to_pylist() == [1_700_000_000 + i for i in range(5)]
    like = t.column("like").to_pylist()
    assert like[:3] == [1.0, 0.0, 1.0] and math.isnan(like[3]) and like[4] == 0.0
    assert t.column("plays").to_pylist() == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert t.schema.field("like").type == pa.float32() and t.schema.field("plays").type == pa.float32()
    assert t.column("surface").to_pylist() == ["home", "search", "home", "search", "home"]
    assert t.schema.field("surface").type == pa.string()
    assert t.column(LINE).to_pylist() == [1, 2, 3, 4, 5]


def test_parquet_folder_small_batches_and_units(tmp_path: Path) -> None:
    folder = tmp_path / "parts"
    folder.mkdir()
    for k in range(2):
        pq.write_table(
            pa.table({"u": ["a", "b", "c"], "i": [1, 2, 3], "t": pa.array([1500, -1500, 2999 + k * 1000], pa.int64())}),
            folder / f"part-{k}.parquet",
        )
    config = GenericConfig.from_cli(["user_id=u", "item_id=i", "timestamp=t"], timestamp_unit="ms")
    source = open_generic(folder, config, batch_size=2)
    assert [Path(f).name for f in source.info["files"]] == ["part-0.parquet", "part-1.parquet"]
    t = read_all(source)
    assert t.column(TIMESTAMP).to_pylist() == [1, -2, 2, 1, -2, 3]  # floor division, also below 0
    assert t.column(LINE).to_pylist() == [1, 2, 3, 1, 2, 3]
    assert t.column(USER_ID).to_pylist() == ["a", "b", "c"] * 2


def test_parquet_timestamp_types(tmp_path: Path) -> None:
    p = tmp_path / "e.parquet"
    ts = pa.array([1_700_000_000_500, None], pa.timestamp("ms", tz="UTC"))
    pq.write_table(pa.table({"u": [1, 2], "i": [3, 4], "t": ts}), p)
    config = GenericConfig.from_cli(["user_id=u", "item_id=i", "timestamp=t"], timestamp_unit="datetime")
    t = read_all(open_generic(p, config))
    assert t.column(TIMESTAMP).to_pylist() == [1_700_000_000, None]


def test_parquet_text_timestamps_rejected(tmp_path: Path) -> None:
    p = tmp_path / "e.parquet"
    pq.write_table(pa.table({"u": [1, 2], "i": [3, 4], "t": ["1700000000", "later"]}), p)
    t = read_all(open_generic(p, GenericConfig.from_cli(["user_id=u", "item_id=i", "timestamp=t"])))
    assert t.column(TIMESTAMP).to_pylist() == [1_700_000_000, None]
    assert t.column(REJECT).to_pylist() == [None, "bad_timestamp: 'later'"]
    assert t.column(LINE).to_pylist() == [1, 2]


def test_parquet_missing_column_and_bad_types(tmp_path: Path) -> None:
    p = tmp_path / "e.parquet"
    pq.write_table(pa.table({"uid": [1], "item": [2], "ts": [3]}), p)
    with pytest.raises(DataError) as err:
        open_generic(p, GenericConfig.from_cli(MAPS))
    assert "e.parquet" in str(err.value) and "'song'" in str(err.value) and "['uid', 'item', 'ts']" in str(err.value)
    config = GenericConfig.from_cli(["user_id=uid", "item_id=item", "timestamp=ts"], timestamp_unit="datetime")
    with pytest.raises(DataError, match=r"e\.parquet, column 'ts': has type int64, expected text or a timestamp"):
        open_generic(p, config)
    pq.write_table(pa.table({"uid": [1.5], "item": [2], "ts": [3]}), p)
    with pytest.raises(DataError, match=r"column 'uid': has type double, expected integers or strings"):
        open_generic(p, GenericConfig.from_cli(["user_id=uid", "item_id=item", "timestamp=ts"]))


def test_parquet_empty_and_not_parquet(tmp_path: Path) -> None:
    config = GenericConfig.from_cli(MAPS)
    (tmp_path / "a.parquet").write_bytes(b"")
    with pytest.raises(DataError, match=r"a\.parquet: file is empty"):
        open_generic(tmp_path / "a.parquet", config)
    (tmp_path / "b.parquet").write_text("uid,song,ts\n")
    with pytest.raises(DataError, match=r"b\.parquet: not a readable Parquet file"):
        open_generic(tmp_path / "b.parquet", config)
    (tmp_path / "none").mkdir()
    with pytest.raises(DataError, match=r"none: no Parquet files"):
        open_generic(tmp_path / "none", config)


def test_parse_datetimes_directly() -> None:
    got = parse_datetimes(pa.array(["1970-01-01T00:01:00", "1970-01-01T01:00:00+01:00", "x", None]))
    assert got.to_pylist() == [60, 0, None, None]
