"""FP metrics: hand-computed log loss / NE / AUC, brute-force AUC, NE anchors, pair accuracy, metric names."""

from __future__ import annotations

import doctest
import math

import numpy as np
import pytest

from argusrec.data.schema import FeedbackKind
from argusrec.eval import feedback
from argusrec.eval.feedback import (
    feedback_metrics,
    log_loss,
    normalized_entropy,
    pair_accuracy,
    roc_auc,
    soft_log_loss,
    soft_normalized_entropy,
)

NAN = float("nan")


def test_doctests() -> None:
    result = doctest.testmod(feedback, optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 15
    assert result.failed == 0


def _h(b: float) -> float:
    return -(b * math.log(b) + (1 - b) * math.log(1 - b))


# ---------------------------------------------------------------------- log loss and NE
def test_log_loss_hand_computed_with_nan_labels() -> None:
    p = [0.9, 0.2, 0.6, 0.7]
    y = [1.0, 0.0, NAN, 0.0]
    expected = -(math.log(0.9) + math.log(0.8) + math.log(0.3)) / 3
    assert log_loss(p, y) == pytest.approx(expected, rel=1e-12)
    # The NaN-labelled event is ignored whatever its prediction (even NaN).
    assert log_loss([0.9, 0.2, NAN, 0.7], y) == pytest.approx(expected, rel=1e-12)
    # NE divides by the entropy of the evaluated labels' base rate: 1/3 (the NaN event does not count).
    assert normalized_entropy(p, y) == pytest.approx(expected / _h(1 / 3), rel=1e-12)


def test_log_loss_clips_and_rejects_bad_input() -> None:
    assert log_loss([0.0, 1.0], [1.0, 0.0]) == pytest.approx(-math.log(1e-7), rel=1e-6)
    assert log_loss([0.0, 1.0], [1.0, 0.0], eps=1e-3) == pytest.approx(-math.log(1e-3), rel=1e-9)
    assert math.isnan(log_loss([0.3], [NAN]))  # nothing observed
    with pytest.raises(ValueError, match="NaN"):
        log_loss([NAN, 0.5], [1.0, 0.0])  # a NaN prediction for an observed label is a bug
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        log_loss([1.5], [1.0])  # logits passed as probabilities
    with pytest.raises(ValueError, match="binary"):
        log_loss([0.5], [0.3])  # soft label to the binary loss
    with pytest.raises(ValueError, match="same length"):
        log_loss([0.5, 0.5], [1.0])


def test_ne_anchors_base_rate_is_one_perfect_is_zero_single_class_is_nan() -> None:
    rng = np.random.default_rng(1)
    y = (rng.uniform(size=1000) < 0.3).astype(np.float64)
    y[::7] = np.nan  # unobserved events must not change the base rate used
    base = np.nanmean(y)
    assert normalized_entropy(np.full(y.shape, base), y) == pytest.approx(1.0, abs=1e-12)
    perfect = np.where(np.isnan(y), 0.5, y)
    assert normalized_entropy(perfect, y) == pytest.approx(0.0, abs=1e-5)
    assert normalized_entropy(np.full(y.shape, 0.5), y) > 1.0  # worse than the base rate
    assert math.isnan(normalized_entropy([0.2, 0.4], [0.0, 0.0]))
    assert math.isnan(normalized_entropy([0.2, 0.4], [1.0, NAN]))
    assert math.isnan(normalized_entropy([0.2], [NAN]))


def test_soft_log_loss_and_soft_ne() -> None:
    p = np.array([0.3, 0.8, 0.5])
    y = np.array([0.25, 1.0, NAN])
    expected = -((0.25 * math.log(0.3) + 0.75 * math.log(0.7)) + math.log(0.8)) / 2
    assert soft_log_loss(p, y) == pytest.approx(expected, rel=1e-12)
    assert soft_normalized_entropy(p, y) == pytest.approx(expected / _h(0.625), rel=1e-12)
    # The mean-label predictor scores 1; p = y scores mean(H(y)) / H(mean y) < 1, and beats any other p.
    ys = np.array([0.1, 0.4, 0.7, 0.9])
    assert soft_normalized_entropy(np.full(4, ys.mean()), ys) == pytest.approx(1.0, abs=1e-12)
    at_y = soft_normalized_entropy(ys, ys)
    assert at_y == pytest.approx(np.mean([_h(v) for v in ys]) / _h(ys.mean()), rel=1e-9)
    assert at_y < soft_normalized_entropy(np.clip(ys + 0.05, 0, 1), ys)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        soft_log_loss([0.5], [1.2])


# ---------------------------------------------------------------------- AUC
def test_auc_hand_cases_ties_nan_single_class() -> None:
    assert roc_auc([0.1, 0.9], [0.0, 1.0]) == 1.0
    assert roc_auc([0.9, 0.1], [0.0, 1.0]) == 0.0
    # pos {0.8, 0.4}, neg {0.4, 0.2, NaN-labelled}: pairs (0.8>0.4) 1, (0.8>0.2) 1, (0.4=0.4) 1/2, (0.4>0.2) 1
    assert roc_auc([0.8, 0.4, 0.4, 0.2, 0.99], [1.0, 1.0, 0.0, 0.0, NAN]) == pytest.approx(3.5 / 4)
    assert roc_auc(np.full(6, 0.3), [1, 0, 1, 0, 0, 1]) == 0.5  # all tied
    assert math.isnan(roc_auc([0.1, 0.2, 0.3], [1.0, 1.0, NAN]))
    assert math.isnan(roc_auc([0.1, 0.2], [0.0, 0.0]))
    assert math.isnan(roc_auc([], []))
    assert roc_auc([-5.0, 3.0], [0.0, 1.0]) == 1.0  # any real scores, e.g. logits


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_auc_equals_brute_force_pair_count(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 300
    s = np.round(rng.normal(size=n), 1)  # rounding makes many ties
    y = (rng.uniform(size=n) < 0.4).astype(np.float64)
    y[rng.uniform(size=n) < 0.1] = np.nan
    obs = ~np.isnan(y)
    pos, neg = s[obs & (y == 1)], s[obs & (y == 0)]
    diff = pos[:, None] - neg[None, :]
    brute = ((diff > 0).sum() + 0.5 * (diff == 0).sum()) / diff.size
    assert roc_auc(s, y) == pytest.approx(brute, abs=1e-12)
    assert roc_auc(-s, y) == pytest.approx(1 - brute, abs=1e-12)


# ---------------------------------------------------------------------- pair accuracy
def test_pair_accuracy_ties_and_weights() -> None:
    a = [3.0, 1.0, 2.0, 0.5]
    b = [1.0, 2.0, 2.0, 0.1]
    better = [True, True, True, False]  # right, wrong, tie, wrong
    assert pair_accuracy(a, b, better) == pytest.approx((1 + 0 + 0.5 + 0) / 4)
    w = [2.0, 1.0, 4.0, 1.0]
    assert pair_accuracy(a, b, better, weights=w) == pytest.approx((2 + 0 + 2 + 0) / 8)
    assert pair_accuracy(a, b, np.array([1, 1, 1, 0])) == pair_accuracy(a, b, better)  # 0/1 labels
    assert pair_accuracy([1.0], [2.0], [False]) == 1.0  # b better and b scored higher
    assert pair_accuracy(a, b, better, weights=[1.0, 0, 0, 0]) == 1.0  # zero weights drop pairs
    assert math.isnan(pair_accuracy([], [], []))
    assert math.isnan(pair_accuracy([1.0], [0.0], [True], weights=[0.0]))
    with pytest.raises(ValueError, match="non-negative"):
        pair_accuracy([1.0], [0.0], [True], weights=[-1.0])
    with pytest.raises(ValueError, match="0/1"):
        pair_accuracy([1.0], [0.0], [2])


# ---------------------------------------------------------------------- all signals
def test_feedback_metrics_names_values_and_mask() -> None:
    probs = {"like": np.array([0.8, 0.3, 0.6, 0.1]), "played": np.array([0.7, 0.2, 0.5, 0.9])}
    labels = {"like": np.array([1.0, 0.0, NAN, 0.0]), "played": np.array([0.9, 0.1, 0.4, 0.6])}
    kinds = {"like": "binary", "played": FeedbackKind.CONTINUOUS, "skip": "binary"}  # extra kinds are fine
    m = feedback_metrics(probs, labels, kinds, prefix="valid/")
    assert list(m) == [
        f"valid/FP_{metric}/{s}" for s in ("like", "played") for metric in ("LogLoss", "NE", "AUC", "count")
    ]
    assert m["valid/FP_count/like"] == 3 and m["valid/FP_count/played"] == 4
    assert m["valid/FP_LogLoss/like"] == log_loss(probs["like"], labels["like"])
    assert m["valid/FP_NE/like"] == normalized_entropy(probs["like"], labels["like"])
    assert m["valid/FP_LogLoss/played"] == soft_log_loss(probs["played"], labels["played"])
    assert m["valid/FP_NE/played"] == soft_normalized_entropy(probs["played"], labels["played"])
    # played thresholded at >= 0.5: positives 0.9, 0.6 (p 0.7, 0.9) vs negatives 0.1, 0.4 (p 0.2, 0.5)
    assert m["valid/FP_AUC/played"] == 1.0
    assert feedback_metrics({"p": [0.3, 0.6]}, {"p": [0.5, 0.49]}, {"p": "continuous"})["test/FP_AUC/p"] == 0.0

    test_period = np.array([False, True, True, True])  # ARGUS.md §6: metrics only on test-period events
    masked = feedback_metrics(probs, labels, kinds, mask=test_period)
    assert masked["test/FP_count/like"] == 2 and masked["test/FP_count/played"] == 3
    assert masked["test/FP_LogLoss/like"] == pytest.approx(-(math.log(0.7) + math.log(0.9)) / 2)
    assert math.isnan(masked["test/FP_AUC/like"])  # only negatives left

    with pytest.raises(ValueError, match="same signals"):
        feedback_metrics(probs, {"like": labels["like"]}, kinds)
    with pytest.raises(ValueError, match="no kind"):
        feedback_metrics(probs, labels, {"like": "binary"})
    with pytest.raises(ValueError, match="kind must be"):
        feedback_metrics({"x": [0.5]}, {"x": [1.0]}, {"x": "ordinal"})
    with pytest.raises(ValueError, match="mask"):
        feedback_metrics(probs, labels, kinds, mask=np.array([True, False]))


def test_oracle_beats_a_noisy_model() -> None:
    rng = np.random.default_rng(3)
    truth = rng.beta(1, 4, size=5000)
    y = (rng.uniform(size=truth.size) < truth).astype(np.float64)
    noisy = np.clip(truth + rng.normal(0, 0.1, size=truth.size), 0.01, 0.99)
    oracle = feedback_metrics({"like": truth}, {"like": y}, {"like": "binary"})
    model = feedback_metrics({"like": noisy}, {"like": y}, {"like": "binary"})
    assert oracle["test/FP_NE/like"] < model["test/FP_NE/like"] < 1.0
    assert oracle["test/FP_AUC/like"] > model["test/FP_AUC/like"] > 0.5
