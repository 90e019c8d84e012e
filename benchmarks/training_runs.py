"""A benchmark's training runs: each in its own process, measured, locked, and continued after an interruption.

:func:`train_one` trains a preset with the benchmark's overrides (:func:`run_overrides`) in a child process of
this file (``--child``), measures its wall clock, peak RSS and CPU load (:func:`measured`), stops it at a
wall-clock limit and then evaluates its best checkpoint (``--child-eval``). The run directory is locked
(:func:`own`) by the benchmark and the training process for as long as either lives; a directory that a dead
benchmark left behind is continued from its last checkpoint (:func:`interrupted_run`). Used by
leave_one_out.py, tune_presets.py and the benchmarks that train through them.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import commit

#: The ranking metrics a run's record keeps (valid/ and test/ of each).
METRICS = ["HR@10", "NDCG@10", "HR@50", "NDCG@50", "MRR"]


#: Process groups of the commands :func:`measured` is running (each in its own session, so a signal to the
#: benchmark does not reach them): :func:`stop_children_on_exit` kills them when the benchmark is stopped.
_RUNNING: set[int] = set()


def add_run_options(ap: argparse.ArgumentParser, *, shared: Path, device_help: str = "cpu | cuda") -> None:
    """The options every benchmark that trains through :func:`train_one` takes: where and how its runs train,
    their limits, and what it does with its results file."""
    ap.add_argument("--device", default="cpu", help=device_help)
    ap.add_argument("--jobs", type=int, default=1, help="training runs at a time (several small runs share a GPU)")
    ap.add_argument("--threads", type=int, default=2, help="train.num_threads")
    ap.add_argument(
        "--run-limit",
        type=float,
        default=None,
        help="seconds; a run still training then is stopped and its best checkpoint evaluated",
    )
    ap.add_argument("--deadline", type=float, default=float("inf"), help="minutes; runs not started by then: not run")
    ap.add_argument("--workdir", default="/tmp/argusrec-bench-loo", help="prepared datasets and run directories")
    ap.add_argument("--shared", default=str(shared), help="folder of the public datasets (../shared/data)")
    ap.add_argument("--resume", action="store_true", help="keep the JSON's records and run only what is missing")
    ap.add_argument("--note", default="", help="a sentence about the run's conditions, stored with the results")
    ap.add_argument("--render-only", action="store_true", help="rewrite docs/benchmarks.md from the JSON; run nothing")


def stop_children_on_exit() -> None:
    """On SIGTERM or SIGINT kill every command :func:`measured` started, then exit (any thread may be waiting)."""

    def stop(signum: int, _frame: object) -> None:
        for group in list(_RUNNING):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group, signal.SIGKILL)
        os._exit(128 + signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)


def measured(
    args: list[str], timeout: float | None = None, keep_fd: int | None = None
) -> tuple[float, float, str, dict]:
    """Run a command; return (wall seconds, peak RSS in MB, stdout, load); raises on failure.

    ``load``: the command's CPU seconds and the 1-minute load average before and after it -- the machine
    may be shared, and a load above the thread count means the wall-clock throughput was contended.
    With ``timeout`` the command and everything it started are killed after that many seconds
    (:class:`subprocess.TimeoutExpired`). ``keep_fd``: a file descriptor the command's wrapper process inherits
    (a run directory's lock, :func:`own`).
    """
    load0 = os.getloadavg()[0]
    wrapper = (
        "import resource, subprocess, sys, json, time; t=time.perf_counter();"
        "r = subprocess.run(sys.argv[1:], capture_output=True, text=True);"
        "u = resource.getrusage(resource.RUSAGE_CHILDREN);"
        "print(json.dumps({'rc': r.returncode, 'out': r.stdout, 'err': r.stderr[-3000:],"
        " 'peak_mb': u.ru_maxrss / 1024, 'cpu_s': u.ru_utime + u.ru_stime, 'seconds': time.perf_counter() - t}))"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", wrapper, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group: a timeout kills the training process too
        pass_fds=() if keep_fd is None else (keep_fd,),
    )
    _RUNNING.add(proc.pid)
    try:
        stdout, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise
    finally:
        _RUNNING.discard(proc.pid)
    info = json.loads(stdout)
    if info["rc"] != 0:
        raise RuntimeError(f"status {info['rc']}:\n{info['err']}")
    load = {"cpu_seconds": round(info["cpu_s"], 1), "loadavg_1min": [round(load0, 2), round(os.getloadavg()[0], 2)]}
    return info["seconds"], info["peak_mb"], info["out"], load


def _peak_text(peak_mb: float) -> str:
    """The log's peak-memory words: a killed training process leaves no resource usage to read."""
    if math.isnan(peak_mb):
        return "peak RSS unknown (the training process was stopped at its time limit)"
    return f"peak {peak_mb:.0f} MB"


def child(spec: str) -> None:
    """Inside the training process: load the config, train, print the summary as JSON."""
    from argusrec.config import load_config
    from argusrec.recipes.train import train

    s = json.loads(spec)
    summary = train(load_config(s["preset"], s["overrides"]), run_dir=s["run_dir"], progress=False)
    print("SUMMARY " + json.dumps(summary))


def child_eval(spec: str) -> None:
    """Inside a process: a run killed at its wall-clock limit -> its best checkpoint's valid + test metrics.

    The summary has the shape ``train`` returns: epochs run = evaluations written to metrics.csv (the run
    validates every epoch when it can be cut short), best epoch = the best valid/NDCG@10 among them, throughput =
    the mean of train_log.csv's windows (NaN if none was written).
    """
    import csv

    from argusrec.config import load_config
    from argusrec.data.store import SequenceStore
    from argusrec.eval.protocols import evaluate_popularity
    from argusrec.recipes.evaluate import evaluate_run
    from argusrec.recipes.train import make_split

    s = json.loads(spec)
    run_dir = Path(s["run_dir"])
    evals = list(csv.DictReader((run_dir / "metrics.csv").open())) if (run_dir / "metrics.csv").exists() else []
    if not evals:
        raise RuntimeError("the run was stopped before its first evaluation (no best checkpoint)")
    logs = list(csv.DictReader((run_dir / "train_log.csv").open())) if (run_dir / "train_log.csv").exists() else []
    tps = [float(r["targets_per_s"]) for r in logs if r.get("targets_per_s")]
    metrics = evaluate_run(run_dir, device=s["device"])["metrics"]
    metrics["events_per_s"] = float(np.mean(tps)) if tps else float("nan")
    config = load_config(run_dir / "config.yaml")
    store = SequenceStore.open(config.data.path)
    split = make_split(store, config)
    pop = evaluate_popularity(store, split, "test", ks=config.eval.ks, filter_history=config.eval.filter_history)
    best = max(evals, key=lambda r: float(r["valid/NDCG@10"]))
    summary = {
        "metrics": metrics,
        "popularity_baseline": pop,
        "epochs_run": int(evals[-1]["epoch"]) + 1,
        "best_epoch": int(best["epoch"]),
        "stopped_early": False,
        "train_seconds": float("nan"),
    }
    print("SUMMARY " + json.dumps(summary))


@dataclass
class Trained:
    """One training run's outcome (:func:`train_one`)."""

    summary: dict  # what ``train`` (or ``child_eval`` for a run cut at its limit) returned
    metrics: dict  # the valid/test METRICS, events_per_s and peak_rss_mb
    popularity: dict  # the most-popular baseline's METRICS on the same test targets
    overrides: list[str]  # every override the run was given (extra + data + train.*)
    seconds: float  # wall clock of the training process (the limit when it was cut there)
    peak_mb: float  # peak RSS (NaN when cut at the limit)
    load: dict  # measured()'s CPU seconds and load averages
    limited: bool  # stopped at its wall-clock limit, its best checkpoint evaluated
    curve: list  # [epoch, valid/NDCG@10] of every evaluation (:func:`valid_curve`)
    continued: dict | None = None  # the interrupted run this one continued (:func:`interrupted_run`), if any
    config_sha1: str = ""  # of the resolved config.yaml the run trained with (:func:`config_sha1`)


def config_sha1(config_yaml: str) -> str:
    """The SHA-1 of a resolved config's YAML: two runs with the same one trained the same configuration."""
    return hashlib.sha1(config_yaml.encode()).hexdigest()


def valid_curve(metrics_csv: Path) -> list[list[float]]:
    """[[epoch, valid/NDCG@10], ...] of a run's metrics.csv (empty without one): kept in its record, so that runs
    of two variants can be compared epoch by epoch after their run directories are gone."""
    import csv

    if not metrics_csv.exists():
        return []
    rows = csv.DictReader(metrics_csv.open())
    return [[int(r["epoch"]), round(float(r["valid/NDCG@10"]), 5)] for r in rows if r.get("valid/NDCG@10")]


#: In a benchmark's run directory: locked (``flock``) by the benchmark and the training process it started, for
#: as long as either lives, and holding the commit that started the run (see :func:`interrupted_run`).
LOCK = "benchmark.lock"


def own(run_dir: Path) -> IO[str] | None:
    """Lock ``run_dir`` for this process (None: a live process holds it) and write this commit into the lock.

    The lock is the open file returned: it lasts while it stays open here or in a process it was passed to
    (:func:`measured`'s ``keep_fd``), so a training process orphaned by a killed benchmark still holds it.
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    f = (run_dir / LOCK).open("a+")
    if not _try_lock(f):
        f.close()
        return None
    f.seek(0)
    f.truncate()
    f.write(json.dumps({"pid": os.getpid(), "commit": commit()}))
    f.flush()
    return f


def held(run_dir: Path) -> bool:
    """Whether a live process holds ``run_dir``'s lock (:func:`own`); the lock is tried, not kept."""
    if not (run_dir / LOCK).exists():
        return False
    with (run_dir / LOCK).open("a") as f:
        return not _try_lock(f)  # a lock taken here is released as the file closes


def _try_lock(f: IO[str]) -> bool:
    """Take the exclusive ``flock`` of the open file ``f`` without waiting; False if another process holds it."""
    import fcntl

    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def interrupted_run(work: Path, tag: str, config_yaml: str) -> tuple[Path, dict, IO[str]] | None:
    """The newest run directory of ``tag`` that an earlier benchmark process left behind, locked to continue it.

    A run directory survives only when its benchmark died before the run finished (a finished run's directory
    is removed, a failed continuation's renamed): such a directory with a ``checkpoints/last.pt`` and exactly
    the config this run would write is continued from that checkpoint instead of started again -- training
    resumes exactly (weights, optimizer, data order, RNG states), so the model is the one the uninterrupted
    run would have given. A directory still locked by a live process (:data:`LOCK`) is left alone. Returns
    ``(run_dir, progress, lock)``: progress = the checkpoint's epoch, step and training wall seconds, and the
    commit that started the run (None when older code did); or None.
    """
    from argusrec.errors import ArgusrecError
    from argusrec.training.checkpoint import load_checkpoint

    def ns(d: Path) -> int:
        tail = d.name.rsplit("-", 1)[-1]
        return int(tail) if tail.isdigit() else -1

    for d in sorted((work / "runs").glob(f"{tag}-[0-9]*"), key=ns, reverse=True):
        if d.name != f"{tag}-{ns(d)}":  # another tag's run (``<tag>-1-<ns>``) or a failed continuation
            continue
        if not (d / "checkpoints" / "last.pt").is_file():
            if not held(d):  # (a run in progress may not have written its first checkpoint yet)
                print(f"  not continuing {d.name}: no checkpoints/last.pt (left on disk)", flush=True)
            continue
        if not (d / "config.yaml").exists() or (d / "config.yaml").read_text() != config_yaml:
            print(f"  not continuing {d.name}: its config.yaml is not this run's (left on disk)", flush=True)
            continue
        try:
            started = json.loads((d / LOCK).read_text()).get("commit") if (d / LOCK).exists() else None
        except ValueError:  # a lock file written halfway
            started = None
        lock = own(d)
        if lock is None:  # a run in progress
            continue
        try:
            progress = load_checkpoint(d / "checkpoints" / "last.pt", kind="last", mmap=True)["progress"]
        except ArgusrecError as e:  # a truncated last.pt: start afresh rather than fail
            print(f"  not continuing {d.name}: {e} (left on disk)", flush=True)
            lock.close()
            continue
        return d, {k: progress[k] for k in ("epoch", "step", "seconds")} | {"commit": started}, lock
    return None


def run_overrides(
    preset: str, extra: list[str], data: Path, seed: int, *, epochs: int, eval_every: int, threads: int, device: str
) -> list[str]:
    """Every override a benchmark run of ``preset`` is given: ``extra``, then the data, epochs, seed, device and
    validation schedule (:func:`train_one`)."""
    from argusrec.config import load_config

    preset_cfg = load_config(preset, [*extra, f"data.path={data}"])
    patience = preset_cfg.train.patience
    return [
        *extra,
        f"data.path={data}",
        f"train.epochs={epochs}",
        f"train.seed={seed}",
        f"train.num_threads={threads}",
        f"train.device={device}",
        # Short capped runs validate every epoch, so that early stopping and model selection see them all.
        f"train.eval_every={eval_every}",
        "train.log_every=10",  # throughput of runs cut at their time limit comes from these windows
        # Early stopping keeps the preset's patience counted in epochs, whatever eval_every is.
        "train.patience="
        + ("null" if patience is None else str(max(1, patience * preset_cfg.train.eval_every // eval_every))),
    ]


def train_one(
    work: Path,
    tag: str,
    data: Path,
    preset: str,
    extra: list[str],
    seed: int,
    *,
    epochs: int,
    eval_every: int,
    threads: int,
    device: str,
    limit: float | None,
) -> Trained:
    """Train ``preset`` + ``extra`` overrides on the prepared dataset ``data`` once, in its own process.

    Early stopping keeps the preset's patience counted in epochs whatever ``eval_every`` is. With ``limit``
    (seconds) a run still training then is killed and its best checkpoint evaluated (:func:`child_eval`).
    The run directory ``<work>/runs/<tag>-<ns>`` is removed afterwards; its small logs are kept under
    ``<work>/logs/``. A directory left by an earlier benchmark process that died mid-run (the same tag and
    config) is continued from its last checkpoint (:func:`interrupted_run`): ``limit`` then counts the
    training seconds it had already spent at that checkpoint, and the returned seconds include them; one whose
    limit had passed is only evaluated. A continuation that fails is renamed ``<dir>.failed`` (not continued
    again).
    """
    from argusrec.config import load_config

    overrides = run_overrides(
        preset, extra, data, seed, epochs=epochs, eval_every=eval_every, threads=threads, device=device
    )
    config_yaml = load_config(preset, overrides).to_yaml()
    found = interrupted_run(work, tag, config_yaml)
    continued: dict | None = None
    if found:
        run_dir, continued, lock = found
        print(
            f"  continuing {run_dir.name} from epoch {continued['epoch']} ({continued['seconds']:.0f} s trained)",
            flush=True,
        )
    else:
        run_dir = work / "runs" / f"{tag}-{time.time_ns()}"
        new = own(run_dir)
        assert new is not None  # a new directory
        lock = new
    before = continued["seconds"] if continued else 0.0
    spec = json.dumps({"preset": preset, "overrides": overrides, "run_dir": str(run_dir)})
    script = str(Path(__file__).resolve())  # this file: --child / --child-eval
    espec = json.dumps({"run_dir": str(run_dir), "device": device})
    limited = limit is not None and before >= limit  # continued after its limit had passed: evaluate only
    try:
        with lock:
            if limited:
                sec, peak = before, float("nan")
                _, _, out, load = measured([sys.executable, script, "--child-eval", espec], keep_fd=lock.fileno())
            else:
                try:
                    timeout = None if limit is None else limit - before
                    sec, peak, out, load = measured(
                        [sys.executable, script, "--child", spec], timeout=timeout, keep_fd=lock.fileno()
                    )
                    sec += before
                except subprocess.TimeoutExpired:  # wall-clock limit: evaluate the best checkpoint it has written
                    limited = True
                    _, _, out, load = measured([sys.executable, script, "--child-eval", espec], keep_fd=lock.fileno())
                    sec, peak = float(limit or 0), float("nan")
    except Exception:
        if continued:  # not continued again by the next start: that run trains afresh
            run_dir.rename(run_dir.with_name(run_dir.name + ".failed"))
        raise
    summary = json.loads(next(line for line in out.splitlines() if line.startswith("SUMMARY "))[8:])
    m = summary["metrics"]
    keep = {k: m[k] for k in m if k.split("/")[-1] in METRICS}
    keep |= {"events_per_s": m["events_per_s"], "peak_rss_mb": peak}
    pop = {k: v for k, v in summary["popularity_baseline"].items() if k.split("/")[-1] in METRICS}
    print(
        f"  test NDCG@10 {m['test/NDCG@10']:.4f} HR@10 {m['test/HR@10']:.4f} | valid NDCG@10 "
        f"{m['valid/NDCG@10']:.4f} | epochs {summary['epochs_run']}/{epochs} best {summary['best_epoch']} | "
        f"{m['events_per_s']:,.0f} targets/s | {sec:.0f} s{' (time limit)' if limited else ''}, {_peak_text(peak)}",
        flush=True,
    )
    logs = work / "logs" / run_dir.name  # keep the small logs, drop the checkpoints
    logs.mkdir(parents=True, exist_ok=True)
    for name in ("train_log.csv", "metrics.csv", "config.yaml"):
        if (run_dir / name).exists():
            shutil.copy(run_dir / name, logs / name)
    shutil.rmtree(run_dir, ignore_errors=True)
    curve = valid_curve(logs / "metrics.csv")
    return Trained(summary, keep, pop, overrides, sec, peak, load, limited, curve, continued, config_sha1(config_yaml))


def main() -> None:
    ap = argparse.ArgumentParser(description="the training process of a benchmark run (started by train_one)")
    ap.add_argument("--child", help="JSON: preset, overrides, run_dir -> train, print the summary")
    ap.add_argument("--child-eval", help="JSON: run_dir, device -> evaluate the best checkpoint, print the summary")
    args = ap.parse_args()
    if args.child:
        child(args.child)
    elif args.child_eval:
        child_eval(args.child_eval)
    else:
        ap.error("give --child or --child-eval")


if __name__ == "__main__":
    main()
