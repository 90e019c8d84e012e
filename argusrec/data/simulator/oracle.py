"""The exact oracle: what the simulator drew with, recomputed for any event from its ids and time.

Taste, true affinity and feedback probabilities of events, the organic (search) and logging-policy
distributions over the catalog, and the library replay pool. Ids are external (``index + 1``);
timestamps are floored to the event's day as the simulator did.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from argusrec.data.simulator.config import LIBRARY, POSITIVE_PLAY_RATIO, SECONDS_PER_DAY
from argusrec.data.simulator.tastes import policy_view, taste_at

if TYPE_CHECKING:
    from argusrec.data.simulator.world import World


def event_day(world: World, timestamps: np.ndarray) -> np.ndarray:
    """(n,) timestamps -> (n,) int64 day index, the time at which the simulator evaluated tastes."""
    return (np.asarray(timestamps, dtype=np.int64) - world.config.start_timestamp) // SECONDS_PER_DAY


def taste(world: World, user_ids: np.ndarray, timestamps: np.ndarray, *, continuous: bool = False) -> np.ndarray:
    """Taste of users (n,) external ids at (n,) timestamps: (n, d) float32.

    By default at the start of the event's day, which is what the simulator used; ``continuous=True``
    evaluates the closed form at the exact time instead.
    """
    users = np.asarray(user_ids, dtype=np.int64) - 1
    uniq, rows = np.unique(users, return_inverse=True)
    if continuous:
        t = (np.asarray(timestamps, dtype=np.float64) - world.config.start_timestamp) / SECONDS_PER_DAY
    else:
        t = event_day(world, timestamps).astype(np.float64)
    return taste_at(world.user_params(uniq), rows, t)


def affinity(world: World, user_ids: np.ndarray, timestamps: np.ndarray, item_ids: np.ndarray) -> np.ndarray:
    """True affinity a(u, t, i) of n events: (n,) float32 (the ``true_affinity`` column)."""
    items = np.asarray(item_ids, dtype=np.int64) - 1
    u = taste(world, user_ids, timestamps)
    x = np.einsum("ij,ij->i", u, world.centroids[world.item_genre[items]])
    y = np.einsum("ij,ij->i", u, world.item_offset[items])
    return world.genre_affinity(x) + world.item_affinity(y) + world.item_quality[items]


def feedback_probabilities(
    world: World,
    user_ids: np.ndarray,
    timestamps: np.ndarray,
    item_ids: np.ndarray,
    surfaces: np.ndarray,
    devices: np.ndarray,
) -> dict[str, np.ndarray]:
    """Exact ``skip_prob`` / ``like_prob`` / ``dislike_prob`` (and conditionals) of n events, (n,) each.

    ``surfaces`` / ``devices`` are names (n,), as in the event table.
    """
    users = np.asarray(user_ids, dtype=np.int64) - 1
    uniq, rows = np.unique(users, return_inverse=True)
    a = affinity(world, user_ids, timestamps, item_ids)
    s = _codes(world.surfaces, surfaces)
    dv = _codes(world.devices, devices)
    return world.feedback_probs(a, s, dv, world.user_params(uniq), rows)


def organic_distribution(world: World, user_id: int, timestamp: int) -> np.ndarray:
    """Exact P(item) of a search pick: (V,) float64 over item indices (item_id - 1).

    P(i) ∝ pop_i^gamma · exp(beta · a(u, t, i)).
    """
    v = world.n_items
    a = affinity(world, np.full(v, user_id), np.full(v, timestamp), np.arange(1, v + 1)).astype(np.float64)
    logw = world.config.taste.organic_pop_power * np.log(world.item_popularity) + world.config.taste.organic_beta * a
    w = np.exp(logw - logw.max())
    return w / w.sum()


def policy_distribution(world: World, user_id: int, timestamp: int, surface: str) -> np.ndarray:
    """Exact logging-policy distribution pi(item) of a request: (V,) float64 over item indices.

    ``pi(i) = pop_i (eps + (1 - eps) exp(l_g(i)) / Z)`` with ``l_g = beta_s <û, c_g>`` and
    ``Z = sum_g P_g exp(l_g)``. ``timestamp`` is the request's time (its first event). A slate's k-th
    item was drawn from pi without the slate's earlier items, so its ``propensity`` is
    ``pi(i) / (1 - sum of pi over the earlier items)``.
    """
    spec = world.config.surfaces[surface]
    day = event_day(world, np.array([timestamp]))
    u_hat = policy_view(world.user_params(np.array([user_id - 1])), np.array([0]), day, world.config.policy.lag_days)
    logits = spec.policy_beta * (u_hat[0].astype(np.float64) @ world.centroids.T.astype(np.float64))  # (G,)
    e = np.exp(logits - logits.max())
    phi = spec.policy_epsilon + (1 - spec.policy_epsilon) * e / (e @ world.genre_popularity)
    return world.item_popularity * phi[world.item_genre]


def replay_pool(world: World, surfaces: np.ndarray, played_ratio: np.ndarray, like: np.ndarray) -> np.ndarray:
    """Which of one user's events (n,) in order are in the library replay pool: (n,) bool.

    Positive = liked or played >= 80%. The pool holds positive events from non-library surfaces plus
    the user's very first positive event whatever its surface (a library visit with an empty library
    falls back to a search pick, and such a pick can seed the library). A library event replays an
    item drawn uniformly from the pool events before it (or is such a fallback when there are none).
    """
    lib = world.surface_kind[_codes(world.surfaces, surfaces)] == LIBRARY
    positive = (np.asarray(like) > 0.5) | (np.asarray(played_ratio) >= POSITIVE_PLAY_RATIO)
    first = np.zeros_like(positive)
    if positive.any():
        first[np.argmax(positive)] = True
    return positive & (~lib | first)


def _codes(names: list[str], values: np.ndarray) -> np.ndarray:
    """(n,) names -> (n,) int64 codes into ``names``; unknown names raise KeyError."""
    uniq, inverse = np.unique(np.asarray(values).astype(str), return_inverse=True)
    lookup = {n: i for i, n in enumerate(names)}
    return np.array([lookup[str(v)] for v in uniq], dtype=np.int64)[inverse.ravel()]
