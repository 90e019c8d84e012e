"""The latent ground truth on disk: :func:`write_latent` stores a world (catalog arrays and every
user's parameters) as ``.npy`` files plus ``latent.json``; :func:`load_latent` opens it memory-mapped.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np

from argusrec.data.simulator.config import KINDS, SimulationConfig, daily_capacity
from argusrec.data.simulator.world import UserParams, World, _generate_user_params, build_world
from argusrec.errors import ArgusrecError

LATENT_FORMAT = "argusrec-simulator-latent"
LATENT_VERSION = 1


_CATALOG_ARRAYS = (
    "centroids",
    "artist_genre",
    "item_artist",
    "item_genre",
    "item_offset",
    "item_quality",
    "item_popularity",
    "track_length",
    "user_events",
    "user_first_day",
    "user_last_day",
)


def write_latent(config: SimulationConfig, directory: str | Path, *, block_users: int = 65_536) -> Path:
    """Write the latent ground truth of ``config`` to ``directory`` (.npy arrays + ``latent.json``).

    Catalog arrays keep their :class:`World` names (plus ``item_vectors`` = centroid + offset and
    ``item_popularity``); user arrays are the :class:`UserParams` fields prefixed ``user_``, one row per
    user index. Written to a temporary sibling and renamed, so a crash leaves no half-written latent.
    """
    world = build_world(config)
    directory = Path(directory)
    tmp = directory.with_name(directory.name + f".partial-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for name in _CATALOG_ARRAYS:
        np.save(tmp / f"{name}.npy", getattr(world, name))
    np.save(tmp / "item_vectors.npy", world.centroids[world.item_genre] + world.item_offset)
    outs: dict[str, np.ndarray] = {}
    for lo in range(0, world.n_users, block_users):  # bounded memory for any number of users
        users = np.arange(lo, min(lo + block_users, world.n_users))
        params = _generate_user_params(world, users)
        for f in fields(UserParams):
            val = getattr(params, f.name)
            if f.name not in outs:
                outs[f.name] = np.lib.format.open_memmap(
                    tmp / f"user_{f.name}.npy", mode="w+", dtype=val.dtype, shape=(world.n_users, *val.shape[1:])
                )
            outs[f.name][lo : lo + len(users)] = val
    for arr in outs.values():
        if isinstance(arr, np.memmap):
            arr.flush()
    del outs
    meta: dict[str, Any] = {
        "format": LATENT_FORMAT,
        "version": LATENT_VERSION,
        "config": json.loads(config.model_dump_json()),
        "surfaces": {s: KINDS[k] for s, k in zip(world.surfaces, world.surface_kind, strict=True)},
        "devices": world.devices,
        "daily_capacity": daily_capacity(config),
        "ids": "external id = index + 1 for users, items and artists",
        "time": "tastes and the policy are evaluated at t = floor((timestamp - start_timestamp) / 86400) days",
    }
    (tmp / "latent.json").write_text(json.dumps(meta, indent=2))
    if directory.exists():
        shutil.rmtree(directory)
    tmp.rename(directory)
    return directory


def load_latent(directory: str | Path) -> World:
    """Open a latent directory written by :func:`write_latent` (arrays memory-mapped)."""
    directory = Path(directory)
    meta_path = directory / "latent.json"
    if not meta_path.is_file():
        raise ArgusrecError(f"{directory}: not a simulator latent directory (no latent.json)")
    meta = json.loads(meta_path.read_text())
    if meta.get("format") != LATENT_FORMAT or meta.get("version") != LATENT_VERSION:
        raise ArgusrecError(f"{meta_path}: unsupported latent format {meta.get('format')!r} v{meta.get('version')}")
    arrays = {name: np.load(directory / f"{name}.npy", mmap_mode="r") for name in _CATALOG_ARRAYS}
    users = {f.name: np.load(directory / f"user_{f.name}.npy", mmap_mode="r") for f in fields(UserParams)}
    return World(config=SimulationConfig.model_validate(meta["config"]), stored_users=users, **arrays)
