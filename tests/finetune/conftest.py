"""Fixtures of the fine-tuning tests: a small simulated service and small ARGUS models."""

from __future__ import annotations

from pathlib import Path

import pytest

from argusrec.config import load_config
from argusrec.data.simulator import SimulationConfig
from argusrec.data.store import SequenceStore
from argusrec.models.argus import Argus
from argusrec.recipes.data import simulate
from argusrec.recipes.pretrain import pretrain
from tests.models import argus_for

MAX_LEN = 48


@pytest.fixture(scope="package")
def sim_store(tmp_path_factory: pytest.TempPathFactory) -> SequenceStore:
    path: Path = tmp_path_factory.mktemp("finetune_sim") / "data"
    simulate(SimulationConfig(n_events=8_000, seed=5, n_items=120), path, latent=False, progress=False)
    return SequenceStore.open(path)


@pytest.fixture(autouse=True)
def _one_thread(one_thread: None) -> None:
    """Every fine-tuning test runs with one torch thread (tests/conftest.py)."""


def make_argus(store: SequenceStore, variant: str = "simplified", *, seed: int = 0, **kw: object) -> Argus:
    """:func:`tests.models.argus_for` with the fine-tuning tests' history length."""
    return argus_for(store, variant, seed=seed, **{"max_len": MAX_LEN, **kw})


# a tiny pre-trained ARGUS run for the recipe-level tests (module scope: each module pre-trains its own)
TINY = [
    "model.dim=16",
    "model.layers=1",
    "model.heads=1",
    "model.dropout=0.0",
    "model.item_embedding=id",
    "data.max_len=32",
    "data.valid_fraction=0.15",
    "data.test_fraction=0.15",
    "loss.uniform_negatives=32",
    "train.batch_size=32",
    "train.num_threads=1",
    "train.patience=null",
    "train.device=cpu",
]
FT = ["finetune.lag=1800", "train.epochs=2", "train.num_threads=1", "finetune.max_impressions=64"]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ft_recipe") / "data"
    simulate(SimulationConfig(n_events=6_000, seed=3, n_items=100), path, latent=False, progress=False)
    return path


@pytest.fixture(scope="module")
def pretrained(data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("ft_pre") / "pre"
    pretrain(load_config("argus-tiny", [f"data.path={data}", *TINY, "train.epochs=1"]), run_dir=run, progress=False)
    return run
