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


def test_quickstart_simulates_prepares_and_describes(tmp_path: Path) -> None:
    r = run("quickstart", "--output", str(tmp_path / "qs"), "--events", "20000", "--no-progress")
    assert r.returncode == 0, r.stderr
    assert "events       20,000" in r.stdout and "surface" in r.stdout and "like" in r.stdout
    s = _describe_json(tmp_path / "qs" / "data")
    assert s["events"] == 20_000 and s["columns"]["request_id"]["requests"] > 0
    assert (tmp_path / "qs" / "data" / "latent").is_dir()  # ground truth for oracle scores is kept
