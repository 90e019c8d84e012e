"""Reference scores for PairAccuracy: the simulator's oracle and item popularity (reference/ARGUS.md §5-§6).

Any per-impression score gives a PairAccuracy on the same pairs as the fine-tuned two-tower:

* :func:`oracle_scores` — the simulator's **true affinity** ``a(u, t, i)`` of each impression (the ``true_affinity``
  truth column of ``argusrec data simulate``), which drives its like / skip / dislike probabilities. It knows the
  user's latent taste at the impression's time, so no model can be expected to beat it; it is a ceiling to place
  a model against, not a target. None on data without that column (real data has no oracle).
* :func:`popularity_scores` — each impression's item's number of events in the training period (more popular =
  ranked higher): the baseline a personalised ranker must beat.
* :func:`pair_metrics` — ``PairAccuracy`` (unweighted) and ``PairAccuracy_weighted`` (by the pair weights) of a
  per-impression score over the pairs whose two impressions both have a score.

Letters: I impressions, P pairs, V catalog.
"""

from __future__ import annotations

import numpy as np

from argusrec.data.store import SequenceStore
from argusrec.eval.feedback import pair_accuracy

__all__ = ["ORACLE_COLUMN", "oracle_scores", "pair_metrics", "popularity_scores"]

ORACLE_COLUMN = "true_affinity"


def oracle_scores(store: SequenceStore, rows: np.ndarray) -> np.ndarray | None:
    """(I,) float64 true affinity of the impressions at CSR ``rows``; None when the data has no oracle."""
    if ORACLE_COLUMN not in store.schema.truth:
        return None
    return np.asarray(store[ORACLE_COLUMN])[np.asarray(rows, dtype=np.int64)].astype(np.float64)


def popularity_scores(store: SequenceStore, rows: np.ndarray, item_counts: np.ndarray) -> np.ndarray:
    """(I,) float64 training-period count of each impression's item; ``item_counts`` (V + 1,) by item id."""
    return np.asarray(item_counts, dtype=np.float64)[np.asarray(store.items[np.asarray(rows, dtype=np.int64)])]


def pair_metrics(
    score: np.ndarray,
    better: np.ndarray,
    worse: np.ndarray,
    weight: np.ndarray,
    *,
    has_score: np.ndarray | None = None,
    prefix: str = "",
) -> dict[str, float | int]:
    """PairAccuracy (weighted and not) of a per-impression ``score`` (I,) over pairs ``(better, worse, weight)``
    (P,) each.

    Pairs where either impression lacks a score (``has_score`` False, or a NaN score) are left out; the number
    used is ``{prefix}pairs``. Ties count half (:func:`argusrec.eval.feedback.pair_accuracy`).
    """
    score = np.asarray(score, dtype=np.float64)
    ok = ~np.isnan(score) if has_score is None else np.asarray(has_score, dtype=bool) & ~np.isnan(score)
    use = ok[better] & ok[worse]
    sa, sb, w = score[better[use]], score[worse[use]], np.asarray(weight, dtype=np.float64)[use]
    label = np.ones(len(sa), dtype=bool)
    return {
        f"{prefix}PairAccuracy_weighted": pair_accuracy(sa, sb, label, weights=w) if len(sa) else float("nan"),
        f"{prefix}PairAccuracy": pair_accuracy(sa, sb, label) if len(sa) else float("nan"),
        f"{prefix}pairs": int(use.sum()),
    }
