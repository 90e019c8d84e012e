"""The two-tower ranking model of ARGUS fine-tuning, initialised from a pre-trained ARGUS (reference/ARGUS.md §5).

Score of item ``j`` for a user whose history has been read up to event ``k``:

    s(k, j) = <u_k, v_j>,   u_k = MLP_user(h_k),   v_j = MLP_item(item(j))  (item_tower="mlp", default)
                                                   v_j = e_j, ARGUS's NIP item vector    (item_tower="nip")

* **User tower**: the pre-trained ARGUS encoder (either variant, :meth:`Argus.encode`) run causally over the
  history; ``h_k`` is its state after event ``k`` (full ARGUS: the state at ``f_k``; simplified: ``h_k``), which
  has seen events ``<= k`` only. Serving uses the state after the last event (:meth:`TwoTower.last_user_vectors`);
  fine-tuning uses the lagged states of :mod:`argusrec.finetune.one_pass`.
* **Item tower**: ARGUS's item embedding (id or hashed, plus item features; ``tokenizer.item``) followed by a small
  MLP to the output width D_o (default D) — or, with ``item_tower="nip"``, the NIP item vectors themselves
  (D_o = D_r, normalised if the ARGUS model normalises); the user MLP then maps D -> D_r.
* Both vectors can be computed offline (daily); serving is a dot product (§7).

**Positions.** ARGUS pre-training counts learned positions from the *latest* event of a chunk (``from_end``), so
the state after event k depends on how many events follow k in the chunk. Lagged states need a causal *prefix*
property — the state after k must be the same whether or not later events are in the chunk — or the one-pass loss
would not equal the impression-level one. The two-tower therefore counts positions from the chunk's *first* event,
initialised with the pre-trained table reversed: row ``n - 1 - k`` of ``from_end`` becomes row ``k``, which gives
exactly the pre-trained embeddings for full-length (``max_len``) windows. A pre-trained model with
``query_time="next"`` is refused: its state after k has seen the time of event k + 1.

**Checkpoints.** :func:`two_tower_from_checkpoint` loads a pre-training checkpoint (``checkpoints/best.pt`` of
``argusrec pretrain``) into an ARGUS built from the same config and refuses one that does not fit, naming why:
not an ARGUS checkpoint, another variant, width, catalog size (id embeddings), context fields, feedback signals,
layers or ``max_len``. A hashed item embedding has no catalog size in its weights: check the data yourself.

Letters (docs/notation.md): B batch, N events, D width, D_r retrieval width, D_o output width, V catalog.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

import torch
from torch import Tensor, nn

from argusrec.errors import ArgusrecError
from argusrec.models.argus import Argus
from argusrec.nn.embeddings import IdEmbedding, PositionEmbedding
from argusrec.training.averaging import load_average
from argusrec.training.checkpoint import check_model_matches, load_checkpoint

__all__ = ["ItemTower", "TwoTower", "check_argus_weights", "two_tower_from_checkpoint"]

ItemTower = Literal["mlp", "nip"]


def _mlp(d_in: int, d_hidden: int, d_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d_in, d_hidden), nn.GELU(), nn.Linear(d_hidden, d_out))


class TwoTower(nn.Module):
    """User tower (ARGUS encoder + MLP) and item tower (item embedding + MLP, or NIP vectors); dot-product score.

    Args:
        argus: the pre-trained model (copied unless ``copy=False``; its positions are re-counted from the chunk
            start, see the module docstring).
        item_tower: ``"mlp"`` (item embedding -> MLP) or ``"nip"`` (ARGUS's NIP item vectors).
        dim: D_o, the width of user and item vectors (``"mlp"`` only; default D). ``"nip"`` uses D_r.
        copy: deep-copy ``argus`` (default) so that fine-tuning leaves the pre-trained model untouched.

    Raises:
        ArgusrecError: a pre-trained model whose user states are not causal prefixes (``query_time="next"``).
    """

    def __init__(self, argus: Argus, *, item_tower: ItemTower = "mlp", dim: int | None = None, copy: bool = True):
        super().__init__()
        if not isinstance(argus, Argus):
            raise ArgusrecError(f"two-tower fine-tuning starts from an ARGUS model, got {type(argus).__name__}")
        if argus.query_time != "own":
            raise ArgusrecError(
                f"the pre-trained ARGUS uses query_time={argus.query_time!r}: its state after event t has seen the "
                "time of event t + 1, so lagged user states would leak; pre-train with query_time='own'"
            )
        if item_tower not in ("mlp", "nip"):
            raise ValueError(f"item_tower must be 'mlp' or 'nip', got {item_tower!r}")
        if item_tower == "nip" and dim is not None and dim != argus.retrieval_dim:
            raise ValueError(f"item_tower='nip' scores in the NIP width D_r={argus.retrieval_dim}, got dim={dim}")
        backbone = _copy_module(argus) if copy else argus
        if backbone.positions is not None and backbone.positions.from_end:
            old = backbone.positions
            new = PositionEmbedding(old.max_len, old.table.shape[1], from_end=False)
            with torch.no_grad():
                new.table.copy_(old.table.flip(0))  # full windows: from-start row k = from-end row max_len - 1 - k
            backbone.positions = new
        self.backbone = backbone
        d = backbone.dim
        self.item_tower: ItemTower = item_tower
        self.out_dim = backbone.retrieval_dim if item_tower == "nip" else (d if dim is None else int(dim))
        self.user_head = _mlp(d, d, self.out_dim)
        self.item_head: nn.Module | None = _mlp(d, d, self.out_dim) if item_tower == "mlp" else None

    # ------------------------------------------------------------------------------------------ fields
    @property
    def context_fields(self) -> list[str]:
        """Context columns the encoder reads."""
        return list(self.backbone.tokenizer.context.names)

    @property
    def feedback_fields(self) -> list[str]:
        """Feedback columns the encoder reads."""
        return list(self.backbone.tokenizer.feedback.names)

    @property
    def n_items(self) -> int:
        return self.backbone.n_items

    # ------------------------------------------------------------------------------------------ towers
    def forward(
        self,
        items: Tensor,
        contexts: Mapping[str, Tensor],
        feedback: Mapping[str, Tensor],
        timestamps: Tensor | None,
        valid: Tensor,
    ) -> Tensor:
        """The user tower's causal pass: (B, N, D) encoder states after every event (see :meth:`Argus.encode`
        for the arguments). Apply :meth:`user_vectors` to the states you need (one per impression is cheaper
        than all N)."""
        return self.backbone.encode(items, contexts, feedback, timestamps, valid)

    def user_vectors(self, states: Tensor) -> Tensor:
        """(..., D) encoder states -> (..., D_o) user vectors."""
        return self.user_head(states)

    def item_vectors(self, ids: Tensor) -> Tensor:
        """(...) item ids -> (..., D_o) item vectors."""
        if self.item_head is None:
            return self.backbone.item_vectors(ids)
        return self.item_head(self.backbone.tokenizer.item(ids))

    def all_item_vectors(self, n_items: int | None = None) -> Tensor:
        """(V + 1, D_o) vectors of item ids 0..V (row 0 is padding), for offline scoring or an ANN index."""
        v = self.n_items if n_items is None else n_items
        device = next(self.user_head.parameters()).device
        return self.item_vectors(torch.arange(v + 1, device=device))

    def last_user_vectors(
        self,
        items: Tensor,
        contexts: Mapping[str, Tensor],
        feedback: Mapping[str, Tensor],
        timestamps: Tensor | None,
        valid: Tensor,
    ) -> Tensor:
        """(B, D_o) serving user vectors: the state after each row's last real event (any padding layout)."""
        states = self(items, contexts, feedback, timestamps, valid)  # (B, N, D)
        n = valid.shape[1]
        cols = torch.arange(n, device=valid.device).expand_as(valid)  # (B, N)
        last = torch.where(valid.bool(), cols, -1).max(dim=1).values  # (B,)
        if bool((last < 0).any()):
            raise ValueError("every row needs at least one real event to have a user vector")
        picked = states[torch.arange(states.shape[0], device=states.device), last]  # (B, D)
        return self.user_vectors(picked)


def _copy_module(model: Argus) -> Argus:
    return copy.deepcopy(model)


# ---------------------------------------------------------------------------------------------- checkpoints
_BLOCK = re.compile(r"^encoder\.blocks\.(\d+)\.")
_CONTEXT = re.compile(r"^tokenizer\.context\.fields\.([^.]+)\.")
_FEEDBACK = re.compile(r"^tokenizer\.feedback\.tables\.([^.]+)\.")
ITEM_TABLE = "tokenizer.item.items.table.weight"
POSITIONS = "positions.table"


def _names(pattern: re.Pattern[str], keys: Mapping[str, object] | list[str]) -> set[str]:
    return {m.group(1) for k in keys if (m := pattern.match(k))}


def check_argus_weights(path: str | Path, saved: Mapping[str, Tensor], argus: Argus) -> None:
    """Refuse (ArgusrecError naming ``path`` and the reason) pre-trained weights that do not fit ``argus``.

    Checked in this order, each with its own message: a two-tower (already fine-tuned) checkpoint, not an ARGUS
    checkpoint, the variant, the width D, the catalog size (id embeddings), context fields, feedback signals, the
    number of layers, ``max_len``; then every key and shape (:func:`check_model_matches`).
    """
    keys = list(saved)
    if any(k.startswith("backbone.") for k in keys):
        raise ArgusrecError(
            f"{path}: a fine-tuned two-tower checkpoint, not a pre-trained ARGUS one; load it into a TwoTower "
            "with argusrec.training.checkpoint.load_weights"
        )
    if "token_type.weight" in saved:
        variant = "full"
    elif "start" in saved:
        variant = "simplified"
    else:
        raise ArgusrecError(
            f"{path}: not a pre-trained ARGUS checkpoint (no token-type or start parameters); fine-tuning starts "
            "from `argusrec pretrain`'s checkpoints/best.pt"
        )
    if variant != argus.variant:
        raise ArgusrecError(
            f"{path}: the checkpoint is a {variant} ARGUS, the model config says {argus.variant} "
            "(argus.variant must match pre-training)"
        )
    width = int(saved["encoder.norm.weight"].shape[0]) if "encoder.norm.weight" in saved else None
    if width is not None and width != argus.dim:
        raise ArgusrecError(f"{path}: the checkpoint has width D={width}, the model config {argus.dim} (model.dim)")
    items = argus.tokenizer.item.items
    if isinstance(items, IdEmbedding) and ITEM_TABLE in saved:
        n_saved = int(saved[ITEM_TABLE].shape[0]) - 1
        n_model = int(items.table.weight.shape[0]) - 1
        if n_saved != n_model:
            raise ArgusrecError(
                f"{path}: the checkpoint was pre-trained on a catalog of {n_saved} items, this model has {n_model} "
                "(n_items): fine-tune on the dataset it was pre-trained on"
            )
    for what, pattern in (("context fields", _CONTEXT), ("feedback signals", _FEEDBACK)):
        have, want = _names(pattern, keys), _names(pattern, list(argus.state_dict()))
        if have != want:
            raise ArgusrecError(
                f"{path}: the checkpoint's {what} are {sorted(have)}, the model's {sorted(want)}: the data's columns "
                "(or argus.use_context / feedback settings) differ from pre-training"
            )
    have_layers, want_layers = len(_names(_BLOCK, keys)), len(_names(_BLOCK, list(argus.state_dict())))
    if have_layers != want_layers:
        raise ArgusrecError(f"{path}: the checkpoint has {have_layers} layers, the model config {want_layers}")
    if POSITIONS in saved and argus.positions is not None:
        rows = int(saved[POSITIONS].shape[0])
        if rows != argus.positions.max_len:
            raise ArgusrecError(
                f"{path}: the checkpoint has {rows} positions (data.max_len at pre-training), the model "
                f"{argus.positions.max_len}"
            )
    check_model_matches(path, saved, argus)


def two_tower_from_checkpoint(
    path: str | Path,
    argus: Argus,
    *,
    item_tower: ItemTower = "mlp",
    dim: int | None = None,
) -> TwoTower:
    """A :class:`TwoTower` initialised from a pre-training checkpoint.

    Args:
        path: a ``last`` or ``best`` checkpoint of ARGUS pre-training.
        argus: an ARGUS built from the pre-training config for the same data (its weights are replaced; it is
            not modified — the two-tower holds a copy).
        item_tower, dim: see :class:`TwoTower`.

    Raises:
        ArgusrecError: an unreadable checkpoint or one that does not fit (:func:`check_argus_weights`).
    """
    ckpt = load_checkpoint(path)
    check_argus_weights(path, ckpt["model"], argus)
    model = copy.deepcopy(argus)
    model.load_state_dict(ckpt["model"])
    load_average(ckpt, model)  # a last.pt of a run with train.ema_decay: its average, as load_weights gives
    return TwoTower(model, item_tower=item_tower, dim=dim, copy=False)
