"""Training checkpoints: written atomically, loaded with ``weights_only=True``, validated before use.

A checkpoint is one ``torch.save`` file holding a dict of tensors and plain values only::

    format            "argusrec-checkpoint"
    format_version    FORMAT_VERSION (int); other versions are refused
    argusrec_version  the package version that wrote it (informative)
    torch_version     likewise
    kind              "last" (everything needed to resume) or "best" (weights + progress only)
    model             the model's state_dict (the uncompiled module's keys)
    optimizer         optimizer.state_dict()            ("last" only)
    scheduler         lr_scheduler.state_dict()         ("last" only)
    progress          {"epoch", "batch", "step", "batches_per_epoch", "best_metric", "best_epoch",
                       "bad_evals", "stopped_early", "seconds", "train_seconds", "targets", "events"}
    history           [{"epoch", "step", <metric>: value, ...}, ...] one dict per evaluation
    rng               {"python", "numpy", "torch", "cuda"} (see :func:`argusrec.training.device.rng_state`)
    stateful          {name: obj.state_dict()} for the extra objects passed to ``fit``
    config            {"optim": {...}, "train": {...}} as JSON-like dicts
    average           ("last" only, runs with ``train.ema_decay``) the weight average's state
                      (:class:`argusrec.training.averaging.WeightAverage`); ``best`` then holds the averaged weights

``progress.epoch``/``progress.batch`` say where to continue: batch ``batch`` of epoch ``epoch``
(0-based), i.e. ``batches.epoch(epoch, start_batch=batch)``; ``step`` counts optimizer steps done.

Files are written to a hidden temporary file in the same directory, flushed to disk and renamed over
the target with ``os.replace``, so a crash leaves either the previous complete file or the new one.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from argusrec import __version__
from argusrec.errors import ArgusrecError
from argusrec.training.averaging import load_average

FORMAT = "argusrec-checkpoint"
FORMAT_VERSION = 1
KINDS = ("last", "best")
_PLAIN = (bool, int, float, str, type(None), torch.Tensor, torch.dtype, torch.device, torch.Size)


def atomic_save(obj: Any, path: str | Path) -> Path:
    """``torch.save(obj)`` to ``path`` so that ``path`` is never seen half-written.

    The bytes go to a temporary file next to ``path`` (same filesystem, so the rename is atomic),
    are fsynced, then renamed into place; on any error the temporary file is removed and the
    previous ``path`` (if any) is left untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    return path


def _fsync_dir(directory: Path) -> None:
    """Make the rename itself durable (POSIX); silently skipped where directories cannot be opened."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def check_plain(obj: Any, where: str) -> None:
    """Raise if ``obj`` holds anything ``torch.load(weights_only=True)`` would refuse.

    Checked at save time so that a sampler storing, say, a numpy array fails when the run starts
    checkpointing, with the offending path named, rather than when someone tries to resume.
    """
    # Exact types: a subclass of str or int (TorchVersion, IntEnum) is pickled as its class and refused.
    if type(obj) in _PLAIN or isinstance(obj, torch.Tensor):
        return
    if type(obj) is dict:
        for k, v in obj.items():
            if not isinstance(k, (str, int)):
                raise ArgusrecError(f"{where}: key {k!r} is a {type(k).__name__}; checkpoint keys must be str or int")
            check_plain(v, f"{where}[{k!r}]")
        return
    if type(obj) in (list, tuple):
        for i, v in enumerate(obj):
            check_plain(v, f"{where}[{i}]")
        return
    raise ArgusrecError(
        f"{where} is a {type(obj).__module__}.{type(obj).__qualname__}; checkpoints hold only tensors, "
        "numbers, strings, None and lists/tuples/dicts of them (they load with weights_only=True): "
        "convert it in state_dict(), e.g. a numpy array with torch.from_numpy"
    )


def make_checkpoint(
    kind: str,
    *,
    model: nn.Module,
    progress: Mapping[str, Any],
    history: list[dict[str, Any]] | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any = None,
    rng: Mapping[str, Any] | None = None,
    stateful: Mapping[str, Any] | None = None,
    config: Mapping[str, Any] | None = None,
    model_state: Mapping[str, torch.Tensor] | None = None,
) -> dict[str, Any]:
    """Assemble the checkpoint dict (see module doc); ``stateful`` maps names to objects with ``state_dict()``.

    ``model_state`` replaces ``model.state_dict()`` (e.g. the full weights gathered from an FSDP-sharded model).
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    ckpt: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "argusrec_version": __version__,
        "torch_version": str(torch.__version__),  # TorchVersion is a str subclass weights_only refuses
        "kind": kind,
        "model": dict(model_state) if model_state is not None else model.state_dict(),
        "progress": dict(progress),
        "history": [dict(h) for h in history or []],
        "config": dict(config or {}),
    }
    if kind == "last":
        if optimizer is None or rng is None:
            raise ValueError("a 'last' checkpoint needs the optimizer and the RNG state")
        ckpt["optimizer"] = optimizer.state_dict()
        ckpt["scheduler"] = scheduler.state_dict() if scheduler is not None else None
        ckpt["rng"] = dict(rng)
        ckpt["stateful"] = {name: obj.state_dict() for name, obj in (stateful or {}).items()}
    # Model and optimizer state come from torch itself; check the rest, where user objects end up.
    for key in ("progress", "history", "config", "rng", "stateful", "scheduler"):
        if key in ckpt:
            check_plain(ckpt[key], f"checkpoint[{key!r}]")
    return ckpt


def save_checkpoint(path: str | Path, ckpt: Mapping[str, Any]) -> Path:
    """Write a dict from :func:`make_checkpoint` atomically (see :func:`atomic_save`)."""
    return atomic_save(dict(ckpt), path)


def load_checkpoint(
    path: str | Path,
    *,
    model: nn.Module | None = None,
    kind: str | None = None,
    map_location: str | torch.device = "cpu",
    mmap: bool = False,
) -> dict[str, Any]:
    """Read and validate a checkpoint; with ``model``, also check that its parameters match.

    ``mmap=True`` maps the file instead of reading it: a tensor is read from disk only when it is used, so
    reading a large checkpoint's ``progress`` costs next to nothing (the tensors must not outlive a rewrite
    of the file).

    Nothing is loaded into ``model`` here: callers restore state only after every check has passed, so
    a refused checkpoint never leaves a half-restored model.

    Raises:
        ArgusrecError: naming the file and the reason, when the file is missing, truncated or
            corrupted, holds something other than plain tensors (refused by ``weights_only``), is not
            an argusrec checkpoint, has another format version, is of the wrong ``kind``, or its
            weights do not fit ``model`` (missing / unexpected keys, shape mismatches).
    """
    path = Path(path)
    if not path.is_file():
        raise ArgusrecError(f"{path}: no such checkpoint file")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except Exception as e:  # torch raises RuntimeError, EOFError, UnpicklingError, zipfile errors...
        text = str(e).strip()
        # torch wraps the useful part of weights_only failures in a long notice; keep just that part.
        detail = text.split("WeightsUnpickler error:", 1)[-1].strip()
        reason = detail.splitlines()[0] if detail else type(e).__name__
        if "Unsupported global" in reason:
            raise ArgusrecError(
                f"{path}: refused to load: it holds Python objects other than tensors and plain values, and "
                f"argusrec loads checkpoints with weights_only=True only ({reason})"
            ) from None
        raise ArgusrecError(
            f"{path}: cannot read the checkpoint, the file is truncated or corrupted ({type(e).__name__}: {reason}); "
            "delete it to start over, or restore it from a copy"
        ) from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        found = ckpt.get("format") if isinstance(ckpt, dict) else type(ckpt).__name__
        raise ArgusrecError(f"{path}: not an argusrec checkpoint (format {found!r}, expected {FORMAT!r})")
    version = ckpt.get("format_version")
    if version != FORMAT_VERSION:
        raise ArgusrecError(
            f"{path}: checkpoint format version {version!r} (written by argusrec "
            f"{ckpt.get('argusrec_version', '?')}) is not supported by argusrec {__version__}, which reads "
            f"version {FORMAT_VERSION}; train again with this version or use the matching argusrec"
        )
    if kind is not None and ckpt.get("kind") != kind:
        raise ArgusrecError(f"{path}: a {ckpt.get('kind')!r} checkpoint where a {kind!r} one is needed")
    missing = [k for k in ("model", "progress") if k not in ckpt]
    if ckpt.get("kind") == "last":
        missing += [k for k in ("optimizer", "rng", "stateful") if k not in ckpt]
    if missing:
        raise ArgusrecError(f"{path}: checkpoint is incomplete, missing {missing}")
    if model is not None:
        check_model_matches(path, ckpt["model"], model)
    return ckpt


def check_model_matches(path: str | Path, saved: Mapping[str, torch.Tensor], model: nn.Module) -> None:
    """Refuse (ArgusrecError naming ``path``) weights whose keys or shapes differ from ``model``'s."""
    wanted = model.state_dict()
    missing = sorted(set(wanted) - set(saved))
    unexpected = sorted(set(saved) - set(wanted))
    shapes = [
        f"{k}: checkpoint {tuple(saved[k].shape)} vs model {tuple(wanted[k].shape)}"
        for k in sorted(set(wanted) & set(saved))
        if isinstance(saved[k], torch.Tensor) and tuple(saved[k].shape) != tuple(wanted[k].shape)
    ]
    problems = []
    if missing:
        problems.append(f"missing keys {_few(missing)}")
    if unexpected:
        problems.append(f"unexpected keys {_few(unexpected)}")
    if shapes:
        problems.append(f"shape mismatch {_few(shapes)}")
    if problems:
        raise ArgusrecError(
            f"{path}: the checkpoint's weights do not fit this model ({'; '.join(problems)}); "
            "was it trained with another model config?"
        )


def load_weights(path: str | Path, model: nn.Module) -> dict[str, Any]:
    """Load the weights of a ``last`` or ``best`` checkpoint into ``model``; return the checkpoint's progress.

    A ``last`` checkpoint of a run with ``train.ema_decay`` gives its weight average (what that run validates and
    returns), not the raw weights it resumes from.
    """
    ckpt = load_checkpoint(path, model=model)
    model.load_state_dict(ckpt["model"])
    load_average(ckpt, model)
    return dict(ckpt["progress"])


def _few(items: list[str], n: int = 5) -> str:
    shown = ", ".join(items[:n])
    return f"[{shown}{f', ... ({len(items) - n} more)' if len(items) > n else ''}]"
