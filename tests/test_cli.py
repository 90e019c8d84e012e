"""The `argusrec` command: real entry point, exit codes and messages."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pyarrow as pa

from argusrec.data.adapters.base import EventSource
from argusrec.data.build import build_store
from argusrec.data.schema import DatasetSchema
from tests.conftest import need_shared


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "argusrec.cli", *args], capture_output=True, text=True, timeout=300)


def test_describe_prints_a_summary_and_json(tmp_path: Path) -> None:
    def read():
        yield "x", pa.record_batch({"user_id": [1, 2], "item_id": [3, 4], "timestamp": [5, 6]})

    build_store(EventSource(name="x", schema=DatasetSchema(), read=read), tmp_path / "ds", progress=False)
    r = run("data", "describe", str(tmp_path / "ds"))
    assert r.returncode == 0, r.stderr
    assert "users        2" in r.stdout
    r = run("data", "describe", str(tmp_path / "ds"), "--json")
    assert json.loads(r.stdout)["events"] == 2


def test_user_errors_exit_2_with_a_message_not_a_traceback(tmp_path: Path) -> None:
    r = run("data", "describe", str(tmp_path))
    assert r.returncode == 2
    assert "not a prepared dataset" in r.stderr and "Traceback" not in r.stderr
    r = run("data", "prepare", "--source", "nosuch", "--input", str(tmp_path), "--output", str(tmp_path / "o"))
    assert r.returncode == 2 and "unknown source 'nosuch'" in r.stderr
    r = run("data", "prepare", "--source", "movielens", "--input", str(tmp_path / "missing"), "--output", "o")
    assert r.returncode == 2 and "no such file or directory" in r.stderr


def _describe_json(path: Path) -> dict:
    r = run("data", "describe", str(path), "--json")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_prepare_ml100k_reports_the_published_counts(tmp_path: Path) -> None:
    src = need_shared("ml-100k", "u.data").parent
    r = run("data", "prepare", "--source", "movielens", "--input", str(src), "--output", str(tmp_path / "ml"))
    assert r.returncode == 0, r.stderr
    assert "943 users, 1,682 items, 100,000 events" in r.stdout
    s = _describe_json(tmp_path / "ml")
    assert (s["users"], s["items"], s["events"]) == (943, 1682, 100_000)
    assert s["columns"]["like"]["kind"] == "binary"


def test_prepare_beauty_reports_the_published_counts(tmp_path: Path) -> None:
    src = need_shared("amazon-s3rec", "Beauty.txt")
    r = run("data", "prepare", "--source", "amazon", "--input", str(src), "--output", str(tmp_path / "b"))
    assert r.returncode == 0, r.stderr
    assert "22,363 users, 12,101 items, 198,502 events" in r.stdout


def test_prepare_generic_csv_with_flags_and_rejects(tmp_path: Path) -> None:
    log = tmp_path / "log.csv"
    log.write_text(
        "uid;song;ts;place;liked\n"
        "a;s1;1700000000000;feed;1\n"
        "a;s2;1700000001000;search;0\n"
        "b;s1;not-a-time;feed;1\n"
        "b;s3;1700000002000;feed;0\n"
        "b;s3;1700000002000;feed;0\n"
    )
    out = tmp_path / "ds"
    r = run(
        "data", "prepare", "--source", "generic", "--input", str(log), "--output", str(out),
        "--column", "user_id=uid", "--column", "item_id=song", "--column", "timestamp=ts",
        "--timestamp-unit", "ms", "--column", "surface=place", "--context", "surface",
        "--column", "like=liked", "--feedback", "like:binary", "--rejects", str(tmp_path / "rej.csv"),
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "2 users, 3 items, 3 events" in r.stdout
    assert "skipped 2 of 5 input rows (bad_timestamp: 1, duplicate_event: 1)" in r.stdout
    rejected = (tmp_path / "rej.csv").read_text()
    assert ',4,"bad_timestamp' in rejected and ',6,"duplicate_event"' in rejected
    s = _describe_json(out)
    assert s["time"]["min"] == 1_700_000_000 and s["columns"]["surface"]["values"] == 2
    r = run(
        "data",
        "prepare",
        "--source",
        "generic",
        "--input",
        str(log),
        "--output",
        str(tmp_path / "strict"),
        "--column",
        "user_id=uid",
        "--column",
        "item_id=song",
        "--column",
        "timestamp=ts",
        "--strict",
    )
    assert r.returncode == 2 and "log.csv, line 4" in r.stderr and "Traceback" not in r.stderr


def test_generic_flags_are_refused_for_other_sources(tmp_path: Path) -> None:
    r = run(
        "data",
        "prepare",
        "--source",
        "amazon",
        "--input",
        str(tmp_path),
        "--output",
        str(tmp_path / "o"),
        "--context",
        "x",
    )
    assert r.returncode == 2 and "apply to --source generic only" in r.stderr


def _row(stdout: str, metric: str) -> list[str]:
    """The values of a metrics-table row."""
    return next(line.split()[1:] for line in stdout.splitlines() if line.split()[:1] == [metric])


def test_quickstart_simulates_pretrains_and_evaluates(tmp_path: Path) -> None:
    out, run_dir = tmp_path / "qs", tmp_path / "qs" / "run"
    r = run(
        "quickstart",
        "--output",
        str(out),
        "--events",
        "10000",
        "--epochs",
        "1",
        "--finetune-epochs",
        "1",
        "--no-progress",
    )
    assert r.returncode == 0, r.stderr
    # steps 4-5: fine-tuning (two-tower PairAccuracy next to popularity and oracle) and the final rankers
    assert "4/5 fine-tuning a two-tower pairwise ranker" in r.stdout and "5/5 final ranker" in r.stdout
    two_tower, pop_pa, oracle_pa = map(float, _row(r.stdout, "test/PairAccuracy"))
    assert 0 <= two_tower <= 1 and 0 <= pop_pa <= 1 and oracle_pa > 0.6  # true affinities order pairs well
    assert len(_row(r.stdout, "ranker+argus")) == 3 and "relative PairAccuracy gain of the ARGUS feature" in r.stdout
    assert (out / "finetune" / "metrics.json").is_file() and (out / "finetune" / "rank").is_dir()
    assert "10,000 events" in r.stdout and "context: surface, device; feedback: played_ratio, skip, like" in r.stdout
    header = next(line.split() for line in r.stdout.splitlines() if line.startswith("metric "))
    assert header == ["metric", "model", "popularity", "oracle"]
    model, popularity, oracle = map(float, _row(r.stdout, "test/NIP_loss"))
    assert 0 < oracle < popularity  # the true probabilities beat item frequencies
    assert model > 0
    like_auc = [float(v) for v in _row(r.stdout, "test/FP_AUC/like")]
    assert like_auc[2] > max(like_auc[1], 0.6)  # oracle above popularity and well above chance
    assert _row(r.stdout, "test/NDCG@10_positive")[1:] == ["-", "-"]  # no reference has it: the columns say so
    for metric in ("test/NDCG@10_positive", "test/FP_NE/like", "test/FP_AUC/played_ratio"):
        assert 0 <= float(_row(r.stdout, metric)[0]) < 10, metric
    assert "training events/s" in r.stdout and "wall time " in r.stdout
    assert f"run directory: {run_dir}" in r.stdout and f"argusrec evaluate {run_dir}" in r.stdout
    for name in ("metrics.json", "model_card.md", "checkpoints/best.pt", "config.yaml"):
        assert (run_dir / name).is_file(), name
    assert json.loads((run_dir / "metrics.json").read_text())["epochs_run"] == 1
    s = _describe_json(out / "data")
    assert s["events"] == 10_000 and s["columns"]["request_id"]["requests"] > 0
    assert (out / "data" / "latent").is_dir()  # ground truth for oracle scores is kept

    e = run("evaluate", str(run_dir), "--device", "cpu")
    assert e.returncode == 0, e.stderr
    assert "checkpoints/best.pt" in e.stdout
    assert _row(e.stdout, "test/NIP_loss")[0] == f"{model:.4f}"  # the table printed by the quickstart

    (out / "run").mkdir(exist_ok=True)
    (out / "run" / "notes.txt").write_text("mine")
    (out / "run" / "run.json").unlink()
    r = run("quickstart", "--output", str(out), "--events", "1000", "--epochs", "1", "--no-progress")
    assert r.returncode == 2 and "is not a run directory" in r.stderr  # never deletes what it did not write
