"""ARGUS training throughput: full vs simplified, per preset, history length and batch (issue 5).

Each configuration (preset, variant, max_len, batch size) builds the preset's ARGUS model
(``build_argus_model`` from the preset's config with ``data.max_len`` and ``argus.variant`` overridden),
generates random batches in memory — no dataset — and times whole training steps: the ArgusTask loss
(sampled-softmax NIP with in-batch + uniform negatives and logQ, plus FP on two binary signals), backward,
gradient clipping, the AdamW step and the preset's lr schedule. After ``--warmup`` steps it reports the
median step time, events/s, tokens/s (full ARGUS runs 3 tokens per event) and peak memory
(``torch.cuda.max_memory_allocated`` on CUDA, the process's peak RSS on the CPU). CUDA runs use bf16
autocast (training/device.py) and, with ``--compile``, ``torch.compile``.

Synthetic batches: every row is a full history of ``max_len`` events (no padding), item ids uniform in
1..``--n-items`` (hashed into the preset's unified table), two context fields (``surface``: 8 codes,
``device``: 4), two binary feedback signals (``like``, 20% not observed, and ``skip``), increasing timestamps.
The batch size is ``--events-per-batch // max_len`` (at least 1) unless ``--batch-size`` fixes it, so that
lengths are compared at the same number of events per step.

Each configuration runs in its own process: peak memory is its own, a CUDA out-of-memory error cannot
leave memory behind, and a hung or slow configuration is killed at its time limit. Out of GPU memory, a
configuration is retried with activation checkpointing (``--checkpointing auto``, the default) and
recorded as OOM when that fails too. Configurations that no longer fit in ``--deadline`` minutes are
recorded as skipped. Results are written after every configuration.

    python benchmarks/argus_throughput.py --device cpu --presets argus-tiny,argus-3m --lengths 256 \\
        --events-per-batch 1024 --steps 5 --warmup 2
    python benchmarks/argus_throughput.py --device cuda --presets argus-3m,argus-30m,argus-300m,argus-1b \\
        --lengths 512,8192 --deadline 8
    python benchmarks/argus_throughput.py --render-only

Records are merged into ``--out`` (default benchmarks/results/argus_throughput.json): a new run replaces
only the records of the same hardware, device and configuration. The markdown section ``argus_throughput``
of docs/benchmarks.md is rendered from all of them.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import resource
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import RESULTS, ROOT, hardware, read_results, record, today, write_results, write_section

sys.path.insert(1, str(ROOT))  # argusrec from this checkout when it is not installed

BENCH = "argus_throughput"
DEFAULT_OUT = RESULTS / f"{BENCH}.json"
CONTEXT_VOCAB = {"surface": 8, "device": 4}  # codes 1..n
FEEDBACK = {"like": "binary", "skip": "binary"}
TOKENS_PER_EVENT = {"full": 3, "simplified": 1}
BYTES_PER_PARAM_TRAINING = 16  # fp32 weight + gradient + AdamW's two moments
RESULT_TAG = "ARGUS_THROUGHPUT_RESULT "


# ---------------------------------------------------------------------------------------------- worker
def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def _device_memory_mb(device: Any) -> float | None:
    import torch

    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).total_memory / 2**20
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**20


def synthetic_batch(b: int, n: int, n_items: int, device: Any, generator: Any) -> dict[str, Any]:
    """One random (B, N) batch of full histories (no padding), on ``device``."""
    import torch

    g = generator
    gaps = torch.randint(1, 3600, (b, n), generator=g)  # seconds between events
    batch = {
        "item_id": torch.randint(1, n_items + 1, (b, n), generator=g),
        "timestamp": 1_700_000_000 + gaps.cumsum(1),
        "mask": torch.ones(b, n, dtype=torch.bool),
        **{c: torch.randint(1, v + 1, (b, n), generator=g) for c, v in CONTEXT_VOCAB.items()},
        "like": torch.where(
            torch.rand(b, n, generator=g) < 0.2, float("nan"), (torch.rand(b, n, generator=g) < 0.3).float()
        ),
        "skip": (torch.rand(b, n, generator=g) < 0.5).float(),
    }
    return {k: v.to(device) for k, v in batch.items()}


def overrides(spec: dict[str, Any]) -> list[str]:
    """The config overrides of a configuration: its length and variant, then the run's ``--set`` ones."""
    out = [f"data.max_len={spec['max_len']}", f"argus.variant={spec['variant']}"]
    if spec.get("hash_buckets"):
        out.append(f"model.hash_buckets={spec['hash_buckets']}")
    return out + list(spec.get("overrides", []))


def measure(spec: dict[str, Any]) -> dict[str, Any]:
    """Build, warm up and time one configuration; returns metrics (raises torch.cuda.OutOfMemoryError)."""
    import torch

    from argusrec.config import load_config
    from argusrec.models.argus import transformer_parameters
    from argusrec.models.argus_task import ArgusTask
    from argusrec.models.builders import build_argus_model
    from argusrec.nn.attention import CausalSelfAttention, masked_causal_attention
    from argusrec.training.device import autocast
    from argusrec.training.optim import build_optimizer, build_scheduler, clip_gradients

    started = time.perf_counter()
    device = torch.device(spec["device"])
    cuda = device.type == "cuda"
    n, b, variant = spec["max_len"], spec["batch_size"], spec["variant"]
    config = load_config(spec["preset"], overrides(spec))
    torch.manual_seed(spec["seed"])
    with device:  # parameters are created on the device: no CPU copy of a 1B-parameter model
        model = build_argus_model(
            config.model,
            config.argus,
            vocab_sizes=CONTEXT_VOCAB,
            feedback_signals=FEEDBACK,
            n_items=spec["n_items"],
            max_len=n,
        )
    model.encoder.activation_checkpointing = spec["checkpointing"]
    if spec["attention"] == "masked":  # the explicit (N, N)-mask path, for comparison
        for module in model.modules():
            if isinstance(module, CausalSelfAttention):
                module.attention_fn = masked_causal_attention
    model.train()
    n_params = sum(p.numel() for p in model.parameters())
    task = ArgusTask(
        n_items=spec["n_items"],
        context_fields=list(CONTEXT_VOCAB),
        feedback_inputs=list(FEEDBACK),
        fp_kinds=FEEDBACK,
        uniform_negatives=config.loss.uniform_negatives,
        in_batch_negatives=config.loss.in_batch_negatives,
        item_freq=torch.ones(spec["n_items"] + 1, dtype=torch.float64, device=device),  # logQ's in-batch part
        logq=config.loss.logq,
        similarity=config.similarity,
        check_labels=False,  # the labels are made valid here; the check would sync the device every step
        seed=spec["seed"],
    )
    optimizer = build_optimizer(model, config.optim)
    # The preset's schedule (warm-up included) over a long horizon, as in a real run's first steps.
    scheduler = build_scheduler(optimizer, config.optim, total_steps=100_000)
    forward_model: torch.nn.Module = torch.compile(model) if spec["compile"] else model  # type: ignore[assignment]
    g = torch.Generator().manual_seed(spec["seed"])
    batches = [synthetic_batch(b, n, spec["n_items"], device, g) for _ in range(2)]
    bf16 = cuda and spec["bf16"]
    if cuda:
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    model_mb = torch.cuda.memory_allocated(device) / 2**20 if cuda else None
    losses: list[float] = []

    def step(i: int) -> float:
        t0 = time.perf_counter()
        with autocast(device, bf16):
            loss, _ = task.loss(forward_model, batches[i % len(batches)])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        clip_gradients(model.parameters(), config.optim.grad_clip)
        optimizer.step()
        scheduler.step()
        losses.append(float(loss.detach()))  # a host sync: the step is finished when this returns
        if cuda:
            torch.cuda.synchronize(device)
        return time.perf_counter() - t0

    warm = [step(i) for i in range(spec["warmup"])]
    times: list[float] = []
    budget_end = started + spec["time_budget_s"]
    while len(times) < spec["steps"]:
        times.append(step(spec["warmup"] + len(times)))
        if time.perf_counter() + statistics.median(times) > budget_end:
            break  # the next step would overrun this configuration's time budget
        if sum(times) > spec["max_timed_s"] and len(times) >= 3:
            break  # enough time measured for a stable median
    median = statistics.median(times)
    events = b * n
    metrics: dict[str, Any] = {
        "step_ms_median": round(1000 * median, 2),
        "step_ms_min": round(1000 * min(times), 2),
        "step_ms_max": round(1000 * max(times), 2),
        "events_per_s": round(events / median, 1),
        "tokens_per_s": round(events * TOKENS_PER_EVENT[variant] / median, 1),
        "steps_timed": len(times),
        "warmup_s": round(sum(warm), 2),
        "loss_first": round(losses[0], 4),
        "loss_last": round(losses[-1], 4),
        "finite_loss": all(math.isfinite(x) for x in losses),
        "params": n_params,
        "transformer_params": transformer_parameters(model),
        "item_table_params": sum(p.numel() for p in model.tokenizer.item.items.parameters()),
    }
    if cuda:
        metrics["peak_mem_mb"] = round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
        metrics["model_mem_mb"] = round(model_mb or 0.0, 1)
    else:
        metrics["peak_mem_mb"] = round(_peak_rss_mb(), 1)
        metrics["baseline_rss_mb"] = spec.get("baseline_rss_mb")
    return metrics


def worker(spec: dict[str, Any]) -> dict[str, Any]:
    """Run one configuration in this process; OOM on CUDA → retry with checkpointing (auto) or report OOM."""
    import torch

    if spec.get("threads"):
        torch.set_num_threads(spec["threads"])
    spec["baseline_rss_mb"] = round(_peak_rss_mb(), 1)
    mode = spec["checkpointing_mode"]
    attempts = [mode == "on"] if mode in ("on", "off") else [False, True]
    out: dict[str, Any] = {"status": "oom"}
    notes: list[str] = []
    for ckpt in attempts:
        spec["checkpointing"] = ckpt
        oom = False
        try:
            metrics = measure(spec)
            return {"status": "ok", "metrics": metrics, "checkpointing": ckpt, "notes": notes}
        except torch.cuda.OutOfMemoryError:
            oom = True  # leave the except block first: its traceback holds the frames that hold the tensors
        except RuntimeError as e:  # some kernels (cuBLAS workspaces...) report it as a plain RuntimeError
            if "out of memory" not in str(e):
                raise
            oom = True
        if oom:
            peak = torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else None
            notes.append(f"out of memory with activation checkpointing {'on' if ckpt else 'off'}")
            out = {"status": "oom", "checkpointing": ckpt, "notes": notes, "metrics": {"peak_mem_mb": peak}}
            gc.collect()
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats()
    return out


# ---------------------------------------------------------------------------------------------- driver
def config_key(r: dict[str, Any]) -> tuple[Any, ...]:
    return (
        r.get("hardware"),
        r.get("device"),
        r.get("preset"),
        r.get("variant"),
        r.get("max_len"),
        r.get("batch_size"),
        r.get("compile"),
        r.get("dtype"),
        tuple(r.get("overrides") or ()),
        r.get("attention", "packed"),
        r.get("checkpointing_mode", "auto"),
    )


def _default(path: Path) -> bool:
    """The checkout's results file (shared by concurrent processes), not a file elsewhere given by --out."""
    return path.resolve() == DEFAULT_OUT.resolve()


def load_records(path: Path) -> list[dict[str, Any]]:
    if _default(path):
        return read_results(BENCH)
    return json.loads(path.read_text()) if path.exists() else []


def save(path: Path, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Write the records; returns them as stored (the default file: merged with other processes' records)."""
    if _default(path):
        records = write_results(BENCH, records, key=config_key)
        write_section(BENCH, render(records))
        return records
    path.parent.mkdir(parents=True, exist_ok=True)  # results elsewhere (trials, other machines): the docs stay
    path.write_text(json.dumps(records, indent=2) + "\n")
    return records


def estimate_training_mb(spec: dict[str, Any]) -> tuple[int, float]:
    """(parameters, MB of fp32 weights + grads + AdamW moments), from the preset without building it."""
    import torch

    from argusrec.config import load_config
    from argusrec.models.builders import build_argus_model

    config = load_config(spec["preset"], overrides(spec))
    with torch.device("meta"):  # shapes only, no memory
        model = build_argus_model(
            config.model,
            config.argus,
            vocab_sizes=CONTEXT_VOCAB,
            feedback_signals=FEEDBACK,
            n_items=spec["n_items"],
            max_len=spec["max_len"],
        )
    n = sum(p.numel() for p in model.parameters())
    return n, n * BYTES_PER_PARAM_TRAINING / 2**20


def run_config(spec: dict[str, Any], timeout_s: float) -> dict[str, Any]:
    """Run :func:`worker` in a child process with a wall-clock limit."""
    cmd = [sys.executable, __file__, "--worker", json.dumps(spec)]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    # Its own process group, so that a timeout kills the child and anything it started (compile workers).
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env, start_new_session=True
    )
    try:
        out, err = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        return {"status": "timeout", "notes": [f"killed after {timeout_s:.0f} s"], "metrics": {}}
    for line in out.splitlines():
        if line.startswith(RESULT_TAG):
            return dict(json.loads(line[len(RESULT_TAG) :]))
    killed = proc.returncode in (-9, 137)
    reason = "killed (likely out of host memory)" if killed else f"exit status {proc.returncode}"
    return {"status": "error", "notes": [f"{reason}: {err.strip()[-800:]}"], "metrics": {}}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto")
    p.add_argument("--presets", default="argus-tiny,argus-3m", help="comma-separated preset names")
    p.add_argument("--variants", default="full,simplified")
    p.add_argument("--lengths", default="256", help="history lengths in events (data.max_len), e.g. 512,8192")
    p.add_argument("--events-per-batch", type=int, default=8192, help="batch size = this // length (at least 1)")
    p.add_argument("--batch-size", type=int, default=None, help="a fixed batch size instead of --events-per-batch")
    p.add_argument("--steps", type=int, default=10, help="timed steps (fewer if a configuration's time runs out)")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    p.add_argument(
        "--max-timed-s", type=float, default=20.0, help="stop timing a configuration after this (>= 3 steps)"
    )
    p.add_argument("--n-items", type=int, default=1_000_000, help="catalog size of the synthetic ids")
    p.add_argument("--hash-buckets", type=int, default=None, help="override the preset's hashed table rows")
    p.add_argument("--set", dest="overrides", action="append", default=[], help="config override key=value")
    p.add_argument(
        "--attention", choices=("packed", "masked"), default="packed", help="masked: the old (N, N)-mask path"
    )
    p.add_argument("--compile", action="store_true", help="torch.compile the model")
    p.add_argument("--no-bf16", action="store_true", help="fp32 on CUDA (default: bf16 autocast)")
    p.add_argument("--checkpointing", choices=("auto", "on", "off"), default="auto", help="auto: retry OOM with it")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--deadline", type=float, default=20.0, help="minutes for the whole run; the rest is skipped")
    p.add_argument("--config-timeout", type=float, default=150.0, help="seconds one configuration may take")
    p.add_argument(
        "--max-param-fraction",
        type=float,
        default=0.6,
        help="skip when weights+grads+AdamW exceed this share of device memory",
    )
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON results (merged with what is there)")
    p.add_argument("--fresh", action="store_true", help="drop the records already in --out")
    p.add_argument("--render-only", action="store_true", help="only re-render docs/benchmarks.md from --out")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args.worker:
        print(RESULT_TAG + json.dumps(worker(json.loads(args.worker))), flush=True)
        return
    if args.render_only:
        write_section(BENCH, render(load_records(args.out)))
        print(f"rendered {args.out} into docs/benchmarks.md")
        return

    import torch

    from argusrec.training.device import resolve_device

    device = resolve_device(args.device)
    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    dtype = "bf16-autocast" if device.type == "cuda" and not args.no_bf16 else "fp32"
    device_mb = _device_memory_mb(device) or float("inf")
    hw = hardware()
    if device.type == "cuda":
        hw = f"{device_name} ({device_mb / 1024:.0f} GiB); host {hw}"
    presets = [s for s in args.presets.split(",") if s]
    variants = [s for s in args.variants.split(",") if s]
    lengths = [int(s) for s in args.lengths.split(",") if s]
    for v in variants:
        if v not in TOKENS_PER_EVENT:
            p.error(f"unknown variant {v!r}")
    old = load_records(args.out)  # with --fresh a run starts over: its first write removes what was read
    records = [] if args.fresh else old
    deadline = time.monotonic() + 60 * args.deadline
    start = time.monotonic()

    for preset in presets:
        for n in lengths:
            b = args.batch_size or max(1, args.events_per_batch // n)
            for variant in variants:
                base = {
                    "preset": preset,
                    "variant": variant,
                    "max_len": n,
                    "batch_size": b,
                    "events_per_step": b * n,
                    "tokens_per_step": b * n * TOKENS_PER_EVENT[variant],
                    "device": device_name,
                    "dtype": dtype,
                    "compile": args.compile,
                    "n_items": args.n_items,
                    "overrides": args.overrides,
                    "attention": args.attention,
                    "checkpointing_mode": args.checkpointing,
                    "threads": args.threads or torch.get_num_threads(),
                    "date": today(),
                }
                tag = f"{preset} {variant} N={n} B={b}"
                remaining = deadline - time.monotonic()
                spec = {
                    **{k: base[k] for k in ("preset", "variant", "max_len", "batch_size", "compile", "n_items")},
                    **{k: base[k] for k in ("overrides", "attention", "checkpointing_mode")},
                    "device": str(device),
                    "bf16": not args.no_bf16,
                    "hash_buckets": args.hash_buckets,
                    "steps": args.steps,
                    "max_timed_s": args.max_timed_s,
                    "warmup": args.warmup,
                    "seed": args.seed,
                    "threads": args.threads,
                }
                n_params, train_mb = estimate_training_mb(spec)
                if remaining < 15:
                    result: dict[str, Any] = {"status": "skipped", "notes": ["deadline reached"], "metrics": {}}
                elif train_mb > args.max_param_fraction * device_mb:
                    note = (
                        f"weights+grads+AdamW of {n_params / 1e6:.0f}M parameters ≈ {train_mb / 1024:.1f} GiB > "
                        f"{args.max_param_fraction:.0%} of {device_mb / 1024:.0f} GiB "
                        "(use --hash-buckets to shrink the table)"
                    )
                    result = {"status": "skipped", "notes": [note], "metrics": {"params": n_params}}
                else:
                    timeout = min(args.config_timeout, remaining)
                    # Leave room for the interpreter's start and the model's build within the limit.
                    spec["time_budget_s"] = 0.7 * timeout
                    print(f"[{time.monotonic() - start:6.0f}s] {tag} ...", flush=True)
                    t0 = time.perf_counter()
                    load_before = os.getloadavg()[0]
                    result = run_config(spec, timeout)
                    result["wall_s"] = round(time.perf_counter() - t0, 1)
                    # Other jobs on the machine: the 1-minute load average around the run (CPU numbers share cores).
                    result["load_avg_1min"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
                rec = record(
                    BENCH,
                    "synthetic",
                    f"{preset}/{variant}",
                    result.get("metrics", {}),
                    float(result.get("wall_s", 0.0)),
                    seed=args.seed,
                    **base,
                    status=result["status"],
                    checkpointing=result.get("checkpointing"),
                    notes=result.get("notes", []),
                    load_avg_1min=result.get("load_avg_1min"),
                )
                rec["hardware"] = hw
                records = [r for r in records if config_key(r) != config_key(rec)] + [rec]  # also for --out elsewhere
                records = save(args.out, records)
                m = rec["metrics"]
                summary = (
                    f"{m['events_per_s']:.0f} events/s, {m['step_ms_median']:.0f} ms/step, "
                    f"peak {m['peak_mem_mb']:.0f} MB"
                    if rec["status"] == "ok"
                    else "; ".join(rec["notes"])
                )
                print(f"  {tag}: {rec['status']} {summary}", flush=True)
    docs = f" and the {BENCH} section of docs/benchmarks.md" if args.out.resolve() == DEFAULT_OUT.resolve() else ""
    print(f"wrote {args.out}{docs}")


# ---------------------------------------------------------------------------------------------- report
def _fmt_int(x: float | None) -> str:
    return "" if x is None else f"{x:,.0f}"


def render(records: list[dict[str, Any]]) -> str:
    """The docs section: one table per (hardware, device, dtype, commit) group, then the speed-up table."""
    lines = [
        "## ARGUS training throughput (full vs simplified)",
        "",
        "Generated by `benchmarks/argus_throughput.py` from `benchmarks/results/argus_throughput.json`. One",
        "training step = ARGUS forward, NIP sampled softmax (in-batch + 256 uniform negatives, logQ) + FP loss,",
        "backward, gradient clipping, AdamW step, on synthetic random batches of full-length histories (no",
        "padding, 1M item ids hashed into the preset's table, 2 context fields, 2 binary feedback signals).",
        "Full ARGUS runs 3 tokens per event, simplified 1. Median over the timed steps after warm-up. Peak",
        "memory: `torch.cuda.max_memory_allocated` on CUDA (weights, AdamW state and activations), peak",
        "resident memory of the process on the CPU. The article reports simplified ≈ 3× faster than full.",
        "",
        "Reading the tables: small models are bound by the NIP loss, the dense AdamW step over the hashed table",
        "and kernel launches, not by the encoder, so their simplified/full ratio stays near 1; it grows with",
        "model size and length. `(activation checkpointing)` = the configuration ran out of GPU memory and was",
        "re-run with activation checkpointing (about one more forward pass per step), so its ratio against a",
        "row without it overstates the variant's own gain; rows with `--checkpointing on` pair like with like.",
        "`(masked attention)` rows use the old explicit (N, N)-mask attention (`--attention masked`) for",
        "comparison with the default packed `is_causal` path. HSTU rows (`argus.encoder=hstu`) materialise",
        "(B, N, N) relative-bias and (B, H, N, N) attention tensors per layer, so their memory and time grow",
        "with N². On the CPU, attention dropout > 0 makes SDPA fall back from its flash kernel to the O(N²)",
        "math path; the CPU rows here use the presets' dropout (0.1).",
        "",
    ]
    if not records:
        return "\n".join([*lines, "_No results yet._"])
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for r in records:
        groups.setdefault((r.get("hardware"), r.get("device"), r.get("dtype"), r.get("commit")), []).append(r)
    for (hw, dev, dtype, sha), rows in groups.items():
        dates = sorted({r.get("date", "") for r in rows})
        threads = sorted({int(r["threads"]) for r in rows if r.get("threads")})
        thread_note = f", {'/'.join(str(t) for t in threads)} torch threads" if dev == "cpu" and threads else ""
        loads = [x for r in rows for x in (r.get("load_avg_1min") or [])]
        load_note = (
            f" Machine shared with other jobs: 1-minute load average {min(loads):.1f}–{max(loads):.1f} during the run."
            if dev == "cpu" and loads
            else ""
        )
        compiled = any(r.get("compile") for r in rows)
        lines += [
            f"### {dev} — {dtype}{', torch.compile' if compiled else ''}{thread_note}",
            "",
            f"Hardware: {hw}. Commit {sha}, {', '.join(dates)}.{load_note}",
            "",
            "| preset | transformer params | variant | max_len | batch | tokens/step | ms/step | events/s | tokens/s "
            "| peak memory (MB) | status |",
            "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
        ]
        for r in rows:
            m = r.get("metrics", {})
            status = r["status"] + (" (activation checkpointing)" if r.get("checkpointing") else "")
            if r["status"] != "ok" and r.get("notes"):
                status += ": " + "; ".join(r["notes"])
            tp = m.get("transformer_params")
            setup = r["preset"] + "".join(f" `{o}`" for o in r.get("overrides") or ())
            if r.get("attention", "packed") != "packed":
                setup += f" ({r['attention']} attention)"
            if r.get("checkpointing_mode", "auto") != "auto":
                setup += f" (--checkpointing {r['checkpointing_mode']})"
            lines.append(
                f"| {setup} | {'' if tp is None else f'{tp / 1e6:.1f}M'} | {r['variant']} | {r['max_len']} "
                f"| {r['batch_size']} | {_fmt_int(r.get('tokens_per_step'))} | {_fmt_int(m.get('step_ms_median'))} "
                f"| {_fmt_int(m.get('events_per_s'))} | {_fmt_int(m.get('tokens_per_s'))} "
                f"| {_fmt_int(m.get('peak_mem_mb'))} | {status} |"
            )
        pairs = []
        for r in rows:
            if r["variant"] != "simplified" or r["status"] != "ok":
                continue
            full = [
                f
                for f in rows
                if f["variant"] == "full"
                and f["status"] == "ok"
                and config_key({**f, "variant": None}) == config_key({**r, "variant": None})
            ]
            if full:
                ratio = r["metrics"]["events_per_s"] / full[0]["metrics"]["events_per_s"]
                ckpt = [name for name, x in (("full", full[0]), ("simplified", r)) if x.get("checkpointing")]
                setup = r["preset"] + "".join(f" `{o}`" for o in r.get("overrides") or ())
                if ckpt:
                    setup += f" ({' and '.join(ckpt)} with activation checkpointing)"
                pairs.append(
                    f"| {setup} | {r['max_len']} | {r['batch_size']} "
                    f"| {_fmt_int(full[0]['metrics']['events_per_s'])} | {_fmt_int(r['metrics']['events_per_s'])} "
                    f"| {ratio:.2f}× |"
                )
        if pairs:
            lines += [
                "",
                "Simplified vs full, same run, same events per step:",
                "",
                "| preset | max_len | batch | full events/s | simplified events/s | simplified ÷ full |",
                "| --- | ---: | ---: | ---: | ---: | ---: |",
                *pairs,
            ]
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
