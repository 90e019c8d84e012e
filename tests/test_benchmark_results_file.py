"""Benchmark processes running at the same time share a results file without losing each other's records."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import report


@pytest.fixture
def results(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(report, "RESULTS", tmp_path)
    monkeypatch.setattr(report, "_SEEN", {})
    return tmp_path


def _rec(model: str, value: float) -> dict:
    return {"dataset": "d", "model": model, "metrics": {"x": value}}


def test_two_processes_keep_each_others_records(results: Path) -> None:
    """Each simulated process keeps its own view: report._SEEN is swapped in and out around its calls."""
    (results / "b.json").write_text(json.dumps([_rec("old", 1.0)]))
    a = report.read_results("b")
    view_a = dict(report._SEEN)
    b = report.read_results("b")
    view_b = dict(report._SEEN)

    report._SEEN = view_a
    report.write_results("b", [*a, _rec("from-a", 2.0)])
    view_a = dict(report._SEEN)
    report._SEEN = view_b
    merged = report.write_results("b", [*b, _rec("from-b", 3.0)])  # b never saw a's record
    assert [r["model"] for r in merged] == ["old", "from-a", "from-b"]
    assert json.loads((results / "b.json").read_text()) == merged


def test_a_process_removes_only_what_it_had_read_and_dropped(results: Path) -> None:
    (results / "b.json").write_text(json.dumps([_rec("placeholder", 0.0), _rec("kept", 1.0)]))
    mine = report.read_results("b")
    outside = [*json.loads((results / "b.json").read_text()), _rec("other-process", 5.0)]
    (results / "b.json").write_text(json.dumps(outside))
    merged = report.write_results("b", [mine[1], _rec("placeholder", 9.0)])  # the placeholder replaced by a result
    assert [(r["model"], r["metrics"]["x"]) for r in merged] == [
        ("kept", 1.0),
        ("other-process", 5.0),
        ("placeholder", 9.0),
    ]


def test_a_keyed_benchmark_keeps_one_record_per_key_and_never_duplicates(results: Path) -> None:
    (results / "b.json").write_text(json.dumps([_rec("m", 1.0)]))
    report._SEEN = {}  # a process that never read the file
    key = lambda r: (r["dataset"], r["model"])  # noqa: E731
    merged = report.write_results("b", [_rec("m", 2.0)], key=key)
    assert merged == [_rec("m", 2.0)]
    report._SEEN = {}
    assert report.write_results("b", [_rec("m", 2.0)]) == [_rec("m", 2.0)]  # identical: not stored twice


def test_the_results_folder_can_be_another_checkouts(tmp_path: Path) -> None:
    import subprocess

    code = "import sys; sys.path.insert(0, 'benchmarks'); import report; print(report.RESULTS)"
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True,
        env={"ARGUSREC_RESULTS_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}, check=True,
    )  # fmt: skip
    assert out.stdout.strip() == str(tmp_path)


def test_a_later_read_only_looks_and_never_costs_another_process_its_record(results: Path) -> None:
    (results / "b.json").write_text(json.dumps([_rec("old", 1.0)]))
    mine = report.read_results("b")
    (results / "b.json").write_text(json.dumps([_rec("old", 1.0), _rec("other-process", 5.0)]))
    assert len(report.read_results("b")) == 2  # e.g. another benchmark peeking at this file
    merged = report.write_results("b", [*mine, _rec("mine", 2.0)])
    assert [r["model"] for r in merged] == ["old", "other-process", "mine"]


def test_a_placeholder_never_replaces_a_result_another_process_wrote(results: Path) -> None:
    key = lambda r: (r["dataset"], r["model"])  # noqa: E731
    mine = report.read_results("b")  # empty
    (results / "b.json").write_text(json.dumps([_rec("m", 2.0)]))  # another process finished "m" meanwhile
    placeholder = {"dataset": "d", "model": "m", "metrics": {}, "not_run": "deadline"}
    merged = report.write_results("b", [*mine, placeholder], key=key)
    assert merged == [_rec("m", 2.0)]


def test_a_view_belongs_to_one_results_folder(results: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (results / "b.json").write_text(json.dumps([_rec("first-folder", 1.0)]))
    report.read_results("b")
    other = tmp_path / "other"
    other.mkdir()
    (other / "b.json").write_text(json.dumps([_rec("old", 1.0)]))
    monkeypatch.setattr(report, "RESULTS", other)
    report.read_results("b")
    assert report.write_results("b", [_rec("new", 2.0)]) == [_rec("new", 2.0)]  # a start-over in that folder


def test_a_keyed_caller_adds_a_result_by_appending_it(results: Path) -> None:
    (results / "b.json").write_text(json.dumps([_rec("m", 1.0), _rec("n", 1.0)]))
    mine = report.read_results("b")
    merged = report.write_results("b", [*mine, _rec("m", 2.0)], key=lambda r: (r["dataset"], r["model"]))
    assert merged == [_rec("n", 1.0), _rec("m", 2.0)]  # the rerun of m replaced its earlier record
    assert json.loads((results / "b.json").read_text()) == merged


def test_a_run_that_starts_over_replaces_what_the_file_held_then(results: Path) -> None:
    (results / "b.json").write_text(json.dumps([_rec("earlier", 1.0)]))
    assert report.read_results("b", keep=False) == []  # no --resume: nothing kept, yet the file is its view
    (results / "b.json").write_text(json.dumps([_rec("earlier", 1.0), _rec("other-process", 2.0)]))
    merged = report.write_results("b", [_rec("new", 3.0)])
    assert merged == [_rec("other-process", 2.0), _rec("new", 3.0)]  # what it never saw stays


_GENERIC = "processor\t: 0\ncpu family\t: 25\nmodel\t\t: 17\nmodel name\t: AMD EPYC\nstepping\t: 1\n\nprocessor\t: 1\n"


def test_cpu_label_numbers_a_generic_name() -> None:
    """Two generations of a virtual "AMD EPYC" differ ~2x in speed: the label carries family/model/stepping."""
    assert report.cpu_label(_GENERIC) == "AMD EPYC (family 25, model 17, stepping 1)"
    other = _GENERIC.replace("model\t\t: 17", "model\t\t: 1")
    assert report.cpu_label(other) != report.cpu_label(_GENERIC)


def test_cpu_label_keeps_a_numbered_name() -> None:
    info = "cpu family\t: 6\nmodel\t\t: 143\nmodel name\t: Intel(R) Xeon(R) Platinum 8480+\n"
    assert report.cpu_label(info) == "Intel(R) Xeon(R) Platinum 8480+"
    assert report.cpu_label("") == ""
