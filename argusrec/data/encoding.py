"""Streaming encoders: external ids and categorical values -> dense int64 codes, batch after batch.

The builder sees the data once, in batches; ids may be integers (kept as they are) or strings
(numbered in order of first appearance). Only the distinct values are held in memory, never the rows.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from argusrec.errors import DataError


class ValueEncoder:
    """Maps the values of one column to int64 codes, consistently across batches.

    Integer columns pass through (code = value) when ``passthrough_ints`` is set; any other type is
    dictionary-encoded: code = order of first appearance (0, 1, 2, ...). :meth:`values` returns the
    distinct values in code order, so ``values()[code]`` decodes a dictionary code.
    """

    def __init__(self, column: str, *, passthrough_ints: bool) -> None:
        self.column = column
        self.passthrough_ints = passthrough_ints
        self.mode: str | None = None  # "int" or "dict", fixed by the first batch
        self._index: dict[object, int] = {}
        self._values: list[object] = []

    def encode(self, array: pa.Array, *, file: str) -> np.ndarray:
        """(n,) arrow array without nulls -> (n,) int64 codes."""
        if isinstance(array, pa.ChunkedArray):
            array = array.combine_chunks()
        is_int = pa.types.is_integer(array.type)
        if self.mode is None:
            self.mode = "int" if (is_int and self.passthrough_ints) else "dict"
        if self.mode == "int":
            if not is_int:
                raise DataError(
                    f"values of type {array.type} after earlier integer values",
                    file=file,
                    column=self.column,
                    hint="ids must have one type throughout the input",
                )
            return array.to_numpy(zero_copy_only=False).astype(np.int64, copy=False)
        if is_int or pa.types.is_boolean(array.type) or pa.types.is_floating(array.type):
            array = array.cast(pa.string()) if self.passthrough_ints else array
        encoded = pc.dictionary_encode(array)
        uniques = encoded.dictionary.to_pylist()
        index = self._index
        mapping = np.empty(len(uniques), dtype=np.int64)
        for k, value in enumerate(uniques):  # loop over distinct values only, not rows
            code = index.get(value)
            if code is None:
                code = index[value] = len(self._values)
                self._values.append(value)
            mapping[k] = code
        indices = encoded.indices.to_numpy(zero_copy_only=False)
        return mapping[indices]

    def __len__(self) -> int:
        return len(self._values)

    def values(self) -> list[object]:
        """Distinct values in code order (dictionary mode only)."""
        return self._values

    def sorted_order(self) -> np.ndarray:
        """(n,) permutation: rank of each code when the distinct values are sorted (dictionary mode)."""
        order = sorted(range(len(self._values)), key=lambda k: _sort_key(self._values[k]))
        rank = np.empty(len(order), dtype=np.int64)
        rank[np.asarray(order, dtype=np.int64)] = np.arange(len(order), dtype=np.int64)
        return rank


def _sort_key(value: object) -> tuple[int, object]:
    # numbers before strings, each in natural order; keeps mixed-type vocabularies sortable
    if isinstance(value, (int, float)):
        return (0, value)
    return (1, str(value))


def splitmix64(x: np.ndarray) -> np.ndarray:
    """(n,) int64 -> (n,) uint64 well-mixed hash (SplitMix64 finaliser); used to partition users."""
    z = x.astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))
