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
