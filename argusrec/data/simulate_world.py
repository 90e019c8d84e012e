"""The simulator's latent world and its exact oracle (see :mod:`argusrec.data.simulate` for the model).

Everything the simulator knows and the data does not show lives here: genre centroids, item vectors,
popularity and quality, every user's taste trajectory, biases and preferences, and the logging
policy. The simulator and the oracle share these formulas (affinity, feedback, policy), so the
recorded truth columns and the recomputations below agree to float32 precision (~1e-6 relative).

Ids: external ``user_id`` / ``item_id`` / ``artist_id`` are ``index + 1``; the arrays here are indexed
by ``index`` (0-based). Time: ``t`` in days since ``config.start_timestamp``. The simulator evaluates
tastes once per UTC day of the event (``t = day index``), so the oracle takes raw timestamps and
floors them the same way.

Randomness: the catalog comes from ``numpy.random.default_rng``; everything per user, per day and per
event comes from :class:`CounterRNG`, a stateless hash of ``(seed, stream, index)``. A user's data
therefore does not depend on which chunk of users it is generated with.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from argusrec.errors import ArgusrecError

if TYPE_CHECKING:
    from argusrec.data.simulate import SimulationConfig

SECONDS_PER_DAY = 86_400
LATENT_FORMAT = "argusrec-simulator-latent"
LATENT_VERSION = 1
KINDS = ("library", "search", "recommendation")  # surface kinds, coded 0, 1, 2
LIBRARY, SEARCH, RECOMMENDATION = 0, 1, 2
POSITIVE_PLAY_RATIO = 0.8  # "mostly played": an event counts as positive (library material) above this

_MASK64 = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15


# ---------------------------------------------------------------------------------------- randomness
def _fmix64(x: np.ndarray) -> np.ndarray:
    """MurmurHash3's 64-bit finaliser, in place on a uint64 array; a bijection with full avalanche."""
    x ^= x >> 33
    x *= 0xFF51AFD7ED558CCD
    x ^= x >> 33
    x *= 0xC4CEB9FE1A85EC53
    x ^= x >> 33
    return x


def _fmix64_int(x: int) -> int:
    x &= _MASK64
    x ^= x >> 33
    x = (x * 0xFF51AFD7ED558CCD) & _MASK64
    x ^= x >> 33
    x = (x * 0xC4CEB9FE1A85EC53) & _MASK64
    return x ^ (x >> 33)


class CounterRNG:
    """Stateless random numbers: ``bits(stream, i) = fmix64(i * golden + key(seed, stream))``.

    Each (stream, index) pair gets its own value, so a random quantity is addressed by what it belongs
    to (user, event, rejection round) instead of by how many numbers were drawn before it. This is what
    makes the output independent of the chunking and lets the oracle regenerate any user on demand.
    """

    def __init__(self, seed: int) -> None:
        self.seed = int(seed)

    def _key(self, stream: int) -> int:
        return _fmix64_int(_fmix64_int(self.seed * _GOLDEN + 1) ^ (stream * 0xD1B54A32D192ED03))

    def bits(self, stream: int, index: np.ndarray, sub: np.ndarray | None = None) -> np.ndarray:
        """(n,) non-negative int -> (n,) uint64 random bits; ``sub`` (n,) adds a second address
        (e.g. the attempt number of a rejection sampler)."""
        x = np.asarray(index).astype(np.uint64)
        x *= _GOLDEN
        if sub is not None:
            x += np.asarray(sub).astype(np.uint64) * np.uint64(0xD6E8FEB86659FD93)
        x += np.uint64(self._key(stream))
        return _fmix64(x)

    def uniform(self, stream: int, index: np.ndarray, sub: np.ndarray | None = None) -> np.ndarray:
        """(n,) -> (n,) float64 uniform on [0, 1) with 53 random bits."""
        return (self.bits(stream, index, sub) >> 11).astype(np.float64) * 2.0**-53

    def uniform24(self, stream: int, index: np.ndarray, sub: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(n,) -> two independent (n,) float32 uniforms on [0, 1), 24 bits each (exact in float32)."""
        b = self.bits(stream, index, sub)
        hi = (b >> 40).astype(np.float32) * np.float32(2.0**-24)
        lo = (b & 0xFFFFFF).astype(np.float32) * np.float32(2.0**-24)
        return hi, lo

    def normal(self, stream: int, index: np.ndarray) -> np.ndarray:
        """(n,) -> (n,) float64 standard normal (Box-Muller on the two 32-bit halves of one hash)."""
        b = self.bits(stream, index)
        u1 = ((b >> 32).astype(np.float64) + 1.0) * 2.0**-32  # (0, 1]: log is finite
        u2 = (b & 0xFFFFFFFF).astype(np.float64) * 2.0**-32
        return np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)

    def normals(self, stream: int, rows: np.ndarray, k: int) -> np.ndarray:
        """(n,) row ids -> (n, k) float64 standard normals, element (r, j) addressed by ``r * k + j``."""
        index = np.asarray(rows, dtype=np.int64)[:, None] * k + np.arange(k)
        return self.normal(stream, index.ravel()).reshape(len(rows), k)


# Streams: one per random quantity; rejection samplers address attempts with ``sub``.
S_ACTIVITY, S_JOIN, S_JOIN_DAY, S_CHURN, S_CHURN_DAY = 1, 2, 3, 4, 5
S_CORE, S_GENRES, S_DRIFT, S_POLICY_NOISE, S_BIASES, S_PREFS = 10, 11, 12, 13, 14, 15
S_DAY_WEIGHT, S_SYSTEMATIC, S_SESSION, S_DEVICE, S_SURFACE, S_OFFSET, S_DAY_PICK = 20, 21, 22, 23, 24, 25, 26
S_FEEDBACK, S_PLAY, S_REPLAY = 30, 31, 32
S_ORGANIC, S_POLICY = 40, 50  # each uses base, base + 1, base + 2; addressed by (event, attempt)


# ---------------------------------------------------------------------------------------- alias tables
def alias_table(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Walker's alias table for weights ``w`` (n,): (prob (n,) float64, alias (n,) int64).

    Vectorised pairing: each round lays the small slots' deficits end to end against the large slots'
    spare mass and gives every small slot the donor under its starting point; donors that drop below 1
    become small in the next round. Draw: slot ``j`` uniform, keep it with ``prob[j]``, else ``alias[j]``.
    """
    n = len(w)
    q = np.asarray(w, dtype=np.float64) * (n / float(np.sum(w)))
    prob = np.ones(n)
    alias = np.arange(n)
    small = np.flatnonzero(q < 1.0)
    large = np.flatnonzero(q >= 1.0)
    while small.size and large.size:
        deficit = 1.0 - q[small]
        start = np.cumsum(deficit) - deficit
        spare = np.cumsum(q[large] - 1.0)
        k = np.searchsorted(spare, start, side="right")
        ok = k < large.size
        if not ok.any():  # only rounding dust left: the remaining slots keep themselves
            break
        done = small[ok]
        prob[done] = q[done]
        alias[done] = large[k[ok]]
        q[large] -= np.bincount(k[ok], weights=deficit[ok], minlength=large.size)
        fell = q[large] < 1.0
        small = np.concatenate([small[~ok], large[fell]])
        large = large[~fell]
    return prob, alias


@dataclass
class GroupedAlias:
    """O(1) sampling of an item from one of several groups, each with its own item weights.

    ``offsets`` (G + 1,) delimit each group's slots; ``prob`` (V,), ``item`` (V,) and ``alias`` (V,)
    give each slot's keep probability, own item and alias item (item indices).
    """

    offsets: np.ndarray
    prob: np.ndarray
    item: np.ndarray
    alias: np.ndarray

    @classmethod
    def build(cls, weights: np.ndarray, group: np.ndarray, n_groups: int) -> GroupedAlias:
        """weights (V,) >= 0 and group (V,) in [0, n_groups): one table per group."""
        order = np.argsort(group, kind="stable")
        offsets = np.concatenate([[0], np.cumsum(np.bincount(group, minlength=n_groups))])
        prob = np.ones(len(order))
        alias = order.copy()
        for g in range(n_groups):  # G is small (genres); each table is vectorised
            lo, hi = offsets[g], offsets[g + 1]
            if hi > lo:
                p, a = alias_table(weights[order[lo:hi]])
                prob[lo:hi] = p
                alias[lo:hi] = order[lo + a]
        return cls(offsets=offsets, prob=prob, item=order, alias=alias)

    def sample(self, group: np.ndarray, u: np.ndarray) -> np.ndarray:
        """group (n,), u (n,) float64 uniform -> (n,) item indices; one uniform gives slot and coin."""
        size = self.offsets[group + 1] - self.offsets[group]
        x = u * size
        j = np.minimum(x.astype(np.int64), size - 1)
        slot = self.offsets[group] + j
        keep = (x - j) < self.prob[slot]
        return np.where(keep, self.item[slot], self.alias[slot])


# ---------------------------------------------------------------------------------------- the world
@dataclass
class UserParams:
    """Latent parameters of n users (rows follow the requested user indices)."""

    core: np.ndarray  # (n, d) float32 stable part of the taste
    drift_cos: np.ndarray  # (n, d) float32
    drift_sin: np.ndarray  # (n, d) float32
    omega: np.ndarray  # (n,) float64 drift angular speed, radians per day
    phase: np.ndarray  # (n,) float64
    policy_noise: np.ndarray  # (n, d) float32 the logging policy's fixed error about the user
    skip_bias: np.ndarray  # (n,) float32 logit offsets
    like_bias: np.ndarray  # (n,) float32
    dislike_bias: np.ndarray  # (n,) float32
    session_hazard: np.ndarray  # (n,) float64 P(an event starts a new session)
    daily_events: np.ndarray  # (n,) float64 typical events on an active day
    surface_pref: np.ndarray  # (n, S) float64 rows sum to 1
    device_pref: np.ndarray  # (n, Dv) float64 rows sum to 1


@dataclass
class World:
    """Catalog, user activity and parameters, and the derived sampling tables of one simulation."""

    config: SimulationConfig
    centroids: np.ndarray  # (G, d) float32 unit genre centroids
    artist_genre: np.ndarray  # (A,) int32
    item_artist: np.ndarray  # (V,) int32
    item_genre: np.ndarray  # (V,) int32
    item_offset: np.ndarray  # (V, d) float32 item vector minus its genre centroid
    item_quality: np.ndarray  # (V,) float32
    item_popularity: np.ndarray  # (V,) float64 sums to 1 (Zipf over a random permutation)
    track_length: np.ndarray  # (V,) float32 seconds
    user_events: np.ndarray  # (U,) int64 events per user (sums to n_events)
    user_first_day: np.ndarray  # (U,) int32 active window [first, last]
    user_last_day: np.ndarray  # (U,) int32
    stored_users: dict[str, np.ndarray] | None = None  # UserParams fields for all users (loaded latent)

    def __post_init__(self) -> None:
        cfg = self.config
        self.rng = CounterRNG(cfg.seed)
        self.n_genres, self.dim = self.centroids.shape
        self.n_items = len(self.item_genre)
        self.n_users = len(self.user_events)
        self.surfaces = list(cfg.surfaces)
        self.devices = list(cfg.devices)
        self.surface_kind = np.array([KINDS.index(s.kind) for s in cfg.surfaces.values()])
        self.user_offsets = np.concatenate([[0], np.cumsum(self.user_events)]).astype(np.int64)
        # organic proposal weight w_i = pop_i^gamma * exp(beta * quality_i), see module docs of simulate
        t = cfg.taste
        self.organic_weight = self.item_popularity**t.organic_pop_power * np.exp(
            t.organic_beta * self.item_quality.astype(np.float64)
        )
        g = self.n_genres
        self.genre_popularity = np.bincount(self.item_genre, self.item_popularity, minlength=g)  # (G,)
        self.genre_organic = np.bincount(self.item_genre, self.organic_weight, minlength=g)  # (G,)
        self.organic_alias = GroupedAlias.build(self.organic_weight, self.item_genre, g)
        self.policy_alias = GroupedAlias.build(self.item_popularity, self.item_genre, g)

    # ------------------------------------------------------------------ users
    def user_params(self, users: np.ndarray) -> UserParams:
        """Parameters of users (n,) 0-based indices: read from the stored latent or regenerated."""
        users = np.asarray(users, dtype=np.int64)
        if self.stored_users is not None:
            return UserParams(**{f.name: np.asarray(self.stored_users[f.name][users]) for f in fields(UserParams)})
        return _generate_user_params(self, users)

    # ------------------------------------------------------------------ shared formulas
    def genre_affinity(self, x: np.ndarray) -> np.ndarray:
        """<u, c_g> (any shape) -> A_g tanh(x / s_g), the genre part of the true affinity."""
        t = self.config.taste
        return np.float32(t.genre_strength) * np.tanh(x.astype(np.float32) / np.float32(t.genre_scale))

    def item_affinity(self, y: np.ndarray) -> np.ndarray:
        """<u, e_i> (any shape) -> A_e tanh(y / s_e), the item part of the true affinity."""
        t = self.config.taste
        return np.float32(t.item_strength) * np.tanh(y.astype(np.float32) / np.float32(t.item_scale))

    def feedback_probs(
        self,
        affinity: np.ndarray,
        surface: np.ndarray,
        device: np.ndarray,
        params: UserParams,
        rows: np.ndarray,
    ) -> dict[str, np.ndarray]:
        """Exact feedback probabilities of n events, all (n,) float32.

        ``skip_prob``; ``like_given_play`` and ``dislike_given_skip`` (the conditionals the simulator
        draws with); the marginals ``like_prob = (1 - skip) * like|play`` and ``dislike_prob = skip *
        dislike|skip``; ``full_play`` (probability a non-skipped track is played to the end).
        ``surface``/``device`` are codes, ``rows`` index ``params``.
        """
        f = self.config.feedback
        s_skip = np.array([s.skip_bias for s in self.config.surfaces.values()], np.float32)
        s_like = np.array([s.like_bias for s in self.config.surfaces.values()], np.float32)
        d_skip = np.array([d.skip_bias for d in self.config.devices.values()], np.float32)
        d_like = np.array([d.like_bias for d in self.config.devices.values()], np.float32)
        a = affinity.astype(np.float32)
        skip = _sigmoid(
            np.float32(f.skip_base)
            - np.float32(f.skip_slope) * a
            + s_skip[surface]
            + d_skip[device]
            + params.skip_bias[rows]
        )
        like = _sigmoid(
            np.float32(f.like_base)
            + np.float32(f.like_slope) * a
            + s_like[surface]
            + d_like[device]
            + params.like_bias[rows]
        )
        dislike = _sigmoid(np.float32(f.dislike_base) - np.float32(f.dislike_slope) * a + params.dislike_bias[rows])
        full = _sigmoid(np.float32(f.full_play_base) + np.float32(f.full_play_slope) * a)
        return {
            "skip_prob": skip,
            "like_given_play": like,
            "dislike_given_skip": dislike,
            "like_prob": (1 - skip) * like,
            "dislike_prob": skip * dislike,
            "full_play": full,
        }


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return (1 / (1 + np.exp(-x))).astype(np.float32)


def taste_at(params: UserParams, rows: np.ndarray, t_days: np.ndarray) -> np.ndarray:
    """Taste u(t) = core + cos(w t + phi) drift_cos + sin(w t + phi) drift_sin: (n, d) float32.

    ``rows`` (n,) index ``params``; ``t_days`` (n,) days since the start (any real number).
    """
    angle = params.omega[rows] * np.asarray(t_days, dtype=np.float64) + params.phase[rows]
    c = np.cos(angle).astype(np.float32)[:, None]
    s = np.sin(angle).astype(np.float32)[:, None]
    core = np.take(params.core, rows, axis=0)
    return core + c * np.take(params.drift_cos, rows, axis=0) + s * np.take(params.drift_sin, rows, axis=0)


def policy_view(params: UserParams, rows: np.ndarray, day: np.ndarray, lag_days: float) -> np.ndarray:
    """The logging policy's model of the user on ``day``: the taste ``lag_days`` earlier plus a fixed error.

    (n,) rows, (n,) day -> (n, d) float32.
    """
    stale = taste_at(params, rows, np.asarray(day, dtype=np.float64) - lag_days)
    return stale + np.take(params.policy_noise, rows, axis=0)


def project(u: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """(n, d) tastes, (G, d) centroids -> (G, n) float32 dot products ``<c_g, u_k>``.

    A fixed-order loop over d instead of BLAS: BLAS picks kernels (and threads) by matrix shape, so
    the last bits of a user's result would depend on how many users share the chunk; this keeps the
    output independent of ``chunk_users``.
    """
    ut = np.ascontiguousarray(u.T, dtype=np.float32)  # (d, n)
    c = np.asarray(centroids, dtype=np.float32)
    out = c[:, :1] * ut[0]
    for k in range(1, len(ut)):  # d is small (the latent dimension)
        out += c[:, k : k + 1] * ut[k]
    return out


def rowdot(a: np.ndarray, ai: np.ndarray, b: np.ndarray, bi: np.ndarray, block: int = 1 << 16) -> np.ndarray:
    """(n,) float32 with ``out[k] = <a[ai[k]], b[bi[k]]>``; blocked so the gathered rows stay small."""
    out = np.empty(len(ai), dtype=np.float32)
    for s in range(0, len(ai), block):  # bounded number of blocks; np.take is ~10x faster than a[idx]
        x = np.take(a, ai[s : s + block], axis=0)
        y = np.take(b, bi[s : s + block], axis=0)
        out[s : s + block] = np.einsum("ij,ij->i", x, y)
    return out


# ---------------------------------------------------------------------------------------- construction
def daily_capacity(config: SimulationConfig) -> int:
    """Most events one user can have on one day: every track played in full still fits in the day."""
    per_event = config.catalog.track_length_max_s + config.activity.min_session_gap_s
    return int((SECONDS_PER_DAY - 3_600) // per_event)  # one hour of slack for rounding


def build_world(config: SimulationConfig) -> World:
    """Draw the catalog and allocate events to users for ``config`` (a resolved SimulationConfig)."""
    cfg, cat = config, config.catalog
    assert cfg.n_genres and cfg.n_artists and cfg.n_items, "sizes are filled in by SimulationConfig"
    rng = np.random.default_rng(np.random.SeedSequence([cfg.seed, 0x5EED]))
    g, d, a, v = cfg.n_genres, cfg.dim, cfg.n_artists, cfg.n_items
    centroids = rng.standard_normal((g, d))
    centroids /= np.linalg.norm(centroids, axis=1, keepdims=True)
    genre_share = rng.dirichlet(np.full(g, 2.0))
    # every genre gets an artist and every artist an item, the rest follow skewed shares
    artist_genre = np.concatenate([np.arange(g), rng.choice(g, a - g, p=genre_share)])
    artist_offset = rng.standard_normal((a, d)) * (cat.artist_spread / math.sqrt(d))
    artist_weight = rng.lognormal(0.0, 1.0, a)
    item_artist = rng.permutation(
        np.concatenate([np.arange(a), rng.choice(a, v - a, p=artist_weight / artist_weight.sum())])
    )
    item_offset = artist_offset[item_artist] + rng.standard_normal((v, d)) * (cat.item_spread / math.sqrt(d))
    rank = rng.permutation(v) + 1.0
    popularity = rank**-cat.zipf_exponent
    popularity /= popularity.sum()
    logpop = np.log(popularity)
    zpop = (logpop - logpop.mean()) / max(logpop.std(), 1e-12)
    # quality correlates with popularity (rho = 0.5) so popularity is a fair but imperfect baseline
    quality = cat.quality_std * np.clip(0.5 * zpop + math.sqrt(0.75) * rng.standard_normal(v), -3, 3)
    length = np.clip(
        np.round(cat.track_length_median_s * np.exp(cat.track_length_sigma * rng.standard_normal(v))),
        cat.track_length_min_s,
        cat.track_length_max_s,
    )
    first, last, events = _allocate_users(cfg)
    return World(
        config=cfg,
        centroids=centroids.astype(np.float32),
        artist_genre=artist_genre.astype(np.int32),
        item_artist=item_artist.astype(np.int32),
        item_genre=artist_genre[item_artist].astype(np.int32),
        item_offset=item_offset.astype(np.float32),
        item_quality=quality.astype(np.float32),
        item_popularity=popularity,
        track_length=length.astype(np.float32),
        user_events=events,
        user_first_day=first,
        user_last_day=last,
    )


def _allocate_users(cfg: SimulationConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Active windows and exact event counts of all users: (U,) first day, (U,) last day, (U,) events.

    Expected events ∝ activity × window length; at least 1 and at most (daily cap - 1) × window days
    per user (what the day scheduler can fit); integer counts by largest remainder sum to n_events.
    """
    rng, act, days = CounterRNG(cfg.seed), cfg.activity, cfg.days
    assert cfg.n_users, "sizes are filled in by SimulationConfig"
    users = np.arange(cfg.n_users, dtype=np.int64)
    first = np.where(
        rng.uniform(S_JOIN, users) < act.join_fraction, (rng.uniform(S_JOIN_DAY, users) * days).astype(np.int64), 0
    )
    stay = (rng.uniform(S_CHURN_DAY, users) * (days - first)).astype(np.int64)
    last = np.where(rng.uniform(S_CHURN, users) < act.churn_fraction, first + stay, days - 1)
    span = last - first + 1
    weight = np.exp(act.activity_sigma * rng.normal(S_ACTIVITY, users)) * span
    cap = (daily_capacity(cfg) - 1) * span - 1  # on top of the guaranteed first event
    extra = cfg.n_events - cfg.n_users
    if cap.sum() < extra:
        raise ArgusrecError(
            f"cannot fit {cfg.n_events:,} events into {cfg.n_users:,} users over {days} days "
            f"(at most {int(cap.sum() + cfg.n_users):,} with the daily cap); raise n_users or days"
        )
    target = _capped_shares(weight, cap.astype(np.float64), float(extra))
    counts = np.floor(target).astype(np.int64)
    short = extra - int(counts.sum())
    if short:  # largest remainders (stable, so deterministic); they are below their caps by construction
        counts[np.argsort(-(target - counts), kind="stable")[:short]] += 1
    return first.astype(np.int32), last.astype(np.int32), counts + 1


def _capped_shares(weight: np.ndarray, cap: np.ndarray, total: float) -> np.ndarray:
    """Real shares x ∝ weight with x <= cap and sum(x) = total (water-filling, a few rounds).

    Needs ``cap.sum() >= total``; each round caps the users that the proportional share overfills.
    """
    capped = np.zeros(len(weight), dtype=bool)
    while True:
        free = ~capped
        if not free.any():
            return cap.copy()
        lam = (total - cap[capped].sum()) / weight[free].sum()
        x = np.where(capped, cap, weight * lam)
        over = free & (x > cap)
        if not over.any():
            return x
        capped |= over


def _generate_user_params(world: World, users: np.ndarray) -> UserParams:
    """Regenerate the latent parameters of ``users`` (n,) from the counter-based RNG."""
    cfg, rng, d, n = world.config, world.rng, world.dim, len(users)
    t, act = cfg.taste, cfg.activity
    # tastes sit near popular genres more often (weight sqrt of the genre's popularity)
    genre_cdf = np.cumsum(np.sqrt(world.genre_popularity))
    genre_cdf /= genre_cdf[-1]
    gu = rng.uniform(S_GENRES, (users[:, None] * 5 + np.arange(5)).ravel()).reshape(n, 5)
    genres = np.minimum(np.searchsorted(genre_cdf, gu[:, :4], side="right"), world.n_genres - 1)
    c = world.centroids.astype(np.float64)
    mix = 0.5 + 0.5 * gu[:, 4:5]
    core = mix * c[genres[:, 0]] + (1 - mix) * c[genres[:, 1]]
    core += rng.normals(S_CORE, users, d) * (t.core_noise / math.sqrt(d))
    du = rng.uniform(S_DRIFT, (users[:, None] * 2 + np.arange(2)).ravel()).reshape(n, 2)
    lo, hi = np.log(t.drift_period_days[0]), np.log(t.drift_period_days[1])
    period = np.exp(lo + (hi - lo) * du[:, 0])
    bias = rng.normals(S_BIASES, users, 5)
    f = cfg.feedback
    n_s, n_d = len(world.surfaces), len(world.devices)
    z = rng.normals(S_PREFS, users, n_s + n_d)
    surface_share = np.array([s.share for s in cfg.surfaces.values()])
    device_share = np.array([v.share for v in cfg.devices.values()])
    # logistic-normal around the global mix (a Dirichlet stand-in that needs no gamma variates)
    surface_pref = _softmax(np.log(surface_share) + act.surface_pref_std * z[:, :n_s])
    device_pref = _softmax(np.log(device_share) + act.device_pref_std * z[:, n_s:])
    mean_len = act.mean_session_length * np.exp(0.5 * bias[:, 3] - 0.125)  # per-user session habit
    return UserParams(
        core=core.astype(np.float32),
        drift_cos=(t.drift_amplitude * c[genres[:, 2]]).astype(np.float32),
        drift_sin=(t.drift_amplitude * c[genres[:, 3]]).astype(np.float32),
        omega=2 * np.pi / period,
        phase=2 * np.pi * du[:, 1],
        policy_noise=(rng.normals(S_POLICY_NOISE, users, d) * (cfg.policy.noise / math.sqrt(d))).astype(np.float32),
        skip_bias=(f.skip_user_std * bias[:, 0]).astype(np.float32),
        like_bias=(f.like_user_std * bias[:, 1]).astype(np.float32),
        dislike_bias=(f.dislike_user_std * bias[:, 2]).astype(np.float32),
        session_hazard=1.0 / np.maximum(mean_len, 1.0),
        daily_events=act.events_per_day * np.exp(act.events_per_day_sigma * bias[:, 4]),
        surface_pref=surface_pref,
        device_pref=device_pref,
    )


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


# ---------------------------------------------------------------------------------------- oracle
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


# ---------------------------------------------------------------------------------------- latent I/O
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
    from argusrec.data.simulate import SimulationConfig

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
