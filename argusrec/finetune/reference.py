"""Impression-level reference of one-pass fine-tuning: re-encode the history separately for every impression.

The way the article's team fine-tuned before (ARGUS.md §5, "impression-level learning"): for an impression of
group g (time ``t_g``, first row ``r_g``) of a batch row, find — by a plain scan, no binary search — the last event
``k`` of the row's history window with ``timestamp_k <= t_g - lag`` and ``k < r_g``; run the encoder on the
window's events up to ``k`` alone (a batch of one, no padding); the user vector is the state after ``k``. One
encoder run per impression instead of one per chunk: tens to thousands of times slower, which is the point of
:mod:`argusrec.finetune.one_pass`. Tests use it to check that the one-pass scores and loss are the same numbers.

The window starts where the one-pass chunk starts (its first real column): time features and positions (counted
from the window's first event, :mod:`argusrec.finetune.two_tower`) then see the same events.

Letters (docs/notation.md): B batch, N events, M impressions per chunk, P pairs, D_o vector width.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import Tensor

from argusrec.data.schema import ITEM_ID, TIMESTAMP
from argusrec.finetune.one_pass import IMP_ITEM, IMP_LIMIT, IMP_MASK, IMP_TIME, PAIR_BETTER, PAIR_WEIGHT, PAIR_WORSE
from argusrec.finetune.two_tower import TwoTower
from argusrec.nn.feedback_scale import FeedbackRange, feedback_batch

__all__ = ["reference_loss", "reference_scores", "reference_state_columns"]


def reference_state_columns(batch: Mapping[str, Tensor], lag: int) -> list[list[int | None]]:
    """For every batch row b and impression slot m: the column of its user state, or None (no state / padding)."""
    mask = batch["mask"].bool()
    b_n, m_n = batch[IMP_MASK].shape
    out: list[list[int | None]] = []
    for b in range(b_n):
        real = [c for c in range(mask.shape[1]) if bool(mask[b, c])]
        row: list[int | None] = []
        for m in range(m_n):
            if not bool(batch[IMP_MASK][b, m]):
                row.append(None)
                continue
            cut = int(batch[IMP_TIME][b, m]) - lag
            limit = int(batch[IMP_LIMIT][b, m])
            state = None
            for c in real:  # the last real event with timestamp <= t_g - lag before the group's first event
                if int(batch[TIMESTAMP][b, c]) <= cut and c < limit:
                    state = c
            row.append(state)
        out.append(row)
    return out


@torch.no_grad()
def reference_scores(
    model: TwoTower, batch: Mapping[str, Tensor], lag: int, feedback_ranges: Mapping[str, FeedbackRange] | None = None
) -> Tensor:
    """(B, M) float64 score of every impression slot by re-encoding its history; NaN where it has no state.
    ``feedback_ranges``: as :class:`~argusrec.finetune.one_pass.PairwiseTask`'s."""
    mask = batch["mask"].bool()
    fb = feedback_batch(batch, model.feedback_fields, feedback_ranges)
    cols = reference_state_columns(batch, lag)
    out = torch.full(tuple(batch[IMP_MASK].shape), math.nan, dtype=torch.float64)
    for b, row in enumerate(cols):
        first = int(mask[b].nonzero()[0]) if bool(mask[b].any()) else 0
        for m, c in enumerate(row):
            if c is None:
                continue
            sl = slice(first, c + 1)  # the window's events up to the state, alone

            def cut(x: Tensor, sl: slice = sl, b: int = b) -> Tensor:
                return x[b : b + 1, sl]

            states = model(
                cut(batch[ITEM_ID]).long(),
                {f: cut(batch[f]).long() for f in model.context_fields},
                {s: cut(fb[s]) for s in model.feedback_fields},
                cut(batch[TIMESTAMP]),
                cut(mask),
            )  # (1, L, D)
            user = model.user_vectors(states[0, -1])  # (D_o,)
            item = model.item_vectors(batch[IMP_ITEM][b, m].long())  # (D_o,)
            out[b, m] = float((user * item).sum())
    return out


@torch.no_grad()
def reference_loss(model: TwoTower, batch: Mapping[str, Tensor], lag: int) -> tuple[float, int]:
    """(weighted mean of ``softplus(s_worse - s_better)`` over the pairs whose impressions both have a state, their
    number), pair by pair from :func:`reference_scores`."""
    flat = reference_scores(model, batch, lag).reshape(-1)
    num = den = 0.0
    used = 0
    for a, b, w in zip(
        batch[PAIR_BETTER].tolist(), batch[PAIR_WORSE].tolist(), batch[PAIR_WEIGHT].tolist(), strict=True
    ):
        sa, sb = float(flat[a]), float(flat[b])
        if math.isnan(sa) or math.isnan(sb):
            continue
        diff = sb - sa
        loss = max(diff, 0.0) + math.log1p(math.exp(-abs(diff)))  # softplus(s_b - s_a) = -log sigmoid(s_a - s_b)
        num += w * loss
        den += w
        used += 1
    return (num / den if den > 0 else 0.0), used
