"""Continuous feedback outside [0, 1] (stars, seconds): the training-range map, where it applies, and ARGUS runs on
MovieLens-style stars end to end (argusrec/nn/feedback_scale.py, recipes/pretrain.py feedback_ranges)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import torch

from argusrec.config import load_config
from argusrec.data.adapters.base import EventSource
from argusrec.data.build import build_store
from argusrec.data.schema import DatasetSchema
from argusrec.data.splits import EventRole
from argusrec.data.store import SequenceStore
from argusrec.errors import ArgusrecError
from argusrec.nn.feedback_scale import FeedbackRange, feedback_batch, fit_feedback_range, scale_feedback
from argusrec.recipes.data import open_source, prepare
from argusrec.recipes.evaluate import evaluate_run
from argusrec.recipes.pretrain import data_parts, feedback_ranges, pretrain
from argusrec.recipes.train import make_split
from tests.conftest import need_shared
from tests.recipes.test_pretrain import TINY

HUGE = 500.0  # a corrupt rating in the test period only


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def stars(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A MovieLens-100K-style u.data (1-5 stars, taste groups) prepared by the movielens adapter; the very last
    event has a rating of 500 (test period)."""
    rng = np.random.default_rng(0)
    n, users = 3000, 50
    user = rng.integers(1, users + 1, n)
    item = (user % 4) * 20 + rng.integers(1, 21, n)
    stars = np.clip(np.round(1 + 4 * ((item + user) % 7) / 6 + rng.normal(0, 0.5, n)), 1, 5).astype(int)
    ts = 880_000_000 + np.sort(rng.integers(0, 10_000_000, n))
    lines = [f"{u}\t{i}\t{r}\t{t}" for u, i, r, t in zip(user, item, stars, ts, strict=True)]
    lines.append(f"1\t5\t{HUGE:g}\t{ts[-1] + 1000}")
    raw = tmp_path_factory.mktemp("ml") / "ml-tiny"
    raw.mkdir()
    (raw / "u.data").write_text("\n".join(lines) + "\n")
    out = raw.parent / "prepared"
    prepare(open_source("movielens", raw, progress=False), out, progress=False)
    return out


def _config(data: Path, *overrides: str):
    return load_config("argus-tiny", [f"data.path={data}", *TINY, *overrides])


# ---------------------------------------------------------------------------------------------------- the map
def test_fit_identity_linear_and_log1p() -> None:
    assert fit_feedback_range(np.array([0.0, 0.25, 1.0, np.nan])) is None  # already in [0, 1]: identity
    assert fit_feedback_range(np.array([np.nan, np.nan])) is None  # nothing observed
    assert fit_feedback_range(np.array([0.5, 3.0, 5.0, np.nan])) == FeedbackRange(0.5, 5.0, log1p=False)
    assert fit_feedback_range(np.array([-2.0, 0.0, 30.0])) == FeedbackRange(-2.0, 30.0, log1p=False)  # negative
    seconds = np.array([1.0, 2.0, 3.0, 4.0, 10.0, 5000.0])  # max far above the median: heavy tail
    assert fit_feedback_range(seconds) == FeedbackRange(1.0, 5000.0, log1p=True)
    with pytest.raises(ValueError, match="infinite"):
        fit_feedback_range(np.array([1.0, np.inf]))


def test_scale_hand_computed() -> None:
    x = torch.tensor([0.5, 1.0, 5.0, 6.0, 0.0, math.nan])
    got = scale_feedback(x, FeedbackRange(0.5, 5.0))
    want = [0.0, 0.5 / 4.5, 1.0, 1.0, 0.0]  # (x - 0.5) / 4.5, clipped outside the training range
    assert got[:5].tolist() == pytest.approx(want)
    assert math.isnan(got[5])  # not observed stays not observed
    logs = scale_feedback(torch.tensor([0.0, 9.0, 99.0, 1e6]), FeedbackRange(0.0, 99.0, log1p=True))
    assert logs.tolist() == pytest.approx([0.0, math.log(10) / math.log(100), 1.0, 1.0])
    assert scale_feedback(torch.tensor([3.0, 7.0]), FeedbackRange(3.0, 3.0)).tolist() == [0.0, 0.0]  # constant
    assert scale_feedback(x, None) is x  # identity: float32 already, no copy
    batch = {"rating": x, "like": torch.tensor([1, 0, 1, 0, 1, 0])}
    fb = feedback_batch(batch, ["rating", "like", "rating"], {"rating": FeedbackRange(0.5, 5.0)})
    assert list(fb) == ["rating", "like"] and fb["like"].dtype == torch.float32
    assert torch.allclose(fb["rating"], got, equal_nan=True)
    assert fb["rating"][:5].tolist() == pytest.approx(want)
    assert FeedbackRange.from_dict(json.loads(json.dumps(FeedbackRange(1, 5).as_dict()))) == FeedbackRange(1, 5)


# ------------------------------------------------------------------------------------------ the training range
def test_range_is_fitted_on_the_training_period_only(stars: Path) -> None:
    store = SequenceStore.open(stars)
    cfg = _config(stars)
    _, feedback, fp_kinds, _ = data_parts(cfg, store)
    assert feedback == {"rating": "continuous", "like": "binary", "dislike": "binary"}
    split = make_split(store, cfg)
    rating = np.asarray(store["rating"])
    huge = np.flatnonzero(rating == HUGE)
    assert len(huge) == 1 and split.event_roles(huge)[0] == EventRole.TEST  # only the test period sees it
    ranges, notes = feedback_ranges(store, split, feedback, fp_kinds)
    assert ranges == {"rating": FeedbackRange(1.0, 5.0, log1p=False)}  # 500 did not move it
    assert notes == [
        "continuous signal 'rating' in [1, 5]: scaled to [0, 1] by its training range for the feedback input "
        "and the FP loss"
    ]
    assert feedback_ranges(store, split, feedback, {})[1][0].endswith("for the feedback input")  # no FP: inputs only
    assert feedback_ranges(store, split, feedback, fp_kinds) == (ranges, notes)  # deterministic


def test_popularity_feedback_baseline_reads_labels_through_the_map(stars: Path) -> None:
    """The FP popularity baseline is scored on the labels the model is scored on: stars mapped onto [0, 1]."""
    from argusrec.eval.oracle import popularity_feedback_metrics

    store = SequenceStore.open(stars)
    cfg = _config(stars)
    _, feedback, fp_kinds, _ = data_parts(cfg, store)
    split = make_split(store, cfg)
    ranges, _ = feedback_ranges(store, split, feedback, fp_kinds)
    with pytest.raises(ValueError, match="soft labels must lie in"):
        popularity_feedback_metrics(store, split, "valid")  # raw stars are no soft labels
    m = popularity_feedback_metrics(store, split, "valid", feedback_ranges=ranges)
    assert {"valid/FP_NE/rating", "valid/FP_AUC/like"} <= set(m)
    assert all(np.isfinite(v) for k, v in m.items() if "/FP_NE/" in k)


def test_fp_labels_outside_unit_interval_without_a_map_are_refused(tmp_path: Path) -> None:
    """Training ratios in [0, 1] (identity) but 1.5 later: refused before training, on every device."""
    n = 400
    rng = np.random.default_rng(1)
    played = rng.random(n).astype(np.float32)
    played[-1] = 1.5
    events = {
        "user_id": rng.integers(0, 20, n),
        "item_id": rng.integers(1, 50, n),
        "timestamp": np.arange(n),  # the 1.5 is the latest event: test period
        "played": played,
    }

    def read():
        yield "mem", pa.record_batch(events)

    schema = DatasetSchema.of(feedback={"played": "continuous"})
    build_store(EventSource(name="ratio", schema=schema, read=read), tmp_path / "d", progress=False)
    cfg = _config(tmp_path / "d", "loss.uniform_negatives=16")
    store = SequenceStore.open(tmp_path / "d")
    split = make_split(store, cfg)
    with pytest.raises(ArgusrecError, match=r"'played' has values outside \[0, 1\].*1\.5"):
        feedback_ranges(store, split, {"played": "continuous"}, {"played": "continuous"})
    assert feedback_ranges(store, split, {"played": "continuous"}, {}) == ({}, [])  # input only: no FP label
    with pytest.raises(ArgusrecError, match="outside"):
        pretrain(cfg, run_dir=tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()  # refused before the run directory is written


# ---------------------------------------------------------------------------------------------- end to end
def test_pretrain_on_stars_and_evaluate_run_reproduces(tmp_path: Path, stars: Path) -> None:
    cfg = _config(stars, "train.epochs=2", "loss.uniform_negatives=32", "argus.positive_signal=like")
    summary = pretrain(cfg, run_dir=tmp_path / "run", progress=False)  # CPU: every batch's FP labels checked
    assert summary["feedback_ranges"] == {"rating": {"lo": 1.0, "hi": 5.0, "log1p": False}}
    assert any(n.startswith("continuous signal 'rating' in [1, 5]: scaled to [0, 1]") for n in summary["notes"])
    m = summary["metrics"]
    for s in ("rating", "like", "dislike"):
        assert np.isfinite(m[f"test/FP_LogLoss/{s}"]) and m[f"test/FP_count/{s}"] > 0, s
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert saved["feedback_ranges"] == summary["feedback_ranges"]
    card = (tmp_path / "run" / "model_card.md").read_text()
    assert "continuous signal 'rating'" in card
    # evaluate_run recomputes the map from the data and the split: identical ranges, identical metrics
    store = SequenceStore.open(stars)
    _, feedback, fp_kinds, _ = data_parts(cfg, store)
    ranges, _ = feedback_ranges(store, make_split(store, cfg), feedback, fp_kinds)
    assert {s: r.as_dict() for s, r in ranges.items()} == saved["feedback_ranges"]
    again = evaluate_run(tmp_path / "run", device="cpu")["metrics"]
    for k, v in m.items():
        if "/" in k:
            assert again[k] == pytest.approx(v, abs=1e-5, nan_ok=True), k


def test_pretrain_argus_tiny_on_ml100k(tmp_path: Path) -> None:
    raw = need_shared("ml-100k", "u.data").parent
    data = tmp_path / "ml-100k"
    prepare(open_source("movielens", raw, progress=False), data, progress=False)
    cfg = load_config(
        "argus-tiny",
        [
            f"data.path={data}",
            "train.epochs=1",
            "train.max_steps=3",
            "train.num_threads=1",
            "argus.positive_signal=like",
        ],
    )
    summary = pretrain(cfg, run_dir=tmp_path / "run", progress=False)
    assert summary["feedback_ranges"] == {"rating": {"lo": 1.0, "hi": 5.0, "log1p": False}}
    assert np.isfinite(summary["metrics"]["test/FP_LogLoss/rating"])
    assert np.isfinite(summary["metrics"]["test/NIP_loss"])
