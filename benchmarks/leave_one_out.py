"""Leave-one-out, full-ranking benchmark: our models and RecTools' SASRec on the public datasets.

Protocol (reference/PEERS.md §4): each user's last event is the test target, the second-to-last the
validation target, the rest trains; every target is ranked against the whole catalog with the user's
history removed; the model is selected (early stopping, best checkpoint) on valid/NDCG@10 only, and
both validation and test metrics are recorded. Every training runs in its own process (training_runs.py); its peak RSS
comes from the kernel (``RUSAGE_CHILDREN`` of a tiny wrapper).

Models: ``sasrec``, ``llama``, ``hstu``, ``fuxi``, ``hstu-large``, ``fuxi-large``, ``bsarec`` (argusrec presets:
Amazon -> ``*-beauty`` / ``*-sports``, history 50; MovieLens -> ``*-ml-1m`` with ``data.path``
overridden, history 200; ``llama`` = the SASRec preset with ``model.kind=llama``; the large variants =
the ``*-large-ml-1m`` presets, with history 50 on Amazon) and ``rectools-sasrec`` (RecTools'
SASRecModel, run by benchmarks/rectools_sasrec.py in its own virtual environment, same sizes, same
training events and the same number of epochs as our SASRec on that dataset and seed).

A full run (every model x dataset x 3 seeds x the presets' epochs) takes days on a CPU. Each run gets an
epoch cap: ``--max-epochs``, lowered so that training fits ``--time-budget`` seconds at the throughput
measured so far (a prior for the first run of a model); early stopping acts inside the cap. The records
say what was reduced (``epochs_cap``, ``epochs_run``, ``best_epoch``, ``stopped_early``).

A run interrupted with its benchmark (the machine or the session ended) is not lost: started again with the
same arguments and ``--workdir``, the benchmark continues it from its last checkpoint (written every epoch and
every 15 minutes) instead of training it from scratch; the record says so (``continued_from``: the epoch, step
and training seconds of the checkpoint it resumed from, and the commit that started it) and its ``seconds`` and
``--run-limit`` include the training seconds before that checkpoint (not the earlier process's start-up, nor the
work done after its last checkpoint, which is lost).

A tuning grid entry that wins on validation is made part of its preset; the tuning runs of that entry then
trained exactly the runs this benchmark would train. ``--adopt-tuned`` takes such a run's record from
benchmarks/results/tune_presets.json (trained with the config due, the same seed and device kind; what is never
taken: ``tuned_run``) instead of training it again; the record says ``adopted_from`` and the table ``tuning run``.

    python benchmarks/leave_one_out.py                                   # everything, full length
    python benchmarks/leave_one_out.py --seeds 0 --time-budget 200 --deadline 40   # a reduced run
    python benchmarks/leave_one_out.py --datasets beauty --models sasrec,rectools-sasrec --max-epochs 5
    python benchmarks/leave_one_out.py --datasets beauty --models bsarec --threads 1 --adopt-tuned --resume
    python benchmarks/leave_one_out.py --render-only                     # rewrite the markdown only

Writes benchmarks/results/leave_one_out.json (after every run) and its section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import yaml

if TYPE_CHECKING:
    from argusrec.config import RunConfig

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import ROOT, read_results, record, stamp_note, write_results, write_section
from training_runs import (
    METRICS,
    add_run_options,
    config_sha1,
    measured,
    run_overrides,
    stop_children_on_exit,
    train_one,
)

BENCH = "leave_one_out"
SHARED = ROOT.parent / "shared" / "data"
DATASETS = {  # name -> (adapter, path under ../shared/data, family)
    "beauty": ("amazon", "amazon-s3rec/Beauty.txt", "amazon"),
    "sports": ("amazon", "amazon-s3rec/Sports_and_Outdoors.txt", "amazon"),
    "ml-100k": ("movielens", "ml-100k", "movielens"),
    "ml-latest-small": ("movielens", "ml-latest-small", "movielens"),
}
MODELS = ["sasrec", "hstu", "fuxi", "llama", "hstu-large", "fuxi-large", "bsarec", "rectools-sasrec"]
# Order of a run: what matters most first (the published Beauty targets), the large variants last.
PRIORITY = [
    ("beauty", ["sasrec", "hstu", "fuxi", "rectools-sasrec"]),
    ("sports", ["sasrec", "hstu", "fuxi"]),
    ("ml-100k", ["sasrec", "hstu", "fuxi", "llama"]),
    ("ml-latest-small", ["sasrec", "hstu", "fuxi", "llama"]),
    ("beauty", ["llama"]),
    ("sports", ["llama", "rectools-sasrec"]),
    ("ml-100k", ["hstu-large", "fuxi-large", "rectools-sasrec"]),
    ("ml-latest-small", ["hstu-large", "fuxi-large", "rectools-sasrec"]),
    ("beauty", ["hstu-large", "fuxi-large"]),
    ("sports", ["hstu-large", "fuxi-large"]),
    ("beauty", ["bsarec"]),
    ("sports", ["bsarec"]),
]
# Training targets/s on 2 CPU cores at history 50, measured 2026-11-22; only the first guess of the
# epoch cap: later runs use the throughput measured in this run.
PRIOR_TPS = {
    "sasrec": 2700,
    "llama": 2500,
    "hstu": 7000,
    "fuxi": 3300,
    "hstu-large": 1800,
    "fuxi-large": 800,
    "bsarec": 1500,  # one thread (of two busy cores), 2026-11-23
}
OVERHEAD_S = 20  # process start, data, the final valid + test evaluation
PUBLISHED = {  # PEERS.md §5, filtered protocol: (model, NDCG@10, Recall@10 = HR@10, source)
    "beauty": [
        ("SASRec, sampled softmax", 0.0531, 0.0921, "eSASRec README"),
        ("HSTU, re-run", 0.0439, 0.0788, "eSASRec README"),
        ("BSARec", 0.0611, 0.1008, "BSARec official log"),
    ],
    "sports": [
        ("SASRec, sampled softmax", 0.0314, 0.0569, "eSASRec README"),
        ("HSTU, re-run", 0.0243, 0.0437, "eSASRec README"),
        ("ICSRec", 0.0335, 0.0565, "ICSRec README"),
    ],
}


def supported(model: str, dataset: str) -> bool:
    """Whether (model, dataset) is part of the benchmark: BSARec has Amazon presets only."""
    return model != "bsarec" or DATASETS[dataset][2] == "amazon"


def preset_for(model: str, dataset: str) -> tuple[str, list[str]]:
    """The preset and the extra overrides of one (model, dataset)."""
    family = DATASETS[dataset][2]
    base = {"llama": "sasrec"}.get(model, model)
    extra = ["model.kind=llama"] if model == "llama" else []
    if base.endswith("-large"):
        preset = f"{base}-ml-1m"
        if family == "amazon":  # no Amazon preset for the large variants: history 50 as the papers
            extra.append("data.max_len=50")
    else:
        preset = f"{base}-{dataset}" if family == "amazon" else f"{base}-ml-1m"
    return preset, extra


# Config keys added after records started carrying digests, with the value that is the behaviour from before
# they existed: at that value they are left out of the digest, so adding an option does not split the rows of
# an unchanged preset. (A changed default of an older key does change the digest, as it should.)
DIGEST_NEUTRAL = {
    "model.residual": "pre_norm",
    "model.init": "default",
    "model.input_scale": None,
    "argus.fp_bilinear_rank": 0,
    "model.frequency_bins": 3,
    "model.frequency_mix": 0.7,
    "model.empty_state": False,
    "model.attend_padding": False,
    "model.padding_content": False,
    "train.release_memory_every": 500,
    "train.targets": "all",
    "train.ema_decay": None,
}


def preset_digest(model: str, dataset: str) -> str:
    """8 hex digits naming the resolved preset of (model, dataset): rows of different preset versions stay apart."""
    from argusrec.config import load_config

    preset, extra = preset_for(model, dataset)
    data = yaml.safe_load(load_config(preset, extra).to_yaml())
    for key, neutral in DIGEST_NEUTRAL.items():
        section, name = key.split(".")
        if data.get(section, {}).get(name, neutral) == neutral:
            data.get(section, {}).pop(name, None)
    return hashlib.sha1(yaml.safe_dump(data, sort_keys=False).encode()).hexdigest()[:8]


def _variants(runs: list[dict]) -> list[tuple[str, list[dict]]]:
    """A model's runs (one model, one dataset) split by preset version (records without a digest predate it)
    and by model code: a record whose ``code_before`` names a later change of the model's code (the preset
    unchanged) describes the older code. The preset as it is now, on the current code, first; then the others
    newest first (by their newest run's date, then, within a day, by the order the records were written).

    A run of a seed that a later run of the same seed and version repeats (a re-run, e.g. with a longer time
    limit) is left out: the later one stands for that seed.

    Returns (label suffix, runs) pairs; the suffix is empty when all runs share one version.
    """
    groups: dict[tuple[str | None, str | None], list[dict]] = {}
    written: dict[tuple[str | None, str | None], int] = {}  # each group's latest position in ``runs``
    for i, r in enumerate(runs):
        key = (r.get("preset_digest"), r.get("code_before"))
        group = groups.setdefault(key, [])
        group[:] = [g for g in group if g["seed"] != r["seed"]]
        group.append(r)
        written[key] = i
    if len(groups) == 1 and next(iter(groups))[1] is None:
        return [("", next(iter(groups.values())))]
    current = (preset_digest(runs[0]["model"], runs[0]["dataset"]), None)
    newest = {g: max(str(r.get("date") or "") for r in groups[g]) for g in groups}
    order = sorted(groups, key=lambda g: (g == current, newest[g], written[g]), reverse=True)

    def suffix(digest: str | None, before: str | None) -> str:
        preset = f"preset {digest}" if digest else "earlier preset"
        return f" ({preset}, before {before})" if before else f" ({preset})"

    return [(suffix(*g), groups[g]) for g in order]


def train_targets(data: Path, max_len: int, targets: str = "all") -> int:
    """Training targets per epoch: leave-one-out training prefixes cut in chunks of max_len + 1 events
    (``train.targets: all``), or one per training event after the first (``last``)."""
    lengths = np.diff(np.load(data / "events" / "offsets.npy"))
    train = np.where(lengths >= 3, lengths - 2, lengths)
    if targets == "last":
        return int(np.maximum(train - 1, 0).sum())
    chunks = np.ceil(train / (max_len + 1))
    return int((train - chunks)[train >= 2].sum())


def prepare(work: Path, dataset: str) -> Path | None:
    source, rel, _ = DATASETS[dataset]
    raw, out = SHARED / rel, work / dataset
    if (out / "manifest.json").exists():  # prepared earlier (or carried to a machine without the raw files)
        return out
    if not raw.exists():
        return None
    if not (out / "manifest.json").exists():
        shutil.rmtree(out, ignore_errors=True)
        cmd = [sys.executable, "-m", "argusrec.cli", "data", "prepare", "--source", source, "--input", str(raw)]
        subprocess.run([*cmd, "--output", str(out), "--no-progress"], check=True, capture_output=True)
    return out


#: Keys of a tune_presets record that name its place in the tuning grid, not the run: kept under ``adopted_from``.
TUNING_KEYS = (
    *("grid", "label", "grid_overrides", "applied", "dropped", "overrides", "preset_digest", "note_run"),
    "run_limit_s",  # the tuning sweep's limit, not this benchmark's
)


def tuned_run(dataset: str, model: str, seed: int, where: str, config_yaml: str, limit: float | None) -> dict | None:
    """The newest tune_presets.py record that trained exactly this run, as a record of this benchmark; or None.

    A tuning run of (dataset, model, seed) on the same device kind that trained with the resolved config
    ``config_yaml`` (its ``config_sha1``: the preset as it was then, with the grid's entry and the data, epochs,
    seed, threads and validation schedule) is the run this benchmark would train. So after a grid entry is made
    part of a preset the benchmark takes the tuning run's result instead of training it again (``--adopt-tuned``).
    Not taken: a tuning run stopped by its time limit (the preset's run would have gone on), one longer than this
    benchmark's ``limit`` (it would have been cut), and one marked as run by older model code (``code_before``).
    The commit is not compared, as for this benchmark's own records (:func:`has_current_record`): a model code
    change that alters results is marked with ``code_before``. The record keeps the tuning run's metrics,
    seconds, commit, date and hardware, and says where it came from (``adopted_from``: grid, label, overrides,
    preset digest, limit).
    """
    sha = config_sha1(config_yaml)
    for r in reversed(read_results("tune_presets")):
        if not r.get("metrics") or (r["dataset"], r["model"], r["seed"], _where(r)) != (dataset, model, seed, where):
            continue
        if r.get("config_sha1") != sha or r.get("stopped_by_time_limit") or r.get("code_before"):
            continue
        if limit is not None and r["seconds"] > limit:
            continue
        tuned = {k: r[k] for k in TUNING_KEYS if k in r}
        return {k: v for k, v in r.items() if k not in TUNING_KEYS} | {
            "benchmark": BENCH,
            "adopted_from": {"benchmark": "tune_presets", **tuned},
        }
    return None


def run_conditions(r: dict) -> str | None:
    """How a record's run ran (its ``--note``): for a run adopted from tune_presets.py, the tuning run's note
    (the adopting invocation's note only says that it adopted)."""
    return r.get("adopted_from", {}).get("note_run") or r.get("note_run")


def has_current_record(records: list[dict], dataset: str, model: str, seed: int, where: str) -> bool:
    """A finished record of (dataset, model, seed) on this device kind (``where``) and, for our models, of the
    preset as it is now: after a preset changes ``--resume`` runs it again (the older rows stay, labelled)."""
    digest = None if model == "rectools-sasrec" else preset_digest(model, dataset)
    return any(
        r["metrics"]
        and (r["dataset"], r["model"], r["seed"], _where(r)) == (dataset, model, seed, where)
        and (digest is None or r.get("preset_digest") == digest)
        for r in records
    )


PAIR_KEYS = ("commit", "date", "seconds")  # what identifies our run in a RecTools record's ``paired_with``


def rectools_command(
    python: str, cfg: RunConfig, data: Path, out: Path, *, seed: int, threads: int, loss: str = "sampled_softmax"
) -> list[str]:
    """benchmarks/rectools_sasrec.py with the sizes, negatives and optimiser of our run config ``cfg``."""
    return [
        python,
        str(Path(__file__).parent / "rectools_sasrec.py"),
        *("--data", str(data), "--out", str(out), "--seed", str(seed), "--threads", str(threads)),
        *("--loss", loss, "--negatives", str(cfg.loss.uniform_negatives)),
        *("--blocks", str(cfg.model.layers), "--dim", str(cfg.model.dim), "--heads", str(cfg.model.heads)),
        *("--dropout", str(cfg.model.dropout), "--max-len", str(cfg.data.max_len)),
        *("--batch-size", str(cfg.train.batch_size), "--lr", str(cfg.optim.lr)),
    ]


class Runner:
    def __init__(self, args: argparse.Namespace, records: list[dict]) -> None:
        self.args, self.records = args, records
        self.work = Path(args.workdir)
        self.lock = threading.Lock()  # --jobs > 1: runs finish in worker threads
        self.ran_on = _ran_on(args)
        self.where = _where({"ran_on": self.ran_on})
        self.tps: dict[tuple[str, str], float] = {}  # (model, family) -> training targets/s measured here
        for r in records:
            if r["metrics"].get("events_per_s") and r["model"] in PRIOR_TPS:
                self.tps[(r["model"], DATASETS[r["dataset"]][2])] = r["metrics"]["events_per_s"]

    def done(self, dataset: str, model: str, seed: int) -> bool:
        return has_current_record(self.records, dataset, model, seed, self.where)

    def save(self) -> None:
        self.records[:] = write_results(BENCH, self.records)  # with what other processes wrote meanwhile
        write_section(BENCH, markdown(self.records))

    def epoch_cap(self, model: str, dataset: str, data: Path, max_len: int, targets: str) -> tuple[int, float]:
        family = DATASETS[dataset][2]
        guess = PRIOR_TPS[model] * (0.6 if max_len > 50 else 1.0)
        tps = self.tps.get((model, family), guess)
        per_epoch = train_targets(data, max_len, targets) / tps
        budget = max(self.args.time_budget - OVERHEAD_S, 1.0)
        if math.isinf(budget):  # no --time-budget (the default): --max-epochs alone sets the cap
            return self.args.max_epochs, per_epoch
        return max(1, min(self.args.max_epochs, math.floor(budget / per_epoch))), per_epoch

    def ours(self, dataset: str, data: Path, model: str, seed: int) -> dict:
        from argusrec.config import load_config

        preset, extra = preset_for(model, dataset)
        preset_cfg = load_config(preset, [*extra, f"data.path={data}"])
        max_len = preset_cfg.data.max_len
        limit = self.args.run_limit
        if limit is None:
            cap, per_epoch = self.epoch_cap(model, dataset, data, max_len, preset_cfg.train.targets)
            eval_every = 1 if cap <= 20 else preset_cfg.train.eval_every
            pace = f"~{per_epoch:.0f} s/epoch"
        else:  # the preset's epochs; the run is cut at its wall-clock limit and its best checkpoint evaluated
            cap = min(self.args.max_epochs, preset_cfg.train.epochs)
            eval_every = 2  # a cut run must have validated recently for its best checkpoint to be current
            pace = f"stopped at {limit:.0f} s if still training"
        print(f"[{dataset}] {model} seed {seed}: {preset}, epochs cap {cap} ({pace})", flush=True)
        common = dict(preset=preset, preset_digest=preset_digest(model, dataset), epochs_cap=cap)
        common |= dict(max_epochs=self.args.max_epochs, time_budget_s=self.args.time_budget)
        if self.args.adopt_tuned:
            overrides = run_overrides(
                preset, extra, data, seed, epochs=cap, eval_every=eval_every, threads=self.args.threads,
                device=self.args.device,
            )  # fmt: skip
            due = load_config(preset, overrides).to_yaml()
            tuned = tuned_run(dataset, model, seed, self.where, due, limit)
            if tuned is not None:
                adopted = tuned["adopted_from"]
                print(f"  adopted: tune_presets run {adopted['grid']}/{adopted['label']} ({tuned['commit']})")
                return tuned | common | {"overrides": overrides}
        run = train_one(
            self.work,
            f"{dataset}-{model}-s{seed}",
            data,
            preset,
            extra,
            seed,
            epochs=cap,
            eval_every=eval_every,
            threads=self.args.threads,
            device=self.args.device,
            limit=limit,
        )
        if not run.limited:
            self.tps[(model, DATASETS[dataset][2])] = run.metrics["events_per_s"]
        summary = run.summary
        return record(
            BENCH,
            dataset,
            model,
            run.metrics,
            run.seconds,
            seed=seed,
            **common,
            overrides=run.overrides,
            epochs_run=summary["epochs_run"],
            best_epoch=summary["best_epoch"],
            stopped_early=summary["stopped_early"],
            train_seconds=summary["train_seconds"],
            popularity_baseline=run.popularity,
            stopped_by_time_limit=run.limited,
            continued_from=run.continued,
            config_sha1=run.config_sha1,
            ran_on=self.ran_on,
            valid_curve=run.curve,
            **run.load,
        )

    def rectools(self, dataset: str, data: Path, seed: int) -> dict:
        if self.args.device != "cpu":
            raise RuntimeError("RecTools runs on the CPU only here (its environment is not on the GPU machine)")
        ours = [
            r
            for r in self.records
            if (r["dataset"], r["model"], r["seed"], _where(r)) == (dataset, "sasrec", seed, "cpu")
        ]
        if not ours or "epochs_run" not in ours[-1]:
            raise RuntimeError("needs our sasrec on the same dataset and seed first (same epochs)")
        pair = ours[-1]
        epochs = min(pair["epochs_run"], self.args.rectools_epochs or pair["epochs_run"])
        reduced = {"reduced_from": pair["epochs_run"]} if epochs < pair["epochs_run"] else {}  # compared on valid
        from argusrec.config import load_config
        from argusrec.eval.metrics import summarize

        cfg = load_config(pair["preset"], pair["overrides"])
        out = self.work / "rectools" / f"{dataset}-s{seed}"
        shutil.rmtree(out, ignore_errors=True)
        cmd = rectools_command(
            self.args.rectools_python,
            cfg,
            data,
            out,
            seed=seed,
            threads=self.args.threads,
            loss=self.args.rectools_loss,
        )
        cmd += ["--epochs", str(epochs), "--k", "50"]
        print(f"[{dataset}] rectools-sasrec seed {seed}: {epochs} epochs ({self.args.rectools_loss})", flush=True)
        sec, peak, _, load = measured(cmd)
        info = json.loads((out / "summary.json").read_text())
        metrics: dict[str, float] = {}
        for role in ("valid", "test"):
            topk, targets = np.load(out / f"{role}_topk.npy"), np.load(out / f"{role}_targets.npy")
            hit = topk == targets[:, None]  # (T, 50)
            # A target outside the top-50 is a miss: rank past every cut-off; MRR is then MRR@50.
            ranks = np.where(hit.any(1), hit.argmax(1), 10**9)
            s = summarize(ranks, ks=(10, 50), prefix=f"{role}/")
            metrics |= {k: v for k, v in s.items() if k.split("/")[-1] in METRICS[:4]}
            metrics[f"{role}/MRR@50"] = float(np.where(ranks < 50, 1.0 / (ranks + 1.0), 0.0).mean())
        metrics |= {"events_per_s": info["events_per_s"], "peak_rss_mb": peak}
        print(
            f"  test NDCG@10 {metrics['test/NDCG@10']:.4f} HR@10 {metrics['test/HR@10']:.4f} | "
            f"{info['events_per_s']:,.0f} targets/s | {sec:.0f} s, peak {peak:.0f} MB",
            flush=True,
        )
        shutil.rmtree(out, ignore_errors=True)
        return record(
            BENCH,
            dataset,
            "rectools-sasrec",
            metrics,
            sec,
            seed=seed,
            library=info["library"],
            torch=info["torch"],
            loss=info["loss"],
            negatives=info["negatives"],
            epochs_cap=epochs,
            epochs_run=epochs,
            best_epoch=None,
            stopped_early=False,
            train_seconds=info["train_seconds"],
            note="same sizes and epochs as our sasrec, or fewer epochs where reduced_from says (training targets: "
            "targets_per_epoch); no model selection (last epoch); top-50 with viewed items filtered, so MRR is MRR@50",
            **reduced,
            paired_with={k: pair.get(k) for k in PAIR_KEYS},
            targets_per_epoch={
                "ours": train_targets(data, cfg.data.max_len, cfg.train.targets),
                "rectools": info["train_targets_per_epoch"],
            },
            ran_on=f"cpu ({self.args.threads} cores)",
            **load,
        )

    def run(self, dataset: str, model: str, seed: int, deadline: float) -> None:
        if self.done(dataset, model, seed):
            return
        data = prepare(self.work, dataset)
        if data is None:
            print(f"[{dataset}] skipped: {SHARED / DATASETS[dataset][1]} is absent", flush=True)
            return
        if time.time() > deadline:
            note = f"not run: the run's deadline ({self.args.deadline:.0f} min) had passed"
            with self.lock:
                self._add(record(BENCH, dataset, model, {}, 0.0, seed=seed, note=note, ran_on=self.ran_on))
        else:
            try:
                rec = (
                    self.rectools(dataset, data, seed)
                    if model == "rectools-sasrec"
                    else self.ours(dataset, data, model, seed)
                )
            except Exception as e:  # recorded, never hidden: the table shows the failure
                print(f"  failed: {str(e)[-2000:]}", flush=True)
                rec = record(
                    BENCH, dataset, model, {}, 0.0, seed=seed, note=f"failed: {str(e)[-400:]}", ran_on=self.ran_on
                )
            with self.lock:
                self._add(rec)
        with self.lock:
            self.save()

    def _add(self, rec: dict) -> None:
        """Append a record of this invocation (with its ``--note``), replacing earlier empty ones (not run /
        failed) of the same run on this device kind."""
        rec.setdefault("note_run", self.args.note)
        key = (rec["dataset"], rec["model"], rec["seed"], _where(rec))
        self.records[:] = [
            r for r in self.records if r["metrics"] or (r["dataset"], r["model"], r["seed"], _where(r)) != key
        ]
        self.records.append(rec)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", default=",".join(DATASETS), help="comma-separated")
    ap.add_argument("--models", default=",".join(MODELS), help="comma-separated")
    ap.add_argument("--seeds", default="0,1,2", help="comma-separated")
    ap.add_argument("--max-epochs", type=int, default=200, help="epoch cap of every run")
    ap.add_argument(
        "--time-budget",
        type=float,
        default=float("inf"),
        help="seconds of training per run (sets the cap; with --run-limit each run gets the preset's epochs instead)",
    )
    add_run_options(ap, shared=SHARED, device_help="cpu | cuda (our models; RecTools runs on the CPU only)")
    ap.add_argument("--rectools-python", default="/work/rectools-venv/bin/python", help="python of a RecTools venv")
    ap.add_argument("--rectools-loss", default="sampled_softmax", help="softmax | sampled_softmax")
    ap.add_argument(
        "--rectools-epochs",
        type=int,
        default=None,
        help="train RecTools' SASRec for this many epochs when our paired sasrec ran more (a reduced run: the NDCG "
        "ratio is then taken on validation after that many epochs, from our run's validation curve)",
    )
    ap.add_argument(
        "--adopt-tuned",
        action="store_true",
        help="take a tune_presets.py run that trained exactly the run due (same resolved config, seed and device "
        "kind) instead of training it again",
    )
    args = ap.parse_args()
    if args.rectools_epochs is not None and args.rectools_epochs < 1:
        ap.error(f"argument --rectools-epochs: {args.rectools_epochs} is not a positive number of epochs")
    stop_children_on_exit()
    globals()["SHARED"] = Path(args.shared)
    records = read_results(BENCH, keep=args.render_only or args.resume)
    runner = Runner(args, records)
    if args.render_only:
        stamp_note(records, args.note)
        runner.save()
        return
    datasets, models = args.datasets.split(","), args.models.split(",")
    if not SHARED.is_dir() and not any((Path(args.workdir) / d / "manifest.json").exists() for d in datasets):
        print(f"skipped: {SHARED} is absent (the public datasets)")
        return
    deadline = time.time() + args.deadline * 60
    todo: list[tuple[str, str, int]] = []
    for i, seed in enumerate(int(s) for s in args.seeds.split(",")):
        order = PRIORITY if i == 0 else [(d, list(MODELS)) for d in DATASETS]
        todo += [(d, m, seed) for d, group in order for m in group if d in datasets and m in models and supported(m, d)]
    if args.jobs == 1:
        for dataset, model, seed in todo:
            runner.run(dataset, model, seed, deadline)
    else:  # RecTools compares with our finished sasrec of the same seed: after the pool
        for d in {d for d, _, _ in todo}:
            prepare(runner.work, d)  # once, before workers race to it
        with ThreadPoolExecutor(args.jobs) as pool:
            list(
                pool.map(
                    lambda t: runner.run(t[0], t[1], t[2], deadline), [t for t in todo if t[1] != "rectools-sasrec"]
                )
            )
        for dataset, model, seed in (t for t in todo if t[1] == "rectools-sasrec"):
            runner.run(dataset, model, seed, deadline)
    runner.save()
    print(f"wrote benchmarks/results/{BENCH}.json and docs/benchmarks.md")


def _fmt(m: dict, key: str) -> str:
    return f"{m[key]:.4f}" if key in m else "—"


def _ran_on(args: argparse.Namespace) -> str:
    """Where this invocation trains, as its records say it."""
    if args.device == "cpu":
        return f"cpu ({args.threads} cores)"
    import torch

    name = torch.cuda.get_device_name() if torch.cuda.is_available() else args.device
    return f"{name}, {args.jobs} runs sharing it, {args.threads} CPU threads each"


def current_runs(records: list[dict], dataset: str, model: str, where: str, digest: str) -> list[dict]:
    """The finished runs of (dataset, model) on this device kind under the preset as it is now (``digest``:
    :func:`preset_digest`) and the current model code, one per seed (the latest run of a seed stands for it, as
    in the tables)."""
    runs = [
        r
        for r in records
        if r["metrics"]
        and (r["dataset"], r["model"], _where(r)) == (dataset, model, where)
        and r.get("preset_digest") == digest
        and not r.get("code_before")
    ]
    return sorted({r["seed"]: r for r in runs}.values(), key=lambda r: r["seed"])


#: The orderings the HSTU and FuXi-alpha papers report (issue: "HSTU at or above SASRec and FuXi-alpha at or
#: above HSTU under the same recipe"; PEERS.md §5: each -large above its base model): (better, worse) pairs checked
#: on the current presets.
PAPER_ORDER = [("hstu", "sasrec"), ("fuxi", "hstu"), ("hstu-large", "hstu"), ("fuxi-large", "fuxi")]
#: What "the same recipe" compares between two models' presets: sizes, loss, sampler, optimiser, batches.
RECIPE_SECTIONS = ("loss", "optim", "train")
RECIPE_KEYS = ("data.max_len", "model.dim", "model.layers", "model.heads", "model.dropout")


def recipe_differences(a: str, b: str, dataset: str) -> list[str]:
    """The recipe settings (``RECIPE_SECTIONS``, ``RECIPE_KEYS``) in which the presets of models ``a`` and ``b``
    on ``dataset`` differ, as ``key a-value/b-value``."""
    from argusrec.config import load_config

    def flat(model: str) -> dict[str, object]:
        preset, extra = preset_for(model, dataset)
        tree = yaml.safe_load(load_config(preset, extra).to_yaml())
        out = {f"{sec}.{k}": v for sec in RECIPE_SECTIONS for k, v in (tree.get(sec) or {}).items()}
        for key in RECIPE_KEYS:
            sec, name = key.split(".")
            out[key] = (tree.get(sec) or {}).get(name)
        return out

    fa, fb = flat(a), flat(b)
    return [f"{k} {fa.get(k)}/{fb.get(k)}" for k in sorted(set(fa) | set(fb)) if fa.get(k) != fb.get(k)]


def _verdict(a: tuple[float, float, int, bool], b: tuple[float, float, int, bool]) -> str:
    """Whether mean ``a`` >= mean ``b`` (each: mean, sample std or 0 for one seed, seeds, any run a lower bound),
    and how far that can be read: against the larger of the two seed spreads, and open when the side that falls
    short was cut by its time limit."""
    (ma, sa, _, bound_a), (mb, sb, _, _) = a, b
    holds = ma >= mb
    verdict = "holds" if holds else "does not hold"
    spread = max(sa, sb)  # 0: one seed each, no spread to compare the difference with
    if bound_a and not holds:
        return verdict + " so far (the lower side is a lower bound)"
    if spread == 0:
        return verdict + " (one seed each)"
    if abs(ma - mb) <= spread:
        return verdict + ", within one seed std"
    return verdict if holds else f"**{verdict}**"


def _summary(records: list[dict]) -> list[str]:
    """The presets as they are now, every (model, dataset) in one table: test NDCG@10 mean ± sample std (valid
    NDCG@10) and seeds; then the papers' orderings as measured, on each device kind apart, with the recipe
    settings in which the two presets differ."""
    models = [m for m in MODELS if m != "rectools-sasrec"]
    cell: dict[tuple[str, str], str] = {}
    stats: dict[tuple[str, str, str], tuple[float, float, int, bool]] = {}  # (dataset, model, where) -> _verdict's
    for d in DATASETS:
        for m in models:
            if not supported(m, d):
                continue
            parts = []
            digest = preset_digest(m, d)  # loads the preset: once per (model, dataset)
            for where in ("cpu", "gpu"):
                runs = current_runs(records, d, m, where, digest)
                if not runs:
                    continue
                test = [r["metrics"]["test/NDCG@10"] for r in runs]
                valid = [r["metrics"]["valid/NDCG@10"] for r in runs]
                bound = any(r.get("stopped_by_time_limit") for r in runs)
                gpu = ", GPU" if where == "gpu" else ""
                parts.append(f"{_mean_std(test)}{'†' if bound else ''} ({np.mean(valid):.4f}; {len(runs)}{gpu})")
                std = float(np.std(test, ddof=1)) if len(test) > 1 else 0.0
                stats[(d, m, where)] = (float(np.mean(test)), std, len(test), bound)
            cell[(d, m)] = "; ".join(parts) or "—"
    lines = [
        "### The presets as they are now",
        "",
        "Test NDCG@10 as mean ± sample std over seeds (valid NDCG@10 mean; number of seeds), from the rows below",
        "that ran the preset as it is now with the current model code (CPU rows unless marked GPU). † = at least",
        "one run stopped at its time limit: a lower bound. — = no run of the current preset yet (earlier presets'",
        "rows are in the tables below).",
        "",
        "| model | " + " | ".join(DATASETS) + " |",
        "|---|" + "---:|" * len(DATASETS),
    ]
    lines += [f"| {m} | " + " | ".join(cell.get((d, m), "n/a") for d in DATASETS) + " |" for m in models]
    lines += [
        "",
        "The orderings the HSTU and FuXi-α papers report, as measured here (test NDCG@10 means, seeds; each model",
        "under its own current preset, on one device kind; where the presets' recipes differ, the settings are",
        "named as this model's value / the other's):",
    ]
    for better, worse in PAPER_ORDER:
        differences: dict[str, list[str]] = {}  # per dataset, loaded once for both device kinds
        for where in ("cpu", "gpu"):
            checks = []
            for d in DATASETS:
                a, b = stats.get((d, better, where)), stats.get((d, worse, where))
                if a is None or b is None:
                    continue
                nums = f"{a[0]:.4f}{'†' if a[3] else ''} ({a[2]}) vs {b[0]:.4f}{'†' if b[3] else ''} ({b[2]})"
                if d not in differences:
                    differences[d] = recipe_differences(better, worse, d)
                differ = differences[d]
                recipe = f" [presets differ: {', '.join(differ)}]" if differ else " [same recipe]"
                checks.append(f"{d}: {nums}, {_verdict(a, b)}{recipe}")
            if checks:
                device = "" if where == "cpu" else " (GPU)"
                lines += ["", f"- {better} ≥ {worse}{device}: " + "; ".join(checks) + "."]
    return [*lines, ""]


def _where(r: dict) -> str:
    return "cpu" if r.get("ran_on", "cpu")[:3] == "cpu" else "gpu"


def _mean_std(values: list[float]) -> str:
    if not values:
        return "—"
    if len(values) == 1:
        return f"{values[0]:.4f}"
    return f"{np.mean(values):.4f} ± {np.std(values, ddof=1):.4f}"


def _table(rows: list[dict], pop: dict | None) -> list[str]:
    """One row per model: metrics as mean ± std over its seeds (sample std), with how each run ended."""
    lines = [
        "| model | seeds | epochs run / cap (best) | HR@10 | NDCG@10 | HR@50 | NDCG@50 | MRR | valid NDCG@10 "
        "| events/s | where |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for model in MODELS:
        every = sorted((r for r in rows if r["model"] == model and r["metrics"]), key=lambda r: r["seed"])
        for suffix, runs in _variants(every) if every else []:
            lines.append(_table_row(model + suffix, model, runs))
    if pop:
        lines.append(
            "| most popular | — | — | "
            + " | ".join(_fmt(pop, f"test/{k}") for k in METRICS)
            + " | — | — | same targets |"
        )
    return lines


def how_it_ended(r: dict) -> str:
    """``time limit`` / ``early stop`` / ``cap`` (``fixed``: RecTools' set epochs), ``continued`` for a run
    finished by a later benchmark process (``training_runs.interrupted_run``) and ``tuning run`` for one trained by
    tune_presets.py (:func:`tuned_run`)."""
    how = (
        "time limit"
        if r.get("stopped_by_time_limit")
        else "early stop"
        if r.get("stopped_early")
        else ("fixed" if r["model"] == "rectools-sasrec" else "cap")
    )
    return (
        how
        + (f", reduced from {r['reduced_from']}" if r.get("reduced_from") else "")
        + (", continued" if r.get("continued_from") else "")
        + (", tuning run" if r.get("adopted_from") else "")
    )


def _table_row(label: str, model: str, runs: list[dict]) -> str:
    """One table row: ``runs`` (one model, one preset version) as mean ± std over their seeds."""
    ends = []
    for r in runs:
        best = f" ({r['best_epoch']})" if r.get("best_epoch") is not None else ""
        ends.append(f"{r['epochs_run']}/{r['epochs_cap']}{best} {how_it_ended(r)}")
    cols = []
    for k in (*METRICS[:4], "MRR", "valid/NDCG@10"):
        key = k if "/" in k else f"test/{k}"
        vals = [r["metrics"][key] for r in runs if key in r["metrics"]]
        if k == "MRR" and not vals:
            vals = [r["metrics"]["test/MRR@50"] for r in runs if "test/MRR@50" in r["metrics"]]
            cols.append(_mean_std(vals) + " (@50)" if vals else "—")
            continue
        cols.append(_mean_std(vals))
    tps = [r["metrics"]["events_per_s"] for r in runs if not math.isnan(r["metrics"].get("events_per_s", math.nan))]
    seeds = ",".join(str(r["seed"]) for r in runs)
    speed = f"{np.mean(tps):,.0f}" if tps else "—"
    return f"| {label} | {seeds} | {'; '.join(ends)} | {' | '.join(cols)} | {speed} | {runs[0]['ran_on']} |"


def markdown(records: list[dict]) -> str:
    if not records:
        return "## Leave-one-out (`benchmarks/leave_one_out.py`)\n\nNo results yet."
    gpu = [r for r in records if _where(r) == "gpu"]
    cpu = [r for r in records if _where(r) == "cpu"]
    lines = [
        "## Leave-one-out, full ranking (`benchmarks/leave_one_out.py`)",
        "",
        "Protocol: last event = test, second-to-last = validation, full-catalog ranking with the user's history",
        "removed, pessimistic ties; model selected on valid/NDCG@10 only (early stopping + best checkpoint); test",
        "metrics of that checkpoint. Metrics are mean ± sample std over the seeds listed. events/s = training",
        "targets per second (our loop's count; RecTools: its SASRec preparator's targets x epochs / fit time).",
        "How each run ended: `early stop` (patience on validation), `cap` (the epoch cap), `time limit` (stopped at",
        "its wall-clock limit, its best checkpoint so far evaluated: a lower bound of what the preset reaches);",
        "`continued`: finished by a later benchmark process from the checkpoint an interrupted one left; `tuning run`:",
        "trained by tune_presets.py with exactly this config and seed, before its grid entry became part of the preset",
        "(`--adopt-tuned`), and recorded here as it was.",
        "",
        "Presets: `sasrec-beauty` / `sasrec-sports` are now the published SASRec-with-sampled-softmax recipe",
        "(eSASRec README, RecTools SASRecModel: dim 256, 1 block, 1 head, dropout 0.2, dot-product logits, 256",
        "uniform negatives drawn for every position, randomly mixed batches), chosen on validation (section *Where",
        "SASRec's gap came from* below). Which preset a row ran with follows from its commit: GPU `sasrec` rows",
        "(0a521e4) used the previous tuned presets (negatives shared by the batch: cosine / 0.05 on Beauty, dot with",
        "512 on Sports; length-bucketed batches); CPU `sasrec` rows of d565197 or later the current ones; older CPU",
        "rows of `sasrec` on Sports and of `llama` the first dim-64 / 2-block / dropout-0.5 presets. `llama` = the",
        "SASRec preset with LLaMa blocks. `hstu-*` and `fuxi-*` rows use their own (untuned) presets; the tuning",
        "section also has HSTU and FuXi-alpha under SASRec's earlier recipe. MovieLens rows run the `*-ml-1m`",
        "presets (HSTU's recipe: cosine / 0.05, 128 negatives, history 200); since 127ef0a they draw the negatives",
        "for every position and mix their batches, as Meta's code does. MovieLens rows of earlier commits (all GPU",
        "rows among them) ran the version with negatives shared by the batch and length-bucketed batches.",
        "",
    ]
    lines += _summary(records)
    for title, group in (("GPU runs", gpu), ("CPU runs (reduced)", cpu)):
        if not group:
            continue
        hw = sorted({r["hardware"] for r in group if r["metrics"]})
        commits = sorted({r["commit"] for r in group if r["metrics"]})
        notes = sorted({n for n in map(run_conditions, group) if n})
        lines += [f"### {title}", "", f"Hardware: {'; '.join(hw)}. Commit(s): {', '.join(commits)}.", ""]
        lines += [f"Run conditions: {n}" for n in notes] + ([""] if notes else [])
        if title.startswith("CPU"):
            caps = sorted({r["epochs_cap"] for r in group if r.get("epochs_cap")})
            lines += [
                f"**Reduced** where a row ended at its `cap`: epoch caps {caps} set per run from a wall-clock budget",
                "on 2 shared CPU cores; such runs were still improving. Rows that ended by `early stop` trained to",
                "convergence. Kept for the RecTools comparison (same machine, same epochs).",
                "",
            ]
        for dataset in DATASETS:
            rows = [r for r in group if r["dataset"] == dataset]
            if not rows:
                continue
            pop = next((r["popularity_baseline"] for r in rows if r.get("popularity_baseline")), None)
            lines += [f"#### {dataset} ({title.split()[0]})", "", *_table(rows, pop)]
            failed = [r for r in rows if not r["metrics"]]
            if failed:
                lines += [
                    "",
                    "Not run / failed: " + "; ".join(f"{r['model']} s{r['seed']}: {r['note']}" for r in failed),
                ]
            lines += _published(dataset, rows) + _rectools(rows) + [""]
    ran = {(r["dataset"], r["model"]) for r in records if r["metrics"]}
    missing = [f"{m} on {d}" for d in DATASETS for m in MODELS if (d, m) not in ran and supported(m, d)]
    if missing:
        lines += [f"Never run: {', '.join(missing)}.", ""]
    return "\n".join(lines)


def _published(dataset: str, rows: list[dict]) -> list[str]:
    """The published rows, and our best model chosen by mean valid NDCG@10 (never by test)."""
    if dataset not in PUBLISHED:
        return []
    lines = ["", "Published (PEERS.md §5, same filtered protocol, full training, history 50):", ""]
    lines += ["| model | NDCG@10 | HR@10 (= Recall@10) | source |", "|---|---:|---:|---|"]
    lines += [f"| {n} | {nd:.4f} | {hr:.4f} | {src} |" for n, nd, hr, src in PUBLISHED[dataset]]
    by_model: dict[str, list[dict]] = {}  # "model" or "model (preset ...)" -> its runs
    for model in MODELS:
        if model == "rectools-sasrec":
            continue
        runs = [r for r in rows if r["model"] == model and r["metrics"].get("valid/NDCG@10") is not None]
        for suffix, group in _variants(runs) if runs else []:
            by_model[model + suffix] = group
    if not by_model:
        return lines
    best = max(by_model, key=lambda m: np.mean([r["metrics"]["valid/NDCG@10"] for r in by_model[m]]))
    test = float(np.mean([r["metrics"]["test/NDCG@10"] for r in by_model[best]]))
    sasrec = [r for r in rows if r["model"] == "sasrec" and r["metrics"].get("valid/NDCG@10") is not None]
    sas = [r["metrics"]["test/NDCG@10"] for r in _variants(sasrec)[0][1]] if sasrec else []  # the newest preset
    lines += [
        "",
        f"Best model on validation: **{best}** (test NDCG@10 {test:.4f}, {len(by_model[best])} seed(s)) = "
        f"{test / PUBLISHED[dataset][0][1]:.0%} of the published SASRec with sampled softmax and "
        f"{test / PUBLISHED[dataset][2][1]:.0%} of the best published ({PUBLISHED[dataset][2][0]})."
        + (f" Our SASRec: {np.mean(sas):.4f} ({test and np.mean(sas) / PUBLISHED[dataset][0][1]:.0%})." if sas else ""),
    ]
    return lines


def _loss_words(rec: dict) -> str:
    """How a record's run scored and sampled ('dot-product logits, 256 negatives drawn per position'), read
    from the preset when the record ran the preset as it is now; an earlier version is named by its commit."""
    from argusrec.config import load_config

    if rec.get("preset_digest") != preset_digest(rec["model"], rec["dataset"]):
        return f"those of the {rec['preset']} preset at commit {rec['commit']} (an earlier version)"
    cfg = load_config(rec["preset"], rec.get("overrides", []))
    logits = f"cosine / temperature {cfg.loss.temperature}" if cfg.model.normalize else "dot-product logits"
    shared = "drawn per position" if cfg.loss.uniform_sharing == "position" else "shared by the batch"
    return f"{logits}, {cfg.loss.uniform_negatives} negatives {shared}"


def rectools_pair(rows: list[dict], rt: dict) -> dict | None:
    """Our sasrec run a RecTools record was trained against: the one its ``paired_with`` names, or (records
    written before that key) the newest CPU run of the same seed that trained the same number of epochs."""
    ours = [
        r for r in rows if r["model"] == "sasrec" and r["seed"] == rt["seed"] and r["metrics"] and _where(r) == "cpu"
    ]
    if "paired_with" in rt:
        ours = [r for r in ours if all(r.get(k) == v for k, v in rt["paired_with"].items())]
    else:
        ours = [r for r in ours if r.get("epochs_run") == rt["epochs_run"]]
    return ours[-1] if ours else None  # records are appended as runs finish: the last is the newest


def _targets_words(rt: dict) -> str:
    """How the two sides' training targets per epoch compare (RecTools keeps a user's last max_len + 1 events)."""
    n = rt.get("targets_per_epoch")
    if n is None:
        return "training targets per epoch not recorded"
    if n["ours"] == n["rectools"]:
        return f"the same {n['ours']:,} training targets per epoch"
    return (
        f"training targets per epoch: ours {n['ours']:,}, RecTools {n['rectools']:,}, which trains on each user's "
        "last max_len + 1 training events only"
    )


def _epochs_words(rt: dict) -> str:
    n = rt.get("reduced_from")
    return f"{rt['epochs_run']} epochs" if not n else f"{rt['epochs_run']} of our run's {n} epochs (a reduced run)"


def _when_words(ours: dict, rt: dict) -> str:
    """Whether the two sides of a RecTools ratio were measured together: runs of different days may have run on
    different machines (the hardware label of older records does not tell 2-core machines apart)."""
    a, b = ours.get("date"), rt.get("date")
    if a and b and a != b:
        return (
            f"The two were measured on different days (ours {a} on {ours['hardware']}; RecTools {b} on "
            f"{rt['hardware']}), so the throughput ratio may compare two machines."
        )
    return "The two were measured one after the other on the same machine (see the run conditions for how busy it was)."


def _ndcg_ratio(ours: dict, rt: dict) -> str:
    """NDCG@10 ours/theirs: on test after the same epochs or, for a reduced RecTools run, on validation after
    RecTools' epochs (read off our run's validation curve, whose epochs count from 0)."""
    om, tm = ours["metrics"], rt["metrics"]
    if not rt.get("reduced_from"):
        a, b = om["test/NDCG@10"], tm["test/NDCG@10"]
        return f"test NDCG@10 = {a:.4f} / {b:.4f} = **{a / max(b, 1e-12):.2f}x**"
    epochs = rt["epochs_run"]
    at = {int(e): v for e, v in ours.get("valid_curve") or []}.get(epochs - 1)
    unequal = (
        f"test NDCG@10 is not compared at equal training: ours {om['test/NDCG@10']:.4f} (best of "
        f"{rt['reduced_from']} epochs on validation), theirs {tm['test/NDCG@10']:.4f} (after {epochs})"
    )
    if at is None:
        return f"no NDCG ratio (our run's validation curve has no point after {epochs} epochs); {unequal}"
    b = tm["valid/NDCG@10"]
    return f"validation NDCG@10 after {epochs} epochs = {at:.4f} / {b:.4f} = **{at / max(b, 1e-12):.2f}x** ({unequal})"


def _rectools(rows: list[dict]) -> list[str]:
    lines: list[str] = []
    for rt in (r for r in rows if r["model"] == "rectools-sasrec" and r["metrics"]):
        ours = rectools_pair(rows, rt)
        if not ours:
            continue
        om, tm = ours["metrics"], rt["metrics"]
        lines += [
            "",
            f"**RecTools ratio** ({rt['library']}, SASRecModel, {rt['loss']}"
            f"{' with ' + str(rt['negatives']) + ' negatives' if rt.get('negatives') else ''},"
            f" same sizes and {_epochs_words(rt)}; {_targets_words(rt)}): ours/theirs",
            f"{_ndcg_ratio(ours, rt)}; training throughput = "
            f"{om['events_per_s']:,.0f} / {tm['events_per_s']:,.0f} events/s = "
            f"**{om['events_per_s'] / tm['events_per_s']:.2f}x**; peak RSS {om['peak_rss_mb']:,.0f} / "
            f"{tm['peak_rss_mb']:,.0f} MB. (Task reference: RecTools 0.19 full softmax on Beauty ~1,060",
            "events/s, 4.4 GB.) RecTools has no validation-based selection here (its last epoch is scored);",
            f"its loss uses dot-product logits and negatives drawn per position; ours {_loss_words(ours)}.",
            _when_words(ours, rt),
            "The throughput of the current preset against RecTools, step for step on the same",
            "configuration, is in the section of `benchmarks/rectools_throughput.py`.",
        ]
    return lines


if __name__ == "__main__":
    main()
