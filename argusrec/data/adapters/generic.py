"""Adapter for any event log in CSV-like text or Parquet, described by a :class:`GenericConfig`.

The config (:mod:`argusrec.data.adapters.generic_config`) maps canonical names to the raw columns
and says which columns play which role.

Files read: one CSV-like text file (through :mod:`argusrec.data.adapters.delimited`: streamed,
malformed lines and unparseable values become ``__reject`` rows), or one Parquet file, or a folder of
Parquet files (``*.parquet``/``*.pq``, name order, read with ``ParquetFile.iter_batches``: memory is
bounded by the batch size). ``.parquet``/``.pq`` files and folders are Parquet unless ``format``
says otherwise; anything else is text.

Conversions: timestamps become int64 seconds (``ms``/``us``/``ns`` floor-divided; ``datetime``
parses ISO 8601 strings, with or without a zone, naive = UTC; Arrow timestamp/date columns are
converted whatever the unit); feedback becomes float32 (bools and ints to 0/1, ``true``/``false``
text too); ``request_id`` becomes int64 with -1 where empty. Ids, context and item features keep
their type (text files: int64 when the first block holds only integers, else strings; ``id_type``
forces it for ids). Values that do not convert are null and their row gets a ``bad_<column>``
reason; ids are never guessed.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from argusrec.data.adapters.base import Batches, EventSource
from argusrec.data.adapters.delimited import read_delimited
from argusrec.data.adapters.generic_config import GenericConfig
from argusrec.data.adapters.parquet import iter_parquet_batches, open_parquet
from argusrec.data.adapters.textfile import check_columns, estimate_rows, read_header, sniff_separator
from argusrec.data.adapters.values import (
    ColumnType,
    add_reasons,
    bad_value_reasons,
    is_text,
    parse_datetimes,
    parse_numbers,
    plain,
)
from argusrec.data.schema import ITEM_ID, LINE, NO_REQUEST, REJECT, REQUEST_ID, TIMESTAMP, USER_ID
from argusrec.errors import DataError

PARQUET_SUFFIXES = (".parquet", ".pq")
_PER_SECOND = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}
_TRUE = pa.array(["true", "1", "1.0", "yes", "t", "y"])
_FALSE = pa.array(["false", "0", "0.0", "no", "f", "n"])


# --------------------------------------------------------------------------------------------------
# Opening


def open_generic(path: str | Path, config: GenericConfig, *, batch_size: int = 1 << 20) -> EventSource:
    """Open a CSV-like or Parquet event log as described by ``config``.

    Columns are checked now (a missing raw column raises :class:`DataError` listing the columns
    found); rows are streamed when ``read`` is called.
    """
    root = Path(path)
    if not root.exists():
        raise DataError("file not found", file=str(root))
    fmt = config.format or ("parquet" if root.is_dir() or root.suffix.lower() in PARQUET_SUFFIXES else "csv")
    info: dict[str, Any] = {"format": f"generic-{fmt}", "config": config.model_dump(mode="json")}
    if fmt == "parquet":
        files = _parquet_files(root)
        rows = [_check_parquet(f, config) for f in files]

        def read() -> Batches:
            for f in files:
                yield from _read_parquet(f, config, batch_size)

        estimated: int | None = sum(rows)
    else:
        if root.is_dir():
            raise DataError("is a folder; text input must be one file (folders are read as Parquet)", file=str(root))
        plan = _plan_text(root, config)
        info["separator"] = plan["separator"]

        def read() -> Batches:
            for raw in read_delimited(root, **plan):
                yield str(root), _convert_text(raw, config)

        files = [root]
        estimated = estimate_rows(root)
    info["files"] = [str(f) for f in files]
    return EventSource(
        name=config.name or f"generic-{root.stem}",
        schema=config.dataset_schema(),
        read=read,
        estimated_rows=estimated,
        info=info,
    )


# --------------------------------------------------------------------------------------------------
# Parquet


def _parquet_files(root: Path) -> list[Path]:
    if root.is_file():
        return [root]
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in PARQUET_SUFFIXES)
    if not files:
        raise DataError(f"no Parquet files ({', '.join(PARQUET_SUFFIXES)}) in the folder", file=str(root))
    return files


def _check_parquet(file: Path, config: GenericConfig) -> int:
    pf = open_parquet(file)
    found = pf.schema_arrow.names
    check_columns(found, [config.raw(c) for c in config.outputs()], file=str(file))
    schema = pf.schema_arrow

    def expect(canonical: str, ok: bool, expected: str, hint: str | None = None) -> None:
        if not ok:
            raw = config.raw(canonical)
            found_type = schema.field(raw).type
            raise DataError(f"has type {found_type}, expected {expected}", file=str(file), column=raw, hint=hint)

    for label in (USER_ID, ITEM_ID):
        t = schema.field(config.raw(label)).type
        expect(label, pa.types.is_integer(t) or is_text(t), "integers or strings")
    t = schema.field(config.raw(TIMESTAMP)).type
    if config.timestamp_unit == "datetime":
        expect(
            TIMESTAMP,
            is_text(t) or _is_temporal(t),
            "text or a timestamp type for timestamp_unit 'datetime'",
            hint="set timestamp_unit to s, ms, us or ns for numbers",
        )
    else:
        expect(TIMESTAMP, _is_number(t) or is_text(t) or _is_temporal(t), "numbers, text or a timestamp type")
    for name in config.feedback:
        t = schema.field(config.raw(name)).type
        expect(name, _is_number(t) or is_text(t) or pa.types.is_null(t), "numbers, booleans or text")
    return pf.metadata.num_rows


def _read_parquet(file: Path, config: GenericConfig, batch_size: int) -> Iterator[tuple[str, pa.RecordBatch]]:
    pf = open_parquet(file)
    raw_columns = list(dict.fromkeys(config.raw(c) for c in config.outputs()))
    for start, raw in iter_parquet_batches(pf, file, columns=raw_columns, batch_size=batch_size):
        n = raw.num_rows
        lines = pa.array(np.arange(start + 1, start + n + 1, dtype=np.int64))
        yield str(file), _convert(raw, config, lines, pa.nulls(n, pa.string()))


# --------------------------------------------------------------------------------------------------
# Text


def _plan_text(file: Path, config: GenericConfig) -> dict[str, Any]:
    separator = config.separator or sniff_separator(file, encoding=config.encoding)
    if config.header:
        found = read_header(file, separator=separator, encoding=config.encoding)
        names = config.names  # when given with a header, they replace it
    else:
        found = list(config.names or [])
        names = found
    wanted = list(dict.fromkeys(config.raw(c) for c in config.outputs()))
    check_columns(names or found, wanted, file=str(file))
    inferred = _infer_types(file, separator, config, names, wanted)
    types: dict[str, ColumnType] = {}
    for canonical in config.outputs():
        raw = config.raw(canonical)
        kind = inferred[raw]
        if canonical == TIMESTAMP:
            # Seconds may carry a fraction ("1700000000.5"); datetimes are parsed from text.
            unit = config.timestamp_unit
            types[raw] = "float" if unit == "s" else "string" if unit == "datetime" else "int"
        elif canonical in (USER_ID, ITEM_ID) and config.id_type != "auto":
            types[raw] = "int" if config.id_type == "int" else "string"
        elif canonical in config.feedback:
            types[raw] = "string" if kind == "bool" else "float"
        elif canonical == REQUEST_ID:
            types[raw] = "int"
        elif kind == "int" or (kind == "float" and canonical in config.item_features):
            types[raw] = kind
        else:
            types[raw] = "string"
    rename = {config.raw(c): c for c in config.outputs()}
    return {
        "separator": separator,
        "header": config.header,
        "names": names,
        "columns": wanted,
        "types": types,
        "rename": rename,
        "encoding": config.encoding,
        "name": str(file),
    }


_INT_TEXT = r"^\s*-?(0|[1-9][0-9]{0,17})\s*$"  # no leading zeros: "0205616461" is an ASIN, not a number
_FLOAT_TEXT = r"^\s*[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?\s*$"
_BOOL_TEXT = r"(?i)^\s*(true|false)\s*$"


def _infer_types(
    file: Path, separator: str, config: GenericConfig, names: list[str] | None, wanted: list[str]
) -> dict[str, ColumnType | Literal["bool"]]:
    """Kind of each wanted column from the first block (1 MiB) read as text: int, float, bool or string."""
    sample = next(
        read_delimited(
            file,
            separator=separator,
            header=config.header,
            names=names,
            columns=wanted,
            encoding=config.encoding,
            block_size=1 << 20,
        ),
        None,
    )
    kinds: dict[str, ColumnType | Literal["bool"]] = {}
    for c in wanted:
        values = sample.column(c).drop_null() if sample is not None else pa.array([], pa.string())
        kinds[c] = "string"
        if len(values) == 0:
            continue
        for kind, pattern in (("int", _INT_TEXT), ("float", _FLOAT_TEXT), ("bool", _BOOL_TEXT)):
            if pc.all(pc.match_substring_regex(values, pattern)).as_py():
                kinds[c] = kind  # type: ignore[assignment]
                break
    return kinds


def _convert_text(raw: pa.RecordBatch, config: GenericConfig) -> pa.RecordBatch:
    return _convert(raw, config, raw.column(LINE), raw.column(REJECT), renamed=True)


# --------------------------------------------------------------------------------------------------
# Conversion to the canonical batch


def _is_number(t: pa.DataType) -> bool:
    return pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t)


def _is_temporal(t: pa.DataType) -> bool:
    return pa.types.is_timestamp(t) or pa.types.is_date(t)


def _ids(values: pa.Array, label: str, id_type: str) -> tuple[pa.Array, pa.Array | None]:
    values = plain(values)
    t = values.type
    if pa.types.is_integer(t):
        return (pc.cast(values, pa.int64()), None) if id_type != "string" else (pc.cast(values, pa.string()), None)
    if is_text(t):
        if id_type == "int":
            parsed = parse_numbers(values, "int")
            return parsed, bad_value_reasons(label, values, parsed)
        return values, None
    raise DataError(f"{label} has type {t}; expected integers or strings", column=label)


def _floor_div(values: pa.Array, divisor: int) -> pa.Array:
    """Integer floor division (Arrow's integer ``divide`` truncates toward zero)."""
    if divisor == 1:
        return values
    q = pc.divide(values, divisor)
    r = pc.subtract(values, pc.multiply(q, divisor))
    return pc.subtract(q, pc.cast(pc.less(r, 0), pa.int64()))


def _timestamps(values: pa.Array, unit: str) -> tuple[pa.Array, pa.Array | None]:
    values = plain(values)
    t = values.type
    if pa.types.is_timestamp(t):
        per_second = _PER_SECOND[t.unit]
        return _floor_div(pc.cast(pc.cast(values, pa.timestamp(t.unit)), pa.int64()), per_second), None
    if pa.types.is_date(t):
        days = pc.cast(pc.cast(values, pa.date32()), pa.int32())
        return pc.multiply(pc.cast(days, pa.int64()), 86400), None
    reasons = None
    if is_text(t):
        parsed = parse_datetimes(values) if unit == "datetime" else parse_numbers(values, "float")
        reasons = bad_value_reasons(TIMESTAMP, values, parsed)
        if unit == "datetime":
            return parsed, reasons
        values = parsed
        t = values.type
    if pa.types.is_integer(t) or pa.types.is_boolean(t):
        return _floor_div(pc.cast(values, pa.int64()), _PER_SECOND[unit]), reasons
    if pa.types.is_floating(t):
        # NaN / inf are not times: null with a reason, like unparseable text.
        finite = pc.fill_null(pc.is_finite(values), True)
        seconds = pc.floor(pc.divide(pc.cast(values, pa.float64()), float(_PER_SECOND[unit])))
        seconds = pc.if_else(finite, seconds, pa.scalar(None, pa.float64()))
        if reasons is None:
            reasons = bad_value_reasons(TIMESTAMP, pc.cast(values, pa.string()), seconds)
        return pc.cast(seconds, pa.int64()), reasons
    raise DataError(f"timestamp column has type {t}; expected numbers, text or a timestamp type", column=TIMESTAMP)


def _feedback(values: pa.Array, label: str) -> tuple[pa.Array, pa.Array | None]:
    values = plain(values)
    t = values.type
    nan = pa.scalar(float("nan"), pa.float32())
    reasons = None
    if is_text(t):
        lowered = pc.utf8_lower(pc.utf8_trim_whitespace(values))
        as_bool = pc.if_else(
            pc.is_in(lowered, _TRUE), 1.0, pc.if_else(pc.is_in(lowered, _FALSE), 0.0, pa.scalar(None, pa.float64()))
        )
        parsed = pc.coalesce(as_bool, parse_numbers(values, "float"))
        reasons = bad_value_reasons(label, values, parsed)
        values = parsed
    elif not (pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t) or pa.types.is_null(t)):
        raise DataError(f"feedback column {label!r} has type {t}; expected numbers or booleans", column=label)
    return pc.fill_null(pc.cast(values, pa.float32()), nan), reasons


def _convert(
    raw: pa.RecordBatch, config: GenericConfig, lines: pa.Array, reasons: pa.Array, *, renamed: bool = False
) -> pa.RecordBatch:
    """Raw columns (or canonical ones when ``renamed``) -> the canonical batch."""

    def col(canonical: str) -> pa.Array:
        return raw.column(canonical if renamed else config.raw(canonical))

    out: dict[str, pa.Array] = {}
    for label in (USER_ID, ITEM_ID):
        out[label], why = _ids(col(label), label, config.id_type)
        reasons = add_reasons(reasons, why)
    out[TIMESTAMP], why = _timestamps(col(TIMESTAMP), config.timestamp_unit)
    reasons = add_reasons(reasons, why)
    for name in config.context:
        values = plain(col(name))
        out[name] = (
            pc.cast(values, pa.int64())
            if pa.types.is_integer(values.type) or pa.types.is_boolean(values.type)
            else values
        )
    for name in config.feedback:
        out[name], why = _feedback(col(name), name)
        reasons = add_reasons(reasons, why)
    for name in config.item_features:
        out[name] = plain(col(name))
    if config.request_id is not None:
        values = plain(col(REQUEST_ID))
        if is_text(values.type):
            parsed = parse_numbers(values, "int")
            reasons = add_reasons(reasons, bad_value_reasons(REQUEST_ID, values, parsed))
            values = parsed
        out[REQUEST_ID] = pc.fill_null(pc.cast(values, pa.int64()), NO_REQUEST)
    out[LINE] = lines
    out[REJECT] = reasons
    return pa.RecordBatch.from_arrays(list(out.values()), names=list(out))
