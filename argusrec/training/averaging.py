"""An exponential moving average (EMA) of a model's weights, kept beside the trained weights.

With ``train.ema_decay`` set, :func:`argusrec.training.fit` updates the average after every optimizer step,
validates the *averaged* weights, keeps them as ``best.pt`` and leaves the model holding them at the end; the
optimizer keeps stepping the raw weights. ``last.pt`` holds both (the raw weights under ``model``, the average
under ``average``), so a resumed run continues both exactly.

The average after ``n`` updates is ``a <- a + (1 - d_n) (w - a)`` with ``d_n = min(decay, (1 + n) / (10 + n))``:
the ramp keeps the first steps from being dominated by the random initial weights (the average starts equal to
them). Until ``d_n`` reaches ``decay`` -- after ``(10 decay - 1) / (1 - decay)`` updates: about 900 for 0.99,
9,000 for 0.999 -- the average spans roughly the last ``n / 9`` steps; after that, about ``1 / (1 - decay)``.
Only trainable floating-point parameters are averaged, in float32 whatever their dtype; buffers are the model's
own (argusrec's models hold only constant buffers -- a model with running statistics would keep its raw ones).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from argusrec.errors import ArgusrecError


def _averaged(model: nn.Module) -> dict[str, nn.Parameter]:
    return {n: p for n, p in model.named_parameters() if p.requires_grad and p.is_floating_point()}


@torch.no_grad()
def _put(weights: Mapping[str, torch.Tensor], model: nn.Module) -> None:
    """Copy ``weights`` (parameter name -> tensor) into ``model``'s parameters of those names, trainable or not.

    Raises:
        ArgusrecError: a name ``model`` has no parameter of, or a shape that differs (nothing is copied then).
    """
    params = dict(model.named_parameters())
    missing = sorted(n for n in weights if n not in params)
    wrong = sorted(n for n in weights if n in params and params[n].shape != weights[n].shape)
    if missing or wrong:
        raise ArgusrecError(
            f"the weight average does not fit this model (parameters it lacks: {missing[:5]}, other shapes: "
            f"{wrong[:5]}); was it trained with another model config?"
        )
    for n, w in weights.items():
        params[n].copy_(w)


class WeightAverage:
    """The EMA of ``model``'s trainable parameters (see the module doc); lives on the parameters' devices."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"decay must lie in (0, 1), got {decay}")
        self.decay = decay
        self.updates = 0
        with torch.no_grad():
            # float32 even for lower-precision parameters, where (1 - decay) steps would round away
            self.shadow = {n: p.detach().float().clone() for n, p in _averaged(model).items()}

    def rate(self) -> float:
        """The decay the next update uses."""
        n = self.updates + 1
        return min(self.decay, (1 + n) / (10 + n))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Move the average towards ``model``'s current weights (call after each optimizer step)."""
        weight = 1.0 - self.rate()
        params = _averaged(model)
        names = list(self.shadow)
        torch._foreach_lerp_([self.shadow[n] for n in names], [params[n].detach().float() for n in names], weight)
        self.updates += 1

    @contextmanager
    def applied(self, model: nn.Module) -> Iterator[None]:
        """Within the block, ``model`` holds the averaged weights; its raw weights come back after (also on error)."""
        params = _averaged(model)
        raw = {n: params[n].detach().clone() for n in self.shadow}
        _put(self.shadow, model)
        try:
            yield
        finally:
            _put(raw, model)

    def copy_to(self, model: nn.Module) -> None:
        """Put the averaged weights into ``model`` for good (the end of training)."""
        _put(self.shadow, model)

    def state_dict(self) -> dict[str, Any]:
        return {"decay": self.decay, "updates": self.updates, "shadow": dict(self.shadow)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        shadow = state["shadow"]
        if set(shadow) != set(self.shadow):
            raise ArgusrecError(
                f"the saved weight average covers other parameters than this model's "
                f"({sorted(set(shadow) ^ set(self.shadow))[:5]}); was the model config changed?"
            )
        with torch.no_grad():
            for n, a in shadow.items():
                self.shadow[n].copy_(a)
        self.updates = int(state["updates"])


def load_average(ckpt: Mapping[str, Any], model: nn.Module) -> bool:
    """Put the weight average a ``last`` checkpoint holds (``ckpt["average"]``) into ``model``; False if it has none."""
    state = ckpt.get("average")
    if state is None:
        return False
    _put(state["shadow"], model)
    return True
