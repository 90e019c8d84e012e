"""The LightGBM final ranker on a tiny dataset, and the message when LightGBM is missing."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from argusrec.errors import ArgusrecError
from argusrec.eval.feedback import pair_accuracy
from argusrec.ranker.lgbm import RankerParams, fit_ranker, require_lightgbm


def _data(n_groups: int, seed: int) -> dict[str, np.ndarray]:
    """Groups of 4 impressions; the label follows feature 0 (plus noise); feature 1 is noise; 2 is categorical."""
    rng = np.random.default_rng(seed)
    n = n_groups * 4
    x = np.stack([rng.normal(size=n), rng.normal(size=n), rng.integers(1, 4, n).astype(float)], axis=1)
    label = (x[:, 0] + 0.3 * rng.normal(size=n) > 0).astype(np.int32) + (x[:, 0] > 1).astype(np.int32)
    group = np.repeat(np.arange(n_groups), 4)
    better, worse = [], []
    for g in range(n_groups):
        for a in range(4 * g, 4 * g + 4):
            for b in range(4 * g, 4 * g + 4):
                if label[a] > label[b]:
                    better.append(a)
                    worse.append(b)
    return {
        "x": x.astype(np.float32),
        "label": label,
        "group": group,
        "user": group // 3,
        "better": np.array(better),
        "worse": np.array(worse),
        "weight": np.ones(len(better), dtype=np.float32),
    }


def test_ranker_learns_the_informative_feature() -> None:
    pytest.importorskip("lightgbm")
    tr, te = _data(300, 0), _data(200, 1)
    fitted = fit_ranker(
        tr["x"], tr["label"], tr["group"], tr["user"], (tr["better"], tr["worse"], tr["weight"]),
        ["signal", "noise", "ctx"], ["ctx"], RankerParams(n_estimators=60, num_threads=1),
    )  # fmt: skip
    s = fitted.predict(te["x"])
    acc = pair_accuracy(s[te["better"]], s[te["worse"]], np.ones(len(te["better"]), dtype=bool))
    assert acc > 0.85
    imp = fitted.importance()
    assert imp["signal"] > imp["noise"] and sum(imp.values()) == pytest.approx(1.0, abs=1e-3)
    assert 1 <= fitted.best_iteration <= 60 and fitted.holdout_pair_accuracy > 0.8
    with pytest.raises(ValueError, match="sorted by group"):
        fit_ranker(tr["x"], tr["label"], tr["group"][::-1], tr["user"], (tr["better"], tr["worse"], tr["weight"]),
                   ["a", "b", "c"], [])  # fmt: skip


def test_missing_lightgbm_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "lightgbm", None)  # import lightgbm -> ImportError
    with pytest.raises(
        ArgusrecError, match=r"needs LightGBM, which is not installed: pip install 'argusrec\[ranker\]'"
    ):
        require_lightgbm()
