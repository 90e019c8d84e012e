"""What every adapter returns: an :class:`EventSource`, a lazy stream of canonical event batches.

Contract for adapters (one module per raw format):

* ``read`` yields ``(file, batch)`` pairs; ``batch`` is a ``pyarrow.RecordBatch`` whose columns are
  named as in :mod:`argusrec.data.schema`: ``user_id`` and ``item_id`` (int64 or string),
  ``timestamp`` (int64 seconds since the epoch), then the schema's context / feedback / request /
  truth columns (item feature columns may be per event or in :attr:`EventSource.items`).
* Feedback values are floats: binary signals 0.0/1.0, NaN where the signal was not observed.
* A batch may carry ``__line`` (int64, 1-based line of the row in ``file``) so that errors and
  rejected rows point at the source line, and ``__reject`` (string, null when the row is fine) for
  rows the adapter already knows are bad (``"bad_timestamp: 'abc'"``, ``"malformed_line: ..."``).
  Rows with a reason keep whatever values could be parsed (nulls otherwise).
* Structural problems (missing file, empty file, missing or misnamed columns, unknown separator,
  truncated archive) raise :class:`argusrec.errors.DataError` naming the file and what was expected.
* Value problems (null ids, negative timestamps, duplicates) are left to the builder, which counts
  them by reason, writes them aside on request and fails on them in strict mode.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from argusrec.data.schema import DatasetSchema

Batches = Iterator[tuple[str, pa.RecordBatch]]


@dataclass
class EventSource:
    """A raw dataset opened by an adapter; nothing is read until :attr:`read` is called."""

    name: str  # e.g. "movielens-100k", recorded in the manifest
    schema: DatasetSchema
    read: Callable[[], Batches]
    items: pa.Table | None = None  # item_id + item feature columns, external ids
    estimated_rows: int | None = None  # used to size the builder's partitions
    info: dict[str, Any] = field(default_factory=dict)  # files, variant, notes -> manifest
