"""One-pass pairwise fine-tuning: every impression of a history chunk scored from one causal pass (ARGUS.md §5).

**Chunks** (:func:`finetune_chunks`). A training example is one user's history window plus the impressions it
supervises. A user's pair groups (:class:`~argusrec.finetune.pairs.Pairs`, in time order) are packed greedily into
*blocks* of whole groups with at most ``max_impressions`` impressions (impressions in pairs) whose rows span at
most ``max_len`` events; a block's history is the ``max_len`` events ending at its last impression (fewer at the
start of the user's data). Blocks whose history is shorter than ``min_len`` are dropped, and so are groups with
more than ``max_impressions`` impressions (both counted in ``stats``). Unlike pre-training chunks, histories of
consecutive blocks may overlap (each impression is in exactly one block); packing is vectorised over users, one
round per block of the user with the most blocks.

**Lagged user states** (:func:`lagged_state_columns`). The encoder runs once over the chunk (B, N). An impression
of group g (time ``t_g``, first row ``r_g``) is scored with the user state after the last event ``k`` such that

    timestamp_k <= t_g - lag   and   k < r_g      (k inside the chunk)

found for all impressions at once with ``torch.searchsorted`` over the chunk's timestamps (``lag`` in seconds;
the article simulates the one-day delay of offline user vectors). The second condition keeps the request's own
events (and their feedback) out even with ``lag = 0``. An impression with no such event in the chunk has no state:
it is dropped, with its pairs, and counted (``n_impressions_no_state``, ``n_pairs_no_state``).

**Loss** (:class:`PairwiseTask`). With ``u = MLP_user(h_k)`` and ``v_j`` the item tower's vector, ``s = <u, v_j>``;
over the P pairs ``(a better than b, weight w)`` of the batch whose impressions both have a state,

    loss = sum_p w_p · softplus(s_b - s_a) / sum_p w_p     (:func:`argusrec.losses.pairwise_logistic_loss`)

**Batches** (:class:`ImpressionBatches`, :func:`assemble_finetune_batch`). The history columns as
:func:`argusrec.data.batching.assemble_batch` gives them (left-padded (B, N)), plus the impressions padded to
(B, M): ``imp_item`` (item ids), ``imp_time`` (``t_g``), ``imp_limit`` (column of ``r_g`` in the batch; negative
when ``r_g`` lies before the window), ``imp_mask``; and the pairs as flat indices into the B·M impressions:
``pair_better``, ``pair_worse`` (P,) int64, ``pair_weight`` (P,) float32.

**Metric** (:func:`evaluate_pairs`): PairAccuracy, the weighted share of pairs scored in the right order (ties
count half, :func:`argusrec.eval.feedback.pair_accuracy`).

Letters (docs/notation.md): B batch, N events, D width, D_o user / item vector width; C chunks, I impressions,
G groups, P pairs, M impressions per chunk (padded).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np
import torch
from torch import Tensor, nn

from argusrec.data.batching import ChunkBatches, Chunks, assemble_batch, concat_aranges
from argusrec.data.schema import ITEM_ID, TIMESTAMP
from argusrec.data.store import SequenceStore
from argusrec.errors import ArgusrecError
from argusrec.eval.feedback import pair_accuracy
from argusrec.finetune.pairs import Pairs
from argusrec.finetune.two_tower import TwoTower
from argusrec.losses import pairwise_logistic_loss
from argusrec.nn.feedback_scale import FeedbackRange, feedback_batch
from argusrec.training.device import to_device

__all__ = [
    "FINETUNE_KEYS",
    "FinetuneChunks",
    "ImpressionBatches",
    "PairwiseTask",
    "assemble_finetune_batch",
    "evaluate_pairs",
    "finetune_chunks",
    "lagged_state_columns",
]

IMP_ITEM, IMP_TIME, IMP_LIMIT, IMP_MASK = "imp_item", "imp_time", "imp_limit", "imp_mask"
PAIR_BETTER, PAIR_WORSE, PAIR_WEIGHT = "pair_better", "pair_worse", "pair_weight"
#: Batch keys added to the history columns; no store column may use them.
FINETUNE_KEYS = (IMP_ITEM, IMP_TIME, IMP_LIMIT, IMP_MASK, PAIR_BETTER, PAIR_WORSE, PAIR_WEIGHT)
MASK = "mask"
DAY_S = 86_400


# ---------------------------------------------------------------------------------------------- chunks
@dataclass(frozen=True, eq=False)  # arrays have no single truth value for ==
class FinetuneChunks:
    """C training examples: history windows and, CSR-style, the impressions and pairs each supervises.

    Attributes:
        history: the C history windows (user, first row, length).
        imp_offsets: (C + 1,) chunk c's impressions are ``imp_*[imp_offsets[c]:imp_offsets[c + 1]]``.
        imp_row: (I,) CSR row of each impression (its item is ``store.items[imp_row]``).
        imp_time: (I,) ``t_g`` of the impression's group.
        imp_first: (I,) ``r_g`` (CSR row) of the impression's group.
        pair_offsets: (C + 1,) chunk c's pairs are ``pair_*[pair_offsets[c]:pair_offsets[c + 1]]``.
        pair_better, pair_worse: (P,) indices of the pair's impressions *within its chunk* (0-based).
        pair_weight: (P,) float32.
        stats: counts (chunks, impressions, pairs, and what was dropped and why).
    """

    history: Chunks
    imp_offsets: np.ndarray
    imp_row: np.ndarray
    imp_time: np.ndarray
    imp_first: np.ndarray
    pair_offsets: np.ndarray
    pair_better: np.ndarray
    pair_worse: np.ndarray
    pair_weight: np.ndarray
    stats: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.history)

    @property
    def n_impressions(self) -> np.ndarray:
        """(C,) impressions per chunk."""
        return np.diff(self.imp_offsets)

    @property
    def n_pairs(self) -> np.ndarray:
        """(C,) pairs per chunk."""
        return np.diff(self.pair_offsets)


def _pack_blocks(
    user: np.ndarray, size: np.ndarray, first: np.ndarray, last: np.ndarray, max_impressions: int, max_len: int
) -> np.ndarray:
    """Greedy packing of G time-ordered groups into blocks (module docstring); returns the (K,) sorted first group
    of every block. ``user`` (G,) non-decreasing; ``size`` impressions, ``first``/``last`` rows of each group."""
    g = len(user)
    if g == 0:
        return np.zeros(0, dtype=np.int64)
    cum = np.concatenate([[0], np.cumsum(size)])  # (G + 1,)
    reach = np.maximum.accumulate(last)  # (G,) within a user = the user's running max (earlier users' rows are lower)
    user_end = np.searchsorted(user, user, side="right")  # (G,) end of each group's user's run
    s = np.flatnonzero(np.r_[True, user[1:] != user[:-1]])  # (U',) first group of each user
    starts = []
    while s.size:
        starts.append(s)
        by_count = np.searchsorted(cum, cum[s] + max_impressions, side="right") - 1  # sum(size[s:e]) <= max
        by_span = np.searchsorted(reach, first[s] + max_len, side="left")  # rows of s..e-1 within max_len
        e = np.maximum(np.minimum(np.minimum(by_count, by_span), user_end[s]), s + 1)
        s = e[e < user_end[s]]
    return np.sort(np.concatenate(starts))


def finetune_chunks(
    pairs: Pairs,
    offsets: np.ndarray,
    *,
    max_len: int,
    min_len: int = 1,
    max_impressions: int = 256,
) -> FinetuneChunks:
    """Training examples of at most ``max_len`` history events and ``max_impressions`` impressions (module doc).

    Args:
        pairs: impressions and pairs from :func:`argusrec.finetune.pairs.build_pairs`.
        offsets: (U + 1,) the store's CSR offsets.
        max_len: N, the longest history window (events).
        min_len: drop examples whose history window is shorter (counted in ``stats``).
        max_impressions: M, the most impressions (in pairs) of one example; larger groups are dropped.

    Raises:
        ArgusrecError: when nothing is left (every group too large or every history too short).
    """
    if max_len < 1 or not 1 <= min_len <= max_len:
        raise ValueError(f"need 1 <= min_len <= max_len, got min_len={min_len}, max_len={max_len}")
    if max_impressions < 2:
        raise ValueError(f"max_impressions must be >= 2 (a pair), got {max_impressions}")
    offsets = np.asarray(offsets, dtype=np.int64)
    n_groups = pairs.n_groups
    size = np.bincount(pairs.group, minlength=n_groups)  # (G,)
    ends = np.cumsum(size)  # (G,) impressions are sorted by (group, row): a group's last row ends its run
    last = pairs.rows[ends - 1] if n_groups else np.zeros(0, dtype=np.int64)  # (G,) last impression row
    stats = {"impressions_in": pairs.n_impressions, "pairs_in": pairs.n_pairs}

    # groups too large for one example
    big = size > max_impressions
    stats["dropped_large_groups"] = int(big.sum())
    # blocks over the other groups (a dropped group counts 0 impressions and its rows need no room)
    keep_g = ~big
    kept = np.flatnonzero(keep_g)
    block_first_k = _pack_blocks(
        pairs.group_user[kept], size[kept], pairs.group_first[kept], last[kept], max_impressions, max_len
    )
    block_of_kept = np.searchsorted(block_first_k, np.arange(len(kept)), side="right") - 1  # (G_kept,)
    block_of_group = np.full(n_groups, -1, dtype=np.int64)
    block_of_group[kept] = block_of_kept
    n_blocks = len(block_first_k)
    block_user = pairs.group_user[kept][block_first_k] if n_blocks else np.zeros(0, dtype=np.int64)
    # blocks are runs of consecutive kept groups: (K,) exclusive end row of each history window
    block_end = np.maximum.reduceat(last[kept], block_first_k) + 1 if n_blocks else np.zeros(0, dtype=np.int64)
    block_start = np.maximum(offsets[block_user], block_end - max_len)
    length = block_end - block_start
    long_enough = length >= min_len  # (K,)
    stats["dropped_short_chunks"] = int((~long_enough).sum())

    # impressions and pairs that survive, ordered by chunk
    chunk_of_block = np.cumsum(long_enough) - 1  # (K,) new index of kept blocks
    imp_block = block_of_group[pairs.group]  # (I,) -1 = large group
    imp_keep = imp_block >= 0
    imp_keep[imp_keep] = long_enough[imp_block[imp_keep]]
    imp_chunk = np.where(imp_keep, chunk_of_block[np.maximum(imp_block, 0)], -1)  # (I,)
    pair_chunk = imp_chunk[pairs.better]  # (P,) both impressions share a group, hence a chunk
    pair_keep = pair_chunk >= 0
    stats["dropped_impressions"] = int((~imp_keep).sum())
    stats["dropped_pairs"] = int((~pair_keep).sum())
    if not imp_keep.any():
        raise ArgusrecError(
            f"no fine-tuning examples left: {stats['dropped_large_groups']} groups have more than "
            f"max_impressions={max_impressions} impressions and {stats['dropped_short_chunks']} histories are shorter "
            f"than min_len={min_len} events; raise max_impressions or lower min_len"
        )
    n_chunks = int(long_enough.sum())
    # impressions are sorted by group, groups by first row, blocks are runs of groups: already in chunk order
    imp_idx = np.flatnonzero(imp_keep)
    imp_offsets = np.zeros(n_chunks + 1, dtype=np.int64)
    np.cumsum(np.bincount(imp_chunk[imp_idx], minlength=n_chunks), out=imp_offsets[1:])
    new_imp = np.full(pairs.n_impressions, -1, dtype=np.int64)
    new_imp[imp_idx] = np.arange(len(imp_idx))
    pair_idx = np.flatnonzero(pair_keep)
    pair_idx = pair_idx[np.argsort(pair_chunk[pair_idx], kind="stable")]
    pc = pair_chunk[pair_idx]
    pair_offsets = np.zeros(n_chunks + 1, dtype=np.int64)
    np.cumsum(np.bincount(pc, minlength=n_chunks), out=pair_offsets[1:])
    local_better = new_imp[pairs.better[pair_idx]] - imp_offsets[pc]
    local_worse = new_imp[pairs.worse[pair_idx]] - imp_offsets[pc]
    history = Chunks(user=block_user[long_enough], start=block_start[long_enough], length=length[long_enough])
    group = pairs.group[imp_idx]
    stats.update(chunks=n_chunks, impressions=len(imp_idx), pairs=len(pair_idx))
    return FinetuneChunks(
        history=history,
        imp_offsets=imp_offsets,
        imp_row=pairs.rows[imp_idx],
        imp_time=pairs.group_time[group],
        imp_first=pairs.group_first[group],
        pair_offsets=pair_offsets,
        pair_better=local_better,
        pair_worse=local_worse,
        pair_weight=pairs.weight[pair_idx].astype(np.float32),
        stats=stats,
    )


# ---------------------------------------------------------------------------------------------- batches
def assemble_finetune_batch(
    store: SequenceStore,
    chunks: FinetuneChunks,
    ids: np.ndarray,
    *,
    columns: Sequence[str] | None = None,
    n: int | None = None,
    m: int | None = None,
) -> dict[str, np.ndarray]:
    """The batch of chunks ``ids`` (B,): history columns (B, N) + impressions (B, M) + pairs (P,) (module doc).

    Args:
        store: the sequence store.
        chunks: from :func:`finetune_chunks`.
        ids: (B,) chunk ids.
        columns: history columns to read (``assemble_batch``); ``item_id`` and ``timestamp`` are always read.
        n: N, fixed history width (default: the longest chunk of the batch).
        m: M, fixed impression width (default: the most impressions of a chunk of the batch).
    """
    ids = np.asarray(ids, dtype=np.int64)
    cols = list(dict.fromkeys([ITEM_ID, TIMESTAMP, *(columns if columns is not None else store.columns)]))
    clash = sorted(set(cols) & set(FINETUNE_KEYS))
    if clash:
        raise ValueError(f"store columns {clash} collide with fine-tuning batch keys {FINETUNE_KEYS}")
    part = chunks.history.take(ids)
    out = assemble_batch(store, part.start, part.length, columns=cols, user=part.user, n=n, padding="left")
    b, width = out[MASK].shape
    shift = width - part.length  # (B,) pad columns before each chunk's first event

    k = chunks.imp_offsets[ids + 1] - chunks.imp_offsets[ids]  # (B,) impressions per chunk
    most = int(k.max(initial=0))
    mm = most if m is None else int(m)
    if mm < most:
        raise ValueError(f"m={mm} is smaller than the most impressions of a chunk in the batch ({most})")
    idx = concat_aranges(chunks.imp_offsets[ids], k)  # (sum k,) impression indices
    bi = np.repeat(np.arange(b, dtype=np.int64), k)
    slot = concat_aranges(np.zeros(b, dtype=np.int64), k)
    imp_item = np.zeros((b, mm), dtype=store.items.dtype)
    imp_time = np.zeros((b, mm), dtype=np.int64)
    imp_limit = np.full((b, mm), -1, dtype=np.int64)
    imp_mask = np.zeros((b, mm), dtype=bool)
    imp_item[bi, slot] = store.items[chunks.imp_row[idx]]
    imp_time[bi, slot] = chunks.imp_time[idx]
    imp_limit[bi, slot] = chunks.imp_first[idx] - part.start[bi] + shift[bi]  # column of r_g (< 0: before window)
    imp_mask[bi, slot] = True

    pk = chunks.pair_offsets[ids + 1] - chunks.pair_offsets[ids]  # (B,)
    pidx = concat_aranges(chunks.pair_offsets[ids], pk)  # (P,)
    pb = np.repeat(np.arange(b, dtype=np.int64), pk)
    out[IMP_ITEM], out[IMP_TIME], out[IMP_LIMIT], out[IMP_MASK] = imp_item, imp_time, imp_limit, imp_mask
    out[PAIR_BETTER] = pb * mm + chunks.pair_better[pidx]
    out[PAIR_WORSE] = pb * mm + chunks.pair_worse[pidx]
    out[PAIR_WEIGHT] = chunks.pair_weight[pidx]
    return out


class ImpressionBatches:
    """Seeded, resumable batches of fine-tuning examples (the ``Batches`` protocol of ``training/loop.py``).

    Epoch order, bucketing by history length and resuming at a batch are :class:`ChunkBatches`'s; each batch is
    :func:`assemble_finetune_batch` of the chosen chunks.
    """

    def __init__(
        self,
        store: SequenceStore,
        chunks: FinetuneChunks,
        *,
        batch_size: int,
        columns: Sequence[str] | None = None,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = False,
        n: int | None = None,
        m: int | None = None,
        bucket: int | None = None,
    ) -> None:
        self.store = store
        self.chunks = chunks
        self.columns = None if columns is None else list(columns)
        self.n, self.m = n, m
        self._order = ChunkBatches(
            store, chunks.history, batch_size=batch_size, shuffle=shuffle, seed=seed, drop_last=drop_last, bucket=bucket
        )

    def __len__(self) -> int:
        return len(self._order)

    def epoch(self, epoch: int, start_batch: int = 0) -> Iterator[dict[str, np.ndarray]]:
        for ids in self._order.batch_ids(epoch, start_batch):
            yield self._assemble(ids)

    def select(self, epoch: int, batches: Sequence[int]) -> Iterator[dict[str, np.ndarray]]:
        """Only batches ``batches`` of ``epoch``: one data-parallel rank's share, the rest never assembled."""
        for ids in self._order.selected_ids(epoch, batches):
            yield self._assemble(ids)

    def _assemble(self, ids: np.ndarray) -> dict[str, np.ndarray]:
        return assemble_finetune_batch(self.store, self.chunks, ids, columns=self.columns, n=self.n, m=self.m)


# ---------------------------------------------------------------------------------------------- loss
def lagged_state_columns(
    timestamps: Tensor, valid: Tensor, imp_time: Tensor, imp_limit: Tensor, imp_mask: Tensor, lag: int
) -> tuple[Tensor, Tensor]:
    """The column of each impression's user state (module docstring), by binary search.

    Args:
        timestamps: (B, N) int64, non-decreasing over each row's real events (left or right padding).
        valid: (B, N) bool real events.
        imp_time: (B, M) int64 ``t_g``.  imp_limit: (B, M) int64 column of ``r_g``.  imp_mask: (B, M) bool.
        lag: seconds.

    Returns:
        ``(col, ok)``: (B, M) int64 column of the state (clamped to >= 0) and (B, M) bool, True when the impression
        is real and has a state.
    """
    valid = valid.bool()
    ts = timestamps.long()
    lo, hi = torch.iinfo(torch.int64).min, torch.iinfo(torch.int64).max
    before_first = valid.long().cumsum(dim=1) == 0  # (B, N) padding left of the first real event
    keys = torch.where(valid, ts, torch.where(before_first, lo, hi)).contiguous()  # (B, N) sorted
    cut = (imp_time.long() - int(lag)).contiguous()  # (B, M)
    col = torch.searchsorted(keys, cut, right=True) - 1  # (B, M) last column with key <= t_g - lag
    col = torch.minimum(col, imp_limit.long() - 1)  # strictly before the group's first event
    ok = imp_mask.bool() & (col >= 0)
    col = col.clamp(min=0)
    ok = ok & valid.gather(1, col)
    return col, ok


class PairwiseTask:
    """The training loop's ``Task`` for one-pass pairwise fine-tuning of a :class:`TwoTower` (module docstring).

    Args:
        lag: seconds between an impression's time and the newest event its user state may include (default a day).
        check: verify that every batch's pairs index real impressions (a host sync; off on GPU).
        feedback_ranges: continuous signal -> its map onto [0, 1], the pre-training run's
            (:func:`argusrec.recipes.pretrain.feedback_ranges`); the encoder reads feedback as pre-training did.
    """

    def __init__(
        self, *, lag: int = DAY_S, check: bool = True, feedback_ranges: Mapping[str, FeedbackRange] | None = None
    ) -> None:
        if lag < 0:
            raise ValueError(f"lag must be >= 0 seconds, got {lag}")
        self.lag = int(lag)
        self.check = check
        self.feedback_ranges = dict(feedback_ranges or {})

    def state_dict(self) -> dict[str, Any]:
        """Nothing random to checkpoint (the recipes pass the task to ``fit`` as a ``stateful`` object)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Nothing to restore."""

    @staticmethod
    def columns(model: TwoTower) -> list[str]:
        """History columns a batch must hold for ``model``."""
        return list(dict.fromkeys([ITEM_ID, TIMESTAMP, *model.context_fields, *model.feedback_fields]))

    def scores(self, model: nn.Module, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        """((B, M) scores, (B, M) bool has-a-state) of every impression of the batch, from one causal pass."""
        tt = cast(TwoTower, model)  # may be its torch.compile wrapper: attributes pass through
        mask = batch[MASK].bool()
        states = model(
            batch[ITEM_ID].long(),
            {c: batch[c].long() for c in tt.context_fields},
            feedback_batch(batch, tt.feedback_fields, self.feedback_ranges),
            batch[TIMESTAMP],
            mask,
        )  # (B, N, D)
        col, ok = lagged_state_columns(
            batch[TIMESTAMP], mask, batch[IMP_TIME], batch[IMP_LIMIT], batch[IMP_MASK], self.lag
        )  # (B, M)
        picked = states.gather(1, col.unsqueeze(-1).expand(-1, -1, states.shape[-1]))  # (B, M, D)
        user = tt.user_vectors(picked)  # (B, M, D_o)
        item = tt.item_vectors(batch[IMP_ITEM].long())  # (B, M, D_o)
        return (user * item).sum(-1), ok

    def components(self, model: nn.Module, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """``total`` (0-d weighted pairwise loss), ``n_pairs`` (used), ``n_pairs_no_state``, ``n_impressions``,
        ``n_impressions_no_state`` (0-d int64), ``scores`` (B, M) and ``has_state`` (B, M)."""
        scores, ok = self.scores(model, batch)
        better, worse = batch[PAIR_BETTER].long(), batch[PAIR_WORSE].long()
        if self.check and better.numel():
            size = scores.numel()
            imp = batch[IMP_MASK].reshape(-1)
            if int(better.max()) >= size or int(worse.max()) >= size or not bool(imp[better].all() & imp[worse].all()):
                raise ValueError("pair indices point outside the batch's impressions")
        flat, ok_flat = scores.reshape(-1), ok.reshape(-1)  # (B·M,)
        use = ok_flat[better] & ok_flat[worse]  # (P,)
        weight = batch[PAIR_WEIGHT].float()
        loss = pairwise_logistic_loss(flat[better[use]], flat[worse[use]], weight[use])
        loss = loss + flat.sum() * 0.0  # attached to the graph even when no pair is usable
        imp = batch[IMP_MASK].bool()
        return {
            "total": loss,
            "n_pairs": use.sum(),
            "n_pairs_no_state": (~use).sum(),
            "n_impressions": imp.sum(),
            "n_impressions_no_state": (imp & ~ok).sum(),
            "scores": scores,
            "has_state": ok,
        }

    def loss(self, model: nn.Module, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        """(weighted pairwise logistic loss, number of pairs used) of a batch from :class:`ImpressionBatches`."""
        parts = self.components(model, batch)
        return parts["total"], parts["n_pairs"]


# ---------------------------------------------------------------------------------------------- metric
@torch.no_grad()
def evaluate_pairs(
    model: TwoTower,
    batches: ImpressionBatches,
    task: PairwiseTask,
    *,
    device: torch.device | str = "cpu",
    prefix: str = "",
) -> dict[str, Any]:
    """PairAccuracy (weighted and not) of ``model`` over every pair of ``batches`` (one pass per chunk; eval mode).

    Returns ``{prefix}PairAccuracy`` (unweighted), ``{prefix}PairAccuracy_weighted``, ``{prefix}pairs`` (scored),
    ``{prefix}pairs_no_state`` and ``{prefix}impressions_no_state`` (dropped: no lagged state in the window).
    """
    was_training = model.training
    model.eval()
    better: list[np.ndarray] = []
    worse: list[np.ndarray] = []
    weights: list[np.ndarray] = []
    no_state_pairs = no_state_imps = 0
    try:
        for np_batch in batches.epoch(0):
            batch = to_device(np_batch, torch.device(device))
            parts = task.components(model, batch)
            flat = parts["scores"].float().reshape(-1)
            ok = parts["has_state"].reshape(-1)
            b, w = batch[PAIR_BETTER], batch[PAIR_WORSE]
            use = ok[b] & ok[w]
            better.append(flat[b[use]].cpu().numpy())
            worse.append(flat[w[use]].cpu().numpy())
            weights.append(batch[PAIR_WEIGHT][use].float().cpu().numpy())
            no_state_pairs += int(parts["n_pairs_no_state"])
            no_state_imps += int(parts["n_impressions_no_state"])
    finally:
        model.train(was_training)
    sa = np.concatenate(better) if better else np.zeros(0)
    sb = np.concatenate(worse) if worse else np.zeros(0)
    ww = np.concatenate(weights) if weights else np.zeros(0)
    label = np.ones(len(sa), dtype=bool)
    return {
        f"{prefix}PairAccuracy_weighted": pair_accuracy(sa, sb, label, weights=ww),
        f"{prefix}PairAccuracy": pair_accuracy(sa, sb, label),
        f"{prefix}pairs": len(sa),
        f"{prefix}pairs_no_state": no_state_pairs,
        f"{prefix}impressions_no_state": no_state_imps,
    }
