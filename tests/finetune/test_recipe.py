"""The fine-tuning recipe end to end on a tiny simulation, its refusals, and the `finetune` / `rank` commands."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import torch
from typer.testing import CliRunner

from argusrec.cli import app
from argusrec.config import load_config
from argusrec.data.adapters.base import EventSource
from argusrec.data.build import build_store
from argusrec.data.schema import DatasetSchema
from argusrec.data.store import SequenceStore
from argusrec.errors import ArgusrecError
from argusrec.finetune import ImpressionBatches, PairwiseTask, evaluate_pairs
from argusrec.recipes.finetune import chunk_pairs, finetune, finetune_config, score_impressions
from argusrec.training.checkpoint import load_weights
from tests.finetune.conftest import FT, TINY


@pytest.fixture(scope="module")
def tuned(pretrained: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    run = tmp_path_factory.mktemp("ft_run") / "ft"
    summary = finetune(finetune_config(pretrained, [*FT, "finetune.export_vectors=true"]), run_dir=run, progress=False)
    return run, summary


def test_recipe_end_to_end(tuned: tuple[Path, dict], pretrained: Path) -> None:
    run, summary = tuned
    m = summary["metrics"]
    for role in ("valid", "test"):
        assert 0.0 <= m[f"{role}/PairAccuracy_weighted"] <= 1.0 and m[f"{role}/pairs"] > 50
    assert m["events_per_s"] > 0 and m["pairs_per_s"] > 0
    assert summary["pretrained"] == str(pretrained.resolve() / "checkpoints" / "best.pt")
    base = summary["baselines"]
    assert base["popularity"]["test/pairs"] == base["oracle"]["test/pairs"] == m["test/pairs"]  # the same pairs
    assert base["oracle"]["test/PairAccuracy_weighted"] > 0.6  # the true affinity orders the pairs well
    for name in ("config.yaml", "metrics.json", "model_card.md", "scores/valid.npz", "scores/test.npz"):
        assert (run / name).is_file(), name
    assert (run / "checkpoints" / "best.pt").is_file()
    card = (run / "model_card.md").read_text()
    assert "two-tower" in card and "oracle" in card and str(pretrained.resolve()) in card
    with np.load(run / "scores" / "test.npz") as z:
        assert z["user_vec"].shape == (len(z["rows"]), 16) and z["has_state"].sum() > 0
        assert np.isnan(z["score"][~z["has_state"]]).all()
    assert json.loads((run / "metrics.json").read_text())["metrics"] == m
    # the config written to the run reads back the same (pairs section included)
    cfg = load_config(run / "config.yaml")
    assert cfg.to_yaml() == (run / "config.yaml").read_text() and cfg.finetune is not None


def test_exported_scores_match_the_one_pass_metric(tuned: tuple[Path, dict]) -> None:
    """score_impressions (the export) and evaluate_pairs (the core's metric) agree on the test pairs."""
    from argusrec.finetune import TwoTower, finetune_chunks
    from argusrec.recipes.finetune import period_pairs
    from argusrec.recipes.pretrain import argus_model_for, data_parts
    from argusrec.recipes.train import make_split

    run, summary = tuned
    cfg = load_config(run / "config.yaml")
    assert cfg.finetune is not None
    store = SequenceStore.open(cfg.data.path)
    split = make_split(store, cfg)
    ctx, fb, _, _ = data_parts(cfg, store)
    model = TwoTower(argus_model_for(cfg, store, ctx, fb), copy=False)
    load_weights(run / "checkpoints" / "best.pt", model)
    pairs = period_pairs(store, split, cfg, "test")
    chunks = finetune_chunks(pairs, store.offsets, max_len=cfg.data.max_len, min_len=4, max_impressions=64)
    task = PairwiseTask(lag=cfg.finetune.lag)
    got = score_impressions(model, store, chunks, task, batch_size=7)
    batches = ImpressionBatches(store, chunks, batch_size=16, columns=PairwiseTask.columns(model), shuffle=False)
    ref = evaluate_pairs(model, batches, task, prefix="test/")
    from argusrec.finetune.oracle_pairs import pair_metrics

    ours = pair_metrics(got["score"], *chunk_pairs(chunks), has_score=got["has_state"], prefix="test/")
    assert ours["test/pairs"] == ref["test/pairs"] == summary["metrics"]["test/pairs"]
    assert ours["test/PairAccuracy_weighted"] == pytest.approx(ref["test/PairAccuracy_weighted"], abs=1e-6)
    assert ours["test/PairAccuracy_weighted"] == pytest.approx(
        summary["metrics"]["test/PairAccuracy_weighted"], abs=1e-6
    )


def test_no_pretraining_ablation_and_shorter_finetuning(pretrained: Path, tmp_path: Path) -> None:
    cfg = finetune_config(pretrained, [*FT, "finetune.checkpoint=null", "finetune.train_fraction=0.25"])
    summary = finetune(cfg, run_dir=tmp_path / "abl", progress=False)
    assert summary["pretrained"] is None and any("no pre-training" in n for n in summary["notes"])
    full = finetune_config(pretrained, FT)
    assert full.finetune is not None and full.finetune.train_fraction == 1.0
    # 2 epochs x batches, a quarter of it
    store = SequenceStore.open(cfg.data.path)
    from argusrec.finetune import finetune_chunks
    from argusrec.recipes.finetune import period_pairs
    from argusrec.recipes.train import make_split

    chunks = finetune_chunks(
        period_pairs(store, make_split(store, cfg), cfg, "train"), store.offsets, max_len=32, min_len=4,
        max_impressions=64,
    )  # fmt: skip
    batches = math.ceil(len(chunks) / cfg.train.batch_size)
    assert summary["steps"] == math.ceil(0.25 * 2 * batches)


def test_incompatible_checkpoints_refused(pretrained: Path, data: Path, tmp_path: Path) -> None:
    with pytest.raises(ArgusrecError, match=r"another architecture:\n  model.dim: pre-trained 16, this config 32"):
        finetune(finetune_config(pretrained, [*FT, "model.dim=32"]), run_dir=tmp_path / "a", progress=False)
    # a checkpoint file outside a run directory: the weights themselves are checked
    loose = tmp_path / "loose.pt"
    loose.write_bytes((pretrained / "checkpoints" / "best.pt").read_bytes())
    cfg = finetune_config(pretrained, [*FT, f"finetune.checkpoint={loose}", "model.layers=2"])
    with pytest.raises(ArgusrecError, match="1 layers, the model config 2"):
        finetune(cfg, run_dir=tmp_path / "b", progress=False)
    with pytest.raises(ArgusrecError, match="no such run directory or checkpoint file"):
        finetune(finetune_config(pretrained, [*FT, f"finetune.checkpoint={tmp_path / 'nope'}"]), progress=False)
    # a next-item run is not ARGUS pre-training
    other = tmp_path / "next_item"
    (other / "checkpoints").mkdir(parents=True)
    (other / "checkpoints" / "best.pt").write_bytes(b"x")
    (other / "config.yaml").write_text(load_config("sasrec-ml-1m", [f"data.path={data}"]).to_yaml())
    with pytest.raises(ArgusrecError, match="is a 'next_item' run, not ARGUS pre-training"):
        finetune(finetune_config(pretrained, [*FT, f"finetune.checkpoint={other}"]), progress=False)
    with pytest.raises(ArgusrecError, match=r"train\.monitor=valid/PairAccuracy_weighted"):
        finetune(finetune_config(pretrained, [*FT, "train.monitor=valid/NIP_loss"]), progress=False)


def _store(path: Path, *, request: bool, like: np.ndarray | None = None, requests: np.ndarray | None = None) -> Path:
    rng = np.random.default_rng(0)
    n = 3000
    user = np.sort(rng.integers(0, 30, n))
    events: dict[str, np.ndarray] = {
        "user_id": user,
        "item_id": rng.integers(1, 50, n),
        "timestamp": np.arange(n) * 60,
        "like": np.zeros(n, dtype=np.float32) if like is None else like,
    }
    if request:
        events["request_id"] = np.arange(n) // 5 if requests is None else requests

    def read():
        yield "mem", pa.record_batch(events)

    schema = DatasetSchema.of(feedback={"like": "binary"}, request=request)
    build_store(EventSource(name="p", schema=schema, read=read), path, progress=False)
    return path


def _bare_config(path: Path, *extra: str):
    return load_config(
        "argus-tiny",
        [
            f"data.path={path}",
            *TINY,
            "task=finetune",
            "finetune.checkpoint=null",
            "train.monitor=valid/PairAccuracy_weighted",
            "train.monitor_mode=max",
            "finetune.pairs={grades: {positive: 1, negative: 0}, rules: [{grade: positive, signal: like}], "
            "default_grade: negative}",
            *extra,
        ],
    )


def test_data_without_pairs_refused(tmp_path: Path) -> None:
    same = _store(tmp_path / "same", request=True)  # every impression got the same feedback
    with pytest.raises(ArgusrecError, match=r"training period: no ranking pairs.*feedback differs within a group"):
        finetune(_bare_config(same), run_dir=tmp_path / "r1", progress=False)
    organic = _store(tmp_path / "organic", request=True, requests=np.full(3000, -1))  # no impressions at all
    with pytest.raises(ArgusrecError, match="no impressions to form ranking pairs from: fine-tuning needs events with"):
        finetune(_bare_config(organic), run_dir=tmp_path / "r2", progress=False)
    no_req = _store(tmp_path / "noreq", request=False)
    with pytest.raises(ArgusrecError, match="no request_id column"):
        finetune(_bare_config(no_req, "finetune.pairs.group_by=request"), run_dir=tmp_path / "r3", progress=False)
    with pytest.raises(ArgusrecError, match=r"data\.split=temporal"):
        finetune(_bare_config(same, "data.split=leave_one_out"), progress=False)
    assert not (tmp_path / "r1").exists()  # refused before anything was written


def test_cli_finetune_and_rank(pretrained: Path, tuned: tuple[Path, dict], tmp_path: Path) -> None:
    pytest.importorskip("lightgbm")
    runner = CliRunner()
    torch.set_num_threads(1)
    out = runner.invoke(
        app,
        ["finetune", "--pretrained", str(pretrained), "--run-dir", str(tmp_path / "ft"), "--no-progress",
         *[a for s in [*FT, "train.max_steps=2"] for a in ("--set", s)]],
    )  # fmt: skip
    assert out.exit_code == 0, out.output
    assert "test/PairAccuracy_weighted" in out.output and "popularity" in out.output and "argusrec rank" in out.output
    run, _ = tuned
    out = runner.invoke(app, ["rank", "--finetune-run", str(run), "--vectors"])
    assert out.exit_code == 0, out.output
    assert "relative PairAccuracy gain of the ARGUS feature" in out.output and "ranker+argus+vectors" in out.output
    summary = json.loads((run / "rank" / "metrics.json").read_text())
    models = summary["models"]
    assert set(models) == {"ranker-baseline", "ranker+argus", "ranker+argus+vectors", "argus-twotower"}
    assert models["argus-twotower"]["test/PairAccuracy_weighted"] == pytest.approx(
        json.loads((run / "metrics.json").read_text())["metrics"]["test/PairAccuracy_weighted"], abs=1e-6
    )
    base, plus = (
        models["ranker-baseline"]["test/PairAccuracy_weighted"],
        models["ranker+argus"]["test/PairAccuracy_weighted"],
    )
    assert summary["gain"] == pytest.approx((plus - base) / base)
    assert (run / "rank" / "ranker_plus_argus.txt").is_file()
    out = runner.invoke(app, ["finetune"])
    assert out.exit_code != 0
