"""Baseline ranker features: values by hand, and no leakage (nothing after the lagged history or in the period)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from argusrec.ranker.features import EventArrays, baseline_features

LAG = 100


def _events(n_users: int = 6, per_user: int = 40, seed: int = 0) -> EventArrays:
    rng = np.random.default_rng(seed)
    n = n_users * per_user
    ts = np.concatenate([np.sort(rng.integers(0, 5_000, per_user)) for _ in range(n_users)])
    return EventArrays(
        offsets=np.arange(n_users + 1, dtype=np.int64) * per_user,
        items=rng.integers(1, 8, n).astype(np.int64),  # few items: many repeats per user
        timestamps=ts.astype(np.int64),
        context={"surface": rng.integers(1, 4, n).astype(np.int32)},
        feedback={"like": rng.integers(0, 2, n).astype(np.float64), "ratio": rng.uniform(size=n)},
        n_items=8,
    )


def _impressions(ev: EventArrays, stats_lo: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every row of each user's period (rows >= stats_lo) is an impression; groups of 3 consecutive rows."""
    rows = np.concatenate([np.arange(stats_lo[u], ev.offsets[u + 1]) for u in range(ev.n_users)])
    first = np.concatenate(
        [
            np.arange(stats_lo[u], ev.offsets[u + 1])[::3].repeat(3)[: ev.offsets[u + 1] - stats_lo[u]]
            for u in range(ev.n_users)
        ]
    )
    return rows, ev.timestamps[first], first


def test_features_by_hand() -> None:
    # one user: rows 0..5; period starts at row 3
    ev = EventArrays(
        offsets=np.array([0, 6]),
        items=np.array([1, 2, 1, 3, 1, 2]),
        timestamps=np.array([0, 10, 200, 300, 400, 500]),
        context={"surface": np.array([1, 1, 2, 2, 3, 3], dtype=np.int32)},
        feedback={"like": np.array([1.0, 0.0, 1.0, np.nan, 0.0, 1.0])},
        n_items=3,
    )
    # impression at row 4 (item 1), its group starts at row 3, t_g = 300; lag 100 -> history rows <= t 200, < row 3
    t = baseline_features(ev, np.array([4]), np.array([300]), np.array([3]), np.array([3]), LAG)
    f = {n: float(t.values[0, i]) for i, n in enumerate(t.names)}
    assert f["item_log_count"] == pytest.approx(math.log1p(2))  # item 1 twice before the period (rows 0, 2)
    glob = 2 / 3  # likes of rows 0..2
    assert f["item_mean/like"] == pytest.approx((2 + 10 * glob) / (2 + 10))
    assert f["user_log_count"] == pytest.approx(math.log1p(3))
    assert f["hist_log_len"] == pytest.approx(math.log1p(3))  # rows 0, 1, 2 (t <= 200)
    assert f["since_last_s"] == 100  # 300 - 200
    assert f["recent_count_1d"] == 3
    assert f["ui_count"] == 2 and f["ui_since_s"] == 100 and f["ui_sum/like"] == 2
    assert f["ctx/surface"] == 3 and t.categorical == ["ctx/surface"]
    # a bigger lag leaves row 2 out of the history
    t = baseline_features(ev, np.array([4]), np.array([300]), np.array([3]), np.array([3]), 150)
    assert t.column("ui_count")[0] == 1 and t.column("ui_since_s")[0] == 300 and t.column("since_last_s")[0] == 290
    # no history at all: NaN recencies, zero counts
    t = baseline_features(ev, np.array([0]), np.array([0]), np.array([0]), np.array([0]), 0)
    assert (
        np.isnan(t.column("since_last_s")[0]) and np.isnan(t.column("ui_since_s")[0]) and t.column("ui_count")[0] == 0
    )


def _perturb(ev: EventArrays, change: np.ndarray, seed: int, items_too: bool = True) -> EventArrays:
    """Other feedback and context (and items) for the rows in ``change`` (E,) bool; timestamps kept."""
    rng = np.random.default_rng(seed)
    n = int(change.sum())
    items, ctx = ev.items.copy(), {c: v.copy() for c, v in ev.context.items()}
    if items_too:
        items[change] = rng.integers(1, 9, n)
    fb = {}
    for s, v in ev.feedback.items():
        w = v.copy()
        w[change] = rng.uniform(size=n)
        fb[s] = w
    for v in ctx.values():
        v[change] = rng.integers(1, 4, n)
    return EventArrays(ev.offsets, items, ev.timestamps, ctx, fb, ev.n_items)


def test_aggregates_read_nothing_of_the_period() -> None:
    ev = _events()
    stats_lo = ev.offsets[:-1] + 25
    rows, t_g, r_g = _impressions(ev, stats_lo)
    rows, t_g, r_g = rows[::2], t_g[::2], r_g[::2]  # every other period event is an impression
    base = baseline_features(ev, rows, t_g, r_g, stats_lo, LAG)
    row_user = ev.row_users()
    period = np.arange(len(ev.items)) >= stats_lo[row_user]
    imp = np.isin(np.arange(len(ev.items)), rows)
    assert (period & ~imp).sum() > 40
    perturbed = _perturb(_perturb(ev, period & ~imp, 1), period & imp, 2, items_too=False)
    moved = baseline_features(perturbed, rows, t_g, r_g, stats_lo, LAG)
    aggregates = [n for n in base.names if n.startswith(("item_", "user_"))]
    assert len(aggregates) == 6
    for n in aggregates:
        np.testing.assert_array_equal(base.column(n), moved.column(n), err_msg=n)


def test_no_feature_reads_beyond_the_lagged_history() -> None:
    """For each impression j: change (item, feedback, context) of every period event of its user at or after its
    group's first row or later than t_g - lag, and of every period event of other users -> no feature of j moves.
    (Events before the period are the aggregates' and may be newer than t_g - lag: the test above.)"""
    ev = _events(seed=2)
    stats_lo = ev.offsets[:-1] + 25
    rows, t_g, r_g = _impressions(ev, stats_lo)
    base = baseline_features(ev, rows, t_g, r_g, stats_lo, LAG)
    row_user = ev.row_users()
    idx = np.arange(len(ev.items))
    period = idx >= stats_lo[row_user]
    checked = 0
    for j in range(0, len(rows), 7):
        u = row_user[rows[j]]
        mine = row_user == u
        future = mine & ((idx >= r_g[j]) | (ev.timestamps > t_g[j] - LAG))
        change = period & (future | ~mine) & (idx != rows[j])  # the impression's own item is what is ranked
        if not change.any():
            continue
        moved = baseline_features(
            _perturb(ev, change, j), rows[j : j + 1], t_g[j : j + 1], r_g[j : j + 1], stats_lo, LAG
        )
        np.testing.assert_array_equal(moved.values[0], base.values[j], err_msg=str(j))
        checked += 1
    assert checked > 10
