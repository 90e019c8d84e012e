"""Full-catalog ranking: hand cases (ties, exclusions, target in history, padding), a naive reference,
batch-size invariance, history exclusions from a store, the popularity baseline and sampled ranking."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from argusrec.data.schema import ITEM_ID, TIMESTAMP
from argusrec.data.splits import leave_one_out
from argusrec.data.store import SequenceStore
from argusrec.eval.metrics import ItemSets, as_item_sets, summarize
from argusrec.eval.ranking import (
    history_exclusions,
    item_counts,
    rank_against_sampled,
    rank_by_popularity,
    rank_targets,
    sample_negatives,
    top_k_items,
)

# One-dimensional scores: item i scores ITEM_SCORES[i] for a user vector [1]. Padding (row 0)
# scores highest on purpose: it must never be ranked.
ITEM_SCORES = [100.0, 5.0, 4.0, 4.0, 3.0, 1.0]  # V = 5; items 2 and 3 tie


def one_dim(n_targets: int, scores: list[float] = ITEM_SCORES) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.ones(n_targets, 1), torch.tensor(scores)[:, None]


def test_hand_ranks_with_ties_and_padding() -> None:
    users, items = one_dim(5)
    ranks, topk = rank_targets(users, items, np.array([1, 2, 3, 4, 5]), k_max=3)
    # item 1: first; items 2 and 3 tie and each counts the other as ahead (pessimistic): 1 + 1;
    # item 4: three ahead; item 5: last of 5. Padding (score 100) never counts.
    assert ranks.tolist() == [0, 2, 2, 3, 4]
    assert ranks.dtype == np.int64
    assert topk.shape == (5, 3)
    assert (topk[:, 0] == 1).all()
    assert {tuple(sorted(row[1:])) for row in topk.tolist()} == {(2, 3)}  # tie order unspecified
    assert not (topk == 0).any()


def test_constant_model_gets_the_worst_rank() -> None:
    users, items = one_dim(3, [0.0] * 6)
    ranks, _ = rank_targets(users, items, np.array([1, 3, 5]))
    assert ranks.tolist() == [4, 4, 4]  # V - 1, not 0
    ranks, _ = rank_targets(users, items, np.array([1, 3, 5]), exclude=[{2, 4}, set(), {1}])
    assert ranks.tolist() == [2, 4, 3]  # V - 1 - |excluded other items|


def test_exclusions_and_target_in_history() -> None:
    users, items = one_dim(4)
    exclude = [{1}, {1, 2}, {1, 3, 4}, set()]
    ranks, topk = rank_targets(users, items, np.array([2, 2, 5, 5]), exclude=exclude, k_max=6)
    # t0: item 1 removed -> only the tied item 3 is ahead; t1: the target 2 is in the history but stays
    # ranked; t2: 1, 3, 4 removed -> only item 2 ahead; t3: nothing removed.
    assert ranks.tolist() == [1, 1, 1, 4]
    # excluded items never appear, the target always can; padding fills the lists beyond the rankable items
    assert topk[1].tolist()[:4] in ([3, 2, 4, 5], [2, 3, 4, 5])
    assert topk[1].tolist()[4:] == [0, 0]
    assert topk[2].tolist() == [2, 5, 0, 0, 0, 0]
    assert 0 not in topk[3][:5] and topk[3][5] == 0  # V = 5 < k_max = 6
    # the CSR form gives the same answer
    csr = as_item_sets(exclude)
    ranks_csr, topk_csr = rank_targets(users, items, np.array([2, 2, 5, 5]), exclude=csr, k_max=6)
    assert np.array_equal(ranks, ranks_csr)
    assert np.array_equal(topk[2], topk_csr[2])


def test_input_validation() -> None:
    users, items = one_dim(2)
    with pytest.raises(ValueError, match=r"1\.\.5"):
        rank_targets(users, items, np.array([0, 1]))  # padding is not a target
    with pytest.raises(ValueError, match=r"1\.\.5"):
        rank_targets(users, items, np.array([1, 6]))
    with pytest.raises(ValueError, match="shape"):
        rank_targets(users, items, np.array([1]))
    with pytest.raises(ValueError, match="sets"):
        rank_targets(users, items, np.array([1, 2]), exclude=[{1}])
    with pytest.raises(ValueError, match="NaN"):
        rank_targets(users, torch.tensor([0.0, 1.0, float("nan"), 2.0, 3.0, 4.0])[:, None], np.array([1, 2]))


def naive_ranks(
    user: np.ndarray, item: np.ndarray, targets: np.ndarray, exclude: list[set[int]], k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Reference by sorting: per target, rankable = 1..V minus exclusions plus the target; the target is
    placed after every item with an equal score (lexsort key: score descending, then target last)."""
    ranks, tops = [], []
    for t in range(len(targets)):
        scores = item @ user[t]  # (V + 1,)
        cand = np.array([i for i in range(1, len(item)) if i not in exclude[t] or i == targets[t]])
        is_target = (cand == targets[t]).astype(np.int64)
        order = np.lexsort((is_target, -scores[cand]))
        ranks.append(int(np.flatnonzero(cand[order] == targets[t])[0]))
        top = cand[order][:k].tolist()
        tops.append(top + [0] * (k - len(top)))
    return np.array(ranks), np.array(tops)


@pytest.mark.parametrize("integer_valued", [False, True])
def test_matches_naive_argsort_reference(integer_valued: bool) -> None:
    rng = np.random.default_rng(1 + integer_valued)
    n_targets, n_items, width, k = 40, 30, 4, 8
    if integer_valued:  # small integers: exact arithmetic and many ties
        user = rng.integers(-1, 2, size=(n_targets, width)).astype(np.float64)
        item = rng.integers(-1, 2, size=(n_items + 1, width)).astype(np.float64)
    else:
        user = rng.normal(size=(n_targets, width))
        item = rng.normal(size=(n_items + 1, width))
    targets = rng.integers(1, n_items + 1, size=n_targets)
    # random histories; every fourth one also contains the target
    exclude = [set(rng.integers(0, n_items + 1, size=rng.integers(0, 12)).tolist()) for _ in range(n_targets)]
    for t in range(0, n_targets, 4):
        exclude[t].add(int(targets[t]))
    ranks, topk = rank_targets(user, item, targets, exclude=exclude, k_max=k, batch_size=7)
    ref_ranks, ref_topk = naive_ranks(user, item, targets, exclude, k)
    assert np.array_equal(ranks, ref_ranks)
    if integer_valued:
        assert len(set(ranks.tolist())) > 3  # not a degenerate case
        # with ties the order of equal items is unspecified: compare the listed scores, position by position
        listed = np.einsum("tkd,td->tk", item[topk], user)  # (T, K)
        assert np.array_equal(listed, np.einsum("tkd,td->tk", item[ref_topk], user))
    else:
        assert np.array_equal(topk, ref_topk)
    assert not (topk == 0).any()  # enough rankable items for every list
    excluded_listed = [int(i) for t in range(n_targets) for i in topk[t] if i in exclude[t] and i != targets[t]]
    assert excluded_listed == []


def test_batch_size_invariance() -> None:
    rng = np.random.default_rng(3)
    n_targets, n_items = 37, 50
    user = torch.from_numpy(rng.integers(-2, 3, size=(n_targets, 3)).astype(np.float32))
    item = torch.from_numpy(rng.integers(-2, 3, size=(n_items + 1, 3)).astype(np.float32))
    targets = rng.integers(1, n_items + 1, size=n_targets)
    exclude = [set(rng.integers(1, n_items + 1, size=5).tolist()) for _ in range(n_targets)]
    results = [rank_targets(user, item, targets, exclude=exclude, batch_size=bs) for bs in (1, 5, 36, 37, None)]
    for ranks, _ in results[1:]:
        assert np.array_equal(ranks, results[0][0])
    scores = (user @ item.T).numpy()
    for _, topk in results[1:]:  # tie order may differ; the listed scores may not
        assert np.array_equal(
            np.take_along_axis(scores, topk, axis=1), np.take_along_axis(scores, results[0][1], axis=1)
        )
    # continuous scores (no ties): identical lists
    user_c, item_c = torch.randn(n_targets, 8), torch.randn(n_items + 1, 8)
    a = rank_targets(user_c, item_c, targets, exclude=exclude, batch_size=4)
    b = rank_targets(user_c, item_c, targets, exclude=exclude, batch_size=None)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu() -> None:
    rng = np.random.default_rng(4)
    user = torch.from_numpy(rng.integers(-2, 3, size=(300, 16)).astype(np.float32))
    item = torch.from_numpy(rng.integers(-2, 3, size=(2001, 16)).astype(np.float32))
    targets = rng.integers(1, 2001, size=300)
    exclude = [set(rng.integers(1, 2001, size=20).tolist()) for _ in range(300)]
    cpu = rank_targets(user, item, targets, exclude=exclude, batch_size=64)
    gpu = rank_targets(user.cuda(), item.cuda(), targets, exclude=exclude, batch_size=64)
    assert np.array_equal(cpu[0], gpu[0])


# ---------------------------------------------------------------------- history from the store
def small_store() -> SequenceStore:
    # user 0: items 4 2 4 1 | user 1: 3 5 | user 2: 2 3 1 5 2
    items = np.array([4, 2, 4, 1, 3, 5, 2, 3, 1, 5, 2])
    return SequenceStore.from_arrays(
        lengths=np.array([4, 2, 5]),
        columns={ITEM_ID: items, TIMESTAMP: np.arange(len(items), dtype=np.int64)},
        n_items=5,
    )


def test_history_exclusions_from_split() -> None:
    store = small_store()
    targets = leave_one_out(store, min_events=2, with_valid=False).targets("test")
    assert targets.index.tolist() == [3, 5, 10]
    ex = history_exclusions(store, targets)
    assert isinstance(ex, ItemSets)
    assert ex.offsets.tolist() == [0, 3, 4, 8]
    assert ex.ids.tolist() == [4, 2, 4, 3, 2, 3, 1, 5]
    last2 = history_exclusions(store, (targets.user, targets.index), max_len=2)
    assert last2.offsets.tolist() == [0, 2, 3, 5]
    assert last2.ids.tolist() == [2, 4, 3, 1, 5]
    # the target of user 2 (item 2) is also its first event: it stays rankable
    users, items = one_dim(3)
    ranks, _ = rank_targets(users, items, store.items[targets.index], exclude=ex)
    # user 0, target 1 (best); user 1, target 5, item 3 removed -> 1, 2, 4 ahead; user 2, target 2, all
    # others but 4 removed -> item 4 (score 3) is below it
    assert ranks.tolist() == [0, 3, 0]
    with pytest.raises(IndexError):
        history_exclusions(store, (np.array([0]), np.array([4])))  # row 4 belongs to user 1


# ---------------------------------------------------------------------- popularity baseline
def test_item_counts_train_only_and_chunked() -> None:
    store = small_store()
    split = leave_one_out(store, min_events=3)  # user 1 (2 events) trains on everything
    # training prefixes: user 0 rows 0..1 (4, 2), user 1 rows 4..5 (3, 5), user 2 rows 6..8 (2, 3, 1)
    expected = [0, 1, 2, 2, 1, 1]
    assert item_counts(store, split).tolist() == expected
    assert item_counts(store, split, chunk_events=1).tolist() == expected
    assert item_counts(store).tolist() == [0, 2, 3, 2, 2, 2]
    assert item_counts(store, chunk_events=3).tolist() == [0, 2, 3, 2, 2, 2]


def test_rank_by_popularity_hand_case() -> None:
    counts = np.array([50, 5, 9, 1, 9, 0])  # padding count is ignored
    ranks, topk = rank_by_popularity(counts, np.array([2, 3, 5, 5]), exclude=[set(), {2, 4}, set(), {3}], k_max=2)
    # target 2 ties with 4 (pessimistic: 1); target 3 with 2 and 4 removed: only 1 ahead; target 5 last
    assert ranks.tolist() == [1, 1, 4, 3]
    assert set(topk[0].tolist()) == {2, 4}
    assert topk[1].tolist() == [1, 3]


def test_popularity_is_beaten_by_an_oracle() -> None:
    rng = np.random.default_rng(5)
    n_items, n_targets = 40, 200
    targets = rng.integers(1, n_items + 1, size=n_targets)
    counts = np.bincount(rng.integers(1, n_items + 1, size=1000), minlength=n_items + 1)
    pop = summarize(rank_by_popularity(counts, targets)[0], ks=(10,))
    # an "oracle" whose user vector points at the target's one-hot item vector
    item = np.eye(n_items + 1)
    oracle = summarize(rank_targets(item[targets], item, targets)[0], ks=(10,))
    assert oracle["test/HR@10"] == 1.0 and oracle["test/MRR"] == 1.0
    assert pop["test/HR@10"] < 0.6


# ---------------------------------------------------------------------- sampled candidates
def test_sample_negatives_avoid_target_and_history() -> None:
    targets = np.array([1, 2, 3, 4])
    exclude = [{2, 3}, set(), {1, 2, 4, 5, 6}, {5}]
    neg = sample_negatives(targets, 8, n_negatives=50, seed=7, exclude=exclude)
    assert neg.shape == (4, 50)
    for t in range(4):
        forbidden = exclude[t] | {int(targets[t])}
        assert not (set(neg[t].tolist()) & forbidden)
        assert neg[t].min() >= 1 and neg[t].max() <= 8
    assert set(neg[2].tolist()) == {7, 8}
    assert np.array_equal(neg, sample_negatives(targets, 8, n_negatives=50, seed=7, exclude=exclude))
    assert not np.array_equal(neg, sample_negatives(targets, 8, n_negatives=50, seed=8, exclude=exclude))


def test_rank_against_sampled_perfect_and_constant() -> None:
    n_items = 30
    targets = np.arange(1, 21)
    item = np.eye(n_items + 1, dtype=np.float32)
    perfect = rank_against_sampled(item[targets], item, targets, n_negatives=10, seed=0)
    assert perfect.tolist() == [0] * 20
    constant = rank_against_sampled(np.ones((20, 4)), np.zeros((n_items + 1, 4)), targets, n_negatives=10)
    assert constant.tolist() == [10] * 20  # ties pessimistic: all R negatives ahead
    names = summarize(perfect, ks=(10,), sampled=10)
    assert names["test/sampled10/HR@10"] == 1.0


def test_top_k_items_without_targets() -> None:
    users, items = one_dim(2)
    topk = top_k_items(users, items, exclude=[{1}, {2, 3, 5}], k_max=6)
    assert topk[1].tolist() == [1, 4, 0, 0, 0, 0]  # nothing is exempt from exclusion here
    assert topk[0][0] in (2, 3) and topk[0].tolist()[2:] == [4, 5, 0, 0]
    rng = np.random.default_rng(6)
    user, item = rng.normal(size=(9, 4)), rng.normal(size=(21, 4))
    targets = rng.integers(1, 21, size=9)
    assert np.array_equal(top_k_items(user, item, k_max=5), rank_targets(user, item, targets, k_max=5)[1])
