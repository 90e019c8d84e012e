"""Tests for the shared delimited-text reader: values, line numbers, rejects, structural errors."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pyarrow as pa
import pytest

from argusrec.data.adapters.delimited import (
    ColumnType,
    check_columns,
    estimate_rows,
    parse_numbers,
    read_delimited,
    read_header,
    sniff_separator,
    zip_member,
)
from argusrec.data.schema import LINE, REJECT
from argusrec.errors import DataError

RATING_TYPES: dict[str, ColumnType] = {"userId": "int", "movieId": "int", "rating": "float", "timestamp": "int"}
RENAME = {"userId": "user_id", "movieId": "item_id"}


def rows(batches) -> list[dict]:
    out: list[dict] = []
    for b in batches:
        assert LINE in b.schema.names and REJECT in b.schema.names
        out.extend(b.to_pylist())
    return sorted(out, key=lambda r: r[LINE])


def write(tmp_path: Path, name: str, text: str, encoding: str = "utf-8") -> Path:
    p = tmp_path / name
    p.write_bytes(text.encode(encoding))
    return p


def test_csv_with_header_typed_values_and_lines(tmp_path: Path) -> None:
    p = write(tmp_path, "r.csv", "userId,movieId,rating,timestamp\n1,31,2.5,1260759144\n1,1029,3.0,1260759179\n")
    got = rows(read_delimited(p, separator=",", types=RATING_TYPES, rename=RENAME))
    assert got == [
        {"user_id": 1, "item_id": 31, "rating": 2.5, "timestamp": 1260759144, LINE: 2, REJECT: None},
        {"user_id": 1, "item_id": 1029, "rating": 3.0, "timestamp": 1260759179, LINE: 3, REJECT: None},
    ]


def test_batch_schema_is_typed(tmp_path: Path) -> None:
    p = write(tmp_path, "r.csv", "userId,movieId,rating,timestamp\n1,31,2.5,1260759144\n")
    batch = next(read_delimited(p, separator=",", types=RATING_TYPES))
    assert batch.schema.field("userId").type == pa.int64()
    assert batch.schema.field("rating").type == pa.float64()
    assert batch.schema.field(REJECT).type == pa.string()


def test_columns_subset_and_order(tmp_path: Path) -> None:
    p = write(tmp_path, "r.csv", "a,b,c\n1,x,2\n")
    batch = next(read_delimited(p, separator=",", columns=["c", "a"], types={"c": "int"}))
    assert batch.schema.names == ["c", "a", LINE, REJECT]
    assert batch.to_pylist()[0]["c"] == 2 and batch.to_pylist()[0]["a"] == "1"


def test_non_numeric_timestamp_is_rejected_with_its_line(tmp_path: Path) -> None:
    text = "userId,movieId,rating,timestamp\n1,2,3.5,100\n1,3,4,abc\n2,2,5,3.0\n"
    p = write(tmp_path, "r.csv", text)
    got = rows(read_delimited(p, separator=",", types=RATING_TYPES, rename=RENAME))
    assert [r[LINE] for r in got] == [2, 3, 4]
    assert got[1]["timestamp"] is None and got[1][REJECT] == "bad_timestamp: 'abc'"
    assert got[1]["user_id"] == 1 and got[1]["rating"] == 4.0  # what parsed is kept
    assert got[0][REJECT] is None and got[2]["timestamp"] == 3  # integral float accepted


def test_careful_mode_resumes_after_rows_already_yielded(tmp_path: Path) -> None:
    # Small blocks: the bad value sits in a later block than the first batches handed out.
    lines = [f"{i},{i + 1},1.0,{1000 + i}" for i in range(2000)]
    lines[1500] = "7,8,1.0,not-a-time"
    p = write(tmp_path, "r.csv", "userId,movieId,rating,timestamp\n" + "\n".join(lines) + "\n")
    got = rows(read_delimited(p, separator=",", types=RATING_TYPES, block_size=4096))
    assert len(got) == 2000
    assert [r[LINE] for r in got] == list(range(2, 2002))  # no duplicates, no gaps
    bad = [r for r in got if r[REJECT]]
    assert len(bad) == 1 and bad[0][LINE] == 1502 and bad[0][REJECT] == "bad_timestamp: 'not-a-time'"


def test_restart_with_malformed_lines_loses_and_repeats_nothing(tmp_path: Path) -> None:
    lines = [f"{i},{i},1.0,{1000 + i}" for i in range(3000)]
    lines[10] = "10,10"  # malformed, in the first block
    lines[1200] = "1200"  # malformed, in a middle block
    lines[2500] = "2500,2500,1.0,late"  # bad value, in a later block: forces the careful re-read
    p = write(tmp_path, "r.csv", "userId,movieId,rating,timestamp\n" + "\n".join(lines))
    got = rows(read_delimited(p, separator=",", types=RATING_TYPES, block_size=2048))
    assert [r[LINE] for r in got] == list(range(2, 3002))
    reasons = {r[LINE]: r[REJECT] for r in got if r[REJECT]}
    assert reasons == {
        12: "malformed_line: expected 4 fields, got 2",
        1202: "malformed_line: expected 4 fields, got 1",
        2502: "bad_timestamp: 'late'",
    }
    assert all(r["userId"] == r[LINE] - 2 for r in got if not r[REJECT])


def test_several_bad_values_in_one_row_are_joined(tmp_path: Path) -> None:
    p = write(tmp_path, "r.csv", "userId,movieId,rating,timestamp\nNA,2,x,100\n")
    got = rows(read_delimited(p, separator=",", types=RATING_TYPES, rename=RENAME))
    assert got[0][REJECT] == "bad_user_id: 'NA'; bad_rating: 'x'"
    assert got[0]["timestamp"] == 100


def test_truncated_last_line_is_malformed_with_its_line(tmp_path: Path) -> None:
    p = write(tmp_path, "u.data", "196\t242\t3\t881250949\n186\t302\t3\t891717742\n22\t37")
    names = ["user_id", "item_id", "rating", "timestamp"]
    got = rows(read_delimited(p, separator="\t", header=False, names=names, types={"user_id": "int"}))
    assert [r[LINE] for r in got] == [1, 2, 3]
    assert got[2][REJECT] == "malformed_line: expected 4 fields, got 2"
    assert got[2]["user_id"] is None
    assert got[1] == {"user_id": 186, "item_id": "302", "rating": "3", "timestamp": "891717742", LINE: 2, REJECT: None}


def test_lines_after_blank_and_malformed_lines_keep_true_numbers(tmp_path: Path) -> None:
    text = "a,b\n1,2\n\n3\n4,5,6\n7,8\n"
    p = write(tmp_path, "x.csv", text)
    got = rows(read_delimited(p, separator=",", types={"a": "int", "b": "int"}))
    assert [(r[LINE], r["a"], r[REJECT]) for r in got] == [
        (2, 1, None),
        (4, None, "malformed_line: expected 2 fields, got 1"),
        (5, None, "malformed_line: expected 2 fields, got 3"),
        (6, 7, None),
    ]


def test_double_colon_separator_keeps_single_colons(tmp_path: Path) -> None:
    p = write(tmp_path, "movies.dat", "1::Star Wars: Episode IV (1977)::Action|Sci-Fi\n2::Alien:::Horror\n")
    got = rows(read_delimited(p, separator="::", header=False, names=["id", "title", "genres"], quoting=False))
    assert got[0]["title"] == "Star Wars: Episode IV (1977)" and got[0]["genres"] == "Action|Sci-Fi"
    assert got[1]["title"] == "Alien" and got[1]["genres"] == ":Horror"  # leftmost split, as str.split


def test_double_colon_across_block_boundaries(tmp_path: Path) -> None:
    lines = [f"{i}::{i * 7}::{i % 5 + 1}::{978300000 + i}" for i in range(5000)]
    p = write(tmp_path, "ratings.dat", "\n".join(lines) + "\n")
    names = ["u", "i", "r", "t"]
    types: dict[str, ColumnType] = dict.fromkeys(names, "int")
    got = rows(read_delimited(p, separator="::", header=False, names=names, types=types, block_size=1000))
    assert len(got) == 5000 and all(r[REJECT] is None for r in got)
    assert got[4321] == {"u": 4321, "i": 4321 * 7, "r": 4321 % 5 + 1, "t": 978304321, LINE: 4322, REJECT: None}


def test_latin1_encoding(tmp_path: Path) -> None:
    p = write(tmp_path, "u.item", "1|Café Society (1995)|x\n", encoding="latin-1")
    got = rows(read_delimited(p, separator="|", header=False, names=["id", "title", "x"], encoding="latin-1"))
    assert got[0]["title"] == "Café Society (1995)"


def test_invalid_utf8_names_the_file_and_encoding(tmp_path: Path) -> None:
    p = write(tmp_path, "u.item", "1|Café|x\n", encoding="latin-1")
    with pytest.raises(DataError, match=r"u\.item.*latin-1"):
        list(read_delimited(p, separator="|", header=False, names=["id", "title", "x"]))


def test_quoted_commas(tmp_path: Path) -> None:
    p = write(tmp_path, "m.csv", 'movieId,title,genres\n11,"American President, The (1995)",Comedy|Drama\n')
    got = rows(read_delimited(p, separator=",", types={"movieId": "int"}))
    assert got[0]["title"] == "American President, The (1995)" and got[0][LINE] == 2


def test_empty_ids_are_null(tmp_path: Path) -> None:
    p = write(tmp_path, "e.csv", "u,i,t\n,a,1\nb,,2\n")
    got = rows(read_delimited(p, separator=","))
    assert got[0]["u"] is None and got[1]["i"] is None and got[0]["t"] == "1"


def test_negative_values_are_kept(tmp_path: Path) -> None:
    p = write(tmp_path, "n.csv", "u,t\n1,-5\n")
    assert rows(read_delimited(p, separator=",", types={"t": "int"}))[0]["t"] == -5


def test_zip_member_source(tmp_path: Path) -> None:
    archive = tmp_path / "d.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("d/r.csv", "a,b\n1,x\n2,y\n")
    got = rows(read_delimited(zip_member(archive, "d/r.csv"), name="d.zip!d/r.csv", separator=",", types={"a": "int"}))
    assert [(r["a"], r["b"], r[LINE]) for r in got] == [(1, "x", 2), (2, "y", 3)]


def test_file_object_source_can_be_read_twice(tmp_path: Path) -> None:
    stream = io.BytesIO(b"a,b\n1,x\n2,oops\n")
    got = rows(read_delimited(stream, name="mem.csv", separator=",", types={"a": "int", "b": "int"}))
    assert [r[REJECT] for r in got] == ["bad_b: 'x'", "bad_b: 'oops'"]  # careful pass re-read the stream


def test_empty_file(tmp_path: Path) -> None:
    p = write(tmp_path, "empty.csv", "")
    with pytest.raises(DataError, match=r"empty\.csv: file is empty"):
        read_delimited(p, separator=",")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"nope\.csv: file not found"):
        read_delimited(tmp_path / "nope.csv", separator=",")


def test_missing_column_names_file_missing_and_found(tmp_path: Path) -> None:
    p = write(tmp_path, "r.csv", "userId,movieId,rating\n1,2,3\n")
    with pytest.raises(DataError) as err:
        read_delimited(p, separator=",", columns=["userId", "movieId", "rating", "timestamp"])
    text = str(err.value)
    assert "r.csv" in text and "'timestamp'" in text and "found columns ['userId', 'movieId', 'rating']" in text
    assert err.value.column == "timestamp"


def test_misnamed_header_suggests_the_close_name(tmp_path: Path) -> None:
    p = write(tmp_path, "r.csv", "userid,movieId,rating,timestamp\n1,2,3,4\n")
    with pytest.raises(DataError, match=r"misnamed\? found 'userid' for 'userId'"):
        read_delimited(p, separator=",", columns=["userId", "movieId"])


def test_header_that_is_data_gets_a_hint() -> None:
    with pytest.raises(DataError, match="looks like data"):
        check_columns(["1", "31", "2.5", "1260759144"], ["userId"], file="ratings.csv")


def test_wrong_separator_fails_with_a_hint(tmp_path: Path) -> None:
    p = write(tmp_path, "r.tsv", "1,2,3,4\n5,6,7,8\n")
    with pytest.raises(DataError, match=r"r\.tsv, line 1: no line of the first block has the expected 4 fields"):
        list(read_delimited(p, separator="\t", header=False, names=["a", "b", "c", "d"]))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1,2,3\n4,5,6\n", ","),
        ("1\t2\t3\n4\t5\t6\n", "\t"),
        ("1;2\n3;4\n", ";"),
        ("1|a|b\n2|c|d\n", "|"),
        ("1::Toy Story (1995)::Animation|Comedy\n2::Jumanji (1995)::Adventure\n", "::"),
        ('movieId,title\n1,"Toy Story, The"\n2,"A, B, C"\n', ","),
    ],
)
def test_sniff_separator(tmp_path: Path, text: str, expected: str) -> None:
    assert sniff_separator(write(tmp_path, "f.txt", text)) == expected


def test_sniff_unknown_separator_lists_candidates(tmp_path: Path) -> None:
    p = write(tmp_path, "weird.txt", "1 2 3\n4 5 6\n")
    with pytest.raises(DataError) as err:
        sniff_separator(p)
    text = str(err.value)
    assert "weird.txt" in text and "'::' '\\t' ',' ';' '|'" in text and "separator explicitly" in text


def test_sniff_empty_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="file is empty"):
        sniff_separator(write(tmp_path, "e.csv", ""))


def test_read_header_strips_bom_and_spaces(tmp_path: Path) -> None:
    p = tmp_path / "h.csv"
    p.write_bytes(b'\xef\xbb\xbfuserId, movieId ,"rating"\n1,2,3\n')
    assert read_header(p, separator=",") == ["userId", "movieId", "rating"]


def test_bom_file_reads_its_first_column(tmp_path: Path) -> None:
    p = tmp_path / "h.csv"
    p.write_bytes(b"\xef\xbb\xbfuserId,movieId\n1,2\n")
    got = rows(read_delimited(p, separator=",", types={"userId": "int"}))
    assert got[0]["userId"] == 1


def test_parse_numbers_vectorised() -> None:
    values = pa.array(["1", " 2 ", "3.0", "abc", None, "", "1e3"])
    assert parse_numbers(values, "int").to_pylist() == [1, 2, 3, None, None, None, 1000]
    assert parse_numbers(pa.array(["1.5", "x"]), "float").to_pylist() == [1.5, None]


def test_estimate_rows(tmp_path: Path) -> None:
    p = write(tmp_path, "r.csv", "".join(f"{i},{i}\n" for i in range(1000, 2000)))
    assert estimate_rows(p) == 1000
