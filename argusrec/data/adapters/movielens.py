"""Adapter for the MovieLens rating datasets (GroupLens), extracted or still zipped.

Formats read (detected from the file names):

===========================  ======================  =========================================  ==========
variant                      ratings file            layout                                     movies file
===========================  ======================  =========================================  ==========
100K                         ``u.data``              tab-separated, no header:                  ``u.item``
                                                     ``user item rating timestamp``
1M, 10M                      ``ratings.dat``         ``::``-separated, no header, same fields   ``movies.dat``
20M, 25M, 32M, latest(-small) ``ratings.csv``        comma-separated, header                    ``movies.csv``
                                                     ``userId,movieId,rating,timestamp``
===========================  ======================  =========================================  ==========

``path`` may be the original zip (``ml-100k.zip`` holds ``ml-100k/u.data``, ``ml-10m.zip`` holds
``ml-10M100K/ratings.dat``, ...), the extracted folder, or the ratings file itself.

Movies files: ``u.item`` is ``|``-separated latin-1 with 24 fields (id, title, release date,
video release date, IMDb URL, 19 genre flags in the order of ``u.genre``); ``movies.dat`` is
``id::title::A|B`` (latin-1 in 1M); ``movies.csv`` has the header ``movieId,title,genres`` with
quoted titles that contain commas. The text encoding of a movies file is UTF-8 when it decodes as
such, else latin-1. ``(no genres listed)`` becomes an empty list.

Mapping to the canonical schema: ``user_id``/``item_id`` int64 as in the file, ``timestamp`` int64
seconds; feedback ``rating`` (continuous, the stars), ``like`` = rating >= 4 and ``dislike`` =
rating <= 2 (binary), all float32, NaN where the rating is missing or unparseable. Item features
``title`` (string) and ``genres`` (list of strings) are in :attr:`EventSource.items`.
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from argusrec.data.adapters.base import Batches, EventSource
from argusrec.data.adapters.delimited import read_delimited
from argusrec.data.adapters.textfile import estimate_rows, zip_member
from argusrec.data.adapters.values import ColumnType
from argusrec.data.schema import ITEM_ID, LINE, REJECT, TIMESTAMP, USER_ID, DatasetSchema
from argusrec.errors import DataError

#: Genre flags of ``u.item`` in column order (MovieLens 100K README, ``u.genre``).
GENRES_100K: tuple[str, ...] = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama",
    "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western",
)  # fmt: skip
NO_GENRES = "(no genres listed)"
LIKE_THRESHOLD = 4.0  # like = rating >= 4
DISLIKE_THRESHOLD = 2.0  # dislike = rating <= 2
FEEDBACK = {"rating": "continuous", "like": "binary", "dislike": "binary"}


@dataclass(frozen=True)
class _Layout:
    variant: str
    separator: str
    header: bool
    raw: tuple[str, str, str, str]  # names of user, item, rating, timestamp in the file
    movies: str  # file name of the movies file next to the ratings file


LAYOUTS: dict[str, _Layout] = {
    "u.data": _Layout("100k", "\t", False, (USER_ID, ITEM_ID, "rating", TIMESTAMP), "u.item"),
    "ratings.dat": _Layout("dat", "::", False, (USER_ID, ITEM_ID, "rating", TIMESTAMP), "movies.dat"),
    "ratings.csv": _Layout("csv", ",", True, ("userId", "movieId", "rating", TIMESTAMP), "movies.csv"),
}


@dataclass(frozen=True)
class _File:
    """A file on disk or a member of a zip archive."""

    name: str  # for messages and batch provenance
    source: str | Callable[[], BinaryIO]
    size: int


def open_movielens(path: str | Path) -> EventSource:
    """Open a MovieLens dataset: the original zip, the extracted folder, or the ratings file.

    The ratings file is checked (present, not empty, header) and the movies file, when present,
    is read into :attr:`EventSource.items` now; ratings are streamed when ``read`` is called.
    """
    root = Path(path)
    ratings, movies, layout, stem = _locate(root)
    reader_args = _ratings_args(layout)
    # Fail now on a missing/empty file or a bad header rather than in the middle of a build.
    read_delimited(ratings.source, name=ratings.name, **reader_args)
    items = _read_movies(movies, layout) if movies is not None else None

    def read() -> Batches:
        for raw in read_delimited(ratings.source, name=ratings.name, **reader_args):
            yield ratings.name, _to_events(raw)

    files = [ratings.name] + ([movies.name] if movies is not None else [])
    notes = [] if movies is not None else [f"no {layout.movies} next to the ratings: no item features"]
    schema = DatasetSchema.of(feedback=FEEDBACK, item_features=["title", "genres"] if items is not None else [])
    return EventSource(
        name=_dataset_name(stem, layout, ratings.size),
        schema=schema,
        read=read,
        items=items,
        estimated_rows=estimate_rows(ratings.source, total_bytes=ratings.size, name=ratings.name),
        info={
            "format": "movielens",
            "variant": layout.variant,
            "files": files,
            "feedback": f"like = rating >= {LIKE_THRESHOLD:g}, dislike = rating <= {DISLIKE_THRESHOLD:g}",
            "notes": notes,
        },
    )


def _ratings_args(layout: _Layout) -> dict[str, Any]:
    user, item, rating, ts = layout.raw
    types: dict[str, ColumnType] = {user: "int", item: "int", rating: "float", ts: "int"}
    args: dict[str, Any] = {
        "separator": layout.separator,
        "header": layout.header,
        "columns": list(layout.raw),
        "types": types,
        "rename": dict(zip(layout.raw, (USER_ID, ITEM_ID, "rating", TIMESTAMP), strict=True)),
        "quoting": layout.separator == ",",
    }
    if not layout.header:
        args["names"] = list(layout.raw)
    return args


def _locate(root: Path) -> tuple[_File, _File | None, _Layout, str]:
    """(ratings file, movies file or None, layout, dataset stem) for a zip, folder or ratings file."""
    if root.is_dir():
        for folder in [root, *sorted(p for p in root.iterdir() if p.is_dir())]:
            for fname, layout in LAYOUTS.items():
                if (folder / fname).is_file():
                    return _disk(folder / fname), _disk_opt(folder / layout.movies), layout, folder.name
        raise DataError(
            f"no MovieLens ratings file here or one folder down; looked for {list(LAYOUTS)}",
            file=str(root),
            hint="point at the extracted ml-* folder, its zip, or the ratings file",
        )
    if not root.exists():
        raise DataError("file not found", file=str(root))
    if zipfile.is_zipfile(root):
        return _locate_in_zip(root)
    if root.suffix.lower() == ".zip":
        raise DataError("not a readable zip archive (truncated or corrupt?)", file=str(root), hint="download it again")
    if root.name not in LAYOUTS:
        raise DataError(
            f"not a MovieLens ratings file: expected one named {list(LAYOUTS)} or a zip",
            file=str(root),
        )
    layout = LAYOUTS[root.name]
    return _disk(root), _disk_opt(root.parent / layout.movies), layout, root.parent.name


def _disk(p: Path) -> _File:
    return _File(str(p), str(p), p.stat().st_size)


def _disk_opt(p: Path) -> _File | None:
    return _disk(p) if p.is_file() else None


def _locate_in_zip(archive: Path) -> tuple[_File, _File | None, _Layout, str]:
    try:
        with zipfile.ZipFile(archive) as zf:
            infos = {i.filename: i for i in zf.infolist() if not i.is_dir()}
    except (zipfile.BadZipFile, OSError) as exc:
        raise DataError(f"not a readable zip archive ({exc})", file=str(archive), hint="download it again") from exc
    # The shallowest ratings file wins (the archives hold one folder with the dataset).
    found = sorted((m.count("/"), m) for m in infos if m.rsplit("/", 1)[-1] in LAYOUTS and "__MACOSX" not in m)
    if not found:
        raise DataError(
            f"no MovieLens ratings file in the archive; looked for {list(LAYOUTS)}, found {sorted(infos)[:10]}",
            file=str(archive),
        )
    member = found[0][1]
    layout = LAYOUTS[member.rsplit("/", 1)[-1]]
    folder = member.rsplit("/", 1)[0] + "/" if "/" in member else ""

    def entry(m: str) -> _File:
        return _File(f"{archive}!{m}", zip_member(archive, m), infos[m].file_size)

    movies = folder + layout.movies
    return entry(member), entry(movies) if movies in infos else None, layout, archive.stem


def _dataset_name(stem: str, layout: _Layout, size: int) -> str:
    s = stem.lower()
    if s.startswith("ml-"):
        s = s[3:]
        s = {"10m100k": "10m"}.get(s, s)
    elif layout.variant == "100k":
        s = "100k"
    elif layout.variant == "dat":
        s = "1m" if size < 100 << 20 else "10m"  # ratings.dat: 24 MB in 1M, 265 MB in 10M
    else:
        s = re.sub(r"[^a-z0-9]+", "-", s).strip("-") or "csv"
    return f"movielens-{s}"


def _to_events(raw: pa.RecordBatch) -> pa.RecordBatch:
    rating = pc.cast(raw.column("rating"), pa.float32())
    nan = pa.scalar(float("nan"), pa.float32())

    def flag(mask: pa.Array) -> pa.Array:
        return pc.fill_null(pc.cast(mask, pa.float32()), nan)

    rating_f = pc.fill_null(rating, nan)
    columns = {
        USER_ID: raw.column(USER_ID),
        ITEM_ID: raw.column(ITEM_ID),
        TIMESTAMP: raw.column(TIMESTAMP),
        "rating": rating_f,
        "like": flag(pc.greater_equal(rating, pa.scalar(LIKE_THRESHOLD, pa.float32()))),
        "dislike": flag(pc.less_equal(rating, pa.scalar(DISLIKE_THRESHOLD, pa.float32()))),
    }
    names = [*columns, LINE, REJECT]
    arrays = [*columns.values(), raw.column(LINE), raw.column(REJECT)]
    return pa.RecordBatch.from_arrays(arrays, names=names)


# --------------------------------------------------------------------------------------------------
# Movies


def _encoding(f: _File) -> str:
    """UTF-8 when the (small) movies file decodes as UTF-8, else latin-1 (100K and 1M)."""
    if isinstance(f.source, str):
        data = Path(f.source).read_bytes()
    else:
        with f.source() as stream:
            data = stream.read()
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return "latin-1"
    return "utf-8"


def _read_movies(f: _File, layout: _Layout) -> pa.Table:
    encoding = _encoding(f)
    if layout.movies == "u.item":
        flags = [f"g{i}" for i in range(len(GENRES_100K))]
        names = ["movie_id", "title", "release_date", "video_release_date", "imdb_url", *flags]
        batches = read_delimited(
            f.source,
            name=f.name,
            separator="|",
            header=False,
            names=names,
            columns=["movie_id", "title", *flags],
            types={"movie_id": "int", **dict.fromkeys(flags, "int")},
            encoding=encoding,
            quoting=False,
        )
    else:
        csv = layout.movies == "movies.csv"
        batches = read_delimited(
            f.source,
            name=f.name,
            separator="," if csv else "::",
            header=csv,
            names=None if csv else ["movieId", "title", "genres"],
            columns=["movieId", "title", "genres"],
            types={"movieId": "int"},
            encoding=encoding,
            quoting=csv,
        )
    table = pa.Table.from_batches(list(batches))
    if table.num_rows == 0:
        raise DataError("no movies in the file", file=f.name)
    bad = pc.filter(table, pc.is_valid(table.column(REJECT)))
    if bad.num_rows:
        raise DataError(
            f"{bad.column(REJECT)[0].as_py()} ({bad.num_rows} bad line(s) in all)",
            file=f.name,
            line=bad.column(LINE)[0].as_py(),
        )
    if layout.movies == "u.item":
        matrix = np.column_stack([table.column(c).to_numpy(zero_copy_only=False) for c in flags])
        genres = _lists_from_flags(matrix)
        ids = table.column("movie_id")
    else:
        genres = _lists_from_text(table.column("genres").combine_chunks())
        ids = table.column("movieId")
    return pa.table({ITEM_ID: ids.combine_chunks(), "title": table.column("title").combine_chunks(), "genres": genres})


def _lists_from_flags(matrix: np.ndarray) -> pa.ListArray:
    """(n, 19) 0/1 flags -> list of genre names per row, vectorised."""
    rows, cols = np.nonzero(matrix == 1)
    offsets = np.zeros(len(matrix) + 1, dtype=np.int32)
    np.cumsum(np.bincount(rows, minlength=len(matrix)), out=offsets[1:])
    values = pa.array(np.asarray(GENRES_100K, dtype=object)[cols], pa.string())
    return pa.ListArray.from_arrays(pa.array(offsets), values)


def _lists_from_text(text: pa.Array) -> pa.ListArray:
    """``"A|B"`` -> ``["A", "B"]``; empty, null and ``(no genres listed)`` -> ``[]``."""
    parts = pc.split_pattern(pc.fill_null(text, ""), "|")
    flat = pc.list_flatten(parts)
    parent = pc.list_parent_indices(parts).to_numpy()
    keep = pc.and_(pc.not_equal(flat, ""), pc.not_equal(flat, NO_GENRES))
    keep_np = keep.to_numpy(zero_copy_only=False)
    counts = np.bincount(parent[keep_np], minlength=len(text))
    offsets = np.zeros(len(text) + 1, dtype=np.int32)
    np.cumsum(counts, out=offsets[1:])
    return pa.ListArray.from_arrays(pa.array(offsets), pc.filter(flat, keep))
