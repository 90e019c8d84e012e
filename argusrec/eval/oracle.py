"""Ground truth on simulated data: the oracle's FP and NIP numbers, a popularity FP baseline, gap closure.

The simulator (:mod:`argusrec.data.simulator`) knows what generated every event, so on its data a model's
metrics can be placed between a baseline and the best any model could do (reference/ARGUS.md §6):

* :func:`oracle_feedback_metrics` — :func:`~argusrec.eval.feedback.feedback_metrics` of the **true** feedback
  probabilities of the period's events, read from the store's truth columns (``skip_prob``, ``like_prob``,
  ``dislike_prob``, ``true_affinity``). For the continuous ``played_ratio`` the oracle predicts its expectation
  ``E[played_ratio]`` (the minimiser of the soft log loss) and its AUC is scored with ``P(played_ratio >= 0.5) =
  1 - skip_prob`` (the best score for that label), so neither number can be beaten in expectation.
* :func:`oracle_nip` — the NIP cross-entropy ``-log p_true(item_t)`` of each period event under the distribution
  that actually drew it, given the event's context: the logging policy pi of its request without the slate's
  earlier items (recommendation surfaces), the organic distribution ``∝ pop^gamma exp(beta a(u, t, i))``
  (search, and library visits with an empty library), or the uniform replay of the user's earlier library pool
  (library). ``<role>/NIP_loss`` is the mean of ``-log p_true(item_t)`` (comparable with a model's NIP loss on the
  same events); ``<role>/NIP_entropy`` the mean exact entropy of those distributions (the same quantity in
  expectation, with less noise); both also per surface kind. The oracle knows more than any model can (the
  user's latent taste, the slate boundaries), so it is a floor, not a target.
* :func:`popularity_feedback_metrics` — the FP baseline: each item's training-period mean of each signal,
  shrunk toward the signal's global training mean (``(sum_i + k·mean) / (n_i + k)``).
* :func:`gap_closed` / :func:`gap_closure_metrics` — the share of the baseline-to-oracle gap a model closes,
  ``(model - baseline) / (oracle - baseline)`` (1 = as good as the oracle, 0 = no better than the baseline);
  the same formula for metrics where higher is better (AUC) and lower is better (NE, loss).

Only datasets written by ``argusrec data simulate`` (truth columns; the latent world under ``latent/``, or the
simulation config in the manifest to rebuild it) have an oracle. Letters: T period events, V catalog, G genres.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from argusrec.data.simulator import (
    LIBRARY,
    POSITIVE_PLAY_RATIO,
    RECOMMENDATION,
    SEARCH,
    SimulationConfig,
    World,
    build_world,
    event_day,
    load_latent,
    policy_view,
    taste,
)
from argusrec.data.splits import EvalRole, EventRole, Split
from argusrec.data.store import SequenceStore
from argusrec.errors import ArgusrecError
from argusrec.eval.feedback import CONTINUOUS_AUC_THRESHOLD, feedback_metrics, roc_auc
from argusrec.nn.feedback_scale import FeedbackRange, scale_feedback

__all__ = [
    "TRUTH_COLUMNS",
    "expected_played_ratio",
    "gap_closed",
    "gap_closure_metrics",
    "open_world",
    "oracle_feedback_metrics",
    "oracle_nip",
    "popularity_feedback_metrics",
    "score_feedback",
    "true_feedback",
    "world_codes",
    "world_ids",
]

#: Binary feedback signal -> the simulator's truth column holding its true probability.
TRUTH_COLUMNS = {"skip": "skip_prob", "like": "like_prob", "dislike": "dislike_prob"}
BLOCK = 1 << 22  # (events x items) entries per block of the organic distribution: 16 MB of float32


# ---------------------------------------------------------------------- the simulated world
def open_world(store: SequenceStore) -> World:
    """The simulator's latent world of ``store``: the stored latent, else rebuilt from the manifest's config.

    Raises:
        ArgusrecError: the store was not written by the simulator.
    """
    extra = store.manifest.get("extra") or {}
    if store.path is not None and extra.get("latent") and (Path(store.path) / extra["latent"]).is_dir():
        return load_latent(Path(store.path) / extra["latent"])
    if "simulation" in extra:  # the world is a deterministic function of the config
        return build_world(SimulationConfig.model_validate(extra["simulation"]))
    raise ArgusrecError(
        f"{store.path}: not a simulated dataset (no latent/ and no simulation config in the manifest); "
        "the oracle needs data from `argusrec data simulate`"
    )


def _simulation_config(store: SequenceStore) -> SimulationConfig:
    extra = store.manifest.get("extra") or {}
    if "simulation" not in extra:
        raise ArgusrecError(f"{store.path}: no simulation config in the manifest; not a simulated dataset")
    return SimulationConfig.model_validate(extra["simulation"])


def _check_truth(store: SequenceStore) -> None:
    missing = [c for c in (*TRUTH_COLUMNS.values(), "true_affinity") if c not in store.schema.truth]
    if missing:
        raise ArgusrecError(f"{store.path}: no truth columns {missing}; the oracle needs simulated data")


# ---------------------------------------------------------------------- feedback
def expected_played_ratio(skip_prob: np.ndarray, affinity: np.ndarray, config: SimulationConfig) -> np.ndarray:
    """``E[played_ratio]`` of events (T,) from their skip probability and true affinity: (T,) float64.

    A skipped track plays ``skip_play_max · u²`` (mean ``skip_play_max / 3``); a played one plays to the end
    with probability ``full = sigmoid(full_play_base + full_play_slope · a)``, else a uniform share in
    ``[listen_play_min, 1)``.
    """
    f = config.feedback
    skip = np.asarray(skip_prob, dtype=np.float64)
    full = 1.0 / (1.0 + np.exp(-(f.full_play_base + f.full_play_slope * np.asarray(affinity, dtype=np.float64))))
    listened = full + (1.0 - full) * (1.0 + f.listen_play_min) / 2.0
    return skip * f.skip_play_max / 3.0 + (1.0 - skip) * listened


def true_feedback(store: SequenceStore, rows: np.ndarray) -> dict[str, np.ndarray]:
    """True probability (``played_ratio``: expectation) of every feedback signal at store rows (T,): (T,) each."""
    _check_truth(store)
    rows = np.asarray(rows, dtype=np.int64)
    out: dict[str, np.ndarray] = {}
    for s in store.schema.feedback:
        if s in TRUTH_COLUMNS:
            out[s] = np.asarray(store[TRUTH_COLUMNS[s]][rows], dtype=np.float64)
        elif s == "played_ratio":
            skip = store["skip_prob"][rows]
            out[s] = expected_played_ratio(skip, store["true_affinity"][rows], _simulation_config(store))
        else:
            raise ArgusrecError(f"no ground truth for feedback signal {s!r}")
    return out


def oracle_feedback_metrics(store: SequenceStore, split: Split, role: EvalRole) -> dict[str, float]:
    """FP metrics of the true probabilities on the ``role`` period's events (the events a model is scored on)."""
    rows = split.targets(role).index
    skip = store["skip_prob"][rows].astype(np.float64) if "played_ratio" in store.schema.feedback else None
    return score_feedback(store, rows, true_feedback(store, rows), role, skip_prob=skip)


def score_feedback(
    store: SequenceStore,
    rows: np.ndarray,
    probs: Mapping[str, np.ndarray],
    role: str,
    *,
    skip_prob: np.ndarray | None = None,
) -> dict[str, float]:
    """FP metrics of predictions ``probs`` (signal -> (T,)) of the simulator's signals at store ``rows`` (T,).

    ``played_ratio`` is predicted by its expectation (its log loss and NE) and, when ``skip_prob`` (T,) is given,
    its AUC of "played at least half" = "not skipped" is scored by ``1 - skip_prob``, the best score for that label.
    """
    labels = {s: np.asarray(store[s][rows], dtype=np.float64) for s in probs}
    kinds = {s: store.schema.feedback_kind(s).value for s in probs}
    metrics = feedback_metrics(probs, labels, kinds, prefix=f"{role}/")
    if "played_ratio" in probs and skip_prob is not None:
        y = labels["played_ratio"]
        y = np.where(np.isnan(y), np.nan, (y >= CONTINUOUS_AUC_THRESHOLD).astype(np.float64))
        metrics[f"{role}/FP_AUC/played_ratio"] = roc_auc(1.0 - np.asarray(skip_prob, dtype=np.float64), y)
    return metrics


def popularity_feedback_metrics(
    store: SequenceStore,
    split: Split,
    role: EvalRole,
    *,
    smoothing: float = 20.0,
    signals: Sequence[str] | None = None,
    feedback_ranges: Mapping[str, FeedbackRange] | None = None,
) -> dict[str, float]:
    """FP metrics of the popularity baseline on the ``role`` period's events.

    Each item predicts its training-period mean of the signal shrunk toward the global training mean with
    ``smoothing`` pseudo-events: ``(sum_i + k·mean) / (n_i + k)``; items never trained on predict the mean.
    Works on any store with feedback columns (NaN labels are skipped in the means too). Continuous signals
    outside [0, 1] are first mapped by ``feedback_ranges`` (the ARGUS run's,
    :func:`argusrec.recipes.pretrain.feedback_ranges`), so the baseline is scored on the model's labels.
    """
    ranges = dict(feedback_ranges or {})

    def column(s: str, rows: np.ndarray) -> np.ndarray:
        values = torch.from_numpy(np.asarray(store[s][rows], dtype=np.float32))
        return scale_feedback(values, ranges.get(s)).double().numpy()

    if smoothing < 0:
        raise ValueError(f"smoothing must be >= 0, got {smoothing}")
    signals = list(store.schema.feedback if signals is None else signals)
    train = np.flatnonzero(split.event_roles() == EventRole.TRAIN)
    rows = split.targets(role).index
    items_train = np.asarray(store.items[train], dtype=np.int64)
    items_eval = np.asarray(store.items[rows], dtype=np.int64)
    probs, labels, kinds = {}, {}, {}
    for s in signals:
        y = column(s, train)
        seen = ~np.isnan(y)
        total = np.bincount(items_train[seen], weights=y[seen], minlength=store.n_items + 1)
        count = np.bincount(items_train[seen], minlength=store.n_items + 1).astype(np.float64)
        mean = float(y[seen].mean()) if seen.any() else 0.5
        per_item = (total + smoothing * mean) / np.maximum(count + smoothing, 1e-12)
        per_item[count + smoothing == 0] = mean
        probs[s] = np.clip(per_item[items_eval], 0.0, 1.0)
        labels[s] = column(s, rows)
        kinds[s] = store.schema.feedback_kind(s).value
    return feedback_metrics(probs, labels, kinds, prefix=f"{role}/")


# ---------------------------------------------------------------------- next item
def oracle_nip(
    store: SequenceStore,
    split: Split,
    role: EvalRole,
    world: World | None = None,
    *,
    max_events: int | None = None,
    seed: int = 0,
) -> dict[str, float]:
    """The oracle's NIP cross-entropy and entropy on the ``role`` period (module docstring).

    Args:
        store: a simulated dataset.
        split: the split the models were evaluated on.
        role: ``"valid"`` or ``"test"``.
        world: the latent world (default :func:`open_world`).
        max_events: score a seeded uniform subset of at most this many period events (the organic
            distribution costs O(V·d) per search event); None = all. ``<role>/NIP_oracle_subset`` says which.
        seed: seed of the subset.

    Returns:
        ``<role>/NIP_loss``, ``<role>/NIP_loss_se`` (its standard error), ``<role>/NIP_entropy``,
        ``<role>/NIP_count``, ``<role>/NIP_oracle_subset`` (1.0 when a subset was scored) and, per surface kind k
        (``recommendation``, ``search``, ``library``), ``<role>/NIP_loss/k``, ``<role>/NIP_entropy/k`` and
        ``<role>/NIP_count/k``.
    """
    world = open_world(store) if world is None else world
    targets = split.targets(role)
    rows, users = targets.index, targets.user
    subset = max_events is not None and len(rows) > max_events
    if subset:
        assert max_events is not None
        pick = np.sort(np.random.default_rng(seed).choice(len(rows), size=max_events, replace=False))
        rows, users = rows[pick], users[pick]
    logp, ent, kind = true_item_log_probs(store, world, rows, users)
    prefix = f"{role}/"
    n = len(rows)
    nll = -logp
    out: dict[str, float] = {
        f"{prefix}NIP_loss": float(nll.mean()) if n else float("nan"),
        f"{prefix}NIP_loss_se": float(nll.std(ddof=1) / math.sqrt(n)) if n > 1 else float("nan"),
        f"{prefix}NIP_entropy": float(ent.mean()) if n else float("nan"),
        f"{prefix}NIP_count": n,
        f"{prefix}NIP_oracle_subset": float(subset),
    }
    for code, name in ((RECOMMENDATION, "recommendation"), (SEARCH, "search"), (LIBRARY, "library")):
        sel = kind == code
        out[f"{prefix}NIP_loss/{name}"] = float(nll[sel].mean()) if sel.any() else float("nan")
        out[f"{prefix}NIP_entropy/{name}"] = float(ent[sel].mean()) if sel.any() else float("nan")
        out[f"{prefix}NIP_count/{name}"] = int(sel.sum())
    return out


def true_item_log_probs(
    store: SequenceStore, world: World, rows: np.ndarray, users: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For store rows (T,) of users (T,) (0-based indices): ``(log p_true(item), entropy, surface kind)``, (T,) each.

    The distribution of an event is the one its surface drew it from, given everything the simulator knew.
    """
    rows = np.asarray(rows, dtype=np.int64)
    users = np.asarray(users, dtype=np.int64)
    ext_user, ext_item = world_ids(store)
    surface_code = world_codes(store, "surface", world.surfaces)  # store code -> world surface index
    all_items = np.asarray(store.items, dtype=np.int64)
    surf_all = surface_code[np.asarray(store["surface"], dtype=np.int64)]  # (E,) world surface index

    surf = surf_all[rows]
    kind = world.surface_kind[surf]
    ts = np.asarray(store.timestamps[rows], dtype=np.int64)
    items0 = ext_item[all_items[rows]] - 1  # (T,) 0-based world item index
    logp = np.full(len(rows), np.nan)
    ent = np.full(len(rows), np.nan)

    rec = np.flatnonzero(kind == RECOMMENDATION)
    if rec.size:
        logp[rec], ent[rec] = _policy_terms(store, world, rows[rec], users[rec], ext_user, ext_item, surf_all)
    lib = np.flatnonzero(kind == LIBRARY)
    organic = list(np.flatnonzero(kind == SEARCH))
    if lib.size:
        lp, en, fallback = _replay_terms(store, world, rows[lib], users[lib], ext_item, surf_all)
        logp[lib], ent[lib] = lp, en
        organic += list(lib[fallback])
    org = np.sort(np.asarray(organic, dtype=np.int64))
    if org.size:
        logp[org], ent[org] = _organic_terms(world, ext_user[users[org]], ts[org], items0[org])
    return logp, ent, kind


def world_ids(store: SequenceStore) -> tuple[np.ndarray, np.ndarray]:
    """The simulator's external ids of the store's indices: ``(user (U,), item (n_items + 1,))`` int64.

    ``user[u]`` is the id of store user u and ``item[i]`` that of store item i (0 = padding); the world's
    0-based indices are these ids minus one.
    """
    ext_user = np.asarray(store.user_table().column("user_id").to_numpy(), dtype=np.int64)
    item_table = store.item_table()
    ext_item = np.zeros(store.n_items + 1, dtype=np.int64)
    ext_item[item_table.column("item_index").to_numpy()] = item_table.column("item_id").to_numpy()
    return ext_user, ext_item


def world_codes(store: SequenceStore, column: str, names: list[str]) -> np.ndarray:
    """(n_vocab + 1,) map from the store's codes of ``column`` (1..n, 0 unused) to indices into ``names``."""
    vocab = store.vocab(column)
    lookup = {n: i for i, n in enumerate(names)}
    unknown = [v for v in vocab if v not in lookup]
    if unknown:
        raise ArgusrecError(f"{column} values {unknown} are not in the simulated world ({names})")
    return np.array([-1, *[lookup[v] for v in vocab]], dtype=np.int64)


def _organic_terms(
    world: World, user_ids: np.ndarray, timestamps: np.ndarray, items0: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Organic picks: ``P(i) ∝ pop_i^gamma exp(beta a(u, t, i))`` over the catalog; (n,) log p(item) and entropy."""
    cfg = world.config.taste
    log_prior = cfg.organic_pop_power * np.log(world.item_popularity)  # (V,)
    quality = world.item_quality.astype(np.float32)
    offsets_t = np.ascontiguousarray(world.item_offset.T, dtype=np.float32)  # (d, V)
    n, v = len(items0), world.n_items
    logp, ent = np.empty(n), np.empty(n)
    step = max(1, BLOCK // v)
    for lo in range(0, n, step):
        sl = slice(lo, lo + step)
        u = taste(world, user_ids[sl], timestamps[sl])  # (b, d) float32, at the start of the event's day
        genre = world.genre_affinity(u @ world.centroids.T)  # (b, G)
        a = genre[:, world.item_genre] + world.item_affinity(u @ offsets_t) + quality  # (b, V)
        logw = log_prior + cfg.organic_beta * a.astype(np.float64)  # (b, V)
        logw -= logw.max(axis=1, keepdims=True)
        log_z = np.log(np.exp(logw).sum(axis=1, keepdims=True))
        log_q = logw - log_z  # (b, V) log P(i)
        logp[sl] = np.take_along_axis(log_q, items0[sl, None], axis=1)[:, 0]
        ent[sl] = -(np.exp(log_q) * log_q).sum(axis=1)
    return logp, ent


def _policy_terms(
    store: SequenceStore,
    world: World,
    rows: np.ndarray,
    users: np.ndarray,
    ext_user: np.ndarray,
    ext_item: np.ndarray,
    surf_all: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Recommendation events: pi of the request without the slate's earlier items; (n,) log p and entropy.

    ``pi(i) = pop_i phi_g(i)`` with ``phi_g = eps + (1 - eps) exp(l_g) / Z`` is constant within a genre, so
    ``sum_i pi_i log pi_i = sum_g phi_g (A_g + P_g log phi_g)`` with ``A_g = sum_{i in g} pop_i log pop_i`` and
    ``P_g = sum_{i in g} pop_i``: O(G) per event. Removing the slate's earlier items E (mass m = 1 - pi(E)):
    ``H = -(sum_{i not in E} pi_i log pi_i) / m + log m`` and ``p(item) = pi(item) / m``.
    """
    request = np.asarray(store["request_id"], dtype=np.int64)
    offsets = store.offsets
    items_all = np.asarray(store.items, dtype=np.int64)
    # the request's first row: walk back while the previous row of the same user has the same request id
    first = rows.copy()
    max_slate = max(s.slate_size for s in world.config.surfaces.values())
    active = np.ones(len(rows), dtype=bool)
    for _ in range(max_slate):
        prev = first - 1
        ok = active & (prev >= offsets[users]) & (request[np.maximum(prev, 0)] == request[rows])
        first = np.where(ok, prev, first)
        active = ok
        if not active.any():
            break
    surf = surf_all[rows]
    specs = list(world.config.surfaces.values())
    beta = np.array([s.policy_beta for s in specs])[surf]
    eps = np.array([s.policy_epsilon for s in specs])[surf]
    uniq, inv = np.unique(ext_user[users] - 1, return_inverse=True)
    day = event_day(world, np.asarray(store.timestamps[first], dtype=np.int64))
    u_hat = policy_view(world.user_params(uniq), inv, day, world.config.policy.lag_days)  # (n, d)
    logits = beta[:, None] * (u_hat.astype(np.float64) @ world.centroids.T.astype(np.float64))  # (n, G)
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    pop_g = world.genre_popularity  # (G,)
    phi = eps[:, None] + (1 - eps[:, None]) * e / (e @ pop_g)[:, None]  # (n, G)
    pop = world.item_popularity
    a_g = np.bincount(world.item_genre, pop * np.log(pop), minlength=world.n_genres)  # (G,)
    s_all = (phi * (a_g + pop_g * np.log(phi))).sum(axis=1)  # (n,) sum_i pi_i log pi_i

    def pi_of(k: np.ndarray, item_rows: np.ndarray) -> np.ndarray:
        it = ext_item[items_all[item_rows]] - 1
        return pop[it] * phi[k, world.item_genre[it]]

    idx = np.arange(len(rows))
    removed_mass = np.zeros(len(rows))
    removed_s = np.zeros(len(rows))
    depth = rows - first
    for j in range(1, int(depth.max(initial=0)) + 1):  # the slate's earlier items, one slot at a time
        k = idx[depth >= j]
        pj = pi_of(k, rows[k] - j)
        removed_mass[k] += pj
        removed_s[k] += pj * np.log(pj)
    m = np.maximum(1.0 - removed_mass, 1e-300)
    entropy = -(s_all - removed_s) / m + np.log(m)
    logp = np.log(pi_of(idx, rows)) - np.log(m)
    return logp, entropy


def _replay_terms(
    store: SequenceStore,
    world: World,
    rows: np.ndarray,
    users: np.ndarray,
    ext_item: np.ndarray,
    surf_all: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Library events: a uniform draw from the user's earlier pool events (liked or played >= 80%, from other
    surfaces, plus the user's first positive event); with an empty pool, an organic pick.

    Returns (n,) log p and entropy (NaN for fallbacks) and (n,) bool: the event is an organic fallback.
    """
    offsets = store.offsets
    items_all = np.asarray(store.items, dtype=np.int64)
    like = np.asarray(store["like"])
    played = np.asarray(store["played_ratio"])
    is_lib = world.surface_kind == LIBRARY
    n = len(rows)
    logp, ent = np.full(n, np.nan), np.full(n, np.nan)
    fallback = np.zeros(n, dtype=bool)
    order = np.argsort(users, kind="stable")
    for u, group in _groups(users[order], order):
        lo, hi = int(offsets[u]), int(rows[group].max())
        positive = (like[lo:hi] > 0.5) | (played[lo:hi] >= POSITIVE_PLAY_RATIO)
        first = np.zeros_like(positive)
        if positive.any():
            first[np.argmax(positive)] = True
        pool = positive & (~is_lib[surf_all[lo:hi]] | first)  # world.replay_pool's rule, on store codes
        pool_items = ext_item[items_all[lo:hi]]
        for g in group:
            before = pool[: rows[g] - lo]
            if not before.any():
                fallback[g] = True
                continue
            values, counts = np.unique(pool_items[: rows[g] - lo][before], return_counts=True)
            total = counts.sum()
            target = ext_item[items_all[rows[g]]]
            hit = counts[values == target]
            logp[g] = math.log(hit[0] / total) if hit.size else -math.inf
            q = counts / total
            ent[g] = float(-(q * np.log(q)).sum())
    return logp, ent, fallback


def _groups(sorted_keys: np.ndarray, order: np.ndarray) -> list[tuple[int, np.ndarray]]:
    """(key, positions) for each run of equal keys in ``sorted_keys`` (positions from ``order``)."""
    if not len(sorted_keys):
        return []
    starts = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]])
    ends = np.r_[starts[1:], len(sorted_keys)]
    return [(int(sorted_keys[s]), order[s:e]) for s, e in zip(starts, ends, strict=True)]


# ---------------------------------------------------------------------- gap closure
def gap_closed(model: float, baseline: float, oracle: float) -> float:
    """Share of the baseline-to-oracle gap the model closes: ``(model - baseline) / (oracle - baseline)``.

    1 = as good as the oracle, 0 = as good as the baseline, < 0 = worse than the baseline. Works for metrics
    where higher is better and where lower is better alike; NaN when any input is NaN or the gap is ~0.

    >>> round(gap_closed(0.75, 0.6, 0.8), 6)  # AUC: 0.15 of a 0.2 gap
    0.75
    >>> round(gap_closed(0.9, 1.0, 0.8), 6)  # NE: lower is better
    0.5
    """
    if any(not math.isfinite(x) for x in (model, baseline, oracle)):
        return float("nan")
    gap = oracle - baseline
    if abs(gap) < 1e-12:
        return float("nan")
    return (model - baseline) / gap


def gap_closure_metrics(
    model: Mapping[str, Any],
    baseline: Mapping[str, Any],
    oracle: Mapping[str, Any],
    *,
    role: str = "test",
    names: Sequence[str] = ("FP_AUC", "FP_NE", "NIP_loss"),
) -> dict[str, float]:
    """``<role>/<name>_gap_closed[/<signal>]`` for every ``<role>/<name>[/<signal>]`` key in all three mappings.

    >>> m = gap_closure_metrics({"test/FP_AUC/like": 0.7}, {"test/FP_AUC/like": 0.6}, {"test/FP_AUC/like": 0.8})
    >>> {k: round(v, 6) for k, v in m.items()}
    {'test/FP_AUC_gap_closed/like': 0.5}
    """
    out: dict[str, float] = {}
    for key, value in model.items():
        head, _, signal = key.partition("/")[2].partition("/")
        if not key.startswith(f"{role}/") or head not in names or key not in baseline or key not in oracle:
            continue
        new = f"{role}/{head}_gap_closed" + (f"/{signal}" if signal else "")
        out[new] = gap_closed(float(value), float(baseline[key]), float(oracle[key]))
    return out
