"""AdamW with decoupled weight decay, learning-rate schedules with warmup, global grad-norm clipping.

Weight decay (when ``optim.weight_decay > 0``) applies only to matrices of linear / attention /
feed-forward layers. Biases, normalisation gains (every parameter with fewer than 2 dimensions) and
embedding tables are not decayed: decaying a norm gain or a bias pulls it to 0, which is not a
meaningful prior, and decaying an embedding table shrinks the rows of rare items on every step
although their gradients are sparse (the usual GPT / HSTU practice).

Schedules are defined per optimizer step ``s = 0, 1, ...`` (the lr used by the ``s``-th update):

- warmup: ``factor = (s + 1) / warmup_steps`` for ``s < warmup_steps`` (the first update is not wasted
  at lr 0, the ``warmup_steps``-th one reaches the full lr);
- then ``p = (s - warmup_steps) / (total_steps - warmup_steps)`` clipped to [0, 1] and
  ``constant: 1``, ``linear: 1 - p``, ``cosine: (1 + cos(pi p)) / 2``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass

import torch
from torch import nn

from argusrec.config import OptimConfig

#: Module types whose parameters are never weight-decayed (besides every parameter with ndim < 2).
NO_DECAY_MODULES: tuple[type[nn.Module], ...] = (nn.Embedding, nn.EmbeddingBag)


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, object]]:
    """Split the trainable parameters into a decayed group and a not-decayed group (see module doc).

    Parameters shared between modules (tied input/output embeddings) are listed once; an embedding
    table tied to an output projection counts as an embedding, so it is not decayed.
    """
    no_decay: set[int] = set()
    for module in model.modules():
        if isinstance(module, NO_DECAY_MODULES):
            no_decay.update(id(p) for p in module.parameters(recurse=False))
    decay_params: list[nn.Parameter] = []
    plain_params: list[nn.Parameter] = []
    seen: set[int] = set()
    for p in model.parameters():
        if not p.requires_grad or id(p) in seen:
            continue
        seen.add(id(p))
        (plain_params if p.ndim < 2 or id(p) in no_decay else decay_params).append(p)
    groups: list[dict[str, object]] = []
    if decay_params:
        groups.append({"params": decay_params, "weight_decay": weight_decay})
    if plain_params:
        groups.append({"params": plain_params, "weight_decay": 0.0})
    return groups


def build_optimizer(model: nn.Module, cfg: OptimConfig) -> torch.optim.AdamW:
    """AdamW over ``model``'s trainable parameters with ``cfg.lr``, ``cfg.betas`` and the decay groups above."""
    groups = param_groups(model, cfg.weight_decay)
    if not groups:
        raise ValueError("the model has no trainable parameters")
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(cfg.betas[0], cfg.betas[1]), weight_decay=cfg.weight_decay)


@dataclass
class Schedule:
    """The lr multiplier of optimizer step ``s`` (see module doc); a callable for ``LambdaLR``.

    A dataclass, not a closure, so ``LambdaLR.state_dict()`` records its fields (plain values that a
    ``weights_only`` checkpoint can hold).
    """

    kind: str = "constant"
    warmup_steps: int = 0
    total_steps: int = 1

    def __post_init__(self) -> None:
        if self.kind not in ("constant", "linear", "cosine"):
            raise ValueError(f"unknown schedule {self.kind!r}; expected constant, linear or cosine")
        if self.warmup_steps < 0 or self.total_steps < 1:
            raise ValueError(
                f"need warmup_steps >= 0 and total_steps >= 1, got {self.warmup_steps}, {self.total_steps}"
            )

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        if self.kind == "constant":
            return 1.0
        span = max(self.total_steps - self.warmup_steps, 1)
        p = min(max((step - self.warmup_steps) / span, 0.0), 1.0)
        if self.kind == "linear":
            return 1.0 - p
        return 0.5 * (1.0 + math.cos(math.pi * p))

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def build_scheduler(
    optimizer: torch.optim.Optimizer, cfg: OptimConfig, total_steps: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """A ``LambdaLR`` applying :class:`Schedule`; call ``.step()`` once after every ``optimizer.step()``.

    Args:
        total_steps: the schedule's horizon in optimizer steps (the loop uses ``epochs x batches per
            epoch``, so ``train.max_steps`` and early stopping cut a run short without reshaping its lr).
    """
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, Schedule(cfg.schedule, cfg.warmup_steps, max(int(total_steps), 1))
    )


def clip_gradients(parameters: Iterable[torch.Tensor], max_norm: float | None) -> torch.Tensor | None:
    """Scale all gradients together so that their global L2 norm is at most ``max_norm``.

    Returns:
        The global norm before clipping (a 0-d tensor, left on the device so that logging it costs no
        synchronisation), or None when ``max_norm`` is None (clipping off).
    """
    if max_norm is None:
        return None
    return torch.nn.utils.clip_grad_norm_(list(parameters), max_norm)
