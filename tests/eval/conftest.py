"""Fixtures of the evaluation tests: a small simulated dataset with its global temporal split."""

from __future__ import annotations

import pytest

from argusrec.data.simulator import SimulationConfig
from argusrec.data.splits import Split, temporal_cutoffs, temporal_split
from argusrec.data.store import SequenceStore
from argusrec.recipes.data import simulate


@pytest.fixture(scope="package")
def sim(tmp_path_factory: pytest.TempPathFactory) -> tuple[SequenceStore, Split]:
    """30,000 simulated events (seed 3); the last 20% of events are the test period, the 10% before validation."""
    out = tmp_path_factory.mktemp("oracle") / "sim"
    simulate(SimulationConfig(n_events=30_000, seed=3), out, progress=False)
    store = SequenceStore.open(out)
    cut = temporal_cutoffs(store, test_fraction=0.2, valid_fraction=0.1)
    return store, temporal_split(store, test_start=cut.test_start, valid_start=cut.valid_start)
