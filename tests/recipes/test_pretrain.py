"""ARGUS pre-training end to end, its evaluation protocol (§6), and data without feedback / context."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import torch
import torch.nn.functional as F
from typer.testing import CliRunner

from argusrec.cli import app
from argusrec.config import load_config
from argusrec.data.adapters.base import EventSource
from argusrec.data.build import build_store
from argusrec.data.schema import DatasetSchema
from argusrec.data.simulator import SimulationConfig, SurfaceConfig
from argusrec.data.splits import leave_one_out, temporal_cutoffs, temporal_split
from argusrec.data.store import SequenceStore
from argusrec.errors import ArgusrecError
from argusrec.eval.argus_eval import evaluate_argus, period_windows, popularity_nip_loss
from argusrec.recipes.data import simulate
from argusrec.recipes.evaluate import evaluate_run
from argusrec.recipes.pretrain import NO_CONTEXT, NO_FEEDBACK, log_chunking, pretrain
from tests.models import argus_for

TINY = [
    "model.dim=32",
    "model.layers=1",
    "model.heads=1",
    "model.dropout=0.0",
    "model.item_embedding=id",
    "data.max_len=32",
    "loss.uniform_negatives=64",
    "optim.lr=0.005",
    "optim.warmup_steps=10",
    "train.batch_size=32",
    "train.num_threads=1",  # the machine's cores are shared: oversubscribed threads are ~20x slower
    "train.patience=null",
]


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Taste-driven search traffic (personalisation pays) with likes that depend strongly on affinity and user."""
    path = tmp_path_factory.mktemp("sim") / "data"
    cfg = SimulationConfig(
        n_events=20_000,
        seed=1,
        n_items=300,
        catalog={"zipf_exponent": 0.6},
        taste={"organic_beta": 3.0, "organic_pop_power": 0.3},
        feedback={"like_base": -2.0, "like_slope": 2.0, "like_user_std": 1.5},
        surfaces={"search": SurfaceConfig(kind="search", share=1.0)},
    )
    simulate(cfg, path, latent=False, progress=False)
    return path


@pytest.fixture(scope="module")
def bare(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store with no context and no feedback columns (user, item, timestamp only)."""
    rng = np.random.default_rng(0)
    n, users = 4000, 60
    user = rng.integers(0, users, n)
    events = {
        "user_id": user,
        "item_id": (user % 6) * 20 + rng.integers(1, 21, n),  # each user group prefers its own 20 items
        "timestamp": rng.integers(0, 100_000, n),
    }

    def read():
        yield "mem", pa.record_batch(events)

    path = tmp_path_factory.mktemp("bare") / "data"
    build_store(EventSource(name="bare", schema=DatasetSchema.of(), read=read), path, progress=False)
    return path


def _config(data: Path, *overrides: str):
    return load_config("argus-tiny", [f"data.path={data}", *TINY, *overrides])


def test_pretrain_beats_popularity_and_predicts_likes(tmp_path: Path, world: Path) -> None:
    cfg = _config(world, "train.epochs=8", "argus.positive_signal=like")
    summary = pretrain(cfg, run_dir=tmp_path / "run", progress=False)
    m, pop = summary["metrics"], summary["popularity_baseline"]
    assert m["test/NIP_loss"] < pop["test/NIP_loss"] - 0.1, (m["test/NIP_loss"], pop["test/NIP_loss"])
    assert m["test/FP_AUC/like"] > 0.55
    assert m["test/FP_NE/like"] < 1.0
    assert m["test/NIP_count"] == pop["test/NIP_count"] > 0
    assert 0.0 < m["test/NDCG@10_positive"] <= 1.0
    for name in ("config.yaml", "run.json", "metrics.json", "model_card.md", "train_log.csv", "metrics.csv"):
        assert (tmp_path / "run" / name).is_file(), name
    assert (tmp_path / "run" / "checkpoints" / "best.pt").is_file()
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["metrics"] == m
    card = (tmp_path / "run" / "model_card.md").read_text()
    assert "ARGUS simplified" in card and "test/NIP_loss" in card and "Popularity baseline" in card
    again = evaluate_run(tmp_path / "run", roles=("test",), device="cpu")["metrics"]  # `argusrec evaluate`
    assert again["test/NIP_loss"] == pytest.approx(m["test/NIP_loss"], abs=1e-5)
    assert again["test/FP_AUC/like"] == pytest.approx(m["test/FP_AUC/like"], abs=1e-6)
    print({k: round(v, 4) for k, v in m.items() if k.startswith("test/")}, pop)  # numbers for the report


def _split(store: SequenceStore):
    cut = temporal_cutoffs(store, test_fraction=0.1, valid_fraction=0.05)
    return temporal_split(store, test_start=cut.test_start, valid_start=cut.valid_start)


def _model(store: SequenceStore, max_len: int):
    return argus_for(store, heads=1, max_len=max_len).eval()


def test_evaluation_scores_exactly_the_period_events_even_when_chunked(
    world: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = SequenceStore.open(world)
    split = _split(store)
    model = _model(store, 8)
    with caplog.at_level(logging.INFO, logger="argusrec.eval.argus_eval"):
        m = evaluate_argus(model, store, split, "test", max_len=8, batch_size=64)
    n = split.n_targets("test")
    assert m["test/NIP_count"] == n and m["test/FP_count/like"] == n
    assert "scored in several windows" in caplog.text  # periods longer than 8 events are split, and say so
    _, _, length, _, chunked = period_windows(split, "test", 8)
    assert chunked > 0 and length.max() <= 8
    assert m["test/NIP_loss"] > 0 and 0 <= m["test/FP_AUC/like"] <= 1


def test_nip_loss_is_the_exact_full_softmax(tmp_path: Path) -> None:
    """Brute force: each user's history up to the period's end in one pass (max_len covers it), softmax over V."""
    path = tmp_path / "small"
    simulate(SimulationConfig(n_events=1500, seed=2, n_items=40), path, latent=False, progress=False)
    store = SequenceStore.open(path)
    split = _split(store)
    longest = int(store.lengths.max())
    model = _model(store, longest)
    got = evaluate_argus(model, store, split, "valid", max_len=longest, batch_size=7)
    losses = []
    with torch.no_grad():
        table = model.all_item_vectors()[1:]  # (V, D)
        temperature = model.temperature()
        lo, hi = split.target_range("valid")
        for u in np.flatnonzero(hi > lo):
            # History up to the period's last event (positions count from the latest event of the window).
            sl = slice(int(store.offsets[u]), int(hi[u]))

            def one(col: str, sl: slice = sl) -> torch.Tensor:
                return torch.as_tensor(np.array(store[col][sl]))[None]  # (1, n), a writable copy

            out = model(
                one("item_id").long(),
                {c: one(c).long() for c in store.schema.context},
                {s: one(s).float() for s in store.schema.feedback},
                one("timestamp"),
                torch.ones(1, sl.stop - sl.start, dtype=torch.bool),
            )
            rows = slice(int(lo[u]) - sl.start, int(hi[u]) - sl.start)
            logits = out.nip_query[0, rows] @ table.T / temperature  # (P, V)
            losses.append(F.cross_entropy(logits, one("item_id")[0, rows].long() - 1, reduction="none"))
    expected = torch.cat(losses).double().mean().item()
    assert got["valid/NIP_loss"] == pytest.approx(expected, rel=1e-4)
    # Above the catalog threshold: a differently named, fixed-sample estimate close to the exact value.
    sampled = evaluate_argus(
        model, store, split, "valid", max_len=longest, batch_size=7, full_catalog_max=10, n_negatives=20_000
    )
    assert "valid/NIP_loss" not in sampled
    assert sampled["valid/NIP_loss_sampled20000"] == pytest.approx(expected, rel=0.05)


def test_popularity_baseline_is_add_one_smoothed_training_frequency(world: Path) -> None:
    store = SequenceStore.open(world)
    split = _split(store)
    freq = np.zeros(store.n_items + 1)
    freq[1] = 10.0
    got = popularity_nip_loss(store, split, "test", freq)
    items = np.asarray(store.items[split.targets("test").index])
    p = np.where(items == 1, 11.0, 1.0) / (10.0 + store.n_items)
    assert got["test/NIP_loss"] == pytest.approx(float(-np.log(p).mean()))


def test_data_without_feedback_or_context_trains_nip_only_and_says_so(
    tmp_path: Path, bare: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="argusrec.recipes.pretrain"):
        summary = pretrain(
            _config(bare, "train.epochs=2", "loss.uniform_negatives=32"), run_dir=tmp_path / "run", progress=False
        )
    assert NO_FEEDBACK in caplog.text and NO_CONTEXT in caplog.text
    assert summary["notes"] == [NO_FEEDBACK, NO_CONTEXT]
    m = summary["metrics"]
    assert m["test/NIP_count"] > 0 and np.isfinite(m["test/NIP_loss"])
    assert not any("FP_" in k for k in m)
    with pytest.raises(ArgusrecError, match="no feedback columns"):
        pretrain(_config(bare, "argus.feedback_prediction=true"), run_dir=tmp_path / "again", progress=False)


def test_long_histories_are_chunked_and_dropped_events_are_logged(
    tmp_path: Path, world: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="argusrec.recipes.pretrain"):
        log_chunking(np.array([3, 10, 25, 0]), kept=3 + 10 + 20, max_len=10, max_chunks_per_user=2)
    assert "1 users have more than data.max_len=10 training events: cut into several chunks" in caplog.text
    assert "5 oldest training events of 1 users left out (13.2% of training events)" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="argusrec.recipes.pretrain"):
        pretrain(_config(world, "train.epochs=1", "data.max_chunks_per_user=1"), run_dir=tmp_path / "r", progress=False)
    split = _split(SequenceStore.open(world))
    lo, hi = split.train_ranges()
    lengths = hi - lo
    dropped = int(np.maximum(lengths - 32, 0).sum())  # TINY: data.max_len=32, one chunk kept per user
    long_users = int((lengths > 32).sum())
    assert dropped > 0
    assert f"data.max_chunks_per_user=1: {dropped} oldest training events of {long_users} users" in caplog.text
    assert f"{long_users} users have more than data.max_len=32" in caplog.text


def test_config_errors_name_the_key(tmp_path: Path, world: Path) -> None:
    with pytest.raises(ArgusrecError, match="positive_signal"):
        pretrain(_config(world, "argus.nip_on=positives"), run_dir=tmp_path / "a", progress=False)
    with pytest.raises(ArgusrecError, match="fp_weights"):
        pretrain(_config(world, "argus.fp_weights={nope: 1.0}"), run_dir=tmp_path / "b", progress=False)
    with pytest.raises(ArgusrecError, match="task: argus"):
        pretrain(_config(world, "task=next_item"), run_dir=tmp_path / "c", progress=False)


def test_leave_one_out_and_positives_only_nip(tmp_path: Path, world: Path) -> None:
    cfg = _config(world, "train.epochs=1", "data.split=leave_one_out", "argus.nip_on=positives")
    cfg = cfg.model_copy(update={"argus": cfg.argus.model_copy(update={"positive_signal": "like"})})
    summary = pretrain(cfg, run_dir=tmp_path / "loo", progress=False)
    store = SequenceStore.open(world)
    assert summary["metrics"]["test/NIP_count"] == leave_one_out(store).n_targets("test")


def test_cli_pretrain_prints_the_table_and_run_dir(tmp_path: Path, bare: Path) -> None:
    args = ["pretrain", "--config", "argus-tiny", "--run-dir", str(tmp_path / "cli"), "--no-progress"]
    for item in [f"data.path={bare}", *TINY, "train.epochs=1", "loss.uniform_negatives=32"]:
        args += ["--set", item]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "test/NIP_loss" in result.output and "popularity" in result.output
    assert f"note: {NO_FEEDBACK}" in result.output and str(tmp_path / "cli") in result.output
