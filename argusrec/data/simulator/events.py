"""One chunk of events: lay out sessions, pick items (recommendation, search, library), draw
feedback and place timestamps (:func:`simulate_chunk`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from argusrec.data.simulator.config import LIBRARY, POSITIVE_PLAY_RATIO, SEARCH
from argusrec.data.simulator.layout import _Layout, _layout, _schedule
from argusrec.data.simulator.policy import _recommend
from argusrec.data.simulator.rng import S_FEEDBACK, S_PLAY, S_REPLAY
from argusrec.data.simulator.sampling import _organic
from argusrec.data.simulator.tastes import _GenreDots, rowdot, taste_at

if TYPE_CHECKING:
    from argusrec.data.simulator.world import UserParams, World


def simulate_chunk(world: World, lo: int, hi: int) -> dict[str, np.ndarray]:
    """Events of users ``lo..hi-1`` (0-based) as numpy columns (E,), in (user, time) order.

    Surface and device are codes into ``world.surfaces`` / ``world.devices``; ids are external.
    """
    params = world.user_params(np.arange(lo, hi))
    lay = _layout(world, params, lo, hi)
    e = len(lay.ev)
    cell_user, cell_day = lay.user[lay.cell_first], lay.day[lay.cell_first]
    taste_c = taste_at(params, cell_user, cell_day.astype(np.float64))  # (C, d)
    dots = _GenreDots.of(params, world.centroids)
    genre_aff = world.genre_affinity(dots.at(params, cell_user, cell_day))  # (G, C) float32
    kind = world.surface_kind[lay.surface]

    item = np.full(e, -1, dtype=np.int64)
    out: dict[str, np.ndarray] = {
        "propensity": np.full(e, np.nan, dtype=np.float32),
        "request_id": np.full(e, -1, dtype=np.int64),
        **{k: np.zeros(e, dtype=np.float32) for k in _FEEDBACK_COLUMNS},
    }
    _recommend(world, params, dots, lay, kind, item, out)
    search = np.flatnonzero(kind == SEARCH)
    item[search] = _organic(world, lay.ev[search], lay.cell[search], taste_c, genre_aff)
    fb = _Feedback(world, params, lay, taste_c, genre_aff, item, out)
    fb(np.flatnonzero(kind != LIBRARY))
    _library(world, lay, kind, item, out, fb, taste_c, genre_aff)

    played = np.maximum(1, np.rint(out["played_ratio"] * world.track_length[item])).astype(np.int64)
    out.update(
        user_id=lay.users[lay.user] + 1,
        item_id=item + 1,
        timestamp=_schedule(world, lay, played),
        surface=lay.surface,
        device=lay.device,
    )
    return out


_FEEDBACK_COLUMNS = (
    "played_ratio",
    "skip",
    "like",
    "dislike",
    "true_affinity",
    "like_prob",
    "dislike_prob",
    "skip_prob",
)


class _Feedback:
    """Computes affinity and feedback of any subset of a chunk's events, writing into ``out``."""

    def __init__(
        self,
        world: World,
        params: UserParams,
        lay: _Layout,
        taste_c: np.ndarray,
        genre_aff: np.ndarray,
        item: np.ndarray,
        out: dict[str, np.ndarray],
    ) -> None:
        self.world, self.params, self.lay, self.taste_c = world, params, lay, taste_c
        self.genre_aff, self.item, self.out = genre_aff.ravel(), item, out  # (G, C) flattened
        self.n_cells = genre_aff.shape[1]

    def __call__(self, idx: np.ndarray) -> None:
        w, lay, out, f = self.world, self.lay, self.out, self.world.config.feedback
        it, cell = self.item[idx], lay.cell[idx]
        a = (
            self.genre_aff[w.item_genre[it] * self.n_cells + cell]
            + w.item_affinity(rowdot(self.taste_c, cell, w.item_offset, it))
            + w.item_quality[it]
        )
        p = w.feedback_probs(a, lay.surface[idx], lay.device[idx], self.params, lay.user[idx])
        u_skip, u_react = w.rng.uniform24(S_FEEDBACK, lay.ev[idx])
        u_play, _ = w.rng.uniform24(S_PLAY, lay.ev[idx])
        skip = u_skip < p["skip_prob"]
        like = ~skip & (u_react < p["like_given_play"])  # one uniform serves both: the branches exclude
        dislike = skip & (u_react < p["dislike_given_skip"])
        full = p["full_play"]
        lo = np.float32(f.listen_play_min)
        listened = np.where(u_play < full, np.float32(1.0), lo + (1 - lo) * (u_play - full) / (1 - full))
        out["played_ratio"][idx] = np.where(skip, np.float32(f.skip_play_max) * u_play * u_play, listened)
        out["skip"][idx] = skip
        out["like"][idx] = like
        out["dislike"][idx] = dislike
        out["true_affinity"][idx] = a
        for k in ("like_prob", "dislike_prob", "skip_prob"):
            out[k][idx] = p[k]


def _count_before(flag: np.ndarray, lay: _Layout) -> np.ndarray:
    """(E,) bool -> (E,) int64 number of flagged events earlier in the same user."""
    before = np.cumsum(flag) - flag
    return before - before[lay.user_start][lay.user]


def _library(
    world: World,
    lay: _Layout,
    kind: np.ndarray,
    item: np.ndarray,
    out: dict[str, np.ndarray],
    fb: _Feedback,
    taste_c: np.ndarray,
    genre_aff: np.ndarray,
) -> None:
    """Library events: replay a uniform earlier pool event, or fall back to a search pick (empty pool).

    The pool is positive non-library events plus fallback events that came out positive; a fallback
    happens only before the user's first pool event, so this resolves in closed form: the fallbacks
    are the library events before the first non-library positive, up to their own first positive.
    """
    lib = kind == LIBRARY
    if not lib.any():
        return
    positive = (out["like"] > 0.5) | (out["played_ratio"] >= POSITIVE_PLAY_RATIO)
    pool = positive & ~lib
    maybe = np.flatnonzero(lib & (_count_before(pool, lay) == 0))
    item[maybe] = _organic(world, lay.ev[maybe], lay.cell[maybe], taste_c, genre_aff)
    fb(maybe)
    hit = np.zeros(len(lib), dtype=bool)
    hit[maybe] = (out["like"][maybe] > 0.5) | (out["played_ratio"][maybe] >= POSITIVE_PLAY_RATIO)
    fallback = maybe[_count_before(hit, lay)[maybe] == 0]  # up to and including the first positive
    pool[fallback] = hit[fallback]
    replay = np.flatnonzero(lib)
    replay = replay[~np.isin(replay, fallback, assume_unique=True)]
    if not replay.size:
        return
    n_before = _count_before(pool, lay)[replay]  # >= 1 by construction
    members = np.flatnonzero(pool)
    first_member = (np.cumsum(pool) - pool)[lay.user_start]  # index in ``members`` of each user's first
    pick = (world.rng.uniform(S_REPLAY, lay.ev[replay]) * n_before).astype(np.int64)
    item[replay] = item[members[first_member[lay.user[replay]] + pick]]
    fb(replay)
