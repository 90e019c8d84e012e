"""Data pipeline benchmark: simulate and prepare N events; events/s and peak memory of each step.

Each step runs as its own process (the real ``argusrec`` CLI), timed by wall clock, with its peak
resident memory read from the kernel (``os.wait4``). The reference, measured in the same run on the
same file: polars reading the raw Parquet log and sorting it by (user, timestamp) in memory — what a
user would write without an out-of-core builder.

    python benchmarks/data_pipeline.py --sizes 10M,100M          # the issue's sizes
    python benchmarks/data_pipeline.py --sizes 1M --no-real      # a quick check

Writes benchmarks/results/data_pipeline.json and its section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import ROOT, read_results, record, stamp_note, write_results, write_section

BENCH = "data_pipeline"
REFERENCE = "reference-polars-inmemory-sort"
SHARED = ROOT.parent / "shared" / "data"
REAL = [  # (dataset name, source, path under ../shared/data)
    ("ml-100k", "movielens", "ml-100k"),
    ("ml-latest-small", "movielens", "ml-latest-small"),
    ("beauty", "amazon", "amazon-s3rec/Beauty.txt"),
    ("sports", "amazon", "amazon-s3rec/Sports_and_Outdoors.txt"),
]
GENERIC_FLAGS = [
    *("--column user_id=user_id --column item_id=item_id --column timestamp=timestamp".split()),
    *("--context surface --context device --request-id request_id --timestamp-unit s".split()),
    *("--feedback played_ratio:continuous --feedback skip:binary --feedback like:binary".split()),
    *("--feedback dislike:binary".split()),
]


def measured(args: list[str]) -> tuple[float, float, str]:
    """Run a command; return (wall seconds, peak RSS in MB, stdout).

    The command runs under a tiny wrapper process whose RUSAGE_CHILDREN peak is exactly the command's own.
    """
    wrapper = (
        "import resource, subprocess, sys, json, time; t=time.perf_counter();"
        "r = subprocess.run(sys.argv[1:], capture_output=True, text=True);"
        "u = resource.getrusage(resource.RUSAGE_CHILDREN);"
        "print(json.dumps({'rc': r.returncode, 'out': r.stdout, 'err': r.stderr[-3000:],"
        " 'peak_mb': u.ru_maxrss / 1024, 'seconds': time.perf_counter() - t}))"
    )
    res = subprocess.run([sys.executable, "-c", wrapper, *args], capture_output=True, text=True)
    info = json.loads(res.stdout)
    if info["rc"] != 0:
        raise StepFailed(f"step failed with status {info['rc']} ({' '.join(args)}):\n{info['err']}")
    return info["seconds"], info["peak_mb"], info["out"]


class StepFailed(RuntimeError):
    pass


def reference(records: list[dict], tag: str, size: int, raw: Path) -> None:
    """polars: read the raw log and sort it in memory; skipped when its projected peak exceeds the RAM."""
    print(f"[{tag}] reference: polars read + sort in memory", flush=True)
    earlier = [r for r in records if r["model"] == REFERENCE and "peak_rss_mb" in r["metrics"]]
    ram_mb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**20
    if earlier:
        projected = earlier[-1]["metrics"]["peak_rss_mb"] * size / earlier[-1]["events"]
        if projected > 0.8 * ram_mb:
            note = (
                f"not run: projected peak {projected / 1024:.0f} GB (linear from {earlier[-1]['dataset']}) > 80% of RAM"
            )
            print(f"  {note}", flush=True)
            records.append(record(BENCH, tag, REFERENCE, {}, 0.0, events=size, note=note))
            return
    code = (
        "import polars as pl, sys; df = pl.read_parquet(sys.argv[1]);"
        "df = df.sort(['user_id', 'timestamp'], maintain_order=True); print(df.height)"
    )
    try:
        sec, peak, _ = measured([sys.executable, "-c", code, str(raw)])
    except StepFailed as e:
        print(f"  failed: {e}", flush=True)
        records.append(record(BENCH, tag, REFERENCE, {}, 0.0, events=size, note=f"failed: {str(e)[-300:]}"))
        return
    print(f"  {sec:.1f} s, peak {peak:.0f} MB", flush=True)
    records.append(record(BENCH, tag, REFERENCE, {"events_per_s": size / sec, "peak_rss_mb": peak}, sec, events=size))


def parse_size(text: str) -> int:
    text = text.strip().upper()
    mult = {"K": 10**3, "M": 10**6, "G": 10**9}.get(text[-1], 1)
    return int(float(text.rstrip("KMG")) * mult)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="10M,100M", help="comma-separated event counts, e.g. 1M,10M,100M")
    ap.add_argument("--workdir", default="/tmp/argusrec-bench", help="scratch space (needs ~100 bytes/event)")
    ap.add_argument("--no-real", action="store_true", help="skip the real datasets in ../shared/data")
    ap.add_argument("--no-reference", action="store_true", help="skip the polars in-memory reference")
    ap.add_argument("--note", default="", help="a sentence about the run's conditions, stored with the results")
    ap.add_argument("--render-only", action="store_true", help="rewrite docs/benchmarks.md from the JSON; run nothing")
    args = ap.parse_args()
    if args.render_only:
        records = read_results(BENCH)
        stamp_note(records, args.note)
        write_results(BENCH, records)
        write_section(BENCH, markdown(records))
        return
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    cli = [sys.executable, "-m", "argusrec.cli"]
    records = read_results(BENCH, keep=False)  # a full run replaces every earlier record

    for size in [parse_size(s) for s in args.sizes.split(",")]:
        tag = f"simulated-{size // 10**6}M" if size >= 10**6 else f"simulated-{size}"
        sim, raw, prep = work / f"{tag}-sim", work / f"{tag}.parquet", work / f"{tag}-prep"
        for p in (sim, prep):
            shutil.rmtree(p, ignore_errors=True)
        print(f"[{tag}] simulate", flush=True)
        sec, peak, out = measured(
            [
                *cli,
                "data",
                "simulate",
                "--events",
                str(size),
                "--seed",
                "0",
                "--output",
                str(sim),
                "--raw",
                str(raw),
                "--no-progress",
            ]
        )
        print(out.strip(), f"\n  {sec:.1f} s, peak {peak:.0f} MB", flush=True)
        records.append(
            record(
                BENCH,
                tag,
                "simulate",
                {"events_per_s": size / sec, "peak_rss_mb": peak},
                sec,
                seed=0,
                events=size,
                note="simulate + build store + write raw Parquet log",
            )
        )
        print(f"[{tag}] prepare --source generic (raw Parquet log)", flush=True)
        sec, peak, out = measured(
            [
                *cli,
                "data",
                "prepare",
                "--source",
                "generic",
                "--input",
                str(raw),
                "--output",
                str(prep),
                *GENERIC_FLAGS,
                "--no-progress",
            ]
        )
        print(out.strip(), f"\n  {sec:.1f} s, peak {peak:.0f} MB", flush=True)
        records.append(
            record(
                BENCH,
                tag,
                "prepare",
                {"events_per_s": size / sec, "peak_rss_mb": peak},
                sec,
                events=size,
                raw_bytes=raw.stat().st_size,
            )
        )
        if not args.no_reference:
            reference(records, tag, size, raw)
        for p in (sim, prep):
            shutil.rmtree(p, ignore_errors=True)
        raw.unlink(missing_ok=True)

    if not args.no_real and SHARED.is_dir():
        for name, source, rel in REAL:
            path = SHARED / rel
            if not path.exists():
                continue
            out_dir = work / f"real-{name}"
            shutil.rmtree(out_dir, ignore_errors=True)
            sec, peak, out = measured(
                [
                    *cli,
                    "data",
                    "prepare",
                    "--source",
                    source,
                    "--input",
                    str(path),
                    "--output",
                    str(out_dir),
                    "--no-progress",
                ]
            )
            summary = json.loads(
                subprocess.run(
                    [*cli, "data", "describe", str(out_dir), "--json"], capture_output=True, text=True, check=True
                ).stdout
            )
            print(f"[{name}] {out.strip()}  ({sec:.1f} s, peak {peak:.0f} MB)", flush=True)
            metrics = {
                "users": summary["users"],
                "items": summary["items"],
                "events": summary["events"],
                "events_per_s": summary["events"] / sec,
                "peak_rss_mb": peak,
            }
            records.append(record(BENCH, name, "prepare", metrics, sec))
            shutil.rmtree(out_dir, ignore_errors=True)

    for r in records:
        r["note_run"] = args.note
    write_results(BENCH, records)
    write_section(BENCH, markdown(records))
    print(f"wrote benchmarks/results/{BENCH}.json and docs/benchmarks.md")


def markdown(records: list[dict]) -> str:
    lines = [
        "## Data pipeline (`benchmarks/data_pipeline.py`)",
        "",
        f"Measured {records[0].get('date', '(date not recorded)')} on {records[0]['hardware']}, "
        f"commit {records[0]['commit']}. "
        "Wall-clock time of the whole CLI",
        "process (start-up included), peak RSS from the kernel. `prepare` reads the simulator's raw",
        "Parquet log with the generic adapter (4 feedback, 2 context columns and request ids; the",
        "simulator's truth columns are not re-imported). Targets: >= 1M events/s through `prepare` and",
        "< 4 GB peak at 100M events. The reference is polars reading the same Parquet file and sorting",
        "it by (user, timestamp) in memory, in the same run.",
        "",
        *([f"Run conditions: {records[0]['note_run']}", ""] if records and records[0].get("note_run") else []),
        "| dataset | step | events | seconds | events/s | peak RSS (MB) | vs reference |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    refs = {r["dataset"]: r for r in records if r["model"] == REFERENCE and r["metrics"]}
    for r in records:
        m = r["metrics"]
        if not m:
            lines.append(f"| {r['dataset']} | {r['model']} | {r['events']:,} | — | — | — | {r['note']} |")
            continue
        events = r.get("events") or m.get("events")
        ratio = ""
        ref = refs.get(r["dataset"])
        if ref and r["model"] == "prepare":
            rm = ref["metrics"]
            ratio = (
                f"{m['events_per_s'] / rm['events_per_s']:.2f}x speed, "
                f"{m['peak_rss_mb'] / rm['peak_rss_mb']:.2f}x memory"
            )
        lines.append(
            f"| {r['dataset']} | {r['model']} | {events:,} | {r['seconds']:.1f} | {m['events_per_s']:,.0f} | "
            f"{m['peak_rss_mb']:,.0f} | {ratio} |"
        )
    real = [r for r in records if not r["dataset"].startswith("simulated")]
    if real:
        lines += [
            "",
            "Real datasets (../shared/data) prepared with their adapters:",
            "",
            "| dataset | users | items | events |",
            "|---|---:|---:|---:|",
        ]
        for r in real:
            m = r["metrics"]
            lines.append(f"| {r['dataset']} | {m['users']:,} | {m['items']:,} | {m['events']:,} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
