"""The simulator's latent world: the catalog, every user's activity and parameters, and building it.

Everything the simulator knows and the data does not show lives in :class:`World` and
:class:`UserParams`: genre centroids, item vectors, popularity and quality, every user's taste
trajectory, biases and preferences, and the logging policy's error. The simulator and the oracle
(:mod:`argusrec.data.simulator.oracle`) share the formulas here (affinity, feedback), so the recorded
truth columns and the oracle's recomputations agree to float32 precision (~1e-6 relative).

Ids: external ``user_id`` / ``item_id`` / ``artist_id`` are ``index + 1``; the arrays here are indexed
by ``index`` (0-based). Time: ``t`` in days since ``config.start_timestamp``. The simulator evaluates
tastes once per UTC day of the event (``t = day index``), so the oracle takes raw timestamps and
floors them the same way.

Randomness: the catalog comes from ``numpy.random.default_rng``; everything per user, per day and per
event comes from :class:`CounterRNG`, a stateless hash of ``(seed, stream, index)``. A user's data
therefore does not depend on which chunk of users it is generated with.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import numpy as np

from argusrec.data.simulator.config import KINDS, SimulationConfig, daily_capacity
from argusrec.data.simulator.rng import (
    S_ACTIVITY,
    S_BIASES,
    S_CHURN,
    S_CHURN_DAY,
    S_CORE,
    S_DRIFT,
    S_GENRES,
    S_JOIN,
    S_JOIN_DAY,
    S_POLICY_NOISE,
    S_PREFS,
    CounterRNG,
)
from argusrec.data.simulator.sampling import GroupedAlias
from argusrec.errors import ArgusrecError


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
        # organic proposal weight w_i = pop_i^gamma * exp(beta * quality_i), see the package docs
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
