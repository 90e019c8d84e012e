"""Out-of-core construction of the sequence store from an :class:`EventSource`.

Three passes, memory bounded by one input batch plus one partition:

1. **Spool**: stream the source's batches; validate rows (counting rejects by reason); encode user,
   item and context values to int64 codes; hash users into P partitions and append each partition's
   rows to raw column files on disk.
2. **Catalog**: the distinct item codes seen, sorted, become internal ids 1..V (0 = padding);
   item features are joined from the per-event values (first occurrence) and the source's items table.
3. **Sort and write**: per partition, map codes, sort by (user, timestamp, input order), drop exact
   duplicate events, and append to the store's ``.npy`` columns; users get internal ids in
   partition order (sorted by external id within a partition).

Everything is written into ``<output>.partial-<pid>`` and renamed into place at the end, so a crash
never leaves a half-written dataset that looks complete.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from argusrec import __version__
from argusrec.data.adapters.base import EventSource
from argusrec.data.catalog import ItemFeatureCollector, item_id_map, items_table
from argusrec.data.encoding import ValueEncoder, splitmix64
from argusrec.data.rejects import RejectLog, RowLocator, row_reasons
from argusrec.data.schema import (
    ITEM_ID,
    LINE,
    NO_REQUEST,
    REQUEST_ID,
    TIMESTAMP,
    USER_ID,
)
from argusrec.data.store import (
    EVENTS_DIR,
    FORMAT,
    FORMAT_VERSION,
    ITEMS_FILE,
    MANIFEST,
    OFFSETS,
    USER_INDEX,
    USERS_FILE,
    NpyAppender,
)
from argusrec.errors import DataError

ROWS_PER_PARTITION = 4_000_000  # ~60 bytes/row in pass 3 -> a few hundred MB per partition
_SEQ = "__seq"  # global input row number: breaks timestamp ties in input order
_USER = "__user"  # user code


@dataclass
class BuildReport:
    """What :func:`build_store` did."""

    path: Path
    n_users: int
    n_items: int
    n_events: int
    input_rows: int
    rejected: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def events_per_s(self) -> float:
        return self.input_rows / self.seconds if self.seconds > 0 else float("nan")


def build_store(
    source: EventSource,
    output: str | Path,
    *,
    strict: bool = False,
    rejects: str | Path | None = None,
    partitions: int | None = None,
    overwrite: bool = False,
    progress: bool = True,
    extra: Callable[[Path], dict[str, Any] | None] | None = None,
) -> BuildReport:
    """Prepare ``source`` into a sequence store at ``output``.

    Args:
        strict: fail on the first bad row (with its file and line) instead of skipping it.
        rejects: write skipped rows (file, line, reason, ids, timestamp) to this CSV file.
        partitions: number of user-hash partitions; default from the source's estimated size.
        extra: called with the temporary directory before it is renamed into place, to add files
            (e.g. the simulator's latent state); a returned dict is stored in the manifest.
    """
    start = time.perf_counter()
    output = Path(output)
    if output.exists() and not overwrite:
        raise DataError("output already exists", file=str(output), hint="choose another path or pass --overwrite")
    tmp = output.with_name(f"{output.name}.partial-{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    (tmp / EVENTS_DIR).mkdir(parents=True)
    try:
        builder = _Builder(source, tmp, strict=strict, rejects=rejects, partitions=partitions, progress=progress)
        builder.spool()
        builder.write()
        manifest = builder.manifest()
        if extra is not None:
            manifest["extra"] = extra(tmp) or {}
        manifest["build_seconds"] = round(time.perf_counter() - start, 3)
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, default=str))
        shutil.rmtree(tmp / "spool", ignore_errors=True)
        if output.exists():
            shutil.rmtree(output)
        tmp.rename(output)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return BuildReport(
        path=output,
        n_users=manifest["n_users"],
        n_items=manifest["n_items"],
        n_events=manifest["n_events"],
        input_rows=manifest["input_rows"],
        rejected=manifest["rejected"],
        seconds=time.perf_counter() - start,
    )


class _Builder:
    def __init__(
        self,
        source: EventSource,
        tmp: Path,
        *,
        strict: bool,
        rejects: str | Path | None,
        partitions: int | None,
        progress: bool,
    ) -> None:
        self.source = source
        self.schema = source.schema
        self.tmp = tmp
        self.progress = progress
        est = source.estimated_rows or 0
        self.n_parts = partitions or min(256, max(1, math.ceil(est / ROWS_PER_PARTITION)))
        self.store_dtypes = self.schema.store_columns()
        # columns spooled per row: user code, input sequence number, then the store's columns
        self.spool_dtypes: dict[str, np.dtype] = {_USER: np.dtype(np.int64), _SEQ: np.dtype(np.int64)}
        self.spool_dtypes.update({c: np.dtype(np.int64) if c == ITEM_ID else d for c, d in self.store_dtypes.items()})
        self.users = ValueEncoder(USER_ID, passthrough_ints=True)
        self.items = ValueEncoder(ITEM_ID, passthrough_ints=True)
        self.contexts = {c: ValueEncoder(c, passthrough_ints=False) for c in self.schema.context}
        self.request_ids = ValueEncoder(REQUEST_ID, passthrough_ints=True)  # only groups rows: any type works
        self.item_features = ItemFeatureCollector(self.schema.item_features)
        self.rejects = RejectLog(strict=strict, path=rejects)
        self.rows = RowLocator()
        self.input_rows = 0
        self.part_rows = np.zeros(self.n_parts, dtype=np.int64)
        self.t_min: int | None = None
        self.t_max: int | None = None
        self.stats: dict[str, Any] = {}

    # ------------------------------------------------------------------ pass 1: validate, encode, spool
    def spool(self) -> None:
        spool_dir = self.tmp / "spool"
        spool_dir.mkdir()
        handles = {
            (p, c): open(spool_dir / f"p{p}.{c}.bin", "wb") for p in range(self.n_parts) for c in self.spool_dtypes
        }
        bar = tqdm(total=self.source.estimated_rows, unit="ev", unit_scale=True, desc="read", disable=not self.progress)
        try:
            for file, batch in self.source.read():
                self._spool_batch(file, batch, handles)
                bar.update(batch.num_rows)
        finally:
            bar.close()
            for h in handles.values():
                h.close()
        if self.input_rows == 0:
            raise DataError("the input has no events", file=self.source.name)

    def _spool_batch(self, file: str, batch: pa.RecordBatch, handles: dict) -> None:
        n = batch.num_rows
        if n == 0:
            return
        seq0 = self.input_rows
        self.input_rows += n
        names = set(batch.schema.names)
        missing = [c for c in self.schema.event_columns() if c not in names]
        if missing:
            raise DataError(f"adapter output lacks columns {missing}; got {sorted(names)}", file=file)
        raw_lines = batch.column(LINE).to_numpy(zero_copy_only=False) if LINE in names else None
        lines = self.rows.add_batch(seq0, file, raw_lines, n)
        seq = np.arange(seq0, seq0 + n, dtype=np.int64)

        reason = row_reasons(batch, self.schema)
        bad = np.zeros(0, dtype=np.int64)
        if reason is not None:
            bad = np.flatnonzero(pc.is_valid(reason).to_numpy(zero_copy_only=False))
        if reason is not None and len(bad):
            take = pa.array(bad)
            self.rejects.reject(
                [file] * len(bad),
                lines[bad],
                reason.take(take).to_pylist(),
                batch.column(USER_ID).take(take),
                batch.column(ITEM_ID).take(take),
                batch.column(TIMESTAMP).take(take),
            )
            keep = np.ones(n, dtype=bool)
            keep[bad] = False
            batch, seq = batch.filter(pa.array(keep)), seq[keep]
            n = batch.num_rows
            if n == 0:
                return

        cols: dict[str, np.ndarray] = {_SEQ: seq}
        cols[_USER] = self.users.encode(batch.column(USER_ID), file=file)
        cols[ITEM_ID] = self.items.encode(batch.column(ITEM_ID), file=file)
        ts = cols[TIMESTAMP] = _int64(batch.column(TIMESTAMP))
        lo, hi = int(ts.min()), int(ts.max())
        self.t_min = lo if self.t_min is None else min(self.t_min, lo)
        self.t_max = hi if self.t_max is None else max(self.t_max, hi)
        for c, enc in self.contexts.items():
            cols[c] = enc.encode(_fill_null(batch.column(c)), file=file) + 1  # 0 is padding
        for c in self.schema.feedback + self.schema.truth:
            cols[c] = _float32(batch.column(c))
        if self.schema.has_request:
            cols[REQUEST_ID] = self._requests(batch.column(REQUEST_ID), file)
        self.item_features.add(cols[ITEM_ID], batch)
        self._write_partitions(cols, handles)

    def _write_partitions(self, cols: dict[str, np.ndarray], handles: dict) -> None:
        """Append the rows to their user-hash partition's spool files."""
        if self.n_parts == 1:
            for c, arr in cols.items():
                handles[(0, c)].write(np.ascontiguousarray(arr, dtype=self.spool_dtypes[c]).tobytes())
            self.part_rows[0] += len(cols[_SEQ])
            return
        part = (splitmix64(cols[_USER]) % np.uint64(self.n_parts)).astype(np.int64)
        order = np.argsort(part, kind="stable")
        counts = np.bincount(part, minlength=self.n_parts)
        bounds = np.concatenate([[0], np.cumsum(counts)])
        self.part_rows += counts
        for c, arr in cols.items():
            sorted_arr = np.ascontiguousarray(arr[order], dtype=self.spool_dtypes[c])
            for p in np.flatnonzero(counts):
                handles[(p, c)].write(sorted_arr[bounds[p] : bounds[p + 1]].tobytes())

    def _requests(self, col: pa.Array, file: str) -> np.ndarray:
        """(n,) int64 request codes; -1 and null = not part of a shown slate (string ids get codes >= 0)."""
        out = np.full(len(col), NO_REQUEST, dtype=np.int64)
        valid = _valid(col) if col.null_count else np.ones(len(col), dtype=bool)
        if valid.any():
            out[valid] = self.request_ids.encode(col.drop_null(), file=file)
        return out

    # ------------------------------------------------------------------ passes 2 and 3: catalog, sort, write
    def write(self) -> None:
        try:
            self._write()
        finally:
            self.rejects.close()

    def _write(self) -> None:
        to_internal, codes, external = item_id_map(self.items, self._seen_item_codes)
        table = items_table(
            codes,
            external,
            features=self.schema.item_features,
            per_event=self.item_features.first_values(),
            source_items=self.source.items,
            source_name=self.source.name,
        )
        pq.write_table(table, self.tmp / ITEMS_FILE)
        self.stats["n_items"] = len(codes)
        ctx_remap = {c: np.concatenate([[0], enc.sorted_order() + 1]) for c, enc in self.contexts.items()}
        events = self.tmp / EVENTS_DIR
        out = {c: NpyAppender(events / f"{c}.npy", d) for c, d in self.store_dtypes.items()}
        offsets = NpyAppender(events / f"{OFFSETS}.npy", np.dtype(np.int64))
        offsets.append(np.zeros(1, dtype=np.int64))
        user_codes: list[np.ndarray] = []
        total = 0
        spool = self.tmp / "spool"
        parts = tqdm(range(self.n_parts), desc="sort", unit="part", disable=not self.progress or self.n_parts < 2)
        for p in parts:
            if self.part_rows[p] == 0:
                continue
            cols = {c: np.fromfile(spool / f"p{p}.{c}.bin", dtype=d) for c, d in self.spool_dtypes.items()}
            for c in self.spool_dtypes:
                (spool / f"p{p}.{c}.bin").unlink()
            if not _is_sorted(cols[_USER], cols[TIMESTAMP]):
                order = _sort_order(cols[_USER], cols[TIMESTAMP])
                cols = {c: a[order] for c, a in cols.items()}
            dup = _duplicates(cols)
            if dup.any():
                self._reject_duplicates(cols, dup)
                cols = {c: a[~dup] for c, a in cols.items()}
            cols[ITEM_ID] = to_internal(cols[ITEM_ID])
            for c, remap in ctx_remap.items():
                cols[c] = remap[cols[c]]
            user = cols[_USER]
            starts = np.flatnonzero(np.concatenate([[True], user[1:] != user[:-1]]))
            offsets.append(total + np.append(starts[1:], len(user)))
            user_codes.append(user[starts])
            total += len(user)
            for c in self.store_dtypes:
                out[c].append(cols[c])
        for a in (*out.values(), offsets):
            a.close()
        users = np.concatenate(user_codes) if user_codes else np.zeros(0, np.int64)
        self.stats.update(n_users=len(users), n_events=total)
        pq.write_table(
            pa.table({USER_INDEX: np.arange(len(users)), USER_ID: _decode(self.users, users)}), self.tmp / USERS_FILE
        )

    def _reject_duplicates(self, cols: dict[str, np.ndarray], dup: np.ndarray) -> None:
        idx = np.flatnonzero(dup)
        if not self.rejects.strict and self.rejects.path is None:
            self.rejects.counts["duplicate_event"] += len(idx)  # nothing to write: skip locating the rows
            return
        shown = idx[:100_000]  # cap the size of the written report; the count stays exact
        files, lines = self.rows.locate(cols[_SEQ][shown])
        self.rejects.reject(
            files,
            lines,
            ["duplicate_event"] * len(shown),
            _decode(self.users, cols[_USER][shown]),
            _decode(self.items, cols[ITEM_ID][shown]),
            pa.array(cols[TIMESTAMP][shown]),
        )
        self.rejects.counts["duplicate_event"] += len(idx) - len(shown)

    def _seen_item_codes(self) -> np.ndarray:
        """Sorted distinct item codes across all partitions (int ids: the ids themselves)."""
        spool = self.tmp / "spool"
        uniq = [
            np.unique(np.fromfile(spool / f"p{p}.{ITEM_ID}.bin", dtype=np.int64))
            for p in range(self.n_parts)
            if self.part_rows[p]
        ]
        return np.unique(np.concatenate(uniq)) if uniq else np.zeros(0, np.int64)

    # ------------------------------------------------------------------ manifest
    def manifest(self) -> dict[str, Any]:
        vocab = {}
        for c, enc in self.contexts.items():
            order = np.argsort(enc.sorted_order())
            vals = enc.values()
            vocab[c] = [vals[int(k)] for k in order]
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "argusrec_version": __version__,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "name": self.source.name,
            "source": self.source.info,
            "schema": self.schema.model_dump(mode="json"),
            "n_users": self.stats["n_users"],
            "n_items": self.stats["n_items"],
            "n_events": self.stats["n_events"],
            "input_rows": self.input_rows,
            "rejected": dict(sorted(self.rejects.counts.items())),
            "time": {"min": self.t_min, "max": self.t_max},
            "vocab": vocab,
            "id_types": {USER_ID: self.users.mode, ITEM_ID: self.items.mode},
            "partitions": self.n_parts,
        }


def _is_sorted(user: np.ndarray, ts: np.ndarray) -> bool:
    """True when rows are already ordered by (user, timestamp) — e.g. simulator output — so no sort is needed."""
    du = np.diff(user)
    if (du < 0).any():
        return False
    return not ((du == 0) & (np.diff(ts) < 0)).any()


def _sort_order(user: np.ndarray, ts: np.ndarray) -> np.ndarray:
    """(n,) permutation sorting rows by (user, timestamp); rows are in input order, so a stable sort keeps
    ties in input order."""
    u0, t0 = int(user.min()), int(ts.min())
    span = int(ts.max()) - t0 + 1
    if (int(user.max()) - u0 + 1) * span < 2**62:
        # one int64 key sorts ~2.6x faster than a two-key lexsort (measured on 3.3M rows)
        return np.argsort((user - u0) * span + (ts - t0), kind="stable")
    return np.lexsort((ts, user))


def _duplicates(cols: dict[str, np.ndarray]) -> np.ndarray:
    """(n,) bool: the row equals the previous row in every event column (exact duplicate event)."""
    n = len(cols[_USER])
    same = np.zeros(n, dtype=bool)
    if n < 2:
        return same
    eq = np.ones(n - 1, dtype=bool)
    for c, a in cols.items():
        if c == _SEQ:
            continue
        if a.dtype.kind == "f":
            eq &= (a[1:] == a[:-1]) | (np.isnan(a[1:]) & np.isnan(a[:-1]))
        else:
            eq &= a[1:] == a[:-1]
    same[1:] = eq
    return same


def _decode(enc: ValueEncoder, codes: np.ndarray) -> pa.Array:
    """Codes back to external values (the id maps and the rejects report)."""
    if enc.mode == "dict":
        values = enc.values()
        return pa.array([values[int(c)] for c in codes])
    return pa.array(codes, pa.int64())


def _int64(col: pa.Array | pa.ChunkedArray) -> np.ndarray:
    return np.asarray(col.to_numpy(zero_copy_only=False), dtype=np.int64)


def _float32(col: pa.Array | pa.ChunkedArray) -> np.ndarray:
    if col.null_count:
        col = pc.fill_null(pc.cast(col, pa.float32()), float("nan"))
    return np.asarray(col.to_numpy(zero_copy_only=False), dtype=np.float32)


def _fill_null(col: pa.Array) -> pa.Array:
    """Missing context values become the string "<missing>" so they get a code of their own."""
    if not col.null_count:
        return col
    return pc.fill_null(pc.cast(col, pa.string()), "<missing>")


def _valid(col: pa.Array) -> np.ndarray:
    return np.asarray(pc.is_valid(col).to_numpy(zero_copy_only=False), dtype=bool)
