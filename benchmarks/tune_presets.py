"""Validation-only hyper-parameter sweep of the leave-one-out presets (Amazon Beauty / Sports first).

Every grid entry is a list of overrides applied on top of a model's preset (``leave_one_out.preset_for``:
``sasrec-beauty``, ``hstu-sports``, ...); each (dataset, model, grid entry, seed) is one training run, in its
own process, through the leave-one-out benchmark's machinery (``leave_one_out.prepare``,
``training_runs.train_one``: early stopping and the best checkpoint on valid/NDCG@10, a run still training at
``--run-limit`` seconds is killed and its best checkpoint evaluated, a run left behind by a benchmark that died is
continued from its last checkpoint). The entry chosen per (dataset, model) is the one with the highest mean
**valid**/NDCG@10 over the seeds: test metrics are recorded
and shown, never used to choose.

Grid ``recipe`` (the published SASRec with sampled softmax: blondered/transformer_benchmark
configs/paper/loo/s3_vanilla.yaml, eSASRec README / RecTools SASRecModel: dim 256, 1 block, 1 head, dropout 0.2,
256 uniform negatives, history 50, lr 1e-3, batch 128, dot-product logits; history, lr, batch and negatives
are already those of the Amazon presets):

    preset            the preset as it is (dim 64, 2 layers, dropout 0.5, cosine / temperature 0.05)
    esasrec           dim 256, ffn 256, 1 layer, 1 head, dropout 0.2, dot product, temperature 1
    esasrec-cos       esasrec with cosine similarity / temperature 0.05 (model.normalize=true)
    esasrec-2l        esasrec with 2 layers
    esasrec-d128      esasrec with dim / ffn 128
    esasrec-drop0.5   esasrec with dropout 0.5
    esasrec-neg512    esasrec with 512 uniform negatives

Keys a model has no use for are dropped for it (HSTU has no FFN: ``model.ffn_dim``), and so is any key its
config rejects; the records say what was dropped. Grid ``around`` varies esasrec's learning
rate and dropout. Grid ``sampler`` varies where esasrec's negatives come from and how its batches are
formed: 256 uniform negatives shared by the batch (``esasrec``) or drawn for every position as RecTools'
SASRec does (``-pos``; ``esasrec-pos-cos`` with cosine logits), the full catalog (``esasrec-full``), and
length-bucketed batches (the default) or randomly mixed ones (``-mixed``; the current Amazon presets are
``esasrec-pos-mixed``). Grid ``refine`` changes one thing each on top of the preset as it is (dropout 0.3 /
0.4, lr 5e-4 / 2.5e-4, 2 blocks, 512 negatives, the original SASRec code's residual, RecTools' Xavier initialisation
without the sqrt(D) input scale, the last two together, queries that also attend to the window's padding slots as
RecTools' (``model.attend_padding``), alone and with the original residual). Grid ``bsarec`` compares the
bsarec presets' length-bucketed batches with randomly mixed ones, and without / with the empty-history samples of
the authors' code (``model.empty_state``), and with the authors' padding slots (``model.padding_content``: the
normalised position vectors in every padding slot of the whole window). Grid ``bsarec-hparams`` changes one of the
bsarec presets' settings each (learning rate, filter mix alpha, filter bins, width, dropout, weight averaging, a
cosine learning-rate decay over 60 epochs); it is meant for a GPU
(``--device cuda --grid bsarec-hparams --datasets beauty,sports --models bsarec``): a CPU run of one entry takes
1-2 h on Beauty (the preset's three leave-one-out seeds: 3,930-6,982 s on one thread). ``--labels`` runs a
subset of a grid.

    # CPU smoke run (minutes): two entries, one epoch each
    python benchmarks/tune_presets.py --datasets beauty --models sasrec --labels preset,esasrec \\
        --max-epochs 1 --threads 1 --jobs 1 --run-limit 120 --workdir /tmp/tune-smoke
    # GPU (one H100, 16 cores): the whole recipe grid on Beauty and Sports, 14 runs at once, ~8.5 min
    python benchmarks/tune_presets.py --device cuda --jobs 14 --threads 1 --run-limit 420 \\
        --workdir .devdata/loo --datasets beauty,sports --models sasrec --deadline 1
    # HSTU / FuXi-alpha under the same recipe
    python benchmarks/tune_presets.py --device cuda --jobs 14 --threads 1 --run-limit 420 \\
        --workdir .devdata/loo --datasets beauty,sports --models hstu,fuxi --deadline 1 --resume
    python benchmarks/tune_presets.py --print-best     # the chosen entry's overrides, for the preset YAML
    python benchmarks/tune_presets.py --render-only    # rewrite the markdown only

Writes benchmarks/results/tune_presets.json (after every run; without ``--resume`` it starts empty) and the
``tune_presets`` section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import math
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import leave_one_out as loo
import training_runs
from report import read_results, record, stamp_note, write_results, write_section

BENCH = "tune_presets"
MONITOR = "valid/NDCG@10"  # the only metric that chooses

# Dot-product logits with a fixed temperature of 1. For next-item training, cosine vs dot is decided by
# model.normalize (the model L2-normalises its states and item vectors; NextItemTask then calls the loss with
# "dot"); loss.similarity is read by ARGUS pre-training only. Both are set so that the resolved config says
# the same thing twice. The config accepts every combination (temperature in [0.01, 100]).
ESASREC = [
    "model.dim=256",
    "model.ffn_dim=256",
    "model.layers=1",
    "model.heads=1",
    "model.dropout=0.2",
    "model.normalize=false",
    "loss.similarity=dot",
    "loss.temperature=1.0",
    # the sampler and batching the grids were first run with (the presets' settings until d565197): negatives
    # shared by the batch, length-bucketed batches; grid ``sampler`` changes them
    "loss.uniform_sharing=batch",
    "train.bucket_batches=64",
]
COSINE = ["model.normalize=true", "loss.similarity=cosine", "loss.temperature=0.05"]


def _with(base: list[str], *changes: str) -> list[str]:
    """``base`` with the keys of ``changes`` replaced in place (new keys appended)."""
    out = list(base)
    for change in changes:
        key = change.partition("=")[0]
        at = next((i for i, o in enumerate(out) if o.partition("=")[0] == key), None)
        if at is None:
            out.append(change)
        else:
            out[at] = change
    return out


GRIDS: dict[str, list[tuple[str, list[str]]]] = {
    "recipe": [
        ("preset", []),
        ("esasrec", ESASREC),
        ("esasrec-cos", _with(ESASREC, *COSINE)),
        ("esasrec-2l", _with(ESASREC, "model.layers=2")),
        ("esasrec-d128", _with(ESASREC, "model.dim=128", "model.ffn_dim=128")),
        ("esasrec-drop0.5", _with(ESASREC, "model.dropout=0.5")),
        ("esasrec-neg512", _with(ESASREC, "loss.uniform_negatives=512")),
    ],
    "around": [
        ("esasrec", ESASREC),
        ("esasrec-lr5e-4", _with(ESASREC, "optim.lr=0.0005")),
        ("esasrec-lr2e-3", _with(ESASREC, "optim.lr=0.002")),
        ("esasrec-drop0.3", _with(ESASREC, "model.dropout=0.3")),
        ("esasrec-drop0.1", _with(ESASREC, "model.dropout=0.1")),
        ("esasrec-beta999", _with(ESASREC, "optim.betas=[0.9,0.999]")),  # torch's Adam default (RecTools)
    ],
    "sampler": [
        ("esasrec", ESASREC),
        ("esasrec-pos", _with(ESASREC, "loss.uniform_sharing=position")),  # RecTools' sampler: R per position
        ("esasrec-mixed", _with(ESASREC, "train.bucket_batches=null")),  # randomly mixed batches
        ("esasrec-pos-mixed", _with(ESASREC, "loss.uniform_sharing=position", "train.bucket_batches=null")),
        ("esasrec-pos-cos", _with(ESASREC, *COSINE, "loss.uniform_sharing=position", "train.bucket_batches=null")),
        ("esasrec-full", _with(ESASREC, "loss.kind=full_softmax", "train.bucket_batches=null")),
    ],
    # Around the current Amazon presets (= esasrec-pos-mixed for SASRec): one change each.
    "refine": [
        ("preset", []),
        ("preset-drop0.3", ["model.dropout=0.3"]),
        ("preset-drop0.4", ["model.dropout=0.4"]),
        ("preset-lr5e-4", ["optim.lr=0.0005"]),
        ("preset-lr2.5e-4", ["optim.lr=0.00025"]),  # halving from 1e-3 raised valid on both; once more
        ("preset-2l", ["model.layers=2"]),
        ("preset-neg512", ["loss.uniform_negatives=512"]),
        ("preset-normed", ["model.residual=normed"]),  # the original SASRec code's block, as RecTools
        ("preset-xavier", ["model.init=xavier", "model.input_scale=false"]),  # RecTools' initialisation and input
        ("preset-rectools", ["model.residual=normed", "model.init=xavier", "model.input_scale=false"]),  # both
        # RecTools applies no key padding mask: queries also attend to the window's zeroed padding slots
        ("preset-padkeys", ["model.attend_padding=true"]),
        ("preset-rectools-padkeys", ["model.residual=normed", "model.attend_padding=true"]),
    ],
    # MovieLens (ml-100k, ml-latest-small: the ml-1m presets, HSTU's recipe of cosine / 0.05 logits, negatives
    # shared by the batch, length-bucketed batches) against the sampler and batching that won on Amazon, then
    # RecTools' recipe at the same sizes (dot-product logits too): RecTools' SASRec beat ours 1.75x on ml-100k
    # at 40 epochs with those sizes. preset-pos-mixed won (valid NDCG@10 .0761 -> .1192 on ml-100k) and is what
    # Meta's code does, so the *-ml-1m / *-ml-20m presets now draw negatives per position and mix their batches:
    # since then "preset" is preset-pos-mixed.
    "movielens": [
        ("preset", []),
        ("preset-pos-mixed", ["loss.uniform_sharing=position", "train.bucket_batches=null"]),
        (
            "preset-dot-pos-mixed",
            [
                "model.normalize=false",
                "loss.similarity=dot",
                "loss.temperature=1.0",
                "loss.uniform_sharing=position",
                "train.bucket_batches=null",
            ],
        ),
    ],
    # BSARec: the presets' length-bucketed batches (2x faster steps on a CPU) against randomly mixed ones (the
    # authors' code), as bucketing cost SASRec quality on Beauty.
    "bsarec": [
        ("preset", []),
        ("preset-mixed", ["train.bucket_batches=null"]),
        ("preset-empty", ["model.empty_state=true"]),  # the authors' empty-history samples (one per user)
        # The authors' window: every batch padded to max_len, padding slots holding the normalised position vectors
        # that the filter mixes into the real slots; randomly mixed batches as theirs (with the model padding every
        # batch to the window, length buckets would save no compute)
        ("preset-content", ["model.padding_content=true", "train.bucket_batches=null"]),
    ],
    # BSARec's own settings on our data, one change each: the presets keep the authors' published Beauty
    # values (lr 5e-4, alpha 0.7, c = 5 -> 3 bins, dim 64, dropout 0.5), which were never varied here.
    "bsarec-hparams": [
        ("preset", []),
        ("preset-lr1e-3", ["optim.lr=0.001"]),
        ("preset-mix0.5", ["model.frequency_mix=0.5"]),
        ("preset-mix0.9", ["model.frequency_mix=0.9"]),
        ("preset-bins2", ["model.frequency_bins=2"]),  # the authors' c = 3
        ("preset-bins4", ["model.frequency_bins=4"]),  # the authors' c = 7
        ("preset-d128", ["model.dim=128"]),
        ("preset-drop0.4", ["model.dropout=0.4"]),
        # validated and tested with an exponential moving average of the weights (window ~1,000 steps, 2 Beauty
        # epochs, once the ramp reaches the decay after ~9,000 steps, epoch 17)
        ("preset-ema0.999", ["train.ema_decay=0.999"]),
        # the learning rate decayed to 0 along a cosine over 60 epochs (the averaged Beauty seeds peaked at epochs
        # 42-47 at a constant rate); the epoch count is the schedule's length, early stopping still acts (a
        # --max-epochs below 60 caps train.epochs and so squeezes the whole decay into the cap)
        ("preset-cosine60", ["optim.schedule=cosine", "train.epochs=60"]),
    ],
}
# Keys a kind has no use for: HSTU layers have no feed-forward network (its config refuses model.ffn_dim).
IGNORED = {"hstu": {"model.ffn_dim"}}
MODELS = [m for m in loo.MODELS if m != "rectools-sasrec"]


def overrides_for(model: str, dataset: str, data: Path, overrides: list[str]) -> tuple[list[str], list[str]]:
    """(the overrides this model's run gets, the ones dropped): keys it ignores, then keys its config rejects."""
    from argusrec.config import load_config
    from argusrec.errors import ArgusrecError

    preset, extra = loo.preset_for(model, dataset)
    base = [*extra, f"data.path={data}"]
    kind = load_config(preset, base).model.kind
    kept = [o for o in overrides if o.partition("=")[0] not in IGNORED.get(kind, set())]
    try:
        load_config(preset, [*base, *kept])
    except ArgusrecError as e:  # drop the keys named in the error, once; anything else is a real error
        named = [o for o in kept if f"  {o.partition('=')[0]}:" in str(e)]
        if not named:
            raise
        kept = [o for o in kept if o not in named]
        load_config(preset, [*base, *kept])
    return kept, [o for o in overrides if o not in kept]


class Sweep:
    def __init__(self, args: argparse.Namespace, records: list[dict]) -> None:
        self.args, self.records = args, records
        self.work = Path(args.workdir)
        self.lock = threading.Lock()  # --jobs > 1: runs finish in worker threads
        self.ran_on = loo._ran_on(args)
        self.where = loo._where({"ran_on": self.ran_on})

    @staticmethod
    def key(r: dict) -> tuple:
        return (r["dataset"], r["model"], r["label"], r["seed"], loo._where(r), tuple(r["grid_overrides"]))

    def done(self, dataset: str, model: str, label: str, overrides: list[str], seed: int) -> bool:
        """A record with metrics exists for this run (same overrides, on the preset as it is now; records older
        than the preset digest count as current) on this device kind."""
        key = (dataset, model, label, seed, self.where, tuple(overrides))
        current = loo.preset_digest(model, dataset)
        return any(
            r["metrics"] and self.key(r) == key and r.get("preset_digest", current) == current for r in self.records
        )

    def save(self) -> None:
        self.records[:] = write_results(BENCH, self.records)  # with what other processes wrote meanwhile
        write_section(BENCH, markdown(self.records))

    def run(self, dataset: str, model: str, label: str, overrides: list[str], seed: int, deadline: float) -> None:
        if self.done(dataset, model, label, overrides, seed):
            return
        data = loo.prepare(self.work, dataset)
        if data is None:
            print(f"[{dataset}] skipped: {loo.SHARED / loo.DATASETS[dataset][1]} is absent", flush=True)
            return
        common = {"label": label, "grid": self.args.grid, "grid_overrides": overrides, "ran_on": self.ran_on}
        common["note_run"] = self.args.note  # this invocation's runs only (--resume keeps older records' notes)
        common["preset_digest"] = loo.preset_digest(model, dataset)  # the preset these overrides were applied to
        if time.time() > deadline:
            note = f"not run: the sweep's deadline ({self.args.deadline:.0f} min) had passed"
            rec = record(BENCH, dataset, model, {}, 0.0, seed=seed, note=note, **common)
        else:
            try:
                rec = self.train(dataset, data, model, label, overrides, seed, common)
            except Exception as e:  # recorded, never hidden: the table shows the failure
                print(f"  {dataset} {model} {label} s{seed} failed: {str(e)[-2000:]}", flush=True)
                rec = record(BENCH, dataset, model, {}, 0.0, seed=seed, note=f"failed: {str(e)[-400:]}", **common)
        with self.lock:
            key = self.key(rec)  # replaces earlier empty records (not run / failed) of the same run
            self.records[:] = [r for r in self.records if r["metrics"] or self.key(r) != key]
            self.records.append(rec)
            self.save()

    def train(
        self, dataset: str, data: Path, model: str, label: str, overrides: list[str], seed: int, common: dict
    ) -> dict:
        from argusrec.config import load_config

        preset, extra = loo.preset_for(model, dataset)
        if self.args.patience is not None:  # in epochs: validate every epoch, stop after this many without a gain
            extra = [*extra, "train.eval_every=1", f"train.patience={self.args.patience}"]
        kept, dropped = overrides_for(model, dataset, data, overrides)
        cfg = load_config(preset, [*extra, *kept, f"data.path={data}"])
        cap = min(self.args.max_epochs, cfg.train.epochs)
        print(
            f"[{dataset}] {model} {label} seed {seed}: {preset} {' '.join(kept) or '(as is)'}, epochs cap {cap}"
            + (f", dropped {' '.join(dropped)}" if dropped else ""),
            flush=True,
        )
        run = training_runs.train_one(
            self.work,
            f"{dataset}-{model}-{label}-s{seed}",
            data,
            preset,
            [*extra, *kept],
            seed,
            epochs=cap,
            eval_every=self.args.eval_every,
            threads=self.args.threads,
            device=self.args.device,
            limit=self.args.run_limit,
        )
        s = run.summary
        return record(
            BENCH,
            dataset,
            model,
            run.metrics,
            run.seconds,
            seed=seed,
            preset=preset,
            applied=kept,
            dropped=dropped,
            overrides=run.overrides,
            epochs_cap=cap,
            epochs_run=s["epochs_run"],
            best_epoch=s["best_epoch"],
            stopped_early=s["stopped_early"],
            stopped_by_time_limit=run.limited,
            continued_from=run.continued,
            config_sha1=run.config_sha1,
            train_seconds=s["train_seconds"],
            run_limit_s=self.args.run_limit,
            popularity_baseline=run.popularity,
            valid_curve=run.curve,
            **common,
            **run.load,
        )


def _label_order() -> list[str]:
    order: list[str] = []
    for entries in GRIDS.values():
        order += [label for label, _ in entries if label not in order]
    return order


def _groups(records: list[dict]) -> dict[tuple[str, str, str], list[dict]]:
    """(where, dataset, model) -> its records, GPU first, datasets and models in leave_one_out's order."""
    out: dict[tuple[str, str, str], list[dict]] = {}
    for where in ("gpu", "cpu"):
        for dataset in loo.DATASETS:
            for model in loo.MODELS:
                rows = [r for r in records if (loo._where(r), r["dataset"], r["model"]) == (where, dataset, model)]
                if rows:
                    out[(where, dataset, model)] = rows
    return out


def row_label(r: dict, current: str) -> str:
    """A run's row: its grid label, plus the preset version when the overrides were applied to an earlier
    version of the preset than ``current`` (today's digest; a record without one counts as today's: the records
    from before digests were stored have theirs backfilled, ``preset_digest_backfilled``). The seeds of one entry
    on one preset version share a row whatever commit ran them (the section lists the commits)."""
    digest = r.get("preset_digest")
    if digest is None or digest == current:
        return r["label"]
    return f"{r['label']} (earlier preset {digest})"


def _by_label(rows: list[dict]) -> dict[str, list[dict]]:
    """row label (:func:`row_label`) -> its runs with metrics (the latest overrides of the label only, the latest
    run of each seed), in grid order, rows on an earlier preset after those on today's. ``rows``: one (dataset,
    model)."""
    runs: dict[str, list[dict]] = {}
    current = loo.preset_digest(rows[0]["model"], rows[0]["dataset"]) if rows else ""  # once: it loads the preset
    for r in rows:
        if r["metrics"]:
            runs.setdefault(row_label(r, current), []).append(r)
    for label, rs in runs.items():
        # the label's latest overrides only, and each seed's latest run (a re-run stands for its seed)
        runs[label] = list({r["seed"]: r for r in rs if r["grid_overrides"] == rs[-1]["grid_overrides"]}.values())
    order = _label_order()
    return dict(sorted(runs.items(), key=lambda kv: (kv[0] != kv[1][0]["label"], _rank(order, kv[1][0]["label"]))))


def _rank(order: list[str], label: str) -> int:
    return order.index(label) if label in order else len(order)


def selected(rows: list[dict]) -> tuple[str, list[dict]] | None:
    """The label with the highest mean valid/NDCG@10 over its seeds (never test), and its runs."""
    runs = _by_label(rows)
    if not runs:
        return None
    label = max(runs, key=lambda lb: float(np.mean([r["metrics"][MONITOR] for r in runs[lb]])))
    return label, runs[label]


def _published(dataset: str, model: str) -> list[tuple[str, float, float, str]]:
    rows = loo.PUBLISHED.get(dataset, [])
    return [p for p in rows if p[0].startswith("HSTU")] if model.startswith("hstu") else rows[:1]


def markdown(records: list[dict]) -> str:
    title = "## Preset tuning on validation (`benchmarks/tune_presets.py`)"
    if not records:
        return f"{title}\n\nNo results yet."
    lines = [
        title,
        "",
        "Leave-one-out, full ranking, history removed (as `leave_one_out`). Each row = a model's preset plus the",
        "grid entry's overrides; every run is selected (early stopping, best checkpoint) on valid/NDCG@10, and the",
        "entry is **chosen on mean valid/NDCG@10 only**; test metrics are shown, never used to choose. Metrics are",
        "mean ± sample std over the seeds listed. `time limit`: stopped at its wall-clock limit, its best checkpoint",
        "so far evaluated (a lower bound of what the entry reaches). `(earlier preset D)`: the entry's overrides were",
        "applied to an earlier version of the preset (digest D; for runs from before records stored it, the digest of",
        "the preset file at the run's commit resolved with today's config defaults, `preset_digest_backfilled`).",
        "",
    ]
    groups = _groups(records)
    for where in ("gpu", "cpu"):
        group = [r for (w, _, _), rows in groups.items() if w == where for r in rows]
        if not group:
            continue
        hw = sorted({r["hardware"] for r in group if r["metrics"]})
        commits = sorted({r["commit"] for r in group if r["metrics"]})
        ran = sorted({r["ran_on"] for r in group if r["metrics"]})
        limits = sorted({f"{r['run_limit_s']:.0f} s" for r in group if r["metrics"] and r.get("run_limit_s")})
        notes = sorted({r["note_run"] for r in group if r.get("note_run")})
        lines += [
            f"### {'GPU' if where == 'gpu' else 'CPU'} runs",
            "",
            f"Hardware: {'; '.join(hw) or '—'}. Ran on: {'; '.join(ran) or '—'}. "
            f"Commit(s): {', '.join(commits) or '—'}."
            + (f" Wall-clock limit per run: {', '.join(limits)}." if limits else ""),
            "",
        ]
        lines += [f"Run conditions: {n}" for n in notes] + ([""] if notes else [])
        for (w, dataset, model), rows in groups.items():
            if w == where:
                lines += _section(dataset, model, rows, where)
    return "\n".join(lines)


def _section(dataset: str, model: str, rows: list[dict], where: str) -> list[str]:
    preset = next((r["preset"] for r in rows if r.get("preset")), loo.preset_for(model, dataset)[0])
    lines = [
        f"#### {dataset}, {model} (preset `{preset}`, {where.upper()})",
        "",
        "| label | overrides | seeds | valid NDCG@10 | test NDCG@10 | test HR@10 | epochs run / cap (best) | ended "
        "| events/s |",
        "|---|---|---:|---:|---:|---:|---|---|---:|",
    ]
    runs = _by_label(rows)
    if not runs:
        lines = lines[:1]  # no table: every run of this (dataset, model) failed or was not run
    for label, rs in runs.items():
        ov = " ".join(f"`{o}`" for o in rs[-1]["applied"]) or "(preset as is)"
        if rs[-1].get("dropped"):
            ov += " (dropped: " + " ".join(f"`{o}`" for o in rs[-1]["dropped"]) + ")"
        cols = [loo._mean_std([r["metrics"][k] for r in rs]) for k in (MONITOR, "test/NDCG@10", "test/HR@10")]
        epochs = "; ".join(f"{r['epochs_run']}/{r['epochs_cap']} ({r['best_epoch']})" for r in rs)
        tps = [r["metrics"]["events_per_s"] for r in rs if not math.isnan(r["metrics"].get("events_per_s", math.nan))]
        lines.append(
            f"| {label} | {ov} | {','.join(str(r['seed']) for r in rs)} | {' | '.join(cols)} | {epochs} | "
            f"{'; '.join(loo.how_it_ended(r) for r in rs)} | {f'{np.mean(tps):,.0f}' if tps else '—'} |"
        )
    pick = selected(rows)
    if pick:
        label, rs = pick
        several = len(_by_label(rows)) > 1  # with one entry nothing was compared here
        lines += [
            "",
            f"{'Selected on validation' if several else 'The only entry run here'}: **{label}** (valid NDCG@10 "
            f"{np.mean([r['metrics'][MONITOR] for r in rs]):.4f}, test NDCG@10 "
            f"{np.mean([r['metrics']['test/NDCG@10'] for r in rs]):.4f}, {len(rs)} seed(s)).",
        ]
    failed = [r for r in rows if not r["metrics"]]
    if failed:
        lines += ["", "Not run / failed: " + "; ".join(f"{r['label']} s{r['seed']}: {r['note']}" for r in failed)]
    published = _published(dataset, model)
    if published:
        lines += ["", "| published (PEERS.md §5, full training, history 50) | NDCG@10 | HR@10 | source |"]
        lines += ["|---|---:|---:|---|"]
        lines += [f"| {n} | {nd:.4f} | {hr:.4f} | {src} |" for n, nd, hr, src in published]
    return [*lines, ""]


def print_best(records: list[dict]) -> None:
    """Per (device kind, dataset, model): the label chosen on validation and its overrides, as YAML too."""
    groups = _groups(records)
    if not groups:
        print("no results yet")
    for (where, dataset, model), rows in groups.items():
        pick = selected(rows)
        if pick is None:
            continue
        label, rs = pick
        applied = rs[-1]["applied"]
        valid = np.mean([r["metrics"][MONITOR] for r in rs])
        test = np.mean([r["metrics"]["test/NDCG@10"] for r in rs])
        print(
            f"{dataset} {model} ({where}, preset {rs[-1]['preset']}): {label} -- valid NDCG@10 {valid:.4f} "
            f"(test {test:.4f}), {len(rs)} seed(s)"
        )
        print(f"  overrides: {' '.join(applied) or '(none: keep the preset)'}")
        tree: dict = {}
        for o in applied:
            key, _, raw = o.partition("=")
            *path, leaf = key.split(".")
            node = tree
            for k in path:
                node = node.setdefault(k, {})
            node[leaf] = yaml.safe_load(raw)
        if tree:
            print("  " + yaml.safe_dump(tree, sort_keys=False, default_flow_style=False).replace("\n", "\n  ").rstrip())


def main() -> None:
    training_runs.stop_children_on_exit()
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", default="beauty,sports", help="comma-separated (leave_one_out's names)")
    ap.add_argument("--models", default="sasrec", help=f"comma-separated, of {','.join(MODELS)}")
    ap.add_argument("--grid", default="recipe", choices=sorted(GRIDS), help="named grid of overrides")
    ap.add_argument("--labels", default="", help="comma-separated subset of the grid's entries (default: all)")
    ap.add_argument("--seeds", default="0", help="comma-separated")
    ap.add_argument("--max-epochs", type=int, default=200, help="epoch cap of every run (and the preset's epochs)")
    ap.add_argument("--eval-every", type=int, default=1, help="validate every N epochs (patience stays in epochs)")
    ap.add_argument(
        "--patience", type=int, default=None, help="early-stopping patience in epochs (default: the preset's)"
    )
    training_runs.add_run_options(ap, shared=loo.SHARED)
    ap.add_argument("--print-best", action="store_true", help="print the entries chosen on validation; run nothing")
    args = ap.parse_args()
    loo.SHARED = Path(args.shared)
    records = read_results(BENCH, keep=args.render_only or args.print_best or args.resume)
    if args.print_best:
        print_best(records)
        return
    sweep = Sweep(args, records)
    if args.render_only:
        stamp_note(records, args.note)
        sweep.save()
        return
    datasets, models = args.datasets.split(","), args.models.split(",")
    bad = [d for d in datasets if d not in loo.DATASETS] + [m for m in models if m not in MODELS]
    entries = GRIDS[args.grid]
    if args.labels:
        wanted = args.labels.split(",")
        bad += [lb for lb in wanted if lb not in dict(entries)]
        entries = [(lb, ov) for lb, ov in entries if lb in wanted]
    if bad:
        ap.error(
            f"unknown: {', '.join(bad)} (datasets {list(loo.DATASETS)}, models {MODELS}, grid {args.grid}: "
            f"{[lb for lb, _ in GRIDS[args.grid]]})"
        )
    if not loo.SHARED.is_dir() and not any((Path(args.workdir) / d / "manifest.json").exists() for d in datasets):
        print(f"skipped: {loo.SHARED} is absent (the public datasets)")
        return
    deadline = time.time() + args.deadline * 60
    todo = [
        (d, m, label, overrides, int(seed))
        for seed in args.seeds.split(",")
        for d in datasets
        for m in models
        for label, overrides in entries
        if loo.supported(m, d)  # bsarec: Amazon only
    ]
    if args.jobs == 1:
        for t in todo:
            sweep.run(*t, deadline)
    else:
        for d in datasets:
            loo.prepare(sweep.work, d)  # once, before workers race to it
        with ThreadPoolExecutor(args.jobs) as pool:
            list(pool.map(lambda t: sweep.run(t[0], t[1], t[2], t[3], t[4], deadline), todo))
    sweep.save()
    print(f"wrote benchmarks/results/{BENCH}.json and docs/benchmarks.md\n")
    print_best(records)


if __name__ == "__main__":
    main()
