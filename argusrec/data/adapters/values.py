"""Vectorised parsing of raw values, shared by the adapters: numbers and ISO 8601 datetimes from text.

Values that do not parse become null; :func:`bad_value_reasons` turns them into ``__reject``
reasons such as ``"bad_timestamp: 'abc'"`` and :func:`add_reasons` joins reasons of several
columns. :func:`plain` and :func:`is_text` normalise Arrow string flavours (dictionary, large,
view) so every batch has the same types.
"""

from __future__ import annotations

from typing import Literal

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

ColumnType = Literal["int", "float", "string"]
ARROW_TYPES: dict[str, pa.DataType] = {"int": pa.int64(), "float": pa.float64(), "string": pa.string()}
_REASON_VALUE_CHARS = 40  # how much of a bad value a reject reason quotes
_TWO63 = float(2**63)

# Formats tried, in order, on ISO 8601 text (fractions removed first, "Z" read as +0000).
_DATETIME_FORMATS = (
    ("%Y-%m-%dT%H:%M:%S%z", True),
    ("%Y-%m-%d %H:%M:%S%z", True),
    ("%Y-%m-%dT%H:%M%z", True),
    ("%Y-%m-%dT%H:%M:%S", False),
    ("%Y-%m-%d %H:%M:%S", False),
    ("%Y-%m-%dT%H:%M", False),
    ("%Y-%m-%d %H:%M", False),
    ("%Y-%m-%d", False),
)


def looks_numeric(value: str) -> bool:
    """Whether ``float(value)`` succeeds (used to tell a header line from a data line)."""
    try:
        float(value)
    except ValueError:
        return False
    return True


def is_text(t: pa.DataType) -> bool:
    """Whether ``t`` is a string type (plain, large or view), or a dictionary of strings."""
    if pa.types.is_dictionary(t):
        t = t.value_type
    return pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t)


def plain(values: pa.Array) -> pa.Array:
    """Dictionary -> values, large/view strings -> string, so every batch has the same types."""
    if pa.types.is_dictionary(values.type):
        values = values.dictionary_decode()
    if is_text(values.type) and not pa.types.is_string(values.type):
        values = pc.cast(values, pa.string())
    return values


def parse_numbers(values: pa.Array, kind: ColumnType) -> pa.Array:
    """Strings -> int64 (``"int"``) or float64 (``"float"``), null where a value does not parse.

    Vectorised through polars casts with ``strict=False``; surrounding spaces are ignored and int
    columns accept integral floats (``"3.0"``, ``"1e9"``).
    """
    target = ARROW_TYPES[kind]
    try:
        return pc.cast(values, target)  # Arrow's own cast: fast, but all-or-nothing
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    frame = pl.DataFrame({"s": pl.from_arrow(values)}).lazy()
    text = pl.col("s").str.strip_chars()
    as_float = text.cast(pl.Float64, strict=False)
    if kind == "float":
        return frame.select(as_float).collect().to_series().to_arrow().cast(target)
    # Accept integral floats such as "3.0" or "1e9" in int columns.
    integral = as_float.is_finite() & (as_float.floor() == as_float) & (as_float.abs() < _TWO63)
    from_float = pl.when(integral).then(as_float).otherwise(None).cast(pl.Int64, strict=False)
    parsed = pl.coalesce(text.cast(pl.Int64, strict=False), from_float)
    return frame.select(parsed).collect().to_series().to_arrow().cast(target)


def bad_value_reasons(label: str, text: pa.Array, parsed: pa.Array) -> pa.Array | None:
    """``"bad_<label>: '<text>'"`` where ``text`` is non-blank but ``parsed`` is null; None if no such row."""
    bad = pc.fill_null(pc.and_(parsed.is_null(), pc.not_equal(pc.utf8_trim_whitespace(text), "")), False)
    if not pc.any(bad).as_py():
        return None
    short = pc.utf8_slice_codeunits(text, 0, _REASON_VALUE_CHARS)
    why = pc.binary_join_element_wise(f"bad_{label}: '", short, "'", "")
    return pc.if_else(bad, why, pa.scalar(None, pa.string()))


def add_reasons(reasons: pa.Array, more: pa.Array | None) -> pa.Array:
    """Join two reason columns with ``"; "`` (null + null = null)."""
    if more is None:
        return reasons
    both = pc.binary_join_element_wise(reasons, more, "; ")  # null when either is null
    return pc.coalesce(both, reasons, more)


def parse_datetimes(values: pa.Array) -> pa.Array:
    """ISO 8601 text -> int64 seconds since the epoch (naive = UTC), null where it does not parse."""
    text = pc.utf8_trim_whitespace(plain(values))
    text = pc.replace_substring_regex(text, r"(\d{2}:\d{2}:\d{2})\.\d+", r"\1")  # drop fractions
    text = pc.replace_substring_regex(text, r"Z$", "+0000")
    out = pa.nulls(len(text), pa.int64())
    for fmt, zoned in _DATETIME_FORMATS:
        if out.null_count == 0:
            break
        parsed = pc.strptime(text, format=fmt, unit="s", error_is_null=True)
        if zoned:
            parsed = pc.cast(parsed, pa.timestamp("s", tz="UTC"))
        out = pc.coalesce(out, pc.cast(parsed, pa.int64()))
    return out
