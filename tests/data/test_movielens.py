"""Tests for the MovieLens adapter on small files in the original formats (zips included)."""

from __future__ import annotations

import math
import zipfile
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from argusrec.data.adapters.movielens import GENRES_100K, open_movielens
from argusrec.data.schema import ITEM_ID, LINE, REJECT, TIMESTAMP, USER_ID, Role
from argusrec.errors import DataError
from tests.conftest import need_shared

U_DATA = "196\t242\t3\t881250949\n186\t302\t4\t891717742\n22\t377\t1\t878887116\n"


def u_item_line(movie_id: int, title: str, genres: set[str]) -> str:
    flags = "|".join("1" if g in genres else "0" for g in GENRES_100K)
    return f"{movie_id}|{title}|01-Jan-1995||http://us.imdb.com/M/title-exact?x|{flags}\n"


U_ITEM = (
    u_item_line(242, "Kolya (1996)", {"Comedy"})
    + u_item_line(302, "L.A. Confidential (1997)", {"Crime", "Film-Noir", "Mystery", "Thriller"})
    + u_item_line(377, "Heavyweights (1994)", {"Children's", "Comedy"})
    + u_item_line(1311, "Café au Lait (1993)", set())  # 'é' is one latin-1 byte in the original
)

RATINGS_DAT = "1::1193::5::978300760\n1::661::3::978302109\n2::1193::2::978298413\n"
MOVIES_DAT = "1193::One Flew Over the Cuckoo's Nest (1975)::Drama\n661::James and the Giant Peach (1996)::Animation|Children's|Musical\n3::À nous la liberté (1931)::Comedy\n"  # noqa: E501

RATINGS_CSV = "userId,movieId,rating,timestamp\n1,31,2.5,1260759144\n1,1029,4.5,1260759179\n2,11,1.0,1260759185\n"
MOVIES_CSV = (
    "movieId,title,genres\n"
    '11,"American President, The (1995)",Comedy|Drama|Romance\n'
    "31,Dangerous Minds (1995),Drama\n"
    "1029,Dumbo (1941),Animation|Children|Drama|Musical\n"
    '176,"Living in Oblivion (1995)",(no genres listed)\n'
)


def read_all(source) -> pa.Table:
    batches = []
    for file, batch in source.read():
        assert isinstance(file, str)
        batches.append(batch)
    return pa.Table.from_batches(batches)


def make_zip(path: Path, files: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return path


def test_100k_zip_events_and_items(tmp_path: Path) -> None:
    archive = make_zip(
        tmp_path / "ml-100k.zip",
        {
            "ml-100k/README": b"MovieLens 100K",
            "ml-100k/u.data": U_DATA.encode(),
            "ml-100k/u.item": U_ITEM.encode("latin-1"),
            "ml-100k/u.genre": "".join(f"{g}|{i}\n" for i, g in enumerate(GENRES_100K)).encode(),
        },
    )
    source = open_movielens(archive)
    assert source.name == "movielens-100k"
    assert source.info["variant"] == "100k"
    assert source.info["files"] == [f"{archive}!ml-100k/u.data", f"{archive}!ml-100k/u.item"]
    assert source.schema.feedback == ["rating", "like", "dislike"]
    assert source.schema.feedback_kind("like").value == "binary"
    assert source.schema.names(Role.ITEM_FEATURE) == ["title", "genres"]
    t = read_all(source)
    assert t.column(USER_ID).to_pylist() == [196, 186, 22]
    assert t.column(ITEM_ID).to_pylist() == [242, 302, 377]
    assert t.column(TIMESTAMP).to_pylist() == [881250949, 891717742, 878887116]
    assert t.column("rating").to_pylist() == [3.0, 4.0, 1.0]
    assert t.column("like").to_pylist() == [0.0, 1.0, 0.0]
    assert t.column("dislike").to_pylist() == [0.0, 0.0, 1.0]
    assert t.column(LINE).to_pylist() == [1, 2, 3]
    assert t.column(REJECT).null_count == 3
    assert t.schema.field("rating").type == pa.float32() and t.schema.field(USER_ID).type == pa.int64()
    items = source.items
    assert items is not None
    assert items.column(ITEM_ID).to_pylist() == [242, 302, 377, 1311]
    assert items.column("title").to_pylist()[3] == "Café au Lait (1993)"
    assert items.column("genres").to_pylist() == [
        ["Comedy"],
        ["Crime", "Film-Noir", "Mystery", "Thriller"],
        ["Children's", "Comedy"],
        [],
    ]


def test_100k_extracted_folder_and_direct_file(tmp_path: Path) -> None:
    folder = tmp_path / "ml-100k"
    folder.mkdir()
    (folder / "u.data").write_text(U_DATA)
    (folder / "u.item").write_bytes(U_ITEM.encode("latin-1"))
    for path in (folder, folder / "u.data", tmp_path):  # tmp_path: the data sit one folder down
        source = open_movielens(path)
        assert source.name == "movielens-100k"
        assert read_all(source).column(ITEM_ID).to_pylist() == [242, 302, 377]
        assert source.items is not None and source.items.num_rows == 4


def test_1m_folder_double_colon_latin1(tmp_path: Path) -> None:
    folder = tmp_path / "ml-1m"
    folder.mkdir()
    (folder / "ratings.dat").write_text(RATINGS_DAT)
    (folder / "movies.dat").write_bytes(MOVIES_DAT.encode("latin-1"))
    source = open_movielens(folder)
    assert source.name == "movielens-1m" and source.info["variant"] == "dat"
    t = read_all(source)
    assert t.select([USER_ID, ITEM_ID, TIMESTAMP, "rating", "like", "dislike", LINE]).to_pylist() == [
        {USER_ID: 1, ITEM_ID: 1193, TIMESTAMP: 978300760, "rating": 5.0, "like": 1.0, "dislike": 0.0, LINE: 1},
        {USER_ID: 1, ITEM_ID: 661, TIMESTAMP: 978302109, "rating": 3.0, "like": 0.0, "dislike": 0.0, LINE: 2},
        {USER_ID: 2, ITEM_ID: 1193, TIMESTAMP: 978298413, "rating": 2.0, "like": 0.0, "dislike": 1.0, LINE: 3},
    ]
    assert source.items is not None
    assert source.items.to_pylist() == [
        {ITEM_ID: 1193, "title": "One Flew Over the Cuckoo's Nest (1975)", "genres": ["Drama"]},
        {ITEM_ID: 661, "title": "James and the Giant Peach (1996)", "genres": ["Animation", "Children's", "Musical"]},
        {ITEM_ID: 3, "title": "À nous la liberté (1931)", "genres": ["Comedy"]},
    ]


def test_10m_zip_half_stars(tmp_path: Path) -> None:
    archive = make_zip(
        tmp_path / "ml-10m.zip",
        {
            "ml-10M100K/ratings.dat": b"1::122::5::838985046\n1::185::4.5::838983525\n",
            "ml-10M100K/movies.dat": (
                b"122::Boomerang (1992)::Comedy|Romance\n185::Net, The (1995)::Action|Crime|Thriller\n"
            ),
        },
    )
    source = open_movielens(archive)
    assert source.name == "movielens-10m"
    t = read_all(source)
    assert t.column("rating").to_pylist() == [5.0, 4.5]
    assert source.items is not None and source.items.column("title").to_pylist()[1] == "Net, The (1995)"


def test_latest_csv_quoted_titles_and_no_genres(tmp_path: Path) -> None:
    folder = tmp_path / "ml-latest-small"
    folder.mkdir()
    (folder / "ratings.csv").write_text(RATINGS_CSV)
    (folder / "movies.csv").write_text(MOVIES_CSV)
    source = open_movielens(folder)
    assert source.name == "movielens-latest-small" and source.info["variant"] == "csv"
    t = read_all(source)
    assert t.column(ITEM_ID).to_pylist() == [31, 1029, 11]
    assert t.column("rating").to_pylist() == [2.5, 4.5, 1.0]
    assert t.column("like").to_pylist() == [0.0, 1.0, 0.0]
    assert t.column("dislike").to_pylist() == [0.0, 0.0, 1.0]
    assert t.column(LINE).to_pylist() == [2, 3, 4]  # the header is line 1
    items = source.items
    assert items is not None
    assert items.column("title").to_pylist()[0] == "American President, The (1995)"
    assert items.column("genres").to_pylist() == [
        ["Comedy", "Drama", "Romance"],
        ["Drama"],
        ["Animation", "Children", "Drama", "Musical"],
        [],
    ]


def test_25m_zip_without_movies(tmp_path: Path) -> None:
    archive = make_zip(tmp_path / "ml-25m.zip", {"ml-25m/ratings.csv": RATINGS_CSV.encode()})
    source = open_movielens(archive)
    assert source.name == "movielens-25m"
    assert source.items is None and source.schema.item_features == []
    assert "no movies.csv" in source.info["notes"][0]
    assert read_all(source).num_rows == 3


def test_non_numeric_timestamp_rejected_with_line(tmp_path: Path) -> None:
    folder = tmp_path / "ml-100k"
    folder.mkdir()
    (folder / "u.data").write_text("196\t242\t3\t881250949\n186\t302\t4\tyesterday\n")
    t = read_all(open_movielens(folder))
    assert t.column(REJECT).to_pylist() == [None, "bad_timestamp: 'yesterday'"]
    assert t.column(LINE).to_pylist() == [1, 2]
    assert t.column(TIMESTAMP).to_pylist() == [881250949, None]
    assert t.column("like").to_pylist() == [0.0, 1.0]  # the rating parsed, so feedback is kept


def test_truncated_last_line_in_zip(tmp_path: Path) -> None:
    archive = make_zip(tmp_path / "ml-1m.zip", {"ml-1m/ratings.dat": (RATINGS_DAT + "3::12").encode()})
    t = read_all(open_movielens(archive))
    last = t.slice(t.num_rows - 1).to_pylist()[0]
    assert last[LINE] == 4 and last[REJECT] == "malformed_line: expected 4 fields, got 2"
    assert math.isnan(last["rating"]) and last[USER_ID] is None


def test_misnamed_header_names_file_and_columns(tmp_path: Path) -> None:
    folder = tmp_path / "ml-latest-small"
    folder.mkdir()
    (folder / "ratings.csv").write_text("userId,itemId,rating,timestamp\n1,31,2.5,1260759144\n")
    with pytest.raises(DataError) as err:
        open_movielens(folder)
    text = str(err.value)
    assert "ratings.csv" in text and "'movieId'" in text and "found columns ['userId', 'itemId'" in text


def test_empty_ratings_file(tmp_path: Path) -> None:
    folder = tmp_path / "ml-100k"
    folder.mkdir()
    (folder / "u.data").write_text("")
    with pytest.raises(DataError, match=r"u\.data: file is empty"):
        open_movielens(folder)


def test_missing_path_and_folder_without_ratings(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"ml-404: file not found"):
        open_movielens(tmp_path / "ml-404")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"empty: no MovieLens ratings file .*u\.data"):
        open_movielens(tmp_path / "empty")


def test_not_a_movielens_file(tmp_path: Path) -> None:
    p = tmp_path / "events.csv"
    p.write_text("a,b\n")
    with pytest.raises(DataError, match=r"events\.csv: not a MovieLens ratings file"):
        open_movielens(p)


def test_zip_without_ratings(tmp_path: Path) -> None:
    archive = make_zip(tmp_path / "ml-x.zip", {"ml-x/README": b"hi"})
    with pytest.raises(DataError, match=r"ml-x\.zip: no MovieLens ratings file in the archive"):
        open_movielens(archive)


def test_truncated_zip(tmp_path: Path) -> None:
    archive = make_zip(tmp_path / "ml-100k.zip", {"ml-100k/u.data": U_DATA.encode() * 50})
    archive.write_bytes(archive.read_bytes()[:-60])  # the central directory is at the end
    with pytest.raises(DataError, match=r"ml-100k\.zip: not a readable zip archive"):
        open_movielens(archive)


def test_bad_movies_line_names_file_and_line(tmp_path: Path) -> None:
    folder = tmp_path / "ml-100k"
    folder.mkdir()
    (folder / "u.data").write_text(U_DATA)
    (folder / "u.item").write_text(U_ITEM + "999|Broken\n")
    with pytest.raises(DataError, match=r"u\.item, line 5: malformed_line: expected 24 fields, got 2"):
        open_movielens(folder)


# ---------------------------------------------------------------------------------------------- real data


def test_real_ml_100k() -> None:
    folder = need_shared("ml-100k", "u.data").parent
    source = open_movielens(folder)
    t = read_all(source)
    assert t.num_rows == 100_000
    assert len(pc.unique(t.column(USER_ID))) == 943
    assert len(pc.unique(t.column(ITEM_ID))) == 1682
    assert t.column(REJECT).null_count == 100_000
    assert source.items is not None and source.items.num_rows == 1682
    titles = source.items.column("title").to_pylist()
    assert any("é" in title for title in titles)  # latin-1 decoded


def test_real_ml_latest_small() -> None:
    folder = need_shared("ml-latest-small", "ratings.csv").parent
    source = open_movielens(folder)
    t = read_all(source)
    assert t.num_rows == 100_004
    assert len(pc.unique(t.column(USER_ID))) == 671
    assert source.items is not None and source.items.num_rows == 9125


def test_real_ml_1m_movies_dat(tmp_path: Path) -> None:
    movies = need_shared("ml-1m", "movies.dat")
    folder = tmp_path / "ml-1m"
    folder.mkdir()
    (folder / "movies.dat").symlink_to(movies)  # ratings.dat is not on these machines
    (folder / "ratings.dat").write_text(RATINGS_DAT)
    source = open_movielens(folder)
    assert source.items is not None and source.items.num_rows == 3883
    assert source.items.slice(0, 1).to_pylist()[0]["genres"] == ["Animation", "Children's", "Comedy"]
