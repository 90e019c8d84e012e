"""The sampled next-item loss shared by every task: positive + negatives, optional logQ (ARGUS.md §3).

Negatives are the batch's positives (in-batch, optional) and R uniform draws, shared by all M supervised
positions (ARGUS) — or, with ``uniform_sharing="position"``, R uniform draws of each position's own
(RecTools' and eSASRec's SASRec; no in-batch part then). With ``logq`` every logit gets ``- log Q(j)``,
Q(j) = expected number of draws of j by the mixed sampler (in-batch part ∝ training-stream frequency,
uniform part 1/V); see :func:`argusrec.data.negatives.mixed_log_q`. logQ is a training device only:
serving scores ``<q, e_j>``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import torch
from torch import Tensor

from argusrec.data.negatives import UniformSampler, build_negatives, mixed_log_q
from argusrec.losses import Similarity, sampled_softmax_loss, table_is_cheaper

UniformSharing = Literal["batch", "position"]  # loss.uniform_sharing: one set per batch, or R per position


class SampledNextItemLoss:
    """``loss(query, positive_ids, item_vectors, temperature)``; its sampler state goes into checkpoints.

    Args:
        n_items: catalog size V (ids 1..V).
        uniform_negatives: R uniform negatives per batch (``"batch"``) or per supervised position.
        in_batch_negatives: also use the batch's positives as negatives (shared sampling only).
        uniform_sharing: ``"batch"``: one set of R shared by every position; ``"position"``: R drawn
            independently for every position (M x R x D memory; every item gets negative gradient
            far more often, which trained SASRec better on Amazon, docs/benchmarks.md).
        item_freq: (V + 1,) training-stream item counts (logQ's in-batch part); uniform counts when None.
        logq: subtract log Q(j) from every candidate, the positive included.
        similarity: "dot" or "cosine" between query and item vectors.
        seed: seed of the uniform sampler.
    """

    def __init__(
        self,
        *,
        n_items: int,
        uniform_negatives: int,
        in_batch_negatives: bool,
        item_freq: Tensor | None = None,
        logq: bool = False,
        similarity: Similarity = "dot",
        uniform_sharing: UniformSharing = "batch",
        seed: int = 0,
    ) -> None:
        if uniform_negatives < 0 or (uniform_negatives == 0 and not in_batch_negatives):
            raise ValueError("the sampled softmax needs uniform_negatives > 0 or in_batch_negatives")
        if uniform_sharing not in ("batch", "position"):
            raise ValueError(f"uniform_sharing must be 'batch' or 'position', got {uniform_sharing!r}")
        if uniform_sharing == "position" and (in_batch_negatives or uniform_negatives == 0):
            raise ValueError("per-position negatives are uniform draws only: uniform_negatives > 0, no in-batch")
        if logq and in_batch_negatives and item_freq is None:
            raise ValueError("logQ with in-batch negatives needs item_freq (training-event item counts)")
        if item_freq is not None and tuple(item_freq.shape) != (n_items + 1,):
            raise ValueError(f"item_freq must be (V + 1,) = ({n_items + 1},), got {tuple(item_freq.shape)}")
        self.n_items = int(n_items)
        self.uniform_negatives = int(uniform_negatives)
        self.in_batch_negatives = in_batch_negatives
        self.logq = logq
        self.similarity: Similarity = similarity
        self.uniform_sharing: UniformSharing = uniform_sharing
        if item_freq is None:  # no frequencies known: the in-batch part's Q is uniform too (padding 0)
            item_freq = torch.ones(self.n_items + 1, dtype=torch.float64)
            item_freq[0] = 0
        self.item_freq = item_freq
        self.sampler = UniformSampler(self.n_items, seed=seed)

    def __call__(
        self,
        query: Tensor,
        positive_ids: Tensor,
        item_vectors: Callable[[Tensor], Tensor],
        temperature: float | Tensor,
    ) -> Tensor:
        """Mean loss over M positions.

        Args:
            query: (M, D) query vectors.
            positive_ids: (M,) int64 true next items.
            item_vectors: ids (...) -> (..., D), the model's item tower.
            temperature: the softmax temperature (the model's fixed or learned one).
        """
        positive = item_vectors(positive_ids)  # (M, D)
        if self.uniform_sharing == "position":
            return self._per_position(query, positive, positive_ids, item_vectors, temperature)
        uniform_ids = (
            self.sampler.sample(self.uniform_negatives, device=query.device) if self.uniform_negatives else None
        )
        negatives = build_negatives(
            in_batch_ids=positive_ids if self.in_batch_negatives else None,
            in_batch_vectors=positive if self.in_batch_negatives else None,
            uniform_ids=uniform_ids,
            uniform_vectors=item_vectors(uniform_ids) if uniform_ids is not None else None,
        )
        pos_log_q = neg_log_q = None
        if self.logq:
            freq = self.item_freq.to(query.device)
            neg_log_q = negatives.log_q(freq, self.n_items)  # (R,)
            pos_log_q = negatives.positive_log_q(positive_ids, freq, self.n_items)  # (M,)
        return sampled_softmax_loss(
            query,
            positive,
            positive_ids,
            negatives.vectors,
            negatives.ids,
            temperature=temperature,
            positive_log_q=pos_log_q,
            negative_log_q=neg_log_q,
            similarity=self.similarity,
        )

    def _per_position(
        self,
        query: Tensor,
        positive: Tensor,
        positive_ids: Tensor,
        item_vectors: Callable[[Tensor], Tensor],
        temperature: float | Tensor,
    ) -> Tensor:
        """The loss with R uniform negatives of every position's own: (M, R) ids, (M, R, D) vectors."""
        r = self.uniform_negatives
        ids = self.sampler.sample((len(positive_ids), r), device=query.device)  # (M, R)
        pos_log_q = neg_log_q = None
        if self.logq:  # uniform only: log(R / V) for every candidate, which cancels; kept for one definition
            freq = self.item_freq.to(query.device)
            neg_log_q = mixed_log_q(ids, freq, 0, r, self.n_items)  # (M, R)
            pos_log_q = mixed_log_q(positive_ids, freq, 0, r, self.n_items)  # (M,)
        # the same loss either way: scored from the whole table's logits when that is cheaper (small catalogs),
        # else from the (M, R, D) gathered vectors
        dense = table_is_cheaper(self.n_items, r)
        return sampled_softmax_loss(
            query,
            positive,
            positive_ids,
            None if dense else item_vectors(ids),  # (M, R, D)
            ids,
            temperature=temperature,
            positive_log_q=pos_log_q,
            negative_log_q=neg_log_q,
            similarity=self.similarity,
            item_table=item_vectors(torch.arange(self.n_items + 1, device=query.device)) if dense else None,
        )

    def state_dict(self) -> dict[str, Any]:
        return {"sampler": self.sampler.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.sampler.load_state_dict(state["sampler"])
