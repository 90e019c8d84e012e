"""The user-fit feedback reference on simulated data (argusrec/eval/user_fit.py)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from argusrec.data.schema import DatasetSchema
from argusrec.data.simulator import taste_at
from argusrec.data.splits import Split, temporal_split
from argusrec.data.store import SequenceStore
from argusrec.errors import ArgusrecError
from argusrec.eval.oracle import open_world, oracle_feedback_metrics, popularity_feedback_metrics, true_feedback
from argusrec.eval.user_fit import (
    UserFit,
    fit_users,
    known_taste_feedback_metrics,
    user_fit_feedback_metrics,
    world_events,
)

pytestmark = pytest.mark.usefixtures("one_thread")
SIGNALS = ("played_ratio", "skip", "like", "dislike")


def test_the_true_users_reproduce_the_simulators_probabilities(sim: tuple[SequenceStore, Split]) -> None:
    """The reference's feedback model is the simulator's: given each event's true taste and offsets, it returns
    the stored truth columns."""
    store, split = sim
    world = open_world(store)
    rows = split.targets("test").index[:400]
    ev = world_events(store, world, rows)
    ext_user = store.user_table().column("user_id").to_numpy()
    params = world.user_params(ext_user[ev.user.numpy()] - 1)  # one row per event
    n = len(rows)
    taste = taste_at(params, np.arange(n), ev.day.astype(np.float64))
    offsets = np.stack([params.skip_bias, params.like_bias, params.dislike_bias], axis=1)
    fit = UserFit(torch.from_numpy(taste.astype(np.float64)), torch.from_numpy(offsets.astype(np.float64)))
    probs = fit.probabilities(world, replace(ev, user=torch.arange(n)))  # "user" k = event k
    truth = true_feedback(store, rows)
    for s in SIGNALS:
        np.testing.assert_allclose(probs[s], truth[s], atol=2e-5, err_msg=s)


def test_users_without_events_keep_the_prior(sim: tuple[SequenceStore, Split]) -> None:
    store, _ = sim
    world = open_world(store)
    ev = world_events(store, world, np.zeros(0, dtype=np.int64))
    mean, cov = np.linspace(-0.5, 0.5, world.dim), np.eye(world.dim) * 0.3
    labels = {s: np.zeros(0) for s in SIGNALS}
    fit = fit_users(world, ev, labels, 3, mean, cov)
    np.testing.assert_allclose(fit.taste.numpy(), np.tile(mean, (3, 1)), atol=1e-9)
    np.testing.assert_allclose(fit.offsets.numpy(), 0.0, atol=1e-9)


def test_a_users_feedback_moves_their_offsets(sim: tuple[SequenceStore, Split]) -> None:
    """A user who skips everything gets a higher skip offset than one who skips nothing, on the same events."""
    store, _ = sim
    world = open_world(store)
    rows = np.arange(store.offsets[0], store.offsets[1])  # the first user's events, given to two users
    one = world_events(store, world, rows)
    ev = replace(
        one,
        **{f: torch.cat([getattr(one, f), getattr(one, f)]) for f in ("centroid", "vector", "quality")},
        skip_offset=torch.cat([one.skip_offset, one.skip_offset]),
        like_offset=torch.cat([one.like_offset, one.like_offset]),
        user=torch.cat([torch.zeros(len(rows), dtype=torch.int64), torch.ones(len(rows), dtype=torch.int64)]),
    )
    n = len(rows)
    skip = np.r_[np.ones(n), np.zeros(n)]
    labels = {"skip": skip, "like": np.zeros(2 * n), "dislike": np.zeros(2 * n), "played_ratio": 1.0 - skip}
    fit = fit_users(world, ev, labels, 2, np.zeros(world.dim), np.eye(world.dim), max_iter=100)
    assert fit.offsets[0, 0] > fit.offsets[1, 0] + 1.0


def test_the_reference_lies_between_popularity_and_the_oracle(sim: tuple[SequenceStore, Split]) -> None:
    store, split = sim
    m = user_fit_feedback_metrics(store, split, half_lives=(None, 7.0), max_iter=25)
    orc = oracle_feedback_metrics(store, split, "test")
    pop = popularity_feedback_metrics(store, split, "test")
    assert m["user_fit/half_life_days"] in (None, 7.0)
    assert set(m) >= {"user_fit/valid_mean_AUC/inf", "user_fit/valid_mean_AUC/7"}
    for s in SIGNALS:
        assert m[f"test/FP_count/{s}"] == orc[f"test/FP_count/{s}"], s
        assert pop[f"test/FP_AUC/{s}"] + 0.02 < m[f"test/FP_AUC/{s}"] < orc[f"test/FP_AUC/{s}"], s
        assert m[f"valid/FP_AUC/{s}"] > 0.5, s


def test_the_reference_refuses_data_without_the_simulators_signals() -> None:
    schema = DatasetSchema.of(feedback={"like": "binary"})
    store = SequenceStore.from_arrays(
        lengths=np.array([2]), columns={"item_id": [1, 2], "timestamp": [0, 1], "like": [1.0, 0.0]}, schema=schema
    )
    split = temporal_split(store, test_start=1)
    with pytest.raises(ArgusrecError, match=r"missing \['skip', 'dislike', 'played_ratio'\]"):
        user_fit_feedback_metrics(store, split)


def test_a_staler_true_taste_predicts_worse(sim: tuple[SequenceStore, Split]) -> None:
    store, split = sim
    known = known_taste_feedback_metrics(store, split, "test", days_before=(0.0, 14.0))
    orc = oracle_feedback_metrics(store, split, "test")
    assert set(known) == {"taste-0d", "taste-14d", "core"}

    def mean_auc(m: dict[str, float]) -> float:
        return float(np.mean([m[f"test/FP_AUC/{s}"] for s in SIGNALS]))

    assert mean_auc(orc) > mean_auc(known["taste-0d"]) > mean_auc(known["taste-14d"])
    assert all(known["core"][f"test/FP_count/{s}"] == orc[f"test/FP_count/{s}"] for s in SIGNALS)
