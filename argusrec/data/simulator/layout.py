"""Who, when and where of a chunk's events before items are chosen: active days, day weights,
sessions, surfaces and devices (:func:`_layout`), and the timestamps once play times are known
(:func:`_schedule`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from argusrec.data.simulator.config import SECONDS_PER_DAY, daily_capacity
from argusrec.data.simulator.rng import (
    S_DAY_PICK,
    S_DAY_WEIGHT,
    S_DEVICE,
    S_OFFSET,
    S_SESSION,
    S_SURFACE,
    S_SYSTEMATIC,
)
from argusrec.data.simulator.sampling import _categorical

if TYPE_CHECKING:
    from argusrec.data.simulator.world import UserParams, World


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
