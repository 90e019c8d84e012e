"""The final ranker of the deployment metric (reference/ARGUS.md §6): LightGBM over baseline features, with and
without the fine-tuned ARGUS score.

* :mod:`~argusrec.ranker.features` — leakage-free baseline features per impression;
* :mod:`~argusrec.ranker.lgbm` — the LightGBM lambdarank model (optional dependency, extra ``ranker``);
* :func:`argusrec.recipes.rank.rank` — baseline vs +ARGUS on a fine-tuning run (``argusrec rank``).
"""

from argusrec.ranker.features import EventArrays, FeatureTable, baseline_features
from argusrec.ranker.lgbm import RankerParams, fit_ranker, lightgbm_available, require_lightgbm

__all__ = [
    "EventArrays",
    "FeatureTable",
    "RankerParams",
    "baseline_features",
    "fit_ranker",
    "lightgbm_available",
    "require_lightgbm",
]
