"""Continuous feedback onto [0, 1]: the one map applied wherever feedback values enter ARGUS.

ARGUS reads a continuous feedback signal twice (reference/ARGUS.md §1): as an input (its value bucketed by
:class:`~argusrec.nn.event_tokens.FeedbackEmbedding`, whose default buckets split [0, 1]) and as the soft target
of its FP loss (:func:`argusrec.losses.feedback_loss`, labels in [0, 1]). Adapters emit signals in their own units
— stars (0.5-5), seconds played — so each such signal gets a :class:`FeedbackRange` fitted on the *training
period's* values only (:func:`fit_feedback_range`) and every reader maps values through
:func:`scale_feedback` / :func:`feedback_batch`:

* observed training values already in [0, 1] (or none observed): identity, no range;
* otherwise ``x -> clip((f(x) - f(lo)) / (f(hi) - f(lo)), 0, 1)`` with ``lo`` / ``hi`` the training minimum /
  maximum and ``f`` the identity — or ``log1p`` for a heavy-tailed non-negative signal (``lo >= 0`` and
  ``hi > HEAVY_TAIL × median``: durations, counts), whose linear map would squash almost every value into the first
  bucket and the FP targets toward 0. Values outside the training range are clipped; NaN stays NaN (not observed).

The map is deterministic in the training values, so a run's ranges are recomputed from its data and split
(``recipes/pretrain.py`` :func:`~argusrec.recipes.pretrain.feedback_ranges`) rather than stored in checkpoints;
raw values are kept wherever a threshold in the data's units applies (``argus.positive_signal``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

__all__ = ["HEAVY_TAIL", "FeedbackRange", "feedback_batch", "fit_feedback_range", "scale_feedback"]

#: A non-negative signal whose training maximum exceeds this many times its training median is mapped on log1p.
HEAVY_TAIL = 10.0


@dataclass(frozen=True)
class FeedbackRange:
    """The map of one continuous signal onto [0, 1] (module docstring): training ``lo`` / ``hi`` in the data's
    units, and whether ``log1p`` is applied first."""

    lo: float
    hi: float
    log1p: bool = False

    def as_dict(self) -> dict[str, Any]:
        """JSON form (``metrics.json`` ``feedback_ranges``)."""
        return {"lo": self.lo, "hi": self.hi, "log1p": self.log1p}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> FeedbackRange:
        return cls(float(d["lo"]), float(d["hi"]), bool(d.get("log1p", False)))


def fit_feedback_range(values: np.ndarray | Tensor) -> FeedbackRange | None:
    """The range of a continuous signal from its training-period ``values`` (any shape, NaN = not observed).

    Returns:
        None (identity) when the observed values lie in [0, 1] or none is observed; else the :class:`FeedbackRange`.

    Raises:
        ValueError: an infinite value.
    """
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    v = v[~np.isnan(v)]
    if v.size == 0:
        return None
    lo, hi = float(v.min()), float(v.max())
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError(f"infinite values (range [{lo}, {hi}])")
    if lo >= 0.0 and hi <= 1.0:
        return None
    return FeedbackRange(lo, hi, log1p=lo >= 0.0 and hi > HEAVY_TAIL * float(np.median(v)))


def scale_feedback(values: Tensor, r: FeedbackRange | None) -> Tensor:
    """``values`` (...) as float32, mapped onto [0, 1] by ``r`` (None = identity); NaN stays NaN."""
    x = values.float()
    if r is None:
        return x
    lo, hi = r.lo, r.hi
    x = x.clamp(lo, hi)  # also keeps log1p's argument >= lo >= 0
    if r.log1p:
        x, lo, hi = torch.log1p(x), math.log1p(lo), math.log1p(hi)
    span = hi - lo
    # a constant training value (span 0) maps every observed value to 0
    return ((x - lo) / span if span > 0 else x - lo).clamp(0.0, 1.0)


def feedback_batch(
    batch: Mapping[str, Tensor], signals: Iterable[str], ranges: Mapping[str, FeedbackRange] | None
) -> dict[str, Tensor]:
    """signal -> (B, N) float32 values ARGUS reads (model input and FP labels): each named signal's column of
    ``batch`` through :func:`scale_feedback` with its range (unchanged when it has none)."""
    ranges = ranges or {}
    return {s: scale_feedback(batch[s], ranges.get(s)) for s in dict.fromkeys(signals)}
