"""Tests for the KuaiRand adapter on small log files with KuaiRand's header and column order."""

from __future__ import annotations

import math
from pathlib import Path

import pyarrow as pa
import pytest

from argusrec.data.adapters.kuairand import BINARY, SCHEMA, open_kuairand
from argusrec.data.schema import ITEM_ID, LINE, REJECT, TIMESTAMP, USER_ID, Role
from argusrec.errors import DataError

HEADER = (
    "user_id,video_id,date,hourmin,time_ms,is_click,is_like,is_follow,is_comment,is_forward,is_hate,"
    "long_view,play_time_ms,duration_ms,profile_stay_time,comment_stay_time,is_profile_enter,is_rand,tab"
)
ROWS = [
    "0,4381,20220408,1200,1649390403911,1,0,0,0,0,0,1,14256,19900,0,0,0,0,1",
    "0,6953,20220408,1200,1649390416549,0,0,0,0,0,0,0,0,11500,0,0,0,1,4",
    "1,4381,20220408,1300,1649394000123,1,1,1,1,1,0,0,5000,19900,1200,300,1,0,1",
]


def write(path: Path, rows: list[str], header: str = HEADER) -> Path:
    path.write_text(header + "\n" + "".join(r + "\n" for r in rows))
    return path


def read_all(source) -> pa.Table:
    return pa.Table.from_batches([batch for _, batch in source.read()])


def test_one_file_mapping(tmp_path: Path) -> None:
    source = open_kuairand(write(tmp_path / "log_standard_4_08_to_4_21_pure.csv", ROWS))
    assert source.name == "kuairand-pure"
    assert source.schema == SCHEMA
    assert source.schema.context == ["tab", "is_rand"]
    assert source.schema.feedback_kind("play_time_s").value == "continuous"
    assert source.schema.names(Role.ITEM_FEATURE) == ["duration_s"]
    t = read_all(source)
    assert t.column(USER_ID).to_pylist() == [0, 0, 1]
    assert t.column(ITEM_ID).to_pylist() == [4381, 6953, 4381]
    assert t.column(TIMESTAMP).to_pylist() == [1649390403, 1649390416, 1649394000]
    assert t.column("tab").to_pylist() == [1, 4, 1]
    assert t.column("is_rand").to_pylist() == [0, 1, 0]
    assert t.column("is_click").to_pylist() == [1.0, 0.0, 1.0]
    assert t.column("is_like").to_pylist() == [0.0, 0.0, 1.0]
    assert t.column("long_view").to_pylist() == [1.0, 0.0, 0.0]
    assert t.column("is_profile_enter").to_pylist() == [0.0, 0.0, 1.0]
    assert t.column("play_time_s").to_pylist() == pytest.approx([14.256, 0.0, 5.0])
    assert t.column("duration_s").to_pylist() == pytest.approx([19.9, 11.5, 19.9])
    assert t.column(LINE).to_pylist() == [2, 3, 4]
    assert t.column(REJECT).null_count == 3
    for name in (*BINARY, "play_time_s", "duration_s"):
        assert t.schema.field(name).type == pa.float32()


def test_folder_reads_log_files_in_name_order(tmp_path: Path) -> None:
    write(tmp_path / "log_standard_4_22_to_5_08_1k.csv", [ROWS[2]])
    write(tmp_path / "log_random_4_22_to_5_08_1k.csv", [ROWS[1]])
    write(tmp_path / "log_standard_4_08_to_4_21_1k.csv", [ROWS[0]])
    (tmp_path / "user_features_1k.csv").write_text("user_id\n0\n")  # not a log: ignored
    source = open_kuairand(tmp_path)
    assert source.name == "kuairand-1k"
    assert [Path(f).name for f in source.info["files"]] == [
        "log_random_4_22_to_5_08_1k.csv",
        "log_standard_4_08_to_4_21_1k.csv",
        "log_standard_4_22_to_5_08_1k.csv",
    ]
    assert [f for f, _ in source.read()] == source.info["files"]  # each batch names its file
    assert read_all(source).column(ITEM_ID).to_pylist() == [6953, 4381, 4381]


def test_empty_values_are_nan_and_bad_time_is_rejected(tmp_path: Path) -> None:
    rows = [ROWS[0], "2,77,20220408,1200,soon,,0,0,0,0,0,0,,,0,0,0,0,2"]
    t = read_all(open_kuairand(write(tmp_path / "log_standard_x.csv", rows)))
    bad = t.to_pylist()[1]
    assert bad[LINE] == 3 and bad[REJECT] == "bad_timestamp: 'soon'" and bad[TIMESTAMP] is None
    assert math.isnan(bad["is_click"]) and math.isnan(bad["play_time_s"]) and bad["duration_s"] is None
    assert bad[USER_ID] == 2 and bad["tab"] == 2


def test_truncated_last_line(tmp_path: Path) -> None:
    p = tmp_path / "log_standard_x.csv"
    p.write_text(HEADER + "\n" + ROWS[0] + "\n" + "0,4381,2022")
    t = read_all(open_kuairand(p))
    assert t.column(LINE).to_pylist() == [2, 3]
    assert t.column(REJECT).to_pylist() == [None, "malformed_line: expected 19 fields, got 3"]


def test_missing_columns_are_named(tmp_path: Path) -> None:
    header = HEADER.replace(",is_hate", "").replace("time_ms,", "")
    p = tmp_path / "log_standard_x.csv"
    p.write_text(header + "\n")
    with pytest.raises(DataError) as err:
        open_kuairand(p)
    text = str(err.value)
    assert "log_standard_x.csv" in text and "'time_ms', 'is_hate'" in text and "found columns ['user_id'" in text


def test_missing_and_empty_inputs(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"nope\.csv: file not found"):
        open_kuairand(tmp_path / "nope.csv")
    with pytest.raises(DataError, match=r"no KuaiRand log files"):
        open_kuairand(tmp_path)
    empty = tmp_path / "log_standard_empty.csv"
    empty.write_text("")
    with pytest.raises(DataError, match=r"log_standard_empty\.csv: file is empty"):
        open_kuairand(empty)
