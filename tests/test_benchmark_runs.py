"""The benchmarks' training runs: a run whose benchmark process died is continued, not started again."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from argusrec.config import load_config
from argusrec.training.checkpoint import make_checkpoint, save_checkpoint

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import leave_one_out as loo
import training_runs

PRESET = "sasrec-ml-1m"


def _overrides(data: Path) -> list[str]:
    return [f"data.path={data}", "train.epochs=5"]


def _left_behind(work: Path, name: str, config_yaml: str, *, epoch: int, seconds: float, started: str = "") -> Path:
    """A run directory as a benchmark that died mid-run leaves it: config.yaml, checkpoints/last.pt, an unheld lock."""
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
    if started:
        (d / training_runs.LOCK).write_text(json.dumps({"pid": 1, "commit": started}))
    return d


def test_the_newest_dead_run_with_the_same_config_is_the_one_continued(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    yaml = load_config(PRESET, _overrides(tmp_path)).to_yaml()
    other = load_config(PRESET, [*_overrides(tmp_path), "train.seed=7"]).to_yaml()
    _left_behind(tmp_path, "beauty-sasrec-s0-100", yaml, epoch=2, seconds=50.0)
    _left_behind(tmp_path, "beauty-sasrec-s0-200", yaml, epoch=4, seconds=90.0, started="abc1234")
    _left_behind(tmp_path, "beauty-sasrec-s0-300", other, epoch=6, seconds=130.0)  # another config
    _left_behind(tmp_path, "beauty-sasrec-s0-400", yaml, epoch=8, seconds=170.0).joinpath(
        "checkpoints", "last.pt"
    ).unlink()  # nothing to continue from
    _left_behind(tmp_path, "beauty-sasrec-s0-1-500", yaml, epoch=9, seconds=1.0)  # another tag's run ("...-s0-1")
    _left_behind(tmp_path, "beauty-sasrec-s0-600.failed", yaml, epoch=9, seconds=1.0)  # a failed continuation
    found = training_runs.interrupted_run(tmp_path, "beauty-sasrec-s0", yaml)
    assert found is not None
    run_dir, progress, lock = found
    lock.close()
    assert run_dir.name == "beauty-sasrec-s0-200"
    assert progress == {"epoch": 4, "step": 40, "seconds": 90.0, "commit": "abc1234"}
    said = capsys.readouterr().out  # the directories passed over are named, not deleted
    assert "not continuing beauty-sasrec-s0-400: no checkpoints/last.pt (left on disk)" in said
    assert "not continuing beauty-sasrec-s0-300: its config.yaml is not this run's (left on disk)" in said
    assert "s0-1-500" not in said and "600.failed" not in said and (tmp_path / "runs/beauty-sasrec-s0-300").is_dir()
    assert training_runs.interrupted_run(tmp_path, "sports-sasrec-s0", yaml) is None


def test_a_run_locked_by_a_live_process_or_with_a_truncated_checkpoint_is_left_alone(tmp_path: Path) -> None:
    yaml = load_config(PRESET, _overrides(tmp_path)).to_yaml()
    mine = _left_behind(tmp_path, "ml-hstu-s1-100", yaml, epoch=1, seconds=10.0)
    held = training_runs.own(mine)  # this process's run in progress
    assert held is not None
    assert training_runs.interrupted_run(tmp_path, "ml-hstu-s1", yaml) is None
    held.close()
    # a training process whose benchmark was killed still holds its run directory (the lock it inherited)
    orphan = _left_behind(tmp_path, "ml-hstu-s1-200", yaml, epoch=2, seconds=20.0)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import fcntl, sys, time; f = open({str(orphan / training_runs.LOCK)!r}, 'a+'); "
            "fcntl.flock(f, fcntl.LOCK_EX); print('held', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        found = training_runs.interrupted_run(tmp_path, "ml-hstu-s1", yaml)
        assert found is not None and found[0] == mine  # the older, unheld one
        found[2].close()
    finally:
        holder.kill()
        holder.wait()
    broken = _left_behind(tmp_path, "ml-hstu-s1-300", yaml, epoch=3, seconds=30.0)
    last = broken / "checkpoints" / "last.pt"
    last.write_bytes(last.read_bytes()[:100])
    found = training_runs.interrupted_run(tmp_path, "ml-hstu-s1", yaml)
    assert (
        found is not None and found[0] == orphan
    )  # the truncated one is passed over (the newest held one is free now)
    found[2].close()


def _summary_line() -> str:
    metrics = {f"{s}/{k}": 0.1 for s in ("valid", "test") for k in (*training_runs.METRICS, "MRR")} | {
        "events_per_s": 5.0
    }
    return "SUMMARY " + json.dumps({"metrics": metrics, "popularity_baseline": {}, "epochs_run": 5, "best_epoch": 4})


def _train(tmp_path: Path, limit: float) -> training_runs.Trained:
    return training_runs.train_one(
        tmp_path,
        "ml-sasrec-s0",
        tmp_path / "data",
        PRESET,
        [],
        0,
        epochs=5,
        eval_every=1,
        threads=1,
        device="cpu",
        limit=limit,
    )


def _left_for_train_one(tmp_path: Path, seconds: float) -> Path:
    overrides = training_runs.run_overrides(
        PRESET, [], tmp_path / "data", 0, epochs=5, eval_every=1, threads=1, device="cpu"
    )
    yaml = load_config(PRESET, overrides).to_yaml()
    return _left_behind(tmp_path, "ml-sasrec-s0-100", yaml, epoch=3, seconds=seconds, started="abc1234")


def test_a_continued_run_spends_only_what_is_left_of_its_limit_and_counts_the_seconds_before(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    left = _left_for_train_one(tmp_path, seconds=400.0)
    calls: list[tuple[list[str], float | None]] = []

    def fake_measured(args: list[str], timeout: float | None = None, keep_fd: int | None = None) -> tuple:
        calls.append((args, timeout))
        assert keep_fd is not None  # the training process holds the run directory's lock too
        lock = Path(json.loads(args[-1])["run_dir"]) / training_runs.LOCK
        assert json.loads(lock.read_text())["pid"] == os.getpid()
        return 100.0, 64.0, _summary_line(), {}

    monkeypatch.setattr(training_runs, "measured", fake_measured)
    run = _train(tmp_path, limit=1000.0)
    ((args, timeout),) = calls
    assert args[-2] == "--child" and json.loads(args[-1])["run_dir"] == str(left)  # resumes from its last.pt
    assert timeout == pytest.approx(600.0)  # 1000 s limit - 400 s already trained
    assert run.seconds == pytest.approx(500.0) and not run.limited
    assert run.continued == {"epoch": 3, "step": 30, "seconds": 400.0, "commit": "abc1234"}
    assert not left.exists()  # finished: its directory goes, as any run's does
    # nothing left behind: the next run of the tag starts afresh with the whole limit
    calls.clear()
    fresh = _train(tmp_path, limit=1000.0)
    assert calls[0][1] == pytest.approx(1000.0) and fresh.continued is None and fresh.seconds == pytest.approx(100.0)


def test_a_run_continued_after_its_limit_is_only_evaluated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _left_for_train_one(tmp_path, seconds=1200.0)
    calls: list[str] = []

    def fake_measured(args: list[str], timeout: float | None = None, keep_fd: int | None = None) -> tuple:
        calls.append(args[-2])
        return 5.0, 64.0, _summary_line(), {}

    monkeypatch.setattr(training_runs, "measured", fake_measured)
    run = _train(tmp_path, limit=1000.0)
    assert calls == ["--child-eval"] and run.limited and run.seconds == pytest.approx(1200.0)


def test_a_failed_continuation_is_set_aside_and_the_next_start_trains_afresh(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    left = _left_for_train_one(tmp_path, seconds=400.0)

    def failing(args: list[str], timeout: float | None = None, keep_fd: int | None = None) -> tuple:
        raise RuntimeError("status 1: the data changed")

    monkeypatch.setattr(training_runs, "measured", failing)
    with pytest.raises(RuntimeError, match="the data changed"):
        _train(tmp_path, limit=1000.0)
    assert not left.exists() and left.with_name(left.name + ".failed").is_dir()
    dirs: list[str] = []

    def fake_measured(args: list[str], timeout: float | None = None, keep_fd: int | None = None) -> tuple:
        dirs.append(json.loads(args[-1])["run_dir"])
        return 100.0, 64.0, _summary_line(), {}

    monkeypatch.setattr(training_runs, "measured", fake_measured)
    assert _train(tmp_path, limit=1000.0).continued is None and dirs[0] != str(left)


def test_a_stopped_benchmark_takes_the_training_process_it_started_with_it(tmp_path: Path) -> None:
    """The command measured() runs is in its own session (a timeout kills its whole group), so a signal to the
    benchmark alone would orphan it: the benchmark kills it before exiting."""
    pid_file = tmp_path / "trainer.pid"
    trainer = f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); time.sleep(60)"
    bench = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; sys.path.insert(0, sys.argv[1]); import training_runs; training_runs.stop_children_on_exit(); "
            "training_runs.measured([sys.executable, '-c', sys.argv[2]])",
            str(Path(loo.__file__).parent),
            trainer,
        ]
    )
    try:
        deadline = time.monotonic() + 60
        while not pid_file.exists() or not pid_file.read_text():
            assert time.monotonic() < deadline and bench.poll() is None
            time.sleep(0.05)
        pid = int(pid_file.read_text())
        bench.terminate()
        assert bench.wait(timeout=30) == 128 + signal.SIGTERM
        deadline = time.monotonic() + 10
        while _running(pid):
            assert time.monotonic() < deadline, "the training process outlived its benchmark"
            time.sleep(0.05)
    finally:
        bench.kill()


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"  # a killed orphan waits as a zombie until init reaps it


TINY = """
name: tiny
data: {{path: {data}, max_len: 20}}
model: {{kind: sasrec, dim: 16, layers: 1, heads: 1, dropout: 0.1}}
loss: {{uniform_negatives: 16}}
optim: {{lr: 0.003}}
train: {{epochs: 4, batch_size: 32, eval_every: 1, patience: null}}
"""


def test_a_killed_run_continued_by_the_benchmark_ends_as_the_uninterrupted_run(tmp_path: Path) -> None:
    """End to end, real training processes: kill a run after its second evaluation, let train_one continue it."""
    from argusrec.data.simulator import SimulationConfig
    from argusrec.recipes.data import simulate

    data = tmp_path / "data"
    simulate(SimulationConfig(n_events=12_000, seed=2, n_items=150), data, latent=False, progress=False)
    preset = tmp_path / "tiny.yaml"
    preset.write_text(TINY.format(data=data))
    kw = {"epochs": 4, "eval_every": 1, "threads": 1, "device": "cpu", "limit": None}
    whole = training_runs.train_one(tmp_path / "a", "tiny-s0", data, str(preset), [], 0, **kw)

    run_dir = tmp_path / "b" / "runs" / "tiny-s0-1"
    overrides = training_runs.run_overrides(str(preset), [], data, 0, epochs=4, eval_every=1, threads=1, device="cpu")
    spec = json.dumps({"preset": str(preset), "overrides": overrides, "run_dir": str(run_dir)})
    proc = subprocess.Popen([sys.executable, training_runs.__file__, "--child", spec], stdout=subprocess.DEVNULL)
    try:
        metrics = run_dir / "metrics.csv"
        while not metrics.exists() or len(metrics.read_text().splitlines()) < 3:  # header + 2 evaluations
            assert proc.poll() is None, "the run ended before it could be interrupted"
            time.sleep(0.01)
    finally:
        proc.kill()
        proc.wait()
    continued = training_runs.train_one(tmp_path / "b", "tiny-s0", data, str(preset), [], 0, **kw)
    assert continued.continued is not None and 1 <= continued.continued["epoch"] < 4
    assert continued.summary["epochs_run"] == whole.summary["epochs_run"] == 4
    for k, v in whole.metrics.items():
        if k.startswith(("valid/", "test/")):
            assert continued.metrics[k] == v, k
    assert continued.curve == whole.curve
    assert not run_dir.exists()
    # both record the config the training process wrote (its kept copy under logs/), the same for both
    (kept,) = (tmp_path / "a" / "logs").glob("tiny-s0-*/config.yaml")
    assert whole.config_sha1 == continued.config_sha1 == training_runs.config_sha1(kept.read_text())


def test_a_tuning_run_of_exactly_the_run_due_is_adopted_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    grid = ["train.ema_decay=0.999"]  # the grid entry that won and is now part of the preset

    def overrides(extra: list[str]) -> list[str]:
        return training_runs.run_overrides(PRESET, extra, tmp_path, 1, epochs=5, eval_every=1, threads=1, device="cpu")

    def sha(extra: list[str]) -> str:  # what train_one records: the resolved config the run trained with
        return training_runs.config_sha1(load_config(PRESET, overrides(extra)).to_yaml())

    tuned = overrides(grid)
    base = {
        "benchmark": "tune_presets",
        "dataset": "ml-100k",
        "model": "sasrec",
        "seed": 1,
        "metrics": {"test/NDCG@10": 0.11},
        "seconds": 90.0,
        "commit": "abc1234",
        "preset": PRESET,
        "preset_digest": "0ld0ld00",
        "overrides": tuned,
        "config_sha1": sha(grid),
        "grid": "sasrec-hparams",
        "label": "ema",
        "grid_overrides": grid,
        "applied": grid,
        "dropped": [],
        "ran_on": "cpu (1 cores)",
        "stopped_early": True,
        "stopped_by_time_limit": False,
        "run_limit_s": 9000.0,
        "note_run": "two runs at a time",
    }
    records = [
        base,
        base | {"seed": 2, "commit": "seed2"},
        base | {"metrics": {}, "commit": "failed"},
        base | {"ran_on": "NVIDIA H100, 1 runs sharing it", "commit": "gpu"},
        base | {"seconds": 700.0, "commit": "long"},  # longer than a 600 s limit would have let it run
        base | {"stopped_by_time_limit": True, "commit": "cut"},  # its limit ended it
        base | {"code_before": "f00d123", "commit": "oldcode"},  # marked as run by model code changed since
        # the same overrides on the preset as it was then, with another learning rate: today's file would give
        # the config due, but the run trained another one
        base | {"config_sha1": sha([*grid, "optim.lr=0.01"]), "commit": "oldpreset"},
        base | {"overrides": overrides(["model.dropout=0.3"]), "config_sha1": sha(["model.dropout=0.3"])},
        base | {"commit": "nosha", "config_sha1": None},  # written before records held it
    ]
    monkeypatch.setattr(loo, "read_results", lambda bench: records if bench == "tune_presets" else [])
    due = load_config(PRESET, tuned).to_yaml()  # the preset with the entry, as the benchmark would run it
    rec = loo.tuned_run("ml-100k", "sasrec", 1, "cpu", due, 600.0)
    assert rec is not None and rec["commit"] == "abc1234" and rec["metrics"] == base["metrics"]
    assert rec["benchmark"] == "leave_one_out" and rec["seconds"] == 90.0 and "label" not in rec
    assert "run_limit_s" not in rec  # the sweep's limit, kept under adopted_from
    assert rec["adopted_from"] == {"benchmark": "tune_presets"} | {k: base[k] for k in loo.TUNING_KEYS}
    assert loo.how_it_ended(rec) == "early stop, tuning run"
    unlimited = loo.tuned_run("ml-100k", "sasrec", 1, "cpu", due, None)
    assert unlimited is not None and unlimited["commit"] == "long"
    gpu = loo.tuned_run("ml-100k", "sasrec", 1, "gpu", due, None)
    assert gpu is not None and gpu["commit"] == "gpu"
    assert loo.tuned_run("ml-100k", "sasrec", 0, "cpu", due, None) is None  # no tuning run of that seed
    assert loo.tuned_run("ml-100k", "sasrec", 1, "cpu", load_config(PRESET, overrides([])).to_yaml(), None) is None


def test_the_benchmark_records_an_adopted_run_without_training_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import argparse

    preset, extra = loo.preset_for("sasrec", "ml-100k")
    args = argparse.Namespace(
        workdir=str(tmp_path), device="cpu", threads=1, run_limit=600.0, max_epochs=200, time_budget=float("inf"),
        adopt_tuned=True, jobs=1,
    )  # fmt: skip
    cap = min(200, load_config(preset, [f"data.path={tmp_path}"]).train.epochs)
    due = training_runs.run_overrides(preset, extra, tmp_path, 0, epochs=cap, eval_every=2, threads=1, device="cpu")
    grid = ["train.ema_decay=0.99"]
    tuning = {
        "dataset": "ml-100k",
        "model": "sasrec",
        "seed": 0,
        "metrics": {"test/NDCG@10": 0.12},
        "seconds": 50.0,
        "commit": "abc1234",
        "preset": preset,
        "overrides": [*grid, *due],  # the preset, the winning entry, then what the benchmark gives every run
        "config_sha1": training_runs.config_sha1(load_config(preset, [*grid, *due]).to_yaml()),
        "grid": "g",
        "label": "ema",
        "ran_on": "cpu (1 cores)",
    }
    monkeypatch.setattr(loo, "read_results", lambda bench: [tuning] if bench == "tune_presets" else [])

    def no_training(*a: object, **k: object) -> None:
        raise AssertionError("trained")

    monkeypatch.setattr(loo, "train_one", no_training)
    runner = loo.Runner(args, [])
    # the preset as it is now does not hold the entry: nothing to adopt, so the run is trained
    with pytest.raises(AssertionError, match="trained"):
        runner.ours("ml-100k", tmp_path, "sasrec", 0)
    monkeypatch.setattr(loo, "preset_for", lambda m, d: (preset, [*grid, *extra]))  # the entry made part of it
    rec = runner.ours("ml-100k", tmp_path, "sasrec", 0)
    assert rec["metrics"] == tuning["metrics"] and rec["commit"] == "abc1234" and rec["epochs_cap"] == cap
    assert rec["overrides"] == [*grid, *due] and rec["adopted_from"]["label"] == "ema"
    assert rec["preset_digest"] == loo.preset_digest("sasrec", "ml-100k")


@pytest.mark.parametrize("bench", ["leave_one_out", "tune_presets"])
def test_a_runs_note_goes_on_the_records_of_that_invocation_only(
    bench: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tune_presets as tp

    module = loo if bench == "leave_one_out" else tp
    older = {"dataset": "ml-100k", "model": "sasrec", "seed": 5, "label": "preset", "grid_overrides": []}
    older |= {"metrics": {"valid/NDCG@10": 0.1}, "ran_on": "cpu (1 cores)"}  # written earlier, without a note
    written: dict[str, list[dict]] = {}
    monkeypatch.setattr(module, "read_results", lambda b, keep=True: [older] if b == bench and keep else [])

    def write(b: str, records: list[dict]) -> list[dict]:
        written.update(records=records)
        return records

    monkeypatch.setattr(module, "write_results", write)
    monkeypatch.setattr(module, "write_section", lambda b, text: None)
    monkeypatch.setattr(module, "markdown", lambda records: "")  # the tables have their own tests
    monkeypatch.setattr(tp, "print_best", lambda records: None)
    monkeypatch.setattr(loo, "prepare", lambda work, dataset: tmp_path)
    monkeypatch.setattr(loo, "SHARED", tmp_path)
    for holder in (loo, training_runs):  # no signal handlers in pytest
        monkeypatch.setattr(holder, "stop_children_on_exit", lambda: None)
    argv = [bench, "--datasets", "ml-100k", "--models", "sasrec", "--seeds", "0", "--resume", "--note", "beside CI"]
    argv += ["--deadline", "0", "--workdir", str(tmp_path), "--shared", str(tmp_path)]  # past its deadline: not run
    if module is tp:
        argv += ["--labels", tp.GRIDS["recipe"][0][0]]
    monkeypatch.setattr(sys, "argv", argv)
    module.main()
    records = written["records"]
    assert records[0] is older and "note_run" not in older  # not this invocation's conditions
    assert len(records) == 2 and "not run" in records[1]["note"] and records[1]["note_run"] == "beside CI"


def test_a_run_stopped_at_its_limit_logs_its_peak_memory_as_unknown_not_nan() -> None:
    assert training_runs._peak_text(float("nan")) == (
        "peak RSS unknown (the training process was stopped at its time limit)"
    )
    assert training_runs._peak_text(1234.4) == "peak 1234 MB"
