"""Training: the generic loop, AdamW and lr schedules, atomic checkpoints, run logs, device and seeding."""

from argusrec.training.checkpoint import (
    FORMAT_VERSION,
    atomic_save,
    load_checkpoint,
    load_weights,
    make_checkpoint,
    save_checkpoint,
)
from argusrec.training.device import autocast, resolve_device, rng_state, seed_everything, set_rng_state, to_device
from argusrec.training.logs import RunLogs
from argusrec.training.loop import BEST, CHECKPOINT_DIR, LAST, Batches, FitResult, Task, fit
from argusrec.training.optim import Schedule, build_optimizer, build_scheduler, clip_gradients, param_groups

__all__ = [
    "BEST",
    "CHECKPOINT_DIR",
    "FORMAT_VERSION",
    "LAST",
    "Batches",
    "FitResult",
    "RunLogs",
    "Schedule",
    "Task",
    "atomic_save",
    "autocast",
    "build_optimizer",
    "build_scheduler",
    "clip_gradients",
    "fit",
    "load_checkpoint",
    "load_weights",
    "make_checkpoint",
    "param_groups",
    "resolve_device",
    "rng_state",
    "save_checkpoint",
    "seed_everything",
    "set_rng_state",
    "to_device",
]
