"""Training losses: sampled softmax with logQ correction (NIP), full softmax, feedback BCE, pairwise.

Pure functions of tensors (plus :class:`LearnedTemperature`, a one-parameter module); no I/O, no
device choice. Letters (docs/notation.md): M supervised positions (the flattened, unpadded positions
of a batch that carry a next-item target), R negatives (shared by all M positions, or per position),
D width, V catalog (item ids 1..V, 0 = padding), F feedback signals.

Where the negatives come from and what their log Q is — in-batch + uniform sampling, item
frequencies, :func:`argusrec.data.negatives.mixed_log_q` — lives in :mod:`argusrec.data.negatives`;
this module only turns candidates and their log Q into a loss.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

Similarity = Literal["dot", "cosine"]
Reduction = Literal["mean", "sum", "none"]

__all__ = [
    "LearnedTemperature",
    "binary_feedback_loss",
    "feedback_loss",
    "full_softmax_loss",
    "pairwise_logistic_loss",
    "sampled_softmax_loss",
    "table_is_cheaper",
]


def _unit(x: Tensor, similarity: Similarity) -> Tensor:
    """Unit-normalise the last dim for cosine similarity (HSTU's recipe, PEERS.md §1); identity for dot."""
    if similarity == "dot":
        return x
    if similarity == "cosine":
        return F.normalize(x, dim=-1)
    raise ValueError(f"similarity must be 'dot' or 'cosine', got {similarity!r}")


def _reduce(loss: Tensor, weights: Tensor | None, reduction: Reduction) -> Tensor:
    """Per-row losses (M,) -> the requested reduction.

    ``mean`` with weights is the weighted mean ``sum(w * l) / sum(w)``, so scaling all weights changes
    nothing; with no rows (or all weights 0) it is 0 rather than NaN, so an empty batch cannot poison
    training. ``none`` returns ``w * l`` (M,).
    """
    if weights is not None:
        if weights.shape != loss.shape:
            raise ValueError(f"weights must have shape {tuple(loss.shape)}, got {tuple(weights.shape)}")
        loss = loss * weights.to(loss.dtype)
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    if reduction == "mean":
        denom = weights.to(loss.dtype).sum() if weights is not None else loss.new_tensor(float(loss.numel()))
        return loss.sum() / denom.clamp_min(torch.finfo(loss.dtype).tiny)
    raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def sampled_softmax_loss(
    query: Tensor,
    positive: Tensor,
    positive_ids: Tensor,
    negatives: Tensor | None,
    negative_ids: Tensor,
    *,
    temperature: float | Tensor,
    positive_log_q: Tensor | None = None,
    negative_log_q: Tensor | None = None,
    similarity: Similarity = "dot",
    mask_accidental_hits: bool = True,
    reduction: Reduction = "mean",
    weights: Tensor | None = None,
    item_table: Tensor | None = None,
) -> Tensor:
    """Cross-entropy of the positive against R negatives, shared by every position or drawn per position.

    Each row m scores 1 + R candidates, the positive first (logits (M, 1 + R)):
    ``s(j) = sim(q_m, e_j) / T - log Q(j)``, where ``sim`` is the dot product or cosine similarity.
    Shared negatives (R, D) are one set for the whole batch (ARGUS.md §3); per-position negatives
    (M, R, D) give every row its own R (RecTools' and eSASRec's SASRec), at M x R x D memory.

    Args:
        query: (M, D) query vectors (the user state at each supervised position).
        positive: (M, D) vector of each row's target item.
        positive_ids: (M,) int target item ids, 1..V.
        negatives: (R, D) negative item vectors shared by all M rows, or (M, R, D): row m's own R; or None
            with ``item_table``.
        negative_ids: (R,) or (M, R) int negative item ids, matching ``negatives`` (duplicates allowed;
            see :func:`argusrec.data.negatives.build_negatives` for the deduplicated shared form).
        temperature: scalar T > 0, a float or a 0-d tensor (e.g. :class:`LearnedTemperature` output,
            which then receives gradients).
        positive_log_q: (M,) log Q of each row's positive, or None for no correction.
        negative_log_q: log Q of each negative, shaped like ``negative_ids``, or None. Give both or neither: ARGUS.md §3
            subtracts log Q from every candidate including the positive; to correct only the
            negatives, pass zeros for ``positive_log_q`` explicitly.
        similarity: ``"dot"`` (ARGUS) or ``"cosine"`` (HSTU, PEERS.md §1).
        mask_accidental_hits: set to -inf the logits of negatives whose id equals the row's positive
            id, so the positive is counted once (as the target) and never as its own negative.
        reduction: ``"mean"`` (weighted mean when ``weights`` is given), ``"sum"`` or ``"none"`` (M,).
        weights: (M,) non-negative per-row weights, or None.
        item_table: (V + 1, D) vectors of every item id, instead of ``negatives``, with (M, R) ``negative_ids``:
            the same loss and gradients as the (M, R, D) gather, computed from the (M, V + 1) logits of the
            whole table — cheaper when V is small next to R x D (:func:`table_is_cheaper`).

    Returns:
        A scalar, or (M,) per-row losses for ``reduction="none"``.
    """
    if query.dim() != 2 or positive.shape != query.shape:
        raise ValueError(f"query and positive must both be (M, D), got {tuple(query.shape)}, {tuple(positive.shape)}")
    if (negatives is None) == (item_table is None):
        raise ValueError("give negatives or item_table, exactly one")
    d = query.shape[1]
    if item_table is not None:  # per row, looked up in the table's logits
        per_row = True
        if item_table.dim() != 2 or item_table.shape[1] != d:
            raise ValueError(f"item_table must be (V + 1, D) with D = {d}, got {tuple(item_table.shape)}")
        ids_shape: tuple[int, ...] = (query.shape[0], negative_ids.shape[-1])
    elif negatives is not None:
        per_row = negatives.dim() == 3
        if negatives.dim() not in (2, 3) or negatives.shape[-1] != d or (per_row and negatives.shape[0] != len(query)):
            raise ValueError(
                f"negatives must be (R, D) or (M, R, D) with M, D = {tuple(query.shape)}, got {tuple(negatives.shape)}"
            )
        ids_shape = tuple(negatives.shape[:-1])
    if positive_ids.shape != query.shape[:1] or tuple(negative_ids.shape) != ids_shape:
        raise ValueError("positive_ids must be (M,) and negative_ids (R,) or (M, R) matching the vectors")
    if (positive_log_q is None) != (negative_log_q is None):
        raise ValueError(
            "give both positive_log_q and negative_log_q, or neither (ARGUS.md §3 corrects every candidate)"
        )

    query, positive = _unit(query, similarity), _unit(positive, similarity)
    # float32 for the softmax: under bf16 autocast the logsumexp over thousands of candidates loses
    # the small differences that carry the gradient.
    pos_logit = (query * positive).sum(dim=-1, keepdim=True).float() / temperature  # (M, 1)
    if item_table is not None:
        table_logits = query @ _unit(item_table, similarity).T  # (M, V + 1)
        neg_logits = table_logits.gather(1, negative_ids).float() / temperature  # (M, R)
    else:
        assert negatives is not None  # exactly one of the two, checked above
        negatives = _unit(negatives, similarity)
        if per_row:
            # one matrix-vector product per row; einsum("md,mrd->mr") lowers to a bmm that first copies the
            # (M, R, D) negatives into another layout, ~12% slower per step on CPU
            neg_logits = torch.bmm(negatives, query.unsqueeze(-1)).squeeze(-1).float() / temperature  # (M, R)
        else:
            neg_logits = (query @ negatives.T).float() / temperature  # (M, R)
    if positive_log_q is not None and negative_log_q is not None:
        if positive_log_q.shape != positive_ids.shape or negative_log_q.shape != negative_ids.shape:
            raise ValueError("positive_log_q must be (M,) and negative_log_q shaped like negative_ids")
        # Subtracted after the temperature: log Q describes the sampler, which does not depend on T
        # (s(j) = <q, e_j> / T - log Q(j), ARGUS.md §3); the positive is corrected too ([our choice]
        # in ARGUS.md §3, the standard correction).
        pos_logit = pos_logit - positive_log_q.float()[:, None]  # (M, 1)
        neg_logits = neg_logits - (negative_log_q if per_row else negative_log_q[None, :]).float()  # (M, R)
    if mask_accidental_hits:
        # A negative equal to the row's positive would be pushed down and up at once, and the
        # positive would be counted twice in the partition sum; -inf removes it from the softmax,
        # and masked_fill's backward gives the masked entries exactly zero gradient.
        hits = (negative_ids if per_row else negative_ids[None, :]) == positive_ids[:, None]  # (M, R)
        neg_logits = neg_logits.masked_fill(hits, float("-inf"))  # (M, R)
    logits = torch.cat([pos_logit, neg_logits], dim=1)  # (M, 1 + R), the positive in column 0
    target = torch.zeros(len(logits), dtype=torch.long, device=logits.device)  # the positive is column 0
    loss = F.cross_entropy(logits, target, reduction="none")  # (M,)
    return _reduce(loss, weights, reduction)


def table_is_cheaper(n_items: int, n_negatives: int) -> bool:
    """Whether per-position negatives are cheaper scored from the whole (V + 1)-row table than gathered.

    The gather moves M x R x D floats (memory-bound); the table costs an M x (V + 1) x D matrix product
    (compute-bound). ``benchmarks/nip_loss_paths.py`` (one CPU core, M 750, R = D = 256): the table was 2.3x
    faster at V = 12k, 1.6x at 18k, even near 30k (~117 R) and 1.8x slower at 60k; the rule stops short of
    the crossover, at 80 R.
    """
    return n_items + 1 <= 80 * n_negatives


def full_softmax_loss(
    query: Tensor,
    item_table: Tensor,
    targets: Tensor,
    *,
    temperature: float | Tensor,
    similarity: Similarity = "dot",
    exclude_padding: bool = True,
    reduction: Reduction = "mean",
    weights: Tensor | None = None,
) -> Tensor:
    """Cross-entropy over the whole catalog, for catalogs small enough to score every item.

    Args:
        query: (M, D) query vectors.
        item_table: (V + 1, D) vectors of every item; row 0 is the padding item.
        targets: (M,) int target ids, 1..V.
        temperature: scalar T > 0 (float or 0-d tensor).
        similarity: ``"dot"`` or ``"cosine"``.
        exclude_padding: score items 1..V only, so padding is never a candidate (a target of 0 is then
            out of range: filter padding out before calling).
        reduction: ``"mean"``, ``"sum"`` or ``"none"`` (M,), as in :func:`sampled_softmax_loss`.
        weights: (M,) per-row weights, or None.

    Returns:
        A scalar, or (M,) for ``reduction="none"``.
    """
    if query.dim() != 2 or item_table.dim() != 2 or item_table.shape[1] != query.shape[1]:
        raise ValueError(
            f"query must be (M, D) and item_table (V + 1, D), got {tuple(query.shape)}, {tuple(item_table.shape)}"
        )
    if targets.shape != query.shape[:1]:
        raise ValueError(f"targets must be (M,) = ({query.shape[0]},), got {tuple(targets.shape)}")
    query, item_table = _unit(query, similarity), _unit(item_table, similarity)
    targets = targets.long()
    if exclude_padding:  # the softmax over items 1..V: as a -inf logit for item 0, without the (M, V + 1) mask
        item_table, targets = item_table[1:], targets - 1
    # The temperature divides the (M, D) queries, not the (M, V) logits: the same logits up to rounding, less work.
    logits = ((query / temperature) @ item_table.T).float()  # (M, V) or (M, V + 1)
    loss = F.cross_entropy(logits, targets, reduction="none")  # (M,)
    return _reduce(loss, weights, reduction)


class LearnedTemperature(nn.Module):
    """The softmax temperature ``T = exp(tau)`` as a learned scalar, clipped to ``[min, max]``.

    ARGUS.md §3: learned, clipped to [0.01, 100]. The clip is ``clamp`` on ``tau`` in log space
    (the same as clipping ``exp(tau)``, but exact at the bounds), with clamp's gradient semantics:
    the gradient passes while ``log(min) <= tau <= log(max)`` — *including exactly at a bound* — and
    is zero strictly outside. An optimizer step can push ``tau`` past a bound, after which only
    other forces (e.g. weight decay, which should be off for this parameter) move it back; it stays
    at the bound's value meanwhile.

    Args:
        init: initial temperature (0.05 is HSTU's fixed value, PEERS.md §1; ARGUS gives none).
        min: lower clip on T.
        max: upper clip on T.
    """

    def __init__(self, init: float = 0.05, min: float = 0.01, max: float = 100.0) -> None:
        super().__init__()
        if not 0 < min <= init <= max:
            raise ValueError(f"need 0 < min <= init <= max, got min={min}, init={init}, max={max}")
        self.min = float(min)
        self.max = float(max)
        self.tau = nn.Parameter(torch.tensor(math.log(init)))

    def forward(self) -> Tensor:
        """Returns T, a 0-d tensor in [min, max]."""
        return self.tau.clamp(math.log(self.min), math.log(self.max)).exp()

    def extra_repr(self) -> str:
        return f"min={self.min}, max={self.max}"


def binary_feedback_loss(
    logits: Tensor,
    labels: Tensor,
    mask: Tensor | None = None,
    weights: Tensor | None = None,
    *,
    reduction: Literal["sum", "none"] = "sum",
) -> Tensor:
    """Binary cross-entropy per feedback signal, NaN labels ignored (ARGUS.md §1, FP task).

    Each signal's loss is the mean over the entries where its label is observed (not NaN) and
    ``mask`` is true; a signal observed nowhere in the batch contributes 0, not NaN.

    Args:
        logits: (..., F) one logit per feedback signal, e.g. (B, N, F).
        labels: (..., F) targets in [0, 1]; NaN = not observed (the store's padding value).
        mask: (...) bool, true for real events (e.g. (B, N)), or None for all.
        weights: (F,) per-signal weights for the sum, or None for all ones.
        reduction: ``"sum"``: the weighted sum over signals, a scalar; ``"none"``: (F,) per-signal
            losses, unweighted (for logging each signal).

    Returns:
        A scalar, or (F,) for ``reduction="none"``.
    """
    if logits.shape != labels.shape:
        raise ValueError(
            f"logits and labels must have the same shape, got {tuple(logits.shape)}, {tuple(labels.shape)}"
        )
    observed = ~torch.isnan(labels)  # (..., F)
    if mask is not None:
        if mask.shape != logits.shape[:-1]:
            raise ValueError(f"mask must have shape {tuple(logits.shape[:-1])}, got {tuple(mask.shape)}")
        observed = observed & mask.bool()[..., None]
    # NaN labels must be replaced before the BCE, not only masked after it: a NaN inside the graph
    # turns the whole gradient NaN even when multiplied by 0. torch.where routes zero gradient to
    # the unselected entries.
    safe = torch.where(observed, labels, torch.zeros_like(labels))
    bce = F.binary_cross_entropy_with_logits(logits.float(), safe.float(), reduction="none")  # (..., F)
    bce = torch.where(observed, bce, torch.zeros_like(bce))
    flat_bce = bce.reshape(-1, bce.shape[-1])  # (rows, F)
    counts = observed.reshape(-1, bce.shape[-1]).sum(dim=0)  # (F,)
    per_signal = flat_bce.sum(dim=0) / counts.clamp_min(1)  # (F,)
    if reduction == "none":
        return per_signal
    if reduction != "sum":
        raise ValueError(f"reduction must be 'sum' or 'none', got {reduction!r}")
    if weights is None:
        return per_signal.sum()
    if weights.shape != per_signal.shape:
        raise ValueError(f"weights must be (F,) = ({per_signal.shape[0]},), got {tuple(weights.shape)}")
    return (per_signal * weights.to(per_signal.dtype)).sum()


_FEEDBACK_KINDS = ("binary", "continuous")


def feedback_loss(
    logits: Mapping[str, Tensor],
    labels: Mapping[str, Tensor],
    kinds: Mapping[str, str],
    *,
    weights: Mapping[str, float] | None = None,
    mask: Tensor | None = None,
    check_labels: bool = True,
) -> tuple[Tensor, dict[str, Tensor]]:
    """The FP loss over named feedback signals: one loss per signal, weighted-summed (ARGUS.md §1).

    Each signal's loss is the mean over its *observed* events — label not NaN and ``mask`` true — so a
    rare signal (a like on 2% of events) weighs as much as a dense one (played ratio on every event)
    until ``weights`` say otherwise. The per-signal means are computed by :func:`binary_feedback_loss`.

    * ``"binary"`` signals (labels 0/1): binary cross-entropy with logits.
    * ``"continuous"`` signals (labels in [0, 1], e.g. the share of the track played): the same
      cross-entropy with the label as a *soft* target, ``-(y log σ(x) + (1 - y) log(1 - σ(x)))``
      — [our choice] among ARGUS.md §1's "regression or binned loss": the ratio is bounded, so a
      sigmoid head maps onto its range exactly; the loss is minimised at ``σ(x) = y`` (it estimates
      the expected ratio, like squared error, but with the gradient ``σ(x) - y`` of a logistic model);
      and it is on the same scale as the soft log loss / normalised entropy that
      :mod:`argusrec.eval.feedback` reports, so training and evaluation measure the same thing. Its
      minimum is the mean entropy of the labels, not 0.

    Args:
        logits: signal -> (...) one logit per event, e.g. (B, N); every signal the same shape.
        labels: signal -> (...) float labels, NaN = not observed; the same keys and shapes as ``logits``.
        kinds: signal -> ``"binary"`` or ``"continuous"`` (a ``FeedbackKind`` works too); may hold
            more signals than ``logits``.
        weights: signal -> weight of its loss in the total; a signal left out weighs 1. None: all 1.
        mask: (...) bool, true for events that count (real, in the supervised period), or None for all.
        check_labels: raise when an observed binary label is not 0/1 or a continuous one is outside
            [0, 1]. The check reads the labels back to the host (a device sync): turn it off in a GPU
            training loop once the data is validated.

    Returns:
        ``(total, per_signal)``: total is a 0-d float32 tensor ``sum_s w_s * L_s``; per_signal maps each
        signal to its unweighted 0-d mean loss (for logging). With nothing observed (a signal, or all of
        them) the loss is exactly 0 and still attached to the graph, so ``backward`` gives finite (zero)
        gradients instead of NaN.
    """
    if not logits:
        raise ValueError("feedback_loss needs at least one signal")
    if set(labels) != set(logits):
        raise ValueError(f"logits and labels must name the same signals, got {sorted(logits)} and {sorted(labels)}")
    unknown = sorted(set(weights or {}) - set(logits))
    if unknown:
        raise ValueError(f"weights name signals without logits: {unknown}; signals: {sorted(logits)}")
    total: Tensor | None = None
    per_signal: dict[str, Tensor] = {}
    for name, x in logits.items():
        y = labels[name]
        if y.shape != x.shape:
            raise ValueError(f"signal {name!r}: logits {tuple(x.shape)} and labels {tuple(y.shape)} differ in shape")
        if mask is not None and mask.shape != x.shape:
            raise ValueError(f"signal {name!r}: mask must have shape {tuple(x.shape)}, got {tuple(mask.shape)}")
        kind = kinds.get(name)
        if kind not in _FEEDBACK_KINDS:
            raise ValueError(f"signal {name!r}: kind must be 'binary' or 'continuous', got {kind!r}")
        if check_labels:
            _check_feedback_labels(name, y, binary=kind == "binary")
        # Both kinds share the (soft-target) BCE of binary_feedback_loss; the kind decides the label check.
        loss = binary_feedback_loss(x[..., None], y[..., None], mask, reduction="none")[0]  # 0-d
        per_signal[name] = loss
        w = 1.0 if weights is None else float(weights.get(name, 1.0))
        total = loss * w if total is None else total + loss * w
    assert total is not None
    return total, per_signal


def _check_feedback_labels(name: str, labels: Tensor, *, binary: bool) -> None:
    """Raise when observed labels are out of range: not 0/1 for binary signals, not in [0, 1] otherwise."""
    seen = labels[~torch.isnan(labels)]
    if binary:
        bad = seen[(seen != 0) & (seen != 1)]
        if bad.numel():
            raise ValueError(
                f"signal {name!r} is binary but has labels {bad[:3].tolist()}; use kind 'continuous' for [0, 1]"
            )
    else:
        bad = seen[(seen < 0) | (seen > 1)]
        if bad.numel():
            raise ValueError(f"signal {name!r} is continuous but has labels outside [0, 1]: {bad[:3].tolist()}")


def pairwise_logistic_loss(
    score_a: Tensor,
    score_b: Tensor,
    weight: Tensor | None = None,
    *,
    reduction: Reduction = "mean",
) -> Tensor:
    """Logistic pairwise loss ``-log sigmoid(s_a - s_b)`` where a should rank above b (ARGUS.md §5).

    Args:
        score_a: (P,) scores of the preferred item of each pair.
        score_b: (P,) scores of the other item.
        weight: (P,) pair weights (e.g. from the feedback difference), or None.
        reduction: ``"mean"`` (weighted mean), ``"sum"`` or ``"none"`` (P,).

    Returns:
        A scalar, or (P,) for ``reduction="none"``.
    """
    if score_a.shape != score_b.shape or score_a.dim() != 1:
        raise ValueError(f"score_a and score_b must both be (P,), got {tuple(score_a.shape)}, {tuple(score_b.shape)}")
    # softplus(b - a) = -log sigmoid(a - b), without overflow for large differences.
    loss = F.softplus(score_b.float() - score_a.float())  # (P,)
    return _reduce(loss, weight, reduction)
