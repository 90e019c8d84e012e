"""ARGUS pre-training benchmark (issue 5): ground truth, the SASRec-style ablation, full vs simplified, scaling.

On data from the simulator (known ground truth, reference/ARGUS.md §6) and on MovieLens:

* **quality** — ``argus-simplified`` and ``argus-full`` (the ``argus-3m`` preset, ``argus.variant`` simplified /
  full) next to ``popularity`` (per-item training means for FP, training item frequencies for NIP) and
  ``oracle`` (the simulator's true probabilities; NIP: ``-log p_true(item)`` under the distribution that drew the
  event, :mod:`argusrec.eval.oracle`). Each model's share of the popularity-to-oracle gap is recorded as
  ``test/FP_AUC_gap_closed/<signal>``, ``test/FP_NE_gap_closed/<signal>`` and ``test/NIP_loss_gap_closed``.
* **ablation** — ``sasrec-ablation``: ``argus-3m`` simplified with NIP on positive events only
  (``argus.nip_on=positives``, ``argus.positive_signal=like``), no context (``argus.use_context=false``) and no FP
  loss (``argus.feedback_prediction=false``: SASRec has no feedback task). Its history still holds every event with
  its feedback as *input* (the library drops those only by rebuilding the dataset, which would move the temporal
  cut-offs and change the test period), so the ablation sees more than a real SASRec: an ARGUS win is
  conservative. Compared on ``test/NDCG@10`` = NDCG@10 of the true item in the full-catalog ranking over the test
  period's positive (liked) events (``test/NDCG@10_positive`` of :func:`argusrec.eval.argus_eval.evaluate_argus`).
* **scaling** — presets ``argus-tiny``, ``argus-3m``, ``argus-30m`` (``--presets`` adds ``argus-1m``, ``argus-300m``)
  on the same simulated data and on equal terms: every size trains with the quality preset's history length and
  batch size (the same events per step) for the epochs the ``argus-simplified`` run trained (within
  ``--scaling-budget`` seconds), learning-rate warmup capped at 10% of the steps; only the model changes (width,
  depth, heads, hashed table, the preset's lr). ``docs/argus_scaling.png`` plots test NIP loss and mean FP AUC
  against log10(transformer parameters). The ``argus-3m`` scaling record is the ``argus-simplified`` run, unless
  ``--scaling-epochs`` is given: then it is a run of its own (model ``argus-3m``) and the quality runs keep theirs.
  ``--lr-grid PRESET=LR,...`` trains a size once per rate and keeps the one with the lowest valid NIP loss.
  ``--scaling-items N`` runs the sizes on a simulation of their own (same events and users, N items: more events per
  item), recorded as dataset ``simulated-<events>-events-<N>-items`` with its own baselines, section and plot.
* **reference** — ``user-fit``: a feedback-prediction reference that is given the simulator's item side (genre
  centroids, item vectors, qualities, every constant of the feedback model) and fits only each user's taste and
  feedback offsets from their earlier feedback, day by day (:mod:`argusrec.eval.user_fit`): how much of the
  popularity-to-oracle gap the users' histories support when the items are known. No training; CPU minutes.
* **movielens** — ml-100k and ml-latest-small (``--shared-data``) with rating-derived feedback: ``like`` = rating
  >= 4, ``dislike`` = rating <= 2, ``rating`` = the stars (continuous), all as the adapter prepares them — the
  library maps ``rating`` onto [0, 1] by its training range for the feedback input and the FP loss
  (:func:`argusrec.recipes.pretrain.feedback_ranges`); ``argus-tiny`` and ``argus-3m``; positives = likes.

Every run trains through the library's :func:`argusrec.recipes.pretrain.pretrain`. Runs are capped in epochs so
that training fits ``--time-budget`` seconds at the throughput measured so far (a prior for the first run of a
preset); with ``--deadline`` the work is done most-important-first, the JSON and markdown are written after every
run, and what no longer fits is recorded as not run. A guard also stops a run's training at its budget x 1.5
(an optimistic estimate), evaluating the best checkpoint so far; the record says so.

    python benchmarks/argus_pretrain.py --device cuda --deadline 8 --shared-data .devdata   # H100, 9-minute limit
    python benchmarks/argus_pretrain.py --device cpu --events 60000 --time-budget 40 --deadline 14   # reduced CPU
    python benchmarks/argus_pretrain.py --only quality,ablation --events 1000000
    python benchmarks/argus_pretrain.py --device cpu --events 3000000 --only reference --resume  # user-fit only
    python benchmarks/argus_pretrain.py --render-only                                # markdown + plot from the JSON
    python benchmarks/argus_pretrain.py --device cuda --only scaling --presets argus-30m --scaling-epochs 6 \\
        --set argus-30m:optim.lr=3e-4 --resume --rerun argus-30m                     # one size again, lower lr
    python benchmarks/argus_pretrain.py --device cuda --only scaling --scaling-epochs 6 --scaling-budget 1100 \\
        --presets argus-tiny,argus-1m,argus-3m,argus-30m,argus-300m --lr-grid argus-tiny=1e-2,3e-3,3e-4 \\
        --lr-grid argus-1m=1e-3,3e-4,1e-4 --lr-grid argus-3m=1e-3,3e-4,1e-4 --lr-grid argus-30m=3e-4,1e-4,3e-5 \\
        --lr-grid argus-300m=1e-4 --resume          # the 6-epoch ladder, each size at its best rate on validation
    python benchmarks/argus_pretrain.py --device cuda --only scaling --scaling-items 3000 --scaling-epochs 6 \\
        --presets argus-tiny,argus-1m,argus-3m,argus-30m --lr-grid argus-1m=1e-3,3e-4 --resume   # denser data

Writes benchmarks/results/argus_pretrain.json, its section of docs/benchmarks.md and docs/argus_scaling.png.
"""

from __future__ import annotations

import argparse
import itertools
import logging
import math
import os
import platform
import sys
import time
import traceback
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import DOC, ROOT, commit, hardware, read_results, today, write_results, write_section

if str(ROOT) not in sys.path:  # run from a checkout where argusrec is not installed (e.g. a GPU machine)
    sys.path.insert(1, str(ROOT))

BENCH = "argus_pretrain"
SIM = "simulated"
PLOT = ROOT / "docs" / "argus_scaling.png"
PARTS = ("quality", "ablation", "scaling", "reference", "movielens")
USER_FIT = "user-fit"
KNOWN_TASTE = "known-taste"
QUALITY_PRESET = "argus-3m"
POSITIVE = "like"
MOVIELENS = {"ml-100k": "ml-100k", "ml-latest-small": "ml-latest-small"}
MOVIELENS_PRESETS = ("argus-tiny", "argus-3m")
# Training events per second (validation included) for the first run of a preset; later runs use what this
# run measured. CPU: 2 shared cores; CUDA: H100, bf16 autocast. Only the first guess of an epoch cap.
PRIOR_EVENTS_PER_S = {
    "cpu": {"argus-tiny": 20000, "argus-1m": 5000, "argus-3m": 1500, "argus-30m": 40, "argus-300m": 4, "argus-1b": 1},
    "cuda": {
        "argus-tiny": 300_000,
        "argus-1m": 200_000,
        "argus-3m": 150_000,
        "argus-30m": 80_000,  # 83,945 measured on an H100 shared by four runs (2026-11-25)
        "argus-300m": 30_000,  # 37,482 measured on an H100 shared with another run (2026-11-23)
        "argus-1b": 1_000,
    },
}
# The full variant runs 3T tokens (ARGUS.md §2); measured full/simplified time per event: CPU 3.6-3.9x, H100 ~1x
# at argus-3m (the GPU is not saturated by 3m at 1 token per event), 2-3.6x at 300m (argus_throughput.json).
FULL_SLOWDOWN = {"cpu": 3.0, "cuda": 1.5}
OVERHEAD_S = {"cpu": 15.0, "cuda": 12.0}  # setup + final valid/test evaluation of a run
MIN_RUN_S = {"cpu": 20.0, "cuda": 15.0}  # below this much time left a run is not started

log = logging.getLogger("argus_pretrain")


# ---------------------------------------------------------------------- the wall-clock guard
class _Guard:
    """Stops the training loop's batches at ``stop_at`` (time.monotonic()); ``fired`` says it did."""

    stop_at = math.inf
    fired = False


def _install_guard() -> None:
    """Wrap the batch source pretrain() builds so that an epoch ends early once the guard's time has passed.

    The loop then saves its position and stops (as with ``train.max_steps``); pretrain evaluates the best
    checkpoint so far (or the current weights when no epoch finished).
    """
    import argusrec.recipes.pretrain as pretrain_module
    from argusrec.data.batching import ChunkBatches

    class GuardedBatches(ChunkBatches):
        def epoch(self, epoch: int, start_batch: int = 0) -> Iterator[dict[str, np.ndarray]]:
            for batch in super().epoch(epoch, start_batch):
                if time.monotonic() > _Guard.stop_at:
                    _Guard.fired = True
                    return
                yield batch

    pretrain_module.ChunkBatches = GuardedBatches  # type: ignore[misc]


# ---------------------------------------------------------------------- data
def simulated_data(work: Path, events: int, seed: int, items: int | None = None) -> Path:
    """Simulate ``events`` events (seed; ``items`` items, default the simulator's events / 100) into ``work`` once;
    later calls reuse the prepared store."""
    from argusrec.data.simulator import SimulationConfig
    from argusrec.recipes.data import simulate

    out = work / (f"sim-{events}-s{seed}" + (f"-items{items}" if items else ""))
    if not (out / "manifest.json").exists():
        t = time.perf_counter()
        simulate(SimulationConfig(n_events=events, seed=seed, n_items=items), out, overwrite=True, progress=False)
        print(f"simulated {events:,} events -> {out} in {time.perf_counter() - t:.1f} s", flush=True)
    return out


def movielens_data(work: Path, shared: Path, name: str) -> Path | None:
    """Prepare a MovieLens dataset as the adapter does (``rating`` in stars: pre-training maps it onto [0, 1])."""
    from argusrec.recipes.data import open_source, prepare

    raw, out = shared / MOVIELENS[name], work / f"{name}-prepared"  # not the old "-rating01" stores (stars / 5)
    if (out / "manifest.json").exists():
        return out
    if not raw.exists():
        return None
    prepare(open_source("movielens", raw, progress=False), out, overwrite=True, progress=False)
    return out


# ---------------------------------------------------------------------- records
def _clean(metrics: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in metrics.items():
        if isinstance(v, float) and not math.isfinite(v):
            out[k] = None
        elif isinstance(v, (int, float, np.integer, np.floating)):
            out[k] = int(v) if isinstance(v, (int, np.integer)) else float(v)
        else:
            out[k] = v
    return out


def _num(x: Any) -> float:
    return float("nan") if x is None else float(x)


class Bench:
    def __init__(self, args: argparse.Namespace, records: list[dict]) -> None:
        self.args, self.records = args, records
        self.work = Path(args.workdir)
        self.work.mkdir(parents=True, exist_ok=True)
        self.device = args.device
        self.start = time.monotonic()
        self.deadline = self.start + args.deadline * 60 if math.isfinite(args.deadline) else math.inf
        self.rate: dict[tuple[str, str], float] = {}  # (preset, variant) -> training events/s measured here
        self.context: dict[str, Any] = {}  # per dataset: pop/oracle metrics, split summary
        self.hw = hardware() + (f", {_gpu_name()}" if self.device == "cuda" else "")

    # -------------------------------------------------------------- bookkeeping
    def done(self, dataset: str, model: str) -> bool:
        return any(r["dataset"] == dataset and r["model"] == model and not r.get("not_run") for r in self.records)

    def put(self, rec: dict) -> None:
        """Store ``rec`` as the record of its (dataset, model): the write replaces the earlier one (``_record_key``)."""
        self.records.append(rec)
        self.save()

    def save(self) -> None:
        self.records = write_results(BENCH, self.records, key=_record_key)
        render(self.records)

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def record(self, dataset: str, model: str, metrics: dict, seconds: float, **extra: Any) -> dict:
        return {
            "benchmark": BENCH,
            "dataset": dataset,
            "model": model,
            "seed": self.args.seed,
            "metrics": _clean(metrics),
            "seconds": round(seconds, 3),
            "hardware": self.hw,
            "commit": commit(),
            "device": self.device,
            "date": today(),
            "note_run": self.args.note,
            **extra,
        }

    def not_run(self, dataset: str, model: str, reason: str, **extra: Any) -> None:
        print(f"[{dataset}] {model}: not run ({reason})", flush=True)
        if not self.done(dataset, model):
            self.put(self.record(dataset, model, {}, 0.0, not_run=reason, **extra))

    # -------------------------------------------------------------- baselines
    def baselines(self, dataset: str, data: Path, preset: str, *, oracle: bool) -> None:
        """Popularity (and, on simulated data, oracle) records of ``dataset``; kept in self.context for gap closure."""
        from argusrec.config import load_config
        from argusrec.data.negatives import item_frequencies
        from argusrec.data.splits import EVAL_ROLES, EventRole
        from argusrec.data.store import SequenceStore
        from argusrec.eval.argus_eval import popularity_nip_loss
        from argusrec.eval.oracle import oracle_feedback_metrics, oracle_nip, popularity_feedback_metrics
        from argusrec.recipes.pretrain import feedback_ranges
        from argusrec.recipes.train import make_split

        store = SequenceStore.open(data)
        split = make_split(store, load_config(preset, [f"data.path={data}"]))
        ctx = self.context.setdefault(dataset, {})
        ctx["split"] = split.summary()
        t = time.perf_counter()
        train_freq = item_frequencies(store.items, store.n_items, mask=split.event_roles() == EventRole.TRAIN)
        feedback = {s: store.schema.feedback_kind(s).value for s in store.schema.feedback}
        ranges, _ = feedback_ranges(store, split, feedback, feedback)  # the map the ARGUS runs use (e.g. stars)
        pop: dict[str, Any] = {}
        for role in EVAL_ROLES:
            pop.update(popularity_nip_loss(store, split, role, train_freq))
            pop.update(popularity_feedback_metrics(store, split, role, feedback_ranges=ranges))
        ctx["popularity"] = pop
        if not self.done(dataset, "popularity"):
            self.put(
                self.record(
                    dataset, "popularity", pop, time.perf_counter() - t, data=_data_info(store), split=ctx["split"]
                )
            )
        if not oracle:
            return
        existing = self._record_of(dataset, "oracle", data)
        if existing is not None:
            ctx["oracle"] = existing["metrics"]
            return
        t = time.perf_counter()
        orc: dict[str, Any] = {}
        for role in EVAL_ROLES:
            orc.update(oracle_feedback_metrics(store, split, role))
        orc.update(oracle_nip(store, split, "test", max_events=self.args.oracle_events, seed=self.args.seed))
        ctx["oracle"] = orc
        print(f"[{dataset}] oracle + popularity in {time.perf_counter() - t:.1f} s", flush=True)
        self.put(
            self.record(
                dataset,
                "oracle",
                orc,
                time.perf_counter() - t,
                data=_data_info(store),
                split=ctx["split"],
                nip_subset=bool(orc.get("test/NIP_oracle_subset")),
            )
        )

    def references(self, dataset: str, data: Path, preset: str) -> None:
        """The FP references of a simulated dataset (argusrec/eval/user_fit.py), each once per data path:
        ``user-fit`` (the items known, the users fitted from their history) and ``known-taste`` (the oracle's
        feedback model with a stale or static true taste)."""
        from argusrec.config import load_config
        from argusrec.data.store import SequenceStore
        from argusrec.eval.oracle import gap_closure_metrics
        from argusrec.eval.user_fit import known_taste_feedback_metrics, user_fit_feedback_metrics
        from argusrec.recipes.train import make_split

        ctx = self.context.get(dataset, {})
        if "oracle" not in ctx:
            return
        store = SequenceStore.open(data)
        split = make_split(store, load_config(preset, [f"data.path={data}"]))

        def closure(m: dict) -> dict:
            return gap_closure_metrics(m, ctx["popularity"], ctx["oracle"], names=("FP_AUC", "FP_NE"))

        if self._record_of(dataset, KNOWN_TASTE, data) is None:
            t = time.perf_counter()
            m = {}
            for variant, vm in known_taste_feedback_metrics(store, split, "test").items():
                m.update({f"{variant}/{k}": v for k, v in {**vm, **closure(vm)}.items()})
            self.put(self.record(dataset, KNOWN_TASTE, m, time.perf_counter() - t, data=_data_info(store)))
        if self._record_of(dataset, USER_FIT, data) is None:
            t = time.perf_counter()
            m = user_fit_feedback_metrics(store, split)
            m.update(closure(m))
            print(f"[{dataset}] user-fit reference in {time.perf_counter() - t:.1f} s", flush=True)
            rec = self.record(dataset, USER_FIT, m, time.perf_counter() - t, data=_data_info(store), split=ctx["split"])
            self.put(rec)

    def _record_of(self, dataset: str, model: str, data: Path) -> dict | None:
        """The record of ``model`` on ``dataset`` computed from the data at ``data`` (same folder name), if any."""
        return next(
            (
                r
                for r in self.records
                if r["dataset"] == dataset and r["model"] == model and r.get("data", {}).get("path_name") == data.name
            ),
            None,
        )

    # -------------------------------------------------------------- one training run
    def plan(
        self, preset: str, variant: str, data: Path, overrides: list[str], epochs: int | None, budget_s: float
    ) -> dict[str, Any]:
        """Epoch cap (and max_steps when not even one epoch fits) for a run of ``preset`` within ``budget_s``.

        ``epochs``: the number of epochs wanted (None: the preset's, capped by --max-epochs). The learning-rate
        warmup is capped at 10% of the planned steps: a preset's warmup is sized for its full-length training
        (argus-300m: 2,000 steps), and a shorter run that never leaves warmup would compare sizes unfairly.
        """
        from argusrec.config import load_config
        from argusrec.data.batching import chunk_ranges
        from argusrec.data.store import SequenceStore
        from argusrec.recipes.train import make_split

        config = load_config(preset, [*overrides, f"data.path={data}"])
        store = SequenceStore.open(data)
        split = make_split(store, config)
        lo, hi = split.train_ranges()
        chunks = chunk_ranges(lo, hi, config.data.max_len, max_chunks_per_user=config.data.max_chunks_per_user)
        steps_per_epoch = max(1, -(-len(chunks) // config.train.batch_size))
        train_events = int((hi - lo).sum())
        rate = self.rate.get((preset, variant))
        if rate is None:
            slowdown = FULL_SLOWDOWN[self.device] if variant == "full" else 1.0
            rate = PRIOR_EVENTS_PER_S[self.device].get(preset, 100.0) / slowdown
        epoch_s = train_events / rate
        budget = min(budget_s, self.left() - OVERHEAD_S[self.device])
        wanted = epochs if epochs is not None else min(self.args.max_epochs, config.train.epochs)
        cap = min(wanted, math.floor(budget / epoch_s))
        max_steps = None
        if cap < 1:
            cap, max_steps = 1, max(1, math.floor(budget / epoch_s * steps_per_epoch))
        planned_steps = max_steps if max_steps is not None else cap * steps_per_epoch
        return {
            "epochs_wanted": wanted,
            "warmup_steps": min(config.optim.warmup_steps, max(1, math.ceil(0.1 * planned_steps))),
            "epochs_cap": cap,
            "max_steps": max_steps,
            "steps_per_epoch": steps_per_epoch,
            "train_events": train_events,
            "budget_s": round(budget, 1),
            "estimated_epoch_s": round(epoch_s, 2),
            "preset_epochs": config.train.epochs,
        }

    def train(
        self,
        dataset: str,
        data: Path,
        model: str,
        preset: str,
        variant: str,
        extra: Sequence[str],
        *,
        epochs: int | None = None,
        budget_s: float | None = None,
    ) -> dict | None:
        """Pre-train one model; returns its record (also stored), or None when it did not run.

        ``epochs`` / ``budget_s``: see :meth:`plan` (default: the preset's epochs within --time-budget).
        """
        from argusrec.config import load_config
        from argusrec.recipes.pretrain import pretrain

        if self.done(dataset, model):
            print(f"[{dataset}] {model}: done (kept from the JSON)", flush=True)
            return next(r for r in self.records if r["dataset"] == dataset and r["model"] == model)
        if named(model, self.args.skip):
            self.not_run(dataset, model, "skipped (--skip); see the run conditions", preset=preset)
            return None
        if self.left() < MIN_RUN_S[self.device] + OVERHEAD_S[self.device]:
            self.not_run(dataset, model, f"the run's deadline ({self.args.deadline:g} min) had passed", preset=preset)
            return None
        overrides = [
            *extra,
            f"argus.variant={variant}",
            f"train.device={self.device}",
            f"train.seed={self.args.seed}",
            f"argus.positive_signal={POSITIVE}",
            *user_overrides(self.args.set, preset),
        ]
        if self.device == "cuda":
            overrides.append("train.bf16=true")  # the default; explicit in the record
        if self.args.threads and self.device == "cpu":
            overrides.append(f"train.num_threads={self.args.threads}")
        plan = self.plan(
            preset, variant, data, overrides, epochs, self.args.time_budget if budget_s is None else budget_s
        )
        overrides += [f"optim.warmup_steps={plan['warmup_steps']}"]
        overrides += [f"data.path={data}", f"train.epochs={plan['epochs_cap']}"]
        if plan["max_steps"] is not None:
            overrides.append(f"train.max_steps={plan['max_steps']}")
        config = load_config(preset, overrides)
        run_dir = self.work / "runs" / f"{dataset}-{model}-{int(time.time())}"
        budget = plan["budget_s"]
        _Guard.stop_at = time.monotonic() + max(budget * 1.5, budget + 10)
        _Guard.stop_at = min(_Guard.stop_at, self.deadline - OVERHEAD_S[self.device])
        _Guard.fired = False
        steps = f", max_steps {plan['max_steps']}" if plan["max_steps"] else ""
        print(
            f"[{dataset}] {model}: {preset} {variant}, epochs cap {plan['epochs_cap']}{steps} "
            f"(~{plan['estimated_epoch_s']:.0f} s/epoch, budget {budget:.0f} s)",
            flush=True,
        )
        t = time.perf_counter()
        try:
            summary = pretrain(config, run_dir=run_dir, progress=False)
        except Exception as e:  # a failed run is a result too: record it, go on
            traceback.print_exc()
            self.put(
                self.record(
                    dataset,
                    model,
                    {},
                    time.perf_counter() - t,
                    not_run=f"failed: {type(e).__name__}: {e}",
                    preset=preset,
                )
            )
            return None
        finally:
            _Guard.stop_at = math.inf
        seconds = time.perf_counter() - t
        m = dict(summary["metrics"])
        if "test/NDCG@10_positive" in m:
            m["test/NDCG@10"] = m["test/NDCG@10_positive"]
            m["valid/NDCG@10"] = m.get("valid/NDCG@10_positive")
        ctx = self.context.get(dataset, {})
        pop = {**ctx.get("popularity", {}), **summary["popularity_baseline"]}
        if "oracle" in ctx:
            from argusrec.eval.oracle import gap_closure_metrics

            m.update(gap_closure_metrics(m, pop, ctx["oracle"]))
        events_done = summary["steps"] * plan["train_events"] / plan["steps_per_epoch"]
        if summary["train_seconds"] > 0 and summary["steps"] > 0:
            self.rate[(preset, variant)] = events_done / summary["train_seconds"]
        hit_cap = summary["epochs_run"] >= plan["epochs_cap"] < plan["preset_epochs"] and not summary["stopped_early"]
        by_budget = epochs is None or plan["epochs_cap"] < plan["epochs_wanted"]
        ended = (
            "time guard" if _Guard.fired else "max_steps" if plan["max_steps"] else
            "early stop" if summary["stopped_early"] else
            ("cap" if by_budget else "equal epochs") if hit_cap else "preset epochs"
        )  # fmt: skip
        rec = self.record(
            dataset,
            model,
            m,
            seconds,
            preset=preset,
            variant=variant,
            overrides=[o for o in overrides if not o.startswith("data.path=")],
            parameters={"total": summary.get("parameters"), "transformer": summary.get("transformer_parameters")},
            lr=config.optim.lr,
            epochs_run=summary["epochs_run"],
            epochs_cap=plan["epochs_cap"],
            epochs_wanted=plan["epochs_wanted"],
            preset_epochs=plan["preset_epochs"],
            max_steps=plan["max_steps"],
            steps=summary["steps"],
            steps_per_epoch=plan["steps_per_epoch"],
            best_epoch=summary["best_epoch"],
            stopped_early=summary["stopped_early"],
            ended=ended,
            train_seconds=round(summary["train_seconds"], 2),
            budget_s=plan["budget_s"],
            notes=summary["notes"],
            popularity_baseline=summary["popularity_baseline"],
            split=ctx.get("split"),
        )
        if rec["parameters"]["total"] is None:
            rec["parameters"] = _parameters(config)
        self.put(rec)
        print(
            f"[{dataset}] {model}: test NIP {m.get('test/NIP_loss', float('nan')):.4f}, "
            f"NDCG@10 {_num(m.get('test/NDCG@10')):.4f}, {summary['epochs_run']} epochs, "
            f"{m.get('events_per_s', 0):,.0f} events/s, {seconds:.0f} s ({ended})",
            flush=True,
        )
        return rec

    def scaling_terms(self, quality_preset: str, data: Path) -> tuple[list[str], int]:
        """Overrides and epochs that put every scaling run on the quality preset's terms.

        History length and batch size come from the quality preset (the presets' own grow with size, for
        production data; on one simulated dataset they would change what each step sees, not only the model).
        Epochs: --scaling-epochs, else what the quality preset's ``argus-simplified`` run trained (its scaling
        record), else --max-epochs.
        """
        from argusrec.config import load_config

        c = load_config(quality_preset, [f"data.path={data}"])
        shape = [f"data.max_len={c.data.max_len}", f"train.batch_size={c.train.batch_size}"]
        if self.args.scaling_epochs:
            return shape, self.args.scaling_epochs
        ref = next((r for r in self.records if r["dataset"] == SIM and r["model"] == "argus-simplified"), None)
        epochs = ref.get("epochs_run") if ref and ref.get("metrics") else None
        return shape, epochs if epochs else self.args.max_epochs

    # -------------------------------------------------------------- parts, most important first
    def scaling(self, q: str, presets: Sequence[str], data: Path | None, shared_run: bool) -> None:
        """The sizes on equal terms: the quality preset's history length and batch (events per step) and the same
        epochs; only the model (width, depth, heads, hashed table) and its learning rate (--lr-grid) change."""
        ds, data_s = SIM, data
        if self.args.scaling_items:  # its own simulation: same events and users, fewer items (more events per item)
            ds = scaling_dataset(self.args.events, self.args.scaling_items)
            data_s = simulated_data(self.work, self.args.events, self.args.seed, self.args.scaling_items)
            self.baselines(ds, data_s, q, oracle=True)
        assert data_s is not None
        if not shared_run:  # a shared record from an earlier run on other terms must not stand in for this one
            self.records = [
                r for r in self.records if not (r["dataset"] == ds and r["model"] == q and r.get("same_run_as"))
            ]
        shape, epochs = self.scaling_terms(q, data_s)
        grids = dict(self.args.lr_grid)  # (preset, [lr, ...]) per --lr-grid; a later one for a preset wins
        for preset in sorted((p for p in presets if p != q or not shared_run), key=_preset_size):
            if preset not in grids:
                self.train(
                    ds, data_s, preset, preset, "simplified", shape, epochs=epochs, budget_s=self.args.scaling_budget
                )
                continue
            for lr in grids[preset]:
                self.train(
                    ds, data_s, sweep_name(preset, lr), preset, "simplified", [*shape, f"optim.lr={lr:g}"],
                    epochs=epochs, budget_s=self.args.scaling_budget,
                )  # fmt: skip
            best = select_lr(self.records, ds, preset, grids[preset])
            if best is None:  # an earlier selection must not stand for a grid this run did not complete
                self.records = [r for r in self.records if (r["dataset"], r["model"]) != (ds, preset)]
                self.not_run(ds, preset, "a rate of its learning-rate grid did not run (see its @lr= records)")
            else:
                self.put(best)

    def run(self) -> None:
        only = set(self.args.only.split(",")) if self.args.only else set(PARTS)
        unknown = only - set(PARTS)
        if unknown:
            raise SystemExit(f"--only: unknown parts {sorted(unknown)}; choose from {PARTS}")
        presets = [p for p in self.args.presets.split(",") if p]
        sim_parts = only & {"quality", "ablation", "scaling", "reference"}
        if sim_parts:
            q = self.args.quality_preset
            # The quality preset's scaling record is its argus-simplified run when that run trains the scaling epochs
            # on the same data; with --scaling-epochs or --scaling-items it is a run of its own (model = the preset).
            shared_run = (
                "scaling" in only and q in presets and not self.args.scaling_epochs and not self.args.scaling_items
            )
            data = None
            if sim_parts - {"scaling"} or not self.args.scaling_items:  # the quality runs' simulation is needed
                data = simulated_data(self.work, self.args.events, self.args.seed)
                self.baselines(SIM, data, q, oracle=True)
            if "quality" in only or shared_run:
                assert data is not None
                rec = self.train(SIM, data, "argus-simplified", q, "simplified", [])
                if rec is not None and shared_run:
                    self.put({**rec, "model": q, "same_run_as": "argus-simplified"})
            if "quality" in only:
                assert data is not None
                self.train(SIM, data, "argus-full", q, "full", [])
            if "ablation" in only:
                assert data is not None
                ablation = [
                    "argus.nip_on=positives",
                    "argus.use_context=false",
                    "argus.feedback_prediction=false",
                    # selected on what it is compared on (its NIP loss over all events rises as it fits positives)
                    "train.monitor=valid/NDCG@10_positive",
                    "train.monitor_mode=max",
                ]
                self.train(SIM, data, "sasrec-ablation", q, "simplified", ablation)
            if "scaling" in only:
                self.scaling(q, presets, data, shared_run)
            if "reference" in only:
                assert data is not None
                self.references(SIM, data, q)
        if "movielens" in only:
            shared = Path(self.args.shared_data)
            for name in MOVIELENS:
                why = f"no {name} under {shared}"
                try:
                    data_ml = movielens_data(self.work, shared, name)
                except Exception as e:  # e.g. polars missing on a GPU machine: the other parts still count
                    traceback.print_exc()
                    data_ml, why = None, f"preparing {name} failed: {type(e).__name__}: {e}"
                if data_ml is None:
                    for p in self.args.movielens_presets.split(","):
                        self.not_run(name, p, why)
                    continue
                ml_presets = [p for p in self.args.movielens_presets.split(",") if p]
                self.baselines(name, data_ml, ml_presets[0], oracle=False)
                for p in ml_presets:
                    self.train(name, data_ml, p, p, "simplified", [])
        print(f"done in {(time.monotonic() - self.start) / 60:.1f} min", flush=True)


def scaling_dataset(events: int, items: int | None) -> str:
    """Dataset name of the scaling records: the quality runs' simulation, or (--scaling-items) a denser one."""
    return SIM if not items else f"{SIM}-{events}-events-{items}-items"


def is_scaling_only(dataset: str) -> bool:
    """A simulation of its own for the scaling part (--scaling-items), with its own baselines, table and plot."""
    return dataset.startswith(f"{SIM}-")


def plot_path(dataset: str) -> Path:
    return PLOT if dataset == SIM else PLOT.with_name(f"{PLOT.stem}-{dataset.removeprefix(SIM + '-')}.png")


def lr_grid_item(item: str) -> tuple[str, list[float]]:
    """One ``--lr-grid PRESET=LR,LR,...`` value as (preset, [lr, ...]); argparse's ``type`` for the option."""
    preset, sep, lrs = item.partition("=")
    try:
        values = [float(x) for x in lrs.split(",") if x]
    except ValueError:
        values = []
    if not sep or not preset or not values or any(v <= 0 for v in values):
        raise argparse.ArgumentTypeError(f"{item!r}: expected PRESET=LR[,LR...] of positive rates (argus-3m=1e-3,3e-4)")
    return preset, values


def _record_key(r: dict) -> tuple[str, str]:
    """One record per (dataset, model): a new run of a model replaces its record."""
    return r["dataset"], r["model"]


def _finite_or_inf(x: float | None) -> float:
    """A diverged run's loss (stored as None) ranks after every finite one."""
    return x if x is not None and math.isfinite(x) else math.inf


def named(model: str, names: str) -> bool:
    """Whether ``model`` is one of the comma-separated record ``names``; a preset's name also names its grid runs
    (``argus-3m`` names ``argus-3m@lr=0.0003``), so --rerun and --skip reach them."""
    wanted = {n for n in names.split(",") if n}
    return model in wanted or model.split("@lr=")[0] in wanted


def sweep_name(preset: str, lr: float) -> str:
    """Record name of one learning rate of a preset's scaling grid."""
    return f"{preset}@lr={lr:g}"


def select_lr(records: Sequence[dict], dataset: str, preset: str, lrs: Sequence[float]) -> dict | None:
    """The scaling record of ``preset``: its grid's run with the lowest valid NIP loss (test never looked at).

    None until every rate of the grid has a record with metrics. The returned record is the chosen run's, renamed to
    the preset, with ``selected_from`` = {record name: valid NIP loss} of the whole grid.
    """
    by_name = {r["model"]: r for r in records if r["dataset"] == dataset}
    runs = [by_name.get(sweep_name(preset, lr)) for lr in lrs]
    if any(r is None or not r.get("metrics") or "valid/NIP_loss" not in r["metrics"] for r in runs):
        return None
    done = [r for r in runs if r is not None]
    best = min(done, key=lambda r: _finite_or_inf(r["metrics"]["valid/NIP_loss"]))
    grid = {r["model"]: r["metrics"]["valid/NIP_loss"] for r in done}
    return {**best, "model": preset, "selected_from": grid, "selected_on": "valid/NIP_loss"}


def user_overrides(items: Sequence[str], preset: str) -> list[str]:
    """The ``--set [PRESET:]key=value`` overrides that apply to a run of ``preset`` (no prefix: every run)."""
    out = []
    for item in items:
        head, sep, rest = item.partition(":")
        if sep and "=" not in head:  # "argus-30m:optim.lr=3e-4"
            if head == preset:
                out.append(rest)
        else:
            out.append(item)
    return out


def _preset_size(name: str) -> float:
    return {
        "argus-tiny": 0.0,
        "argus-1m": 1.0,
        "argus-3m": 3.0,
        "argus-30m": 30.0,
        "argus-300m": 300.0,
        "argus-1b": 1000.0,
    }.get(name, 1e9)


def _parameters(config: Any) -> dict[str, int]:
    from argusrec.data.store import SequenceStore
    from argusrec.models.argus import transformer_parameters
    from argusrec.models.builders import count_parameters
    from argusrec.recipes.pretrain import argus_model_for, data_parts

    store = SequenceStore.open(config.data.path)
    context, feedback, _, _ = data_parts(config, store)
    model = argus_model_for(config, store, context, feedback)
    return {"total": count_parameters(model)[0], "transformer": transformer_parameters(model)}


def _data_info(store: Any) -> dict[str, Any]:
    return {
        "path_name": Path(store.path).name if store.path else None,
        "users": store.n_users,
        "items": store.n_items,
        "events": store.n_events,
    }


def _gpu_name() -> str:
    try:
        import torch

        return torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    except Exception:  # pragma: no cover - informational only
        return "unknown GPU"


# ---------------------------------------------------------------------- markdown
def _f(x: Any, digits: int = 4) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "—"
    return f"{x:.{digits}f}"


def _pct(x: Any) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "—"
    return f"{100 * x:.0f}%"


def _mean_auc(m: dict, signals: Sequence[str]) -> float:
    vals = [v for s in signals if (v := m.get(f"test/FP_AUC/{s}")) is not None]
    return float(np.mean(vals)) if vals else float("nan")


def _run_label(r: dict) -> str:
    if r.get("not_run"):
        return f"not run: {r['not_run']}"
    cap = f"{r['epochs_run']} / {r['epochs_cap']} epochs (preset {r.get('preset_epochs')})"
    if r.get("max_steps"):
        cap = f"{r['steps']} steps (< 1 epoch of {r.get('steps_per_epoch')})"
    return f"{cap}, {r.get('ended')}"


def _conditions(group: list[dict]) -> list[str]:
    ran = [r for r in group if r["metrics"]]
    if not ran:
        return []
    hw = sorted({r["hardware"] for r in ran})
    commits = sorted({r["commit"] for r in ran})
    dates = sorted({r.get("date", "?") for r in ran})
    devices = sorted({r.get("device", "?") for r in ran})
    first: dict[str, tuple[str, int]] = {}  # each note at its earliest date, then where its first record stands
    for i, r in enumerate(ran):
        if r.get("note_run"):
            first[r["note_run"]] = min(first.get(r["note_run"], (r.get("date", "?"), i)), (r.get("date", "?"), i))
    notes = sorted(first, key=first.__getitem__)
    trained = [r for r in ran if "epochs_run" in r and not r.get("selected_from") and not r.get("same_run_as")]
    reduced = [r for r in trained if r.get("ended") in ("cap", "max_steps", "time guard")]
    lines = [
        f"Measured {', '.join(dates)} on {'; '.join(hw)} (device: {', '.join(devices)}); commit {', '.join(commits)}."
    ]
    if reduced:
        lines.append(
            f"**Reduced run**: {len(reduced)} of {len(trained)} trainings stopped at a wall-clock epoch/step cap "
            "(column *training*), not at the presets' 10 epochs with early stopping: they were still improving, so "
            "their numbers are lower bounds of what the presets reach, not the presets' results."
        )
    lines += [f"Run conditions: {n}" for n in notes]
    return lines


def markdown(records: list[dict]) -> str:
    title = "## ARGUS pre-training (`benchmarks/argus_pretrain.py`)"
    if not records:
        return f"{title}\n\nNo results yet."
    by = {(r["dataset"], r["model"]): r for r in records}
    sim = [r for r in records if r["dataset"] == SIM]
    lines = [
        title,
        "",
        "Global temporal split (last 10% of events = test, the 5% before = validation, ARGUS.md §6); the whole",
        "earlier history is context, metrics only on the period's events. NIP loss = full-catalog softmax",
        "cross-entropy (nats, no logQ); FP NE = log loss / entropy of the base rate; model selected on",
        "valid/NIP_loss. Popularity: NIP = add-one-smoothed training item frequencies, FP = each item's training",
        "mean of the signal shrunk toward the global mean (20 pseudo-events). Oracle (simulated data only): the",
        "simulator's true feedback probabilities (played_ratio: its expectation; its AUC scored by 1 - P(skip));",
        "NIP = mean -log p_true(item) under the distribution that drew each event (logging policy of the request",
        "without the slate's earlier items, organic search distribution, or uniform library replay), given the",
        "latent taste the model never sees. Gap closed = (model - popularity) / (oracle - popularity).",
        "",
    ]
    if sim:
        pop, orc = by.get((SIM, "popularity")), by.get((SIM, "oracle"))
        lines += ["### Simulated data", ""]
        lines += _conditions(sim)
        lines += _data_line(sim)
        if orc and orc["metrics"].get("test/NIP_oracle_subset"):
            lines.append(
                f"The oracle's NIP numbers are over a seeded random subset of {orc['metrics'].get('test/NIP_count'):,}"
                " test events (the models' over all of them); its standard error is given."
            )
        lines.append("")
        lines += _fp_table(by, pop, orc)
        lines += _taste_table(by, pop, orc)
        lines += _nip_table(by, pop, orc)
        lines += _ablation_table(by)
        lines += _variants_table(by)
        lines += _scaling_table(records)
        lines += _lr_grid_table(records)
    for dataset in sorted({r["dataset"] for r in records if is_scaling_only(r["dataset"])}):
        rows = [r for r in records if r["dataset"] == dataset]
        lines += [f"### Scaling on a denser simulation (`{dataset}`)", ""]
        lines += _conditions(rows)
        lines += _data_line(rows)
        lines += [
            "The same simulator, events and users as above with fewer items (and the artists and genres the "
            "simulator derives from them), so more events per item; the sizes' own "
            "popularity and oracle baselines are on this data.",
            "",
        ]
        lines += _scaling_table(records, dataset)
        lines += _lr_grid_table(records, dataset)
    ml = [r for r in records if r["dataset"] in MOVIELENS]
    if ml:
        lines += ["### MovieLens (rating-derived feedback)", ""]
        lines += _conditions(ml)
        lines += [
            "Feedback from the ratings: like = rating >= 4, dislike = rating <= 2, rating = the stars (continuous,",
            "mapped onto [0, 1] by its training range);",
            "no context columns (ARGUS runs without context embeddings); NDCG@10 over the test period's liked events.",
            "",
            "| dataset | model | transformer params | test NIP loss | pop. NIP loss | FP AUC like | FP NE like | "
            "FP AUC dislike | NDCG@10 (likes) | training |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---|",
        ]
        for r in ml:
            m = r["metrics"]
            if r["model"] == "popularity":
                lines.append(
                    f"| {r['dataset']} | popularity | — | {_f(m.get('test/NIP_loss'))} | | "
                    f"{_f(m.get('test/FP_AUC/like'))} | {_f(m.get('test/FP_NE/like'))} | "
                    f"{_f(m.get('test/FP_AUC/dislike'))} | — | — |"
                )
                continue
            pb = (r.get("popularity_baseline") or {}).get("test/NIP_loss")
            lines.append(
                f"| {r['dataset']} | {r['model']} | {_params(r)} | {_f(m.get('test/NIP_loss'))} | {_f(pb)} | "
                f"{_f(m.get('test/FP_AUC/like'))} | {_f(m.get('test/FP_NE/like'))} | "
                f"{_f(m.get('test/FP_AUC/dislike'))} | {_f(m.get('test/NDCG@10'))} | {_run_label(r)} |"
            )
        lines.append("")
    return "\n".join(lines)


def _params(r: dict) -> str:
    p = (r.get("parameters") or {}).get("transformer")
    return "—" if not p else f"{p / 1e6:.2f}M"


def _signals(*recs: dict | None) -> list[str]:
    for r in recs:
        if r and r["metrics"]:
            sig = [k.split("/", 2)[2] for k in r["metrics"] if k.startswith("test/FP_AUC/")]
            if sig:
                return sig
    return []


def _preset_note(rows: Sequence[dict | None]) -> str:
    presets = sorted({r.get("preset", "?") for r in rows if r})
    note = ", ".join(f"`{p}`" for p in presets) + " preset"
    if presets and presets != [QUALITY_PRESET]:
        note += f" — **reduced: the benchmark's setting is `{QUALITY_PRESET}`**"
    return note


def _measured(by: dict, *models: str) -> list[dict]:
    """The simulated-data records of ``models`` that hold metrics, in the order given."""
    return [r for m in models if (r := by.get((SIM, m))) and r["metrics"]]


def _fp_table(by: dict, pop: dict | None, orc: dict | None) -> list[str]:
    trained = _measured(by, "argus-simplified", "argus-full")
    ref = by.get((SIM, USER_FIT))
    columns = [*trained, *([ref] if ref and ref["metrics"] else [])]
    signals = _signals(orc, pop, *columns)
    if not signals:
        return []
    head = " | ".join(f"{r['model']} | gap closed" for r in columns)
    lines = [
        f"#### Feedback prediction vs popularity and oracle (test period, {_preset_note(trained)})",
        "",
        f"| signal | metric | popularity | {head} | oracle |",
        "|---|---|---:|" + "---:|---:|" * len(columns) + "---:|",
    ]
    for s in signals:
        for metric in ("FP_AUC", "FP_NE"):
            key = f"test/{metric}/{s}"
            cells = " | ".join(
                f"{_f(r['metrics'].get(key))} | {_pct(r['metrics'].get(f'test/{metric}_gap_closed/{s}'))}"
                for r in columns
            )
            p = pop["metrics"].get(key) if pop else None
            o = orc["metrics"].get(key) if orc else None
            lines.append(f"| {s} | {metric.split('_')[1]} | {_f(p)} | {cells} | {_f(o)} |")
    for r in trained:
        closed = [(s, r["metrics"].get(f"test/FP_AUC_gap_closed/{s}")) for s in signals]
        closed = [(s, c) for s, c in closed if c is not None]
        if closed:
            verdict = "meets" if min(c for _, c in closed) >= 0.8 else "misses"
            shares = ", ".join(f"{s} {_pct(c)}" for s, c in closed)
            lines.append("")
            lines.append(
                f"{r['model']}: FP AUC gap closed {shares} — {verdict} the >= 80% aim on every signal "
                f"({_run_label(r)})."
            )
    if ref and ref["metrics"]:
        m = ref["metrics"]
        h = m.get("user_fit/half_life_days")
        tried = sorted((k.rsplit("/", 1)[1] for k in m if k.startswith("user_fit/valid_mean_AUC/")), key=float)
        lines += [
            "",
            f"{USER_FIT} (a reference, not a trained model; `argusrec/eval/user_fit.py`): given the simulator's item "
            "side (genre centroids, item vectors, qualities, the feedback model's constants), it fits each user's "
            "taste and skip / like / dislike offsets by MAP from the user's feedback before each day of the period "
            "(population prior), earlier events weighing 0.5^(age / half-life); half-life "
            f"{'none (unweighted)' if h is None else f'{h:g} days'}, chosen on validation among {', '.join(tried)} "
            f"(days; inf = unweighted). Its gap closed is how much of the popularity-to-oracle gap the users' "
            "histories support when the items are known; a model can beat it (by tracking the taste's drift or "
            "reading the same day's events) or fall short of it (it must learn the items too).",
        ]
    return [*lines, ""]


def _taste_table(by: dict, pop: dict | None, orc: dict | None) -> list[str]:
    """Test FP AUC gap closed from the oracle down: stale or static true tastes, the user-fit reference, the models."""
    from argusrec.eval.oracle import gap_closed

    known = by.get((SIM, KNOWN_TASTE))
    if not (known and known["metrics"] and pop and orc):
        return []
    km = known["metrics"]
    variants = sorted({k.split("/", 1)[0] for k in km if k.startswith("taste-")}, key=lambda v: float(v[6:-1]))
    rows: list[tuple[str, dict, str]] = [("oracle: the true taste of each event's day", orc["metrics"], "")]
    for v in variants:
        days = float(v[6:-1])
        when = f"{v[6:-1]} days before the period's first day" if days else "on the period's first day (no later drift)"
        rows.append((f"the true taste {when}", km, f"{v}/"))
    rows.append(("the true static core of the taste (no drift)", km, "core/"))
    ref = by.get((SIM, USER_FIT))
    if ref and ref["metrics"]:
        rows.append((f"{USER_FIT}: the taste fitted from the user's history, items known", ref["metrics"], ""))
    for r in _measured(by, "argus-simplified", "argus-full"):
        rows.append((f"{r['model']} ({_run_label(r)})", r["metrics"], ""))
    signals = _signals(orc, pop)
    lines = [
        "#### What knowing the user's taste is worth (test FP AUC, share of the popularity-to-oracle gap closed)",
        "",
        "Every row but the models uses the simulator's true item side and feedback constants; the oracle and the",
        "true-taste rows also use the users' true feedback offsets, which user-fit estimates along with the taste",
        "(`known_taste_feedback_metrics`, `user_fit_feedback_metrics`).",
        "",
        f"| predictor | {' | '.join(signals)} |",
        "|---|" + "---:|" * len(signals),
    ]
    pm, om = pop["metrics"], orc["metrics"]
    for label, m, prefix in rows:
        cells = []
        for s in signals:
            key = f"test/FP_AUC/{s}"
            value, p, o = m.get(f"{prefix}{key}"), pm.get(key), om.get(key)
            cells.append(_pct(None if value is None or p is None or o is None else gap_closed(value, p, o)))
        lines.append(f"| {label} | {' | '.join(cells)} |")
    return [*lines, ""]


def _nip_table(by: dict, pop: dict | None, orc: dict | None) -> list[str]:
    rows = _measured(by, "argus-simplified", "argus-full", "sasrec-ablation")
    if not (rows or orc):
        return []
    lines = [
        "#### Next-item prediction vs popularity and the true distributions (test period)",
        "",
        "| model | test NIP loss | gap closed | note |",
        "|---|---:|---:|---|",
    ]
    if pop:
        lines.append(f"| popularity | {_f(pop['metrics'].get('test/NIP_loss'))} | 0% | training item frequencies |")
    for r in rows:
        note = "trained on liked events only" if r["model"] == "sasrec-ablation" else ""
        lines.append(
            f"| {r['model']} | {_f(r['metrics'].get('test/NIP_loss'))} | "
            f"{_pct(r['metrics'].get('test/NIP_loss_gap_closed'))} | {note} |"
        )
    if orc:
        m = orc["metrics"]
        lines.append(
            f"| oracle: -log p_true(item) | {_f(m.get('test/NIP_loss'))} ± {_f(m.get('test/NIP_loss_se'))} | 100% | "
            f"{m.get('test/NIP_count', 0):,} events |"
        )
        lines.append(f"| oracle: entropy of the true distributions | {_f(m.get('test/NIP_entropy'))} | | |")
        kinds = [
            f"{k} {_f(m.get(f'test/NIP_entropy/{k}'), 2)} ({m.get(f'test/NIP_count/{k}', 0):,} events)"
            for k in ("recommendation", "search", "library")
        ]
        lines += ["", "True entropy by surface kind (nats): " + "; ".join(kinds) + "."]
    return [*lines, ""]


def _ablation_table(by: dict) -> list[str]:
    argus, abl = by.get((SIM, "argus-simplified")), by.get((SIM, "sasrec-ablation"))
    full = by.get((SIM, "argus-full"))
    rows = [r for r in (argus, full, abl) if r]
    if not rows:
        return []
    lines = [
        "#### ARGUS vs the SASRec-style ablation: next positive item (test period's liked events)",
        "",
        f"Ablation = {_preset_note(rows)}, simplified, NIP on liked events only, no context, no FP loss; its history "
        "keeps every",
        "event and its feedback as input (more than a real SASRec sees). NDCG@10 of the true item, full catalog,",
        "history not filtered.",
        "",
        "| model | test NDCG@10 | positives scored | valid NDCG@10 | training |",
        "|---|---:|---:|---:|---|",
    ]
    for r in rows:
        m = r["metrics"]
        lines.append(
            f"| {r['model']} | {_f(m.get('test/NDCG@10'))} | {m.get('test/positive_count', '—')} | "
            f"{_f(m.get('valid/NDCG@10'))} | {_run_label(r)} |"
        )
    if argus and abl and argus["metrics"] and abl["metrics"]:
        a, b = _num(argus["metrics"].get("test/NDCG@10")), _num(abl["metrics"].get("test/NDCG@10"))
        verdict = "ARGUS wins" if a > b else "**the ablation wins**"
        lines += ["", f"{verdict}: {_f(a)} vs {_f(b)} ({(a / b - 1) * 100 if b > 0 else float('nan'):+.0f}%)."]
    return [*lines, ""]


def _variants_table(by: dict) -> list[str]:
    rows = _measured(by, "argus-simplified", "argus-full")
    if not rows:
        return []
    signals = _signals(*rows)
    lines = [
        f"#### Full vs simplified ARGUS ({_preset_note(rows)})",
        "",
        "| variant | test NIP loss | mean FP AUC | test NDCG@10 | training events/s | train s | training |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        m = r["metrics"]
        lines.append(
            f"| {r['variant']} | {_f(m.get('test/NIP_loss'))} | {_f(_mean_auc(m, signals))} | "
            f"{_f(m.get('test/NDCG@10'))} | {m.get('events_per_s', 0):,.0f} | {r.get('train_seconds', 0):.0f} | "
            f"{_run_label(r)} |"
        )
    if len(rows) == 2:
        simp, full = rows
        ratio = _num(simp["metrics"].get("events_per_s")) / max(_num(full["metrics"].get("events_per_s")), 1e-9)
        lines += [
            "",
            f"Simplified trains {ratio:.2f}x as many events per second as full (the article: about 3x). "
            "Throughput = training targets per second of the optimizer steps (validation excluded).",
        ]
    return [*lines, ""]


def _lr(rec: dict) -> str:
    """The run's peak learning rate as it stored it (records from before that show —): chosen from a grid, or set by
    an override (``(set)``), else its preset's at the time."""
    if rec.get("lr") is None:
        return "—"
    if rec.get("selected_from"):
        n = len(rec["selected_from"])
        return f"{rec['lr']:g} ({'the only rate tried' if n == 1 else f'best of {n} on valid'})"
    return f"{rec['lr']:g}" + (" (set)" if any(o.startswith("optim.lr=") for o in rec.get("overrides") or []) else "")


def _scaling_rows(records: Sequence[dict], dataset: str) -> list[dict]:
    """The scaling records of ``dataset``, one per preset (named by it; the quality run that stands for one)."""
    return [
        r
        for r in records
        if r["dataset"] == dataset
        and r.get("preset")
        and (r["model"] == r["preset"] or r.get("same_run_as"))
        and r["model"] not in ("argus-simplified", "argus-full")
    ]


def _scaling_table(records: list[dict], dataset: str = SIM) -> list[str]:
    rows = _scaling_rows(records, dataset)
    if not rows:
        return []
    rows.sort(key=lambda r: _preset_size(r["model"]))
    signals = _signals(*rows)
    lines = [
        "#### Scaling (same simulated data, simplified variant)"
        if dataset == SIM
        else "#### Scaling (simplified variant)",
        "",
        "Equal terms: every size trains with the quality preset's history length and batch size for the same number "
        "of epochs (column *training*; `equal epochs` = the target was reached), warmup capped at 10% of the steps.",
        *(
            ["Each size's learning rate is the one of its grid (table below) with the lowest valid NIP loss."]
            if any(r.get("selected_from") for r in rows)
            else []
        ),
        "",
        "| preset | transformer params | all params | lr | test NIP loss | mean FP AUC | test NDCG@10 | events/s "
        "| training |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    ran = []
    for r in rows:
        m = r["metrics"]
        if not m:
            lines.append(f"| {r['model']} | | | | | | | | {_run_label(r)} |")
            continue
        ran.append(r)
        total = (r.get("parameters") or {}).get("total")
        lines.append(
            f"| {r['model']} | {_params(r)} | {'—' if not total else f'{total / 1e6:.1f}M'} | {_lr(r)} | "
            f"{_f(m.get('test/NIP_loss'))} | {_f(_mean_auc(m, signals))} | {_f(m.get('test/NDCG@10'))} | "
            f"{m.get('events_per_s', 0):,.0f} | {_run_label(r)} |"
        )
    if len(ran) >= 2:
        nip = [_num(r["metrics"].get("test/NIP_loss")) for r in ran]
        better = all(b < a for a, b in itertools.pairwise(nip))
        steps = [
            f"{a['model']} -> {b['model']}: {'better' if y < x else '**worse**'}"
            for (a, x), (b, y) in itertools.pairwise(zip(ran, nip, strict=True))
        ]
        short = [
            r["model"] for r in ran if r.get("ended") in ("cap", "max_steps", "time guard") and not r.get("same_run_as")
        ]
        lines += [
            "",
            f"Test NIP loss {'improves' if better else '**does not improve**'} with every size step "
            f"({' -> '.join(_f(x) for x in nip)}; {'; '.join(steps)}). Plot: [{plot_path(dataset).name}]"
            f"({plot_path(dataset).name}).",
        ]
        if short:
            lines += [
                "",
                f"Cut short by the time budget (fewer epochs or steps than the others, so not on equal terms): "
                f"{', '.join(short)}.",
            ]
    return [*lines, ""]


def _data_line(rows: Sequence[dict]) -> list[str]:
    """The simulation the rows ran on (events, users, items, period sizes), from the baseline record that stores it,
    and any run whose split says it trained on other data (e.g. an earlier run with another --events)."""
    base = next((r for r in rows if r.get("data")), None)
    if base is None:
        return []
    data, split = base["data"], base.get("split") or {}
    per_item = split.get("train_events", 0) / max(1, data.get("items", 0))
    lines = [
        f"Data: `argusrec data simulate` seed {base['seed']}, {data.get('events', 0):,} events, "
        f"{data.get('users', 0):,} users, {data.get('items', 0):,} items; {split.get('train_events', 0):,} "
        f"training events ({per_item:,.0f} per item), {split.get('test_targets', 0):,} test events."
    ]
    same = ("events", "users", "train_events")
    other = [
        f"{r['model']} ({r['split'].get('events', 0):,} events)"
        for r in rows
        if r.get("split") and split and any(r["split"].get(k) != split.get(k) for k in same)
    ]
    if other:
        lines.append(f"**Not on this data** (compare them with nothing above): {', '.join(other)}.")
    return lines


def _data_words(records: Sequence[dict], dataset: str) -> str:
    base = next((r for r in records if r["dataset"] == dataset and r.get("data")), None)
    if base is None:
        return "simulated data"
    return f"simulated data, {base['data'].get('events', 0):,} events, {base['data'].get('items', 0):,} items"


def _lr_grid_table(records: list[dict], dataset: str = SIM) -> list[str]:
    """Each scaling preset's learning-rate grid: valid NIP loss (test in brackets), the selected rate in bold."""
    chosen = [r for r in records if r["dataset"] == dataset and r.get("selected_from")]
    if not chosen:
        return []
    chosen.sort(key=lambda r: _preset_size(r["model"]))
    by_name = {r["model"]: r for r in records if r["dataset"] == dataset}
    rates = sorted({by_name[n]["lr"] for c in chosen for n in c["selected_from"] if n in by_name}, reverse=True)
    lines = [
        "#### Learning rate per size (the scaling runs' grid)",
        "",
        "Each size trains once per rate on the same terms; its row above is the rate with the lowest **valid** NIP "
        "loss (bold). Cells: valid NIP loss (test NIP loss); blank = not tried.",
        "",
        "| preset | " + " | ".join(f"lr {x:g}" for x in rates) + " |",
        "|---|" + "---:|" * len(rates),
    ]
    for c in chosen:
        cells = {by_name[n]["lr"]: by_name[n] for n in c["selected_from"] if n in by_name}
        row = []
        for x in rates:
            r = cells.get(x)
            if r is None:
                row.append("")
                continue
            cell = f"{_f(r['metrics']['valid/NIP_loss'])} ({_f(r['metrics'].get('test/NIP_loss'))})"
            if r.get("ended") != "equal epochs":
                cell += f" † {r.get('epochs_run')} ep."
            row.append(f"**{cell}**" if x == c["lr"] else cell)
        lines.append(f"| {c['model']} | " + " | ".join(row) + " |")
    if any("†" in line for line in lines[6:]):
        lines += [
            "",
            "† stopped before the grid's epochs by its run's time limit: with all of them its loss would likely be "
            "lower.",
        ]
    return [*lines, ""]


def _dates(rows: Sequence[dict]) -> str:
    dates = sorted({r.get("date", "?") for r in rows})
    return dates[0] if len(dates) == 1 else f"{dates[0]} to {dates[-1]}"


def _distinct(rows: Sequence[dict], key: str) -> list:
    """The rows' distinct values of ``key``, sorted (rows without it left out)."""
    return sorted({r[key] for r in rows if r.get(key) is not None})


def _plot_label(rows: Sequence[dict]) -> str:
    """How the plotted runs were trained: reduced, equal epochs below the presets', or the presets' own training."""
    if any(r.get("ended") in ("cap", "max_steps", "time guard") for r in rows):
        return "REDUCED run: epoch/step caps, see docs/benchmarks.md"
    if any(r.get("ended") == "equal epochs" for r in rows):
        epochs = "/".join(str(e) for e in _distinct(rows, "epochs_run"))
        presets = "/".join(str(e) for e in _distinct(rows, "preset_epochs"))
        return f"{epochs} epochs each, presets {presets}"
    return "presets' full training"


def plot(records: list[dict], dataset: str = SIM) -> bool:
    rows = [
        r for r in _scaling_rows(records, dataset) if r["metrics"] and (r.get("parameters") or {}).get("transformer")
    ]
    if len(rows) < 2:
        return False
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no plot (run --render-only where it is)", flush=True)
        return False
    rows.sort(key=lambda r: r["parameters"]["transformer"])
    x = [math.log10(r["parameters"]["transformer"]) for r in rows]
    signals = _signals(*rows)
    by = {(r["dataset"], r["model"]): r for r in records}
    pop, orc = by.get((dataset, "popularity")), by.get((dataset, "oracle"))
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    panels = (
        ("test NIP loss (nats, lower is better)", lambda m: m.get("test/NIP_loss")),
        ("mean test FP AUC over signals", lambda m: _mean_auc(m, signals)),
    )
    for ax, (label, get) in zip(axes, panels, strict=True):
        ax.plot(x, [_num(get(r["metrics"])) for r in rows], "o-", label="ARGUS (simplified)")
        for r, xi in zip(rows, x, strict=True):
            ax.annotate(
                r["model"], (xi, _num(get(r["metrics"]))), textcoords="offset points", xytext=(4, 4), fontsize=8
            )
        for ref, style, name in ((pop, "--", "popularity"), (orc, ":", "oracle")):
            if ref and ref["metrics"] and get(ref["metrics"]) is not None:
                ax.axhline(_num(get(ref["metrics"])), linestyle=style, color="gray", label=name)
        ax.set_xlabel("log10(transformer parameters)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    dev = sorted({r.get("device", "?") for r in rows})
    data = _data_words(records, dataset)
    title = f"ARGUS scaling on {data} ({', '.join(dev)}; {_dates(rows)}; {_plot_label(rows)})"
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path = plot_path(dataset)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def render(records: list[dict]) -> None:
    write_section(BENCH, markdown(records))
    for dataset in sorted({r["dataset"] for r in records if r["dataset"] == SIM or is_scaling_only(r["dataset"])}):
        try:
            plot(records, dataset)
        except Exception as e:  # the plot must never lose a run's results
            print(f"plot failed: {e}", flush=True)


# ---------------------------------------------------------------------- main
def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    ap.add_argument("--events", type=int, default=None, help="simulated events (default: 3M on cuda, 60k on cpu)")
    ap.add_argument("--presets", default="argus-tiny,argus-3m,argus-30m", help="scaling presets, comma-separated")
    ap.add_argument("--quality-preset", default=QUALITY_PRESET, help="preset of the quality and ablation runs")
    ap.add_argument("--movielens-presets", default=",".join(MOVIELENS_PRESETS), help="comma-separated")
    ap.add_argument("--max-epochs", type=int, default=10, help="epoch cap of every run (the presets: 10)")
    ap.add_argument("--time-budget", type=float, default=None, help="training seconds per run (cuda 50, cpu 45)")
    ap.add_argument(
        "--scaling-epochs",
        type=int,
        default=None,
        help="epochs of every scaling run (default: as many as the argus-simplified run trained); set it when the "
        "scaling part runs in its own process, and pass the same --max-epochs to the quality run",
    )
    ap.add_argument(
        "--scaling-budget",
        type=float,
        default=None,
        help="training seconds per scaling run, which trains the quality run's epochs (default: 3 x --time-budget)",
    )
    ap.add_argument("--deadline", type=float, default=float("inf"), help="minutes for everything; later work: not run")
    ap.add_argument("--shared-data", default=str(ROOT.parent / "shared" / "data"), help="folder with ml-100k etc.")
    ap.add_argument("--workdir", default="/tmp/argusrec-bench-argus", help="datasets and run directories")
    ap.add_argument("--only", default="", help=f"comma-separated subset of {','.join(PARTS)}")
    ap.add_argument("--resume", action="store_true", help="keep the JSON's records and run only what is missing")
    ap.add_argument(
        "--rerun",
        default="",
        help="with --resume: models (record names) to run again, comma-separated; a preset's name includes its "
        "--lr-grid runs (PRESET@lr=...)",
    )
    ap.add_argument("--render-only", action="store_true", help="rewrite the markdown and plot from the JSON")
    ap.add_argument("--note", default="", help="a sentence about the run's conditions, stored with the results")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--skip",
        default="",
        help="models (record names) to record as not run, comma-separated; a preset's name includes its grid runs",
    )
    ap.add_argument("--threads", type=int, default=None, help="train.num_threads on the CPU")
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="[PRESET:]KEY=VALUE",
        help="config override of every run, or of one preset's runs (argus-30m:optim.lr=3e-4); repeatable",
    )
    ap.add_argument(
        "--scaling-items",
        type=int,
        default=None,
        help="scaling: run the sizes on a simulation of their own with this many items (same --events and users; "
        "default: the quality runs' data, events / 100 items), recorded as dataset simulated-<events>-events-<N>-items",
    )
    ap.add_argument(
        "--lr-grid",
        action="append",
        type=lr_grid_item,
        default=[],
        metavar="PRESET=LR,LR,...",
        help="scaling: train the preset once per learning rate (records PRESET@lr=LR) and keep as its scaling record "
        "the one with the lowest valid NIP loss; repeatable; a preset without a grid trains at its own lr",
    )
    ap.add_argument("--oracle-events", type=int, default=100_000, help="test events scored by the NIP oracle")
    args = ap.parse_args(argv)
    for preset in dict(args.lr_grid):
        if any(o.startswith("optim.lr=") for o in user_overrides(args.set, preset)):
            raise SystemExit(f"--lr-grid {preset}=... and a --set of its optim.lr: the grid sets the learning rate")

    old = read_results(BENCH)
    if args.render_only:
        render(old)
        print(f"wrote the {BENCH} section of {DOC}" + (f" and {PLOT}" if PLOT.exists() else ""))
        return
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.device == "auto":
        import torch

        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.events is None:
        args.events = 3_000_000 if args.device == "cuda" else 60_000
    if args.time_budget is None:
        args.time_budget = 50.0 if args.device == "cuda" else 45.0
    if args.scaling_budget is None:
        args.scaling_budget = 3 * args.time_budget
    print(
        f"argus_pretrain: device {args.device}, {args.events:,} simulated events, budget {args.time_budget:g} s/run, "
        f"deadline {args.deadline:g} min, python {platform.python_version()}, pid {os.getpid()}",
        flush=True,
    )
    _install_guard()
    kept = [r for r in old if not named(r["model"], args.rerun)] if args.resume else []
    bench = Bench(args, kept)
    bench.run()
    bench.save()


if __name__ == "__main__":
    main()
