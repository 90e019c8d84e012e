"""Feedback-prediction (FP) metrics as pure numpy functions (reference/ARGUS.md §1, §6).

One feedback signal at a time: ``p`` (T,) predicted probabilities (or, for AUC, any scores) and ``y``
(T,) labels of T events, float with NaN = not observed (the store's convention, ``data/schema.py``).
Events whose label is NaN are left out of every metric; a NaN *prediction* for an observed label is
an error (a model bug, never something to average away).

* :func:`log_loss` — binary cross-entropy of binary labels (0/1).
* :func:`soft_log_loss` — cross-entropy with soft targets in [0, 1] (a continuous signal such as the
  played ratio): ``-(y log p + (1 - y) log(1 - p))``; the same formula, labels allowed anywhere in [0, 1].
* :func:`normalized_entropy`, :func:`soft_normalized_entropy` — the log loss divided by the entropy of
  the base rate, ARGUS.md §6's normalised entropy (NE). The base rate is the mean of the *evaluated*
  labels (after dropping NaN labels and masked events), i.e. the loss of the best constant predictor on
  the same events — so NE = 1 for the base-rate predictor and NE < 1 means better than knowing only the
  base rate. A base rate of exactly 0 or 1 (a single class) has zero entropy: NE is NaN.
* :func:`roc_auc` — exact ROC AUC (Mann-Whitney U with average ranks, so tied scores count half);
  NaN when only one class is present.
* :func:`pair_accuracy` — share of correctly ordered pairs, weighted or not (ARGUS.md §5's PairAccuracy).
* :func:`feedback_metrics` — all of the above per signal under the project's names
  (``test/FP_LogLoss/<s>``, ``test/FP_NE/<s>``, ``test/FP_AUC/<s>``, ``test/FP_count/<s>``).

Clipping: probabilities are clipped to ``[eps, 1 - eps]`` with ``eps = 1e-7`` before taking logs, so a
confident wrong prediction costs ``-log(1e-7) ≈ 16.1`` instead of infinity. 1e-7 is just above float32's
resolution next to 1 (``1 - 2**-24``), where model outputs come from.

**Oracle.** The simulator stores the true probability of each feedback signal (``truth`` columns). Pass
them as ``p`` (or as ``probs`` to :func:`feedback_metrics`) and the same functions give the oracle's
numbers — the floor a model's loss and NE can reach on the data, the ceiling of its AUC:

>>> rng = np.random.default_rng(0)
>>> truth = rng.uniform(0.05, 0.95, size=20_000)
>>> like = (rng.uniform(size=truth.size) < truth).astype(np.float32)
>>> oracle = feedback_metrics({"like": truth}, {"like": like}, {"like": "binary"})
>>> round(oracle["test/FP_NE/like"], 2), round(oracle["test/FP_AUC/like"], 2), oracle["test/FP_count/like"]
(0.78, 0.8, 20000)

Letters: T events, P pairs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

EPS = 1e-7
#: A continuous label counts as a positive for AUC when it is >= this (e.g. "played at least half").
CONTINUOUS_AUC_THRESHOLD = 0.5

ArrayLike = np.ndarray | Sequence[float]

__all__ = [
    "CONTINUOUS_AUC_THRESHOLD",
    "EPS",
    "feedback_metrics",
    "log_loss",
    "normalized_entropy",
    "pair_accuracy",
    "roc_auc",
    "soft_log_loss",
    "soft_normalized_entropy",
]


# ---------------------------------------------------------------------- input checks
def _observed(p: ArrayLike, y: ArrayLike, *, what: str = "p") -> tuple[np.ndarray, np.ndarray]:
    """(T,), (T,) -> the float64 pairs whose label is observed (not NaN)."""
    pa = np.asarray(p, dtype=np.float64)
    ya = np.asarray(y, dtype=np.float64)
    if pa.ndim != 1 or ya.shape != pa.shape:
        raise ValueError(f"{what} and y must both be 1-D (T,) of the same length, got {pa.shape} and {ya.shape}")
    keep = ~np.isnan(ya)
    pa, ya = pa[keep], ya[keep]
    if np.isnan(pa).any():
        raise ValueError(f"{what} has NaN where the label is observed ({int(np.isnan(pa).sum())} events)")
    return pa, ya


def _check_probs(p: np.ndarray) -> None:
    if p.size and (p.min() < 0 or p.max() > 1):
        raise ValueError(f"probabilities must lie in [0, 1], got min {p.min()}, max {p.max()} (logits given?)")


def _check_binary(y: np.ndarray) -> None:
    if not np.isin(y, (0.0, 1.0)).all():
        bad = y[~np.isin(y, (0.0, 1.0))][:3].tolist()
        raise ValueError(f"binary labels must be 0 or 1 (or NaN), got e.g. {bad}; use the soft_ variant for [0, 1]")


def _check_soft(y: np.ndarray) -> None:
    if y.size and (y.min() < 0 or y.max() > 1):
        raise ValueError(f"soft labels must lie in [0, 1], got min {y.min()}, max {y.max()}")


def _cross_entropy(p: np.ndarray, y: np.ndarray, eps: float) -> float:
    """Mean of ``-(y log p + (1 - y) log(1 - p))`` over (T,) with p clipped; NaN when T = 0."""
    if not 0 < eps < 0.5:
        raise ValueError(f"eps must be in (0, 0.5), got {eps}")
    if p.size == 0:
        return float("nan")
    q = np.clip(p, eps, 1 - eps)
    return float(-(y * np.log(q) + (1 - y) * np.log1p(-q)).mean())


def _base_rate_entropy(y: np.ndarray) -> float:
    """Entropy (nats) of a Bernoulli with the mean of y; NaN when y is empty or the mean is 0 or 1."""
    if y.size == 0:
        return float("nan")
    b = float(y.mean())
    if b <= 0.0 or b >= 1.0:
        return float("nan")
    return -(b * np.log(b) + (1 - b) * np.log1p(-b))


# ---------------------------------------------------------------------- log loss and NE
def log_loss(p: ArrayLike, y: ArrayLike, *, eps: float = EPS) -> float:
    """Mean binary cross-entropy (nats) of probabilities p (T,) against binary labels y (T,), NaN labels skipped.

    >>> round(log_loss([0.8, 0.4, 0.5], [1.0, 0.0, float("nan")]), 4)  # -(log 0.8 + log 0.6) / 2
    0.367
    >>> round(log_loss([1.0], [0.0]), 2)  # clipped at 1 - 1e-7, not infinite
    16.12
    """
    pa, ya = _observed(p, y)
    _check_probs(pa)
    _check_binary(ya)
    return _cross_entropy(pa, ya, eps)


def soft_log_loss(p: ArrayLike, y: ArrayLike, *, eps: float = EPS) -> float:
    """Mean cross-entropy of p (T,) against soft targets y (T,) in [0, 1], NaN labels skipped.

    Its minimum over p is reached at p = y and equals the mean entropy of the targets, not 0.

    >>> round(soft_log_loss([0.5, 0.9], [0.5, 1.0]), 4)  # (log 2 - log 0.9) / 2
    0.3993
    """
    pa, ya = _observed(p, y)
    _check_probs(pa)
    _check_soft(ya)
    return _cross_entropy(pa, ya, eps)


def normalized_entropy(p: ArrayLike, y: ArrayLike, *, eps: float = EPS) -> float:
    """NE: :func:`log_loss` divided by the entropy of the base rate (the mean of the evaluated labels).

    p, y: (T,). NaN when no label is observed or all observed labels are equal (zero base-rate entropy).

    >>> y = [1.0, 0.0, 0.0, 0.0]
    >>> normalized_entropy([0.25] * 4, y)  # the base-rate predictor
    1.0
    >>> round(normalized_entropy([0.9, 0.1, 0.1, 0.1], y), 4)
    0.1874
    >>> normalized_entropy([0.9, 0.2], [1.0, 1.0])  # one class: base rate 1
    nan
    """
    pa, ya = _observed(p, y)
    _check_probs(pa)
    _check_binary(ya)
    return _ratio(_cross_entropy(pa, ya, eps), _base_rate_entropy(ya))


def soft_normalized_entropy(p: ArrayLike, y: ArrayLike, *, eps: float = EPS) -> float:
    """NE for soft targets: :func:`soft_log_loss` divided by the entropy of the mean soft label.

    The constant predictor ``p = mean(y)`` has soft log loss equal to that entropy, so it again scores
    1; a perfect predictor (p = y) scores ``mean(H(y_t)) / H(mean y)``, which is 0 only for 0/1 labels.
    p, y: (T,).

    >>> round(soft_normalized_entropy([0.5, 0.5], [0.2, 0.8]), 12)  # the mean-label predictor
    1.0
    >>> round(soft_normalized_entropy([0.2, 0.8], [0.2, 0.8]), 4)  # p = y: H(0.2) / H(0.5)
    0.7219
    """
    pa, ya = _observed(p, y)
    _check_probs(pa)
    _check_soft(ya)
    return _ratio(_cross_entropy(pa, ya, eps), _base_rate_entropy(ya))


def _ratio(loss: float, entropy: float) -> float:
    if np.isnan(loss) or np.isnan(entropy):
        return float("nan")
    return float(loss / entropy)


# ---------------------------------------------------------------------- AUC
def roc_auc(scores: ArrayLike, y: ArrayLike) -> float:
    """Exact ROC AUC of scores (T,) (any real numbers) against binary labels y (T,), NaN labels skipped.

    The probability that a random positive scores above a random negative, ties counting half
    (Mann-Whitney U from average ranks; O(T log T)). NaN when the observed labels hold only one class.

    >>> roc_auc([0.9, 0.3, 0.5, 0.1], [1.0, 0.0, 1.0, 0.0])
    1.0
    >>> roc_auc([0.5, 0.5, 0.2, 0.9], [1.0, 0.0, 0.0, float("nan")])  # one tie counts 1/2: (1/2 + 1) / 2
    0.75
    >>> roc_auc([0.1, 0.2], [1.0, 1.0])
    nan
    """
    s, ya = _observed(scores, y, what="scores")
    _check_binary(ya)
    n_pos = int(ya.sum())
    n_neg = len(ya) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = _average_ranks(s)
    u = ranks[ya == 1].sum() - n_pos * (n_pos + 1) / 2
    return float(u / (n_pos * n_neg))


def _average_ranks(s: np.ndarray) -> np.ndarray:
    """1-based ranks of s (T,), tied values sharing the mean of their ranks (scipy's ``rankdata``)."""
    order = np.argsort(s, kind="stable")
    sorted_s = s[order]
    # Each run of equal values [start, end) gets rank (start + 1 + end) / 2, the mean of start+1 .. end.
    new_group = np.empty(len(s), dtype=bool)
    new_group[0] = True
    new_group[1:] = sorted_s[1:] != sorted_s[:-1]
    starts = np.flatnonzero(new_group)
    ends = np.append(starts[1:], len(s))
    group_rank = (starts + 1 + ends) / 2.0
    ranks = np.empty(len(s), dtype=np.float64)
    ranks[order] = np.repeat(group_rank, ends - starts)
    return ranks


# ---------------------------------------------------------------------- pairs
def pair_accuracy(
    score_a: ArrayLike,
    score_b: ArrayLike,
    label_a_better: ArrayLike,
    weights: ArrayLike | None = None,
) -> float:
    """Share of pairs the scores order correctly (ARGUS.md §5 PairAccuracy), weighted or not.

    Pair i is correct when ``score_a[i] > score_b[i]`` and a is the better item, or ``score_a[i] <
    score_b[i]`` and b is; equal scores count **half** (a random tie-break is right half the time, so
    a constant scorer gets 0.5, not 0 or 1). With weights it is ``sum(w * correct) / sum(w)``.

    Args:
        score_a: (P,) score of the first item of each pair.
        score_b: (P,) score of the second item.
        label_a_better: (P,) bool (or 0/1): true when the first item got the better feedback.
        weights: (P,) non-negative pair weights (e.g. from the feedback difference), or None for all 1.

    Returns:
        The (weighted) share in [0, 1]; NaN with no pairs or zero total weight.

    >>> pair_accuracy([2.0, 1.0, 0.5], [1.0, 3.0, 0.5], [True, True, False])  # right, wrong, tie
    0.5
    >>> pair_accuracy([2.0, 1.0, 0.5], [1.0, 3.0, 0.5], [True, True, False], weights=[3.0, 1.0, 0.0])
    0.75
    """
    a = np.asarray(score_a, dtype=np.float64)
    b = np.asarray(score_b, dtype=np.float64)
    lab = np.asarray(label_a_better)
    if a.ndim != 1 or b.shape != a.shape or lab.shape != a.shape:
        raise ValueError(f"score_a, score_b, label_a_better must be (P,) alike, got {a.shape}, {b.shape}, {lab.shape}")
    if np.isnan(a).any() or np.isnan(b).any():
        raise ValueError("pair scores contain NaN")
    if lab.dtype != np.bool_:
        if not np.isin(lab, (0, 1)).all():
            raise ValueError("label_a_better must be bool or 0/1")
        lab = lab.astype(bool)
    correct = np.where(a == b, 0.5, ((a > b) == lab).astype(np.float64))  # (P,)
    if weights is None:
        return float(correct.mean()) if correct.size else float("nan")
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != a.shape:
        raise ValueError(f"weights must be (P,) = {a.shape}, got {w.shape}")
    if np.isnan(w).any() or (w < 0).any():
        raise ValueError("pair weights must be non-negative numbers")
    total = w.sum()
    return float((w * correct).sum() / total) if total > 0 else float("nan")


# ---------------------------------------------------------------------- all signals
def feedback_metrics(
    probs: Mapping[str, ArrayLike],
    labels: Mapping[str, ArrayLike],
    kinds: Mapping[str, str],
    prefix: str = "test/",
    *,
    mask: ArrayLike | None = None,
    eps: float = EPS,
) -> dict[str, float]:
    """FP metrics of every signal under the project's names (DESIGN.md), in the order of ``probs``.

    Keys per signal s: ``{prefix}FP_LogLoss/s``, ``{prefix}FP_NE/s``, ``{prefix}FP_AUC/s`` and
    ``{prefix}FP_count/s`` (the number of evaluated events: observed label and inside ``mask``).

    * ``"binary"`` signals: :func:`log_loss`, :func:`normalized_entropy`, :func:`roc_auc`.
    * ``"continuous"`` signals (labels in [0, 1], e.g. played ratio): :func:`soft_log_loss`,
      :func:`soft_normalized_entropy`, and the AUC of the predictions against the label thresholded
      at ``label >= 0.5`` (:data:`CONTINUOUS_AUC_THRESHOLD`; "played at least half").

    ARGUS.md §6 computes metrics only on test-period events: pass only those, or pass all with
    ``mask``. Pass true probabilities as ``probs`` to get the oracle's numbers.

    Args:
        probs: signal -> (T,) predicted probabilities.
        labels: signal -> (T,) labels, NaN = not observed; the same keys as ``probs``.
        kinds: signal -> ``"binary"`` or ``"continuous"`` (a :class:`~argusrec.data.schema.FeedbackKind`
            works too); may hold more signals than ``probs``.
        prefix: split label, e.g. ``"test/"``, ``"valid/"`` or ``""``.
        mask: (T,) bool, true for the events to evaluate, or None for all.
        eps: probability clip for the log losses.

    >>> m = feedback_metrics({"like": [0.8, 0.3], "played": [0.6, 0.4]},
    ...                      {"like": [1.0, 0.0], "played": [0.9, float("nan")]},
    ...                      {"like": "binary", "played": "continuous"})
    >>> [(k, round(v, 3)) for k, v in m.items()]  # doctest: +NORMALIZE_WHITESPACE
    [('test/FP_LogLoss/like', 0.29), ('test/FP_NE/like', 0.418), ('test/FP_AUC/like', 1.0),
     ('test/FP_count/like', 2), ('test/FP_LogLoss/played', 0.551), ('test/FP_NE/played', 1.696),
     ('test/FP_AUC/played', nan), ('test/FP_count/played', 1)]
    """
    if set(probs) != set(labels):
        raise ValueError(f"probs and labels must name the same signals, got {sorted(probs)} and {sorted(labels)}")
    missing = [s for s in probs if s not in kinds]
    if missing:
        raise ValueError(f"no kind given for signals {missing}; kinds: {sorted(kinds)}")
    keep = None if mask is None else np.asarray(mask)
    if keep is not None and keep.dtype != np.bool_:
        raise ValueError(f"mask must be a bool array, got dtype {keep.dtype}")
    out: dict[str, float] = {}
    for s in probs:
        p = np.asarray(probs[s], dtype=np.float64)
        y = np.asarray(labels[s], dtype=np.float64)
        if keep is not None:
            if keep.shape != p.shape or keep.shape != y.shape:
                raise ValueError(f"signal {s!r}: mask {keep.shape} does not match probs {p.shape} / labels {y.shape}")
            p, y = p[keep], y[keep]
        kind = kinds[s]
        if kind == "binary":
            loss, ne = log_loss(p, y, eps=eps), normalized_entropy(p, y, eps=eps)
            auc = roc_auc(p, y)
        elif kind == "continuous":
            loss, ne = soft_log_loss(p, y, eps=eps), soft_normalized_entropy(p, y, eps=eps)
            auc = roc_auc(p, np.where(np.isnan(y), np.nan, (y >= CONTINUOUS_AUC_THRESHOLD).astype(np.float64)))
        else:
            raise ValueError(f"signal {s!r}: kind must be 'binary' or 'continuous', got {kind!r}")
        out[f"{prefix}FP_LogLoss/{s}"] = loss
        out[f"{prefix}FP_NE/{s}"] = ne
        out[f"{prefix}FP_AUC/{s}"] = auc
        out[f"{prefix}FP_count/{s}"] = int((~np.isnan(y)).sum())
    return out
