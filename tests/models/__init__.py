"""Shared helpers of the model tests (also used by the pre-training and fine-tuning tests)."""

from __future__ import annotations

import torch

from argusrec.data.store import SequenceStore
from argusrec.models.argus import Argus, build_argus


def argus_for(store: SequenceStore, variant: str = "simplified", *, seed: int = 0, **kw: object) -> Argus:
    """A small seeded ARGUS model with the store's context fields, feedback signals and catalog; ``kw`` overrides
    :func:`build_argus`'s arguments (dim 16, 1 layer, 2 heads, max_len 48 by default)."""
    torch.manual_seed(seed)
    args: dict = dict(
        variant=variant,
        vocab_sizes={c: len(store.vocab(c)) for c in store.schema.context},
        feedback_signals={s: store.schema.feedback_kind(s).value for s in store.schema.feedback},
        n_items=store.n_items,
        dim=16,
        layers=1,
        heads=2,
        max_len=48,
    )
    args.update(kw)
    return build_argus(**args)
