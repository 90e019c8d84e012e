"""Where training runs and how it is made repeatable: device choice, bf16 autocast, seeding, RNG states.

RNG states are returned as plain tensors / lists / ints so that a checkpoint holding them loads with
``torch.load(..., weights_only=True)`` (no pickled numpy objects).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import random
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from argusrec.errors import ArgusrecError


def resolve_device(spec: str = "auto") -> torch.device:
    """``"auto"`` → the first CUDA device when one is usable, else the CPU; otherwise ``torch.device(spec)``.

    Raises:
        ArgusrecError: the spec is not a device name, or names a CUDA device this machine does not have.
    """
    if spec == "auto":
        return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    try:
        device = torch.device(spec)
    except RuntimeError as e:
        raise ArgusrecError(
            f"train.device={spec!r} is not a device name ({e}); use auto, cpu, cuda or cuda:N"
        ) from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ArgusrecError(f"train.device={spec!r} but CUDA is not available here; use train.device=auto or cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ArgusrecError(
                f"train.device={spec!r} but this machine has {torch.cuda.device_count()} CUDA device(s)"
            )
    return device


def autocast(device: torch.device, bf16: bool) -> contextlib.AbstractContextManager[Any]:
    """bf16 autocast on CUDA when ``bf16``; a no-op elsewhere.

    CPU bf16 autocast is left off on purpose: on most CPUs it is slower than fp32 and it changes the
    numerics of the CPU tests that pin exact-resume behaviour.
    """
    if bf16 and device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


@functools.cache
def _malloc_trim() -> Any:
    """glibc's ``malloc_trim``, or None (another C library, or none found)."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        return getattr(ctypes.CDLL(name), "malloc_trim", None)
    except OSError:
        return None


def release_freed_memory() -> bool:
    """Hand the free pages of the C heap back to the system (glibc ``malloc_trim(0)``); False where unavailable.

    A CPU training process whose batches change shape from step to step (length-bucketed histories) frees and
    reallocates tensors of ever different sizes, and glibc keeps what was freed in its heap for reuse: the
    resident size grows to several GiB although the live tensors stay well under one (docs/benchmarks.md).
    Trimming every few dozen steps keeps it near the live size; it changes no computed number.
    """
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True


def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, NumPy's global generator and torch (CPU and every CUDA device)."""
    random.seed(seed)
    # The legacy global generator is what third-party and user code reach for (np.random.rand), so it
    # is seeded and checkpointed too; its seed must fit in 32 bits.
    np.random.seed(seed % 2**32)  # noqa: NPY002
    torch.manual_seed(seed)  # also seeds all CUDA devices


def rng_state() -> dict[str, Any]:
    """Every global RNG state, as tensors / lists / ints only (safe for ``weights_only`` loading)."""
    version, mt, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)  # noqa: NPY002
    state: dict[str, Any] = {
        "python": {"version": version, "state": list(mt), "gauss": gauss},
        # uint32 keys fit in int64 without loss; a tensor keeps the 624 words compact.
        "numpy": {
            "kind": str(kind),
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }
    return state


def set_rng_state(state: Mapping[str, Any]) -> None:
    """Restore what :func:`rng_state` returned.

    CUDA states are restored only when this machine has the same number of CUDA devices; otherwise the
    CUDA generators keep their current state (resuming a GPU run on another machine cannot be exact).
    """
    py = state["python"]
    random.setstate((int(py["version"]), tuple(int(x) for x in py["state"]), py["gauss"]))
    npy = state["numpy"]
    np.random.set_state(  # noqa: NPY002
        (
            npy["kind"],
            npy["keys"].numpy().astype(np.uint32),
            int(npy["pos"]),
            int(npy["has_gauss"]),
            float(npy["cached_gaussian"]),
        )
    )
    torch.set_rng_state(state["torch"].cpu())  # set_rng_state wants a CPU ByteTensor
    cuda = list(state.get("cuda", []))
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([t.cpu() for t in cuda])


def to_device(batch: Mapping[str, np.ndarray], device: torch.device) -> dict[str, torch.Tensor]:
    """Numpy batch → tensors on ``device`` (dtypes kept: int32 ids stay int32, bool masks stay bool).

    ``torch.from_numpy`` shares memory, so on the CPU no copy is made; read-only or non-contiguous
    arrays (memory-mapped slices, reversed views) are copied first because torch cannot wrap them.
    """
    out: dict[str, torch.Tensor] = {}
    for name, arr in batch.items():
        if isinstance(arr, torch.Tensor):
            out[name] = arr.to(device, non_blocking=True)
            continue
        arr = np.asarray(arr)
        if not arr.flags.writeable or not arr.flags.c_contiguous:
            arr = np.ascontiguousarray(arr).copy()
        # non_blocking only overlaps with pinned memory; for pageable numpy memory it is a plain copy.
        out[name] = torch.from_numpy(arr).to(device, non_blocking=True)
    return out
