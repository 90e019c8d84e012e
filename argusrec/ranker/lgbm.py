"""The final ranker: LightGBM with a ranking objective, grouped by request (reference/ARGUS.md §6).

LightGBM is an optional dependency (``pip install 'argusrec[ranker]'``); :func:`require_lightgbm` says so when it
is missing.

**Training.** Impressions are grouped as the pairs are (request, or time window); the label is the rank of the
impression's grade level (0 = worst grade). The objective is ``lambdarank`` (pairwise, gradients weighted by the
NDCG change of swapping two impressions). A share of the training groups (whole users, ``holdout_share``) is held
out for early stopping on **PairAccuracy** (weighted by the pair weights), the metric the ranker is reported on;
the booster keeps its best iteration.

**Scoring.** :func:`ranker_pair_metrics` gives PairAccuracy of the ranker's scores over given pairs.

Letters: I impressions, F features, P pairs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from argusrec.errors import ArgusrecError
from argusrec.eval.feedback import pair_accuracy

__all__ = ["RankerParams", "fit_ranker", "lightgbm_available", "require_lightgbm"]

INSTALL = "pip install 'argusrec[ranker]' (or pip install lightgbm)"


def lightgbm_available() -> bool:
    try:
        import lightgbm  # noqa: F401
    except ImportError:
        return False
    return True


def require_lightgbm() -> Any:
    """The ``lightgbm`` module, or an ArgusrecError saying how to install it."""
    try:
        import lightgbm
    except ImportError:
        raise ArgusrecError(f"the final ranker needs LightGBM, which is not installed: {INSTALL}") from None
    return lightgbm


@dataclass(frozen=True)
class RankerParams:
    """LightGBM settings of the final ranker (small defaults: CPU seconds on the benchmark datasets)."""

    n_estimators: int = 400
    learning_rate: float = 0.05
    num_leaves: int = 31
    min_child_samples: int = 20
    feature_fraction: float = 0.9
    early_stopping_rounds: int = 40
    holdout_share: float = 0.2
    num_threads: int = 0  # 0: LightGBM's default
    seed: int = 0


@dataclass
class FittedRanker:
    booster: Any
    feature_names: list[str]
    best_iteration: int
    holdout_pair_accuracy: float

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.booster.predict(x, num_iteration=self.best_iteration or None), dtype=np.float64)

    def importance(self) -> dict[str, float]:
        gain = self.booster.feature_importance(importance_type="gain")
        total = float(gain.sum()) or 1.0
        return {n: round(float(g) / total, 4) for n, g in zip(self.feature_names, gain, strict=True)}


def _pairs_in(better: np.ndarray, worse: np.ndarray, weight: np.ndarray, keep: np.ndarray) -> tuple[np.ndarray, ...]:
    """Pairs whose impressions are both in ``keep`` (I,) bool, re-indexed into the kept impressions."""
    new = np.cumsum(keep) - 1
    use = keep[better] & keep[worse]
    return new[better[use]], new[worse[use]], weight[use]


def fit_ranker(
    x: np.ndarray,
    label: np.ndarray,
    group: np.ndarray,
    user: np.ndarray,
    pairs: tuple[np.ndarray, np.ndarray, np.ndarray],
    feature_names: list[str],
    categorical: list[str],
    params: RankerParams = RankerParams(),
) -> FittedRanker:
    """Train a LightGBM lambdarank model (module docstring).

    Args:
        x: (I, F) features; rows sorted by group.
        label: (I,) int relevance (higher = better feedback).
        group: (I,) int group index, non-decreasing.
        user: (I,) user of each impression (the holdout takes whole users).
        pairs: (better, worse, weight), (P,) each, indices into the I impressions: the early-stopping metric.
        feature_names, categorical: names of the F columns, and which of them are categorical.
        params: LightGBM settings.
    """
    lgb = require_lightgbm()
    group = np.asarray(group)
    if len(group) and np.any(np.diff(group) < 0):
        raise ValueError("impressions must be sorted by group")
    rng = np.random.default_rng(params.seed)
    users = np.unique(user)
    held_users = rng.choice(users, size=round(params.holdout_share * len(users)), replace=False)
    held = np.isin(user, held_users)
    if held.all() or not held.any():
        held = np.zeros(len(user), dtype=bool)  # too few users for a holdout: no early stopping

    def dataset(mask: np.ndarray, reference: Any = None) -> Any:
        _, sizes = np.unique(group[mask], return_counts=True)  # groups are contiguous runs
        return lgb.Dataset(
            x[mask],
            label=label[mask],
            group=sizes,
            feature_name=feature_names,
            categorical_feature=categorical,
            reference=reference,
            free_raw_data=False,
        )

    train_set = dataset(~held)
    config = {
        "objective": "lambdarank",
        "learning_rate": params.learning_rate,
        "num_leaves": params.num_leaves,
        "min_child_samples": params.min_child_samples,
        "feature_fraction": params.feature_fraction,
        "seed": params.seed,
        "deterministic": True,
        "force_row_wise": True,
        "num_threads": params.num_threads,
        "verbosity": -1,
        "metric": "None",
    }
    callbacks: list[Any] = []
    valid_sets: list[Any] = []
    feval = None
    hb, hw, hweight = _pairs_in(*pairs, held)
    if held.any() and len(hb):
        valid_sets = [dataset(held, train_set)]

        def feval(preds: np.ndarray, _data: Any) -> tuple[str, float, bool]:
            acc = pair_accuracy(preds[hb], preds[hw], np.ones(len(hb), dtype=bool), weights=hweight)
            return "pair_accuracy", acc, True

        callbacks.append(lgb.early_stopping(params.early_stopping_rounds, verbose=False))
    booster = lgb.train(
        config,
        train_set,
        num_boost_round=params.n_estimators,
        valid_sets=valid_sets,
        feval=feval,
        callbacks=callbacks,
    )
    best = int(booster.best_iteration or params.n_estimators)
    holdout = float("nan")
    if valid_sets:
        pred = np.asarray(booster.predict(x[held], num_iteration=best))
        holdout = pair_accuracy(pred[hb], pred[hw], np.ones(len(hb), dtype=bool), weights=hweight)
    return FittedRanker(
        booster=booster, feature_names=feature_names, best_iteration=best, holdout_pair_accuracy=holdout
    )
