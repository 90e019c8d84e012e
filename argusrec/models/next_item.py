"""Next-item prediction on history chunks: the training task of SASRec, HSTU, FuXi-alpha (and ARGUS's NIP).

Every position n of a chunk predicts the item at n + 1. The loss is a sampled softmax over the
positive, shared uniform negatives and (optionally) the batch's other positives, with optional logQ
correction (ARGUS.md §3), or a full softmax for small catalogs.
"""

from __future__ import annotations

from typing import cast

import torch
from torch import Tensor, nn

from argusrec.data.negatives import UniformSampler, build_negatives
from argusrec.losses import full_softmax_loss, sampled_softmax_loss
from argusrec.models.sequential import SequentialRecommender


class NextItemTask:
    """Implements the training loop's ``Task`` protocol for a :class:`SequentialRecommender`.

    Args:
        n_items: catalog size V (ids 1..V).
        kind: "sampled_softmax" or "full_softmax".
        uniform_negatives: R uniform negatives per batch, shared by every position.
        in_batch_negatives: also use the batch's positives as negatives.
        item_freq: (V + 1,) training-stream item counts, needed for logQ with in-batch negatives.
        logq: subtract log Q(j) of the mixed sampler from every logit (training only).
        similarity: "dot" or "cosine".
        seed: seed of the uniform sampler (its state is checkpointed through :meth:`state_dict`).
    """

    def __init__(
        self,
        *,
        n_items: int,
        kind: str = "sampled_softmax",
        uniform_negatives: int = 128,
        in_batch_negatives: bool = False,
        item_freq: Tensor | None = None,
        logq: bool = False,
        similarity: str = "cosine",
        seed: int = 0,
    ) -> None:
        if logq and in_batch_negatives and item_freq is None:
            raise ValueError("logQ correction with in-batch negatives needs the item frequencies")
        self.n_items = n_items
        self.kind = kind
        self.uniform_negatives = uniform_negatives
        self.in_batch_negatives = in_batch_negatives
        self.item_freq = item_freq
        self.logq = logq
        self.similarity = similarity
        self.sampler = UniformSampler(n_items, seed=seed)

    def loss(self, model: nn.Module, batch: dict[str, Tensor]) -> tuple[Tensor, int]:
        """Batch columns: ``item_id`` (B, N), ``timestamp`` (B, N), ``mask`` (B, N). Returns (loss, targets)."""
        model = cast(SequentialRecommender, model)  # may also be its torch.compile wrapper
        items = batch["item_id"].long()
        valid = batch["mask"]
        ts = batch["timestamp"]
        inputs, targets = items[:, :-1], items[:, 1:]  # (B, N-1) each
        valid_in = valid[:, :-1]
        supervised = valid_in & valid[:, 1:]  # (B, N-1): both the input and its next event are real
        states = model(inputs, valid_in, ts[:, :-1], ts[:, 1:])  # query time = the predicted event's time
        query = states[supervised]  # (M, D)
        positive_ids = targets[supervised]  # (M,)
        m = int(positive_ids.numel())
        temperature = model.temperature()
        if m == 0:
            return states.sum() * 0.0, 0
        if self.kind == "full_softmax":
            table = model.all_item_vectors()  # (V + 1, D)
            loss = full_softmax_loss(query, table, positive_ids, temperature=temperature, similarity="dot")
            return loss, m
        positive = model.item_vectors(positive_ids)  # (M, D)
        uniform_ids = (
            self.sampler.sample(self.uniform_negatives, device=query.device) if self.uniform_negatives else None
        )
        negatives = build_negatives(
            in_batch_ids=positive_ids if self.in_batch_negatives else None,
            in_batch_vectors=positive if self.in_batch_negatives else None,
            uniform_ids=uniform_ids,
            uniform_vectors=model.item_vectors(uniform_ids) if uniform_ids is not None else None,
        )
        pos_log_q = neg_log_q = None
        if self.logq:
            freq = self.item_freq.to(query.device) if self.item_freq is not None else _uniform_freq(self.n_items, query)
            neg_log_q = negatives.log_q(freq, self.n_items)
            pos_log_q = negatives.positive_log_q(positive_ids, freq, self.n_items)
        loss = sampled_softmax_loss(
            query,
            positive,
            positive_ids,
            negatives.vectors,
            negatives.ids,
            temperature=temperature,
            positive_log_q=pos_log_q,
            negative_log_q=neg_log_q,
            similarity="dot",  # the model already normalises when the recipe asks for cosine
        )
        return loss, m

    def state_dict(self) -> dict:
        return {"sampler": self.sampler.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.sampler.load_state_dict(state["sampler"])


def _uniform_freq(n_items: int, like: Tensor) -> Tensor:
    freq = torch.ones(n_items + 1, dtype=torch.float64, device=like.device)
    freq[0] = 0
    return freq
