"""The sequence store: every user's time-ordered events as memory-mapped CSR arrays.

A prepared dataset is a directory::

    manifest.json          format version, schema (column roles), counts, vocabularies, rejected rows
    events/offsets.npy     int64 (U + 1,): user u's events are rows offsets[u]:offsets[u + 1]
    events/<column>.npy    one array per event column (E,): item_id int32 (1..V, 0 = padding),
                           timestamp int64, context int32 codes (1..n), feedback float32 (NaN = not
                           observed), request_id int64 (-1 = none), truth float32
    users.parquet          user_index (0..U-1) -> user_id (the external id)
    items.parquet          item_index (1..V) -> item_id (the external id) + item feature columns

Within a user, events are sorted by (timestamp, order in the input). The arrays are opened with
``numpy.load(mmap_mode="r")``, so a 100M-event store costs no memory until rows are touched.
Build one with :func:`argusrec.data.build.build_store`.
"""

from __future__ import annotations

import json
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from argusrec import __version__
from argusrec.data.schema import ITEM_ID, TIMESTAMP, DatasetSchema
from argusrec.errors import DataError

FORMAT = "argusrec-sequence-store"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
EVENTS_DIR = "events"
OFFSETS = "offsets"
USERS_FILE = "users.parquet"
ITEMS_FILE = "items.parquet"
USER_INDEX = "user_index"
ITEM_INDEX = "item_index"


class SequenceStore:
    """Read access to a prepared dataset (or to arrays held in memory, see :meth:`from_arrays`)."""

    def __init__(
        self,
        *,
        schema: DatasetSchema,
        offsets: np.ndarray,
        columns: dict[str, np.ndarray],
        n_items: int,
        manifest: dict[str, Any] | None = None,
        path: Path | None = None,
    ) -> None:
        self.schema = schema
        self.offsets = offsets  # (U + 1,) int64
        self.columns = columns  # name -> (E,)
        self.n_items = int(n_items)
        self.manifest = manifest or {}
        self.path = path

    # ------------------------------------------------------------------ construction
    @classmethod
    def open(cls, path: str | Path) -> SequenceStore:
        """Open a prepared dataset directory; refuses other formats and versions with a clear message."""
        path = Path(path)
        mpath = path / MANIFEST
        if not mpath.is_file():
            raise DataError(
                "not a prepared dataset (no manifest.json)",
                file=str(path),
                hint="create one with `argusrec data prepare` or `argusrec data simulate`",
            )
        try:
            manifest = json.loads(mpath.read_text())
        except json.JSONDecodeError as e:
            raise DataError(f"manifest is not valid JSON ({e})", file=str(mpath)) from None
        if manifest.get("format") != FORMAT:
            raise DataError(f"unknown format {manifest.get('format')!r}, expected {FORMAT!r}", file=str(mpath))
        if manifest.get("format_version") != FORMAT_VERSION:
            raise DataError(
                f"store format version {manifest.get('format_version')} is not supported by argusrec "
                f"{__version__} (expects {FORMAT_VERSION})",
                file=str(mpath),
                hint="prepare the dataset again with this version",
            )
        schema = DatasetSchema.model_validate(manifest["schema"])
        events = path / EVENTS_DIR
        offsets = _load(events / f"{OFFSETS}.npy")
        columns = {name: _load(events / f"{name}.npy") for name in schema.store_columns()}
        n_events = int(manifest["n_events"])
        if len(offsets) != manifest["n_users"] + 1 or int(offsets[-1]) != n_events:
            raise DataError("offsets do not match the manifest's counts; the store is corrupted", file=str(events))
        for name, arr in columns.items():
            if len(arr) != n_events:
                raise DataError(
                    f"column has {len(arr)} rows, manifest says {n_events}; the store is corrupted",
                    file=str(events / f"{name}.npy"),
                )
        return cls(
            schema=schema,
            offsets=offsets,
            columns=columns,
            n_items=manifest["n_items"],
            manifest=manifest,
            path=path,
        )

    @classmethod
    def from_arrays(
        cls,
        *,
        lengths: np.ndarray,
        columns: dict[str, np.ndarray],
        schema: DatasetSchema | None = None,
        n_items: int | None = None,
    ) -> SequenceStore:
        """An in-memory store (tests, small experiments). ``lengths[u]`` = number of events of user u."""
        schema = schema or DatasetSchema()
        lengths = np.asarray(lengths, dtype=np.int64)
        offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        dtypes = schema.store_columns()
        missing = set(dtypes) - set(columns)
        if missing:
            raise ValueError(f"missing columns {sorted(missing)}")
        cols = {name: np.asarray(columns[name], dtype=dtypes[name]) for name in dtypes}
        for name, arr in cols.items():
            if len(arr) != offsets[-1]:
                raise ValueError(f"column {name!r} has {len(arr)} rows, lengths sum to {offsets[-1]}")
        if n_items is None:
            n_items = int(cols[ITEM_ID].max(initial=0))
        return cls(schema=schema, offsets=offsets, columns=cols, n_items=n_items)

    # ------------------------------------------------------------------ access
    @property
    def n_users(self) -> int:
        return len(self.offsets) - 1

    @property
    def n_events(self) -> int:
        return int(self.offsets[-1])

    @cached_property
    def lengths(self) -> np.ndarray:
        """(U,) int64 number of events per user."""
        return np.diff(self.offsets)

    @property
    def items(self) -> np.ndarray:
        """(E,) int32 internal item ids."""
        return self.columns[ITEM_ID]

    @property
    def timestamps(self) -> np.ndarray:
        """(E,) int64 seconds."""
        return self.columns[TIMESTAMP]

    def __getitem__(self, name: str) -> np.ndarray:
        try:
            return self.columns[name]
        except KeyError:
            raise KeyError(f"no event column {name!r}; columns: {sorted(self.columns)}") from None

    def user_slice(self, user: int) -> slice:
        return slice(int(self.offsets[user]), int(self.offsets[user + 1]))

    def vocab(self, column: str) -> list[str]:
        """Values of a context column: code k (1-based) stands for ``vocab(column)[k - 1]``."""
        return list(self.manifest.get("vocab", {}).get(column, []))

    def user_table(self) -> pa.Table:
        """``user_index`` -> external ``user_id``."""
        return self._table(USERS_FILE)

    def item_table(self) -> pa.Table:
        """``item_index`` -> external ``item_id`` and item features."""
        return self._table(ITEMS_FILE)

    def _table(self, name: str) -> pa.Table:
        if self.path is None:
            raise ValueError("an in-memory store has no id maps")
        return pq.read_table(self.path / name)


def _load(path: Path) -> np.ndarray:
    if not path.is_file():
        raise DataError("missing store file; the dataset is incomplete", file=str(path))
    try:
        return np.load(path, mmap_mode="r")
    except (ValueError, OSError) as e:
        raise DataError(f"cannot read store array ({e}); the file is corrupted", file=str(path)) from None


class NpyAppender:
    """Writes a 1-D ``.npy`` file whose length is known only at the end: append chunks, then close.

    A fixed-size header is reserved up front and rewritten on :meth:`close`, so arrays of any length
    stream to disk without holding them in memory.
    """

    HEADER_BYTES = 128

    def __init__(self, path: Path, dtype: np.dtype) -> None:
        self.path = path
        self.dtype = np.dtype(dtype)
        self.length = 0
        self._file = open(path, "wb")
        self._file.write(b"\0" * self.HEADER_BYTES)

    def append(self, values: np.ndarray) -> None:
        values = np.ascontiguousarray(values, dtype=self.dtype)
        self._file.write(values.tobytes())
        self.length += len(values)

    def close(self) -> None:
        descr = np.lib.format.dtype_to_descr(self.dtype)
        header = f"{{'descr': {descr!r}, 'fortran_order': False, 'shape': ({self.length},), }}"
        # magic (6) + version (2) + header length (2) + header padded with spaces and a newline
        pad = self.HEADER_BYTES - 10 - len(header) - 1
        blob = b"\x93NUMPY\x01\x00" + (self.HEADER_BYTES - 10).to_bytes(2, "little")
        blob += (header + " " * pad + "\n").encode("latin1")
        assert len(blob) == self.HEADER_BYTES
        self._file.seek(0)
        self._file.write(blob)
        self._file.close()
