"""Tests for the Amazon adapter: S3-Rec sequence files and ratings CSVs, in their original layouts."""

from __future__ import annotations

import math
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from argusrec.data.adapters.amazon import open_amazon
from argusrec.data.schema import ITEM_ID, LINE, REJECT, TIMESTAMP, USER_ID
from argusrec.errors import DataError
from tests.conftest import need_shared

SEQUENCES = "1 1 2 3 4 5\n2 6 7 8 9 10 4 11\n3 4 12\n"
RATINGS = "A2CX7LUOHB2NDG,0321732944,5.0,1341100800\nA2NWSAGRHCP8N5,0439886341,1.0,1367193600\nA2WNBOD3WNDNKT,0439886341,3.0,1374451200\n"  # noqa: E501


def read_all(source) -> pa.Table:
    return pa.Table.from_batches([batch for _, batch in source.read()])


def write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_sequences_positions_as_timestamps(tmp_path: Path) -> None:
    source = open_amazon(write(tmp_path, "Beauty.txt", SEQUENCES))
    assert source.name == "amazon-beauty"
    assert source.info["format"] == "amazon-s3rec-sequences" and source.info["id_type"] == "int"
    assert "position" in source.info["notes"][0]
    assert source.schema.feedback == []
    t = read_all(source)
    assert t.column(USER_ID).to_pylist() == [1] * 5 + [2] * 7 + [3] * 2
    assert t.column(ITEM_ID).to_pylist() == [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 4, 11, 4, 12]
    assert t.column(TIMESTAMP).to_pylist() == [0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 5, 6, 0, 1]
    assert t.column(LINE).to_pylist() == [1] * 5 + [2] * 7 + [3] * 2
    assert t.column(REJECT).null_count == t.num_rows
    assert t.schema.field(USER_ID).type == pa.int64() and t.schema.field(TIMESTAMP).type == pa.int64()


def test_sequences_string_ids_kept_as_strings(tmp_path: Path) -> None:
    source = open_amazon(write(tmp_path, "Toys.txt", "AUSER B00ITEM1 0205616461\nBUSER B00ITEM2\n"))
    t = read_all(source)
    assert source.info["id_type"] == "string"
    assert t.column(USER_ID).to_pylist() == ["AUSER", "AUSER", "BUSER"]
    assert t.column(ITEM_ID).to_pylist() == ["B00ITEM1", "0205616461", "B00ITEM2"]  # leading zero kept
    assert t.column(TIMESTAMP).to_pylist() == [0, 1, 0]


def test_sequences_extra_spaces_blank_lines_and_crlf(tmp_path: Path) -> None:
    source = open_amazon(write(tmp_path, "s.txt", "1  2 3\r\n\n2 4\n"))
    t = read_all(source)
    assert t.column(ITEM_ID).to_pylist() == [2, 3, 4]
    assert t.column(LINE).to_pylist() == [1, 1, 3]


def test_sequences_non_int_token_in_int_mode_is_rejected(tmp_path: Path) -> None:
    source = open_amazon(write(tmp_path, "s.txt", "1 2 3\n2 x 4\n"), id_type="int")
    t = read_all(source)
    assert t.column(ITEM_ID).to_pylist() == [2, 3, None, 4]
    assert t.column(REJECT).to_pylist() == [None, None, "bad_item_id: 'x'", None]
    assert t.column(LINE).to_pylist() == [1, 1, 2, 2]


def test_sequences_many_lines_across_blocks(tmp_path: Path) -> None:
    text = "".join(f"{u} " + " ".join(str(u * 10 + k) for k in range(u % 7 + 1)) + "\n" for u in range(1, 3001))
    t = read_all(open_amazon(write(tmp_path, "big.txt", text)))
    assert t.num_rows == sum(u % 7 + 1 for u in range(1, 3001))
    last = t.slice(t.num_rows - 1).to_pylist()[0]
    assert last == {USER_ID: 3000, ITEM_ID: 30000 + 3000 % 7, TIMESTAMP: 3000 % 7, LINE: 3000, REJECT: None}


def test_ratings_csv(tmp_path: Path) -> None:
    source = open_amazon(write(tmp_path, "ratings_Books.csv", RATINGS))
    assert source.name == "amazon-books" and source.info["format"] == "amazon-ratings-csv"
    assert source.schema.feedback == ["rating", "like", "dislike"]
    t = read_all(source)
    assert t.column(USER_ID).to_pylist() == ["A2CX7LUOHB2NDG", "A2NWSAGRHCP8N5", "A2WNBOD3WNDNKT"]
    assert t.column(ITEM_ID).to_pylist() == ["0321732944", "0439886341", "0439886341"]
    assert t.column(TIMESTAMP).to_pylist() == [1341100800, 1367193600, 1374451200]
    assert t.column("rating").to_pylist() == [5.0, 1.0, 3.0]
    assert t.column("like").to_pylist() == [1.0, 0.0, 0.0]
    assert t.column("dislike").to_pylist() == [0.0, 1.0, 0.0]
    assert t.column(LINE).to_pylist() == [1, 2, 3]


def test_ratings_csv_with_header_and_item_first(tmp_path: Path) -> None:
    text = "item,user,rating,timestamp\n0321732944,A2CX7LUOHB2NDG,4.0,1341100800\n"
    t = read_all(open_amazon(write(tmp_path, "Beauty.csv", text), item_first=True))
    assert t.select([USER_ID, ITEM_ID, "like", LINE]).to_pylist() == [
        {USER_ID: "A2CX7LUOHB2NDG", ITEM_ID: "0321732944", "like": 1.0, LINE: 2}
    ]


def test_ratings_non_numeric_timestamp_and_truncated_line(tmp_path: Path) -> None:
    text = RATINGS + "A1,B2,4.0,soon\nA3,B4\n"
    t = read_all(open_amazon(write(tmp_path, "ratings_Beauty.csv", text)))
    rows = {r[LINE]: r for r in t.to_pylist()}
    assert rows[4][REJECT] == "bad_timestamp: 'soon'" and rows[4][TIMESTAMP] is None and rows[4]["like"] == 1.0
    assert rows[5][REJECT] == "malformed_line: expected 4 fields, got 2" and math.isnan(rows[5]["rating"])


def test_forced_format(tmp_path: Path) -> None:
    # format= overrides detection: a sequence line read as ratings has the wrong field count.
    with pytest.raises(DataError, match=r"x\.txt, line 1: no line of the first block has the expected 4 fields"):
        read_all(open_amazon(write(tmp_path, "x.txt", "7 8\n"), format="ratings"))
    t = read_all(open_amazon(write(tmp_path, "y.txt", "7 8\n"), format="sequence"))
    assert t.column(ITEM_ID).to_pylist() == [8]


def test_empty_missing_and_unknown(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"Beauty\.txt: file is empty"):
        open_amazon(write(tmp_path, "Beauty.txt", "\n\n"))
    with pytest.raises(DataError, match=r"nope\.txt: file not found"):
        open_amazon(tmp_path / "nope.txt")
    with pytest.raises(DataError, match=r"odd\.csv: unknown Amazon format; line 1 is 'a,b'"):
        open_amazon(write(tmp_path, "odd.csv", "a,b\n"))


def test_real_beauty() -> None:
    t = read_all(open_amazon(need_shared("amazon-s3rec", "Beauty.txt")))
    assert t.num_rows == 198_502
    assert len(pc.unique(t.column(USER_ID))) == 22_363
    assert len(pc.unique(t.column(ITEM_ID))) == 12_101
    assert t.column(REJECT).null_count == t.num_rows


def test_real_sports() -> None:
    t = read_all(open_amazon(need_shared("amazon-s3rec", "Sports_and_Outdoors.txt")))
    assert t.num_rows == 296_337
    assert len(pc.unique(t.column(USER_ID))) == 35_598
