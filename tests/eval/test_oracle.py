"""The oracle on simulated data, the popularity FP baseline and gap closure (argusrec/eval/oracle.py)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from argusrec.data.schema import DatasetSchema
from argusrec.data.simulator import RECOMMENDATION, SEARCH, SimulationConfig, organic_distribution
from argusrec.data.splits import Split, temporal_split
from argusrec.data.store import SequenceStore
from argusrec.errors import ArgusrecError
from argusrec.eval.oracle import (
    expected_played_ratio,
    gap_closed,
    gap_closure_metrics,
    open_world,
    oracle_feedback_metrics,
    oracle_nip,
    popularity_feedback_metrics,
    true_item_log_probs,
)

SIGNALS = ("played_ratio", "skip", "like", "dislike")


# ---------------------------------------------------------------------- hand-built cases
def test_gap_closed_both_directions_and_degenerate_cases() -> None:
    assert gap_closed(0.75, 0.6, 0.8) == pytest.approx(0.75)  # AUC, higher is better
    assert gap_closed(0.9, 1.0, 0.8) == pytest.approx(0.5)  # NE, lower is better
    assert gap_closed(0.6, 0.6, 0.8) == 0.0
    assert gap_closed(0.5, 0.6, 0.8) == pytest.approx(-0.5)  # worse than the baseline
    assert math.isnan(gap_closed(0.7, 0.8, 0.8))  # no gap to close
    assert math.isnan(gap_closed(float("nan"), 0.6, 0.8))


def test_gap_closure_metrics_names_and_skips() -> None:
    model = {"test/FP_AUC/like": 0.7, "test/FP_NE/like": 0.9, "test/NIP_loss": 5.0, "valid/FP_AUC/like": 0.7}
    base = {"test/FP_AUC/like": 0.6, "test/FP_NE/like": 1.0, "test/NIP_loss": 6.0}
    orc = {"test/FP_AUC/like": 0.8, "test/FP_NE/like": 0.8, "test/NIP_loss": 4.0}
    out = gap_closure_metrics(model, base, orc)
    assert out == pytest.approx(
        {"test/FP_AUC_gap_closed/like": 0.5, "test/FP_NE_gap_closed/like": 0.5, "test/NIP_loss_gap_closed": 0.5}
    )


def test_expected_played_ratio_extremes() -> None:
    cfg = SimulationConfig(n_events=1000)
    f = cfg.feedback
    skipped = expected_played_ratio(np.array([1.0]), np.array([0.0]), cfg)
    assert skipped[0] == pytest.approx(f.skip_play_max / 3)  # skip_play_max * E[u^2]
    sure_full = expected_played_ratio(np.array([0.0]), np.array([1e3]), cfg)
    assert sure_full[0] == pytest.approx(1.0)
    never_full = expected_played_ratio(np.array([0.0]), np.array([-1e3]), cfg)
    assert never_full[0] == pytest.approx((1 + f.listen_play_min) / 2)


def test_popularity_feedback_on_a_hand_built_store() -> None:
    # 4 users x 4 events at t = 0..3; test = t >= 3. Item 1 is always liked in training, item 2 never.
    schema = DatasetSchema.of(feedback={"like": "binary"})
    items = np.array([1, 2, 1, 1, 2, 1, 2, 2, 1, 2, 1, 2, 2, 1, 1, 1])
    like = (items == 1).astype(np.float32)
    store = SequenceStore.from_arrays(
        lengths=np.full(4, 4),
        columns={"item_id": items, "timestamp": np.tile(np.arange(4), 4), "like": like},
        schema=schema,
    )
    split = temporal_split(store, test_start=3)
    m = popularity_feedback_metrics(store, split, "test", smoothing=0.0)
    assert m["test/FP_AUC/like"] == 1.0  # the per-item means separate the test events perfectly
    assert m["test/FP_count/like"] == 4
    smoothed = popularity_feedback_metrics(store, split, "test", smoothing=1e9)
    assert smoothed["test/FP_NE/like"] == pytest.approx(1.0, abs=0.05)  # shrunk to the mean: ~ the base rate


def test_open_world_refuses_non_simulated_data(tmp_path: Path) -> None:
    store = SequenceStore.from_arrays(lengths=np.array([2]), columns={"item_id": [1, 2], "timestamp": [0, 1]})
    with pytest.raises(ArgusrecError, match="not a simulated dataset"):
        open_world(store)


# ---------------------------------------------------------------------- a small simulation
def test_oracle_feedback_beats_popularity_and_has_ne_below_one(sim: tuple[SequenceStore, Split]) -> None:
    store, split = sim
    orc = oracle_feedback_metrics(store, split, "test")
    pop = popularity_feedback_metrics(store, split, "test")
    for s in SIGNALS:
        assert orc[f"test/FP_NE/{s}"] < 1.0, s
        assert orc[f"test/FP_AUC/{s}"] > pop[f"test/FP_AUC/{s}"] + 0.05, s
        assert orc[f"test/FP_NE/{s}"] < pop[f"test/FP_NE/{s}"], s
        assert orc[f"test/FP_count/{s}"] == split.n_targets("test")


def test_true_item_probabilities_match_the_simulator(sim: tuple[SequenceStore, Split]) -> None:
    store, split = sim
    world = open_world(store)
    t = split.targets("test")
    logp, ent, kind = true_item_log_probs(store, world, t.index, t.user)
    assert np.isfinite(logp).all() and (logp <= 0).all() and (ent >= 0).all()
    rec = kind == RECOMMENDATION  # the simulator recorded each recommended item's propensity
    np.testing.assert_allclose(logp[rec], np.log(store["propensity"][t.index[rec]]), atol=1e-4)
    for i in np.flatnonzero(kind == SEARCH)[:3]:  # the organic pick against the oracle's single-event formula
        row = t.index[i]
        p = organic_distribution(world, int(t.user[i]) + 1, int(store.timestamps[row]))
        assert logp[i] == pytest.approx(math.log(p[store.items[row] - 1]), abs=1e-4)
        assert ent[i] == pytest.approx(float(-(p * np.log(p)).sum()), abs=1e-4)


def test_oracle_nip_beats_popularity_and_matches_its_entropy(sim: tuple[SequenceStore, Split]) -> None:
    from argusrec.data.negatives import item_frequencies
    from argusrec.data.splits import EventRole
    from argusrec.eval.argus_eval import popularity_nip_loss

    store, split = sim
    m = oracle_nip(store, split, "test")
    freq = item_frequencies(store.items, store.n_items, mask=split.event_roles() == EventRole.TRAIN)
    pop = popularity_nip_loss(store, split, "test", freq)
    assert m["test/NIP_count"] == split.n_targets("test") == pop["test/NIP_count"]
    assert m["test/NIP_loss"] < pop["test/NIP_loss"] - 0.3
    # E[-log p(item)] is the entropy: the two estimates agree within a few standard errors
    assert abs(m["test/NIP_loss"] - m["test/NIP_entropy"]) < 4 * m["test/NIP_loss_se"]
    kinds = sum(m[f"test/NIP_count/{k}"] for k in ("recommendation", "search", "library"))
    assert kinds == m["test/NIP_count"]
    sub = oracle_nip(store, split, "test", max_events=500, seed=1)
    assert sub["test/NIP_count"] == 500 and sub["test/NIP_oracle_subset"] == 1.0
