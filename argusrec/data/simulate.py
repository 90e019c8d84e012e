"""A synthetic music-streaming service: the embedded default dataset and the test bed for ARGUS.

No public dataset has rich context and several feedback signals with known ground truth, so this
module generates one: deterministic by seed, vectorised numpy, in chunks of users (memory bounded by
the chunk, whatever ``n_events``). The latent state and the exact oracle live in
:mod:`argusrec.data.simulate_world` (re-exported here).

Generative model
----------------
**Catalog.** G genres with unit centroids ``c_g`` (dimension d). Artists belong to genres (skewed
genre shares), items to artists (lognormal artist sizes). Item vector ``v_i = c_g + e_i`` with
``e_i`` = artist offset + item noise. Popularity ``pop_i ∝ rank^-alpha`` (Zipf, alpha = 1.1) over a
random permutation; quality ``q_i`` correlated 0.5 with log-popularity; track length lognormal around
200 s, whole seconds in [30, 900].

**Users.** Taste ``u(t) = core + cos(w t + phi) drift_cos + sin(w t + phi) drift_sin`` (t in days):
the core mixes two genre centroids plus noise; the drift swings toward two other genres with a period
of 20-120 days. Per user: logit biases for skip / like / dislike, a session-length habit, surface and
device preferences (logistic-normal around the global mix), an active window (some users join late
or churn) and an activity level (lognormal). Tastes are evaluated once per UTC day, at ``t = day
index`` of the event; the oracle floors timestamps the same way.

**True affinity** (bounded): ``a(u,t,i) = A_g tanh(<u,c_g>/s_g) + A_e tanh(<u,e_i>/s_e) + q_i``.
The split into a genre part and an item part is what makes exact sampling cheap (below).

**Calendar.** A user listens on a random subset of the days of their window (about
``events_per_day`` events per active day); events are spread over those days by systematic sampling
of random day weights (weekday rhythm, lognormal noise), capped so that no day holds more events than
fit in it with every track played in full. Within a day, events form sessions (a new session with
probability 1/mean_length per event); a session has one surface and one device (devices tilt the
surface mix: speakers favour radio). Sessions start by an hour-of-day rhythm; inside a session,
timestamps advance by the played seconds of each track; sessions are pushed apart (at least
``min_session_gap_s``) and kept inside their day, so within a user timestamps strictly increase.

**Organic surfaces.** ``search``: ``P(i) ∝ pop_i^gamma exp(beta a(u,t,i))``, sampled exactly by
rejection: the proposal picks genre g ∝ ``W_g exp(beta A_g tanh(<u,c_g>/s_g))`` (``W_g`` = the genre's
sum of ``pop^gamma exp(beta q)``), then an item of g ∝ ``pop^gamma exp(beta q)`` (alias tables), and
accepts with ``exp(beta A_e (tanh(<u,e_i>/s_e) - 1)) <= 1``. ``library``: replays an item drawn
uniformly from the user's earlier *pool* events — positive events (liked or played >= 80%) from other
surfaces, plus the user's first positive event; with an empty pool it falls back to a search pick.

**Recommendation surfaces** (``feed``, ``radio``, ``carousel``): the logging policy knows a stale,
noisy taste ``û = u(t - lag) + eta_u``, and only at genre level:
``pi(i) = eps pop_i + (1 - eps) pop_i exp(beta_s <û, c_g(i)>) / Z`` with Z a sum over genres, so pi is
exact in O(G). A request shows a slate of ``slate_size`` items drawn from pi without replacement
(truncated where the session ends); ``propensity`` of the k-th item is
``pi(i) / (1 - sum of pi over the slate's earlier items)``; ``request_id`` is shared by the slate.

**Feedback.** ``skip ~ Bern(sigmoid(b_skip - k a + surface + device + user))``; a played track is
liked with ``sigmoid(b_like + k a + surface + device + user)``, a skipped one disliked with
``sigmoid(b_dislike - k a + user)``; played ratio: skipped in [0, 0.3), else 1.0 with
``sigmoid(b_full + k a)`` or uniform in [0.7, 1). Truth columns hold the marginals: ``skip_prob``,
``like_prob = (1 - skip) like|play``, ``dislike_prob = skip dislike|skip``. Default rates: skip
~27%, like ~5%, dislike ~1.2%.

"Exact" means exact in real arithmetic; the simulator computes in float32 with 24-bit uniforms for
Bernoulli and genre draws, so recorded probabilities and the oracle agree to about 1e-6 relative.
Randomness is addressed by what it belongs to (see :class:`~argusrec.data.simulate_world.CounterRNG`),
so the output is bit-identical for any ``chunk_users``. Default sizes when only ``n_events`` is given:
``n_users = max(50, n_events / 150)``, ``n_items = clip(n_events / 100, 300, 200_000)``,
``n_genres = clip(n_items / 25, 2, 32)``, ``n_artists = max(n_genres, n_items / 8)``, chunks of about
400k events.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field, model_validator

from argusrec.data.adapters.base import EventSource
from argusrec.data.schema import DatasetSchema
from argusrec.data.simulate_world import (
    LIBRARY,
    POSITIVE_PLAY_RATIO,
    RECOMMENDATION,
    S_DAY_PICK,
    S_DAY_WEIGHT,
    S_DEVICE,
    S_FEEDBACK,
    S_OFFSET,
    S_ORGANIC,
    S_PLAY,
    S_POLICY,
    S_REPLAY,
    S_SESSION,
    S_SURFACE,
    S_SYSTEMATIC,
    SEARCH,
    SECONDS_PER_DAY,
    UserParams,
    World,
    affinity,
    build_world,
    daily_capacity,
    event_day,
    feedback_probabilities,
    load_latent,
    organic_distribution,
    policy_distribution,
    project,
    replay_pool,
    rowdot,
    taste,
    taste_at,
    write_latent,
)

__all__ = [  # the oracle functions live in simulate_world and are re-exported here
    "SOURCE_NAME",
    "SimulationConfig",
    "World",
    "affinity",
    "build_world",
    "event_day",
    "feedback_probabilities",
    "load_latent",
    "organic_distribution",
    "policy_distribution",
    "replay_pool",
    "simulate_chunk",
    "simulate_schema",
    "simulate_source",
    "taste",
    "write_latent",
]

SOURCE_NAME = "simulator"
FAST_ROUNDS = 10  # rejection rounds (1, 2, 4, ..., 32 attempts: 223 in all) before the exact fallback


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SurfaceConfig(_Strict):
    """One surface: how items are chosen there (``kind``), its share of sessions and its effects."""

    kind: Literal["library", "search", "recommendation"]
    share: float = Field(gt=0, description="relative share of sessions (before user and device tilts)")
    slate_size: int = Field(default=1, ge=1, le=100, description="items per request (recommendation kinds)")
    policy_epsilon: float = Field(default=0.3, ge=0, le=1, description="share of pure-popularity picks")
    policy_beta: float = Field(default=3.0, ge=0, le=20, description="how hard the policy follows its user model")
    skip_bias: float = Field(default=0.0, description="logit offset of skip on this surface")
    like_bias: float = Field(default=0.0, description="logit offset of like on this surface")


class DeviceConfig(_Strict):
    """One device: its share of sessions, its feedback effects and how it tilts the surface mix."""

    share: float = Field(gt=0)
    skip_bias: float = 0.0
    like_bias: float = 0.0
    surface_boost: dict[str, float] = Field(default_factory=dict, description="multiplies surface shares")


def _default_surfaces() -> dict[str, SurfaceConfig]:
    return {
        "library": SurfaceConfig(kind="library", share=0.20, skip_bias=-0.6, like_bias=-0.5),
        "search": SurfaceConfig(kind="search", share=0.15, skip_bias=-0.8, like_bias=0.4),
        "feed": SurfaceConfig(kind="recommendation", share=0.30, slate_size=6, policy_epsilon=0.3, policy_beta=3.0),
        "radio": SurfaceConfig(
            kind="recommendation", share=0.25, slate_size=10, policy_epsilon=0.1, policy_beta=4.0, skip_bias=-0.2
        ),
        "carousel": SurfaceConfig(
            kind="recommendation",
            share=0.10,
            slate_size=8,
            policy_epsilon=0.6,
            policy_beta=1.5,
            skip_bias=0.3,
            like_bias=-0.2,
        ),
    }


def _default_devices() -> dict[str, DeviceConfig]:
    return {
        "mobile": DeviceConfig(share=0.60),
        "desktop": DeviceConfig(share=0.25, skip_bias=-0.1, like_bias=0.2),
        "speaker": DeviceConfig(
            share=0.15, skip_bias=-0.5, like_bias=-0.6, surface_boost={"radio": 4.0, "search": 0.3, "carousel": 0.3}
        ),
    }


class CatalogConfig(_Strict):
    zipf_exponent: float = Field(default=1.1, gt=0, le=3)
    track_length_median_s: float = Field(default=200.0, gt=0)
    track_length_sigma: float = Field(default=0.35, ge=0, le=3)
    track_length_min_s: int = Field(default=30, ge=1)
    track_length_max_s: int = Field(default=900, ge=1, le=40_000)
    artist_spread: float = Field(default=0.7, ge=0, description="std (norm) of artist offsets from their genre")
    item_spread: float = Field(default=0.5, ge=0, description="std (norm) of item offsets from their artist")
    quality_std: float = Field(default=0.3, ge=0, le=3)

    @model_validator(mode="after")
    def _lengths(self) -> CatalogConfig:
        if not self.track_length_min_s <= self.track_length_median_s <= self.track_length_max_s:
            raise ValueError("need track_length_min_s <= track_length_median_s <= track_length_max_s")
        return self


class TasteConfig(_Strict):
    genre_strength: float = Field(default=1.5, ge=0, description="A_g")
    genre_scale: float = Field(default=0.5, gt=0, description="s_g")
    item_strength: float = Field(default=1.0, ge=0, description="A_e")
    item_scale: float = Field(default=0.25, gt=0, description="s_e")
    organic_beta: float = Field(default=1.2, ge=0, le=10, description="beta of organic (search) picks")
    organic_pop_power: float = Field(default=0.9, ge=0, le=3, description="gamma: organic picks ∝ pop^gamma")
    core_noise: float = Field(default=0.3, ge=0)
    drift_amplitude: float = Field(default=0.6, ge=0)
    drift_period_days: tuple[float, float] = (20.0, 120.0)

    @model_validator(mode="after")
    def _check(self) -> TasteConfig:
        lo, hi = self.drift_period_days
        if not 0 < lo <= hi:
            raise ValueError("drift_period_days must be (low, high) with 0 < low <= high")
        if self.organic_beta * self.item_strength > 4:
            # the rejection sampler accepts with probability >= exp(-2 beta A_e); keep it practical
            raise ValueError("organic_beta * item_strength must be <= 4 (rejection sampling cost)")
        return self


class ActivityConfig(_Strict):
    activity_sigma: float = Field(default=1.0, ge=0, le=4, description="lognormal spread of events per user")
    events_per_day: float = Field(default=15.0, ge=1, description="median events on a user's active day")
    events_per_day_sigma: float = Field(default=0.5, ge=0, le=3, description="lognormal spread across users")
    day_sigma: float = Field(default=0.5, ge=0, le=4, description="lognormal spread of activity across active days")
    join_fraction: float = Field(default=0.3, ge=0, le=1, description="users whose first day is random")
    churn_fraction: float = Field(default=0.2, ge=0, le=1, description="users whose last day is random")
    mean_session_length: float = Field(default=12.0, ge=1)
    min_session_gap_s: int = Field(default=60, ge=1)
    surface_pref_std: float = Field(default=0.8, ge=0)
    device_pref_std: float = Field(default=1.0, ge=0)
    hour_weights: tuple[float, ...] = (
        0.3, 0.2, 0.15, 0.1, 0.1, 0.2, 0.5, 0.9, 1.2, 1.0, 0.9, 1.0,
        1.2, 1.1, 1.0, 1.0, 1.1, 1.3, 1.5, 1.6, 1.6, 1.4, 1.0, 0.6,
    )  # fmt: skip
    weekday_weights: tuple[float, ...] = (1.0, 1.0, 1.0, 1.0, 1.1, 1.3, 1.2)  # Monday first

    @model_validator(mode="after")
    def _check(self) -> ActivityConfig:
        if len(self.hour_weights) != 24 or min(self.hour_weights) < 0 or sum(self.hour_weights) <= 0:
            raise ValueError("hour_weights needs 24 non-negative values with a positive sum")
        if len(self.weekday_weights) != 7 or min(self.weekday_weights) <= 0:
            raise ValueError("weekday_weights needs 7 positive values")
        return self


class PolicyConfig(_Strict):
    lag_days: float = Field(default=7.0, ge=0, description="how stale the policy's view of the taste is")
    noise: float = Field(default=0.5, ge=0, description="norm of the policy's fixed error about each user")


class FeedbackConfig(_Strict):
    skip_base: float = 0.35
    skip_slope: float = 1.0
    skip_user_std: float = Field(default=0.5, ge=0)
    like_base: float = -4.3
    like_slope: float = 0.9
    like_user_std: float = Field(default=0.8, ge=0)
    dislike_base: float = -3.0
    dislike_slope: float = 0.8
    dislike_user_std: float = Field(default=0.5, ge=0)
    full_play_base: float = 0.3
    full_play_slope: float = 0.5
    skip_play_max: float = Field(default=0.3, gt=0, lt=POSITIVE_PLAY_RATIO, description="played ratio of skips < this")
    listen_play_min: float = Field(default=0.7, ge=0.3, lt=1, description="played ratio of non-skips >= this")


class SimulationConfig(_Strict):
    """What to simulate; sizes left as None are derived from ``n_events`` (see the module docs)."""

    n_events: int = Field(ge=1, le=10**11, description="exact number of events emitted")
    seed: int = Field(default=0, ge=0, lt=2**63)
    n_users: int | None = Field(default=None, ge=1)
    n_items: int | None = Field(default=None, ge=2, le=50_000_000)
    n_artists: int | None = Field(default=None, ge=1)
    n_genres: int | None = Field(default=None, ge=1, le=1024)
    dim: int = Field(default=16, ge=2, le=256)
    days: int = Field(default=60, ge=1, le=3650)
    start_timestamp: int = Field(default=1_767_225_600, ge=0, description="2026-01-01 00:00 UTC")
    chunk_users: int | None = Field(default=None, ge=1, description="users per generated chunk (memory only)")
    surfaces: dict[str, SurfaceConfig] = Field(default_factory=_default_surfaces)
    devices: dict[str, DeviceConfig] = Field(default_factory=_default_devices)
    catalog: CatalogConfig = Field(default_factory=lambda: CatalogConfig())
    taste: TasteConfig = Field(default_factory=lambda: TasteConfig())
    activity: ActivityConfig = Field(default_factory=lambda: ActivityConfig())
    policy: PolicyConfig = Field(default_factory=lambda: PolicyConfig())
    feedback: FeedbackConfig = Field(default_factory=lambda: FeedbackConfig())

    @model_validator(mode="after")
    def _resolve(self) -> SimulationConfig:
        n = self.n_events
        if self.n_users is None:
            self.n_users = min(n, max(50, round(n / 150)))
        if self.n_items is None:
            self.n_items = int(np.clip(round(n / 100), 300, 200_000))
        if self.n_genres is None:
            self.n_genres = int(np.clip(self.n_items // 25, 2, 32))
        if self.n_artists is None:
            self.n_artists = min(self.n_items, max(self.n_genres, self.n_items // 8))
        if self.chunk_users is None:
            self.chunk_users = max(1, 400_000 * self.n_users // n)  # ~400k events per chunk
        if self.n_users > n:
            raise ValueError(f"n_users ({self.n_users}) must be <= n_events ({n}): every user has an event")
        if not self.n_genres <= self.n_artists <= self.n_items:
            raise ValueError(
                f"need n_genres <= n_artists <= n_items, got {self.n_genres}, {self.n_artists}, {self.n_items}"
            )
        if not self.surfaces or not self.devices:
            raise ValueError("surfaces and devices need at least one entry each")
        for name, dev in self.devices.items():
            unknown = set(dev.surface_boost) - set(self.surfaces)
            if unknown and "devices" not in self.model_fields_set:  # default devices meet custom surfaces
                dev.surface_boost = {k: v for k, v in dev.surface_boost.items() if k in self.surfaces}
            elif unknown:
                raise ValueError(f"devices.{name}.surface_boost names unknown surfaces {sorted(unknown)}")
            if any(b <= 0 for b in dev.surface_boost.values()):
                raise ValueError(f"devices.{name}.surface_boost values must be > 0")
        for name, s in self.surfaces.items():
            if s.kind == "recommendation" and s.slate_size > self.n_items:
                raise ValueError(f"surfaces.{name}.slate_size ({s.slate_size}) exceeds n_items ({self.n_items})")
        cap = daily_capacity(self)
        if cap < 2:
            raise ValueError("catalog.track_length_max_s + activity.min_session_gap_s leave < 2 events per day")
        if n > self.n_users * self.days * (cap - 1) // 2:
            raise ValueError(
                f"n_events ({n}) is too many for n_users ({self.n_users}) over days ({self.days}): "
                f"a user-day holds at most {cap} events; raise n_users or days"
            )
        return self


def simulate_schema() -> DatasetSchema:
    """The :class:`DatasetSchema` of the simulator's events (the same for every config)."""
    return DatasetSchema.of(
        context=["surface", "device"],
        feedback={"played_ratio": "continuous", "skip": "binary", "like": "binary", "dislike": "binary"},
        item_features=["artist_id", "track_length_s"],
        request=True,
        truth=["true_affinity", "like_prob", "dislike_prob", "skip_prob", "propensity"],
    )


def simulate_source(config: SimulationConfig) -> EventSource:
    """The simulated service as an :class:`EventSource`; ``read()`` yields one batch per chunk of users.

    Every call of ``read()`` regenerates the same data (nothing is cached).
    """
    world = build_world(config)
    n_users, step = world.n_users, int(config.chunk_users or 1)

    def read() -> Iterator[tuple[str, pa.RecordBatch]]:
        for lo in range(0, n_users, step):
            yield SOURCE_NAME, _to_batch(world, simulate_chunk(world, lo, min(lo + step, n_users)))

    items = pa.table(
        {
            "item_id": pa.array(np.arange(1, world.n_items + 1, dtype=np.int64)),
            "artist_id": pa.array(world.item_artist.astype(np.int64) + 1),
            "track_length_s": pa.array(world.track_length.astype(np.float32)),
        }
    )
    return EventSource(
        name=SOURCE_NAME,
        schema=simulate_schema(),
        read=read,
        items=items,
        estimated_rows=config.n_events,
        info={"generator": "argusrec.data.simulate", "seed": config.seed, "n_users": n_users},
    )


# ---------------------------------------------------------------------------------------- one chunk
@dataclass
class _Layout:
    """Who, when and where of a chunk's E events, before items are chosen. Events are in output order."""

    users: np.ndarray  # (nu,) global user indices of the chunk
    ev: np.ndarray  # (E,) int64 global event index: the address of every per-event random number
    user: np.ndarray  # (E,) local user row (indexes ``users`` and the UserParams)
    user_start: np.ndarray  # (nu,) first event row of each user
    day: np.ndarray  # (E,) int64 day index
    cell: np.ndarray  # (E,) user-day index
    cell_first: np.ndarray  # (C,) first event row of each user-day
    session: np.ndarray  # (E,) session index
    session_first: np.ndarray  # (S,) first event row of each session
    pos: np.ndarray  # (E,) position inside the session
    surface: np.ndarray  # (E,) surface code
    device: np.ndarray  # (E,) device code


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
_COLUMN_ORDER = (
    "user_id", "item_id", "timestamp", "surface", "device", "played_ratio", "skip", "like", "dislike",
    "request_id", "true_affinity", "like_prob", "dislike_prob", "skip_prob", "propensity",
)  # fmt: skip


def _to_batch(world: World, cols: dict[str, np.ndarray]) -> pa.RecordBatch:
    arrays = []
    for name in _COLUMN_ORDER:
        if name in ("surface", "device"):
            names = world.surfaces if name == "surface" else world.devices
            arrays.append(pa.array(names, pa.string()).take(pa.array(cols[name])))
        else:
            arrays.append(pa.array(cols[name]))
    return pa.RecordBatch.from_arrays(arrays, names=list(_COLUMN_ORDER))


def _layout(world: World, params: UserParams, lo: int, hi: int) -> _Layout:
    """Spread each user's events over days, cut days into sessions, give sessions a surface and device."""
    cfg, rng, days = world.config, world.rng, world.config.days
    users = np.arange(lo, hi, dtype=np.int64)
    counts = world.user_events[lo:hi]
    base = int(world.user_offsets[lo])
    n = int(counts.sum())
    ev = np.arange(base, base + n, dtype=np.int64)
    user = np.repeat(np.arange(len(users)), counts)
    user_start = world.user_offsets[lo:hi] - base
    # active days: a random subset of the window, about n / events_per_day of them (enough for the cap)
    d = np.arange(days)
    cap = daily_capacity(cfg) - 1
    window = (d >= world.user_first_day[lo:hi, None]) & (d <= world.user_last_day[lo:hi, None])
    span = window.sum(axis=1)
    n_active = np.clip(np.ceil(counts / params.daily_events), np.ceil(counts / cap), span)
    key = np.where(window, rng.uniform(S_DAY_PICK, (users[:, None] * days + d).ravel()).reshape(window.shape), 2.0)
    active = np.argsort(np.argsort(key, axis=1), axis=1) < n_active[:, None]  # the n_active smallest keys
    # day weights: weekday rhythm x lognormal noise on active days, capped per day
    weekday = (cfg.start_timestamp // SECONDS_PER_DAY + 3 + d) % 7  # 1970-01-01 was a Thursday
    z = rng.normal(S_DAY_WEIGHT, (users[:, None] * days + d).ravel()).reshape(len(users), days)
    w = np.exp(cfg.activity.day_sigma * z) * np.asarray(cfg.activity.weekday_weights)[weekday] * active
    w = _cap_rows(w / w.sum(axis=1, keepdims=True), cap / counts[:, None])
    cum = np.cumsum(w, axis=1)
    cum /= cum[:, -1:]
    cum[:, -1] = 1.0
    # systematic sampling: event j of n sits at (j + U) / n, so a day of weight w gets <= ceil(n w) events
    pos_in_user = np.arange(n) - user_start[user]
    frac = (pos_in_user + rng.uniform(S_SYSTEMATIC, users)[user]) / counts[user]
    flat = (cum + np.arange(len(users))[:, None]).ravel()
    day = np.searchsorted(flat, user + frac, side="right") - user * days
    new_cell = np.ones(n, dtype=bool)
    new_cell[1:] = (user[1:] != user[:-1]) | (day[1:] != day[:-1])
    new_session = new_cell | (rng.uniform(S_SESSION, ev) < params.session_hazard[user])
    session_first = np.flatnonzero(new_session)
    su = user[session_first]
    device = _categorical(params.device_pref[su], rng.uniform(S_DEVICE, ev[session_first]))
    boost = np.ones((len(world.devices), len(world.surfaces)))
    for i, dev in enumerate(cfg.devices.values()):
        for j, s in enumerate(world.surfaces):
            boost[i, j] = dev.surface_boost.get(s, 1.0)
    surface = _categorical(params.surface_pref[su] * boost[device], rng.uniform(S_SURFACE, ev[session_first]))
    session = np.cumsum(new_session) - 1
    return _Layout(
        users=users,
        ev=ev,
        user=user,
        user_start=user_start,
        day=day,
        cell=np.cumsum(new_cell) - 1,
        cell_first=np.flatnonzero(new_cell),
        session=session,
        session_first=session_first,
        pos=np.arange(n) - session_first[session],
        surface=surface[session],
        device=device[session],
    )


def _cap_rows(w: np.ndarray, cap: np.ndarray) -> np.ndarray:
    """Rows of w (n, D) summing to 1 -> same, with every entry <= cap (n, 1), mass moved to the others."""
    capped = np.zeros(w.shape, dtype=bool)
    for _ in range(w.shape[1] + 1):  # each round caps at least one more entry of a violating row
        fixed = capped.sum(axis=1, keepdims=True) * cap
        free = np.where(capped, 0.0, w).sum(axis=1, keepdims=True)
        scale = np.divide(1.0 - fixed, free, out=np.zeros_like(free), where=free > 0)
        x = np.where(capped, cap, w * scale)
        over = ~capped & (x > cap)
        if not over.any():
            return x
        capped |= over
    return x


def _categorical(weights: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Rows (n, K) of non-negative weights and (n,) uniforms -> (n,) int8 category codes."""
    cdf = _column_cdf(np.ascontiguousarray(weights.T))  # (K, n)
    return _pick(cdf, np.arange(len(u)), u.astype(np.float32)).astype(np.int8)


def _column_cdf(w: np.ndarray) -> np.ndarray:
    """(G, R) non-negative weights, one distribution per column -> (G, R) float32 cdfs (last row 1).

    Genres run down the first axis and the sum is a loop over genres: adding whole rows is ~10x faster
    than ``np.cumsum`` along either axis for short distributions (measured, numpy 2.4).
    """
    cum = np.empty(w.shape, dtype=np.float32)
    cum[0] = w[0]
    for g in range(1, len(w)):  # G is small (genres)
        np.add(cum[g - 1], w[g], out=cum[g])
    cum /= cum[-1]
    cum[-1] = 1.0
    return cum


def _pick(cdf: np.ndarray, cols: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Sample a category per event from column ``cols[k]`` of ``cdf`` (G, R): (n,), (n,) -> (n,) int64.

    Branch-free binary search with a fixed number of steps (log2 G): the result counts the cdf
    entries <= u. ~5x faster than gathering whole columns and comparing (measured, G = 32).
    """
    g, r = cdf.shape
    flat = cdf.ravel()
    lo = np.zeros(len(cols), dtype=np.int64)
    step = 1 << max(g - 1, 1).bit_length() - 1  # largest power of two < g (>= 1)
    while step:
        at = np.minimum(lo + (step - 1), g - 1)  # past the end reads cdf[-1] = 1 > u: no move
        lo += (np.take(flat, at * r + cols) <= u) * step
        step >>= 1
    return np.minimum(lo, g - 1)


def _organic(world: World, ev: np.ndarray, rows: np.ndarray, taste_c: np.ndarray, genre_aff: np.ndarray) -> np.ndarray:
    """Exact search picks P(i) ∝ pop^gamma exp(beta a) for events ``ev`` (n,) in user-days ``rows`` (n,).

    Proposal: genre ∝ W_g exp(beta A_g tanh(.)), item by the organic alias; accept with
    exp(beta (A_e tanh(<u, e_i>/s_e) - A_e)) <= 1. ``taste_c`` (C, d) and ``genre_aff`` (G, C), the
    genre part of the affinity, are per user-day.
    """
    t, rng = world.config.taste, world.rng
    items = np.empty(len(ev), dtype=np.int64)
    if not len(ev):
        return items
    # only the user-days that search need a genre distribution; rows arrive sorted
    new = np.ones(len(rows), dtype=bool)
    new[1:] = rows[1:] != rows[:-1]
    uniq, local = rows[new], np.cumsum(new) - 1
    beta = np.float32(t.organic_beta)
    logw = np.log(world.genre_organic).astype(np.float32)[:, None] + beta * np.take(genre_aff, uniq, axis=1)
    cdf = _column_cdf(np.exp(logw - logw.max(axis=0)))  # (G, n_rows)
    bound = np.float32(t.item_strength)
    pending = identity = np.arange(len(ev))
    attempt = 0
    for r in range(FAST_ROUNDS):
        if not pending.size:
            return items
        idx, sub, m = _attempts(pending, attempt, r)
        attempt += m
        genre_u, accept_u = rng.uniform24(S_ORGANIC, ev[idx], sub)
        genre = _pick(cdf, local[idx], genre_u)
        cand = world.organic_alias.sample(genre, rng.uniform(S_ORGANIC + 1, ev[idx], sub))
        gain = world.item_affinity(rowdot(taste_c, rows[idx], world.item_offset, cand)) - bound
        pending = _keep_first(items, identity, pending, cand, accept_u < np.exp(beta * gain), m)
    # rare stragglers (tiny acceptance): draw from the exact distribution over the whole catalog; a
    # rejection sampler's accepted draw does not depend on how many attempts failed, so this stays exact
    for block in _blocks(pending, world):
        r_ = rows[block]
        logw = np.log(world.organic_weight)[:, None] + float(t.organic_beta) * (
            np.take(genre_aff, r_, axis=1)[world.item_genre]
            + world.item_affinity(project(np.take(taste_c, r_, axis=0), world.item_offset))
        )
        items[block] = _inverse_cdf(np.exp(logw - logw.max(axis=0)), rng.uniform(S_ORGANIC + 2, ev[block]))
    return items


def _blocks(pending: np.ndarray, world: World) -> list[np.ndarray]:
    """Split straggler events into blocks whose (V, block) temporaries stay around 32 MB."""
    size = max(1, (1 << 22) // world.n_items)
    return [pending[s : s + size] for s in range(0, len(pending), size)]


def _inverse_cdf(w: np.ndarray, u: np.ndarray) -> np.ndarray:
    """(V, P) non-negative weights, one distribution per column, (P,) uniforms -> (P,) int64 draws."""
    cum = np.cumsum(w, axis=0, dtype=np.float64)
    k = np.count_nonzero(cum <= u * cum[-1], axis=0)
    return np.minimum(k, len(w) - 1)


def _attempts(pending: np.ndarray, attempt: int, r: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Round r of a rejection sampler proposes m = min(2^r, 32) candidates per pending event.

    The first round is one attempt for everyone; the shrinking tail then gets more attempts per round,
    so the number of rounds (Python-level loops) stays small. Returns the event positions (P m,), their
    attempt numbers (P m,) — the address of each candidate's random numbers — and m.
    """
    m = min(1 << r, 32)
    return np.repeat(pending, m), attempt + np.tile(np.arange(m), len(pending)), m


def _keep_first(
    out: np.ndarray, where: np.ndarray, pending: np.ndarray, cand: np.ndarray, ok: np.ndarray, m: int
) -> np.ndarray:
    """Store each pending event's first acceptable candidate at ``out[where[event]]``; return the rest.

    ``cand`` and ``ok`` (P m,) hold m consecutive attempts per pending event (P,); taking the first
    acceptable one is exactly what drawing them one after another would give.
    """
    okm = ok.reshape(len(pending), m)
    done = okm.any(axis=1)
    first = np.flatnonzero(done) * m + okm[done].argmax(axis=1)
    out[where[pending[done]]] = cand[first]
    return pending[~done]


def _recommend(
    world: World,
    params: UserParams,
    dots: _GenreDots,
    lay: _Layout,
    kind: np.ndarray,
    item: np.ndarray,
    out: dict[str, np.ndarray],
) -> None:
    """Fill items, request ids and propensities of recommendation events (slates drawn from pi)."""
    rec = np.flatnonzero(kind == RECOMMENDATION)
    if not rec.size:
        return
    slate = np.array([s.slate_size for s in world.config.surfaces.values()])
    slot = lay.pos[rec] % slate[lay.surface[rec]]
    first = rec[slot == 0]  # (R,) first event of every request
    req = np.cumsum(slot == 0) - 1  # (n_rec,) request of each rec event
    policy = policy_tables(world, params, dots, lay.user[first], lay.day[first], lay.surface[first])
    _draw_slates(world, lay.ev[rec], slot, req, policy, item, rec)
    pi = policy.pi(world, item[rec], req)
    before = np.cumsum(pi) - pi
    before -= before[slot == 0][req]  # sum of pi over the slate's earlier items
    out["propensity"][rec] = pi / (1.0 - before)
    out["request_id"][rec] = lay.ev[first][req]  # global event index of the slate's first item: unique


@dataclass
class _Policy:
    """The logging policy of R requests: ``pi(i) = pop_i (eps + (1 - eps) e[g(i)] / z)``.

    ``e`` (G, R) float32 is ``exp(l_g - max_g l_g)``, ``z`` (R,) float64 the matching normaliser
    ``sum_g P_g e_g``, ``eps`` (R,) float64, ``genre_cdf`` (G, R) float32 the genre draw.
    """

    e: np.ndarray
    z: np.ndarray
    eps: np.ndarray
    genre_cdf: np.ndarray

    def pi(self, world: World, items: np.ndarray, req: np.ndarray) -> np.ndarray:
        """(n,) items and their requests -> (n,) float64 pi(item).

        float64 with z summed from the same ``e``: a slate's remaining mass ``1 - sum pi(earlier)``
        then cancels exactly instead of going negative when a few items hold almost all of pi.
        """
        r = self.e.shape[1]
        e = self.e.ravel()[world.item_genre[items] * r + req].astype(np.float64)
        eps = self.eps[req]
        return world.item_popularity[items] * (eps + (1 - eps) * e / self.z[req])

    def pi_all(self, world: World, req: np.ndarray) -> np.ndarray:
        """(P,) requests -> (V, P) float64 pi over the whole catalog (for the rare exact fallback)."""
        e = np.take(self.e, req, axis=1)[world.item_genre].astype(np.float64)  # (V, P)
        eps = self.eps[req]
        return world.item_popularity[:, None] * (eps + (1 - eps) * e / self.z[req])


def policy_tables(
    world: World, params: UserParams, dots: _GenreDots, rows: np.ndarray, day: np.ndarray, surface: np.ndarray
) -> _Policy:
    """The logging policy for R requests (``rows`` of ``params``, ``day``, ``surface`` codes).

    With ``phi_g = eps + (1 - eps) exp(l_g) / Z`` and ``pi(i) = pop_i phi_g(i)``, the epsilon branch is
    a genre draw ∝ P_g too, so one genre draw ∝ P_g phi_g and one popularity draw inside the genre
    sample pi exactly.
    """
    cfg = world.config
    eps_s = np.array([s.policy_epsilon for s in cfg.surfaces.values()])
    beta_s = np.array([s.policy_beta for s in cfg.surfaces.values()], dtype=np.float32)
    # <û, c_g> with û = u(day - lag) + noise, the same quantity as policy_view(...) @ centroids.T
    stale = np.asarray(day, dtype=np.float64) - cfg.policy.lag_days
    logits = beta_s[surface] * dots.at(params, rows, stale, noise=True)  # (G, R) float32
    e = np.exp(logits - logits.max(axis=0))
    z = np.einsum("gr,g->r", e.astype(np.float64), world.genre_popularity)  # fixed order over g
    eps = eps_s[surface]
    pop_g = world.genre_popularity.astype(np.float32)[:, None]
    phi = eps.astype(np.float32) + (1 - eps.astype(np.float32)) * (e / z.astype(np.float32))  # (G, R)
    return _Policy(e=e, z=z, eps=eps, genre_cdf=_column_cdf(phi * pop_g))


def _draw_slates(
    world: World,
    ev: np.ndarray,
    slot: np.ndarray,
    req: np.ndarray,
    policy: _Policy,
    item: np.ndarray,
    rows: np.ndarray,
) -> None:
    """Draw slates without replacement: slot k redraws until it differs from slots 0..k-1.

    ``ev``, ``slot``, ``req``, ``rows`` (n,) describe the recommendation events (global event index,
    position in the slate, request, row in ``item``). Rejecting duplicates samples exactly from pi
    restricted to the unused items.
    """
    rng = world.rng
    order = np.argsort(slot, kind="stable")  # events grouped by slot, in event order within a slot
    bounds = np.searchsorted(slot[order], np.arange(int(slot.max()) + 2))
    for k in range(len(bounds) - 1):  # bounded by the largest slate size
        pending = order[bounds[k] : bounds[k + 1]]
        attempt = 0
        for r in range(FAST_ROUNDS):
            if not pending.size:
                break
            idx, sub, m = _attempts(pending, attempt, r)
            attempt += m
            u_genre, _ = rng.uniform24(S_POLICY, ev[idx], sub)
            genre = _pick(policy.genre_cdf, req[idx], u_genre)
            cand = world.policy_alias.sample(genre, rng.uniform(S_POLICY + 1, ev[idx], sub))
            at = rows[idx]
            ok = np.ones(len(idx), dtype=bool)
            for j in range(1, k + 1):
                ok &= item[at - j] != cand
            pending = _keep_first(item, rows, pending, cand, ok, m)
        # stragglers: the earlier slots hold almost all of pi; draw from pi without them exactly
        for block in _blocks(pending, world):
            w = policy.pi_all(world, req[block])  # (V, block)
            for j in range(1, k + 1):
                w[item[rows[block] - j], np.arange(len(block))] = 0.0
            item[rows[block]] = _inverse_cdf(w, rng.uniform(S_POLICY + 2, ev[block]))


@dataclass
class _GenreDots:
    """Each user's taste parts projected on the genre centroids: (G, n) float32 each.

    ``<u(t), c_g> = core_g + cos(w t + phi) cos_g + sin(w t + phi) sin_g`` costs 3 passes per
    (genre, row) instead of d, and the projections are computed once per user and chunk.
    """

    core: np.ndarray
    cos: np.ndarray
    sin: np.ndarray
    noise: np.ndarray

    @classmethod
    def of(cls, params: UserParams, centroids: np.ndarray) -> _GenreDots:
        return cls(
            *(project(getattr(params, f), centroids) for f in ("core", "drift_cos", "drift_sin", "policy_noise"))
        )

    def at(self, params: UserParams, rows: np.ndarray, t_days: np.ndarray, *, noise: bool = False) -> np.ndarray:
        """(n,) rows of ``params``, (n,) times in days -> (G, n) float32 ``<u(t), c_g>`` (+ the policy error)."""
        angle = params.omega[rows] * np.asarray(t_days, dtype=np.float64) + params.phase[rows]
        out = np.take(self.core, rows, axis=1)
        out += np.cos(angle).astype(np.float32) * np.take(self.cos, rows, axis=1)
        out += np.sin(angle).astype(np.float32) * np.take(self.sin, rows, axis=1)
        if noise:
            out += np.take(self.noise, rows, axis=1)
        return out


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


def _schedule(world: World, lay: _Layout, played: np.ndarray) -> np.ndarray:
    """(E,) played seconds -> (E,) int64 timestamps: sessions placed by the hour rhythm inside their day.

    Nominal starts are pushed later where a session would overlap the previous one (plus the minimum
    gap), then earlier where the day would overflow; the daily cap guarantees a fit.
    """
    cfg = world.config
    sf = lay.session_first
    scell = lay.cell[sf]  # (S,) sessions' user-day, non-decreasing
    span = np.add.reduceat(played, sf) + cfg.activity.min_session_gap_s  # (S,) duration + gap
    hours = np.asarray(cfg.activity.hour_weights, dtype=np.float64)
    hcum = np.concatenate([[0.0], np.cumsum(hours / hours.sum())])
    u = world.rng.uniform(S_OFFSET, lay.ev[sf])
    h = np.clip(np.searchsorted(hcum, u, side="right") - 1, 0, 23)
    frac = (u - hcum[h]) / np.maximum(hcum[h + 1] - hcum[h], 1e-12)
    nominal = np.minimum((3600 * (h + frac)).astype(np.int64), SECONDS_PER_DAY - 1)
    big = 4 * SECONDS_PER_DAY
    nominal = np.sort(nominal + scell * big) - scell * big  # sorted within each day
    first_sess = lay.session[lay.cell_first]  # (C,) first session of each user-day
    before = np.cumsum(span) - span
    before -= before[first_sess][scell]  # time taken by the day's earlier sessions
    start = np.maximum.accumulate(nominal - before + scell * big) - scell * big + before  # push later
    after = np.add.reduceat(span, first_sess)[scell] - before  # this and later sessions of the day
    latest = np.minimum.accumulate((start + after + scell * big)[::-1])[::-1] - scell * big
    start = np.minimum(latest, SECONDS_PER_DAY) - after  # pull earlier so the day does not overflow
    within = np.cumsum(played) - played
    within -= within[sf][lay.session]
    return cfg.start_timestamp + lay.day * SECONDS_PER_DAY + start[lay.session] + within
