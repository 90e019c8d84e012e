"""Adapter for KuaiRand (Kuaishou short-video logs; Gao et al., CIKM 2022), Pure / 1K / 27K.

Reads the interaction logs ``log_standard_*.csv`` and ``log_random_*.csv`` (comma-separated, with a
header) given as one file or as a folder, whose ``log_*.csv`` files are read in name order. The
columns used (all other columns are ignored) are::

    user_id, video_id, time_ms, tab, is_rand, is_click, is_like, is_follow, is_comment,
    is_forward, is_hate, long_view, is_profile_enter, play_time_ms, duration_ms

(the logs also carry ``date``, ``hourmin``, ``profile_stay_time``, ``comment_stay_time``).

Mapping to the canonical schema:

* ``user_id`` = ``user_id``, ``item_id`` = ``video_id`` (int64), ``timestamp`` = ``time_ms // 1000``.
* context ``tab`` (the app surface the video was shown on) and ``is_rand`` (1 = shown at random
  by the data collection's randomised exposure, 0 = by the production recommender), int64.
* binary feedback ``is_click``, ``is_like``, ``is_follow``, ``is_comment``, ``is_forward``,
  ``is_hate``, ``long_view``, ``is_profile_enter`` (float32 0/1, NaN where empty).
* continuous feedback ``play_time_s`` = ``play_time_ms / 1000``.
* item feature ``duration_s`` = ``duration_ms / 1000``, per event (float32).

A file without one of these columns raises :class:`~argusrec.errors.DataError` naming the missing
columns and the ones found.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from argusrec.data.adapters.base import Batches, EventSource
from argusrec.data.adapters.delimited import read_delimited
from argusrec.data.adapters.textfile import estimate_rows
from argusrec.data.adapters.values import ColumnType
from argusrec.data.schema import ITEM_ID, LINE, REJECT, TIMESTAMP, USER_ID, DatasetSchema
from argusrec.errors import DataError

CONTEXT = ("tab", "is_rand")
BINARY = ("is_click", "is_like", "is_follow", "is_comment", "is_forward", "is_hate", "long_view", "is_profile_enter")
PLAY_TIME = "play_time_s"
DURATION = "duration_s"
SCHEMA = DatasetSchema.of(
    context=list(CONTEXT),
    feedback={**dict.fromkeys(BINARY, "binary"), PLAY_TIME: "continuous"},
    item_features=[DURATION],
)
REQUIRED: tuple[str, ...] = ("user_id", "video_id", "time_ms", *CONTEXT, *BINARY, "play_time_ms", "duration_ms")
_TYPES: dict[str, ColumnType] = {
    "user_id": "int",
    "video_id": "int",
    "time_ms": "int",
    **dict.fromkeys(CONTEXT, "int"),
    **dict.fromkeys(BINARY, "float"),
    "play_time_ms": "float",
    "duration_ms": "float",
}
_RENAME = {"video_id": ITEM_ID, "time_ms": TIMESTAMP}
_VARIANT = re.compile(r"_(pure|1k|27k)$", re.IGNORECASE)


def open_kuairand(path: str | Path) -> EventSource:
    """Open one KuaiRand log file, or every ``log_*.csv`` of a folder in name order.

    Headers are checked now (a missing column raises :class:`DataError`); rows are streamed when
    ``read`` is called.
    """
    root = Path(path)
    files = _find_files(root)
    for f in files:
        read_delimited(f, **_ARGS)  # header and emptiness checks

    def read() -> Batches:
        for f in files:
            for raw in read_delimited(f, **_ARGS):
                yield str(f), _to_events(raw)

    estimates = [estimate_rows(f) or 0 for f in files]
    return EventSource(
        name=_dataset_name(root, files),
        schema=SCHEMA,
        read=read,
        estimated_rows=sum(estimates),
        info={
            "format": "kuairand",
            "files": [str(f) for f in files],
            "timestamp": "time_ms // 1000",
            "notes": ["duration_s is an item feature given per event"],
        },
    )


_ARGS: dict[str, Any] = {
    "separator": ",",
    "header": True,
    "columns": list(REQUIRED),
    "types": _TYPES,
    "rename": _RENAME,
}


def _find_files(root: Path) -> list[Path]:
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise DataError("file not found", file=str(root))
    files = sorted(p for p in root.glob("log_*.csv") if p.is_file())
    if not files:
        found = sorted(p.name for p in root.iterdir())[:20]
        raise DataError(
            f"no KuaiRand log files (log_*.csv) in the folder; found {found}",
            file=str(root),
            hint="point at the data/ folder of KuaiRand-Pure, -1K or -27K",
        )
    return files


def _dataset_name(root: Path, files: list[Path]) -> str:
    for f in files:
        m = _VARIANT.search(f.stem)
        if m:
            return f"kuairand-{m.group(1).lower()}"
    for part in (root, *root.parents):
        if part.name.lower().startswith("kuairand-"):
            return part.name.lower()
    return "kuairand"


def _to_events(raw: pa.RecordBatch) -> pa.RecordBatch:
    nan = pa.scalar(float("nan"), pa.float32())

    def f32(column: str, scale: float = 1.0) -> pa.Array:
        values = raw.column(column)
        if scale != 1.0:
            values = pc.divide(values, scale)
        return pc.fill_null(pc.cast(values, pa.float32()), nan)

    columns: dict[str, pa.Array] = {
        USER_ID: raw.column(USER_ID),
        ITEM_ID: raw.column(ITEM_ID),
        TIMESTAMP: pc.divide(raw.column(TIMESTAMP), 1000),  # int64 division
        **{c: raw.column(c) for c in CONTEXT},
        **{c: f32(c) for c in BINARY},
        PLAY_TIME: f32("play_time_ms", 1000.0),
        DURATION: pc.cast(pc.divide(raw.column("duration_ms"), 1000.0), pa.float32()),
        LINE: raw.column(LINE),
        REJECT: raw.column(REJECT),
    }
    return pa.RecordBatch.from_arrays(list(columns.values()), names=list(columns))
