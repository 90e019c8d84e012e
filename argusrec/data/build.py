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
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from argusrec import __version__
from argusrec.data.adapters.base import EventSource
from argusrec.data.encoding import ValueEncoder, splitmix64
from argusrec.data.schema import (
    ITEM_ID,
    LINE,
    NO_REQUEST,
    REJECT,
    REQUEST_ID,
    TIMESTAMP,
    USER_ID,
    FeedbackKind,
)
from argusrec.data.store import (
    EVENTS_DIR,
    FORMAT,
    FORMAT_VERSION,
    ITEM_INDEX,
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
        self.strict = strict
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
        self.rejected: Counter[str] = Counter()
        self.input_rows = 0
        self.part_rows = np.zeros(self.n_parts, dtype=np.int64)
        self.files: list[tuple[int, str]] = []  # (first seq of the file's rows, file name)
        # per batch: (first seq, file, line of its first row or all its lines) to locate any row later
        self.batch_lines: list[tuple[int, str, int | np.ndarray]] = []
        # per-event item features: feature -> per batch (item codes, first non-null value of each item)
        self.item_features: dict[str, list[tuple[np.ndarray, pa.Array]]] = {}
        self.t_min: int | None = None
        self.t_max: int | None = None
        self.rejects_path = Path(rejects) if rejects else None
        self._rejects_writer: pacsv.CSVWriter | None = None
        self.stats: dict[str, Any] = {}

    # ------------------------------------------------------------------ pass 1
    def spool(self) -> None:
        spool_dir = self.tmp / "spool"
        spool_dir.mkdir()
        handles = {
            (p, c): open(spool_dir / f"p{p}.{c}.bin", "wb") for p in range(self.n_parts) for c in self.spool_dtypes
        }
        bar = tqdm(
            total=self.source.estimated_rows,
            unit="ev",
            unit_scale=True,
            desc="read",
            disable=not self.progress,
        )
        try:
            for file, batch in self.source.read():
                if not self.files or self.files[-1][1] != file:
                    self.files.append((self.input_rows, file))
                self._spool_batch(file, batch, handles)
                bar.update(batch.num_rows)
        finally:
            bar.close()
            for h in handles.values():
                h.close()
            if self._rejects_writer is not None:
                self._rejects_writer.close()
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
        lines = batch.column(LINE).to_numpy(zero_copy_only=False) if LINE in names else None
        if lines is None:
            self.batch_lines.append((seq0, file, seq0 - self.files[-1][0] + 1))
        elif n == 1 or lines[-1] - lines[0] == n - 1:
            self.batch_lines.append((seq0, file, int(lines[0])))  # contiguous lines: keep the first only
        else:
            self.batch_lines.append((seq0, file, lines.copy()))

        reason = self._reasons(batch, names)
        if reason is not None:
            bad = np.flatnonzero(pc.is_valid(reason).to_numpy(zero_copy_only=False))
            if len(bad):
                self._reject(file, batch, bad, reason, lines, seq0)
                keep = np.ones(n, dtype=bool)
                keep[bad] = False
                batch = batch.filter(pa.array(keep))
                n = batch.num_rows
                seq = (seq0 + np.flatnonzero(keep)).astype(np.int64)
                if n == 0:
                    return
            else:
                seq = np.arange(seq0, seq0 + n, dtype=np.int64)
        else:
            seq = np.arange(seq0, seq0 + n, dtype=np.int64)

        cols: dict[str, np.ndarray] = {_SEQ: seq}
        cols[_USER] = self.users.encode(batch.column(USER_ID), file=file)
        item_codes = self.items.encode(batch.column(ITEM_ID), file=file)
        cols[ITEM_ID] = item_codes
        ts = _int64(batch.column(TIMESTAMP))
        cols[TIMESTAMP] = ts
        lo, hi = int(ts.min()), int(ts.max())
        self.t_min = lo if self.t_min is None else min(self.t_min, lo)
        self.t_max = hi if self.t_max is None else max(self.t_max, hi)
        for c, enc in self.contexts.items():
            cols[c] = enc.encode(_fill_null(batch.column(c)), file=file) + 1  # 0 is padding
        for c in self.schema.feedback + self.schema.truth:
            cols[c] = _float32(batch.column(c))
        if self.schema.has_request:
            cols[REQUEST_ID] = self._requests(batch.column(REQUEST_ID), file)
        for f in (c for c in self.schema.item_features if c in names):
            col = batch.column(f)
            codes, vals = (item_codes, col) if not col.null_count else (item_codes[_valid(col)], col.drop_null())
            uniq, first = np.unique(codes, return_index=True)  # first occurrence within the batch
            parts = self.item_features.setdefault(f, [])
            parts.append((uniq, vals.take(pa.array(first))))
            if sum(len(c) for c, _ in parts) > 4_000_000:  # bound memory on huge inputs
                self.item_features[f] = [_first_per_item(parts)]

        part = (splitmix64(cols[_USER]) % np.uint64(self.n_parts)).astype(np.int64)
        if self.n_parts == 1:
            for c, arr in cols.items():
                handles[(0, c)].write(np.ascontiguousarray(arr, dtype=self.spool_dtypes[c]).tobytes())
            self.part_rows[0] += n
            return
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

    def _reasons(self, batch: pa.RecordBatch, names: set[str]) -> pa.Array | None:
        """(n,) string array: why each row is rejected (null = keep), or None when all rows are fine."""
        checks: list[tuple[pa.Array, str]] = []
        for c in (USER_ID, ITEM_ID, TIMESTAMP):
            col = batch.column(c)
            if col.null_count:
                checks.append((pc.is_null(col), f"missing_{c}"))
        ts = batch.column(TIMESTAMP)
        checks.append((pc.fill_null(pc.less(ts, 0), False), "negative_timestamp"))
        for c in self.schema.feedback:
            if self.schema.feedback_kind(c) is FeedbackKind.BINARY:
                col = batch.column(c)
                ok = pc.or_(pc.is_nan(pc.cast(col, pa.float64())), pc.is_in(col, pa.array([0, 1], col.type)))
                checks.append((pc.invert(pc.fill_null(ok, True)), f"bad_binary_feedback_{c}"))
        reason: pa.Array | None = None
        if REJECT in names:
            reason = batch.column(REJECT)
            if reason.null_count == len(reason):
                reason = None
        for mask, label in checks:
            if not pc.any(mask).as_py():
                continue
            labelled = pc.if_else(mask, pa.scalar(label), pa.scalar(None, pa.string()))
            reason = labelled if reason is None else pc.coalesce(reason, labelled)
        return reason

    def _reject(
        self,
        file: str,
        batch: pa.RecordBatch,
        bad: np.ndarray,
        reason: pa.Array,
        lines: np.ndarray | None,
        seq0: int,
    ) -> None:
        texts = reason.take(pa.array(bad)).to_pylist()
        if lines is not None:
            line_of_bad = lines[bad]
        else:  # sources without line numbers: the row's position in its file (1-based)
            line_of_bad = seq0 - self.files[-1][0] + bad + 1
        if self.strict:
            raise DataError(
                f"bad row: {texts[0]}",
                file=file,
                line=int(line_of_bad[0]),
                hint="run without --strict to skip such rows and count them",
            )
        self.rejected.update(t.split(":", 1)[0].strip() for t in texts)
        if self.rejects_path is not None:
            table = pa.table(
                {
                    "file": pa.array([file] * len(bad), pa.string()),
                    "line": pa.array(line_of_bad, pa.int64()),
                    "reason": pa.array(texts, pa.string()),
                    "user_id": pc.cast(batch.column(USER_ID).take(pa.array(bad)), pa.string()),
                    "item_id": pc.cast(batch.column(ITEM_ID).take(pa.array(bad)), pa.string()),
                    "timestamp": pc.cast(batch.column(TIMESTAMP).take(pa.array(bad)), pa.string()),
                }
            )
            self._write_rejects(table)

    def _write_rejects(self, table: pa.Table) -> None:
        assert self.rejects_path is not None
        if self._rejects_writer is None:
            self.rejects_path.parent.mkdir(parents=True, exist_ok=True)
            self._rejects_writer = pacsv.CSVWriter(str(self.rejects_path), table.schema)
        self._rejects_writer.write_table(table)

    # ------------------------------------------------------------------ passes 2 and 3
    def write(self) -> None:
        item_map = self._catalog()
        ctx_remap = {c: np.concatenate([[0], enc.sorted_order() + 1]) for c, enc in self.contexts.items()}
        events = self.tmp / EVENTS_DIR
        out = {c: NpyAppender(events / f"{c}.npy", d) for c, d in self.store_dtypes.items()}
        offsets = NpyAppender(events / f"{OFFSETS}.npy", np.dtype(np.int64))
        offsets.append(np.zeros(1, dtype=np.int64))
        user_codes: list[np.ndarray] = []
        total = 0
        dup_writer_rows: list[pa.Table] = []
        spool = self.tmp / "spool"
        parts = tqdm(range(self.n_parts), desc="sort", unit="part", disable=not self.progress or self.n_parts < 2)
        for p in parts:
            if self.part_rows[p] == 0:
                continue
            cols = {c: np.fromfile(spool / f"p{p}.{c}.bin", dtype=d) for c, d in self.spool_dtypes.items()}
            for c in self.spool_dtypes:
                (spool / f"p{p}.{c}.bin").unlink()
            user, ts = cols[_USER], cols[TIMESTAMP]
            if not _is_sorted(user, ts):
                order = _sort_order(user, ts)
                cols = {c: a[order] for c, a in cols.items()}
                user = cols[_USER]
            dup = self._duplicates(cols)
            if dup.any():
                self._drop_duplicates(cols, dup, dup_writer_rows)
                keep = ~dup
                cols = {c: a[keep] for c, a in cols.items()}
                user = cols[_USER]
            cols[ITEM_ID] = item_map(cols[ITEM_ID])
            for c, remap in ctx_remap.items():
                cols[c] = remap[cols[c]]
            starts = np.flatnonzero(np.concatenate([[True], user[1:] != user[:-1]]))
            ends = np.append(starts[1:], len(user))
            offsets.append(total + ends)
            user_codes.append(user[starts])
            total += len(user)
            for c in self.store_dtypes:
                out[c].append(cols[c])
        for a in (*out.values(), offsets):
            a.close()
        if dup_writer_rows and self.rejects_path is not None:
            # duplicates are found after the first pass closed the rejects file: append to it
            with open(self.rejects_path, "ab") as f:
                for t in dup_writer_rows:
                    pacsv.write_csv(t, f, pacsv.WriteOptions(include_header=False))
        codes = np.concatenate(user_codes) if user_codes else np.zeros(0, np.int64)
        self.stats.update(n_users=len(codes), n_events=total)
        pq.write_table(
            pa.table({USER_INDEX: np.arange(len(codes)), USER_ID: self._decode(self.users, codes)}),
            self.tmp / USERS_FILE,
        )

    def _duplicates(self, cols: dict[str, np.ndarray]) -> np.ndarray:
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

    def _drop_duplicates(self, cols: dict[str, np.ndarray], dup: np.ndarray, sink: list[pa.Table]) -> None:
        idx = np.flatnonzero(dup)
        seqs = cols[_SEQ][idx]
        if self.strict:
            file, row = self._locate(int(seqs[0]))
            raise DataError(
                "duplicate event (same user, item, timestamp and values as an earlier row)",
                file=file,
                line=row,
                hint="run without --strict to drop duplicates and count them",
            )
        self.rejected["duplicate_event"] += len(idx)
        if self.rejects_path is None:
            return
        located = [self._locate(int(s)) for s in seqs[:100_000]]  # cap the report's size
        k = len(located)
        sink.append(
            pa.table(
                {
                    "file": pa.array([f for f, _ in located], pa.string()),
                    "line": pa.array([r for _, r in located], pa.int64()),
                    "reason": pa.array(["duplicate_event"] * k, pa.string()),
                    "user_id": pc.cast(self._decode(self.users, cols[_USER][idx[:k]]), pa.string()),
                    "item_id": pc.cast(self._decode(self.items, cols[ITEM_ID][idx[:k]]), pa.string()),
                    "timestamp": pc.cast(pa.array(cols[TIMESTAMP][idx[:k]]), pa.string()),
                }
            )
        )

    def _locate(self, seq: int) -> tuple[str, int]:
        """Input row number -> (file, 1-based line of the row in that file)."""
        k = int(np.searchsorted([b[0] for b in self.batch_lines], seq, side="right")) - 1
        seq0, file, lines = self.batch_lines[k]
        if isinstance(lines, np.ndarray):
            return file, int(lines[seq - seq0])
        return file, lines + seq - seq0

    def _catalog(self) -> Callable[[np.ndarray], np.ndarray]:
        """Build the item table; return the function mapping item codes -> internal ids 1..V."""
        if self.items.mode == "int":
            sorted_codes = self._seen_item_codes()
            lo = int(sorted_codes[0]) if len(sorted_codes) else 0
            span = int(sorted_codes[-1]) - lo + 1 if len(sorted_codes) else 0
            if span <= max(4 * len(sorted_codes), 1 << 24):
                # dense lookup table: O(1) per event instead of a binary search (ids are usually compact)
                lut = np.zeros(span, dtype=np.int32)
                lut[sorted_codes - lo] = np.arange(1, len(sorted_codes) + 1, dtype=np.int32)

                def to_internal(c: np.ndarray) -> np.ndarray:
                    return lut[c - lo]
            else:

                def to_internal(c: np.ndarray) -> np.ndarray:
                    return (np.searchsorted(sorted_codes, c) + 1).astype(np.int32)

            external = pa.array(sorted_codes)
        else:
            rank = self.items.sorted_order()  # code -> rank of its value in sorted order
            sorted_codes = np.argsort(rank)

            def to_internal(c: np.ndarray) -> np.ndarray:
                return (rank[c] + 1).astype(np.int32)

            vals = self.items.values()
            external = pa.array([vals[k] for k in sorted_codes])
        n_items = len(sorted_codes)
        table = pa.table({ITEM_INDEX: pa.array(np.arange(1, n_items + 1, dtype=np.int32)), ITEM_ID: external})
        table = self._join_item_features(table, sorted_codes)
        pq.write_table(table, self.tmp / ITEMS_FILE)
        self.stats["n_items"] = n_items
        return to_internal

    def _seen_item_codes(self) -> np.ndarray:
        """Sorted distinct item codes across all partitions (int ids: the ids themselves)."""
        spool = self.tmp / "spool"
        uniq = [
            np.unique(np.fromfile(spool / f"p{p}.{ITEM_ID}.bin", dtype=np.int64))
            for p in range(self.n_parts)
            if self.part_rows[p]
        ]
        return np.unique(np.concatenate(uniq)) if uniq else np.zeros(0, np.int64)

    def _join_item_features(self, table: pa.Table, sorted_codes: np.ndarray) -> pa.Table:
        feats = self.schema.item_features
        if not feats:
            return table
        n = len(sorted_codes)
        # per-event features: the first non-null value seen for each item
        for f, parts in self.item_features.items():
            uniq, values = _first_per_item(parts)
            pos = np.minimum(np.searchsorted(uniq, sorted_codes), max(len(uniq) - 1, 0))
            found = (uniq[pos] == sorted_codes) if len(uniq) else np.zeros(n, dtype=bool)
            idx = pa.array(pos, mask=~found)  # null index -> null feature for items never seen with a value
            table = table.append_column(f, values.take(idx) if len(uniq) else pa.nulls(n, values.type))

        # features from the source's items table, joined on the external id
        src = self.source.items
        if src is not None:
            missing = [c for c in feats if c not in table.column_names and c not in src.column_names]
            if missing:
                raise DataError(
                    f"item features {missing} are in neither the events nor the items table",
                    file=self.source.name,
                )
            extra = [c for c in feats if c not in table.column_names]
            if extra:
                ids = table.column(ITEM_ID)
                src_ids = src.column(ITEM_ID)
                if src_ids.type != ids.type:
                    src_ids = pc.cast(src_ids, ids.type)
                idx = pc.index_in(ids, value_set=src_ids)
                for c in extra:
                    table = table.append_column(c, src.column(c).take(idx))
        missing = [c for c in feats if c not in table.column_names]
        if missing:
            raise DataError(f"declared item features {missing} were never provided", file=self.source.name)
        assert table.num_rows == n
        return table

    def _decode(self, enc: ValueEncoder, codes: np.ndarray) -> pa.Array:
        if enc.mode == "dict":
            vals = enc.values()
            return pa.array([vals[int(c)] for c in codes])
        return pa.array(codes, pa.int64())

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
            "rejected": dict(sorted(self.rejected.items())),
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


def _first_per_item(parts: list[tuple[np.ndarray, pa.Array]]) -> tuple[np.ndarray, pa.Array]:
    """Merge per-batch (item codes, values) keeping each item's first value; codes come out sorted."""
    codes = np.concatenate([c for c, _ in parts])
    values = pa.concat_arrays([v.combine_chunks() if isinstance(v, pa.ChunkedArray) else v for _, v in parts])
    uniq, first = np.unique(codes, return_index=True)  # return_index gives the first occurrence
    return uniq, values.take(pa.array(first))


def _valid(col: pa.Array) -> np.ndarray:
    return np.asarray(pc.is_valid(col).to_numpy(zero_copy_only=False), dtype=bool)
