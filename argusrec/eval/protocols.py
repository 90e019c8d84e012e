"""Evaluation protocols: from a split's targets to user vectors, full-catalog ranks and metrics.

Leave-one-out (the SASRec / HSTU / FuXi papers): for every validation or test target, the model
reads the up-to-``max_len`` events before it; its last state is the user vector; the target is ranked
against the whole catalog with the user's history items removed ("filt"), HR/NDCG/MRR/Recall/Coverage.
The same code serves the global temporal split with one target per test-period event.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch

from argusrec.data.batching import assemble_batch, history_windows
from argusrec.data.schema import ITEM_ID, TIMESTAMP
from argusrec.data.splits import Split
from argusrec.data.store import SequenceStore
from argusrec.eval.metrics import summarize
from argusrec.eval.ranking import (
    history_exclusions,
    item_counts,
    rank_against_sampled,
    rank_by_popularity,
    rank_targets,
)
from argusrec.models.sequential import SequentialRecommender


@torch.no_grad()
def user_vectors(
    model: SequentialRecommender,
    store: SequenceStore,
    user: np.ndarray,
    index: np.ndarray,
    *,
    max_len: int,
    batch_size: int = 512,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """(T, D) user vectors: the model's state after the events just before each target
    (:meth:`~argusrec.models.sequential.SequentialRecommender.last_states`: a target without history gets
    the learned empty-history state, or zeros).

    The last position's query time is the target's own timestamp (HSTU's next-timestamp convention:
    the model knows when the event it predicts happens). Targets are batched by history length and each
    batch is padded to its longest history only (models are left-padding invariant): Amazon histories
    average ~9 events of a 50-event window.
    """
    windows = history_windows(store.offsets, user, index, max_len)
    was_training = model.training
    model.eval()
    out: list[torch.Tensor] = []
    target_ts = np.asarray(store.timestamps[index], dtype=np.int64)
    by_length = np.argsort(windows.length, kind="stable")  # (T,) targets, shortest history first
    for lo in range(0, len(windows), batch_size):
        rows = by_length[lo : lo + batch_size]  # (B,)
        n = max(int(windows.length[rows].max()), 1)  # the batch's longest history (one slot at least)
        batch = assemble_batch(
            store, windows.start[rows], windows.length[rows], columns=[ITEM_ID, TIMESTAMP], user=windows.user[rows], n=n
        )
        items = torch.from_numpy(batch[ITEM_ID].astype(np.int64)).to(device)  # (B, N)
        valid = torch.from_numpy(batch["mask"]).to(device)  # (B, N)
        ts = torch.from_numpy(batch[TIMESTAMP]).to(device)  # (B, N)
        query_ts = torch.cat([ts[:, 1:], torch.from_numpy(target_ts[rows]).to(device)[:, None]], dim=1)  # (B, N)
        states = model(items, valid, ts, query_ts)  # (B, N, D)
        out.append(model.last_states(states, valid)[0].float())  # left padding: the latest event is last
    model.train(was_training)
    if not out:
        return torch.zeros(0, 0)
    back = torch.from_numpy(np.argsort(by_length)).to(out[0].device)  # (T,) sorted position of each target
    return torch.cat(out)[back]  # (T, D) in the targets' order


@torch.no_grad()
def evaluate_next_item(
    model: SequentialRecommender,
    store: SequenceStore,
    split: Split,
    role: Literal["valid", "test"],
    *,
    max_len: int,
    ks: tuple[int, ...] = (10, 50),
    filter_history: bool = True,
    batch_size: int = 512,
    device: torch.device | str = "cpu",
    sampled_negatives: int | None = None,
) -> dict[str, float]:
    """Full-catalog next-item metrics of ``model`` on the split's ``role`` targets, named ``<role>/HR@10``...

    With ``sampled_negatives`` R, also the sampled-candidate metrics (target vs R random items, as some
    papers report), named ``<role>/sampledR/HR@10``: not comparable with full ranking, hence the label.
    """
    targets = split.targets(role, min_history=1)
    users = user_vectors(
        model, store, targets.user, targets.index, max_len=max_len, batch_size=batch_size, device=device
    )
    items = model.all_item_vectors().float()  # (V + 1, D)
    exclude = history_exclusions(store, targets) if filter_history else None
    target_items = np.asarray(store.items[targets.index], dtype=np.int64)
    ranks, topk = rank_targets(users, items, target_items, exclude=exclude, k_max=max(ks), device=device)
    metrics = summarize(ranks, topk, ks=ks, n_items=store.n_items, prefix=f"{role}/")
    if sampled_negatives:
        sampled = rank_against_sampled(
            users, items, target_items, n_negatives=sampled_negatives, exclude=exclude, device=device
        )
        metrics.update(summarize(sampled, ks=ks, prefix=f"{role}/", sampled=sampled_negatives))
    return metrics


def evaluate_popularity(
    store: SequenceStore,
    split: Split,
    role: Literal["valid", "test"],
    *,
    ks: tuple[int, ...] = (10, 50),
    filter_history: bool = True,
) -> dict[str, float]:
    """The same metrics for the most-popular-items baseline (counts over the training prefixes only)."""
    targets = split.targets(role, min_history=1)
    counts = item_counts(store, split)
    exclude = history_exclusions(store, targets) if filter_history else None
    target_items = np.asarray(store.items[targets.index], dtype=np.int64)
    ranks, topk = rank_by_popularity(counts, target_items, exclude=exclude, k_max=max(ks))
    return summarize(ranks, topk, ks=ks, n_items=store.n_items, prefix=f"{role}/")
