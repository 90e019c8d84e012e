"""Metric functions on hand-computed cases, k boundaries, multi-relevant metrics and the summary names."""

from __future__ import annotations

import doctest
import math

import numpy as np
import pytest

from argusrec.eval import metrics
from argusrec.eval.metrics import (
    ItemSets,
    as_item_sets,
    coverage,
    hit_rate,
    mrr,
    ndcg,
    ndcg_at_k,
    recall,
    recall_at_k,
    summarize,
    summarize_sets,
)


def test_doctests() -> None:
    result = doctest.testmod(metrics, optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 10
    assert result.failed == 0


# ---------------------------------------------------------------------- one relevant item
def test_hit_rate_k_boundary() -> None:
    # rank k-1 is inside the top k, rank k is not
    assert hit_rate([9], k=10) == 1.0
    assert hit_rate([10], k=10) == 0.0
    assert hit_rate([0, 9, 10, 11], k=10) == 0.5
    assert hit_rate([0, 1, 2], k=1) == pytest.approx(1 / 3)


def test_ndcg_hand_values_and_boundary() -> None:
    assert ndcg([0], k=1) == 1.0
    assert ndcg([1], k=10) == pytest.approx(1 / math.log2(3))
    assert ndcg([3], k=10) == pytest.approx(1 / math.log2(5))
    assert ndcg([9], k=10) == pytest.approx(1 / math.log2(11))
    assert ndcg([10], k=10) == 0.0
    # (1 + 1/log2(3) + 0) / 3
    assert ndcg([0, 1, 50], k=10) == pytest.approx((1 + 1 / math.log2(3)) / 3)


def test_mrr_is_uncut() -> None:
    assert mrr([0, 1, 3, 99]) == pytest.approx((1 + 0.5 + 0.25 + 0.01) / 4)
    assert mrr([1000]) == pytest.approx(1 / 1001)


def test_recall_equals_hit_rate_for_one_target() -> None:
    ranks = np.array([0, 3, 7, 12, 49, 50, 51])
    for k in (1, 5, 10, 50):
        assert recall(ranks, k) == hit_rate(ranks, k)
    assert recall(ranks, 50) == pytest.approx(5 / 7)


def test_rank_validation_and_empty() -> None:
    with pytest.raises(ValueError, match=">= 0"):
        hit_rate([-1, 2], k=10)
    with pytest.raises(TypeError, match="integers"):
        ndcg([0.5], k=10)
    with pytest.raises(ValueError, match="positive"):
        hit_rate([1], k=0)
    with pytest.raises(ValueError, match="1-D"):
        mrr(np.zeros((2, 2), dtype=np.int64))
    assert math.isnan(hit_rate(np.zeros(0, dtype=np.int64), k=10))
    assert math.isnan(mrr([]))


# ---------------------------------------------------------------------- top-k lists
def test_coverage_hand_case() -> None:
    topk = np.array([[1, 2, 3], [3, 4, 0], [3, 1, 2]])
    assert coverage(topk, n_items=10) == pytest.approx(0.4)  # {1, 2, 3, 4}, padding 0 not counted
    assert coverage(topk, n_items=10, k=1) == pytest.approx(0.2)  # {1, 3}
    assert coverage(topk, n_items=4, k=2) == pytest.approx(1.0)  # {1, 2, 3, 4}
    with pytest.raises(ValueError, match="exceeds"):
        coverage(topk, n_items=10, k=4)
    with pytest.raises(ValueError, match="n_items"):
        coverage(topk, n_items=3)  # item 4 is outside a catalog of 3


def test_item_sets_inputs_agree() -> None:
    from_list = as_item_sets([{3, 1}, set(), [2, 2]])
    from_tuple = as_item_sets((np.array([0, 2, 2, 4]), np.array([1, 3, 2, 2])))
    assert from_list.offsets.tolist() == from_tuple.offsets.tolist() == [0, 2, 2, 4]
    assert from_list.ids.tolist() == [1, 3, 2, 2]
    assert isinstance(from_tuple, ItemSets)
    with pytest.raises(ValueError, match="offsets"):
        as_item_sets((np.array([0, 3]), np.array([1, 2])))


def test_recall_at_k_hand_case() -> None:
    topk = np.array([[7, 3, 5, 1], [2, 4, 6, 8], [9, 9, 9, 9]])
    relevant = [{3, 1, 8}, {5}, set()]  # third target has no positives: skipped
    # k=2: 1/3 and 0/1 -> 1/6; k=4: 2/3 and 0/1 -> 1/3
    assert recall_at_k(topk, relevant, k=2) == pytest.approx(1 / 6)
    assert recall_at_k(topk, relevant, k=4) == pytest.approx(1 / 3)
    # min normalisation: k=2: 1/min(3, 2) and 0 -> 1/4
    assert recall_at_k(topk, relevant, k=2, normalize="min") == pytest.approx(1 / 4)
    # the same sets as CSR, with a repeat and a padding id that must not change anything
    csr = ItemSets(np.array([0, 5, 6, 6]), np.array([3, 1, 8, 3, 0, 5]))
    assert recall_at_k(topk, csr, k=4) == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="sets"):
        recall_at_k(topk, [{1}], k=2)


def test_ndcg_at_k_hand_case() -> None:
    topk = np.array([[7, 3, 5, 1]])
    rel = [{3, 1, 8}]
    # k=4: DCG = 1/log2(3) + 1/log2(5); ideal: min(3, 4) = 3 items first = 1 + 1/log2(3) + 1/2
    dcg = 1 / math.log2(3) + 1 / math.log2(5)
    assert ndcg_at_k(topk, rel, k=4) == pytest.approx(dcg / (1 + 1 / math.log2(3) + 0.5))
    # k=2: DCG = 1/log2(3); ideal over min(3, 2) = 2 positions
    assert ndcg_at_k(topk, rel, k=2) == pytest.approx((1 / math.log2(3)) / (1 + 1 / math.log2(3)))
    # a perfect list scores 1
    assert ndcg_at_k(np.array([[3, 1, 8, 2]]), rel, k=4) == pytest.approx(1.0)
    assert ndcg_at_k(np.array([[2, 4, 6, 9]]), rel, k=4) == 0.0


def test_multi_relevant_reduces_to_single_item_metrics() -> None:
    rng = np.random.default_rng(0)
    n_targets, n_items, width = 200, 60, 20
    topk = np.stack([rng.permutation(n_items)[:width] + 1 for _ in range(n_targets)])  # (T, K) distinct ids
    target = rng.integers(1, n_items + 1, size=n_targets)
    # rank of the target: its position in the list, or "beyond the list" (width) when absent
    where = topk == target[:, None]
    ranks = np.where(where.any(axis=1), where.argmax(axis=1), width + 5)
    rel = [{int(t)} for t in target]
    for k in (1, 5, 10, 20):
        assert ndcg_at_k(topk, rel, k) == pytest.approx(ndcg(ranks, k))
        assert recall_at_k(topk, rel, k) == pytest.approx(hit_rate(ranks, k))
    assert 0 < hit_rate(ranks, 20) < 1  # the check above is not vacuous


# ---------------------------------------------------------------------- summaries
def test_summarize_names_and_values() -> None:
    ranks = np.array([0, 9, 10, 49, 50])
    topk = np.array([[1, 2] * 25, [3, 4] * 25, [1, 5] * 25, [1, 2] * 25, [1, 2] * 25])  # (5, 50)
    out = summarize(ranks, topk, ks=(10, 50), n_items=10, prefix="test/")
    assert list(out) == [
        "test/HR@10",
        "test/NDCG@10",
        "test/Recall@10",
        "test/HR@50",
        "test/NDCG@50",
        "test/Recall@50",
        "test/MRR",
        "test/Coverage@10",
        "test/Coverage@50",
    ]
    assert out["test/HR@10"] == pytest.approx(2 / 5)
    assert out["test/HR@50"] == pytest.approx(4 / 5)
    assert out["test/NDCG@10"] == pytest.approx((1 + 1 / math.log2(11)) / 5)
    assert out["test/MRR"] == pytest.approx(mrr(ranks))
    assert out["test/Coverage@10"] == pytest.approx(0.5)  # {1, 2, 3, 4, 5} of 10
    assert all(isinstance(v, float) for v in out.values())


def test_summarize_prefix_sampled_and_errors() -> None:
    assert set(summarize([0, 3], ks=(10,), prefix="valid/")) == {
        "valid/HR@10",
        "valid/NDCG@10",
        "valid/Recall@10",
        "valid/MRR",
    }
    sampled = summarize([0, 3], ks=(10,), sampled=100)
    assert "test/sampled100/HR@10" in sampled and "test/HR@10" not in sampled
    with pytest.raises(ValueError, match="n_items"):
        summarize([0], topk=np.array([[1] * 10]), ks=(10,))
    with pytest.raises(ValueError, match="exceeds"):
        summarize([0], topk=np.array([[1] * 10]), ks=(10, 50), n_items=5)


def test_summarize_sets_names_and_values() -> None:
    topk = np.array([[7, 3, 5, 1], [2, 4, 6, 8]])
    rel = [{3, 1, 8}, {2}]
    out = summarize_sets(topk, rel, ks=(2, 4), n_items=8, prefix="test/")
    assert list(out) == [
        "test/NDCG@2",
        "test/Recall@2",
        "test/Coverage@2",
        "test/NDCG@4",
        "test/Recall@4",
        "test/Coverage@4",
    ]
    assert out["test/Recall@4"] == pytest.approx((2 / 3 + 1) / 2)
    assert out["test/Coverage@2"] == pytest.approx(4 / 8)  # {7, 3, 2, 4}
    assert out["test/NDCG@4"] == pytest.approx((ndcg_at_k(topk[:1], rel[:1], 4) + 1) / 2)
