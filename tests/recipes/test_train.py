"""The train / evaluate recipes end to end on small simulated data."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from argusrec.config import load_config
from argusrec.data.simulator import SimulationConfig, SurfaceConfig
from argusrec.errors import ArgusrecError
from argusrec.recipes.data import simulate
from argusrec.recipes.evaluate import evaluate_run
from argusrec.recipes.train import train

BASE = """
name: t
data: {{path: {data}, max_len: 30}}
model: {{kind: {kind}, dim: 32, layers: 1, heads: 1, dropout: 0.0, normalize: true}}
loss: {{uniform_negatives: 64}}
optim: {{lr: 0.003}}
train: {{epochs: {epochs}, batch_size: 64, eval_every: 2, patience: null, num_threads: 2}}
"""


@pytest.fixture(scope="module")
def taste_world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Users pick by their own taste (search only) from a catalog with mild popularity: personalisation pays."""
    path = tmp_path_factory.mktemp("sim") / "data"
    cfg = SimulationConfig(
        n_events=20_000,
        seed=1,
        n_items=300,
        catalog={"zipf_exponent": 0.6},
        taste={"organic_beta": 3.0, "organic_pop_power": 0.3},
        surfaces={"search": SurfaceConfig(kind="search", share=1.0)},
    )
    simulate(cfg, path, latent=False, progress=False)
    return path


def _config(tmp_path: Path, data: Path, kind: str = "sasrec", epochs: int = 6, overrides: tuple[str, ...] = ()):
    path = tmp_path / f"{kind}.yaml"
    path.write_text(BASE.format(data=data, kind=kind, epochs=epochs))
    return load_config(path, list(overrides))


def test_sasrec_beats_popularity_and_evaluate_reproduces_the_metrics(tmp_path: Path, taste_world: Path) -> None:
    cfg = _config(tmp_path, taste_world)
    summary = train(cfg, run_dir=tmp_path / "run", progress=False)
    model, pop = summary["metrics"], summary["popularity_baseline"]
    assert model["test/NDCG@10"] > 1.5 * pop["test/NDCG@10"]
    assert model["test/HR@10"] > pop["test/HR@10"]
    for name in ("config.yaml", "run.json", "metrics.json", "model_card.md", "train_log.csv", "metrics.csv"):
        assert (tmp_path / "run" / name).is_file(), name
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["metrics"] == model
    card = (tmp_path / "run" / "model_card.md").read_text()
    assert "excluding embeddings" in card and "fingerprint" in card and "test/NDCG@10" in card
    for part in (
        "**architecture**: sasrec, 1 layers, 1 heads,\n  width 32",
        "**protocol**: leave_one_out",
        "**hardware**: cpu",
    ):
        assert part in card, part
    assert f"{summary['train_seconds']:.1f} s" in card and f"| test/NDCG@10 | {model['test/NDCG@10']:.4f} |" in card
    again = evaluate_run(tmp_path / "run", device="cpu")["metrics"]
    assert again["test/NDCG@10"] == pytest.approx(model["test/NDCG@10"], abs=1e-6)


def test_sampled_metrics_only_when_asked_and_labelled(tmp_path: Path, taste_world: Path) -> None:
    plain = train(_config(tmp_path, taste_world, epochs=1), run_dir=tmp_path / "a", progress=False)["metrics"]
    assert not any("sampled" in k for k in plain)
    cfg = _config(tmp_path, taste_world, epochs=1, overrides=("eval.sampled_negatives=100",))
    both = train(cfg, run_dir=tmp_path / "b", progress=False)["metrics"]
    assert both["test/NDCG@10"] == pytest.approx(plain["test/NDCG@10"])  # full ranking unchanged
    assert both["test/sampled100/HR@10"] >= both["test/HR@10"]  # 100 candidates are easier than the catalog


@pytest.mark.parametrize("kind", ["llama", "hstu", "fuxi"])
def test_every_model_kind_beats_popularity(tmp_path: Path, taste_world: Path, kind: str) -> None:
    summary = train(_config(tmp_path, taste_world, kind=kind, epochs=6), run_dir=tmp_path / kind, progress=False)
    model, pop = summary["metrics"], summary["popularity_baseline"]
    assert model["test/NDCG@10"] > 1.5 * pop["test/NDCG@10"], (model["test/NDCG@10"], pop["test/NDCG@10"])


def test_the_history_filter_setting_reaches_the_model_and_the_baseline(tmp_path: Path, taste_world: Path) -> None:
    runs = {}
    for flag in ("true", "false"):
        cfg = _config(tmp_path, taste_world, epochs=1, overrides=(f"eval.filter_history={flag}",))
        runs[flag] = train(cfg, run_dir=tmp_path / flag, progress=False)
    # history items left in the ranking take places in the top 10 (measured: model HR@10 0.214 filtered, 0.153 not)
    for part in ("metrics", "popularity_baseline"):
        assert runs["true"][part]["test/HR@10"] > runs["false"][part]["test/HR@10"], part
    assert "history items kept" in (tmp_path / "false" / "model_card.md").read_text()
    assert "history items removed" in (tmp_path / "true" / "model_card.md").read_text()


def test_the_train_command_runs_a_config_with_overrides(tmp_path: Path, taste_world: Path) -> None:
    path = tmp_path / "run.yaml"
    path.write_text(BASE.format(data=taste_world, kind="sasrec", epochs=3))
    cmd = [sys.executable, "-m", "argusrec.cli", "train", "--config", str(path), "--set", "train.epochs=1"]
    r = subprocess.run([*cmd, "--run-dir", str(tmp_path / "run"), "--no-progress"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert saved["epochs_run"] == 1  # the --set override won over the file's 3 epochs
    assert f"{saved['metrics']['test/NDCG@10']:.4f}" in r.stdout and str(tmp_path / "run") in r.stdout
    bad = subprocess.run([*cmd[:-2], "--set", "model.heads=3"], capture_output=True, text=True)
    assert bad.returncode == 2 and "model.heads" in bad.stderr and "Traceback" not in bad.stderr


def test_impossible_values_for_this_dataset_are_refused(tmp_path: Path, taste_world: Path) -> None:
    with pytest.raises(ArgusrecError, match=r"eval\.ks=.*larger than the catalog"):
        train(_config(tmp_path, taste_world, overrides=("eval.ks=[10,5000]",)), run_dir=tmp_path / "a")
    with pytest.raises(ArgusrecError, match=r"loss\.uniform_negatives=400 is not smaller than the catalog"):
        train(_config(tmp_path, taste_world, overrides=("loss.uniform_negatives=400",)), run_dir=tmp_path / "b")


def test_foreign_or_corrupted_runs_are_refused(tmp_path: Path, taste_world: Path) -> None:
    cfg = _config(tmp_path, taste_world, epochs=2)
    run = tmp_path / "run"
    train(cfg, run_dir=run, progress=False)
    with pytest.raises(ArgusrecError, match="different config"):
        train(_config(tmp_path, taste_world, epochs=3), run_dir=run, progress=False)
    (run / "checkpoints" / "best.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ArgusrecError, match=r"best\.pt"):
        evaluate_run(run, device="cpu")
    info = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps({**info, "format": 99}))
    with pytest.raises(ArgusrecError, match="run format 99"):
        evaluate_run(run, device="cpu")
    with pytest.raises(ArgusrecError, match="not a run directory"):
        evaluate_run(tmp_path, device="cpu")


def test_last_position_training_takes_one_window_per_training_event(tmp_path: Path, taste_world: Path) -> None:
    from argusrec.data.store import SequenceStore
    from argusrec.recipes.train import make_split, training_chunks

    cfg = _config(tmp_path, taste_world, overrides=("train.targets=last",))
    store = SequenceStore.open(cfg.data.path)
    split = make_split(store, cfg)
    lo, hi = split.train_ranges()
    windows = training_chunks(store, split, cfg)
    assert len(windows) == int(np.maximum(hi - lo - 1, 0).sum())  # every training event after the user's first
    ends = windows.start + windows.length  # exclusive: the window ends with its target
    assert np.all(windows.length >= 2) and np.all(windows.length <= cfg.data.max_len + 1)
    assert np.all(windows.start >= lo[windows.user]) and np.all(ends <= hi[windows.user])  # never valid / test
    assert len(np.unique(ends)) == len(windows)  # one window per target
    long = windows.length == cfg.data.max_len + 1
    assert long.any() and np.all(windows.start[~long] == lo[windows.user[~long]])  # short windows start the history


def test_an_empty_history_state_adds_each_users_first_training_event(tmp_path: Path, taste_world: Path) -> None:
    from argusrec.data.store import SequenceStore
    from argusrec.recipes.train import make_split, training_chunks

    cfg = _config(tmp_path, taste_world, overrides=("train.targets=last", "model.empty_state=true"))
    store = SequenceStore.open(cfg.data.path)
    split = make_split(store, cfg)
    lo, hi = split.train_ranges()
    windows = training_chunks(store, split, cfg)
    assert len(windows) == int(np.maximum(hi - lo, 0).sum())  # every training event
    alone = windows.length == 1  # the target alone: predicted from the empty-history state
    users = np.flatnonzero(hi > lo)
    assert alone.sum() == len(users)
    assert np.array_equal(np.sort(windows.user[alone]), users) and np.array_equal(
        windows.start[alone], lo[windows.user[alone]]
    )
    without = _config(tmp_path, taste_world, overrides=("train.targets=last",))
    assert len(windows) - len(training_chunks(store, split, without)) == len(users)


@pytest.mark.parametrize("option", ["plain", "model.empty_state", "model.padding_content"])
def test_bsarec_trains_on_last_positions_and_beats_popularity(tmp_path: Path, taste_world: Path, option: str) -> None:
    overrides = (
        "model.kind=bsarec",
        "train.targets=last",
        "model.dropout=0.1",
        "data.max_len=10",
        "train.batch_size=256",
        *((f"{option}=true",) if option != "plain" else ()),
    )
    cfg = _config(tmp_path, taste_world, epochs=3, overrides=overrides)
    summary = train(cfg, run_dir=tmp_path / "b", progress=False)
    model, pop = summary["metrics"], summary["popularity_baseline"]
    assert model["test/NDCG@10"] > 1.5 * pop["test/NDCG@10"]


def test_bsarec_needs_last_position_training_and_a_window_with_enough_bins(tmp_path: Path, taste_world: Path) -> None:
    with pytest.raises(ArgusrecError, match=r"model\.kind=bsarec .* set train\.targets=last"):
        _config(tmp_path, taste_world, overrides=("model.kind=bsarec",))
    with pytest.raises(ArgusrecError, match=r"model\.frequency_bins=20: a window of data\.max_len=30 has only 16"):
        _config(tmp_path, taste_world, overrides=("model.kind=bsarec", "train.targets=last", "model.frequency_bins=20"))


def test_window_settings_are_refused_where_they_would_be_ignored(tmp_path: Path, taste_world: Path) -> None:
    with pytest.raises(ArgusrecError, match=r"next-item settings; task: argus"):
        _config(tmp_path, taste_world, overrides=("task=argus", "train.targets=last"))
    with pytest.raises(ArgusrecError, match=r"next-item settings; task: argus"):
        _config(tmp_path, taste_world, overrides=("task=argus", "model.kind=bsarec"))
    with pytest.raises(ArgusrecError, match=r"data\.max_chunks_per_user .* unset it"):
        _config(tmp_path, taste_world, overrides=("train.targets=last", "data.max_chunks_per_user=2"))
    with pytest.raises(ArgusrecError, match=r"model\.empty_state .* train\.targets=last"):
        _config(tmp_path, taste_world, overrides=("model.empty_state=true",))


@pytest.mark.parametrize("kind", ["sasrec", "hstu", "bsarec", "bsarec-content"])
def test_user_vectors_batched_by_history_length_equal_full_window_padding(
    tmp_path: Path, taste_world: Path, kind: str
) -> None:
    """Evaluation pads each batch to its longest history only; the vectors are those of the full window."""
    import torch

    from argusrec.data.batching import assemble_batch, history_windows
    from argusrec.data.store import SequenceStore
    from argusrec.eval.protocols import user_vectors
    from argusrec.models.builders import build_model
    from argusrec.recipes.train import make_split

    extra = ("train.targets=last",) if kind.startswith("bsarec") else ()
    if kind == "bsarec-content":  # the model pads every batch to the window itself
        kind, extra = "bsarec", (*extra, "model.padding_content=true")
    cfg = _config(tmp_path, taste_world, kind=kind, overrides=("data.max_len=12", *extra))
    store = SequenceStore.open(cfg.data.path)
    targets = make_split(store, cfg).targets("valid", min_history=1)
    user, index = targets.user[:300], targets.index[:300]
    torch.manual_seed(0)
    model = build_model(cfg.model, cfg.loss, n_items=store.n_items, max_len=12).eval()
    got = user_vectors(model, store, user, index, max_len=12, batch_size=64)
    w = history_windows(store.offsets, user, index, 12)
    assert len(np.unique(w.length)) > 3  # the batches really differ in length
    b = assemble_batch(store, w.start, w.length, columns=["item_id", "timestamp"], user=w.user, n=12)
    items, valid = torch.from_numpy(b["item_id"].astype(np.int64)), torch.from_numpy(b["mask"])
    ts = torch.from_numpy(b["timestamp"])
    query = torch.cat([ts[:, 1:], torch.from_numpy(np.asarray(store.timestamps[index], dtype=np.int64))[:, None]], 1)
    with torch.no_grad():
        expected = model(items, valid, ts, query)[:, -1]  # every target padded to the whole window, in order
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_weight_average_is_what_validation_saw_and_what_is_tested(tmp_path: Path, taste_world: Path) -> None:
    """train.ema_decay: the reported validation equals the best evaluation during training (of the average),
    which fails if best.pt held the raw weights; evaluate reproduces it from best.pt."""
    cfg = _config(tmp_path, taste_world, epochs=4, overrides=("train.ema_decay=0.9",))
    summary = train(cfg, run_dir=tmp_path / "ema", progress=False)
    best = max(float(r["valid/NDCG@10"]) for r in _metrics_log(tmp_path / "ema"))
    assert summary["metrics"]["valid/NDCG@10"] == pytest.approx(best, abs=1e-6)
    again = evaluate_run(tmp_path / "ema", device="cpu")["metrics"]
    assert again["test/NDCG@10"] == pytest.approx(summary["metrics"]["test/NDCG@10"], abs=1e-6)


def _metrics_log(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))
