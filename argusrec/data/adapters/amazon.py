"""Adapter for Amazon review datasets in two formats, detected from the first line.

**S3-Rec sequences** (``Beauty.txt``, ``Sports_and_Outdoors.txt``, ... as shipped with S3-Rec and
reused by many sequential-recommendation papers): one line per user, space-separated::

    user item item item ...

items in time order, no timestamps and no ratings. The timestamp of an event is its position in
the line (0, 1, 2, ...), so the time order is kept but the values are not dates; ``info["notes"]``
says so. The schema has no feedback columns (every event is an implicit positive).

**Ratings CSV** (McAuley's ``ratings_<Category>.csv``, 2014): ``user,item,rating,timestamp``
without a header (one is skipped if present), timestamp in Unix seconds. Feedback ``rating``
(continuous), ``like`` = rating >= 4, ``dislike`` = rating <= 2 (binary), as for MovieLens. The
2018 release puts the item first (``item,user,rating,timestamp``): pass ``item_first=True``.

Ids are kept as they are in the file: in the ratings CSV always strings (ASINs such as
``0205616461`` have leading zeros); in sequence files int64 when the first 64 KiB hold only
plain decimal integers, else strings (``id_type`` overrides). A later token that is not an int in
int mode keeps a null id and a ``bad_item_id`` / ``bad_user_id`` reason.

Sequence files are split without any per-event Python loop: lines come from the streaming
delimited reader, tokens from ``utf8_split_whitespace``, events from ``list_flatten``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from argusrec.data.adapters.base import Batches, EventSource
from argusrec.data.adapters.delimited import read_delimited
from argusrec.data.adapters.textfile import estimate_rows, read_header
from argusrec.data.adapters.values import add_reasons, bad_value_reasons, looks_numeric, parse_numbers
from argusrec.data.schema import ITEM_ID, LINE, REJECT, TIMESTAMP, USER_ID, DatasetSchema
from argusrec.errors import DataError

AmazonFormat = Literal["sequence", "ratings"]
IdType = Literal["auto", "int", "string"]

LIKE_THRESHOLD = 4.0
DISLIKE_THRESHOLD = 2.0
RATINGS_FEEDBACK = {"rating": "continuous", "like": "binary", "dislike": "binary"}
_NO_SEPARATOR = "\x1f"  # a line is one field: the sequence file has no column separator to speak of
_PLAIN_INT = re.compile(r"^(0|[1-9][0-9]{0,17})$")
_SAMPLE_BYTES = 1 << 16
SEQUENCE_NOTE = (
    "S3-Rec sequence file: no timestamps in the data; timestamp = position of the item in the "
    "user's line (0, 1, 2, ...), which keeps the order but is not a date"
)


def open_amazon(
    path: str | Path,
    *,
    format: AmazonFormat | None = None,
    id_type: IdType = "auto",
    item_first: bool = False,
) -> EventSource:
    """Open an Amazon S3-Rec sequence file or a ratings CSV (``format`` None = detect).

    Args:
        path: the ``.txt`` sequence file or the ``.csv`` ratings file.
        format: ``"sequence"`` or ``"ratings"``; detected from the first line when None.
        id_type: ``"auto"``, ``"int"`` or ``"string"`` ids (auto: see the module docstring).
        item_first: ratings CSV only: the columns are ``item,user,rating,timestamp`` (2018 release).
    """
    file = Path(path)
    if file.is_dir():
        raise DataError("is a folder; give the sequence .txt or the ratings .csv file", file=str(file))
    if not file.is_file():
        raise DataError("file not found", file=str(file))
    with open(file, "rb") as f:
        sample = f.read(_SAMPLE_BYTES)
    if not sample.strip():
        raise DataError("file is empty", file=str(file))
    fmt = format or _detect(sample, str(file))
    if fmt == "sequence":
        return _open_sequences(file, sample, id_type)
    if fmt == "ratings":
        return _open_ratings(file, id_type, item_first)
    raise ValueError(f"format must be 'sequence', 'ratings' or None, got {format!r}")


def _dataset_name(file: Path) -> str:
    stem = file.stem
    stem = re.sub(r"^ratings_", "", stem, flags=re.IGNORECASE)
    return "amazon-" + (re.sub(r"[^a-z0-9_]+", "-", stem.lower()).strip("-") or "data")


def _detect(sample: bytes, name: str) -> AmazonFormat:
    first = next((ln for ln in sample.decode("utf-8", errors="replace").splitlines() if ln.strip()), "")
    if first.count(",") == 3:
        return "ratings"
    if "," not in first and len(first.split()) >= 1 and "\t" not in first.strip():
        return "sequence"
    raise DataError(
        f"unknown Amazon format; line 1 is {first[:80]!r}. Expected 'user item item ...' "
        "(S3-Rec sequences) or 'user,item,rating,timestamp' (ratings CSV)",
        file=name,
        hint="pass format='sequence' or format='ratings'",
    )


# --------------------------------------------------------------------------------------------------
# S3-Rec sequences


def _open_sequences(file: Path, sample: bytes, id_type: IdType) -> EventSource:
    if id_type == "auto":
        text = sample.decode("utf-8", errors="replace")
        if len(sample) == _SAMPLE_BYTES and "\n" in text:
            text = text[: text.rindex("\n")]
        tokens = text.split()
        id_type = "int" if tokens and all(_PLAIN_INT.match(t) for t in tokens) else "string"
    as_int = id_type == "int"
    name = str(file)
    args: dict[str, Any] = {"separator": _NO_SEPARATOR, "header": False, "names": ["line"], "quoting": False}
    read_delimited(file, name=name, **args)  # checks the file now

    def read() -> Batches:
        for raw in read_delimited(file, name=name, **args):
            batch = _explode(raw, as_int)
            if batch.num_rows:
                yield name, batch

    lines = estimate_rows(file) or 0
    mean_events = max(1, len(sample.split()) // max(1, sample.count(b"\n")) - 1)
    return EventSource(
        name=_dataset_name(file),
        schema=DatasetSchema(),
        read=read,
        estimated_rows=lines * mean_events,
        info={
            "format": "amazon-s3rec-sequences",
            "files": [name],
            "id_type": id_type,
            "timestamp": "position in the line (0, 1, 2, ...), not a date",
            "notes": [SEQUENCE_NOTE],
        },
    )


def _explode(raw: pa.RecordBatch, as_int: bool) -> pa.RecordBatch:
    """One batch of lines -> one event per item token; timestamp = position of the item in its line."""
    lines = raw.column("line")
    tokens = pc.utf8_split_whitespace(pc.utf8_trim_whitespace(pc.fill_null(lines, "")))
    # Blank lines give [""]: treat them as lines without a user and without items.
    count = pc.list_value_length(tokens).to_numpy(zero_copy_only=False)
    items = pc.list_slice(tokens, 1)
    flat = pc.list_flatten(items)
    parent = pc.list_parent_indices(items).to_numpy(zero_copy_only=False)
    n_items = np.maximum(count - 1, 0)
    starts = np.zeros(len(count), dtype=np.int64)
    np.cumsum(n_items[:-1], out=starts[1:])
    position = np.arange(len(parent), dtype=np.int64) - starts[parent]  # (E,)
    take = pa.array(parent)
    user = pc.take(pc.list_element(tokens, 0), take)
    reasons = pc.take(raw.column(REJECT), take)
    if as_int:
        user_int = parse_numbers(user, "int")
        item_int = parse_numbers(flat, "int")
        reasons = add_reasons(reasons, bad_value_reasons(USER_ID, user, user_int))
        reasons = add_reasons(reasons, bad_value_reasons(ITEM_ID, flat, item_int))
        user, flat = user_int, item_int
    events = pa.RecordBatch.from_arrays(
        [user, flat, pa.array(position), pc.take(raw.column(LINE), take), reasons],
        names=[USER_ID, ITEM_ID, TIMESTAMP, LINE, REJECT],
    )
    if raw.column(REJECT).null_count == raw.num_rows:
        return events
    # Lines the reader already rejected have no tokens: keep one row each so the reason is counted.
    bad = raw.filter(pc.is_valid(raw.column(REJECT)))
    n = bad.num_rows
    rejected = pa.RecordBatch.from_arrays(
        [pa.nulls(n, user.type), pa.nulls(n, flat.type), pa.nulls(n, pa.int64()), bad.column(LINE), bad.column(REJECT)],
        schema=events.schema,
    )
    return pa.Table.from_batches([events, rejected]).combine_chunks().to_batches()[0]


# --------------------------------------------------------------------------------------------------
# Ratings CSV


def _open_ratings(file: Path, id_type: IdType, item_first: bool) -> EventSource:
    name = str(file)
    fields = [ITEM_ID, USER_ID] if item_first else [USER_ID, ITEM_ID]
    names = [*fields, "rating", TIMESTAMP]
    first = read_header(file, separator=",")
    header = len(first) == 4 and not any(looks_numeric(v) for v in first[2:])
    id_kind = "int" if id_type == "int" else "string"  # auto = string: ASINs have leading zeros
    args: dict[str, Any] = {
        "separator": ",",
        "header": header,
        "names": names,
        "columns": [USER_ID, ITEM_ID, "rating", TIMESTAMP],
        "types": {USER_ID: id_kind, ITEM_ID: id_kind, "rating": "float", TIMESTAMP: "int"},
    }
    read_delimited(file, name=name, **args)

    def read() -> Batches:
        nan = pa.scalar(float("nan"), pa.float32())
        for raw in read_delimited(file, name=name, **args):
            rating = pc.cast(raw.column("rating"), pa.float32())
            like = pc.greater_equal(rating, pa.scalar(LIKE_THRESHOLD, pa.float32()))
            dislike = pc.less_equal(rating, pa.scalar(DISLIKE_THRESHOLD, pa.float32()))
            arrays = [
                raw.column(USER_ID),
                raw.column(ITEM_ID),
                raw.column(TIMESTAMP),
                pc.fill_null(rating, nan),
                pc.fill_null(pc.cast(like, pa.float32()), nan),
                pc.fill_null(pc.cast(dislike, pa.float32()), nan),
                raw.column(LINE),
                raw.column(REJECT),
            ]
            names_out = [USER_ID, ITEM_ID, TIMESTAMP, "rating", "like", "dislike", LINE, REJECT]
            yield name, pa.RecordBatch.from_arrays(arrays, names=names_out)

    return EventSource(
        name=_dataset_name(file),
        schema=DatasetSchema.of(feedback=RATINGS_FEEDBACK),
        read=read,
        estimated_rows=estimate_rows(file),
        info={
            "format": "amazon-ratings-csv",
            "files": [name],
            "columns": names,
            "header": header,
            "feedback": f"like = rating >= {LIKE_THRESHOLD:g}, dislike = rating <= {DISLIKE_THRESHOLD:g}",
            "notes": [],
        },
    )
