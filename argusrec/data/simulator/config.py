"""What to simulate: :class:`SimulationConfig` and its sections, the model's constants, the daily cap.

Sizes left as None are derived from ``n_events`` (see :mod:`argusrec.data.simulator`). Surfaces
have a kind (library, search, recommendation) and devices tilt the surface mix; the remaining
sections hold the catalog, taste, activity, logging-policy and feedback parameters.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

SECONDS_PER_DAY = 86_400
KINDS = ("library", "search", "recommendation")  # surface kinds, coded 0, 1, 2
LIBRARY, SEARCH, RECOMMENDATION = 0, 1, 2
POSITIVE_PLAY_RATIO = 0.8  # "mostly played": an event counts as positive (library material) above this


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
    """What to simulate; sizes left as None are derived from ``n_events`` (see :mod:`argusrec.data.simulator`)."""

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


def daily_capacity(config: SimulationConfig) -> int:
    """Most events one user can have on one day: every track played in full still fits in the day."""
    per_event = config.catalog.track_length_max_s + config.activity.min_session_gap_s
    return int((SECONDS_PER_DAY - 3_600) // per_event)  # one hour of slack for rounding
