"""ARGUS pre-training objective: NIP + FP in one causal pass over event chunks (reference/ARGUS.md §1-§3).

One forward pass of :class:`~argusrec.models.argus.Argus` gives, at every event t of a chunk, the NIP query
(history < t and context_t) and the FP logits (also item_t). The loss of a batch is

    total = nip_weight · NIP + FP

* **NIP** (§3): at every supervised position the query scores the positive ``item_t`` against one negative set
  shared by the batch — in-batch positives ∪ R uniform draws (:func:`argusrec.data.negatives.build_negatives`) —
  with ``s(j) = <q, e_j> / T - log Q(j)`` (Q = the mixed sampler's expected draws, subtracted from every
  candidate including the positive, only when ``logq``), ``T`` the model's learned temperature (clipped to
  [0.01, 100]) and accidental hits masked (:func:`argusrec.losses.sampled_softmax_loss`). With
  ``nip_on="positives"`` only events whose ``positive_signal >= positive_threshold`` are NIP targets — the
  SASRec-style ablation of §3 (NIP is otherwise *every* next interaction, §1).
* **FP** (§1): :func:`argusrec.losses.feedback_loss` over the FP signals (one loss per signal, NaN labels
  ignored, weighted sum), at supervised positions only. Continuous signals outside [0, 1] are mapped onto it by
  their ``feedback_ranges`` (:mod:`argusrec.nn.feedback_scale`) for both the feedback input and the FP labels.

"Supervised" is the batch's optional ``"supervise"`` (B, N) bool mask and-ed with ``"mask"``: training
supervises every real event of a chunk (pre-training chunks do not overlap, §5); evaluation supervises only
the events of the evaluated period (§6) while the earlier ones are context.

Letters (docs/notation.md): B batch, N events, M NIP targets, R negatives, D_r retrieval width, V catalog.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal, cast

from torch import Tensor, nn

from argusrec.losses import Similarity, feedback_loss
from argusrec.models.argus import Argus, ArgusOutput
from argusrec.models.nip_loss import SampledNextItemLoss, UniformSharing
from argusrec.nn.feedback_scale import FeedbackRange, feedback_batch

__all__ = ["ArgusTask", "run_argus"]

SUPERVISE = "supervise"  # optional batch key: (B, N) bool, events that carry losses
ITEM_KEY, TIMESTAMP_KEY, MASK_KEY = "item_id", "timestamp", "mask"


def run_argus(
    model: nn.Module,
    batch: Mapping[str, Tensor],
    context_fields: Sequence[str],
    feedback_fields: Sequence[str],
    feedback: Mapping[str, Tensor] | None = None,
) -> ArgusOutput:
    """The model's forward on a batch dict of (B, N) columns (``item_id``, ``timestamp``, ``mask``, the named
    context and feedback columns). Feedback goes in as float (NaN = not observed): the batch's columns, or
    ``feedback`` (signal -> (B, N), already mapped by :func:`~argusrec.nn.feedback_scale.feedback_batch`)."""
    fb = feedback if feedback is not None else feedback_batch(batch, feedback_fields, None)
    return cast(Argus, model)(
        batch[ITEM_KEY].long(),
        {c: batch[c].long() for c in context_fields},
        {s: fb[s] for s in feedback_fields},
        batch[TIMESTAMP_KEY] if TIMESTAMP_KEY in batch else None,
        batch[MASK_KEY].bool(),
    )


class ArgusTask:
    """The training loop's ``Task`` for ARGUS pre-training (module docstring).

    Args:
        n_items: V (ids 1..V).
        context_fields: context columns fed to the model (empty when the model has no context fields).
        feedback_inputs: feedback columns fed to the model (its feedback embedding's signals).
        fp_kinds: signal -> ``"binary"`` / ``"continuous"`` of the signals that carry an FP loss; empty = NIP only.
        uniform_negatives: R uniform negatives per batch, shared by every NIP target (or per target).
        in_batch_negatives: also use the batch's NIP positives as negatives.
        uniform_sharing: ``"batch"`` (one shared set, ARGUS.md §3) or ``"position"`` (R per NIP target).
        item_freq: (V + 1,) item counts of the supervised *training* events (the in-batch sampler's
            distribution, §3); needed when ``logq`` and ``in_batch_negatives``.
        logq: subtract log Q(j) from every candidate's logit (training only, §3).
        similarity: ``"dot"`` (ARGUS) or ``"cosine"`` (normalise queries and item vectors in the loss).
        nip_on: ``"all"`` events or ``"positives"`` only.
        positive_signal: feedback column defining a positive event (``nip_on="positives"``).
        positive_threshold: positive when ``positive_signal >= positive_threshold``.
        fp_weights: signal -> weight of its FP loss (missing signals weigh 1).
        nip_weight: weight of the NIP loss in the total.
        feedback_ranges: continuous signal -> its map onto [0, 1] (:mod:`argusrec.nn.feedback_scale`), applied to
            the feedback input and the FP labels; signals left out are read as they are.
        check_labels: validate FP labels every batch (a host sync; turn off on GPU once the data is checked).
        seed: seed of the uniform sampler, whose state is checkpointed via :meth:`state_dict`.
    """

    def __init__(
        self,
        *,
        n_items: int,
        context_fields: Sequence[str] = (),
        feedback_inputs: Sequence[str] = (),
        fp_kinds: Mapping[str, str] | None = None,
        uniform_negatives: int = 256,
        in_batch_negatives: bool = True,
        item_freq: Tensor | None = None,
        logq: bool = True,
        similarity: Similarity = "dot",
        uniform_sharing: UniformSharing = "batch",
        nip_on: Literal["all", "positives"] = "all",
        positive_signal: str | None = None,
        positive_threshold: float = 0.5,
        fp_weights: Mapping[str, float] | None = None,
        nip_weight: float = 1.0,
        feedback_ranges: Mapping[str, FeedbackRange] | None = None,
        check_labels: bool = True,
        seed: int = 0,
    ) -> None:
        if nip_on not in ("all", "positives"):
            raise ValueError(f"nip_on must be 'all' or 'positives', got {nip_on!r}")
        if nip_on == "positives" and positive_signal is None:
            raise ValueError("nip_on='positives' needs positive_signal (a feedback column)")
        self.fp_kinds = dict(fp_kinds or {})
        unknown = sorted(set(fp_weights or {}) - set(self.fp_kinds))
        if unknown:
            raise ValueError(
                f"fp_weights name signals without an FP loss: {unknown}; FP signals: {sorted(self.fp_kinds)}"
            )
        self.n_items = int(n_items)
        self.context_fields = list(context_fields)
        self.feedback_inputs = list(feedback_inputs)
        self.nip = SampledNextItemLoss(
            n_items=self.n_items,
            uniform_negatives=uniform_negatives,
            in_batch_negatives=in_batch_negatives,
            item_freq=item_freq,
            logq=logq,
            similarity=similarity,
            uniform_sharing=uniform_sharing,
            seed=seed,
        )
        self.nip_on = nip_on
        self.positive_signal = positive_signal
        self.positive_threshold = float(positive_threshold)
        self.fp_weights = dict(fp_weights or {})
        self.nip_weight = float(nip_weight)
        self.feedback_ranges = dict(feedback_ranges or {})
        self.check_labels = check_labels

    def columns(self) -> list[str]:
        """Store columns a batch must hold (for ``assemble_batch(columns=...)``); ``mask`` comes with every batch."""
        extra = [*self.feedback_inputs, *self.fp_kinds]
        if self.nip_on == "positives" and self.positive_signal is not None:
            extra.append(self.positive_signal)  # read even when it is no model input
        return list(dict.fromkeys([ITEM_KEY, TIMESTAMP_KEY, *self.context_fields, *extra]))

    # ------------------------------------------------------------------------------------------ masks
    def supervised(self, batch: Mapping[str, Tensor]) -> Tensor:
        """(B, N) bool: real events that carry losses (``mask`` and the optional ``supervise``)."""
        mask = batch[MASK_KEY].bool()
        return mask & batch[SUPERVISE].bool() if SUPERVISE in batch else mask

    def nip_targets(self, batch: Mapping[str, Tensor]) -> Tensor:
        """(B, N) bool: supervised events that are NIP targets (all, or positives only; NaN is not positive)."""
        sup = self.supervised(batch)
        if self.nip_on == "positives":
            assert self.positive_signal is not None
            sup = sup & (batch[self.positive_signal].float() >= self.positive_threshold)  # NaN >= x is False
        return sup

    # ------------------------------------------------------------------------------------------ losses
    def components(self, model: nn.Module, batch: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """All parts of the loss: ``total``, ``nip``, ``fp`` (0-d), ``fp/<signal>`` (unweighted 0-d),
        ``n_nip`` and ``n_supervised`` (0-d int64 counts)."""
        # feedback as ARGUS reads it (mapped once); nip_targets reads the raw positive_signal (threshold in its units)
        fb = feedback_batch(batch, [*self.feedback_inputs, *self.fp_kinds], self.feedback_ranges)
        out = run_argus(model, batch, self.context_fields, self.feedback_inputs, fb)
        sup = self.supervised(batch)
        targets = self.nip_targets(batch)
        zero = out.nip_query.sum() * 0.0  # attached to the graph: an empty part still back-propagates
        parts: dict[str, Tensor] = {"n_nip": targets.sum(), "n_supervised": sup.sum()}
        nip = self._nip(model, out.nip_query, batch[ITEM_KEY].long(), targets) if self.nip_weight > 0 else None
        parts["nip"] = zero if nip is None else nip
        fp = zero
        if self.fp_kinds:
            fp, per_signal = feedback_loss(
                {s: out.fp_logits[s] for s in self.fp_kinds},
                {s: fb[s] for s in self.fp_kinds},
                self.fp_kinds,
                weights=self.fp_weights,
                mask=sup,
                check_labels=self.check_labels,
            )
            parts.update({f"fp/{s}": v for s, v in per_signal.items()})
        parts["fp"] = fp
        parts["total"] = self.nip_weight * parts["nip"] + fp
        return parts

    def loss(self, model: nn.Module, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        """Batch: ``item_id``, ``timestamp``, ``mask`` (B, N), the context / feedback columns (B, N), optionally
        ``supervise`` (B, N). Returns (total loss, count): the count is the number of NIP targets (= supervised
        events with ``nip_on="all"``, positives with ``"positives"``), or of supervised events when NIP is off."""
        parts = self.components(model, batch)
        count = parts["n_nip"] if self.nip_weight > 0 else parts["n_supervised"]
        return parts["total"], count

    def _nip(self, model: nn.Module, queries: Tensor, items: Tensor, targets: Tensor) -> Tensor | None:
        """Sampled-softmax NIP loss over the (B, N) ``targets``; None when the batch has none."""
        argus = cast(Argus, model)  # may be its torch.compile wrapper: attributes pass through
        query = queries[targets]  # (M, D_r)
        positive_ids = items[targets]  # (M,)
        if positive_ids.numel() == 0:
            return None
        return self.nip(query, positive_ids, argus.item_vectors, argus.temperature())  # T learned, clipped (§3)

    # ------------------------------------------------------------------------------------------ checkpoint
    def state_dict(self) -> dict[str, Any]:
        return self.nip.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.nip.load_state_dict(state)
