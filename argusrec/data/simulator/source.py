"""The simulated service as an :class:`EventSource`: its schema and one Arrow batch per chunk of users."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pyarrow as pa

from argusrec.data.adapters.base import EventSource
from argusrec.data.schema import DatasetSchema
from argusrec.data.simulator.config import SimulationConfig
from argusrec.data.simulator.events import simulate_chunk
from argusrec.data.simulator.world import World, build_world

SOURCE_NAME = "simulator"


def simulate_schema() -> DatasetSchema:
    """The :class:`DatasetSchema` of the simulator's events (the same for every config)."""
    return DatasetSchema.of(
        context=["surface", "device"],
        feedback={"played_ratio": "continuous", "skip": "binary", "like": "binary", "dislike": "binary"},
        item_features=["artist_id", "track_length_s"],
        request=True,
        truth=["true_affinity", "like_prob", "dislike_prob", "skip_prob", "propensity"],
    )


def simulate_source(config: SimulationConfig) -> EventSource:
    """The simulated service as an :class:`EventSource`; ``read()`` yields one batch per chunk of users.

    Every call of ``read()`` regenerates the same data (nothing is cached).
    """
    world = build_world(config)
    n_users, step = world.n_users, int(config.chunk_users or 1)

    def read() -> Iterator[tuple[str, pa.RecordBatch]]:
        for lo in range(0, n_users, step):
            yield SOURCE_NAME, _to_batch(world, simulate_chunk(world, lo, min(lo + step, n_users)))

    items = pa.table(
        {
            "item_id": pa.array(np.arange(1, world.n_items + 1, dtype=np.int64)),
            "artist_id": pa.array(world.item_artist.astype(np.int64) + 1),
            "track_length_s": pa.array(world.track_length.astype(np.float32)),
        }
    )
    return EventSource(
        name=SOURCE_NAME,
        schema=simulate_schema(),
        read=read,
        items=items,
        estimated_rows=config.n_events,
        info={"generator": "argusrec.data.simulator", "seed": config.seed, "n_users": n_users},
    )


_COLUMN_ORDER = (
    "user_id", "item_id", "timestamp", "surface", "device", "played_ratio", "skip", "like", "dislike",
    "request_id", "true_affinity", "like_prob", "dislike_prob", "skip_prob", "propensity",
)  # fmt: skip


def _to_batch(world: World, cols: dict[str, np.ndarray]) -> pa.RecordBatch:
    arrays = []
    for name in _COLUMN_ORDER:
        if name in ("surface", "device"):
            names = world.surfaces if name == "surface" else world.devices
            arrays.append(pa.array(names, pa.string()).take(pa.array(cols[name])))
        else:
            arrays.append(pa.array(cols[name]))
    return pa.RecordBatch.from_arrays(arrays, names=list(_COLUMN_ORDER))
