"""Ranking metrics as pure numpy functions (reference/PEERS.md §4).

Two shapes of input:

* **One relevant item per target** (leave-one-out, and a temporal split scored event by event):
  ``ranks`` (T,) is the 0-based rank of the target item among the ranked catalog (0 = first), as
  :func:`argusrec.eval.ranking.rank_targets` returns it. :func:`hit_rate`, :func:`ndcg`,
  :func:`recall` and :func:`mrr` average over the T targets.
* **A set of relevant items per target** (Yambda-style temporal protocol: all of a user's positives
  of the test period): ``topk`` (T, K) recommended item ids, best first, and ``relevant`` an
  :class:`ItemSets` (CSR) or a sequence of T sets. :func:`recall_at_k` and :func:`ndcg_at_k`.

:func:`coverage` needs only ``topk``. :func:`summarize` and :func:`summarize_sets` produce the
project's metric names (``test/HR@10``, ``test/NDCG@10``, ``test/Recall@10``, ``test/MRR``,
``test/Coverage@10``; docs/benchmarks.md).

Conventions: NDCG uses the 1-based position p = rank + 1 and the gain ``1 / log2(p + 1)``, which is
``1 / log2(rank + 2)`` for a 0-based rank -- the top item gains 1. "@k" counts ranks ``0 .. k-1``:
rank ``k - 1`` is inside the cut, rank ``k`` is not. Item id 0 (and any negative id) in ``topk`` is
padding, never relevant and never covered. An empty input gives NaN.

Letters: T targets, K cut-off / top-k width, V catalog size.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import NamedTuple

import numpy as np

DEFAULT_KS = (10, 50)


class ItemSets(NamedTuple):
    """T sets of item ids in CSR layout: set t is ``ids[offsets[t]:offsets[t + 1]]``.

    Attributes:
        offsets: (T + 1,) int64, non-decreasing, ``offsets[0] == 0``.
        ids: (offsets[-1],) int64 item ids; repeats are allowed (a set is what they denote).
    """

    offsets: np.ndarray
    ids: np.ndarray

    @property
    def n_sets(self) -> int:
        return len(self.offsets) - 1

    def sizes(self) -> np.ndarray:
        """(T,) int64 number of stored ids per set (repeats included)."""
        return np.diff(self.offsets)


def as_item_sets(sets: ItemSets | tuple[np.ndarray, np.ndarray] | Sequence[Iterable[int]]) -> ItemSets:
    """An :class:`ItemSets` from itself, an ``(offsets, ids)`` tuple of two arrays, or a list of T iterables of ids.

    >>> s = as_item_sets([{3, 1}, set(), [2]])
    >>> s.offsets.tolist(), s.ids.tolist()
    ([0, 2, 2, 3], [1, 3, 2])
    """
    if isinstance(sets, ItemSets):
        return _checked(sets.offsets, sets.ids)
    if isinstance(sets, tuple) and len(sets) == 2:
        offsets, ids = sets
        if isinstance(offsets, np.ndarray) and isinstance(ids, np.ndarray):
            return _checked(offsets, ids)  # a tuple of two arrays is always read as (offsets, ids)
    rows = [np.asarray(sorted(s) if isinstance(s, (set, frozenset)) else list(s), dtype=np.int64) for s in sets]
    sizes = np.array([len(r) for r in rows], dtype=np.int64)
    offsets = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum(sizes, out=offsets[1:])
    ids = np.concatenate(rows) if rows else np.zeros(0, dtype=np.int64)
    return ItemSets(offsets, ids.astype(np.int64, copy=False))


def _checked(offsets: np.ndarray, ids: np.ndarray) -> ItemSets:
    offsets = np.asarray(offsets, dtype=np.int64)
    ids = np.asarray(ids, dtype=np.int64)
    if offsets.ndim != 1 or len(offsets) < 1 or offsets[0] != 0 or offsets[-1] != len(ids):
        raise ValueError("item sets need offsets (T + 1,) starting at 0 and ending at len(ids)")
    if np.any(np.diff(offsets) < 0):
        raise ValueError("item set offsets must be non-decreasing")
    return ItemSets(offsets, ids)


# ---------------------------------------------------------------------- one relevant item per target
def _ranks(ranks: np.ndarray | Sequence[int]) -> np.ndarray:
    r = np.asarray(ranks)
    if r.ndim != 1:
        raise ValueError(f"ranks must be 1-D (T,), got shape {r.shape}")
    if r.size and not np.issubdtype(r.dtype, np.integer):
        raise TypeError(f"ranks must be integers (0-based positions), got dtype {r.dtype}")
    r = r.astype(np.int64, copy=False)
    if r.size and r.min() < 0:
        raise ValueError("ranks must be >= 0 (0 = ranked first)")
    return r


def _check_k(k: int) -> int:
    if int(k) != k or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    return int(k)


def _mean(values: np.ndarray) -> float:
    """Mean as a Python float; NaN (and no warning) when empty."""
    return float(values.mean()) if values.size else float("nan")


def hit_rate(ranks: np.ndarray | Sequence[int], k: int) -> float:
    """HR@k: share of targets ranked in the top k (rank < k). ranks: (T,) 0-based.

    >>> hit_rate([0, 9, 10, 57], k=10)
    0.5
    """
    r = _ranks(ranks)
    return _mean(r < _check_k(k))


def recall(ranks: np.ndarray | Sequence[int], k: int) -> float:
    """Recall@k with one relevant item per target: equal to :func:`hit_rate` (the Amazon tables' name).

    >>> recall([0, 9, 10, 57], k=10)
    0.5
    """
    return hit_rate(ranks, k)


def ndcg(ranks: np.ndarray | Sequence[int], k: int) -> float:
    """NDCG@k with one relevant item per target: mean of ``1 / log2(rank + 2)`` over ranks < k, else 0.

    The ideal DCG is 1 (the target first), so DCG is already normalised. ranks: (T,) 0-based.

    >>> ndcg([0], k=10), ndcg([1], k=10), ndcg([10], k=10)
    (1.0, 0.6309297535714575, 0.0)
    >>> round(ndcg([0, 2, 9, 10], k=10), 6)  # (1 + 1/2 + 1/log2(11) + 0) / 4
    0.447266
    """
    r = _ranks(ranks)
    gain = np.where(r < _check_k(k), 1.0 / np.log2(r + 2.0), 0.0)
    return _mean(gain)


def mrr(ranks: np.ndarray | Sequence[int]) -> float:
    """MRR over the full ranking (no cut-off): mean of ``1 / (rank + 1)``. ranks: (T,) 0-based.

    >>> mrr([0, 1, 3])  # (1 + 1/2 + 1/4) / 3
    0.5833333333333334
    """
    r = _ranks(ranks)
    return _mean(1.0 / (r + 1.0))


# ---------------------------------------------------------------------- top-k lists
def _topk(topk: np.ndarray, k: int | None) -> np.ndarray:
    t = np.asarray(topk)
    if t.ndim != 2:
        raise ValueError(f"topk must be 2-D (T, K), got shape {t.shape}")
    if k is None:
        return t.astype(np.int64, copy=False)
    k = _check_k(k)
    if k > t.shape[1]:
        raise ValueError(f"k={k} exceeds the width of the top-k lists ({t.shape[1]}); rank with k_max >= {k}")
    return t[:, :k].astype(np.int64, copy=False)


def coverage(topk: np.ndarray, n_items: int, k: int | None = None) -> float:
    """Coverage@k: share of the catalog (V = ``n_items`` real items) that appears in any top-k list.

    Args:
        topk: (T, K) item ids, best first; ids <= 0 are padding and not counted.
        n_items: V, the catalog size (item ids 1..V).
        k: use the first k columns (default: all K).

    >>> coverage(np.array([[1, 2], [2, 3], [2, 0]]), n_items=10)
    0.3
    >>> coverage(np.array([[1, 2], [2, 3], [2, 0]]), n_items=10, k=1)
    0.2
    """
    if n_items < 1:
        raise ValueError(f"n_items must be >= 1, got {n_items}")
    t = _topk(topk, k)
    shown = np.unique(t[t > 0])
    if shown.size and shown[-1] > n_items:
        raise ValueError(f"topk holds item id {int(shown[-1])} > n_items={n_items}")
    return shown.size / n_items


def _hits(topk: np.ndarray, relevant: ItemSets) -> tuple[np.ndarray, np.ndarray]:
    """((T, K) bool: topk[t, j] is in set t, (T,) int64 number of distinct positive ids in set t)."""
    n_targets, width = topk.shape
    if relevant.n_sets != n_targets:
        raise ValueError(f"relevant has {relevant.n_sets} sets, topk has {n_targets} rows")
    owner = np.repeat(np.arange(n_targets, dtype=np.int64), relevant.sizes())  # (nnz,)
    ids = relevant.ids
    keep = ids > 0  # padding is never relevant
    owner, ids = owner[keep], ids[keep]
    # One int64 key per (target, item) so membership is a single sorted search, no Python loop.
    base = int(max(int(ids.max(initial=0)), int(topk.max(initial=0)))) + 1
    if n_targets and base > np.iinfo(np.int64).max // max(n_targets, 1):
        raise OverflowError("too many targets x items for int64 keys; evaluate in chunks of targets")
    rel_keys = np.unique(owner * base + ids)  # (R,) sorted, repeats removed
    n_relevant = np.bincount(rel_keys // base, minlength=n_targets).astype(np.int64)  # (T,)
    keys = np.arange(n_targets, dtype=np.int64)[:, None] * base + np.maximum(topk, 0)  # (T, K)
    pos = np.minimum(np.searchsorted(rel_keys, keys), max(len(rel_keys) - 1, 0))
    hit = (rel_keys[pos] == keys) & (topk > 0) if len(rel_keys) else np.zeros((n_targets, width), dtype=bool)
    return hit, n_relevant


def recall_at_k(
    topk: np.ndarray,
    relevant: ItemSets | tuple[np.ndarray, np.ndarray] | Sequence[Iterable[int]],
    k: int | None = None,
    *,
    normalize: str = "relevant",
) -> float:
    """Recall@k against a set of relevant items per target; targets with an empty set are skipped.

    Per target: ``|top-k ∩ relevant| / |relevant|`` (``normalize="relevant"``), or divided by
    ``min(|relevant|, k)`` (``normalize="min"``, so that a perfect list scores 1 even when there are
    more than k positives). The top-k lists are assumed to hold distinct items (as
    :func:`argusrec.eval.ranking.rank_targets` returns them).

    Args:
        topk: (T, K) item ids, best first; ids <= 0 are padding.
        relevant: T sets of positive item ids (:class:`ItemSets`, ``(offsets, ids)`` or a sequence of sets).
        k: cut-off (default: K).

    >>> topk = np.array([[5, 1, 7], [2, 3, 4]])
    >>> recall_at_k(topk, [{1, 9}, {4}], k=2)  # (1/2 + 0/1) / 2
    0.25
    >>> recall_at_k(topk, [{1, 9}, {4}], k=3)  # (1/2 + 1/1) / 2
    0.75
    >>> recall_at_k(topk, [{1, 5, 7, 9}, set()], k=2, normalize="min")  # 2 / min(4, 2); empty skipped
    1.0
    """
    t = _topk(topk, k)
    sets = as_item_sets(relevant)
    hit, n_rel = _hits(t, sets)
    if normalize == "relevant":
        denom = n_rel
    elif normalize == "min":
        denom = np.minimum(n_rel, t.shape[1])
    else:
        raise ValueError(f"normalize must be 'relevant' or 'min', got {normalize!r}")
    has = n_rel > 0
    return _mean(hit.sum(axis=1)[has] / denom[has])


def ndcg_at_k(
    topk: np.ndarray,
    relevant: ItemSets | tuple[np.ndarray, np.ndarray] | Sequence[Iterable[int]],
    k: int | None = None,
) -> float:
    """NDCG@k against a set of relevant items per target (binary gains); empty sets are skipped.

    ``DCG = sum over positions j < k holding a relevant item of 1 / log2(j + 2)``; the ideal DCG
    puts ``min(|relevant|, k)`` relevant items first. With one relevant item this equals
    :func:`ndcg` of its rank.

    Args:
        topk: (T, K) item ids, best first; ids <= 0 are padding. Items are assumed distinct per row.
        relevant: T sets of positive item ids.
        k: cut-off (default: K).

    >>> topk = np.array([[5, 1, 7], [2, 3, 4]])
    >>> round(ndcg_at_k(topk, [{1, 9}, {2}], k=3), 6)  # ((1/log2(3)) / (1 + 1/log2(3)) + 1) / 2
    0.693426
    """
    t = _topk(topk, k)
    sets = as_item_sets(relevant)
    hit, n_rel = _hits(t, sets)
    discount = 1.0 / np.log2(np.arange(t.shape[1], dtype=np.float64) + 2.0)  # (K,)
    dcg = hit @ discount  # (T,)
    ideal = np.concatenate([[0.0], np.cumsum(discount)])[np.minimum(n_rel, t.shape[1])]  # (T,)
    has = n_rel > 0
    return _mean(dcg[has] / ideal[has])


# ---------------------------------------------------------------------- summaries with the project's names
def _prefix(prefix: str, sampled: int | None) -> str:
    if sampled is None:
        return prefix
    if int(sampled) != sampled or sampled < 1:
        raise ValueError(f"sampled must be the positive number of sampled negatives, got {sampled!r}")
    return f"{prefix}sampled{int(sampled)}/"


def summarize(
    ranks: np.ndarray | Sequence[int],
    topk: np.ndarray | None = None,
    ks: Sequence[int] = DEFAULT_KS,
    n_items: int | None = None,
    prefix: str = "test/",
    *,
    sampled: int | None = None,
) -> dict[str, float]:
    """The metrics of one-relevant-item ranking under the project's names.

    Keys, for every k in ``ks``: ``{prefix}HR@k``, ``{prefix}NDCG@k``, ``{prefix}Recall@k``; then
    ``{prefix}MRR``; then ``{prefix}Coverage@k`` for every k when ``topk`` and ``n_items`` are given.

    Args:
        ranks: (T,) 0-based ranks of the targets.
        topk: (T, K) top-k lists (for coverage), K >= max(ks).
        ks: cut-offs.
        n_items: V, the catalog size (for coverage).
        prefix: split label, e.g. ``"test/"``, ``"valid/"`` or ``""``.
        sampled: number of sampled negatives when the ranks come from a sampled-candidate ranking;
            inserts ``sampled{n}/`` after the prefix so such numbers are never mistaken for
            full-ranking ones (``test/sampled100/HR@10``). Coverage is not reported for them.

    >>> for name, value in summarize([0, 4, 20], ks=(5,)).items():  # NDCG: (1 + 1/log2(6) + 0) / 3
    ...     print(name, round(value, 4))
    test/HR@5 0.6667
    test/NDCG@5 0.4623
    test/Recall@5 0.6667
    test/MRR 0.4159
    >>> list(summarize([0], ks=(10,), prefix="valid/", sampled=100))
    ['valid/sampled100/HR@10', 'valid/sampled100/NDCG@10', 'valid/sampled100/Recall@10', 'valid/sampled100/MRR']
    """
    r = _ranks(ranks)
    p = _prefix(prefix, sampled)
    out: dict[str, float] = {}
    for k in ks:
        out[f"{p}HR@{k}"] = hit_rate(r, k)
        out[f"{p}NDCG@{k}"] = ndcg(r, k)
        out[f"{p}Recall@{k}"] = recall(r, k)
    out[f"{p}MRR"] = mrr(r)
    if topk is not None and sampled is None:
        if n_items is None:
            raise ValueError("coverage needs n_items (the catalog size V) together with topk")
        if len(topk) != len(r):
            raise ValueError(f"topk has {len(topk)} rows, ranks has {len(r)}")
        for k in ks:
            out[f"{p}Coverage@{k}"] = coverage(topk, n_items, k)
    return out


def summarize_sets(
    topk: np.ndarray,
    relevant: ItemSets | tuple[np.ndarray, np.ndarray] | Sequence[Iterable[int]],
    ks: Sequence[int] = (10, 50, 100),
    n_items: int | None = None,
    prefix: str = "test/",
    *,
    recall_normalize: str = "relevant",
) -> dict[str, float]:
    """The temporal (Yambda-style) metrics against a set of positives per target, under the project's names.

    Keys, for every k: ``{prefix}NDCG@k``, ``{prefix}Recall@k``, and ``{prefix}Coverage@k`` when
    ``n_items`` is given. Targets with no positives are left out of NDCG and Recall (not of coverage).

    Args:
        topk: (T, K) item ids, best first, K >= max(ks).
        relevant: T sets of positive item ids.
        ks: cut-offs.
        n_items: V, for coverage.
        prefix: split label.
        recall_normalize: see :func:`recall_at_k`.

    >>> for name, value in summarize_sets(np.array([[1, 2], [3, 4]]), [{2}, {3, 9}], ks=(2,), n_items=8).items():
    ...     print(name, round(value, 4))
    test/NDCG@2 0.622
    test/Recall@2 0.75
    test/Coverage@2 0.5
    """
    sets = as_item_sets(relevant)
    out: dict[str, float] = {}
    for k in ks:
        out[f"{prefix}NDCG@{k}"] = ndcg_at_k(topk, sets, k)
        out[f"{prefix}Recall@{k}"] = recall_at_k(topk, sets, k, normalize=recall_normalize)
        if n_items is not None:
            out[f"{prefix}Coverage@{k}"] = coverage(topk, n_items, k)
    return out
