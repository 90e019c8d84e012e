"""Bad rows: why a row is rejected, where it came from, and what happens to it.

Rejected rows are counted by reason (the part of the reason before ``:``); with ``strict`` the first
one stops the build with its file and line; with a rejects path they are written aside as CSV
(file, line, reason, user_id, item_id, timestamp). Nothing is dropped silently.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from argusrec.data.schema import ITEM_ID, REJECT, TIMESTAMP, USER_ID, DatasetSchema, FeedbackKind
from argusrec.errors import DataError

REJECT_COLUMNS = ("file", "line", "reason", USER_ID, ITEM_ID, TIMESTAMP)


def row_reasons(batch: pa.RecordBatch, schema: DatasetSchema) -> pa.Array | None:
    """(n,) string array: why each row is rejected (null = keep), or None when every row is fine.

    The adapter's own ``__reject`` reason wins; then missing ids / timestamps, negative timestamps and
    binary feedback outside {0, 1} (NaN = not observed is fine).
    """
    checks: list[tuple[pa.Array, str]] = []
    for c in (USER_ID, ITEM_ID, TIMESTAMP):
        col = batch.column(c)
        if col.null_count:
            checks.append((pc.is_null(col), f"missing_{c}"))
    checks.append((pc.fill_null(pc.less(batch.column(TIMESTAMP), 0), False), "negative_timestamp"))
    for c in schema.feedback:
        if schema.feedback_kind(c) is FeedbackKind.BINARY:
            col = batch.column(c)
            ok = pc.or_(pc.is_nan(pc.cast(col, pa.float64())), pc.is_in(col, pa.array([0, 1], col.type)))
            checks.append((pc.invert(pc.fill_null(ok, True)), f"bad_binary_feedback_{c}"))
    reason: pa.Array | None = None
    if REJECT in batch.schema.names:
        reason = batch.column(REJECT)
        if reason.null_count == len(reason):
            reason = None
    for mask, label in checks:
        if not pc.any(mask).as_py():
            continue
        labelled = pc.if_else(mask, pa.scalar(label), pa.scalar(None, pa.string()))
        reason = labelled if reason is None else pc.coalesce(reason, labelled)
    return reason


class RowLocator:
    """Remembers where every input row came from, cheaply: one entry per batch, not per row."""

    def __init__(self) -> None:
        self._files: list[tuple[int, str]] = []  # (first input row of the file, file)
        # per batch: (first input row, file, line of its first row — or all its lines when not contiguous)
        self._batches: list[tuple[int, str, int | np.ndarray]] = []

    def add_batch(self, seq0: int, file: str, lines: np.ndarray | None, n: int) -> np.ndarray:
        """Register a batch of ``n`` rows starting at input row ``seq0``; returns (n,) lines of its rows."""
        if not self._files or self._files[-1][1] != file:
            self._files.append((seq0, file))
        if lines is None:  # sources without line numbers: the row's position in its file (1-based)
            first = seq0 - self._files[-1][0] + 1
            self._batches.append((seq0, file, first))
            return np.arange(first, first + n, dtype=np.int64)
        if n == 1 or lines[-1] - lines[0] == n - 1:
            self._batches.append((seq0, file, int(lines[0])))  # contiguous lines: keep the first only
        else:
            self._batches.append((seq0, file, lines.copy()))
        return lines

    def locate(self, seqs: np.ndarray) -> tuple[list[str], np.ndarray]:
        """Input row numbers -> (files, 1-based lines)."""
        firsts = np.fromiter((b[0] for b in self._batches), dtype=np.int64, count=len(self._batches))
        k = np.searchsorted(firsts, seqs, side="right") - 1
        files, lines = [], np.empty(len(seqs), dtype=np.int64)
        for j, (s, b) in enumerate(zip(seqs, k, strict=True)):
            seq0, file, where = self._batches[b]
            files.append(file)
            lines[j] = where[s - seq0] if isinstance(where, np.ndarray) else where + s - seq0
        return files, lines


class RejectLog:
    """Counts rejected rows by reason, raises on the first one in strict mode, writes them aside on request."""

    def __init__(self, *, strict: bool, path: str | Path | None) -> None:
        self.strict = strict
        self.path = Path(path) if path else None
        self.counts: Counter[str] = Counter()
        self._writer: pacsv.CSVWriter | None = None

    def reject(
        self,
        files: list[str],
        lines: np.ndarray,
        reasons: list[str],
        user_ids: pa.Array,
        item_ids: pa.Array,
        timestamps: pa.Array,
    ) -> None:
        """Record rejected rows (parallel lists/arrays, one entry per row)."""
        if not reasons:
            return
        if self.strict:
            duplicate = reasons[0] == "duplicate_event"
            raise DataError(
                "duplicate event (same user, item, timestamp and values as an earlier row)"
                if duplicate
                else f"bad row: {reasons[0]}",
                file=files[0],
                line=int(lines[0]),
                hint=f"run without --strict to {'drop duplicates' if duplicate else 'skip such rows'} and count them",
            )
        self.counts.update(r.split(":", 1)[0].strip() for r in reasons)
        if self.path is None:
            return
        table = pa.table(
            {
                "file": pa.array(files, pa.string()),
                "line": pa.array(lines, pa.int64()),
                "reason": pa.array(reasons, pa.string()),
                USER_ID: pc.cast(user_ids, pa.string()),
                ITEM_ID: pc.cast(item_ids, pa.string()),
                TIMESTAMP: pc.cast(timestamps, pa.string()),
            }
        )
        if self._writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._writer = pacsv.CSVWriter(str(self.path), table.schema)
        self._writer.write_table(table)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
