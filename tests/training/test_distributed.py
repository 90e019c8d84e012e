"""Distributed training: DDP and FSDP2 with 2 CPU processes on gloo, exact resume, batch sharding, config errors.

The two-process tests train a tiny ARGUS model (2 transformer blocks, so FSDP has per-block units; a learned
0-d temperature, which FSDP leaves replicated; dropout, so every rank's RNG state matters) on a small simulated
dataset, in 2 processes that ``torchrun --standalone`` starts once for the whole module (gloo, CPU):

* ``full``: the ``pretrain`` recipe (DDP: through the CLI's ``pretrain`` command; FSDP: the recipe function),
  2 epochs, validation every epoch, ``best.pt``;
* ``resumed``: the same components through ``fit``, stopped by ``train.max_steps`` mid-epoch, rebuilt from
  scratch and resumed from the checkpoint (``last.pt`` / ``last.dcp``).

The resumed run's logged losses and final weights equal the uninterrupted run's *bit for bit*: on the CPU, with
the same two processes, every kernel and every gloo reduction is deterministic, and the checkpoint restores
weights, AdamW moments, the lr schedule, the sampler and every rank's RNG states exactly.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from argusrec.config import OptimConfig, RunConfig, TrainConfig, load_config
from argusrec.data.batching import ChunkBatches
from argusrec.data.simulator import SimulationConfig, SurfaceConfig
from argusrec.errors import ArgusrecError
from argusrec.recipes.data import simulate
from argusrec.training import distributed
from argusrec.training.distributed import ShardedBatches, resolve_strategy
from argusrec.training.loop import fit
from tests.training import TinyModel, toy_batches

WORLD = 2
REPO = Path(__file__).resolve().parents[2]
TINY = [
    "model.dim=16",
    "model.layers=2",
    "model.heads=1",
    "model.dropout=0.1",
    "model.hash_buckets=2048",
    "data.max_len=16",
    "loss.uniform_negatives=32",
    "optim.warmup_steps=4",
    "train.batch_size=16",
    "train.num_threads=1",
    "train.patience=null",
    "train.epochs=2",
    "train.log_every=1",
    "eval.batch_size=256",
]
INTERRUPT_AT = 5  # optimizer steps: mid-epoch 0 (9 steps per rank and epoch)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sim") / "data"
    cfg = SimulationConfig(
        n_events=4000, seed=1, n_items=150, surfaces={"search": SurfaceConfig(kind="search", share=1.0)}
    )
    simulate(cfg, path, latent=False, progress=False)
    return path


def _overrides(data: Path, strategy: str) -> list[str]:
    return [f"data.path={data}", *TINY, f"train.strategy={strategy}", "train.device=cpu"]


def _config(data: Path, strategy: str) -> RunConfig:
    return load_config("argus-tiny", _overrides(data, strategy))


# ------------------------------------------------------------------------------------------ worker processes
def _components(config: RunConfig) -> tuple[Any, Any, ChunkBatches, Any]:
    """Model, task, batches and evaluate exactly as the pretrain recipe builds them (same seed, same order)."""
    from typing import cast

    from argusrec.data.store import SequenceStore
    from argusrec.models.argus import Argus
    from argusrec.recipes.pretrain import argus_training, data_parts, evaluate_argus_roles, feedback_ranges
    from argusrec.recipes.train import make_split

    store = SequenceStore.open(config.data.path)
    context, feedback, fp_kinds, _ = data_parts(config, store)
    torch.manual_seed(config.train.seed)
    device = distributed.setup(config.train).device
    split = make_split(store, config)
    ranges, _ = feedback_ranges(store, split, feedback, fp_kinds)
    t = argus_training(config, store, split, context, feedback, fp_kinds, ranges, device)

    def evaluate(m: torch.nn.Module) -> dict[str, float]:
        return evaluate_argus_roles(
            cast(Argus, m), store, split, config, list(fp_kinds), ("valid",), device, feedback_ranges=ranges
        )

    return t.model, t.task, t.batches, evaluate


def _resume_run(config: RunConfig, run_dir: Path, max_steps: int | None) -> Any:
    model, task, batches, evaluate = _components(config)
    train = config.train.model_copy(update={"max_steps": max_steps})
    result = fit(
        model,
        task,
        batches,
        optim=config.optim,
        train=train,
        run_dir=run_dir,
        evaluate=evaluate,
        stateful={"task": task},
        progress=False,
    )
    return model, result


def _worker(data: Path, out: Path) -> None:
    """One of the ``WORLD`` processes torchrun starts: a DDP run through the CLI, then an FSDP run through the
    recipe (one process group for both), each followed by an interrupted and resumed ``fit``."""
    from typer.testing import CliRunner

    from argusrec.cli import app
    from argusrec.recipes.pretrain import pretrain

    torch.set_num_threads(1)
    rank = int(os.environ["RANK"])
    try:
        for strategy in ("ddp", "fsdp"):
            config = _config(data, strategy)
            where = out / strategy
            if strategy == "ddp":  # the documented command: torchrun ... -m argusrec.cli pretrain --set ...
                args = ["pretrain", "--config", "argus-tiny", "--run-dir", str(where / "full"), "--no-progress"]
                for item in _overrides(data, strategy):
                    args += ["--set", item]
                result = CliRunner().invoke(app, args, catch_exceptions=False)
                assert result.exit_code == 0, result.output
                (where / f"cli_output_rank{rank}.txt").write_text(result.output)
            else:
                pretrain(config, run_dir=where / "full", progress=False)
            _resume_run(config, where / "resumed", INTERRUPT_AT)
            model, result = _resume_run(config, where / "resumed", None)
            assert result.epochs_run == config.train.epochs
            if strategy == "ddp":  # every rank's own replica, to check that they stayed identical
                torch.save({k: v.detach().clone() for k, v in model.state_dict().items()}, where / f"rank{rank}.pt")
    finally:
        distributed.teardown()


@pytest.fixture(scope="module")
def launched(data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Run :func:`_worker` in ``WORLD`` processes started by torchrun (gloo, CPU); the folder they wrote."""
    out = tmp_path_factory.mktemp("distributed")
    args = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={WORLD}"]
    args += ["-m", "tests.training.test_distributed", str(data), str(out)]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    done = subprocess.run(args, capture_output=True, text=True, env=env, cwd=REPO, timeout=300, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-8000:]
    return out


# ------------------------------------------------------------------------------------------ reading results
def _log_rows(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "train_log.csv", newline="") as f:
        return [{k: r[k] for k in ("step", "epoch", "loss", "lr", "grad_norm")} for r in csv.DictReader(f)]


def _final_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    """The model weights of the run's last checkpoint, read in this (non-distributed) process."""
    last = run_dir / "checkpoints" / "last.pt"
    if last.is_file():
        return torch.load(last, weights_only=True)["model"]
    from torch.distributed.checkpoint.format_utils import dcp_to_torch_save

    flat = run_dir / "dcp_as_torch.pt"
    dcp_to_torch_save(run_dir / "checkpoints" / "last.dcp", flat)
    return torch.load(flat, weights_only=True)["model"]


def _check_run(out: Path, data: Path, strategy: str) -> None:
    from argusrec.recipes.evaluate import evaluate_run

    full, resumed = out / "full", out / "resumed"
    rows = _log_rows(full)
    losses = [float(r["loss"]) for r in rows]
    assert len(losses) == 14  # 2 epochs of 7 steps (15 batches: 7 per rank)
    assert np.mean(losses[-4:]) < np.mean(losses[:4]) - 0.3, losses  # it learns
    # Interrupted at step 5 and resumed: the same log lines and the same final weights, bit for bit.
    assert _log_rows(resumed) == rows
    expected, got = _final_weights(full), _final_weights(resumed)
    assert set(got) == set(expected)
    for k in expected:
        assert torch.equal(got[k], expected[k]), k
    # Only rank 0 wrote; the run directory is complete and best.pt (full weights) loads in one process.
    for name in ("config.yaml", "run.json", "metrics.json", "model_card.md", "metrics.csv"):
        assert (full / name).is_file(), name
    summary = json.loads((full / "metrics.json").read_text())
    again = evaluate_run(full, roles=("test",), device="cpu")["metrics"]  # what `argusrec evaluate` does
    assert again["test/NIP_loss"] == pytest.approx(summary["metrics"]["test/NIP_loss"], abs=1e-5)
    best = torch.load(full / "checkpoints" / "best.pt", weights_only=True)
    assert not any(k.startswith(("module.", "model.")) for k in best["model"]), list(best["model"])[:3]
    # A single process refuses to continue a 2-process run instead of silently diverging.
    model, task, batches, _ = _components(_config(data, "single"))
    with pytest.raises(ArgusrecError, match="2 process" if strategy == "ddp" else "FSDP run"):
        fit(
            model,
            task,
            batches,
            optim=OptimConfig(),
            train=TrainConfig(device="cpu", num_threads=1),
            run_dir=resumed,
            stateful={"task": task},
            progress=False,
        )


def test_ddp_two_processes_learn_stay_identical_and_resume_exactly(launched: Path, data: Path, one_thread: Any) -> None:
    out = launched / "ddp"
    printed = [(out / f"cli_output_rank{r}.txt").read_text() for r in range(WORLD)]
    assert "test/NIP_loss" in printed[0] and printed[1] == ""  # rank 0 alone prints the table
    _check_run(out, data, "ddp")
    ranks = [torch.load(out / f"rank{r}.pt", weights_only=True) for r in range(WORLD)]
    for k in ranks[0]:
        assert torch.equal(ranks[0][k], ranks[1][k]), k  # DDP replicas never drift apart


def test_fsdp_two_processes_learn_and_resume_exactly_from_the_sharded_checkpoint(
    launched: Path, data: Path, one_thread: Any
) -> None:
    out = launched / "fsdp"
    dcp = out / "full" / "checkpoints" / "last.dcp"
    assert (dcp / distributed.DCP_META).is_file() and len(list(dcp.glob("*.distcp"))) == WORLD  # one shard a rank
    assert not (out / "full" / "checkpoints" / "last.pt").exists()
    _check_run(out, data, "fsdp")


# ------------------------------------------------------------------------------------------ in one process
@pytest.mark.parametrize("world", [1, 2, 3, 4])
@pytest.mark.parametrize("bucket", [None, 2])
def test_sharded_batches_are_disjoint_equal_and_cover_the_epoch(world: int, bucket: int | None) -> None:
    source = toy_batches(batch_size=3, n_users=12)
    source.bucket = bucket
    n = len(source)
    shards = [ShardedBatches(source, r, world) for r in range(world)]
    assert all(len(s) == n // world for s in shards)
    taken = sorted(i for s in shards for i in s.indices())
    assert taken == list(range(n - n % world))  # disjoint; only the last n % world of the order are left out
    for epoch in (0, 1):
        everything = list(source.epoch(epoch))
        for s in shards:
            got = list(s.epoch(epoch))
            assert len(got) == len(s)
            for i, batch in zip(s.indices(), got, strict=True):
                for k in batch:
                    np.testing.assert_array_equal(batch[k], everything[i][k])
            resumed = list(s.epoch(epoch, start_batch=1))  # a resumed rank continues with its own next batch
            assert len(resumed) == len(got) - 1 and all(
                np.array_equal(a["item_id"], b["item_id"]) for a, b in zip(resumed, got[1:], strict=True)
            )


def test_sharded_batches_of_a_source_without_select_read_the_same_batches() -> None:
    class Plain:
        def __init__(self, inner: ChunkBatches) -> None:
            self.inner = inner

        def __len__(self) -> int:
            return len(self.inner)

        def epoch(self, epoch: int, start_batch: int = 0) -> Any:
            return self.inner.epoch(epoch, start_batch)

    source = toy_batches(batch_size=3)
    for rank in range(2):
        fast, slow = ShardedBatches(source, rank, 2), ShardedBatches(Plain(source), rank, 2)
        for a, b in zip(fast.epoch(3, 1), slow.epoch(3, 1), strict=True):
            np.testing.assert_array_equal(a["item_id"], b["item_id"])


TORCHRUN_ENV = ("WORLD_SIZE", "RANK", "LOCAL_RANK")


def _torchrun_env(monkeypatch: pytest.MonkeyPatch, world: int | None) -> None:
    for k in TORCHRUN_ENV:
        monkeypatch.delenv(k, raising=False)
    if world is not None:
        monkeypatch.setenv("WORLD_SIZE", str(world))
        monkeypatch.setenv("RANK", "0")
        monkeypatch.setenv("LOCAL_RANK", "0")


def test_strategy_resolution_and_errors_name_the_key(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _torchrun_env(monkeypatch, None)
    assert resolve_strategy("auto") == "single" and resolve_strategy("single") == "single"
    for strategy in ("ddp", "fsdp"):
        with pytest.raises(ArgusrecError, match=f"train.strategy={strategy} needs a torchrun launch"):
            resolve_strategy(strategy)
        with pytest.raises(ArgusrecError, match=f"train.strategy={strategy}"):  # fit refuses before training
            fit(
                TinyModel(),
                object(),  # type: ignore[arg-type]
                toy_batches(),
                optim=OptimConfig(),
                train=TrainConfig(strategy=strategy, device="cpu"),
                run_dir=tmp_path / strategy,
                progress=False,
            )
        assert not (tmp_path / strategy).exists()
    _torchrun_env(monkeypatch, 1)
    assert resolve_strategy("auto") == "single" and resolve_strategy("ddp") == "ddp"
    _torchrun_env(monkeypatch, 2)
    assert resolve_strategy("auto") == "ddp" and resolve_strategy("fsdp") == "fsdp"
    with pytest.raises(ArgusrecError, match=r"train\.strategy=single but torchrun started 2 processes"):
        resolve_strategy("single")
    with pytest.raises(ArgusrecError, match=r"train\.strategy"):
        load_config("argus-tiny", ["train.strategy=horovod"])
    assert load_config("argus-tiny", ["train.strategy=fsdp"]).train.strategy == "fsdp"


if __name__ == "__main__":  # a torchrun worker of the ``launched`` fixture
    _worker(Path(sys.argv[1]), Path(sys.argv[2]))
