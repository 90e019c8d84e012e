"""Shared by every benchmark: the record format, hardware and commit, and writing JSON + markdown.

Records follow ../shared/DESIGN.md: ``{"benchmark", "dataset", "model", "seed", "metrics", "seconds",
"hardware", "commit"}``. Each benchmark owns one section of docs/benchmarks.md, delimited by
``<!-- name:start -->`` / ``<!-- name:end -->``, and rewrites only that section.

Results files are shared by the processes of a benchmark that run at the same time (several trainings, or a run
from a copy of the tree with ``ARGUSREC_RESULTS_DIR`` pointing at the checkout's ``benchmarks/results``):
:func:`write_results` merges what this process added and removed since its :func:`read_results` into the file as
it is now, under a lock, so no process writes back a copy that lacks another's records.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import platform
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(os.environ.get("ARGUSREC_RESULTS_DIR") or ROOT / "benchmarks" / "results")
DOC = ROOT / "docs" / "benchmarks.md"


def cpu_label(cpuinfo: str) -> str:
    """The first CPU's model name from /proc/cpuinfo text, with its family/model/stepping numbers when the name
    carries no model number (a virtual machine's "AMD EPYC" names several generations, whose speeds differ ~2x)."""
    fields: dict[str, str] = {}
    for line in cpuinfo.splitlines():
        if not line.strip():
            break  # the first processor's block only
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    name = fields.get("model name", "")
    if not name or any(ch.isdigit() for ch in name):
        return name
    numbered = (("cpu family", "family"), ("model", "model"), ("stepping", "stepping"))
    ids = [f"{label} {fields[key]}" for key, label in numbered if key in fields]
    return f"{name} ({', '.join(ids)})" if ids else name


def hardware() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        cpu = cpu_label(Path("/proc/cpuinfo").read_text()) or cpu
    except OSError:
        pass
    mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{cpu}, {os.cpu_count()} cores, {mem_gb:.0f} GiB RAM, {platform.system()}"


def commit() -> str:
    """The checkout's short commit (+dirty when argusrec/ has changes); ARGUSREC_COMMIT when set.

    Set ARGUSREC_COMMIT on a GPU machine: its copy of the working tree may carry a stale or no .git.
    """
    if os.environ.get("ARGUSREC_COMMIT"):
        return os.environ["ARGUSREC_COMMIT"]
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "argusrec"], cwd=ROOT, capture_output=True, text=True)
        if not sha.stdout.strip():  # no git here (a copied tree): say so rather than record nothing
            return "unknown (no git; set ARGUSREC_COMMIT)"
        return sha.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except OSError:
        return "unknown"


def record(
    benchmark: str,
    dataset: str,
    model: str,
    metrics: dict[str, Any],
    seconds: float,
    seed: int | None = None,
    **extra: Any,
) -> dict[str, Any]:
    return {
        "benchmark": benchmark,
        "dataset": dataset,
        "model": model,
        "seed": seed,
        "metrics": metrics,
        "seconds": round(seconds, 3),
        "hardware": hardware(),
        "commit": commit(),
        "date": today(),
        **extra,
    }


_SEEN: dict[str, Counter[str]] = {}  # per results file: the records this process last read or wrote (canonical JSON)


def _canon(record: dict[str, Any]) -> str:
    return json.dumps(record, sort_keys=True)


@contextlib.contextmanager
def _locked(benchmark: str) -> Iterator[Path]:
    RESULTS.mkdir(parents=True, exist_ok=True)
    with open(RESULTS / f".{benchmark}.json.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield RESULTS / f"{benchmark}.json"


def _load(path: Path) -> list[dict[str, Any]]:
    return json.loads(path.read_text()) if path.exists() else []


def read_results(benchmark: str, keep: bool = True) -> list[dict[str, Any]]:
    """The records of benchmarks/results/<benchmark>.json ([] when there are none yet).

    The first read is this process's view, against which :func:`write_results` works out what the process changed;
    later reads only look (a look must not make a record the process never held count as one it removed).
    ``keep=False``: a run that starts over (no ``--resume``) gets [] yet still takes the file as its view, so its
    first write removes the records it did not keep.
    """
    with _locked(benchmark) as path:
        records = _load(path)
    _SEEN.setdefault(str(path), Counter(_canon(r) for r in records))
    return records if keep else []


def stamp_note(records: list[dict[str, Any]], note: str) -> None:
    """Set every record's run-conditions note (``--render-only --note``: describe runs after the fact)."""
    if note:
        for r in records:
            r["note_run"] = note


def write_results(
    benchmark: str, records: list[dict[str, Any]], key: Callable[[dict[str, Any]], Any] | None = None
) -> list[dict[str, Any]]:
    """Write this process's ``records`` into the results file, merged with what other processes wrote meanwhile.

    Relative to this process's view (its last read or write): records it no longer holds are removed from the
    file, records it added are appended (an identical record is never stored twice), and every other record in the
    file -- another process's -- is kept. ``key``: for benchmarks with one record per key, an added record also
    replaces the file's records of its key, so a caller adds a result by appending it to its records. Returns the
    file's records as written (the new view).
    """
    mine = [(_canon(r), r) for r in records]  # each record serialised once
    counts = Counter(c for c, _ in mine)
    with _locked(benchmark) as path:
        seen = _SEEN.get(str(path), Counter())
        removed, added = seen - counts, counts - seen
        kept = []
        for r in _load(path):
            c = _canon(r)
            if removed[c] > 0:
                removed[c] -= 1
            else:
                kept.append((c, r))
        new = []
        for c, r in mine:
            if added[c] > 0:
                added[c] -= 1
                new.append((c, r))
        if key is not None:
            # a placeholder without metrics (not run, skipped) never replaces a result another process wrote
            measured = {key(r) for _, r in kept if r.get("metrics")}
            new = [(c, r) for c, r in new if r.get("metrics") or key(r) not in measured]
            replaced = {key(r) for _, r in new}
            kept = [(c, r) for c, r in kept if key(r) not in replaced]
        present = {c for c, _ in kept}
        for c, r in new:
            if c not in present:
                kept.append((c, r))
                present.add(c)
        merged = [r for _, r in kept]
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(merged, indent=2) + "\n")
        os.replace(tmp, path)
        _SEEN[str(path)] = Counter(c for c, _ in kept)
    return merged


def write_section(benchmark: str, markdown: str) -> None:
    """Replace (or append) this benchmark's section of docs/benchmarks.md.

    Benchmarks running at the same time each rewrite their own section: the read-modify-write holds an
    exclusive lock on a file next to the document, so one benchmark never writes back a copy that lacks
    another's fresh section.
    """
    start, end = f"<!-- {benchmark}:start -->", f"<!-- {benchmark}:end -->"
    DOC.parent.mkdir(parents=True, exist_ok=True)
    with open(DOC.parent / ".benchmarks.md.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        text = (
            DOC.read_text()
            if DOC.exists()
            else "# Benchmarks\n\nEvery table is generated from benchmarks/results/*.json.\n"
        )
        block = f"{start}\n{markdown.strip()}\n{end}"
        if start in text and end in text:
            text = text[: text.index(start)] + block + text[text.index(end) + len(end) :]
        else:
            text = text.rstrip() + "\n\n" + block + "\n"
        tmp = DOC.with_suffix(".md.tmp")
        tmp.write_text(text)
        os.replace(tmp, DOC)


def today() -> str:
    return time.strftime("%Y-%m-%d")
