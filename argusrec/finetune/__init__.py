"""ARGUS fine-tuning (reference/ARGUS.md §5): a two-tower ranking model trained on pairs of impressions in one pass.

* :mod:`~argusrec.finetune.pairs` — impressions, feedback grades and weighted pairs;
* :mod:`~argusrec.finetune.two_tower` — the two-tower model initialised from a pre-trained ARGUS;
* :mod:`~argusrec.finetune.one_pass` — training examples, batches, lagged user states and the pairwise ``Task``;
* :mod:`~argusrec.finetune.reference` — the slow impression-level reference the one-pass loss is checked against.

:class:`~argusrec.config.PairConfig` (with :class:`~argusrec.config.GradeRule`) lives in :mod:`argusrec.config`
with the rest of the run configuration and is re-exported here.
"""

from __future__ import annotations

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
