"""Adapter for Yandex's Yambda music dataset, "flat" Parquet layout.

Yambda (https://huggingface.co/datasets/yandex/yambda, Apache-2.0, arXiv:2505.22238) ships each size
(``50m``, ``500m``, ``5b``) as ``flat/<size>/multi_event.parquet``, all events in one file, plus one
file per event type (``listens``, ``likes``, ``dislikes``, ``unlikes``, ``undislikes``). Columns
of ``multi_event.parquet``:

========================  ===================  ==============================================
column                    dtype                meaning
========================  ===================  ==============================================
``uid``                   uint32               user
``timestamp``             uint32               seconds since an anonymised origin, in 5 s steps
``item_id``               uint32               track
``is_organic``            uint8                1 = user found it, 0 = from a recommender
``event_type``            enum (dictionary)    listen, like, dislike, unlike, undislike
``played_ratio_pct``      uint16, nullable     listens only; share of the track played, in %
``track_length_seconds``  uint32, nullable     listens only
========================  ===================  ==============================================

The per-event files carry the first four columns; ``listens.parquet`` also the last two.

**Timestamps.** They are seconds, not 5-second units: the published rows are all multiples of 5
(15,929,455; 18,111,700; ...), the official benchmark constants put ``DAY_SECONDS = 86400`` next
to ``LAST_TIMESTAMP = 26_000_000`` (about the 300 days the dataset spans) and split with a
1,800-second gap. So the value is passed through unchanged as int64 seconds; its origin is not the
Unix epoch, so calendar features (hour, weekday) derived from it are meaningless.

**Mapping** to the canonical schema (:data:`SCHEMA`):

* ``user_id`` = ``uid``, ``item_id`` = ``item_id`` (int64), ``timestamp`` as above.
* context ``is_organic`` (categorical, the raw 0/1 as int64).
* binary feedback ``listen``, ``like``, ``dislike``, ``unlike``, ``undislike``: 1.0 on the rows of
  that event type, 0.0 on the rows of the other types.
* continuous feedback ``played_ratio`` = ``played_ratio_pct / 100`` clipped to [0, 1] on listens,
  NaN on other events and on listens without a value. The dataset FAQ says values above 100 come
  from rewinding and replaying parts of the track; for "how much of the track was heard" that is
  the whole track, and a bounded target suits a sigmoid feedback head. The Listen+ signal of the
  Yambda benchmark is ``played_ratio >= 0.5``.
* item feature ``track_length_s`` (float32, null where unknown), per event.

Rows whose ``event_type`` is not one of the five known values (or null), or whose ``is_organic`` is
not 0/1, keep their ids and get a ``__reject`` reason with NaN feedback; ``__line`` is the 1-based
row number in the file. Files are streamed with ``ParquetFile.iter_batches``, so memory is bounded
by the batch size whatever the file size.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from argusrec.data.adapters.base import Batches, EventSource
from argusrec.data.adapters.parquet import iter_parquet_batches, open_parquet
from argusrec.data.adapters.values import is_text
from argusrec.data.schema import (
    ITEM_ID,
    LINE,
    REJECT,
    TIMESTAMP,
    USER_ID,
    ColumnSpec,
    DatasetSchema,
    FeedbackKind,
    Role,
)
from argusrec.errors import DataError

EVENT_TYPES: tuple[str, ...] = ("listen", "like", "dislike", "unlike", "undislike")
MULTI_EVENT_FILE = "multi_event.parquet"
#: Per-event-type files of the flat layout and the event type of their rows, in reading order.
EVENT_FILES: dict[str, str] = {
    "listens.parquet": "listen",
    "likes.parquet": "like",
    "dislikes.parquet": "dislike",
    "unlikes.parquet": "unlike",
    "undislikes.parquet": "undislike",
}

CONTEXT = "is_organic"
PLAYED_RATIO = "played_ratio"
TRACK_LENGTH = "track_length_s"
_BINARY, _CONTINUOUS = FeedbackKind.BINARY, FeedbackKind.CONTINUOUS
SCHEMA = DatasetSchema(
    columns=(
        ColumnSpec(name=CONTEXT, role=Role.CONTEXT, description="1 = found by the user, 0 = recommended"),
        ColumnSpec(name="listen", role=Role.FEEDBACK, kind=_BINARY, description="the event is a listen"),
        ColumnSpec(
            name=PLAYED_RATIO,
            role=Role.FEEDBACK,
            kind=_CONTINUOUS,
            description="share of the track played, played_ratio_pct / 100 clipped to [0, 1]; listens only",
        ),
        ColumnSpec(name="like", role=Role.FEEDBACK, kind=_BINARY, description="the event is a like"),
        ColumnSpec(name="dislike", role=Role.FEEDBACK, kind=_BINARY, description="the event is a dislike"),
        ColumnSpec(name="unlike", role=Role.FEEDBACK, kind=_BINARY, description="a like was withdrawn"),
        ColumnSpec(name="undislike", role=Role.FEEDBACK, kind=_BINARY, description="a dislike was withdrawn"),
        ColumnSpec(name=TRACK_LENGTH, role=Role.ITEM_FEATURE, description="track length in seconds"),
    )
)

_BASE_COLUMNS = ("uid", "timestamp", "item_id", "is_organic")
_LISTEN_COLUMNS = ("played_ratio_pct", "track_length_seconds")
MULTI_EVENT_COLUMNS = (*_BASE_COLUMNS, "event_type", *_LISTEN_COLUMNS)

_SIZE_DIR = re.compile(r"^\d+[mb]$")  # "50m", "500m", "5b"
_EVENT_VALUES = pa.array(EVENT_TYPES, pa.string())
_NAN = pa.scalar(float("nan"), pa.float32())
_CORRUPT_HINT = "the file may be truncated or corrupt; download it again"


def _is_integer(t: pa.DataType) -> bool:
    return pa.types.is_integer(t)


def _is_integer_or_bool(t: pa.DataType) -> bool:
    return pa.types.is_integer(t) or pa.types.is_boolean(t)


def _is_number(t: pa.DataType) -> bool:
    return pa.types.is_integer(t) or pa.types.is_floating(t)


#: column -> (type check, what the error message says was expected)
_TYPE_RULES = {
    "uid": (_is_integer, "an integer type (uint32 in Yambda)"),
    "item_id": (_is_integer, "an integer type (uint32 in Yambda)"),
    "timestamp": (_is_integer, "an integer type (uint32 seconds in Yambda)"),
    "is_organic": (_is_integer_or_bool, "an integer or boolean type (uint8 0/1 in Yambda)"),
    "event_type": (is_text, "strings or a dictionary of strings (an enum in Yambda)"),
    "played_ratio_pct": (_is_number, "a numeric type (uint16 in Yambda)"),
    "track_length_seconds": (_is_number, "a numeric type (uint32 in Yambda)"),
}


def open_yambda(path: str | Path, *, batch_size: int = 1 << 20) -> EventSource:
    """Open Yambda's flat layout: ``multi_event.parquet``, a folder holding it, or per-event files.

    ``path`` may be the ``multi_event.parquet`` file, one per-event file (``likes.parquet``, ...),
    or a folder. In a folder ``multi_event.parquet`` wins; without it, the per-event files present
    are read one after another (listens, likes, dislikes, unlikes, undislikes), which the builder's
    sort by time merges. Footers are read now, so a missing column or an unreadable file fails
    here; rows are read in batches of ``batch_size`` when :attr:`EventSource.read` is called.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    root = Path(path)
    files = _find_files(root)
    rows = [_check_file(file, event) for file, event in files]
    if sum(rows) == 0:
        raise DataError(
            "no events: every file has zero rows",
            file=", ".join(str(f) for f, _ in files),
            hint="the download may be incomplete",
        )

    def read() -> Batches:
        for file, event in files:
            yield from _read_file(file, event, batch_size)

    layout = "multi_event" if files[0][1] is None else "per_event"
    notes = []
    if layout == "per_event" and len(files) < len(EVENT_FILES):
        absent = sorted(set(EVENT_FILES.values()) - {e for _, e in files if e is not None})
        notes.append(f"no file for event types {absent}; their indicators are 0 on every row")
    return EventSource(
        name=_dataset_name(root),
        schema=SCHEMA,
        read=read,
        estimated_rows=sum(rows),
        info={
            "format": "yambda-flat",
            "layout": layout,
            "files": [str(f) for f, _ in files],
            "rows": {str(f): n for (f, _), n in zip(files, rows, strict=True)},
            "timestamp": "seconds since an anonymised origin (not the Unix epoch), 5-second steps",
            "played_ratio": "played_ratio_pct / 100 clipped to [0, 1] on listens, NaN otherwise",
            "notes": notes,
        },
    )


def _find_files(root: Path) -> list[tuple[Path, str | None]]:
    """The files to read and, for per-event files, their event type (None: multi_event layout)."""
    if root.is_file():
        return [(root, EVENT_FILES.get(root.name))]
    if not root.is_dir():
        raise DataError("no such file or folder", file=str(root))
    multi = root / MULTI_EVENT_FILE
    if multi.is_file():
        return [(multi, None)]
    found: list[tuple[Path, str | None]] = [
        (root / name, event) for name, event in EVENT_FILES.items() if (root / name).is_file()
    ]
    if not found:
        present = sorted(p.name for p in root.iterdir())[:20]
        raise DataError(
            f"no Yambda files here; expected {MULTI_EVENT_FILE} or any of {list(EVENT_FILES)}, found {present}",
            file=str(root),
            hint="point at the flat/<size>/ folder of the Yambda download",
        )
    return found


def _dataset_name(root: Path) -> str:
    for part in (root, *root.parents):
        if _SIZE_DIR.match(part.name):
            return f"yambda-{part.name}"
    return "yambda"


def _required_columns(event: str | None) -> tuple[str, ...]:
    if event is None:
        return MULTI_EVENT_COLUMNS
    return (*_BASE_COLUMNS, *_LISTEN_COLUMNS) if event == "listen" else _BASE_COLUMNS


def _open_parquet(file: Path) -> pq.ParquetFile:
    return open_parquet(file, hint=_CORRUPT_HINT, empty="empty file (0 bytes)", empty_hint="download it again")


def _check_file(file: Path, event: str | None) -> int:
    """Check the footer's columns and dtypes; return the number of rows."""
    pf = _open_parquet(file)
    schema = pf.schema_arrow
    found = schema.names
    required = _required_columns(event)
    missing = [c for c in required if c not in found]
    if missing:
        raise DataError(
            f"missing column(s) {missing}; expected {list(required)}, found {found}",
            file=str(file),
            hint="open_yambda reads the flat layout of Yambda",
        )
    for column in required:
        check, expected = _TYPE_RULES[column]
        actual = schema.field(column).type
        if not check(actual):
            hint = None
            if pa.types.is_list(actual) or pa.types.is_large_list(actual):
                hint = "this looks like the 'sequential' layout; use the files under flat/ instead"
            raise DataError(f"has type {actual}, expected {expected}", file=str(file), column=column, hint=hint)
    return pf.metadata.num_rows


def _read_file(file: Path, event: str | None, batch_size: int) -> Iterator[tuple[str, pa.RecordBatch]]:
    pf = _open_parquet(file)
    columns = _required_columns(event)
    for start, raw in iter_parquet_batches(pf, file, columns=columns, batch_size=batch_size, hint=_CORRUPT_HINT):
        try:
            batch = _convert(raw, event, start)
        except pa.ArrowInvalid as exc:
            raise DataError(f"rows {start + 1}..{start + raw.num_rows}: {exc}", file=str(file)) from exc
        yield str(file), batch


def _event_index(raw: pa.RecordBatch, event: str | None) -> pa.Array:
    """Position of each row's event type in :data:`EVENT_TYPES` (int32; null = unknown or missing)."""
    n = raw.num_rows
    if event is not None:
        return pa.array(np.full(n, EVENT_TYPES.index(event), dtype=np.int32))
    values = raw.column("event_type")
    if isinstance(values, pa.DictionaryArray):
        # Look up the few distinct values once, then gather by the indices: no string work per row.
        lookup = pc.index_in(pc.cast(values.dictionary, pa.string()), value_set=_EVENT_VALUES)
        return pc.take(lookup, values.indices)
    return pc.index_in(pc.cast(values, pa.string()), value_set=_EVENT_VALUES)


def _reject_reasons(raw: pa.RecordBatch, index: pa.Array, organic: pa.Array) -> pa.Array:
    """``__reject``: null for good rows, else why the row is bad."""
    n = raw.num_rows
    reasons = pa.nulls(n, pa.string())
    if index.null_count:
        values = raw.column("event_type")
        if isinstance(values, pa.DictionaryArray):
            values = values.dictionary_decode()
        values = pc.cast(values, pa.string())
        unknown = pc.binary_join_element_wise("unknown_event_type: '", values, "'", "")
        event_reason = pc.if_else(pc.is_null(values), pa.scalar("missing_event_type"), unknown)
        reasons = pc.if_else(pc.is_null(index), event_reason, reasons)
    bad_organic = pc.invert(pc.is_in(organic, value_set=pa.array([0, 1], pa.int64())))
    bad_organic = pc.and_kleene(bad_organic, pc.is_valid(organic))
    if pc.any(bad_organic).as_py():
        organic_reason = pc.binary_join_element_wise("bad_is_organic: ", pc.cast(organic, pa.string()), "")
        reasons = pc.coalesce(reasons, pc.if_else(bad_organic, organic_reason, pa.scalar(None, pa.string())))
    return reasons


def _convert(raw: pa.RecordBatch, event: str | None, start: int) -> pa.RecordBatch:
    """One raw Yambda batch -> one canonical batch (see the module docstring for the mapping)."""
    n = raw.num_rows
    index = _event_index(raw, event)
    organic = pc.cast(raw.column("is_organic"), pa.int64())
    reasons = _reject_reasons(raw, index, organic)
    ok = pc.is_null(reasons)

    def indicator(k: int) -> pa.Array:
        # 1.0 / 0.0 on good rows; NaN on rejected rows (nothing is known about them).
        flag = pc.cast(pc.equal(index, pa.scalar(k, pa.int32())), pa.float32())
        return pc.fill_null(pc.if_else(ok, flag, _NAN), _NAN)

    is_listen = pc.fill_null(pc.and_kleene(pc.equal(index, pa.scalar(0, pa.int32())), ok), False)
    if "played_ratio_pct" in raw.schema.names:
        ratio = pc.divide(pc.cast(raw.column("played_ratio_pct"), pa.float64()), 100.0)
        ratio = pc.min_element_wise(pc.max_element_wise(ratio, 0.0, skip_nulls=False), 1.0, skip_nulls=False)
        played = pc.fill_null(pc.if_else(is_listen, pc.cast(ratio, pa.float32()), _NAN), _NAN)
        length = pc.cast(raw.column("track_length_seconds"), pa.float32())
    else:
        played = pa.array(np.full(n, np.nan, dtype=np.float32))
        length = pa.nulls(n, pa.float32())

    columns = {
        USER_ID: pc.cast(raw.column("uid"), pa.int64()),
        ITEM_ID: pc.cast(raw.column("item_id"), pa.int64()),
        TIMESTAMP: pc.cast(raw.column("timestamp"), pa.int64()),
        CONTEXT: organic,
        "listen": indicator(0),
        PLAYED_RATIO: played,
        "like": indicator(1),
        "dislike": indicator(2),
        "unlike": indicator(3),
        "undislike": indicator(4),
        TRACK_LENGTH: length,
        LINE: pa.array(np.arange(start + 1, start + n + 1, dtype=np.int64)),
        REJECT: reasons,
    }
    return pa.RecordBatch.from_arrays(list(columns.values()), names=list(columns))
