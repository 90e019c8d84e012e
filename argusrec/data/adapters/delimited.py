"""The one careful reader of delimited text (CSV, TSV, ``|``- and ``::``-separated) used by the adapters.

:func:`read_delimited` streams a file block by block through ``pyarrow.csv.open_csv`` (memory is
bounded by a few blocks whatever the file size) and yields ``pyarrow.RecordBatch`` es holding the
requested columns plus ``__line`` (int64, the 1-based line of the row in the file, header included)
and ``__reject`` (string, null when the row is fine), as the adapter contract in
:mod:`argusrec.data.adapters.base` asks.

How it stays correct on messy files:

* **Fast path**: numeric columns are converted by pyarrow while parsing. If that fails (a
  non-numeric timestamp, ``NA`` in an id column), the file is read again from the last row already
  handed out in a *careful mode* where numeric columns are read as strings and parsed vectorially
  (polars casts with ``strict=False``); values that do not parse become null and their row gets a
  reason such as ``"bad_timestamp: 'abc'"``. Integral floats (``"3.0"``) are accepted in int columns.
* **Wrong number of fields** (a truncated last line, an unquoted separator inside a title): the row
  becomes a row of nulls with reason ``"malformed_line: expected 4 fields, got 2"``, found through
  pyarrow's ``invalid_row_handler``, which reports physical line numbers when parsing is serial.
* **Blank lines** (or lines whose fields are all empty) carry no event and are skipped; the line
  numbers of the rows after them stay right.
* **Structural problems** raise :class:`~argusrec.errors.DataError` naming the file: missing file,
  empty file, missing or misnamed header columns (with the columns found), a separator that cannot
  be sniffed (with what was tried), undecodable text (with the encoding to try).

The multi-character separator ``::`` of MovieLens 1M/10M is handled by rewriting ``::`` to the
ASCII unit separator (0x1F) while streaming bytes into pyarrow (``bytes.replace`` runs at memory
speed), so titles containing a single ``:`` stay intact.

A source is a path, a seekable binary file object (e.g. a member of a zip file, opened with
``ZipFile.open``), or a callable returning a fresh binary file object; give ``name`` to say how the
file is named in messages and ``__line`` references. Opening sources, sniffing the separator and
checking the header live in :mod:`.textfile`; parsing values in careful mode in :mod:`.values`.
"""

from __future__ import annotations

import io
import zipfile
import zlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from argusrec.data.adapters.textfile import (
    SEPARATORS,
    Source,
    SourceFile,
    check_columns,
    estimate_rows,
    read_header,
    sniff_separator,
    zip_member,
)
from argusrec.data.adapters.values import (
    ARROW_TYPES,
    ColumnType,
    add_reasons,
    bad_value_reasons,
    looks_numeric,
    parse_numbers,
)
from argusrec.data.schema import LINE, REJECT
from argusrec.errors import DataError

# The names below were all defined here before the split into textfile.py and values.py; callers
# may still import them from this module.
__all__ = [
    "DEFAULT_BLOCK_SIZE",
    "SEPARATORS",
    "ColumnType",
    "Source",
    "add_reasons",
    "bad_value_reasons",
    "check_columns",
    "estimate_rows",
    "looks_numeric",
    "parse_numbers",
    "read_delimited",
    "read_header",
    "sniff_separator",
    "zip_member",
]

DEFAULT_BLOCK_SIZE = 8 << 20  # bytes per parsed block; 8 MiB measured fastest on 1-2 cores
_UNIT_SEP = "\x1f"  # what "::" is rewritten to before pyarrow sees the bytes


# --------------------------------------------------------------------------------------------------
# Streaming


class _ColonRewriter(io.RawIOBase):
    """A read-only stream that rewrites ``::`` to 0x1F on the fly (leftmost-first, like ``str.split``)."""

    def __init__(self, raw: BinaryIO) -> None:
        super().__init__()
        self._raw = raw
        self._pending = b""
        self._eof = False

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:  # type: ignore[override]
        want = size if size is not None and size > 0 else 1 << 20
        while True:
            chunk = b"" if self._eof else self._raw.read(max(want - len(self._pending), 1))
            if not chunk:
                self._eof = True
            data = self._pending + chunk if self._pending else chunk
            self._pending = b""
            if not self._eof:
                # A run of ':' at the end may pair with the next chunk: keep it for then.
                cut = len(data)
                while cut and data[cut - 1] == 58:  # ord(":")
                    cut -= 1
                if cut < len(data):
                    data, self._pending = data[:cut], data[cut:]
            if data or self._eof:
                return data.replace(b"::", b"\x1f")

    def readinto(self, b: bytearray) -> int:  # type: ignore[override]
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)


class _ConversionFailed(Exception):
    """pyarrow could not convert a value in fast mode; switch to the careful mode."""


def read_delimited(
    source: Source,
    *,
    separator: str,
    header: bool = True,
    names: Sequence[str] | None = None,
    columns: Sequence[str] | None = None,
    types: Mapping[str, ColumnType] | None = None,
    rename: Mapping[str, str] | None = None,
    encoding: str = "utf-8",
    quoting: bool = True,
    name: str | None = None,
    block_size: int = DEFAULT_BLOCK_SIZE,
) -> Iterator[pa.RecordBatch]:
    """Stream a delimited text file as record batches with ``__line`` and ``__reject`` columns.

    Args:
        source: path, seekable binary file object, or callable returning a fresh binary file object.
        separator: one character, or ``"::"``.
        header: whether the first line holds column names.
        names: names of all the fields of a line, in order. Required when ``header`` is false; with a
            header they replace the header's names (the header line is then only skipped).
        columns: the columns to return, in this order (default: all). Checked against the header:
            a missing one raises :class:`DataError` listing the columns found.
        types: ``"int"`` (int64), ``"float"`` (float64) or ``"string"`` per column; default string.
        rename: output name per column; reject reasons use the output name (``bad_timestamp``).
        encoding: text encoding of the file (MovieLens 100K/1M metadata files are ``latin-1``).
        quoting: whether ``"`` quotes fields (off for MovieLens ``|`` and ``::`` files, whose titles
            may contain a bare ``"``).
        name: how the file is named in errors.
        block_size: bytes parsed at a time; memory use is a small multiple of it.

    Structural problems (missing or empty file, missing columns) raise here, before any row is read;
    row problems become ``__reject`` reasons in the stream (see the module docstring).
    """
    if separator != "::" and len(separator) != 1:
        raise ValueError(f"separator must be one character or '::', got {separator!r}")
    inp = SourceFile(source, name)
    head = inp.head(1)
    if not head:
        raise DataError("file is empty", file=inp.name)
    if header:
        found = inp.header(separator=separator, encoding=encoding, quoting=quoting)
        field_names = list(names) if names is not None else found
        dupes = sorted({c for c in field_names if field_names.count(c) > 1} & set(columns or field_names))
        if dupes:
            raise DataError(f"the header names column(s) {dupes} more than once", file=inp.name, line=1)
    else:
        if names is None:
            raise ValueError("names are required when the file has no header")
        field_names = list(names)
    wanted = list(columns) if columns is not None else list(field_names)
    check_columns(field_names, wanted, file=inp.name)
    types = dict(types or {})
    unknown = sorted(set(types) - set(wanted))
    if unknown:
        raise ValueError(f"types given for columns that are not read: {unknown}")
    plan = _Plan(
        inp=inp,
        separator=separator,
        header=header,
        field_names=field_names,
        columns=wanted,
        types={c: types.get(c, "string") for c in wanted},
        rename={c: (rename or {}).get(c, c) for c in wanted},
        encoding=encoding,
        quoting=quoting,
        block_size=block_size,
    )
    return _batches(plan)


@dataclass(frozen=True)
class _Plan:
    """Everything :func:`_stream` needs to parse one file, resolved and checked."""

    inp: SourceFile
    separator: str
    header: bool
    field_names: list[str]  # every field of a line, in order
    columns: list[str]  # the fields returned, in output order
    types: dict[str, ColumnType]
    rename: dict[str, str]
    encoding: str
    quoting: bool
    block_size: int

    @property
    def out_schema(self) -> pa.Schema:
        return pa.schema(
            [pa.field(self.rename[c], ARROW_TYPES[self.types[c]]) for c in self.columns]
            + [pa.field(LINE, pa.int64()), pa.field(REJECT, pa.string())]
        )


def _batches(plan: _Plan) -> Iterator[pa.RecordBatch]:
    emitted = 0  # every line <= emitted has been handed out
    careful = False
    while True:
        try:
            for batch in _stream(plan, careful=careful, after=emitted):
                if batch.num_rows:
                    yield batch
                    emitted = max(emitted, int(pc.max(batch.column(LINE)).as_py()))
            return
        except _ConversionFailed:
            assert not careful  # the careful mode reads numbers as text: nothing left to convert
            careful = True


def _arrow_error(plan: _Plan, exc: Exception) -> DataError:
    text = str(exc)
    hint = None
    if "UTF8" in text or "utf-8" in text or isinstance(exc, UnicodeDecodeError):
        hint = f"the file is not valid {plan.encoding}; try encoding='latin-1'"
    elif "straddling" in text or "straddle" in text:
        hint = "a quoted field spans lines or is unbalanced; check the quotes near that place"
    return DataError(f"cannot parse the file: {text}", file=plan.inp.name, hint=hint)


def _stream(plan: _Plan, *, careful: bool, after: int) -> Iterator[pa.RecordBatch]:
    """Parse the file once; yield canonical batches, skipping rows on lines <= ``after``."""
    invalid: list[tuple[int, int]] = []  # (physical line, fields found), in file order
    expected = len(plan.field_names)

    def on_invalid(row: pacsv.InvalidRow) -> str:
        invalid.append((int(row.number), int(row.actual_columns)))
        return "skip"

    sep = _UNIT_SEP if plan.separator == "::" else plan.separator
    read_options = pacsv.ReadOptions(
        use_threads=False,  # serial parsing: the invalid-row handler then gets line numbers
        block_size=plan.block_size,
        column_names=plan.field_names,
        skip_rows=1 if plan.header else 0,
        encoding=plan.encoding,
    )
    parse_options = pacsv.ParseOptions(
        delimiter=sep,
        quote_char='"' if plan.quoting and plan.separator != "::" else False,
        ignore_empty_lines=False,  # one row per physical line keeps the line count exact
        invalid_row_handler=on_invalid,
    )
    column_types = {c: pa.string() if careful else ARROW_TYPES[t] for c, t in plan.types.items()}
    convert_options = pacsv.ConvertOptions(
        column_types=column_types,
        include_columns=plan.columns,
        null_values=[""],
        strings_can_be_null=True,
    )
    base = 1 if plan.header else 0
    data_rows = 0  # data rows produced by pyarrow so far (valid field count, blank lines included)
    flushed = 0  # how many entries of `invalid` were turned into reject rows
    with plan.inp.open(native=True) as raw:
        stream: BinaryIO = _ColonRewriter(raw) if plan.separator == "::" else raw  # type: ignore[assignment]
        try:
            reader = pacsv.open_csv(
                stream, read_options=read_options, parse_options=parse_options, convert_options=convert_options
            )
            before = np.empty(0, dtype=np.int64)
            while True:
                try:
                    batch = reader.read_next_batch()
                except StopIteration:
                    batch = None
                if data_rows == 0 and (batch is None or batch.num_rows == 0) and invalid:
                    line, got = invalid[0]
                    raise DataError(
                        f"no line of the first block has the expected {expected} fields "
                        f"({plan.field_names}); line {line} has {got}",
                        file=plan.inp.name,
                        line=line,
                        hint=f"is the separator {plan.separator!r} right?",
                    )
                if batch is None:
                    break
                if len(before) < len(invalid):
                    before = _good_rows_before(invalid, base)
                lines = _line_numbers(data_rows, batch.num_rows, base, before)
                data_rows += batch.num_rows
                out = _finish(plan, batch, lines, careful=careful, after=after)
                if out is not None:
                    yield out
                last = int(lines[-1]) if len(lines) else 0
                pending = [r for r in invalid[flushed:] if r[0] <= last]
                flushed += len(pending)
                if pending:
                    yield _malformed(plan, pending, expected, after)
        except pa.ArrowInvalid as exc:
            if "conversion error" in str(exc) and not careful and "UTF8" not in str(exc):
                raise _ConversionFailed() from exc
            raise _arrow_error(plan, exc) from exc
        except UnicodeDecodeError as exc:
            raise _arrow_error(plan, exc) from exc
        except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
            raise DataError(
                f"cannot read the file ({exc})", file=plan.inp.name, hint="it may be truncated or corrupt"
            ) from exc
    if flushed < len(invalid):
        yield _malformed(plan, invalid[flushed:], expected, after)


def _good_rows_before(invalid: list[tuple[int, int]], base: int) -> np.ndarray:
    """For each invalid line (in file order), how many good data rows come before it."""
    rel = np.fromiter((line for line, _ in invalid), dtype=np.int64, count=len(invalid)) - base
    return rel - np.arange(len(rel), dtype=np.int64) - 1


def _line_numbers(done: int, n: int, base: int, before: np.ndarray) -> np.ndarray:
    """Physical lines of data rows ``done+1 .. done+n``, stepping over the lines pyarrow rejected.

    ``before[j]`` good rows precede invalid line ``j`` (see :func:`_good_rows_before`), so good row
    ``k`` sits ``#{j : before[j] < k}`` lines further down than in a file without invalid lines.
    """
    k = np.arange(done + 1, done + n + 1, dtype=np.int64)
    if len(before):
        k = k + np.searchsorted(before, k, side="left")
    return k + base


def _finish(
    plan: _Plan, batch: pa.RecordBatch, lines: np.ndarray, *, careful: bool, after: int
) -> pa.RecordBatch | None:
    n = batch.num_rows
    if n == 0:
        return None
    arrays = [batch.column(c) for c in plan.columns]
    keep: pa.Array | None = None
    # Blank lines parse as rows whose every field is null: drop them.
    if all(a.null_count for a in arrays):
        blank = arrays[0].is_null()
        for a in arrays[1:]:
            blank = pc.and_(blank, a.is_null())
        keep = pc.invert(blank)
    if after and lines[0] <= after:
        fresh = pa.array(lines > after)
        keep = fresh if keep is None else pc.and_(keep, fresh)
    reasons = pa.nulls(n, pa.string())
    if careful:
        for i, c in enumerate(plan.columns):
            kind = plan.types[c]
            if kind != "string":
                parsed = parse_numbers(arrays[i], kind)
                reasons = add_reasons(reasons, bad_value_reasons(plan.rename[c], arrays[i], parsed))
                arrays[i] = parsed
    arrays += [pa.array(lines, pa.int64()), reasons]
    out = pa.RecordBatch.from_arrays(arrays, schema=plan.out_schema)
    if keep is not None:
        out = out.filter(keep)
    return out if out.num_rows else None


def _malformed(plan: _Plan, rows: list[tuple[int, int]], expected: int, after: int) -> pa.RecordBatch:
    """Rows of nulls carrying ``malformed_line`` reasons, one per invalid line after ``after``."""
    rows = [r for r in rows if r[0] > after]
    n = len(rows)
    arrays = [pa.nulls(n, f.type) for f in plan.out_schema][:-2]
    lines = pa.array([line for line, _ in rows], pa.int64())
    reasons = pa.array([f"malformed_line: expected {expected} fields, got {got}" for _, got in rows], pa.string())
    return pa.RecordBatch.from_arrays([*arrays, lines, reasons], schema=plan.out_schema)
