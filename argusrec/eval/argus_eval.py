"""Evaluate an ARGUS model on the valid / test period of a split, as the article does (reference/ARGUS.md §6).

The model reads each user's history as context, but losses and metrics are computed **only on the period's
events**. For every user with events in the period, the period's rows are cut into groups of at most
``max_len`` events (aligned from the end, :func:`argusrec.data.batching.chunk_ranges`); each group is scored
in one window of up to ``max_len`` events ending at the group's last event, so the events just before the
group are its context. A period longer than ``max_len`` events gets several windows (logged, never
truncated). With ``targets_per_window=k < max_len`` every target sees at least ``max_len - k`` earlier events
(when the user has them), at the price of ``max_len / k`` times more windows.

Metrics (DESIGN.md names, ``<role>`` = ``valid`` or ``test``):

* ``<role>/NIP_loss`` — mean cross-entropy of the true item under the model's softmax over the **full
  catalog**, ``-log softmax(<q, e_j> / T)`` over items 1..V: exact, no logQ, no sampling (§3: logQ is
  training-only). Cost: O(T·V·D_r) multiply-adds for T targets, computed ``score_chunk`` logits at a time so
  memory stays O(score_chunk + V·D_r). Above ``full_catalog_max`` items it falls back to a fixed-sample estimate
  (the same seeded uniform items every call), reported as ``<role>/NIP_loss_sampled<R>`` instead.
* ``<role>/NIP_count`` — the number of period events scored.
* ``<role>/FP_LogLoss|FP_NE|FP_AUC|FP_count/<signal>`` — :func:`argusrec.eval.feedback.feedback_metrics` of
  ``sigmoid(fp_logits)`` against the period's labels (NaN labels skipped); continuous signals with a
  ``feedback_ranges`` entry are mapped onto [0, 1] as in training (:mod:`argusrec.nn.feedback_scale`), labels and
  model input alike.
* ``<role>/NDCG@10_positive`` (with ``positive_signal``) — over the period's positive events, NDCG@10 of the true
  item in the full-catalog ranking by ``<q, e_j>`` (pessimistic ties, history not filtered: ARGUS predicts
  every next interaction, repeats included); ``<role>/positive_count`` is their number. Exact catalogs only.

:func:`popularity_nip_loss` is the reference: the cross-entropy of the add-one-smoothed training item
frequencies on the same events.

Letters: T period events, V catalog, D_r retrieval width, B windows per batch, N window length.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from typing import cast

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from argusrec.data.batching import MASK, POSITIONS, assemble_batch, chunk_ranges
from argusrec.data.schema import ITEM_ID, TIMESTAMP
from argusrec.data.splits import EvalRole, Split
from argusrec.data.store import SequenceStore
from argusrec.eval.feedback import feedback_metrics
from argusrec.eval.metrics import ndcg
from argusrec.models.argus import Argus
from argusrec.models.argus_task import SUPERVISE, run_argus
from argusrec.nn.feedback_scale import FeedbackRange, feedback_batch

__all__ = ["FULL_CATALOG_MAX", "evaluate_argus", "period_windows", "popularity_nip_loss"]

log = logging.getLogger(__name__)

#: Above this many items the full-catalog NIP loss (O(T·V·D_r)) gives way to a labelled sampled estimate.
FULL_CATALOG_MAX = 2_000_000
SCORE_CHUNK = 1 << 24  # logits per scoring block: 64 MB of float32


def period_windows(
    split: Split, role: EvalRole, max_len: int, targets_per_window: int | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
    """Windows covering every ``role`` event (module docstring).

    Returns:
        ``(user, start, length, first_target, n_chunked_users)``: (W,) int64 each — window w reads rows
        ``start[w]:start[w] + length[w]`` of user ``user[w]`` and scores rows ``>= first_target[w]`` of it — and the
        number of users whose period needed more than one window.
    """
    per = max_len if targets_per_window is None else int(targets_per_window)
    if not 1 <= per <= max_len:
        raise ValueError(f"targets_per_window must be in [1, max_len={max_len}], got {per}")
    lo, hi = split.target_range(role)
    groups = chunk_ranges(lo, hi, per)  # (W,) groups of period rows, user by user
    end = groups.end
    start = np.maximum(split.offsets[groups.user], end - max_len)  # (W,) earlier events fill the window
    chunked = int(((hi - lo) > per).sum())
    return groups.user, start, end - start, groups.start, chunked


@torch.no_grad()
def evaluate_argus(
    model: torch.nn.Module,
    store: SequenceStore,
    split: Split,
    role: EvalRole,
    *,
    max_len: int,
    batch_size: int,
    device: torch.device | str = "cpu",
    n_negatives: int = 8192,
    full_catalog_max: int = FULL_CATALOG_MAX,
    fp_signals: Sequence[str] | None = None,
    positive_signal: str | None = None,
    positive_threshold: float = 0.5,
    similarity: str = "dot",
    targets_per_window: int | None = None,
    seed: int = 0,
    feedback_ranges: Mapping[str, FeedbackRange] | None = None,
) -> dict[str, float]:
    """NIP and FP metrics of ``model`` (an :class:`Argus`) on the ``role`` period of ``split`` (module docstring).

    Args:
        model: the model; put in eval mode for the call (its mode is restored after).
        store: the sequence store the split was made on.
        split: the split; ``role`` = ``"valid"`` or ``"test"``.
        max_len: N, events per window (the training chunk length).
        batch_size: windows per forward pass.
        device: where the forward passes and scoring run.
        n_negatives: R uniform items of the sampled NIP estimate (only above ``full_catalog_max``).
        full_catalog_max: largest catalog scored exactly.
        fp_signals: feedback signals to report FP metrics for (default: the model's FP outputs); ``[]`` = none.
        positive_signal: feedback column defining a positive event for ``NDCG@10_positive``; None = skip it.
        positive_threshold: positive when ``positive_signal >= positive_threshold``.
        similarity: ``"dot"`` or ``"cosine"``: the scoring used in training (cosine normalises q and e).
        targets_per_window: period events per window (default ``max_len``).
        seed: seed of the fixed sample of the sampled estimate.
        feedback_ranges: the training run's continuous signal -> map onto [0, 1] (None: values as they are).

    Returns:
        ``{metric name: value}``; counts are ints.
    """
    argus = cast(Argus, model)
    device = torch.device(device)
    context_fields = list(argus.tokenizer.context.names)
    feedback_inputs = list(argus.signals)
    fp = list(argus.signals if fp_signals is None else fp_signals)
    kinds = {s: store.schema.feedback_kind(s).value for s in fp}
    prefix = f"{role}/"
    exact = store.n_items <= full_catalog_max

    user, start, length, first, chunked = period_windows(split, role, max_len, targets_per_window)
    if chunked:
        log.info(
            "%s: %d users have more than %d %s events; their periods are scored in several windows",
            role, chunked, targets_per_window or max_len, role,
        )  # fmt: skip
    columns = [ITEM_ID, TIMESTAMP, *context_fields, *dict.fromkeys([*feedback_inputs, *fp])]
    if positive_signal is not None and positive_signal not in columns:
        columns.append(positive_signal)

    was_training = argus.training
    argus.eval()
    try:
        table = _normed(argus.all_item_vectors().to(device), similarity)[1:]  # (V, D_r), items 1..V
        temperature = argus.temperature().float()
        sample_ids: Tensor | None = None
        if not exact:
            gen = torch.Generator().manual_seed(seed)
            sample_ids = torch.randint(1, store.n_items + 1, (n_negatives,), generator=gen).to(device)  # (R,)
        nll_parts: list[Tensor] = []
        rank_parts: list[Tensor] = []
        probs: dict[str, list[np.ndarray]] = {s: [] for s in fp}
        labels: dict[str, list[np.ndarray]] = {s: [] for s in fp}
        order = np.argsort(length, kind="stable")  # similar lengths per batch: little padding
        offsets = split.offsets
        for lo in range(0, len(order), batch_size):
            ids = order[lo : lo + batch_size]
            np_batch = assemble_batch(store, start[ids], length[ids], columns=columns, user=user[ids])
            first_pos = (first[ids] - offsets[user[ids]])[:, None]  # (B, 1) position of the first scored event
            np_batch[SUPERVISE] = np_batch[MASK] & (np_batch[POSITIONS] >= first_pos)  # (B, N)
            batch = {k: torch.as_tensor(v, device=device) for k, v in np_batch.items()}
            fb = feedback_batch(batch, [*feedback_inputs, *fp], feedback_ranges)  # as in training
            out = run_argus(argus, batch, context_fields, feedback_inputs, fb)
            sup = batch[SUPERVISE]  # (B, N)
            query = _normed(out.nip_query[sup].float(), similarity)  # (T_b, D_r)
            target = batch[ITEM_ID][sup].long()  # (T_b,)
            positive = None
            if positive_signal is not None:
                positive = batch[positive_signal][sup].float() >= positive_threshold  # (T_b,)
            nll, rank = _score(query, target, table, temperature, sample_ids, positive)
            nll_parts.append(nll.cpu())
            if rank is not None:
                rank_parts.append(rank.cpu())
            for s in fp:
                probs[s].append(torch.sigmoid(out.fp_logits[s][sup].float()).cpu().numpy())
                labels[s].append(fb[s][sup].cpu().numpy())
    finally:
        argus.train(was_training)

    nll_all = torch.cat(nll_parts) if nll_parts else torch.zeros(0)
    name = "NIP_loss" if exact else f"NIP_loss_sampled{n_negatives}"
    metrics: dict[str, float] = {
        f"{prefix}{name}": float(nll_all.double().mean()) if len(nll_all) else float("nan"),
        f"{prefix}NIP_count": len(nll_all),
    }
    if positive_signal is not None and exact:
        ranks = torch.cat(rank_parts).numpy() if rank_parts else np.zeros(0, dtype=np.int64)
        metrics[f"{prefix}NDCG@10_positive"] = ndcg(ranks, 10)
        metrics[f"{prefix}positive_count"] = len(ranks)
    if fp:
        metrics.update(
            feedback_metrics(
                {s: np.concatenate(probs[s]) if probs[s] else np.zeros(0) for s in fp},
                {s: np.concatenate(labels[s]) if labels[s] else np.zeros(0) for s in fp},
                kinds,
                prefix=prefix,
            )
        )
    return metrics


def _normed(x: Tensor, similarity: str) -> Tensor:
    if similarity == "cosine":
        return F.normalize(x, dim=-1)
    if similarity != "dot":
        raise ValueError(f"similarity must be 'dot' or 'cosine', got {similarity!r}")
    return x


def _score(
    query: Tensor,
    target: Tensor,
    table: Tensor,
    temperature: Tensor,
    sample_ids: Tensor | None,
    positive: Tensor | None,
) -> tuple[Tensor, Tensor | None]:
    """Per-target NIP cross-entropy (T_b,) and, for ``positive`` rows, 0-based full-catalog ranks (P_b,) (exact only).

    query (T_b, D_r), target (T_b,) ids 1..V, table (V, D_r) = items 1..V. Exact: blocks of rows against the
    whole table. Sampled (``sample_ids`` (R,)): log Z ≈ logsumexp(s_pos, s_r + log((V - 1) / R)) over the
    sample minus accidental hits — an estimate of the other V - 1 items' mass, biased low by Jensen.
    """
    t_b, v = len(target), table.shape[0]
    if sample_ids is not None:
        true_logit = (query * table[target - 1]).sum(-1) / temperature  # (T_b,)
        logits = query @ table[sample_ids - 1].T / temperature  # (T_b, R)
        logits = logits.masked_fill(sample_ids[None, :] == target[:, None], float("-inf"))
        others = torch.logsumexp(logits, dim=1) + math.log((v - 1) / len(sample_ids))  # (T_b,)
        nll = torch.logaddexp(true_logit, others) - true_logit
        ranks = None
    else:
        rows = max(1, SCORE_CHUNK // max(v, 1))
        nll_parts, rank_parts = [], []
        for lo in range(0, t_b, rows):
            logits = query[lo : lo + rows] @ table.T / temperature  # (rows, V)
            # The true logit is read from the same matrix, so it ties with itself exactly (rank >= 0).
            true_logit = logits.gather(1, (target[lo : lo + rows] - 1)[:, None])  # (rows, 1)
            nll_parts.append(torch.logsumexp(logits, dim=1) - true_logit[:, 0])
            # Pessimistic ties: every other item scoring >= the true one ranks above it.
            rank_parts.append((logits >= true_logit).sum(1) - 1)
        nll = torch.cat(nll_parts) if nll_parts else query.new_zeros(0)
        ranks = torch.cat(rank_parts) if rank_parts else torch.zeros(0, dtype=torch.long, device=query.device)
    if positive is None or ranks is None:
        return nll, None
    return nll, ranks[positive]


def popularity_nip_loss(
    store: SequenceStore, split: Split, role: EvalRole, item_freq: np.ndarray | Mapping[int, float]
) -> dict[str, float]:
    """``<role>/NIP_loss`` of the popularity predictor ``p_j = (f_j + 1) / (sum f + V)`` (add-one smoothing of the
    training item counts ``item_freq`` (V + 1,)) on the same ``role`` events :func:`evaluate_argus` scores."""
    freq = np.asarray(item_freq, dtype=np.float64)[1:]  # (V,)
    log_p = np.log(freq + 1.0) - np.log(freq.sum() + len(freq))  # (V,)
    rows = split.targets(role).index  # (T,)
    items = np.asarray(store.items[rows], dtype=np.int64)
    value = float(-log_p[items - 1].mean()) if len(items) else float("nan")
    return {f"{role}/NIP_loss": value, f"{role}/NIP_count": len(items)}
