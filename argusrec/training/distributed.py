"""Multi-process training under ``torchrun``: DDP or FSDP2, rank helpers, batch sharding, distributed checkpoints.

``torchrun --nproc_per_node=N -m argusrec.cli pretrain ...`` starts N processes with ``WORLD_SIZE``, ``RANK``
and ``LOCAL_RANK`` (and the rendezvous address) in their environment. :func:`setup` reads them, starts the
process group (NCCL on CUDA, gloo on the CPU) and picks the local device (``cuda:LOCAL_RANK``). The strategy is
``train.strategy``:

- ``single``: one process, nothing here is used (``auto`` without torchrun, or torchrun with one process);
- ``ddp``: every rank holds the whole model; DDP averages the gradients (``auto`` under torchrun, N > 1);
- ``fsdp``: FSDP2 (``torch.distributed.fsdp.fully_shard``) on a 1-d device mesh: one unit per block of every
  :class:`~argusrec.nn.transformer.TransformerEncoder`, and the root unit holding the rest (embedding tables,
  heads). Parameters, gradients and AdamW states are sharded across the ranks; a unit's weights are gathered
  only while it runs. 0-d parameters (the learned softmax temperature), which ``fully_shard`` refuses, stay
  replicated and their gradients are averaged here (:meth:`Parallel.after_backward`).

The model is wrapped through a :class:`_Root` module whose ``forward(fn, *args)`` just calls ``fn(*args)``: the
loss (``task.loss(model, batch)``) and evaluation run *inside* the wrapped forward, so the parameters the loss
reads outside ``model.forward`` (``item_vectors``, the temperature) are gathered (FSDP) and their gradients
reduced (DDP) like all others.

Evaluation is not sharded: every rank runs the whole ``evaluate`` (FSDP needs every rank in each forward pass
to gather the weights; under DDP it keeps the ranks in step, so no rank waits long in a collective) and rank 0's
metrics are broadcast, so early stopping and ``best.pt`` decisions are the same everywhere.
"""

from __future__ import annotations

import atexit
import os
import shutil
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, TypeVar, cast

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from argusrec.config import TrainConfig
from argusrec.errors import ArgusrecError
from argusrec.training.checkpoint import _fsync_dir, atomic_save, check_plain
from argusrec.training.device import resolve_device

Strategy = Literal["single", "ddp", "fsdp"]
T = TypeVar("T")

#: The file rank 0 writes into a distributed checkpoint directory: progress, history, scheduler, RNG states.
DCP_META = "argusrec.pt"
DCP_FORMAT = "argusrec-dcp-checkpoint"
DCP_FORMAT_VERSION = 1
_ENV = ("WORLD_SIZE", "RANK", "LOCAL_RANK")


@dataclass(frozen=True)
class DistContext:
    """Where this process stands: strategy, rank among ``world_size`` processes, local device."""

    strategy: Strategy = "single"
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def distributed(self) -> bool:
        return self.strategy != "single"

    @property
    def is_main(self) -> bool:
        return self.rank == 0


_CONTEXT: DistContext | None = None
_ATEXIT = False


def launch_env() -> tuple[int, int, int] | None:
    """``(world_size, rank, local_rank)`` when started by torchrun (all three variables set), else None."""
    if not all(k in os.environ for k in _ENV):
        return None
    try:
        world, rank, local = (int(os.environ[k]) for k in _ENV)
    except ValueError:
        raise ArgusrecError(
            f"torchrun environment is malformed: {', '.join(f'{k}={os.environ[k]!r}' for k in _ENV)}"
        ) from None
    if world < 1 or not 0 <= rank < world or local < 0:
        raise ArgusrecError(
            f"torchrun environment is inconsistent: WORLD_SIZE={world}, RANK={rank}, LOCAL_RANK={local}"
        )
    return world, rank, local


def resolve_strategy(requested: str) -> Strategy:
    """``train.strategy`` -> the strategy this process runs (see the module doc).

    Raises:
        ArgusrecError: ddp/fsdp without torchrun, or ``single`` under torchrun with several processes.
    """
    env = launch_env()
    world = env[0] if env is not None else 1
    if requested == "auto":
        return "ddp" if world > 1 else "single"
    if requested == "single":
        if world > 1:
            raise ArgusrecError(
                f"train.strategy=single but torchrun started {world} processes: each would train the same model "
                "into the same run directory; use train.strategy=auto (DDP), ddp or fsdp, or run without torchrun"
            )
        return "single"
    if requested in ("ddp", "fsdp"):
        if env is None:
            raise ArgusrecError(
                f"train.strategy={requested} needs a torchrun launch (WORLD_SIZE, RANK and LOCAL_RANK are not set): "
                f"run `torchrun --nproc_per_node=N -m argusrec.cli ...`, or set train.strategy=auto for one process"
            )
        return cast(Strategy, requested)
    raise ArgusrecError(f"train.strategy={requested!r}: expected auto, single, ddp or fsdp")


def setup(train: TrainConfig) -> DistContext:
    """Start (once per process) the process group ``train.strategy`` asks for; return this process's context.

    Idempotent: later calls (the recipe, then ``fit``) reuse the group; the device is fixed by the first call.
    A single-process run starts nothing and gets ``DistContext(device=resolve_device(train.device))``.
    """
    global _CONTEXT, _ATEXIT
    strategy = resolve_strategy(train.strategy)
    if strategy == "single":
        return DistContext(device=resolve_device(train.device))
    if _CONTEXT is not None:  # the group is up: the strategy is per run (a DDP run, then an FSDP run, is fine)
        return replace(_CONTEXT, strategy=strategy)
    env = launch_env()
    assert env is not None  # resolve_strategy checked
    world, rank, local = env
    device = _local_device(train.device, local, world)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if dist.is_initialized():  # started by the caller: use it as it is
        if dist.get_world_size() != world or dist.get_rank() != rank:
            raise ArgusrecError(
                f"the running process group (rank {dist.get_rank()} of {dist.get_world_size()}) does not match "
                f"the torchrun environment (RANK={rank}, WORLD_SIZE={world})"
            )
    else:
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(
            backend=backend, rank=rank, world_size=world, device_id=device if device.type == "cuda" else None
        )
    _CONTEXT = DistContext(strategy=strategy, rank=rank, world_size=world, local_rank=local, device=device)
    if not _ATEXIT:
        atexit.register(teardown)
        _ATEXIT = True
    return _CONTEXT


def _local_device(spec: str, local_rank: int, world: int) -> torch.device:
    """``train.device`` of one rank: ``auto``/``cuda`` -> ``cuda:LOCAL_RANK`` when CUDA is usable, ``cpu`` -> CPU."""
    if spec in ("auto", "cuda"):
        if torch.cuda.is_available():
            if local_rank >= torch.cuda.device_count():
                raise ArgusrecError(
                    f"LOCAL_RANK={local_rank} but this machine has {torch.cuda.device_count()} CUDA device(s): "
                    "start at most one process per GPU (torchrun --nproc_per_node)"
                )
            return torch.device("cuda", local_rank)
        if spec == "cuda":
            raise ArgusrecError("train.device=cuda but CUDA is not available here; use train.device=auto or cpu")
        return torch.device("cpu")
    device = resolve_device(spec)
    if device.type == "cuda" and world > 1:
        raise ArgusrecError(
            f"train.device={spec!r} under torchrun: every rank uses its own GPU (cuda:LOCAL_RANK); "
            "set train.device=auto or cuda"
        )
    return device


def teardown() -> None:
    """Destroy the process group this module started (also registered to run at exit)."""
    global _CONTEXT
    _CONTEXT = None
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def current() -> DistContext | None:
    """The process group's context (rank, world size, device; strategy of the first :func:`setup`), or None when
    this process runs no process group (single process)."""
    return _CONTEXT


def is_main() -> bool:
    """True on rank 0 and in single-process runs: the process that writes files."""
    return _CONTEXT is None or _CONTEXT.is_main


def main_only(fn: Callable[[], T]) -> T:
    """``fn()`` on rank 0 only (e.g. writing files); every rank gets its result, or its ArgusrecError raised.

    In a single-process run it is just ``fn()``.
    """
    if _CONTEXT is None:
        return fn()
    try:
        outcome: tuple[str, Any] = ("ok", fn() if _CONTEXT.is_main else None)
    except ArgusrecError as e:
        outcome = ("error", str(e))
    status, value = broadcast_object(outcome)
    if status == "error":
        raise ArgusrecError(value)
    return cast(T, value)


def barrier() -> None:
    """Wait for every rank (a no-op in single-process runs)."""
    if _CONTEXT is not None:
        dist.barrier()


def all_reduce_sum(values: Sequence[float | int | torch.Tensor]) -> list[float]:
    """Element-wise sums over the ranks of ``values`` (float64: counts stay exact below 2**53)."""
    if _CONTEXT is None:
        return [float(v) for v in values]
    t = torch.tensor([float(v) for v in values], dtype=torch.float64, device=_CONTEXT.device)
    dist.all_reduce(t)
    return t.tolist()


def broadcast_object(obj: T) -> T:
    """Rank 0's ``obj`` on every rank (picklable objects)."""
    if _CONTEXT is None:
        return obj
    box: list[Any] = [obj]
    dist.broadcast_object_list(box, src=0, device=_CONTEXT.device)
    return cast(T, box[0])


def all_gather_object(obj: T) -> list[T]:
    """``[obj of rank 0, obj of rank 1, ...]`` on every rank."""
    if _CONTEXT is None:
        return [obj]
    out: list[Any] = [None] * _CONTEXT.world_size
    dist.all_gather_object(out, obj)
    return out


# ------------------------------------------------------------------------------------------ batches
class ShardedBatches:
    """One rank's share of every epoch of a batch source (anything with ``len()`` and ``epoch(e, start)``).

    Every rank computes the same seeded order of epoch ``e``; rank ``r`` of ``W`` takes batches
    ``r, r + W, r + 2W, ...`` of it, ``len(source) // W`` of them, so all ranks run the same number of steps
    (a rank with one step more would wait forever in the gradient all-reduce). Optimizer step ``s`` thus uses
    global batches ``sW .. sW + W - 1``. The last ``len(source) % W`` batches of each epoch's order (fewer than
    ``W``; with length buckets, the short batch is among them) are skipped in that epoch; the order changes
    every epoch, so different chunks are skipped each time.

    A source with ``select(epoch, indices)`` (:class:`~argusrec.data.batching.ChunkBatches`) assembles only
    this rank's batches; others are iterated and the other ranks' batches discarded.
    """

    def __init__(self, source: Any, rank: int, world_size: int) -> None:
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"need 0 <= rank < world_size, got rank {rank}, world_size {world_size}")
        self.source = source
        self.rank = rank
        self.world_size = world_size

    def __len__(self) -> int:
        return len(self.source) // self.world_size

    def indices(self, start_batch: int = 0) -> range:
        """Indices into the epoch's order of this rank's batches, from its ``start_batch``-th one on."""
        n = len(self)
        if not 0 <= start_batch <= n:
            raise ValueError(f"start_batch must be in [0, {n}], got {start_batch}")
        return range(self.rank + start_batch * self.world_size, n * self.world_size, self.world_size)

    def epoch(self, epoch: int, start_batch: int = 0) -> Iterator[dict[str, np.ndarray]]:
        wanted = self.indices(start_batch)
        if not wanted:
            return
        select = getattr(self.source, "select", None)
        if callable(select):
            yield from select(epoch, wanted)
            return
        keep = set(wanted)
        for i, batch in enumerate(self.source.epoch(epoch, 0)):
            if i in keep:
                yield batch
            if i >= wanted[-1]:
                return


# ------------------------------------------------------------------------------------------ models
class _Root(nn.Module):
    """The module DDP / FSDP wrap: ``forward(fn, *args)`` runs ``fn(*args)`` inside the wrapped forward."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, fn: Callable[..., Any], *args: Any) -> Any:
        return fn(*args)


def transformer_blocks(model: nn.Module) -> list[nn.Module]:
    """The blocks of every :class:`~argusrec.nn.transformer.TransformerEncoder` in ``model`` (FSDP units)."""
    from argusrec.nn.transformer import TransformerEncoder

    return [block for m in model.modules() if isinstance(m, TransformerEncoder) for block in m.blocks]


class Parallel:
    """``model`` wrapped for ``ctx.strategy`` (DDP or FSDP2); ``module`` stays the plain model (state-dict keys).

    Build the optimizer after wrapping: FSDP replaces the parameters by sharded DTensors.
    """

    def __init__(self, model: nn.Module, ctx: DistContext) -> None:
        if ctx.strategy not in ("ddp", "fsdp"):
            raise ValueError(f"Parallel needs strategy ddp or fsdp, got {ctx.strategy}")
        self.module = model
        self.ctx = ctx
        self.replicated: list[nn.Parameter] = []  # FSDP: 0-d parameters left out of sharding
        root = _Root(model)
        if ctx.strategy == "ddp":
            from torch.nn.parallel import DistributedDataParallel

            # find_unused_parameters: a batch without targets (e.g. NIP on positives only) leaves some parameters
            # without a gradient on one rank; DDP then reduces zeros for them instead of waiting forever.
            self.root: nn.Module = DistributedDataParallel(
                root,
                device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None,
                find_unused_parameters=True,
            )
        else:
            from torch.distributed.device_mesh import init_device_mesh
            from torch.distributed.fsdp import fully_shard

            with torch.no_grad():  # every rank shards the same weights: rank 0's
                for t in [*model.parameters(), *model.buffers()]:
                    dist.broadcast(t, src=0)
            mesh = init_device_mesh(ctx.device.type, (ctx.world_size,))
            self.replicated = [p for p in model.parameters() if p.ndim == 0 and p.requires_grad]
            ignored = set(self.replicated)
            for block in transformer_blocks(model):
                fully_shard(block, mesh=mesh, ignored_params=ignored)
            fully_shard(root, mesh=mesh, ignored_params=ignored)
            self.root = root

    @property
    def fsdp(self) -> bool:
        return self.ctx.strategy == "fsdp"

    def __call__(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` inside the wrapped forward (training: ``fn`` = ``task.loss``)."""
        return cast(T, self.root(fn, *args))

    def after_backward(self) -> None:
        """Average the gradients FSDP does not reduce (the replicated 0-d parameters)."""
        if not self.replicated:
            return
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in self.replicated]
        flat = torch.stack([g.reshape(()) for g in grads])
        dist.all_reduce(flat)
        flat /= self.ctx.world_size
        for p, g in zip(self.replicated, flat, strict=True):
            p.grad = g.reshape(p.shape).clone()

    def clip(self, max_norm: float | None) -> torch.Tensor | None:
        """Clip all gradients to a global L2 norm of ``max_norm``; return the norm before clipping (or None).

        Under FSDP the norm of the sharded (DTensor) gradients is reduced over the ranks and combined with the
        replicated ones, so every rank clips with the same global norm.
        """
        if max_norm is None:
            return None
        params = [p for p in self.module.parameters() if p.grad is not None]
        if not self.fsdp:
            return torch.nn.utils.clip_grad_norm_(params, max_norm)
        from torch.distributed.tensor import DTensor

        sharded = [p for p in params if isinstance(p.grad, DTensor)]
        plain = [p for p in params if not isinstance(p.grad, DTensor)]
        total = torch.zeros((), device=self.ctx.device)
        if sharded:
            norm = torch.nn.utils.get_total_norm([cast(torch.Tensor, p.grad) for p in sharded])
            norm = norm.full_tensor() if isinstance(norm, DTensor) else norm
            total = total + norm.float() ** 2
        if plain:
            total = total + torch.nn.utils.get_total_norm([cast(torch.Tensor, p.grad) for p in plain]).float() ** 2
        total = total.sqrt()
        for group in (sharded, plain):
            if group:
                torch.nn.utils.clip_grads_with_norm_(group, max_norm, total)
        return total

    def evaluate(self, fn: Callable[[nn.Module], T]) -> T:
        """``fn(module)`` on every rank (inside the wrapped forward under FSDP, without gradients); rank 0's result."""
        if self.fsdp:
            with torch.no_grad():
                result = self(fn, self.module)
        else:
            result = fn(self.module)
        return broadcast_object(result)

    # ---------------------------------------------------------------------------------- state dicts
    def full_state_dict(self) -> dict[str, Any]:
        """The whole model's weights on rank 0's CPU (collective under FSDP; an empty dict on other ranks)."""
        if not self.fsdp:
            return self.module.state_dict() if self.ctx.is_main else {}
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        return get_model_state_dict(self.module, options=StateDictOptions(full_state_dict=True, cpu_offload=True))

    def load_full_state_dict(self, state: dict[str, Any]) -> None:
        """Load whole-model weights (every rank passes the same full dict)."""
        if not self.fsdp:
            self.module.load_state_dict(state)
            return
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict

        set_model_state_dict(self.module, state, options=StateDictOptions(full_state_dict=True))

    def sharded_state(self, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
        """FSDP: ``{"model", "optimizer"}`` state dicts of this rank's shards, keyed by the plain model's names."""
        from torch.distributed.checkpoint.state_dict import get_state_dict

        model_state, optim_state = get_state_dict(self.module, optimizer)
        return {"model": model_state, "optimizer": optim_state}

    def load_sharded(self, optimizer: torch.optim.Optimizer, path: Path) -> None:
        """FSDP: read model and optimizer shards from the distributed checkpoint directory ``path``."""
        import torch.distributed.checkpoint as dcp
        from torch.distributed.checkpoint.state_dict import set_state_dict

        state = self.sharded_state(optimizer)  # the layout to read into (initialises the AdamW state)
        dcp.load(state, checkpoint_id=str(path))
        set_state_dict(self.module, optimizer, model_state_dict=state["model"], optim_state_dict=state["optimizer"])


_PARALLEL: dict[int, Parallel] = {}


def parallelize(model: nn.Module, ctx: DistContext) -> Parallel:
    """Wrap ``model`` for ``ctx.strategy`` once; later calls with the same model return the same wrapper."""
    found = _PARALLEL.get(id(model))
    if found is not None and found.module is model and found.ctx == ctx:
        return found
    par = Parallel(model, ctx)
    _PARALLEL.clear()  # one trained model per process at a time; forget earlier ones (no leak across fits)
    _PARALLEL[id(model)] = par
    return par


def parallel_of(model: nn.Module) -> Parallel | None:
    """The wrapper :func:`parallelize` made for ``model`` in this process, if any."""
    found = _PARALLEL.get(id(model))
    return found if found is not None and found.module is model else None


def run_eval(model: nn.Module, fn: Callable[[nn.Module], T]) -> T:
    """``fn(model)``; for a model trained by ``fit`` under DDP/FSDP, on every rank (all ranks must call it)
    and inside the FSDP forward, returning rank 0's result. Recipes evaluate the trained model with it."""
    par = parallel_of(model)
    return fn(model) if par is None else par.evaluate(fn)


def load_weights(path: str | Path, model: nn.Module) -> dict[str, Any]:
    """:func:`argusrec.training.checkpoint.load_weights` that also fills an FSDP-sharded model (every rank reads)."""
    from argusrec.training.checkpoint import load_checkpoint
    from argusrec.training.checkpoint import load_weights as load_plain

    par = parallel_of(model)
    if par is None or not par.fsdp:
        return load_plain(path, model)
    ckpt = load_checkpoint(path, model=model)
    par.load_full_state_dict(ckpt["model"])
    return dict(ckpt["progress"])


# ------------------------------------------------------------------------------------------ checkpoints
def rank_states(rng: dict[str, Any], stateful: dict[str, Any], window: dict[str, Any]) -> list[dict[str, Any]]:
    """Every rank's ``{"rng", "stateful", "window"}`` (its RNG states, its stateful objects' states, its loss-log
    accumulators), gathered on every rank (collective)."""
    mine = {"rng": rng, "stateful": {name: obj.state_dict() for name, obj in stateful.items()}, "window": window}
    check_plain(mine, f"rank {_CONTEXT.rank if _CONTEXT else 0}'s RNG/stateful state")
    return all_gather_object(mine)


def dcp_location(path: Path) -> Path | None:
    """The distributed checkpoint directory to resume from: ``path``, or the previous one a crash between the
    two renames of :func:`save_dcp` left as ``.<name>.old``; None when there is none."""
    if (path / DCP_META).is_file():
        return path
    old = path.with_name(f".{path.name}.old")
    return old if (old / DCP_META).is_file() else None


def remove_dcp(path: Path) -> None:
    """Rank 0: delete a distributed checkpoint directory and its temporary / previous copies."""
    for p in (path, path.with_name(f".{path.name}.tmp"), path.with_name(f".{path.name}.old")):
        shutil.rmtree(p, ignore_errors=True)


def save_dcp(state: dict[str, Any], meta: dict[str, Any], path: Path) -> Path:
    """Write a distributed checkpoint (collective): every rank its shards, rank 0 ``meta`` (:data:`DCP_META`).

    Written into ``.<name>.tmp`` next to ``path``; after a barrier rank 0 moves the old ``path`` aside, renames
    the new one into place and deletes the old one, so ``path`` (or, after a crash between the two renames,
    ``.<name>.old``, which :func:`dcp_location` finds) always holds a complete checkpoint.
    """
    import torch.distributed.checkpoint as dcp

    tmp = path.with_name(f".{path.name}.tmp")
    old = path.with_name(f".{path.name}.old")
    if is_main():
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    barrier()
    dcp.save(state, checkpoint_id=str(tmp))
    barrier()  # every shard is on disk
    if is_main():
        check_plain(meta, "distributed checkpoint metadata")
        atomic_save({"format": DCP_FORMAT, "format_version": DCP_FORMAT_VERSION, **meta}, tmp / DCP_META)
        if path.exists():
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
        os.replace(tmp, path)
        _fsync_dir(path.parent)
        shutil.rmtree(old, ignore_errors=True)
    barrier()
    return path


def load_dcp_meta(path: Path) -> dict[str, Any]:
    """Read and check rank 0's metadata file of a distributed checkpoint directory."""
    file = path / DCP_META
    try:
        meta = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated, corrupted, or not ours
        raise ArgusrecError(
            f"{file}: cannot read the distributed checkpoint's metadata ({type(e).__name__}: {e})"
        ) from None
    if not isinstance(meta, dict) or meta.get("format") != DCP_FORMAT:
        raise ArgusrecError(f"{file}: not an argusrec distributed checkpoint")
    if meta.get("format_version") != DCP_FORMAT_VERSION:
        raise ArgusrecError(
            f"{file}: distributed checkpoint format version {meta.get('format_version')!r}, "
            f"this argusrec reads {DCP_FORMAT_VERSION}"
        )
    return meta
