"""Evaluate a finished (or interrupted) run directory again: rebuild the model, load its best weights."""

from __future__ import annotations

import json
from pathlib import Path

from argusrec import __version__
from argusrec.config import load_config
from argusrec.data.splits import EVAL_ROLES, EvalRole
from argusrec.data.store import SequenceStore
from argusrec.errors import ArgusrecError
from argusrec.models.builders import build_model
from argusrec.recipes.pretrain import argus_model_for, data_parts, evaluate_argus_roles, feedback_ranges
from argusrec.recipes.train import RUN_FORMAT, evaluate_roles, make_split
from argusrec.training.checkpoint import load_weights
from argusrec.training.device import resolve_device


def evaluate_run(run_dir: str | Path, *, roles: tuple[EvalRole, ...] = EVAL_ROLES, device: str = "auto") -> dict:
    """Metrics of the run's best checkpoint (``last.pt`` when no validation ever ran) on ``roles``."""
    run_dir = Path(run_dir)
    info = run_dir / "run.json"
    if not info.is_file():
        raise ArgusrecError(f"{run_dir} is not a run directory (no run.json); train one with `argusrec train`")
    meta = json.loads(info.read_text())
    if meta.get("format") != RUN_FORMAT:
        raise ArgusrecError(
            f"{run_dir} was written by argusrec {meta.get('argusrec_version')} (run format {meta.get('format')}); "
            f"this is argusrec {__version__} (run format {RUN_FORMAT}) and cannot read it"
        )
    config = load_config(run_dir / "config.yaml")
    ckpt = run_dir / "checkpoints" / "best.pt"
    if not ckpt.exists():
        ckpt = run_dir / "checkpoints" / "last.pt"
    if not ckpt.exists():
        raise ArgusrecError(f"{run_dir} has no checkpoint yet (checkpoints/best.pt or last.pt)")
    store = SequenceStore.open(config.data.path)
    dev = resolve_device(device)
    split = make_split(store, config)
    if config.task == "argus":
        context, feedback, fp_kinds, _ = data_parts(config, store)
        ranges, _ = feedback_ranges(store, split, feedback, fp_kinds)  # the run's map: same data, same split
        argus = argus_model_for(config, store, context, feedback)
        load_weights(ckpt, argus)
        argus.to(dev)
        metrics = evaluate_argus_roles(argus, store, split, config, list(fp_kinds), roles, dev, feedback_ranges=ranges)
    else:
        model = build_model(config.model, config.loss, n_items=store.n_items, max_len=config.data.max_len)
        load_weights(ckpt, model)
        model.to(dev)
        metrics = evaluate_roles(model, store, split, config, roles, dev)
    return {"checkpoint": str(ckpt), "metrics": metrics}
