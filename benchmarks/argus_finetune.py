"""ARGUS fine-tuning benchmark (reference/ARGUS.md §5-§6): PairAccuracy, ablations, final-ranker uplift, one pass.

Writes ``benchmarks/results/argus_finetune.json`` and the ``argus_finetune`` section of docs/benchmarks.md.

* **simulated** — ``argusrec data simulate`` (``--events``): pre-train ``--preset`` (validation 10%, test 10% of
  time), then fine-tune from its best checkpoint (``argus-twotower``), the **ablations** ``no-pretrain``
  (``finetune.checkpoint=null``, same architecture and epochs) and ``short-finetune`` (``finetune.train_fraction``
  = ``--short-fraction`` of the steps); ``popularity`` (training-period item counts) and ``oracle`` (the simulator's
  true affinity, a ceiling) on the same test pairs; the final rankers ``ranker-baseline`` and ``ranker+argus``
  (LightGBM lambdarank trained on the validation period; the relative gain is the article's deployment metric);
  ``impression-level``: the same fine-tuned model scoring the same test impressions by re-encoding the history per
  impression (:mod:`argusrec.finetune.reference`) vs one pass per example — max |score difference| and speed-up.
* **ml-100k / ml-latest-small** (``--shared-data``, prepared with the MovieLens adapter, ``rating`` rescaled to
  stars / 5 for the pre-training FP head): rating-based pairs — every rating is an impression, grouped in
  ``--ml-window`` second windows of the user's activity; grades by star band (5 > 4 > 3 > 2 > 1, half stars
  rounded down), pair weight = star difference; lag 0 (the user state ends before the window's first rating).

Metric names in the JSON (the issue's): ``test/PairAccuracy`` = unweighted share of test pairs ordered correctly,
``test/PairAccuracy_weighted`` = weighted by the pair-weight table (the same names as the recipe's
``metrics.json``); ``events_per_s`` = history events encoded per second
of fine-tuning steps.

    python benchmarks/argus_finetune.py --device cuda --events 1000000 --preset argus-3m     # full (GPU)
    python benchmarks/argus_finetune.py --device cpu --events 120000 --deadline 15           # reduced (CPU)
    python benchmarks/argus_finetune.py --render-only
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import read_results, record, write_results, write_section

BENCH = "argus_finetune"
MODELS = (
    "argus-twotower",
    "no-pretrain",
    "short-finetune",
    "popularity",
    "oracle",
    "ranker-baseline",
    "ranker+argus",
    "impression-level",
)
MOVIELENS = ("ml-100k", "ml-latest-small")
ML_PAIRS = (
    "finetune.pairs={grades: {r5: 5, r4: 4, r3: 3, r2: 2, r1: 1}, rules: ["
    "{grade: r5, signal: rating, op: '>=', value: 0.95}, {grade: r4, signal: rating, op: '>=', value: 0.75}, "
    "{grade: r3, signal: rating, op: '>=', value: 0.55}, {grade: r2, signal: rating, op: '>=', value: 0.35}, "
    "{grade: r1, signal: rating, op: '<', value: 0.35}], default_weight: null, group_by: window}"
)


# ---------------------------------------------------------------------- data
def movielens_rating01(work: Path, shared: Path, name: str) -> Path | None:
    """Prepare a MovieLens dataset with ``rating`` = stars / 5 (the FP head's continuous labels live in [0, 1])."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from argusrec.recipes.data import open_source, prepare

    raw, out = shared / name, work / f"{name}-rating01"
    if (out / "manifest.json").exists():
        return out
    if not raw.exists():
        return None
    source = open_source("movielens", raw, progress=False)
    inner = source.read

    def read() -> Iterator[tuple[str, pa.RecordBatch]]:
        for file, batch in inner():
            i = batch.schema.get_field_index("rating")
            col = batch.column(i)
            yield file, batch.set_column(i, batch.schema.field(i), pc.divide(col, pa.scalar(5.0, col.type)))

    info = {**source.info, "rating": "stars / 5 (benchmarks/argus_finetune.py)"}
    prepare(dataclasses.replace(source, read=read, info=info), out, overwrite=True, progress=False)
    return out


# ---------------------------------------------------------------------- helpers
def _clean(metrics: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in metrics.items():
        if isinstance(v, (float, np.floating)):
            out[k] = None if not math.isfinite(float(v)) else float(v)
        elif isinstance(v, (int, np.integer)):
            out[k] = int(v)
        else:
            out[k] = v
    return out


def _pa(m: dict[str, Any], prefix: str = "test/") -> dict[str, Any]:
    """The recipe's names -> the benchmark's (module docstring)."""
    return {
        "test/PairAccuracy": m[f"{prefix}PairAccuracy"],
        "test/PairAccuracy_weighted": m[f"{prefix}PairAccuracy_weighted"],
        "test/pairs": m[f"{prefix}pairs"],
    }


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.work = Path(args.workdir)
        self.work.mkdir(parents=True, exist_ok=True)
        self.records: list[dict[str, Any]] = []
        self.start = time.perf_counter()
        self.deadline = args.deadline * 60

    def late(self) -> bool:
        return time.perf_counter() - self.start > self.deadline

    def add(self, dataset: str, model: str, metrics: dict[str, Any], seconds: float, **extra: Any) -> None:
        rec = record(BENCH, dataset, model, _clean(metrics), seconds, seed=self.args.seed, **extra)
        rec["conditions"] = self.conditions
        self.records = write_results(BENCH, [*self.records, rec], key=lambda r: (r["dataset"], r["model"]))
        print(f"[{time.perf_counter() - self.start:6.0f}s] {dataset:<16} {model:<18} {json.dumps(rec['metrics'])}")

    def skipped(self, dataset: str, models: tuple[str, ...], why: str) -> None:
        for m in models:
            self.add(dataset, m, {}, 0.0, note=f"not run: {why}")

    def step(self, dataset: str, models: tuple[str, ...], fn: Callable[[], object]) -> None:
        if self.late():
            self.skipped(dataset, models, f"--deadline {self.args.deadline:g} min reached")
            return
        try:
            fn()
        except Exception as e:  # a benchmark records the failure and goes on
            traceback.print_exc()
            self.skipped(dataset, models, f"failed: {type(e).__name__}: {e}"[:300])

    @property
    def conditions(self) -> str:
        a = self.args
        return (
            f"{a.device}; {a.events:,} simulated events; preset {a.preset}; pre-training {a.pretrain_epochs} epochs, "
            f"fine-tuning {a.finetune_epochs} epochs (short: {a.short_fraction:g} of the steps); lag {a.lag} s"
            + (f"; {a.note}" if a.note else "")
        )

    # ------------------------------------------------------------------ one dataset
    def dataset(self, name: str, data: Path, ft_extra: list[str], pre_extra: list[str], sim: bool) -> None:
        from argusrec.config import load_config
        from argusrec.recipes.finetune import finetune, finetune_config
        from argusrec.recipes.pretrain import pretrain

        a = self.args
        threads = [f"train.num_threads={a.threads}"] if a.threads else []
        common = [f"train.device={a.device}", f"train.seed={a.seed}", *threads]
        pre_dir, runs = self.work / name / "pretrain", self.work / name
        state: dict[str, Any] = {}

        def do_pretrain() -> None:
            cfg = load_config(
                a.preset,
                [
                    f"data.path={data}",
                    f"train.epochs={a.pretrain_epochs}",
                    "data.valid_fraction=0.1",
                    "data.test_fraction=0.1",
                    *common,
                    *pre_extra,
                ],
            )
            t = time.perf_counter()
            s = pretrain(cfg, run_dir=_fresh(pre_dir), progress=False)
            print(
                f"pre-trained {name} in {time.perf_counter() - t:.0f} s: test/NIP_loss {s['metrics']['test/NIP_loss']}"
            )
            state["pretrained"] = True

        models_all = ("argus-twotower", "no-pretrain", "short-finetune", "popularity", "oracle")
        self.step(name, (*models_all, "ranker-baseline", "ranker+argus", "impression-level"), do_pretrain)
        if "pretrained" not in state:
            return
        base = [f"train.epochs={a.finetune_epochs}", f"finetune.lag={a.lag}", *common, *ft_extra]

        def run_ft(model: str, extra: list[str]) -> dict[str, Any]:
            cfg = finetune_config(pre_dir, [*base, *extra])
            t = time.perf_counter()
            s = finetune(cfg, run_dir=_fresh(runs / model), progress=False)
            m = {
                **_pa(s["metrics"]),
                "events_per_s": s["metrics"]["events_per_s"],
                "pairs_per_s": s["metrics"]["pairs_per_s"],
            }
            m.update(valid_PairAccuracy_weighted=s["metrics"]["valid/PairAccuracy_weighted"], steps=s["steps"])
            self.add(name, model, m, time.perf_counter() - t, best_epoch=s["best_epoch"], epochs_run=s["epochs_run"])
            return s

        def full() -> None:
            s = run_ft("argus-twotower", [])
            state["full"] = s
            pairs = s["metrics"]["test/pairs"]
            for b, v in s["baselines"].items():
                self.add(name, b, _pa(v), 0.0, note=f"on the {pairs:,} test pairs the two-tower scored")
            if "oracle" not in s["baselines"]:
                self.add(name, "oracle", {}, 0.0, note="no oracle: real data")

        self.step(name, models_all, full)
        if "full" not in state:
            return

        def rank_step() -> None:
            from argusrec.recipes.rank import rank

            t = time.perf_counter()
            r = rank(runs / "argus-twotower", seed=a.seed)
            secs = time.perf_counter() - t
            for model in ("ranker-baseline", "ranker+argus"):
                m = {**_pa(r["models"][model]), "best_iteration": r["models"][model]["best_iteration"]}
                m.update({f"all_{k}": v for k, v in _pa(r["models"][model], "test_all/").items()})
                extra = {"gain": r["gain"], "gain_unweighted": r["gain_unweighted"]} if model == "ranker+argus" else {}
                self.add(name, model, {**m, **extra}, secs / 2, ranker_train=r["ranker_train"])

        self.step(name, ("ranker-baseline", "ranker+argus"), rank_step)
        self.step(name, ("impression-level",), lambda: self.impression_level(name, runs / "argus-twotower"))
        self.step(name, ("no-pretrain",), lambda: run_ft("no-pretrain", ["finetune.checkpoint=null"]))
        self.step(
            name, ("short-finetune",), lambda: run_ft("short-finetune", [f"finetune.train_fraction={a.short_fraction}"])
        )

    def impression_level(self, name: str, run: Path) -> None:
        """One pass vs re-encoding per impression, on the same test examples of the fine-tuned model."""
        import torch

        from argusrec.config import load_config
        from argusrec.data.store import SequenceStore
        from argusrec.finetune import PairwiseTask, TwoTower, assemble_finetune_batch, finetune_chunks
        from argusrec.finetune.reference import reference_scores
        from argusrec.recipes.finetune import period_pairs
        from argusrec.recipes.pretrain import argus_model_for, data_parts, feedback_ranges
        from argusrec.recipes.train import make_split
        from argusrec.training.checkpoint import load_weights
        from argusrec.training.device import resolve_device, to_device

        cfg = load_config(run / "config.yaml")
        ft = cfg.finetune
        assert ft is not None
        store = SequenceStore.open(cfg.data.path)
        ctx, fb, _, _ = data_parts(cfg, store)
        model = TwoTower(argus_model_for(cfg, store, ctx, fb), item_tower=ft.item_tower, dim=ft.dim, copy=False)
        load_weights(run / "checkpoints" / "best.pt", model)
        device = resolve_device(self.args.device)
        model.to(device).eval()
        split = make_split(store, cfg)
        ranges, _ = feedback_ranges(store, split, fb, {})  # the run's map of continuous feedback
        pairs = period_pairs(store, split, cfg, "test")
        chunks = finetune_chunks(
            pairs, store.offsets, max_len=cfg.data.max_len, min_len=ft.min_len, max_impressions=ft.max_impressions
        )
        task = PairwiseTask(lag=ft.lag, check=False, feedback_ranges=ranges)
        ids = np.arange(min(len(chunks), self.args.impression_chunks))
        batches = [
            to_device(
                assemble_finetune_batch(store, chunks, ids[i : i + 8], columns=PairwiseTask.columns(model)), device
            )
            for i in range(0, len(ids), 8)
        ]
        sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
        with torch.no_grad():
            for b in batches[:1]:
                task.scores(model, b)  # warm-up
            sync()
            t = time.perf_counter()
            one = [task.scores(model, b) for b in batches]
            sync()
            t_one = time.perf_counter() - t
            t = time.perf_counter()
            ref = [reference_scores(model, b, ft.lag, ranges) for b in batches]
            sync()
            t_ref = time.perf_counter() - t
        diff, n_imp = 0.0, 0
        for (s, ok), r in zip(one, ref, strict=True):
            okc = ok.cpu()
            assert torch.equal(okc, ~torch.isnan(r)), (
                "one pass and reference disagree on which impressions have a state"
            )
            if okc.any():
                diff = max(diff, float((s.double().cpu()[okc] - r[okc]).abs().max()))
            n_imp += int(okc.sum())
        m = {
            "max_abs_score_diff": diff,
            "impressions": n_imp,
            "examples": len(ids),
            "one_pass_impressions_per_s": n_imp / t_one,
            "impression_level_impressions_per_s": n_imp / t_ref,
            "speedup": t_ref / t_one,
        }
        self.add(name, "impression-level", m, t_one + t_ref, note="same model, same test impressions, eval mode")

    # ------------------------------------------------------------------ all
    def run(self) -> None:
        from argusrec.data.simulator import SimulationConfig
        from argusrec.recipes.data import simulate

        a = self.args
        self.records = read_results(BENCH, keep=a.resume)
        sim = self.work / f"sim-{a.events}"
        if not (sim / "manifest.json").exists():
            simulate(SimulationConfig(n_events=a.events, seed=a.seed), sim, overwrite=True, progress=False)
        self.dataset("simulated", sim, [], [], sim=True)
        for name in [m for m in a.movielens.split(",") if m]:
            data = movielens_rating01(self.work, Path(a.shared_data), name)
            if data is None:
                self.skipped(name, MODELS, f"{Path(a.shared_data) / name} not found")
                continue
            ft = [ML_PAIRS, f"finetune.pairs.window_s={a.ml_window}", "finetune.lag=0"]
            self.dataset(name, data, ft, ["argus.positive_signal=like"], sim=False)
        write_section(BENCH, markdown(self.records))
        print(f"done in {time.perf_counter() - self.start:.0f} s")


def _fresh(path: Path) -> Path:
    import shutil

    if path.exists():
        shutil.rmtree(path)
    return path


# ---------------------------------------------------------------------- markdown
def _f(x: Any, digits: int = 4) -> str:
    if x is None:
        return "–"
    if isinstance(x, int):
        return f"{x:,}"
    return f"{x:.{digits}f}" if isinstance(x, float) else str(x)


def markdown(records: list[dict[str, Any]]) -> str:
    if not records:
        return "## ARGUS fine-tuning (`benchmarks/argus_finetune.py`)\n\nNo results yet."
    cond = records[0].get("conditions", "")
    lines = [
        "## ARGUS fine-tuning (`benchmarks/argus_finetune.py`)",
        "",
        "Two-tower pairwise fine-tuning from the pre-trained ARGUS (docs/finetune.md): pairs = impressions of the",
        "same request (simulated) or the same activity window (MovieLens, rating-based grades) with different",
        "feedback; global temporal split (validation 10%, test 10% of time); user state = the last event at least",
        "`lag` before the request. `PairAccuracy` = share of test pairs ordered correctly; `_weighted` = weighted by",
        "the pair-weight table (like>skip 3, listen>skip 1, ...; MovieLens: the star difference). Popularity =",
        "training-period item counts; oracle = the simulator's true affinity (a ceiling); all on the same test pairs.",
        "Final rankers: LightGBM lambdarank on baseline features (item popularity and feedback means, user activity",
        "and means, lagged recency and user-item history, context), trained on the validation period, tested on the",
        "test period; `ranker+argus` adds the two-tower score; gain = relative weighted PairAccuracy change.",
        "",
        f"Conditions: {cond}",
        "",
    ]
    datasets = list(dict.fromkeys(r["dataset"] for r in records))
    for ds in datasets:
        recs = {r["model"]: r for r in records if r["dataset"] == ds}
        lines += [f"### {ds}", "", "| model | PairAccuracy_weighted | PairAccuracy | test pairs | events/s | note |"]
        lines += ["|---|---|---|---|---|---|"]
        for model in MODELS:
            r = recs.get(model)
            if r is None or model == "impression-level":
                continue
            m = r["metrics"]
            note = r.get("note", "")
            if model == "ranker+argus" and "gain" in m:
                note = f"**gain {m['gain']:+.2%}** (unweighted {m['gain_unweighted']:+.2%}) {note}".strip()
                rt = r.get("ranker_train")
                if rt:  # what the ranker learnt the feature from: the validation period's impressions
                    note += (
                        f"; ranker trained on {rt['impressions']:,} validation impressions ({rt['pairs']:,} pairs), "
                        f"{rt['argus_coverage']:.0%} of them with an ARGUS score"
                    )
            if model in ("argus-twotower", "no-pretrain", "short-finetune") and "steps" in m:
                note = f"{m['steps']} steps, best epoch {r.get('best_epoch')} {note}".strip()
            lines.append(
                f"| {model} | {_f(m.get('test/PairAccuracy_weighted'))} | {_f(m.get('test/PairAccuracy'))} | "
                f"{_f(m.get('test/pairs'))} | {_f(m.get('events_per_s'), 0)} | {note} |"
            )
        il = recs.get("impression-level")
        if il is not None and il["metrics"]:
            m = il["metrics"]
            lines += [
                "",
                f"One pass vs impression-level (same model, {m['impressions']:,} test impressions of {m['examples']} "
                f"examples): max |score difference| {m['max_abs_score_diff']:.2e}; "
                f"{m['one_pass_impressions_per_s']:,.0f} vs {m['impression_level_impressions_per_s']:,.0f} "
                f"impressions/s: **{m['speedup']:.1f}x** faster in one pass.",
            ]
        elif il is not None:
            lines += ["", f"impression-level: {il.get('note', '')}"]
        lines.append("")
    hw = records[0].get("hardware", "")
    lines.append(f"Hardware: {hw}; commit {records[0].get('commit', '')}.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    ap.add_argument("--events", type=int, default=1_000_000, help="simulated events")
    ap.add_argument("--preset", default="argus-tiny", help="pre-training preset (argus-tiny, argus-3m, ...)")
    ap.add_argument("--pretrain-epochs", type=int, default=6)
    ap.add_argument("--finetune-epochs", type=int, default=5)
    ap.add_argument("--short-fraction", type=float, default=0.2, help="short-finetune: share of the steps")
    ap.add_argument("--lag", type=int, default=3_600, help="simulated data: seconds (the simulator: sessions a day)")
    ap.add_argument("--ml-window", type=int, default=3_600, help="MovieLens: pair window in seconds")
    ap.add_argument("--movielens", default=",".join(MOVIELENS), help="comma-separated; empty = none")
    ap.add_argument("--impression-chunks", type=int, default=48, help="test examples of the impression-level check")
    ap.add_argument("--threads", type=int, default=None, help="train.num_threads on the CPU")
    ap.add_argument("--deadline", type=float, default=float("inf"), help="minutes for everything; later work: not run")
    ap.add_argument("--shared-data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    ap.add_argument("--workdir", default="/tmp/argusrec-bench-finetune")
    ap.add_argument("--resume", action="store_true", help="start from the JSON's records (re-runs every step)")
    ap.add_argument("--render-only", action="store_true", help="rewrite the markdown from the JSON")
    ap.add_argument("--note", default="", help="a sentence about the run's conditions, stored with the results")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    if args.render_only:
        write_section(BENCH, markdown(read_results(BENCH)))
        return
    Bench(args).run()


if __name__ == "__main__":
    main()
