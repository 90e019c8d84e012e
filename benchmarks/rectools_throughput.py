"""Training throughput: our SASRec against RecTools' SASRecModel, same configuration, data and machine.

Both train the configuration of our SASRec preset for the dataset (``sasrec-beauty``: dim 256, 1 block, 1 head,
dropout 0.2, 256 uniform negatives drawn for every position, dot-product logits, batch 128, lr 1e-3,
history 50) on the leave-one-out training events of the dataset, for ``--steps`` optimizer steps, each in
its own process, one after the other; over ``--rounds`` rounds the side that goes first alternates, so
that a change in how busy the machine is falls on both. RecTools runs from its own virtual environment
(benchmarks/rectools_sasrec.py ``--max-steps``).

Throughput = training targets per second inside the optimizer steps (forward, loss, backward, optimizer
step; building the batch excluded): argusrec's training loop counts it that way, and rectools_sasrec.py's
step timer counts RecTools' the same way (its non-padding labels over the time from a batch's arrival to
the end of its step). Two differences stay, both to RecTools' advantage: it samples the negatives in its
data loader (outside the timed step; ours draws them inside), and it pads every batch to the full history
length while ours pads to the batch's longest history (with randomly mixed batches, close to the full
length). Peak RSS: ours includes the final full-catalog evaluation, RecTools' run recommends nothing.

    python benchmarks/rectools_throughput.py --dataset beauty --steps 40 --rounds 2 --threads 1 \\
        --workdir /tmp/argusrec-bench-loo
    python benchmarks/rectools_throughput.py --render-only

Writes benchmarks/results/rectools_throughput.json and the ``rectools_throughput`` section of
docs/benchmarks.md. Needs ../shared/data (or the dataset already prepared under ``--workdir``) and a
RecTools environment (``--rectools-python``); without them it says so and exits.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import leave_one_out as loo
import training_runs
from report import ROOT, read_results, record, write_results, write_section

sys.path.insert(1, str(ROOT))

BENCH = "rectools_throughput"
SIDES = ("sasrec", "rectools-sasrec")  # ours, theirs


def run_ours(work: Path, data: Path, preset: str, steps: int, seed: int, threads: int) -> tuple[dict, dict]:
    """Our preset for ``steps`` optimizer steps (training_runs.train_one: its own process, then evaluated):
    (metrics, extra record fields)."""
    from argusrec.config import load_config

    cfg = load_config(preset, [f"data.path={data}"])
    run = training_runs.train_one(
        work,
        f"throughput-{preset}-s{seed}",
        data,
        preset,
        [f"train.max_steps={steps}"],
        seed,
        epochs=cfg.train.epochs,
        eval_every=cfg.train.eval_every,
        threads=threads,
        device="cpu",
        limit=None,
    )
    return {"events_per_s": run.metrics["events_per_s"], "peak_rss_mb": run.metrics["peak_rss_mb"]}, {"load": run.load}


def run_theirs(
    python: str, work: Path, data: Path, preset: str, steps: int, seed: int, threads: int
) -> tuple[dict, dict]:
    """RecTools' SASRecModel with our preset's sizes, negatives and optimiser, for ``steps`` steps:
    (metrics, extra record fields)."""
    from argusrec.config import load_config

    cfg = load_config(preset, [f"data.path={data}"])
    out = work / "rectools" / f"throughput-{preset}-s{seed}"
    shutil.rmtree(out, ignore_errors=True)
    cmd = loo.rectools_command(python, cfg, data, out, seed=seed, threads=threads)
    _, peak, _, load = training_runs.measured([*cmd, "--epochs", "1", "--max-steps", str(steps)])
    info = json.loads((out / "summary.json").read_text())
    shutil.rmtree(out, ignore_errors=True)
    if info["step_targets"] == 0 or info["step_seconds"] <= 0:
        raise RuntimeError(f"RecTools' step timer saw no steps: {info}")
    metrics = {"events_per_s": info["step_targets"] / info["step_seconds"], "peak_rss_mb": peak}
    return metrics, {"load": load, "library": info["library"], "torch": info["torch"]}


def _key(r: dict) -> tuple:
    return (r["dataset"], r["preset_digest"], r["hardware"], r["commit"], r["model"], r["round"])


def markdown(records: list[dict]) -> str:
    """The benchmark's section of docs/benchmarks.md: per (dataset, preset version, hardware, commit), the
    rounds side by side and the median of the per-round ratios."""
    lines = [
        "## Training throughput against RecTools' SASRec (`benchmarks/rectools_throughput.py`)",
        "",
        "Same configuration (one of our presets, passed to RecTools' SASRecModel: sizes, loss, negatives, batch,",
        "learning rate), same training events, same machine and thread count, each side in its own process,",
        "alternating which goes first. Training targets per second inside the optimizer steps, batch building",
        "excluded, counted the same way on both sides; RecTools samples its negatives outside the timed step and",
        "ours inside. Ratio = ours / RecTools within a round (the two runs were back to back).",
        "",
    ]
    if not records:
        return "\n".join([*lines, "No results yet."])
    groups: dict[tuple, list[dict]] = {}
    for r in records:
        groups.setdefault((r["dataset"], r["preset"], r["preset_digest"], r["hardware"], r["commit"]), []).append(r)
    for (dataset, preset, digest, hw, _), rows in groups.items():
        rounds = sorted({r["round"] for r in rows})
        first = rows[0]
        lines += [
            f"### {dataset}, preset {preset} ({digest}), commit {first['commit']}, {first['steps']} steps, "
            f"{first['threads']} thread(s)",
            "",
            f"Hardware: {hw}; {first['date']}." + (f" Conditions: {first['note']}" if first.get("note") else ""),
            "",
            "| round | first | ours targets/s | RecTools targets/s | ours / RecTools | peak RSS ours / RecTools (MB) |",
            "|---:|---|---:|---:|---:|---|",
        ]
        ratios = []
        for k in rounds:
            side = {r["model"]: r for r in rows if r["round"] == k}
            if set(side) != set(SIDES):
                continue
            o, t = side["sasrec"]["metrics"], side["rectools-sasrec"]["metrics"]
            ratios.append(o["events_per_s"] / t["events_per_s"])
            went_first = "ours" if side["sasrec"]["order"] == 0 else "RecTools"
            lines.append(
                f"| {k} | {went_first} | {o['events_per_s']:,.0f} | {t['events_per_s']:,.0f} | {ratios[-1]:.2f}x | "
                f"{o['peak_rss_mb']:,.0f} / {t['peak_rss_mb']:,.0f} |"
            )
        if ratios:
            lines += ["", f"Median ratio over {len(ratios)} round(s): **{statistics.median(ratios):.2f}x**.", ""]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="beauty", choices=sorted(loo.DATASETS))
    ap.add_argument("--steps", type=int, default=40, help="optimizer steps per run")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1, help="torch threads of each side")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workdir", default="/tmp/argusrec-bench-loo", help="prepared datasets")
    ap.add_argument("--rectools-python", default="/work/rectools-venv/bin/python", help="python of a RecTools venv")
    ap.add_argument("--note", default="", help="run conditions (how busy the machine was)")
    ap.add_argument("--render-only", action="store_true")
    args = ap.parse_args()
    records = read_results(BENCH)
    if args.render_only:
        write_section(BENCH, markdown(records))
        return
    if not Path(args.rectools_python).exists():
        print(f"skipped: no RecTools environment at {args.rectools_python}")
        return
    work = Path(args.workdir)
    data = loo.prepare(work, args.dataset)
    if data is None:
        print(f"skipped: {loo.SHARED} is absent (the public datasets) and {work / args.dataset} is not prepared")
        return
    preset, digest = loo.preset_for("sasrec", args.dataset)[0], loo.preset_digest("sasrec", args.dataset)
    for k in range(args.rounds):
        order = SIDES if k % 2 == 0 else SIDES[::-1]
        for position, side in enumerate(order):
            t0 = time.perf_counter()
            if side == "sasrec":
                m, extra = run_ours(work, data, preset, args.steps, args.seed, args.threads)
            else:
                m, extra = run_theirs(args.rectools_python, work, data, preset, args.steps, args.seed, args.threads)
            print(f"round {k} {side}: {m['events_per_s']:,.0f} targets/s, peak {m['peak_rss_mb']:,.0f} MB", flush=True)
            rec = record(
                BENCH,
                args.dataset,
                side,
                m,
                time.perf_counter() - t0,
                seed=args.seed,
                preset=preset,
                preset_digest=digest,
                round=k,
                order=position,
                steps=args.steps,
                threads=args.threads,
                note=args.note,
                loadavg_1min=os.getloadavg()[0],
                **extra,
            )
            # one table per commit (code changes show as separate tables); a rerun at the same commit replaces
            records = write_results(BENCH, [*records, rec], key=_key)
    write_section(BENCH, markdown(records))


if __name__ == "__main__":
    main()
