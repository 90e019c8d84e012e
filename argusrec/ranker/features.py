"""Baseline features of the final ranker, per impression, without leakage (reference/ARGUS.md §6).

The article's deployment metric is the PairAccuracy gain of the production final ranker (gradient boosting) when
the ARGUS score is added to its features. This module computes a small, conventional baseline feature set for an
impression ``j`` of a period P (validation or test), shown to user ``u`` in group ``g`` (request, or time window)
with group time ``t_g`` and first row ``r_g`` (:class:`~argusrec.finetune.pairs.Pairs`):

**Aggregates over the events before P** (each user's rows before the period's first row, ``stats_lo[u]`` — for a
temporal split exactly the events before P's start time):

* ``item_log_count`` — log(1 + the item's number of events): popularity;
* ``item_mean/<signal>`` — the item's mean of each feedback signal, shrunk toward the signal's global mean
  (``(sum + k·mean) / (n + k)``, ``k = 10``);
* ``user_log_count``, ``user_mean/<signal>`` — the same per user: activity and feedback habits.

**The user's history up to the lagged state** — the events the ARGUS user state of the impression sees: the user's
rows ``k`` with ``timestamp_k <= t_g - lag`` and ``k < r_g`` (:mod:`argusrec.finetune.one_pass`):

* ``hist_log_len`` — log(1 + their number); ``recent_count_1d`` — how many fall in the day before ``t_g - lag``;
* ``since_last_s`` — ``t_g`` minus the time of the newest (recency; NaN: none);
* ``ui_count`` — how often this user had this item; ``ui_since_s`` — seconds since the last time (NaN: never);
  ``ui_sum/<signal>`` — the sum of each feedback signal over those events (e.g. earlier likes of the item).

**Context** — the impression's own context codes (``ctx/<column>``: surface, device...), categorical: known when
the request is served.

**No leakage.** An impression's features read (a) events before the start of its period (aggregates: frozen when
the period starts, as a daily batch job would; for an impression early in P some of them are newer than
``t_g - lag``, never newer than the impression), (b) events of P of its own user before its request and at least
``lag`` older than it, (c) its own item and context. Never its own feedback, its request's other impressions, or
anything later. Tests perturb everything outside these sets and check that no feature moves
(tests/ranker/test_features.py).

Letters: U users, E events, V catalog, I impressions, F features.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from argusrec.data.store import SequenceStore
from argusrec.errors import ArgusrecError

__all__ = ["SHRINK", "EventArrays", "FeatureTable", "baseline_features"]

SHRINK = 10.0  # pseudo-events of the global mean in the item / user means
DAY_S = 86_400


@dataclass(frozen=True, eq=False)
class EventArrays:
    """The columns the features read, as plain arrays (E,) each (``offsets`` (U + 1,)): a store, or a perturbed
    copy of one in tests."""

    offsets: np.ndarray
    items: np.ndarray
    timestamps: np.ndarray
    context: Mapping[str, np.ndarray]
    feedback: Mapping[str, np.ndarray]
    n_items: int

    @classmethod
    def from_store(cls, store: SequenceStore) -> EventArrays:
        return cls(
            offsets=np.asarray(store.offsets, dtype=np.int64),
            items=np.asarray(store.items, dtype=np.int64),
            timestamps=np.asarray(store.timestamps, dtype=np.int64),
            context={c: np.asarray(store[c]) for c in store.schema.context},
            feedback={s: np.asarray(store[s], dtype=np.float64) for s in store.schema.feedback},
            n_items=store.n_items,
        )

    @property
    def n_users(self) -> int:
        return len(self.offsets) - 1

    def row_users(self) -> np.ndarray:
        return np.repeat(np.arange(self.n_users, dtype=np.int64), np.diff(self.offsets))


@dataclass(frozen=True, eq=False)
class FeatureTable:
    """(I, F) float32 features, their names, and which are categorical."""

    values: np.ndarray
    names: list[str]
    categorical: list[str]

    def column(self, name: str) -> np.ndarray:
        return self.values[:, self.names.index(name)]


def _shrunk_means(
    owner: np.ndarray, n_owner: int, values: np.ndarray, mask: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per owner (item or user): (count of masked events, shrunk mean of ``values`` over its observed ones)."""
    count = np.bincount(owner[mask], minlength=n_owner).astype(np.float64)
    seen = mask & ~np.isnan(values)
    n = np.bincount(owner[seen], minlength=n_owner).astype(np.float64)
    s = np.bincount(owner[seen], weights=values[seen], minlength=n_owner)
    glob = float(values[seen].mean()) if seen.any() else 0.0
    return count, (s + SHRINK * glob) / (n + SHRINK)


def baseline_features(
    ev: EventArrays,
    rows: np.ndarray,
    group_time: np.ndarray,
    group_first: np.ndarray,
    stats_lo: np.ndarray,
    lag: int,
) -> FeatureTable:
    """The features of I impressions (module docstring).

    Args:
        ev: the events.
        rows: (I,) CSR rows of the impressions.
        group_time: (I,) ``t_g`` of each impression's group.  group_first: (I,) ``r_g`` (CSR row).
        stats_lo: (U,) each user's first row of the period: aggregates read rows ``offsets[u]:stats_lo[u]``.
        lag: seconds (the fine-tuning lag).
    """
    rows = np.asarray(rows, dtype=np.int64)
    t_g = np.asarray(group_time, dtype=np.int64)
    r_g = np.asarray(group_first, dtype=np.int64)
    offsets = ev.offsets
    n_events, n_users = len(ev.items), ev.n_users
    row_user = ev.row_users()
    user = row_user[rows]  # (I,)
    item = ev.items[rows]  # (I,)
    stats = np.arange(n_events) < np.asarray(stats_lo, dtype=np.int64)[row_user]  # (E,) before the period
    cols: dict[str, np.ndarray] = {}

    # ---- aggregates before the period
    v1 = ev.n_items + 1
    item_count, _ = _shrunk_means(ev.items, v1, np.zeros(n_events), stats)
    user_count, _ = _shrunk_means(row_user, n_users, np.zeros(n_events), stats)
    cols["item_log_count"] = np.log1p(item_count[item])
    for s, values in ev.feedback.items():
        cols[f"item_mean/{s}"] = _shrunk_means(ev.items, v1, values, stats)[1][item]
    cols["user_log_count"] = np.log1p(user_count[user])
    for s, values in ev.feedback.items():
        cols[f"user_mean/{s}"] = _shrunk_means(row_user, n_users, values, stats)[1][user]

    # ---- the lagged history: rows offsets[u] .. k, k = last row with ts <= t_g - lag, k < r_g
    ts = ev.timestamps
    t0 = int(ts.min()) if n_events else 0
    span = (int(ts.max()) - t0 + 2) if n_events else 2
    if n_users * span >= 2**62:
        raise ArgusrecError("timestamps span too long for the ranker's feature index; rebase them")
    key = row_user * span + (ts - t0 + 1)  # (E,) sorted: CSR rows are by user, then time

    def last_row_at_or_before(t: np.ndarray) -> np.ndarray:
        q = user * span + np.clip(t - t0 + 1, 0, span - 1)
        return np.searchsorted(key, q, side="right") - 1  # (I,) may fall in an earlier user: checked below

    first = offsets[user]
    k = np.minimum(last_row_at_or_before(t_g - lag), r_g - 1)  # (I,)
    has = k >= first
    hist_len = np.where(has, k - first + 1, 0)
    cols["hist_log_len"] = np.log1p(hist_len)
    day_before = np.maximum(last_row_at_or_before(t_g - lag - DAY_S), first - 1)
    cols["recent_count_1d"] = np.where(has, np.maximum(k - day_before, 0), 0).astype(np.float64)
    cols["since_last_s"] = np.where(has, t_g - ts[np.maximum(k, 0)], np.nan).astype(np.float64)

    # user-item history: events sorted by (user, item, row); composite key (user, item) * (E + 1) + row
    if n_users * v1 * (n_events + 1) >= 2**62:
        raise ArgusrecError("dataset too large for the ranker's user-item index (users x items x events >= 2^62)")
    order = np.lexsort((np.arange(n_events), ev.items, row_user))
    ui = (row_user[order] * v1 + ev.items[order]) * (n_events + 1) + order  # (E,) sorted
    q_ui = (user * v1 + item) * (n_events + 1)
    lo = np.searchsorted(ui, q_ui, side="left")
    hi = np.searchsorted(ui, q_ui + np.where(has, k, -1) + 1, side="left")  # rows <= k; none without history
    hi = np.maximum(hi, lo)
    ui_count = hi - lo
    cols["ui_count"] = ui_count.astype(np.float64)
    last_ui = order[np.maximum(hi - 1, 0)]
    cols["ui_since_s"] = np.where(ui_count > 0, t_g - ts[last_ui], np.nan).astype(np.float64)
    for s, values in ev.feedback.items():
        cs = np.concatenate([[0.0], np.cumsum(np.nan_to_num(values[order], nan=0.0))])
        cols[f"ui_sum/{s}"] = cs[hi] - cs[lo]

    # ---- context of the impression itself
    categorical = []
    for c, codes in ev.context.items():
        cols[f"ctx/{c}"] = np.asarray(codes)[rows].astype(np.float64)
        categorical.append(f"ctx/{c}")
    names = list(cols)
    values = np.stack([cols[n] for n in names], axis=1).astype(np.float32) if names else np.zeros((len(rows), 0))
    return FeatureTable(values=values, names=names, categorical=categorical)
