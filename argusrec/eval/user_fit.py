"""A feedback-prediction reference on simulated data that is given the item side and learns only the users.

A model trained on the log has to learn both halves of the simulator's feedback model (data/simulator/world.py):
what every item is (its genre centroid ``c_g``, its vector ``e_i`` and quality ``q_i``) and what every user likes
(the taste ``u(t)`` and three feedback offsets). The oracle (:mod:`argusrec.eval.oracle`) knows both, exactly,
at the event's time. This reference sits between: it is **given the item side and every constant** of the
feedback model (slopes, surface and device offsets, the affinity ``a = A_g tanh(<u, c_g>/s_g) + A_e tanh(<u,
e_i>/s_e) + q_i``) and **estimates each user's taste and skip / like / dislike offsets** from that user's earlier
feedback, by maximum a posteriori, refitted before each day of the scored period (warm-started from the day
before) and used for that day's events:

* likelihood of each earlier event: skip ~ Bernoulli(sigmoid(skip logit)); if not skipped, like ~ like|play and
  full play (``played_ratio == 1``) ~ full-play probability; if skipped, dislike ~ dislike|skip;
* each event weighs ``0.5 ** (age / half_life)`` (age in days before the scored day starts): the true taste drifts
  (a sinusoid of 20-120 days), which a single static taste can only follow by forgetting;
* prior: the population's taste distribution on the scored day (mean and covariance over all simulated users,
  a Gaussian) and the configured spreads of the user offsets (mean 0).

Its half-life is chosen on the validation period's mean FP AUC (:func:`user_fit_feedback_metrics`), and the test
period is then scored the same way with that half-life. Only the users with events in the scored period are
fitted. It is a **reference, not a bound**: a model could beat it by tracking the drift or by reading the same
day's earlier events (the day's fit stops at midnight); and it knows what no model is told (the items' true
vectors). What it measures is how much of the
popularity-to-oracle gap the users' own histories support when the items are known, i.e. how much of a
model's shortfall is the user side (inferring taste from a finite, drifting history) rather than the item side.

:func:`known_taste_feedback_metrics` places the oracle's own ingredient on the same scale: the oracle's feedback
model with the users' true offsets and a *stale* true taste (some days before the period starts) or the taste's
static core, so that the distance from the user-fit reference to the oracle can be split into estimation and drift.

Letters: n events, U users, d taste dimension.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch

from argusrec.data.batching import concat_aranges
from argusrec.data.simulator import SECONDS_PER_DAY, World, event_day, taste_at
from argusrec.data.splits import EvalRole, EvalTargets, Split
from argusrec.data.store import SequenceStore
from argusrec.errors import ArgusrecError
from argusrec.eval.oracle import expected_played_ratio, open_world, score_feedback, world_codes, world_ids

__all__ = [
    "HALF_LIVES",
    "UserFit",
    "WorldEvents",
    "fit_users",
    "known_taste_feedback_metrics",
    "user_fit_feedback_metrics",
    "world_events",
]

#: Half-lives (days) tried on the validation period; None = every earlier event weighs the same.
HALF_LIVES: tuple[float | None, ...] = (None, 28.0, 14.0, 7.0)
_SIGNALS = ("skip", "like", "dislike", "played_ratio")


@dataclass(frozen=True)
class WorldEvents:
    """n store rows in the simulated world's terms (float32 tensors, int64 ``user``).

    ``user``: the user's index in the store; ``centroid`` / ``vector`` (n, d): the item's genre centroid and
    vector; ``quality``; ``skip_offset`` / ``like_offset``: the surface's plus the device's logit offsets;
    ``day``: the day the simulator evaluated the taste at; ``timestamp``.
    """

    user: torch.Tensor
    centroid: torch.Tensor
    vector: torch.Tensor
    quality: torch.Tensor
    skip_offset: torch.Tensor
    like_offset: torch.Tensor
    day: np.ndarray
    timestamp: np.ndarray

    def take(self, index: np.ndarray) -> WorldEvents:
        """The events at positions ``index`` (k,) int64 of these."""
        idx = torch.from_numpy(np.asarray(index, dtype=np.int64))
        names = ("user", "centroid", "vector", "quality", "skip_offset", "like_offset")
        tensors = {f: getattr(self, f)[idx] for f in names}
        return WorldEvents(**tensors, day=self.day[index], timestamp=self.timestamp[index])


def world_events(
    store: SequenceStore, world: World, rows: np.ndarray, user_slot: np.ndarray | None = None
) -> WorldEvents:
    """The world-side description of store ``rows`` (n,), for :func:`fit_users` and :func:`UserFit.probabilities`.

    ``user_slot`` (U,): the fitted row of each store user (default: the store's user index).
    """
    rows = np.asarray(rows, dtype=np.int64)
    items0 = world_ids(store)[1][np.asarray(store.items[rows], dtype=np.int64)] - 1
    surf = world_codes(store, "surface", world.surfaces)[np.asarray(store["surface"][rows], dtype=np.int64)]
    dev = world_codes(store, "device", world.devices)[np.asarray(store["device"][rows], dtype=np.int64)]
    cfg = world.config
    s_skip = np.array([s.skip_bias for s in cfg.surfaces.values()])
    s_like = np.array([s.like_bias for s in cfg.surfaces.values()])
    d_skip = np.array([v.skip_bias for v in cfg.devices.values()])
    d_like = np.array([v.like_bias for v in cfg.devices.values()])
    user = np.searchsorted(store.offsets, rows, side="right") - 1
    if user_slot is not None:
        user = np.asarray(user_slot, dtype=np.int64)[user]
    ts = np.asarray(store.timestamps[rows], dtype=np.int64)

    def t(x: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))

    return WorldEvents(
        user=torch.from_numpy(user.astype(np.int64)),
        centroid=t(world.centroids[world.item_genre[items0]]),
        vector=t(world.item_offset[items0]),
        quality=t(world.item_quality[items0]),
        skip_offset=t(s_skip[surf] + d_skip[dev]),
        like_offset=t(s_like[surf] + d_like[dev]),
        day=event_day(world, ts),
        timestamp=ts,
    )


@dataclass
class UserFit:
    """Fitted users: ``taste`` (U, d) and ``offsets`` (U, 3) = skip, like, dislike logit offsets (float32)."""

    taste: torch.Tensor
    offsets: torch.Tensor

    def logits(self, world: World, ev: WorldEvents) -> dict[str, torch.Tensor]:
        """Logits of skip, like|play, dislike|skip and full play of the events ``ev``: (n,) each (differentiable)."""
        return _logits(world, ev, self.taste[ev.user], self.offsets[ev.user])

    def probabilities(self, world: World, ev: WorldEvents) -> dict[str, np.ndarray]:
        """Predicted ``skip``, ``like``, ``dislike`` (marginals) and ``played_ratio`` (expectation): (n,) float64."""
        with torch.no_grad():
            lg = self.logits(world, ev)
            skip = torch.sigmoid(lg["skip"]).double().numpy()
            like = (1.0 - skip) * torch.sigmoid(lg["like"]).double().numpy()
            dislike = skip * torch.sigmoid(lg["dislike"]).double().numpy()
            a = lg["affinity"].double().numpy()
        ratio = expected_played_ratio(skip, a, world.config)
        return {"skip": skip, "like": like, "dislike": dislike, "played_ratio": ratio}


def _logits(world: World, ev: WorldEvents, u: torch.Tensor, b: torch.Tensor) -> dict[str, torch.Tensor]:
    """The simulator's feedback logits (World.feedback_probs) with tastes ``u`` (n, d) and offsets ``b`` (n, 3)."""
    cfg, f = world.config.taste, world.config.feedback
    a = (
        cfg.genre_strength * torch.tanh((u * ev.centroid).sum(-1) / cfg.genre_scale)
        + cfg.item_strength * torch.tanh((u * ev.vector).sum(-1) / cfg.item_scale)
        + ev.quality
    )
    return {
        "affinity": a,
        "skip": f.skip_base - f.skip_slope * a + ev.skip_offset + b[:, 0],
        "like": f.like_base + f.like_slope * a + ev.like_offset + b[:, 1],
        "dislike": f.dislike_base - f.dislike_slope * a + b[:, 2],
        "full": f.full_play_base + f.full_play_slope * a,
    }


def fit_users(
    world: World,
    ev: WorldEvents,
    labels: dict[str, np.ndarray],
    n_users: int,
    prior_mean: np.ndarray,
    prior_cov: np.ndarray,
    *,
    weights: np.ndarray | None = None,
    max_iter: int = 100,
    init: UserFit | None = None,
) -> UserFit:
    """MAP tastes and offsets of ``n_users`` users from their events ``ev`` (module docstring).

    Args:
        world: the simulated world (item side and constants).
        ev: the users' earlier events (:func:`world_events`).
        labels: ``skip``, ``like``, ``dislike``, ``played_ratio`` of those events, (n,) each (NaN = not observed).
        n_users: U; users without events keep the prior's mean.
        prior_mean, prior_cov: (d,) and (d, d) Gaussian prior of a taste.
        weights: (n,) non-negative event weights (None = 1).
        max_iter: L-BFGS iterations (the U problems are independent and are solved jointly).
        init: start from this fit (a warm start) instead of the prior's mean and zero offsets.
    """
    f = world.config.feedback
    d = len(prior_mean)
    mean = torch.as_tensor(prior_mean, dtype=torch.float32)
    cov = torch.as_tensor(prior_cov, dtype=torch.float64) + 1e-6 * torch.eye(d, dtype=torch.float64)
    prec = torch.linalg.inv(cov).float()
    stds = torch.tensor([f.skip_user_std, f.like_user_std, f.dislike_user_std], dtype=torch.float32)
    bias_prec = 1.0 / torch.clamp(stds, min=1e-3) ** 2
    n = len(ev.user)
    w = torch.ones(n) if weights is None else torch.as_tensor(weights, dtype=torch.float32)

    def col(name: str) -> torch.Tensor:
        return torch.as_tensor(np.asarray(labels[name], dtype=np.float32))

    skip, like, dislike, ratio = col("skip"), col("like"), col("dislike"), col("played_ratio")
    played = (skip < 0.5) & ~torch.isnan(skip)
    terms = {  # signal -> (observed mask, label)
        "skip": (~torch.isnan(skip), torch.nan_to_num(skip)),
        "like": (played & ~torch.isnan(like), torch.nan_to_num(like)),
        "dislike": ((skip >= 0.5) & ~torch.isnan(dislike), torch.nan_to_num(dislike)),
        "full": (played & ~torch.isnan(ratio), (torch.nan_to_num(ratio) >= 1.0).float()),
    }
    if init is None:
        init = UserFit(mean.repeat(n_users, 1), torch.zeros(n_users, 3))
    fit = UserFit(init.taste.clone().requires_grad_(True), init.offsets.clone().requires_grad_(True))
    opt = torch.optim.LBFGS(
        [fit.taste, fit.offsets], lr=1.0, max_iter=max_iter, history_size=20, line_search_fn="strong_wolfe"
    )
    scale = 1.0 / max(n_users, 1)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        lg = fit.logits(world, ev)
        nll = torch.zeros(())
        for name, (seen, y) in terms.items():
            bce = torch.nn.functional.binary_cross_entropy_with_logits(lg[name], y, reduction="none")
            nll = nll + (w * seen * bce).sum()
        dev = fit.taste - mean
        prior = 0.5 * ((dev @ prec) * dev).sum() + 0.5 * (fit.offsets**2 * bias_prec).sum()
        loss = scale * (nll + prior)
        loss.backward()
        return loss

    opt.step(closure)
    return UserFit(fit.taste.detach(), fit.offsets.detach())


def _population_prior(world: World, day: float) -> tuple[np.ndarray, np.ndarray]:
    """(d,) mean and (d, d) covariance of every simulated user's taste on ``day`` (population knowledge only)."""
    users = np.arange(world.n_users)
    u = taste_at(world.user_params(users), np.arange(len(users)), np.full(len(users), day, dtype=np.float64))
    u = u.astype(np.float64)
    return u.mean(axis=0), np.cov(u, rowvar=False)


@dataclass(frozen=True)
class _Period:
    """A scored period in the world's terms, built once and shared by every half-life's fits.

    ``history``: the scored users' rows before the period, then the period's own rows (a day's fit takes those
    before the day), with their ``labels``; ``scored``: the period's targets; ``n_users``: the users fitted.
    """

    targets: EvalTargets
    n_users: int
    history: WorldEvents
    labels: dict[str, np.ndarray]
    scored: WorldEvents


def _period(store: SequenceStore, split: Split, role: EvalRole, world: World) -> _Period:
    targets = split.targets(role)
    scored = np.unique(targets.user)  # only these users are fitted, store user u in row slot[u]
    slot = np.full(store.n_users, -1, dtype=np.int64)
    slot[scored] = np.arange(len(scored))
    lo, _ = split.target_range(role)
    start = split.offsets[:-1][scored]
    rows = np.concatenate([concat_aranges(start, lo[scored] - start), targets.index])
    labels = {s: np.asarray(store[s][rows], dtype=np.float32) for s in _SIGNALS}
    return _Period(
        targets=targets,
        n_users=len(scored),
        history=world_events(store, world, rows, slot),
        labels=labels,
        scored=world_events(store, world, targets.index, slot),
    )


def _fit_and_score(
    store: SequenceStore, period: _Period, role: EvalRole, world: World, half_life: float | None, max_iter: int
) -> dict[str, float]:
    """Score the period day by day, each day with a fit on every earlier row (weighted by ``half_life``)."""
    fit: UserFit | None = None
    n = len(period.targets)
    probs: dict[str, np.ndarray] = {s: np.full(n, np.nan) for s in _SIGNALS}
    for day in np.unique(period.scored.day):
        t0 = world.config.start_timestamp + int(day) * SECONDS_PER_DAY
        earlier = np.flatnonzero(period.history.timestamp < t0)
        ev = period.history.take(earlier)
        weights = None
        if half_life is not None:
            weights = 0.5 ** ((t0 - ev.timestamp) / SECONDS_PER_DAY / half_life)
        mean, cov = _population_prior(world, float(day))
        labels = {s: v[earlier] for s, v in period.labels.items()}
        fit = fit_users(world, ev, labels, period.n_users, mean, cov, weights=weights, max_iter=max_iter, init=fit)
        today = np.flatnonzero(period.scored.day == day)
        for s, p in fit.probabilities(world, period.scored.take(today)).items():
            probs[s][today] = p
    return score_feedback(store, period.targets.index, probs, role, skip_prob=probs["skip"])


def user_fit_feedback_metrics(
    store: SequenceStore,
    split: Split,
    world: World | None = None,
    *,
    half_lives: Sequence[float | None] = HALF_LIVES,
    max_iter: int = 100,
) -> dict[str, Any]:
    """Valid and test FP metrics of the user-fit reference, its half-life chosen on validation.

    Returns the oracle's keys (``valid/FP_AUC/<signal>``, ``test/FP_NE/<signal>``, ...) for the chosen half-life,
    plus ``user_fit/half_life_days`` (None = unweighted) and ``user_fit/valid_mean_AUC/<half-life>`` for every
    half-life tried (``inf`` for None). ``played_ratio``'s AUC is scored by ``1 - P(skip)``, as the oracle's.
    """
    missing = [s for s in _SIGNALS if s not in store.schema.feedback]
    if missing:
        raise ArgusrecError(f"{store.path}: the user-fit reference needs the simulator's feedback; missing {missing}")
    world = open_world(store) if world is None else world
    out: dict[str, Any] = {}
    best: tuple[float, float | None, dict[str, float]] | None = None
    valid = _period(store, split, "valid", world)
    for h in half_lives:
        m = _fit_and_score(store, valid, "valid", world, h, max_iter)
        auc = float(np.nanmean([m[f"valid/FP_AUC/{s}"] for s in _SIGNALS]))
        out[f"user_fit/valid_mean_AUC/{'inf' if h is None else f'{h:g}'}"] = auc
        if best is None or auc > best[0]:
            best = (auc, h, m)
    assert best is not None, "half_lives is empty"
    _, h, chosen = best
    out.update(chosen)
    out.update(_fit_and_score(store, _period(store, split, "test", world), "test", world, h, max_iter))
    out["user_fit/half_life_days"] = h
    return out


def known_taste_feedback_metrics(
    store: SequenceStore,
    split: Split,
    role: EvalRole,
    world: World | None = None,
    *,
    days_before: Sequence[float] = (0.0, 7.0),
) -> dict[str, dict[str, float]]:
    """What knowing a user's taste is worth: the oracle's feedback model with the true offsets and a stale taste.

    Variants (``{variant: FP metrics of the period}``, the oracle's keys): ``taste-<k>d`` uses every user's true
    taste ``k`` days before the period's first day (k = 0: the taste at the period's start, missing only the
    drift during the period); ``core`` uses the taste's static core (no drift at all). The oracle itself is the
    true taste of each event's day. Between these and :func:`user_fit_feedback_metrics` lies the cost of
    estimating the taste from the history.
    """
    world = open_world(store) if world is None else world
    targets = split.targets(role)
    ev = world_events(store, world, targets.index)
    params = world.user_params(world_ids(store)[0][ev.user.numpy()] - 1)  # one row per event
    n = len(targets)
    offsets = torch.from_numpy(np.stack([params.skip_bias, params.like_bias, params.dislike_bias], axis=1))
    per_event = replace(ev, user=torch.arange(n))  # "user" k = event k
    first_day = float(ev.day.min()) if n else 0.0
    tastes = {f"taste-{k:g}d": taste_at(params, np.arange(n), np.full(n, first_day - k)) for k in days_before}
    tastes["core"] = params.core
    out: dict[str, dict[str, float]] = {}
    for name, taste in tastes.items():
        fit = UserFit(torch.from_numpy(np.asarray(taste, dtype=np.float32)), offsets.float())
        probs = fit.probabilities(world, per_event)
        out[name] = score_feedback(store, targets.index, probs, role, skip_prob=probs["skip"])
    return out
