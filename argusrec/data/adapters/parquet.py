"""Streaming Parquet files in bounded memory, shared by the Parquet adapters (yambda, generic).

:func:`open_parquet` reads the footer (so a missing, empty or corrupt file fails before any row is
read) and :func:`iter_parquet_batches` streams the rows with ``ParquetFile.iter_batches`` (memory
is bounded by the batch size whatever the file size). Problems raise
:class:`~argusrec.errors.DataError` naming the file.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from argusrec.errors import DataError


def open_parquet(
    file: Path, *, hint: str | None = None, empty: str = "file is empty", empty_hint: str | None = None
) -> pq.ParquetFile:
    """Open ``file`` and read its footer.

    ``empty`` and ``empty_hint`` are the message and hint for a 0-byte file; ``hint`` is added to
    the error for a file that is not readable Parquet.
    """
    try:
        size = file.stat().st_size
    except OSError as exc:
        raise DataError(f"cannot read the file ({exc})", file=str(file)) from exc
    if size == 0:
        raise DataError(empty, file=str(file), hint=empty_hint)
    try:
        return pq.ParquetFile(file)
    except (pa.ArrowException, OSError) as exc:
        raise DataError(f"not a readable Parquet file ({exc})", file=str(file), hint=hint) from exc


def iter_parquet_batches(
    parquet: pq.ParquetFile, file: Path, *, columns: Sequence[str], batch_size: int, hint: str | None = None
) -> Iterator[tuple[int, pa.RecordBatch]]:
    """``(rows before the batch, batch)`` for each batch of ``columns`` of the opened ``parquet``.

    A read error (a truncated or corrupt row group) raises :class:`DataError` naming ``file`` and
    the rows read so far, with ``hint``.
    """
    start = 0
    batches = parquet.iter_batches(batch_size=batch_size, columns=list(columns))
    while True:
        try:
            batch = next(batches)
        except StopIteration:
            return
        except (pa.ArrowException, OSError) as exc:
            raise DataError(f"cannot read rows after row {start} ({exc})", file=str(file), hint=hint) from exc
        yield start, batch
        start += batch.num_rows
