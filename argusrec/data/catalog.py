"""The item catalog: external item codes -> internal ids 1..V (0 = padding), and the items table.

Integer ids keep their numeric order; string ids are sorted. Item features come from the events
(the first non-null value seen for each item) and from the source's items table (joined on the id).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from argusrec.data.encoding import ValueEncoder
from argusrec.data.schema import ITEM_ID
from argusrec.data.store import ITEM_INDEX
from argusrec.errors import DataError

_COMPACT_EVERY = 4_000_000  # merge per-batch feature parts beyond this many rows: bounds memory


class ItemFeatureCollector:
    """Per-event item feature columns -> the first non-null value of each item, batch after batch."""

    def __init__(self, features: list[str]) -> None:
        self.features = features
        self._parts: dict[str, list[tuple[np.ndarray, pa.Array]]] = {}

    def add(self, item_codes: np.ndarray, batch: pa.RecordBatch) -> None:
        """``item_codes``: (n,) int64 codes of the batch's rows."""
        for f in (c for c in self.features if c in batch.schema.names):
            col = batch.column(f)
            if col.null_count:
                valid = np.asarray(pc.is_valid(col).to_numpy(zero_copy_only=False), dtype=bool)
                codes, vals = item_codes[valid], col.drop_null()
            else:
                codes, vals = item_codes, col
            uniq, first = np.unique(codes, return_index=True)  # first occurrence within the batch
            parts = self._parts.setdefault(f, [])
            parts.append((uniq, vals.take(pa.array(first))))
            if sum(len(c) for c, _ in parts) > _COMPACT_EVERY:
                self._parts[f] = [_first_per_item(parts)]

    def first_values(self) -> dict[str, tuple[np.ndarray, pa.Array]]:
        """feature -> (sorted item codes, their first non-null value)."""
        return {f: _first_per_item(parts) for f, parts in self._parts.items()}


def item_id_map(items: ValueEncoder, seen_codes: Callable[[], np.ndarray]) -> tuple[Callable, np.ndarray, pa.Array]:
    """(codes -> internal ids function, codes in internal-id order (V,), external ids in that order).

    ``seen_codes`` returns the sorted distinct integer ids seen (only called for integer ids).
    """
    if items.mode == "int":
        codes = seen_codes()
        lo = int(codes[0]) if len(codes) else 0
        span = int(codes[-1]) - lo + 1 if len(codes) else 0
        if span <= max(4 * len(codes), 1 << 24):
            # dense lookup table: O(1) per event instead of a binary search (ids are usually compact)
            lut = np.zeros(span, dtype=np.int32)
            lut[codes - lo] = np.arange(1, len(codes) + 1, dtype=np.int32)

            def to_internal(c: np.ndarray) -> np.ndarray:
                return lut[c - lo]
        else:

            def to_internal(c: np.ndarray) -> np.ndarray:
                return (np.searchsorted(codes, c) + 1).astype(np.int32)

        return to_internal, codes, pa.array(codes)
    rank = items.sorted_order()  # dictionary code -> rank of its value in sorted order
    codes = np.argsort(rank)

    def to_internal_dict(c: np.ndarray) -> np.ndarray:
        return (rank[c] + 1).astype(np.int32)

    values = items.values()
    return to_internal_dict, codes, pa.array([values[k] for k in codes])


def items_table(
    codes: np.ndarray,
    external: pa.Array,
    *,
    features: list[str],
    per_event: dict[str, tuple[np.ndarray, pa.Array]],
    source_items: pa.Table | None,
    source_name: str,
) -> pa.Table:
    """``item_index`` 1..V, ``item_id`` and the declared feature columns, in internal-id order."""
    n = len(codes)
    table = pa.table({ITEM_INDEX: pa.array(np.arange(1, n + 1, dtype=np.int32)), ITEM_ID: external})
    for f, (uniq, values) in per_event.items():
        pos = np.minimum(np.searchsorted(uniq, codes), max(len(uniq) - 1, 0))
        found = (uniq[pos] == codes) if len(uniq) else np.zeros(n, dtype=bool)
        idx = pa.array(pos, mask=~found)  # null index -> null feature for items never seen with a value
        table = table.append_column(f, values.take(idx) if len(uniq) else pa.nulls(n, values.type))
    if source_items is not None:
        missing = [c for c in features if c not in table.column_names and c not in source_items.column_names]
        if missing:
            raise DataError(f"item features {missing} are in neither the events nor the items table", file=source_name)
        extra = [c for c in features if c not in table.column_names]
        if extra:
            src_ids = source_items.column(ITEM_ID)
            if src_ids.type != external.type:
                src_ids = pc.cast(src_ids, external.type)
            idx = pc.index_in(external, value_set=src_ids)
            for c in extra:
                table = table.append_column(c, source_items.column(c).take(idx))
    missing = [c for c in features if c not in table.column_names]
    if missing:
        raise DataError(f"declared item features {missing} were never provided", file=source_name)
    return table


def _first_per_item(parts: list[tuple[np.ndarray, pa.Array]]) -> tuple[np.ndarray, pa.Array]:
    """Merge per-batch (item codes, values) keeping each item's first value; codes come out sorted."""
    codes = np.concatenate([c for c, _ in parts])
    values = pa.concat_arrays([v.combine_chunks() if isinstance(v, pa.ChunkedArray) else v for _, v in parts])
    uniq, first = np.unique(codes, return_index=True)  # return_index gives the first occurrence
    return uniq, values.take(pa.array(first))
