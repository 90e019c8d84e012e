"""Next-item prediction on history chunks: the training task of SASRec, HSTU, FuXi-alpha, BSARec (and ARGUS's NIP).

Every position n of a chunk predicts the item at n + 1, or only the last position does (``last_only``: windows
ending at each training event, left-padded, as the BSARec / DuoRec code trains). The loss is a sampled softmax
over the positive, uniform negatives (shared, or per position) and (optionally) the batch's other positives,
with optional logQ correction (ARGUS.md §3), or a full softmax for small catalogs.
"""

from __future__ import annotations

from typing import cast

from torch import Tensor, nn

from argusrec.losses import full_softmax_loss
from argusrec.models.nip_loss import SampledNextItemLoss, UniformSharing
from argusrec.models.sequential import SequentialRecommender


class NextItemTask:
    """Implements the training loop's ``Task`` protocol for a :class:`SequentialRecommender`.

    Args:
        n_items: catalog size V (ids 1..V).
        kind: "sampled_softmax" or "full_softmax".
        uniform_negatives: R uniform negatives per batch, shared by every position (or per position).
        in_batch_negatives: also use the batch's positives as negatives.
        uniform_sharing: ``"batch"`` (one shared set) or ``"position"`` (R per position), see
            :class:`~argusrec.models.nip_loss.SampledNextItemLoss`.
        item_freq: (V + 1,) training-stream item counts, needed for logQ with in-batch negatives.
        logq: subtract log Q(j) of the mixed sampler from every logit (training only).
        last_only: supervise the last position of each (left-padded) chunk only (``train.targets: last``); a
            window holding its target alone is predicted from the model's empty-history state
            (:meth:`~argusrec.models.sequential.SequentialRecommender.last_states`) or skipped without one.
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
        uniform_sharing: UniformSharing = "batch",
        last_only: bool = False,
        seed: int = 0,
    ) -> None:
        self.last_only = last_only
        self.nip = (
            SampledNextItemLoss(
                n_items=n_items,
                uniform_negatives=uniform_negatives,
                in_batch_negatives=in_batch_negatives,
                item_freq=item_freq,
                logq=logq,
                uniform_sharing=uniform_sharing,
                seed=seed,
            )
            if kind == "sampled_softmax"
            else None
        )

    def loss(self, model: nn.Module, batch: dict[str, Tensor]) -> tuple[Tensor, int]:
        """Batch columns: ``item_id`` (B, N), ``timestamp`` (B, N), ``mask`` (B, N). Returns (loss, targets)."""
        model = cast(SequentialRecommender, model)  # may also be its torch.compile wrapper
        items = batch["item_id"].long()
        valid = batch["mask"]
        ts = batch["timestamp"]
        if items.shape[1] < 2:  # windows of the target alone (empty histories): one padded input slot
            items, valid, ts = (nn.functional.pad(t, (1, 0)) for t in (items, valid, ts))
        inputs, targets = items[:, :-1], items[:, 1:]  # (B, N-1) each
        valid_in = valid[:, :-1]
        states = model(inputs, valid_in, ts[:, :-1], ts[:, 1:])  # query time = the predicted event's time
        if self.last_only:  # left padding: each window's target is its last event, predicted from the state before
            last, has_state = model.last_states(states, valid_in)  # (B, D), (B,)
            supervised_rows = has_state & valid[:, -1]  # (B,)
            query, positive_ids = last[supervised_rows], targets[:, -1][supervised_rows]  # (M, D), (M,)
        else:
            supervised = valid_in & valid[:, 1:]  # (B, N-1): both the input and its next event are real
            query, positive_ids = states[supervised], targets[supervised]  # (M, D), (M,)
        m = int(positive_ids.numel())
        temperature = model.temperature()
        if m == 0:
            return states.sum() * 0.0, 0
        if self.nip is None:  # full softmax over the catalog
            table = model.all_item_vectors()  # (V + 1, D)
            loss = full_softmax_loss(query, table, positive_ids, temperature=temperature, similarity="dot")
            return loss, m
        # "dot": the model already normalises when the recipe asks for cosine
        return self.nip(query, positive_ids, model.item_vectors, temperature), m

    def state_dict(self) -> dict:
        return self.nip.state_dict() if self.nip is not None else {}

    def load_state_dict(self, state: dict) -> None:
        if self.nip is not None:
            self.nip.load_state_dict(state)
