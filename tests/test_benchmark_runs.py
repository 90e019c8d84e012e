"""The benchmarks' training runs: a run whose benchmark process died is continued, not started again."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from argusrec.config import load_config
from argusrec.training.checkpoint import make_checkpoint, save_checkpoint

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import leave_one_out as loo

PRESET = "sasrec-ml-1m"


def _overrides(data: Path) -> list[str]:
    return [f"data.path={data}", "train.epochs=5"]


def _left_behind(
    work: Path, name: str, config_yaml: str, *, epoch: int, seconds: float, pid: int | None = None
) -> Path:
    """A run directory as a benchmark that died mid-run leaves it: config.yaml, checkpoints/last.pt, maybe an owner."""
    d = work / "runs" / name
    (d / "checkpoints").mkdir(parents=True)
    (d / "config.yaml").write_text(config_yaml)
    progress = {"epoch": epoch, "step": 10 * epoch, "seconds": seconds}
    model = torch.nn.Linear(2, 2)
    ckpt = make_checkpoint(
        "last",
        model=model,
        progress=progress,
        optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
        rng={"seed": 0},
    )
    save_checkpoint(d / "checkpoints" / "last.pt", ckpt)
    if pid is not None:
        (d / loo.OWNER).write_text(json.dumps({"pid": pid}))
    return d


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_the_newest_dead_run_with_the_same_config_is_the_one_continued(tmp_path: Path) -> None:
    yaml = load_config(PRESET, _overrides(tmp_path)).to_yaml()
    other = load_config(PRESET, [*_overrides(tmp_path), "train.seed=7"]).to_yaml()
    _left_behind(tmp_path, "beauty-sasrec-s0-100", yaml, epoch=2, seconds=50.0)
    _left_behind(tmp_path, "beauty-sasrec-s0-200", yaml, epoch=4, seconds=90.0, pid=_dead_pid())
    _left_behind(tmp_path, "beauty-sasrec-s0-300", other, epoch=6, seconds=130.0)  # another config
    _left_behind(tmp_path, "beauty-sasrec-s0-400", yaml, epoch=8, seconds=170.0, pid=None).joinpath(
        "checkpoints", "last.pt"
    ).unlink()  # nothing to continue from
    _left_behind(tmp_path, "beauty-sasrec-s0-tuned-s0-500", yaml, epoch=9, seconds=1.0)  # another tag's run
    found = loo.interrupted_run(tmp_path, "beauty-sasrec-s0", yaml)
    assert found is not None
    run_dir, progress = found
    assert run_dir.name == "beauty-sasrec-s0-200"
    assert progress == {"epoch": 4, "step": 40, "seconds": 90.0}
    assert loo.interrupted_run(tmp_path, "sports-sasrec-s0", yaml) is None


def test_a_run_whose_owner_is_alive_or_whose_checkpoint_is_truncated_is_left_alone(tmp_path: Path) -> None:
    import os

    yaml = load_config(PRESET, _overrides(tmp_path)).to_yaml()
    _left_behind(tmp_path, "ml-hstu-s1-100", yaml, epoch=1, seconds=10.0, pid=os.getpid())  # a run in progress
    assert loo.interrupted_run(tmp_path, "ml-hstu-s1", yaml) is None
    broken = _left_behind(tmp_path, "ml-hstu-s1-200", yaml, epoch=3, seconds=30.0)
    last = broken / "checkpoints" / "last.pt"
    last.write_bytes(last.read_bytes()[:100])
    assert loo.interrupted_run(tmp_path, "ml-hstu-s1", yaml) is None


def test_a_continued_run_spends_only_what_is_left_of_its_limit_and_counts_the_seconds_before(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "data"
    overrides = loo.run_overrides(PRESET, [], data, 0, epochs=5, eval_every=1, threads=1, device="cpu")
    yaml = load_config(PRESET, overrides).to_yaml()
    left = _left_behind(tmp_path, "ml-sasrec-s0-100", yaml, epoch=3, seconds=400.0, pid=_dead_pid())
    calls: list[tuple[list[str], float | None]] = []

    def fake_measured(args: list[str], timeout: float | None = None) -> tuple[float, float, str, dict]:
        calls.append((args, timeout))
        spec = json.loads(args[-1])
        assert json.loads((Path(spec["run_dir"]) / loo.OWNER).read_text())["pid"] == loo.os.getpid()
        metrics = {f"{s}/{k}": 0.1 for s in ("valid", "test") for k in (*loo.METRICS, "MRR")} | {"events_per_s": 5.0}
        summary = {"metrics": metrics, "popularity_baseline": {}, "epochs_run": 5, "best_epoch": 4}
        return 100.0, 64.0, "SUMMARY " + json.dumps(summary), {}

    monkeypatch.setattr(loo, "measured", fake_measured)
    run = loo.train_one(
        tmp_path, "ml-sasrec-s0", data, PRESET, [], 0, epochs=5, eval_every=1, threads=1, device="cpu", limit=1000.0
    )
    ((args, timeout),) = calls
    assert json.loads(args[-1])["run_dir"] == str(left)  # the old directory, so train resumes from its last.pt
    assert timeout == pytest.approx(600.0)  # 1000 s limit - 400 s already trained
    assert run.seconds == pytest.approx(500.0) and run.continued == {"epoch": 3, "step": 30, "seconds": 400.0}
    assert not left.exists()  # finished: its directory goes, as any run's does
    # nothing left behind: the next run of the tag starts afresh with the whole limit
    calls.clear()
    fresh = loo.train_one(
        tmp_path, "ml-sasrec-s0", data, PRESET, [], 0, epochs=5, eval_every=1, threads=1, device="cpu", limit=1000.0
    )
    assert calls[0][1] == pytest.approx(1000.0) and fresh.continued is None and fresh.seconds == pytest.approx(100.0)
