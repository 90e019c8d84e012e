"""Data recipes: simulate, prepare and describe datasets. The CLI calls these; so can notebooks.

Each function reads top to bottom as the steps it performs.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from argusrec.data.adapters.base import EventSource
from argusrec.data.build import BuildReport, build_store
from argusrec.data.describe import describe
from argusrec.data.schema import LINE, REJECT
from argusrec.data.store import SequenceStore
from argusrec.errors import ArgusrecError, DataError

SOURCES = ("movielens", "amazon", "yambda", "kuairand", "generic")


def open_source(
    source: str,
    path: str | Path | None = None,
    *,
    dataset: str | None = None,
    generic: Any = None,
    cache_dir: str | Path | None = None,
    id_type: str | None = None,
    progress: bool = True,
) -> EventSource:
    """Open raw data with the adapter for ``source``.

    ``dataset`` names a published dataset (MovieLens: ``ml-100k``, ``ml-1m``, ...) that is downloaded
    into the cache when it is not already there; ``path`` points at files on disk. ``generic`` is a
    :class:`~argusrec.data.adapters.generic_config.GenericConfig` (column map) for the generic source.
    """
    if source not in SOURCES:
        raise ArgusrecError(f"unknown source {source!r}; choose one of {', '.join(SOURCES)}")
    if dataset is not None:
        if source != "movielens":
            raise ArgusrecError(
                f"--dataset names a MovieLens dataset to download; {source} data must be given as --input"
            )
        if path is not None:
            raise ArgusrecError("give either --input (files on disk) or --dataset (download by name), not both")
        from argusrec.data.download import fetch_movielens

        path = fetch_movielens(dataset, cache_dir=cache_dir, progress=progress)
    if path is None:
        raise ArgusrecError("no input: give --input PATH (or --dataset NAME for MovieLens)")
    path = Path(path)
    if not path.exists():
        raise DataError("no such file or directory", file=str(path))
    if source == "movielens":
        from argusrec.data.adapters.movielens import open_movielens

        return open_movielens(path)
    if source == "amazon":
        from argusrec.data.adapters.amazon import open_amazon

        return open_amazon(path, id_type=id_type or "auto")  # type: ignore[arg-type]  # validated by the adapter
    if source == "yambda":
        from argusrec.data.adapters.yambda import open_yambda

        return open_yambda(path)
    if source == "kuairand":
        from argusrec.data.adapters.kuairand import open_kuairand

        return open_kuairand(path)
    from argusrec.data.adapters.generic import open_generic

    if generic is None:
        raise ArgusrecError("the generic source needs a column map: --config FILE or --column user_id=... etc.")
    return open_generic(path, generic)


def prepare(
    source: EventSource,
    output: str | Path,
    *,
    strict: bool = False,
    rejects: str | Path | None = None,
    overwrite: bool = False,
    partitions: int | None = None,
    progress: bool = True,
) -> BuildReport:
    """Build the sequence store of ``source`` at ``output`` (see :func:`argusrec.data.build.build_store`)."""
    return build_store(
        source,
        output,
        strict=strict,
        rejects=rejects,
        overwrite=overwrite,
        partitions=partitions,
        progress=progress,
    )


def simulate(
    config: Any,
    output: str | Path,
    *,
    raw: str | Path | None = None,
    latent: bool = True,
    overwrite: bool = False,
    progress: bool = True,
) -> BuildReport:
    """Simulate a streaming service and prepare it at ``output``.

    ``raw`` also writes the raw event log (canonical columns, Parquet) as a real service would export
    it — the input of ``argusrec data prepare --source generic``. ``latent`` stores the simulator's
    ground truth (item vectors, user tastes, policy) under ``output/latent`` for oracle scores.
    """
    from argusrec.data.simulator import simulate_source, write_latent

    source = simulate_source(config)
    if raw is not None:
        source = _tee_to_parquet(source, Path(raw))

    def extra(tmp: Path) -> dict[str, Any]:
        info: dict[str, Any] = {"simulation": json.loads(config.model_dump_json())}
        if latent:
            write_latent(config, tmp / "latent")
            info["latent"] = "latent"
        return info

    return build_store(source, output, overwrite=overwrite, progress=progress, extra=extra)


def _tee_to_parquet(source: EventSource, path: Path) -> EventSource:
    """The same source, also writing every batch it yields to a Parquet file (the raw event log)."""
    inner = source.read

    def read() -> Iterator[tuple[str, pa.RecordBatch]]:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".partial")
        writer: pq.ParquetWriter | None = None
        try:
            for file, batch in inner():
                keep = [c for c in batch.schema.names if c not in (LINE, REJECT)]
                table = pa.Table.from_batches([batch.select(keep)])
                if writer is None:
                    writer = pq.ParquetWriter(tmp, table.schema, compression="zstd")
                writer.write_table(table)
                yield file, batch
        finally:
            if writer is not None:
                writer.close()
        tmp.rename(path)

    return EventSource(
        name=source.name,
        schema=source.schema,
        read=read,
        items=source.items,
        estimated_rows=source.estimated_rows,
        info={**source.info, "raw_log": str(path)},
    )


def summarize(path: str | Path) -> dict[str, Any]:
    """Open a prepared dataset and compute its summary (see :func:`argusrec.data.describe.describe`)."""
    return describe(SequenceStore.open(path))
