"""Full-catalog ranking of evaluation targets, in batches, on CPU or CUDA (reference/PEERS.md §4).

:func:`rank_targets` scores every item for every target (dot product of a user vector and the item
vectors), removes the user's history items (``exclude``) and returns the 0-based rank of the target
item plus the top-k lists, ready for :mod:`argusrec.eval.metrics`. :func:`top_k_items` returns only
the lists, for protocols scored against a set of positives per user.

Conventions (shared by every function here):

* **Padding.** Item 0 is never ranked and never appears in a top-k list (0 there means "fewer
  than k rankable items").
* **Exclusions ("filt" protocol).** Items of ``exclude`` -- the user's history, see
  :func:`history_exclusions` -- are removed from the ranking, as SASRec, S3-Rec, HSTU and FuXi
  evaluate. The **target itself is never removed**, even when the user consumed it before (a re-listen,
  a re-purchase): removing it would make the event unscorable. This is the standard choice (SASRec's
  evaluation puts the target among the candidates after filtering the history; RecBole-style "raw"
  protocols pass ``exclude=None``).
* **Ties are pessimistic.** rank = number of rankable items scoring strictly higher than the target
  **plus** the number of other rankable items scoring exactly the same. A model that gives every item
  the same score therefore gets the worst rank (V - 1 - |excluded|), never the best; optimistic
  tie-breaking would make a constant model look perfect. The order of tied items inside a top-k list
  is unspecified (it may place the target before an equal-scoring item its rank counts as ahead).
* NaN scores are an error (they cannot be ranked).

:func:`rank_by_popularity` ranks with training-set item counts (the baseline every trained model must
beat); :func:`rank_against_sampled` ranks against sampled negatives, whose metrics are not comparable
with full ranking and are labelled ``sampled{n}`` (``metrics.summarize(..., sampled=n)``).

Letters: T targets, V catalog size (item ids 1..V, 0 = padding), D vector width, K = k_max,
R sampled negatives, B targets per batch.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import torch

from argusrec.data.batching import concat_aranges
from argusrec.data.splits import EvalTargets, Split
from argusrec.data.store import SequenceStore
from argusrec.eval.metrics import ItemSets, as_item_sets

# Scores held at once per batch: 2^25 float32 = 128 MiB, plus ~3 bytes per score of masks.
SCORE_BUDGET = 1 << 25
ArrayLike = torch.Tensor | np.ndarray
Exclusions = ItemSets | tuple[np.ndarray, np.ndarray] | Sequence[Iterable[int]]


def _device(device: str | torch.device | None, *tensors: ArrayLike) -> torch.device:
    if device is not None:
        return torch.device(device)
    for t in tensors:
        if isinstance(t, torch.Tensor):
            return t.device
    return torch.device("cpu")


def _compute_dtype(*tensors: torch.Tensor) -> torch.dtype:
    """float64 if any input is float64 (exact popularity counts, reference tests), else float32."""
    return torch.float64 if any(t.dtype == torch.float64 for t in tensors) else torch.float32


def _as_tensor(x: ArrayLike) -> torch.Tensor:
    return x if isinstance(x, torch.Tensor) else torch.from_numpy(np.asarray(x))


def _targets(targets: ArrayLike, n_targets: int, n_items: int) -> np.ndarray:
    t = targets.detach().cpu().numpy() if isinstance(targets, torch.Tensor) else np.asarray(targets)
    if t.shape != (n_targets,):
        raise ValueError(f"targets must have shape ({n_targets},) like user_vectors' rows, got {t.shape}")
    if t.size and not np.issubdtype(t.dtype, np.integer):
        raise TypeError(f"targets must be integer item ids, got dtype {t.dtype}")
    t = t.astype(np.int64, copy=False)
    if t.size and (t.min() < 1 or t.max() > n_items):
        raise ValueError(f"target item ids must be in 1..{n_items} (0 is padding), got {int(t.min())}..{int(t.max())}")
    return t


def _exclusions(exclude: Exclusions | None, n_targets: int, n_items: int) -> ItemSets | None:
    if exclude is None:
        return None
    sets = as_item_sets(exclude)
    if sets.n_sets != n_targets:
        raise ValueError(f"exclude has {sets.n_sets} sets, there are {n_targets} targets")
    if sets.ids.size and (sets.ids.min() < 0 or sets.ids.max() > n_items):
        raise ValueError(f"excluded item ids must be in 0..{n_items}")
    return sets


def _batch_size(batch_size: int | None, per_target: int) -> int:
    if batch_size is None:
        return max(1, SCORE_BUDGET // max(per_target, 1))
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    return int(batch_size)


@torch.inference_mode()
def rank_targets(
    user_vectors: ArrayLike,
    item_vectors: ArrayLike,
    targets: ArrayLike,
    *,
    exclude: Exclusions | None = None,
    batch_size: int | None = None,
    k_max: int = 50,
    device: str | torch.device | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """0-based rank of each target item among all items, and the top-``k_max`` items, by dot product.

    See the module docstring for the padding, exclusion and tie conventions. Scores are computed in
    float32 (float64 when either vector input is float64); memory per batch is about
    ``batch_size * (V + 1) * 7`` bytes on ``device`` plus the item matrix.

    Args:
        user_vectors: (T, D) one query vector per target (the model's output before the target).
        item_vectors: (V + 1, D) item embeddings; row 0 (padding) is ignored.
        targets: (T,) int target item ids in 1..V.
        exclude: per-target item ids to remove from the ranking (the history: :func:`history_exclusions`);
            :class:`~argusrec.eval.metrics.ItemSets` (offsets (T + 1,), ids), an ``(offsets, ids)``
            tuple, or a list of T sets. ``None`` = the "raw" protocol.
        batch_size: targets per batch (B); default: as many as fit :data:`SCORE_BUDGET` scores.
        k_max: width K of the returned top-k lists.
        device: where to score; default: the device of ``item_vectors`` (CPU for numpy input).

    Returns:
        ranks: (T,) int64 numpy, 0 = first; feed to :func:`argusrec.eval.metrics.summarize`.
        topk: (T, K) int64 numpy item ids, best first, 0-padded when fewer than K items are rankable.
    """
    ranks, topk = _full_ranking(user_vectors, item_vectors, targets, exclude, batch_size, k_max, device)
    assert ranks is not None
    return ranks, topk


@torch.inference_mode()
def top_k_items(
    user_vectors: ArrayLike,
    item_vectors: ArrayLike,
    *,
    exclude: Exclusions | None = None,
    batch_size: int | None = None,
    k_max: int = 100,
    device: str | torch.device | None = None,
) -> np.ndarray:
    """(T, K) int64 top-``k_max`` item ids per query vector, best first, without a target.

    For protocols scored against a set of positives (Yambda-style temporal split: one query per user,
    :func:`argusrec.eval.metrics.summarize_sets`). Same padding and exclusion rules as
    :func:`rank_targets` (here nothing is exempt from ``exclude``); 0-padded when fewer than K items
    are rankable.
    """
    return _full_ranking(user_vectors, item_vectors, None, exclude, batch_size, k_max, device)[1]


def _full_ranking(
    user_vectors: ArrayLike,
    item_vectors: ArrayLike,
    targets: ArrayLike | None,
    exclude: Exclusions | None,
    batch_size: int | None,
    k_max: int,
    device: str | torch.device | None,
) -> tuple[np.ndarray | None, np.ndarray]:
    """The batch loop of :func:`rank_targets` (ranks are None without targets) and :func:`top_k_items`."""
    users, items = _as_tensor(user_vectors), _as_tensor(item_vectors)
    if users.ndim != 2 or items.ndim != 2 or users.shape[1] != items.shape[1]:
        raise ValueError(f"need user_vectors (T, D) and item_vectors (V + 1, D), got {users.shape}, {items.shape}")
    if k_max < 1:
        raise ValueError(f"k_max must be >= 1, got {k_max}")
    n_targets, n_items = users.shape[0], items.shape[0] - 1
    tgt = None if targets is None else _targets(targets, n_targets, n_items)
    sets = _exclusions(exclude, n_targets, n_items)
    dev = _device(device, item_vectors, user_vectors)
    dtype = _compute_dtype(users, items)
    items = items.to(dev, dtype)  # (V + 1, D)
    k = min(k_max, n_items)
    bs = _batch_size(batch_size, n_items + 1)
    ranks = None if tgt is None else np.empty(n_targets, dtype=np.int64)
    topk = np.zeros((n_targets, k_max), dtype=np.int64)
    for a in range(0, n_targets, bs):
        b = min(a + bs, n_targets)
        scores = users[a:b].to(dev, dtype) @ items.T  # (B, V + 1)
        if torch.isnan(scores).any():
            raise ValueError(f"NaN scores for rows {a}..{b - 1}; the model produced NaN vectors")
        rankable = torch.ones_like(scores, dtype=torch.bool)  # (B, V + 1)
        rankable[:, 0] = False
        if sets is not None:
            lo, hi = int(sets.offsets[a]), int(sets.offsets[b])
            ex_rows = np.repeat(np.arange(b - a), np.diff(sets.offsets[a : b + 1]))  # (nnz,)
            rankable[torch.from_numpy(ex_rows).to(dev), torch.from_numpy(sets.ids[lo:hi]).to(dev)] = False
        if tgt is not None and ranks is not None:
            rows = torch.arange(b - a, device=dev)  # (B,)
            t = torch.from_numpy(tgt[a:b]).to(dev)  # (B,)
            # Taken from the same matrix as every other score, so exact ties are seen as ties.
            target_score = scores[rows, t]  # (B,)
            rankable[rows, t] = True  # the target is always ranked, even if it is also in the history
            # >= counts ties as ahead (pessimistic); the target counts itself once, hence the - 1.
            ahead = scores >= target_score[:, None]  # (B, V + 1)
            ahead &= rankable
            ranks[a:b] = (ahead.sum(dim=1) - 1).cpu().numpy()
            del ahead
        scores.masked_fill_(~rankable, float("-inf"))
        idx = scores.topk(k, dim=1).indices  # (B, k)
        idx = torch.where(rankable.gather(1, idx), idx, torch.zeros_like(idx))  # masked picks -> padding
        topk[a:b, :k] = idx.cpu().numpy()
    return ranks, topk


def history_exclusions(
    store: SequenceStore,
    targets: EvalTargets | tuple[np.ndarray, np.ndarray],
    *,
    max_len: int | None = None,
) -> ItemSets:
    """Per target, the item ids of its history: rows ``offsets[user]:index`` of the store (vectorised).

    The papers' "filt" protocol removes every item of the user's history before the target
    (SASRec/S3-Rec/HSTU code filter the whole training sequence, not just the model's input window),
    hence the default ``max_len=None``. ``max_len`` keeps only the last ``max_len`` events.

    Memory: ``8 * (total history length)`` bytes; evaluate very long histories in slices of targets.

    Args:
        store: the sequence store.
        targets: :class:`~argusrec.data.splits.EvalTargets`, or ``(user (T,), index (T,))`` arrays
            (index = CSR row of the target event).
        max_len: keep only the most recent ``max_len`` history events.

    Returns:
        :class:`~argusrec.eval.metrics.ItemSets` with T sets; ids may repeat (harmless for exclusion).
    """
    if isinstance(targets, EvalTargets):
        user, index = targets.user, targets.index
    else:
        user, index = targets
    user = np.asarray(user, dtype=np.int64)
    index = np.asarray(index, dtype=np.int64)
    if user.shape != index.shape or user.ndim != 1:
        raise ValueError(f"user and index must be (T,) arrays of one shape, got {user.shape} and {index.shape}")
    offsets = np.asarray(store.offsets, dtype=np.int64)
    if user.size and (user.min() < 0 or user.max() >= len(offsets) - 1):
        raise IndexError(f"user index out of range [0, {len(offsets) - 1})")
    start, end = offsets[user], offsets[user + 1]
    if np.any((index < start) | (index >= end)):
        raise IndexError("target row outside its user's rows offsets[user]:offsets[user + 1]")
    if max_len is not None:
        if max_len < 0:
            raise ValueError(f"max_len must be >= 0, got {max_len}")
        start = np.maximum(start, index - max_len)
    lengths = index - start  # (T,)
    out_offsets = np.zeros(len(index) + 1, dtype=np.int64)
    np.cumsum(lengths, out=out_offsets[1:])
    ids = np.asarray(store.items[concat_aranges(start, lengths)], dtype=np.int64)
    return ItemSets(out_offsets, ids)


# ---------------------------------------------------------------------- popularity baseline
def item_counts(store: SequenceStore, split: Split | None = None, *, chunk_events: int = 1 << 22) -> np.ndarray:
    """(V + 1,) int64 number of events per item id, over the training prefixes of ``split`` (all events if None).

    Counting only training events keeps the baseline free of test leakage. Reads the store in chunks
    of about ``chunk_events`` rows.
    """
    n_items = store.n_items
    counts = np.zeros(n_items + 1, dtype=np.int64)

    def add(chunk: np.ndarray) -> None:
        c = np.bincount(np.asarray(chunk, dtype=np.int64), minlength=n_items + 1)
        if len(c) > n_items + 1:
            raise ValueError(f"the store holds item id {len(c) - 1} > n_items={n_items}; it is corrupted")
        counts[:] += c

    if split is None:
        for a in range(0, store.n_events, chunk_events):
            add(store.items[a : a + chunk_events])
        return counts
    start, end = split.train_ranges()
    lengths = end - start
    cum = np.cumsum(lengths)
    lo = 0
    while lo < len(start):
        # Users lo..hi-1 hold about chunk_events training rows (at least one user per chunk).
        base = cum[lo - 1] if lo else 0
        hi = max(int(np.searchsorted(cum, base + chunk_events, side="right")), lo + 1)
        rows = concat_aranges(start[lo:hi], lengths[lo:hi])
        add(store.items[rows])
        lo = hi
    return counts


def popularity_vectors(counts: np.ndarray, n_targets: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The popularity scorer as vectors for :func:`rank_targets`: user (T, 1) ones, item (V + 1, 1) counts.

    float64, so counts up to 2^53 stay exact and distinct counts never tie.
    """
    counts_t = torch.as_tensor(np.asarray(counts, dtype=np.float64))[:, None]  # (V + 1, 1)
    return torch.ones(n_targets, 1, dtype=torch.float64), counts_t


def rank_by_popularity(
    counts: np.ndarray,
    targets: ArrayLike,
    *,
    exclude: Exclusions | None = None,
    batch_size: int | None = None,
    k_max: int = 50,
    device: str | torch.device | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`rank_targets` with score(item) = ``counts[item]`` for every target (most popular first).

    Items with equal counts tie, and ties are pessimistic, so a target among many never-seen items
    gets the worst rank among them.

    Args:
        counts: (V + 1,) item counts (:func:`item_counts`).
        targets: (T,) target item ids.
        exclude, batch_size, k_max, device: as in :func:`rank_targets`.

    Returns:
        ranks (T,) int64 and topk (T, K) int64, as :func:`rank_targets`.
    """
    users, items = popularity_vectors(counts, len(targets))
    return rank_targets(users, items, targets, exclude=exclude, batch_size=batch_size, k_max=k_max, device=device)


# ---------------------------------------------------------------------- sampled candidates
def sample_negatives(
    targets: np.ndarray,
    n_items: int,
    *,
    n_negatives: int = 100,
    seed: int = 0,
    exclude: Exclusions | None = None,
    max_rounds: int = 1000,
) -> np.ndarray:
    """(T, R) int64 negatives drawn uniformly from 1..V, never the target nor an excluded item.

    As SASRec's evaluation: draws are with replacement across the R negatives (a negative may repeat),
    and a draw hitting the target or the user's history is redrawn. Deterministic given ``seed``.
    """
    tgt = np.asarray(targets, dtype=np.int64)
    n_targets = len(tgt)
    rng = np.random.default_rng(seed)
    neg = rng.integers(1, n_items + 1, size=(n_targets, n_negatives), dtype=np.int64)  # (T, R)
    sets = _exclusions(exclude, n_targets, n_items)
    base = n_items + 1
    owner = np.arange(n_targets, dtype=np.int64)
    forbidden = owner * base + tgt  # (T,)
    if sets is not None:
        forbidden = np.concatenate([forbidden, np.repeat(owner, sets.sizes()) * base + sets.ids])
    forbidden = np.unique(forbidden)  # sorted (target, item) keys that may not be drawn
    for _ in range(max_rounds):
        keys = owner[:, None] * base + neg  # (T, R)
        pos = np.minimum(np.searchsorted(forbidden, keys), len(forbidden) - 1)
        bad = forbidden[pos] == keys
        if not bad.any():
            return neg
        neg[bad] = rng.integers(1, n_items + 1, size=int(bad.sum()), dtype=np.int64)
    raise RuntimeError(
        f"could not draw negatives outside the excluded items in {max_rounds} rounds; "
        "some targets exclude almost the whole catalog"
    )


@torch.inference_mode()
def rank_against_sampled(
    user_vectors: ArrayLike,
    item_vectors: ArrayLike,
    targets: ArrayLike,
    *,
    n_negatives: int = 100,
    seed: int = 0,
    exclude: Exclusions | None = None,
    batch_size: int | None = None,
    device: str | torch.device | None = None,
) -> np.ndarray:
    """(T,) int64 rank of each target among itself and R sampled negatives (0..R); ties pessimistic.

    NOT comparable with full ranking (reference/PEERS.md §4): summarize with
    ``metrics.summarize(ranks, sampled=n_negatives)`` so the names read ``test/sampled100/HR@10``.
    Negatives come from :func:`sample_negatives` (uniform, never the target or an ``exclude`` item).
    """
    users, items = _as_tensor(user_vectors), _as_tensor(item_vectors)
    if users.ndim != 2 or items.ndim != 2 or users.shape[1] != items.shape[1]:
        raise ValueError(f"need user_vectors (T, D) and item_vectors (V + 1, D), got {users.shape}, {items.shape}")
    n_targets, n_items = users.shape[0], items.shape[0] - 1
    tgt = _targets(targets, n_targets, n_items)
    neg = sample_negatives(tgt, n_items, n_negatives=n_negatives, seed=seed, exclude=exclude)  # (T, R)
    cand = np.concatenate([tgt[:, None], neg], axis=1)  # (T, R + 1), target first
    dev = _device(device, item_vectors, user_vectors)
    dtype = _compute_dtype(users, items)
    items = items.to(dev, dtype)
    bs = _batch_size(batch_size, (n_negatives + 1) * users.shape[1])
    ranks = np.empty(n_targets, dtype=np.int64)
    for a in range(0, n_targets, bs):
        b = min(a + bs, n_targets)
        u = users[a:b].to(dev, dtype)  # (B, D)
        vecs = items[torch.from_numpy(cand[a:b]).to(dev)]  # (B, R + 1, D)
        scores = torch.bmm(vecs, u[:, :, None])[:, :, 0]  # (B, R + 1)
        if torch.isnan(scores).any():
            raise ValueError(f"NaN scores for targets {a}..{b - 1}; the model produced NaN vectors")
        ranks[a:b] = (scores[:, 1:] >= scores[:, :1]).sum(dim=1).cpu().numpy()
    return ranks
