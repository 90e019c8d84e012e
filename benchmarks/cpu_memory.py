"""Resident memory of CPU training with and without handing freed heap memory back (``train.release_memory_every``).

A CPU training process whose batches change shape from step to step (length-bucketed histories, as the
BSARec presets use) keeps the memory it frees in glibc's heap, so its resident size grows far above its
live tensors. ``train.release_memory_every: N`` calls ``malloc_trim(0)`` every N optimizer steps
(argusrec.training.device.release_freed_memory). This benchmark trains a preset for ``--steps`` optimizer
steps once per setting, each in its own process (training_runs.train_one: training, then the usual
full-catalog evaluation), over ``--rounds`` rounds whose order alternates, and records the process's peak
RSS and the training throughput inside the optimizer steps (the trim calls included).

    python benchmarks/cpu_memory.py --dataset beauty --preset bsarec-beauty --steps 600 --rounds 2 \\
        --threads 1 --workdir /tmp/argusrec-bench-loo
    python benchmarks/cpu_memory.py --render-only

Writes benchmarks/results/cpu_memory.json and the ``cpu_memory`` section of docs/benchmarks.md. Needs
../shared/data (or the dataset already prepared under ``--workdir``); without it, says so and exits.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import leave_one_out as loo
import training_runs
from report import ROOT, read_results, record, write_results, write_section

sys.path.insert(1, str(ROOT))

BENCH = "cpu_memory"
NEVER = "null"  # train.release_memory_every: never, the behaviour before the option existed


def _paired_with(r: dict) -> str:
    """The N whose rounds a run belongs to (the first records, of N = 50 only, did not store it)."""
    return r.get("paired_with") or ("50" if r["release_memory_every"] == NEVER else r["release_memory_every"])


def _key(r: dict) -> tuple:
    return (
        r["dataset"],
        r["preset"],
        r["hardware"],
        r["commit"],
        _paired_with(r),
        r["release_memory_every"],
        r["round"],
    )


def markdown(records: list[dict]) -> str:
    """Per (dataset, preset, hardware, commit, N): the rounds of "never" and "every N" side by side, and the
    medians of the per-round ratios."""
    lines = [
        "## CPU training memory: freed heap memory handed back (`benchmarks/cpu_memory.py`)",
        "",
        "Peak resident memory of a training process (training for a fixed number of optimizer steps, then the",
        "full-catalog evaluation, as leave-one-out runs do) without and with `train.release_memory_every: N`",
        "(glibc `malloc_trim(0)` every N steps), each in its own process, alternating which goes first.",
        "Throughput = training targets per second inside the optimizer steps, the trim calls included.",
        "",
    ]
    if not records:
        return "\n".join([*lines, "No results yet."])
    groups: dict[tuple, list[dict]] = {}
    for r in records:
        groups.setdefault((r["dataset"], r["preset"], r["hardware"], r["commit"], _paired_with(r)), []).append(r)
    for (dataset, preset, hw, commit, every), rows in groups.items():
        first = rows[0]
        lines += [
            f"### {dataset}, preset {preset}, commit {commit}, {first['steps']} steps, {first['threads']} thread(s), "
            f"every {every} steps",
            "",
            f"Hardware: {hw}; {first['date']}." + (f" Conditions: {first['note']}" if first.get("note") else ""),
            "",
            f"| round | first | peak RSS never / every {every} (MB) | targets/s never / every {every} | RSS ratio | "
            "speed ratio |",
            "|---:|---|---|---|---:|---:|",
        ]
        rss, speed = [], []
        for k in sorted({r["round"] for r in rows}):
            side = {r["release_memory_every"]: r for r in rows if r["round"] == k}
            if set(side) != {NEVER, every}:
                continue
            never, trim = side[NEVER]["metrics"], side[every]["metrics"]
            rss.append(trim["peak_rss_mb"] / never["peak_rss_mb"])
            speed.append(trim["events_per_s"] / never["events_per_s"])
            went_first = "never" if side[NEVER]["order"] == 0 else f"every {every}"
            lines.append(
                f"| {k} | {went_first} | {never['peak_rss_mb']:,.0f} / {trim['peak_rss_mb']:,.0f} | "
                f"{never['events_per_s']:,.0f} / {trim['events_per_s']:,.0f} | {rss[-1]:.2f}x | {speed[-1]:.2f}x |"
            )
        if rss:
            lines += [
                "",
                f"Median over {len(rss)} round(s): peak RSS **{statistics.median(rss):.2f}x**, training throughput "
                f"**{statistics.median(speed):.2f}x** (every {every} / never).",
                "",
            ]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="beauty", choices=sorted(loo.DATASETS))
    ap.add_argument("--preset", default="bsarec-beauty", help="a preset whose data path the dataset replaces")
    ap.add_argument("--steps", type=int, default=600, help="optimizer steps per run")
    ap.add_argument("--every", type=int, default=50, help="the N of train.release_memory_every compared with never")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--first-round", type=int, default=0, help="number of the first round (to add rounds later)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workdir", default="/tmp/argusrec-bench-loo", help="prepared datasets and run directories")
    ap.add_argument("--note", default="", help="run conditions (how busy the machine was)")
    ap.add_argument("--render-only", action="store_true")
    args = ap.parse_args()
    records = read_results(BENCH)
    if args.render_only:
        write_section(BENCH, markdown(records))
        return
    work = Path(args.workdir)
    data = loo.prepare(work, args.dataset)
    if data is None:
        print(f"skipped: {loo.SHARED} is absent (the public datasets) and {work / args.dataset} is not prepared")
        return
    for k in range(args.first_round, args.first_round + args.rounds):
        settings = (NEVER, str(args.every))
        order = settings if k % 2 == 0 else settings[::-1]
        for position, every in enumerate(order):
            t0 = time.perf_counter()
            run = training_runs.train_one(
                work,
                f"memory-{args.preset}-{every}",
                data,
                args.preset,
                [f"train.max_steps={args.steps}", f"train.release_memory_every={every}"],
                args.seed,
                epochs=1000,
                eval_every=1000,
                threads=args.threads,
                device="cpu",
                limit=None,
            )
            m = {"events_per_s": run.metrics["events_per_s"], "peak_rss_mb": run.metrics["peak_rss_mb"]}
            print(f"round {k} every={every}: {m['events_per_s']:,.0f} targets/s, peak {m['peak_rss_mb']:,.0f} MB")
            rec = record(
                BENCH,
                args.dataset,
                args.preset,
                m,
                time.perf_counter() - t0,
                seed=args.seed,
                preset=args.preset,
                release_memory_every=every,
                paired_with=str(args.every),
                round=k,
                order=position,
                steps=args.steps,
                threads=args.threads,
                note=args.note,
                loadavg_1min=os.getloadavg()[0],
                load=run.load,
            )
            records = write_results(BENCH, [*records, rec], key=_key)  # a rerun at the same commit replaces
    write_section(BENCH, markdown(records))


if __name__ == "__main__":
    main()
