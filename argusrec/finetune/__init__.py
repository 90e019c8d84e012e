"""ARGUS fine-tuning (reference/ARGUS.md §5): a two-tower ranking model trained on pairs of impressions in one pass.

* :mod:`~argusrec.finetune.pairs` — impressions, feedback grades and weighted pairs;
* :mod:`~argusrec.finetune.two_tower` — the two-tower model initialised from a pre-trained ARGUS;
* :mod:`~argusrec.finetune.one_pass` — training examples, batches, lagged user states and the pairwise ``Task``;
* :mod:`~argusrec.finetune.reference` — the slow impression-level reference the one-pass loss is checked against.

Names are imported lazily (PEP 562): ``argusrec.config`` reads :class:`PairConfig` from
:mod:`argusrec.finetune.pairs`, which needs no torch, while the other modules import the training loop, which
imports the config.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from argusrec.finetune.one_pass import (
        FinetuneChunks,
        ImpressionBatches,
        PairwiseTask,
        assemble_finetune_batch,
        evaluate_pairs,
        finetune_chunks,
        lagged_state_columns,
    )
    from argusrec.finetune.pairs import GradeRule, PairConfig, Pairs, build_pairs, grade_events, impression_rows
    from argusrec.finetune.two_tower import TwoTower, check_argus_weights, two_tower_from_checkpoint

_WHERE = {
    "FinetuneChunks": "one_pass",
    "ImpressionBatches": "one_pass",
    "PairwiseTask": "one_pass",
    "assemble_finetune_batch": "one_pass",
    "evaluate_pairs": "one_pass",
    "finetune_chunks": "one_pass",
    "lagged_state_columns": "one_pass",
    "GradeRule": "pairs",
    "PairConfig": "pairs",
    "Pairs": "pairs",
    "build_pairs": "pairs",
    "grade_events": "pairs",
    "impression_rows": "pairs",
    "TwoTower": "two_tower",
    "check_argus_weights": "two_tower",
    "two_tower_from_checkpoint": "two_tower",
}

__all__ = [
    "FinetuneChunks",
    "GradeRule",
    "ImpressionBatches",
    "PairConfig",
    "Pairs",
    "PairwiseTask",
    "TwoTower",
    "assemble_finetune_batch",
    "build_pairs",
    "check_argus_weights",
    "evaluate_pairs",
    "finetune_chunks",
    "grade_events",
    "impression_rows",
    "lagged_state_columns",
    "two_tower_from_checkpoint",
]


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(f"argusrec.finetune.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'argusrec.finetune' has no attribute {name!r}")
