"""The ``argusrec`` command line. Thin: parse options, call a recipe, print the result.

Errors the user can fix (:class:`~argusrec.errors.ArgusrecError`, invalid configs) are printed as one
message and exit with status 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Optional

import typer
from pydantic import ValidationError

from argusrec.data.build import BuildReport
from argusrec.errors import ArgusrecError

app = typer.Typer(
    help="argusrec: train, evaluate and serve generative transformer recommenders (ARGUS, HSTU, SASRec...).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
data_app = typer.Typer(help="Simulate, prepare and describe datasets.", no_args_is_help=True)
app.add_typer(data_app, name="data")


def _progress(no_progress: bool) -> bool:
    return not no_progress and sys.stderr.isatty()


def _is_main() -> bool:
    """False on the ranks > 0 of a torchrun launch: only rank 0 prints results."""
    from argusrec.training.distributed import is_main

    return is_main()


@data_app.command("simulate")
def data_simulate(
    output: Path = typer.Option(..., "--output", "-o", help="Directory of the prepared dataset to write."),
    events: int = typer.Option(200_000, "--events", "-n", help="Number of events to simulate."),
    seed: int = typer.Option(0, "--seed", help="Random seed: the same seed gives the same dataset."),
    users: Optional[int] = typer.Option(None, "--users", help="Number of users (default: from --events)."),
    items: Optional[int] = typer.Option(None, "--items", help="Catalog size (default: from --events)."),
    days: Optional[int] = typer.Option(None, "--days", help="Length of the simulated period in days."),
    raw: Optional[Path] = typer.Option(None, "--raw", help="Also write the raw event log to this Parquet file."),
    no_latent: bool = typer.Option(False, "--no-latent", help="Do not store the simulator's ground truth."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace OUTPUT if it exists."),
    no_progress: bool = typer.Option(False, "--no-progress", help="Hide progress bars."),
) -> None:
    """Simulate a music-streaming service (context, items, feedback) and prepare it."""
    from argusrec.data.simulator import SimulationConfig
    from argusrec.recipes.data import simulate

    overrides = {"n_users": users, "n_items": items, "days": days}
    config = SimulationConfig.model_validate(
        {"n_events": events, "seed": seed, **{k: v for k, v in overrides.items() if v is not None}}
    )
    report = simulate(
        config, output, raw=raw, latent=not no_latent, overwrite=overwrite, progress=_progress(no_progress)
    )
    _print_report(report)


@data_app.command("prepare")
def data_prepare(
    source: str = typer.Option(..., "--source", "-s", help="movielens | amazon | yambda | kuairand | generic"),
    output: Path = typer.Option(..., "--output", "-o", help="Directory of the prepared dataset to write."),
    input: Optional[Path] = typer.Option(None, "--input", "-i", help="Raw file, folder or zip."),
    dataset: Optional[str] = typer.Option(
        None, "--dataset", help="MovieLens dataset to download when not cached (ml-100k, ml-1m, ...)."
    ),
    cache_dir: Optional[Path] = typer.Option(None, "--cache-dir", help="Download cache (default ~/.cache/argusrec)."),
    config: Optional[Path] = typer.Option(None, "--config", help="Generic source: YAML/JSON column map."),
    column: list[str] = typer.Option([], "--column", help="Generic: canonical=raw, e.g. user_id=uid (repeat)."),
    context: list[str] = typer.Option([], "--context", help="Generic: a context column (repeat)."),
    feedback: list[str] = typer.Option([], "--feedback", help="Generic: name:binary|continuous (repeat)."),
    item_feature: list[str] = typer.Option([], "--item-feature", help="Generic: an item feature column (repeat)."),
    request_id: Optional[str] = typer.Option(None, "--request-id", help="Generic: column grouping shown items."),
    timestamp_unit: Optional[str] = typer.Option(None, "--timestamp-unit", help="Generic: s|ms|us|ns|datetime."),
    separator: Optional[str] = typer.Option(None, "--sep", help="Generic CSV: field separator (default: sniffed)."),
    no_header: bool = typer.Option(False, "--no-header", help="Generic CSV: the file has no header line."),
    names: Optional[str] = typer.Option(None, "--names", help="Generic CSV without header: comma-separated names."),
    file_format: Optional[str] = typer.Option(None, "--format", help="Generic: csv | parquet (default: by extension)."),
    id_type: Optional[str] = typer.Option(None, "--id-type", help="Generic/Amazon: auto | int | string ids."),
    strict: bool = typer.Option(False, "--strict", help="Fail on the first bad row instead of skipping it."),
    rejects: Optional[Path] = typer.Option(None, "--rejects", help="Write skipped rows to this CSV file."),
    partitions: Optional[int] = typer.Option(None, "--partitions", help="User-hash partitions (default: auto)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace OUTPUT if it exists."),
    no_progress: bool = typer.Option(False, "--no-progress", help="Hide progress bars."),
) -> None:
    """Read raw data in its original format and write a prepared dataset (sequence store)."""
    from argusrec.recipes.data import open_source, prepare

    generic = None
    if source == "generic":
        generic = _generic_config(
            config,
            maps=column,
            context=context,
            feedback=feedback,
            item_features=item_feature,
            request_id=request_id,
            timestamp_unit=timestamp_unit,
            separator=separator,
            header=False if no_header else None,
            names=names.split(",") if names else None,
            format=file_format,
            id_type=id_type,
        )
    elif config or column or context or feedback or item_feature or request_id or timestamp_unit or separator:
        raise ArgusrecError("--config/--column/--context/--feedback/... apply to --source generic only")
    elif no_header or names or file_format or (id_type and source != "amazon"):
        raise ArgusrecError("--no-header/--names/--format apply to --source generic only (--id-type: also amazon)")
    progress = _progress(no_progress)
    src = open_source(
        source, input, dataset=dataset, generic=generic, cache_dir=cache_dir, id_type=id_type, progress=progress
    )
    report = prepare(
        src, output, strict=strict, rejects=rejects, overwrite=overwrite, partitions=partitions, progress=progress
    )
    _print_report(report, rejects)


def _generic_config(config: Path | None, **cli: object):
    """The generic adapter's column map: from --config FILE or from the command-line flags, not both."""
    from argusrec.data.adapters.generic_config import GenericConfig

    given = {k: v for k, v in cli.items() if v not in (None, [], "")}
    if config is not None:
        if given:
            raise ArgusrecError(
                f"give the column map either in --config or on the command line, not both: {sorted(given)}"
            )
        return GenericConfig.from_file(config)
    return GenericConfig.from_cli(**given)  # type: ignore[arg-type]


@data_app.command("describe")
def data_describe(
    path: Path = typer.Argument(..., help="A prepared dataset directory."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Users, items, events, time span and per-column statistics of a prepared dataset."""
    from argusrec.data.describe import render
    from argusrec.recipes.data import summarize

    summary = summarize(path)
    typer.echo(json.dumps(summary, indent=2) if as_json else render(summary))


@app.command("train")
def train_cmd(
    config: str = typer.Option(..., "--config", "-c", help="YAML run config, or a preset name (`argusrec presets`)."),
    set_: list[str] = typer.Option([], "--set", help="Override a config key: key.path=value (repeat)."),
    run_dir: Optional[Path] = typer.Option(None, "--run-dir", help="Run directory (default output_dir/name)."),
    no_progress: bool = typer.Option(False, "--no-progress", help="Hide progress bars."),
) -> None:
    """Train a sequential recommender, validate, early-stop, then report validation and test metrics."""
    from argusrec.config import load_config
    from argusrec.recipes.train import train

    cfg = load_config(config, set_)
    _report_run(
        train(cfg, run_dir=run_dir, progress=_progress(no_progress)), run_dir or Path(cfg.output_dir) / cfg.name
    )


@app.command("pretrain")
def pretrain_cmd(
    config: str = typer.Option(..., "--config", "-c", help="YAML run config with task: argus, or a preset (argus-*)."),
    set_: list[str] = typer.Option([], "--set", help="Override a config key: key.path=value (repeat)."),
    run_dir: Optional[Path] = typer.Option(None, "--run-dir", help="Run directory (default output_dir/name)."),
    no_progress: bool = typer.Option(False, "--no-progress", help="Hide progress bars."),
) -> None:
    """ARGUS pre-training (next-item + feedback prediction), then validation and test NIP / FP metrics."""
    from argusrec.config import load_config
    from argusrec.recipes.pretrain import pretrain

    cfg = load_config(config, set_)
    summary = pretrain(cfg, run_dir=run_dir, progress=_progress(no_progress))
    _report_run(summary, run_dir or Path(cfg.output_dir) / cfg.name)


def _report_run(summary: dict, where: Path) -> None:
    """After `train` / `pretrain`: the data notes, the metrics next to popularity, the run directory (rank 0)."""
    if not _is_main():
        return
    for note in summary.get("notes", []):
        typer.echo(f"note: {note}")
    _print_metrics(summary["metrics"], {"popularity": summary.get("popularity_baseline") or {}})
    typer.echo(f"run directory: {where}  (metrics.json, model_card.md, checkpoints/)")


@app.command("evaluate")
def evaluate_cmd(
    run_dir: Path = typer.Argument(..., help="A run directory written by `argusrec train`."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda"),
) -> None:
    """Evaluate a run's best checkpoint (next-item or ARGUS) on the validation and test periods."""
    from argusrec.recipes.evaluate import evaluate_run

    result = evaluate_run(run_dir, device=device)
    typer.echo(f"checkpoint: {result['checkpoint']}")
    _print_metrics(result["metrics"])


@app.command("finetune")
def finetune_cmd(
    pretrained: Optional[Path] = typer.Option(
        None, "--pretrained", "-p", help="A pre-training run directory: fine-tune with its config (architecture, data)."
    ),
    config: Optional[str] = typer.Option(None, "--config", "-c", help="Or a YAML run config with task: finetune."),
    set_: list[str] = typer.Option([], "--set", help="Override a config key: key.path=value (repeat)."),
    run_dir: Optional[Path] = typer.Option(None, "--run-dir", help="Run directory (default output_dir/name)."),
    no_progress: bool = typer.Option(False, "--no-progress", help="Hide progress bars."),
) -> None:
    """ARGUS fine-tuning: a two-tower pairwise ranker from a pre-trained ARGUS, test PairAccuracy vs baselines.

    Ablations: --set finetune.checkpoint=null (no pre-training), --set finetune.train_fraction=0.25 or
    --set train.epochs=1 (shorter fine-tuning). See docs/finetune.md.
    """
    from argusrec.config import load_config
    from argusrec.recipes.finetune import finetune, finetune_config

    if (pretrained is None) == (config is None):
        raise ArgusrecError("give either --pretrained RUN_DIR (a pre-training run) or --config FILE (task: finetune)")
    cfg = finetune_config(pretrained, set_) if pretrained is not None else load_config(str(config), set_)
    summary = finetune(cfg, run_dir=run_dir, progress=_progress(no_progress))
    if not _is_main():
        return
    for note in summary.get("notes", []):
        typer.echo(f"note: {note}")
    where = run_dir or Path(cfg.output_dir) / cfg.name
    _print_finetune(summary)
    typer.echo(f"run directory: {where}  (metrics.json, model_card.md, scores/, checkpoints/)")
    typer.echo(f"next: argusrec rank --finetune-run {where}      # final-ranker uplift of the ARGUS score")


def _print_finetune(summary: dict) -> None:
    """Test PairAccuracy of the fine-tuned two-tower next to its baselines (same pairs)."""
    m = summary["metrics"]
    _print_metrics(m, summary["baselines"], ["test/PairAccuracy", "test/PairAccuracy_weighted", "test/pairs"])
    valid = m["valid/PairAccuracy_weighted"]
    typer.echo(f"valid/PairAccuracy_weighted {valid:.4f}; {m['events_per_s']:,.0f} history events/s")


def _print_rank(summary: dict) -> None:
    """The final rankers' test PairAccuracy and the relative gain of the ARGUS score."""
    typer.echo(
        f"rankers trained on the validation period ({summary['ranker_train']['groups']:,} groups, "
        f"{summary['ranker_train']['pairs']:,} pairs), tested on the test period:"
    )
    typer.echo(f"{'model':<24}  {'PairAcc':>10}  {'weighted':>10}  {'pairs':>10}")
    for name, m in summary["models"].items():
        typer.echo(
            f"{name:<24}  {_cell(m['test/PairAccuracy'])}  {_cell(m['test/PairAccuracy_weighted'])}  "
            f"{_cell(m['test/pairs'])}"
        )
    typer.echo(
        f"relative PairAccuracy gain of the ARGUS feature: {summary['gain_unweighted']:+.2%} "
        f"(weighted {summary['gain']:+.2%})"
    )


@app.command("rank")
def rank_cmd(
    finetune_run: Path = typer.Option(..., "--finetune-run", "-r", help="A run directory of `argusrec finetune`."),
    vectors: bool = typer.Option(False, "--vectors", help="Also use the user / item vectors (export_vectors runs)."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Where to write (default RUN/rank)."),
    seed: int = typer.Option(0, "--seed", help="LightGBM seed and holdout draw."),
) -> None:
    """Final ranker (LightGBM) with and without the ARGUS score: the relative test PairAccuracy gain."""
    from argusrec.recipes.rank import rank

    summary = rank(finetune_run, out_dir=output, vectors=vectors, seed=seed)
    _print_rank(summary)
    typer.echo(f"written to {output or finetune_run / 'rank'}  (metrics.json, boosters *.txt)")


@app.command("presets")
def presets_cmd() -> None:
    """List the bundled run presets (use one with `argusrec train --config NAME`)."""
    from argusrec.config import PRESETS_DIR, preset_names

    for name in preset_names():
        first = (PRESETS_DIR / f"{name}.yaml").read_text().splitlines()[0].lstrip("# ")
        typer.echo(f"{name:<22} {first[:100]}")


def _print_metrics(metrics: dict, references: dict[str, dict] | None = None, keys: list[str] | None = None) -> None:
    """A table: one row per metric (``keys``, default every ``role/...`` key), the model's value and one column per
    reference (name -> its metrics, e.g. the popularity baseline; "-" where it has no value)."""
    keys = [k for k in metrics if "/" in k] if keys is None else keys
    refs = {name: ref for name, ref in (references or {}).items() if ref}
    width = max((len(k) for k in keys), default=10)
    typer.echo(f"{'metric':<{width}}  {'model':>10}" + "".join(f"  {name:>10}" for name in refs))
    for k in keys:
        typer.echo(f"{k:<{width}}  {_cell(metrics[k])}" + "".join(f"  {_cell(ref.get(k))}" for ref in refs.values()))


def _cell(value: object) -> str:
    if isinstance(value, int):
        return f"{value:>10,}"
    return f"{value:>10.4f}" if isinstance(value, float) else f"{'-':>10}"


@app.command("quickstart")
def quickstart(
    output: Path = typer.Option(
        Path("runs/quickstart"), "--output", "-o", help="Where the quickstart writes data/ and run/ (replaced)."
    ),
    events: int = typer.Option(200_000, "--events", "-n", help="Events to simulate."),
    epochs: Optional[int] = typer.Option(None, "--epochs", help="Training epochs (default: the argus-tiny preset's)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the simulation and of training."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda"),
    no_progress: bool = typer.Option(False, "--no-progress", help="Hide progress bars."),
    finetune_epochs: int = typer.Option(
        3, "--finetune-epochs", help="Fine-tuning epochs of the two-tower (0 = stop after pre-training)."
    ),
) -> None:
    """Simulate a small streaming service, pre-train argus-tiny, fine-tune it for ranking and measure the
    final-ranker uplift: a few minutes on a CPU."""
    from argusrec.data.simulator import SimulationConfig
    from argusrec.data.store import SequenceStore
    from argusrec.recipes.data import simulate
    from argusrec.recipes.pretrain import pretrain
    from argusrec.recipes.quickstart import fresh_run_dir, headline_keys, quickstart_config, reference_columns

    start, progress = time.perf_counter(), _progress(no_progress)
    data_dir, run_dir = output / "data", output / "run"
    steps = 3 if finetune_epochs == 0 else 5
    typer.echo(f"1/{steps} simulating {events:,} events of a music-streaming service (seed {seed}) -> {data_dir}")
    _print_report(simulate(SimulationConfig(n_events=events, seed=seed), data_dir, overwrite=True, progress=progress))
    schema = SequenceStore.open(data_dir).schema
    typer.echo(f"    context: {', '.join(schema.context)}; feedback: {', '.join(schema.feedback)}")
    cfg = quickstart_config(data_dir, epochs=epochs, seed=seed, device=device)
    typer.echo(
        f"2/{steps} pre-training {cfg.name} (ARGUS {cfg.argus.variant}, {cfg.model.layers} layers, "
        f"width {cfg.model.dim}) for up to {cfg.train.epochs} epochs -> {run_dir}"
    )
    summary = pretrain(cfg, run_dir=fresh_run_dir(run_dir), progress=progress)
    m = summary["metrics"]
    typer.echo(f"3/{steps} test period (the last {cfg.data.test_fraction:.0%} of time; model chosen on validation):")
    _print_metrics(m, reference_columns(cfg, summary["popularity_baseline"]), headline_keys(m))
    typer.echo(
        "lower is better: NIP_loss, FP_NE (< 1 beats the signal's base rate); higher: NDCG, FP_AUC (0.5: chance);\n"
        "popularity: item frequencies / per-item feedback rates of the training period; oracle: the simulator's true\n"
        "probabilities (what no model can beat on average; its NIP_loss on a sample of test events)"
    )
    typer.echo(
        f"{summary['epochs_run']} epochs (best on validation: epoch {summary['best_epoch']}, counting from 0), "
        f"{m['events_per_s']:,.0f} training events/s"
    )
    typer.echo(f"run directory: {run_dir}  (metrics.json with validation too, model_card.md, checkpoints/best.pt)")
    if finetune_epochs > 0:
        _quickstart_finetune(run_dir, output / "finetune", finetune_epochs, device, progress)
    minutes, seconds = divmod(round(time.perf_counter() - start), 60)
    typer.echo(f"wall time {minutes}m{seconds:02d}s")
    typer.echo("next:")
    typer.echo(f"  argusrec evaluate {run_dir}      # re-evaluate the best checkpoint")
    typer.echo(f"  argusrec data describe {data_dir}      # the simulated data in detail")
    typer.echo(f"  argusrec pretrain --config argus-3m --set data.path={data_dir}      # bigger (`argusrec presets`)")
    if finetune_epochs > 0:
        typer.echo(f"  argusrec finetune --pretrained {run_dir} --set finetune.checkpoint=null      # no pre-training")


def _quickstart_finetune(run_dir: Path, ft_dir: Path, epochs: int, device: str, progress: bool) -> None:
    """Quickstart steps 4-5: fine-tune the pre-trained run as a two-tower ranker, then the final-ranker uplift."""
    from argusrec.ranker import lightgbm_available
    from argusrec.recipes.finetune import finetune, finetune_config
    from argusrec.recipes.quickstart import fresh_run_dir
    from argusrec.recipes.rank import rank

    cfg = finetune_config(run_dir, [f"train.epochs={epochs}", "finetune.lag=3600", f"train.device={device}"])
    typer.echo(
        f"4/5 fine-tuning a two-tower pairwise ranker from it ({epochs} epochs, user state >= 1 h before each "
        f"request) -> {ft_dir}"
    )
    _print_finetune(finetune(cfg, run_dir=fresh_run_dir(ft_dir), progress=progress))
    if not lightgbm_available():
        typer.echo("5/5 skipped: LightGBM is not installed (pip install 'argusrec[ranker]')")
        return
    typer.echo("5/5 final ranker (LightGBM) with and without the ARGUS score:")
    _print_rank(rank(ft_dir))
    typer.echo(f"fine-tuning run: {ft_dir}  (metrics.json, model_card.md, scores/, rank/)")


def _print_report(report: BuildReport, rejects: Path | None = None) -> None:
    rate = report.events_per_s
    typer.echo(
        f"wrote {report.path}: {report.n_users:,} users, {report.n_items:,} items, {report.n_events:,} events "
        f"({report.seconds:.1f} s, {rate:,.0f} input rows/s)"
    )
    if report.rejected:
        total = sum(report.rejected.values())
        detail = ", ".join(f"{k}: {v:,}" for k, v in report.rejected.items())
        where = f"; written to {rejects}" if rejects else "; pass --rejects FILE to see them"
        typer.echo(f"skipped {total:,} of {report.input_rows:,} input rows ({detail}){where}")


def main() -> None:
    """Console entry point: user errors become a message and exit status 2."""
    try:
        app()
    except ArgusrecError as e:
        typer.echo(f"error: {e}", err=True)
        raise SystemExit(2) from None
    except ValidationError as e:
        typer.echo(f"error: invalid configuration:\n{e}", err=True)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
