"""Pre-norm transformer blocks (SASRec and LLaMa styles) and a generic encoder stack.

Every block here follows the encoder contract shared by all argusrec blocks (HSTU, FuXi-alpha, ...):

    forward(x (B, N, D), *, valid (B, N), timestamps (B, N) | None = None,
            query_timestamps (B, N) | None = None) -> (B, N, D)

causal, never attending to padded keys, with exactly zero (and finite) outputs at padded positions.
Softmax transformer blocks do not use time, so they ignore both timestamp arguments.

Styles (reference/PEERS.md §3):
- SASRec: LayerNorm, a two-layer ReLU (or GELU) feed-forward network, learned absolute positions added
  to the input outside the blocks (:class:`argusrec.nn.embeddings.PositionEmbedding`).
- LLaMa: RMSNorm, SwiGLU feed-forward network, rotary positions inside attention, no biases.

:class:`TransformerEncoder` runs any list of contract-following blocks and applies a final norm; HSTU
and FuXi stacks reuse it by passing their own blocks (composition, not inheritance).

Letters (docs/notation.md): B batch, N length, D width, H heads.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from argusrec.nn.attention import CausalSelfAttention
from argusrec.nn.tokens import enter, leave

__all__ = [
    "FeedForward",
    "TransformerBlock",
    "TransformerEncoder",
    "llama_blocks",
    "llama_ffn_dim",
    "make_norm",
    "sasrec_blocks",
]

NormKind = Literal["layer", "rms"]
FfnKind = Literal["gelu", "relu", "swiglu"]
ResidualKind = Literal["pre_norm", "normed"]


def make_norm(kind: NormKind, dim: int, *, bias: bool = True) -> nn.Module:
    """LayerNorm (``"layer"``, with or without bias) or RMSNorm (``"rms"``, never a bias) over the last axis D."""
    if kind == "layer":
        return nn.LayerNorm(dim, bias=bias)
    if kind == "rms":
        return nn.RMSNorm(dim)
    raise ValueError(f"norm must be 'layer' or 'rms', got {kind!r}")


class FeedForward(nn.Module):
    """Position-wise feed-forward network: ``W2 · act(W1 x)``, or SwiGLU ``W2 · (SiLU(W1 x) ⊙ W3 x)``.

    Args:
        dim: D.
        hidden_dim: width of the hidden layer.
        activation: ``"gelu"``, ``"relu"`` or ``"swiglu"`` (Shazeer 2020, "GLU Variants Improve Transformer").
        bias: biases in the linear layers.
    """

    def __init__(self, dim: int, hidden_dim: int, *, activation: FfnKind = "gelu", bias: bool = True) -> None:
        super().__init__()
        if activation not in ("gelu", "relu", "swiglu"):
            raise ValueError(f"ffn must be 'gelu', 'relu' or 'swiglu', got {activation!r}")
        self.activation = activation
        # SwiGLU's value and gate projections are fused into one matmul and split after it.
        width = 2 * hidden_dim if activation == "swiglu" else hidden_dim
        self.up = nn.Linear(dim, width, bias=bias)
        self.down = nn.Linear(hidden_dim, dim, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        """x: (..., D) -> (..., D)."""
        h = self.up(x)  # (..., hidden) or (..., 2·hidden)
        if self.activation == "swiglu":
            gate, value = h.chunk(2, dim=-1)  # 2 × (..., hidden)
            h = F.silu(gate) * value
        elif self.activation == "gelu":
            h = F.gelu(h)
        else:
            h = F.relu(h)
        return self.down(h)


class TransformerBlock(nn.Module):
    """Residual block: pre-norm by default, ``x + Attn(Norm(x))`` then ``x + FFN(Norm(x))``.

    Pre-norm (GPT-2, LLaMa) keeps the residual path an identity, which trains stably at depth; the stack
    ends with a final norm (:class:`TransformerEncoder`). ``residual="normed"`` is the original SASRec
    code's block (Kang & McAuley's TensorFlow code, kept by RecTools): ``y = Norm(x)``, ``y + Attn(q=y,
    k=v=x)``, then ``z = Norm(.)``, ``z + FFN(z)``: the queries are normalised but not the keys and values,
    and each residual starts from the normalised input.

    Args:
        dim: D.
        heads: H.
        ffn_dim: hidden width of the feed-forward network.
        dropout: on attention probabilities and on both residual branches (training only).
        norm: ``"layer"`` or ``"rms"``.
        ffn: ``"gelu"``, ``"relu"`` or ``"swiglu"``.
        rotary: rotary positions inside attention.
        bias: biases in the linear layers and LayerNorms.
        rope_base: the RoPE base.
        residual: ``"pre_norm"`` or ``"normed"`` (above).
        padding_window: W: attention also attends to the W − n padding slots of each row, holding a zero
            input, as RecTools' SASRec does (:class:`~argusrec.nn.attention.CausalSelfAttention`). None: never.
    """

    def __init__(
        self,
        dim: int,
        heads: int,
        *,
        ffn_dim: int,
        dropout: float = 0.0,
        norm: NormKind = "layer",
        ffn: FfnKind = "gelu",
        rotary: bool = False,
        bias: bool = True,
        rope_base: float = 10000.0,
        residual: ResidualKind = "pre_norm",
        padding_window: int | None = None,
    ) -> None:
        super().__init__()
        if residual not in ("pre_norm", "normed"):
            raise ValueError(f"residual must be 'pre_norm' or 'normed', got {residual!r}")
        self.residual = residual
        self.attn_norm = make_norm(norm, dim, bias=bias)
        self.attn = CausalSelfAttention(
            dim, heads, dropout=dropout, bias=bias, rotary=rotary, rope_base=rope_base, padding_window=padding_window
        )
        self.ffn_norm = make_norm(norm, dim, bias=bias)
        self.ffn = FeedForward(dim, ffn_dim, activation=ffn, bias=bias)
        self.dropout = nn.Dropout(dropout)
        # Run norms, projections and the FFN on the real tokens only (argusrec.nn.tokens); tests turn it off
        # to compare with the padded layout.
        self.pack_real_tokens = True

    def forward(
        self,
        x: Tensor,
        *,
        valid: Tensor,
        timestamps: Tensor | None = None,
        query_timestamps: Tensor | None = None,
    ) -> Tensor:
        """One block (the encoder contract; timestamps are ignored).

        Args:
            x: (B, N, D) inputs.
            valid: (B, N) bool, True for real events.
            timestamps: (B, N) int64, unused.
            query_timestamps: (B, N) int64, unused.

        Returns:
            (B, N, D); zero at padded positions.
        """
        # Position-wise layers on the real tokens only where that pays (argusrec.nn.tokens), else on (B, N).
        tokens, h = enter(x, valid, enabled=self.pack_real_tokens)  # (T, D) or (B, N, D)
        empty = None  # a padding slot's key / value input: zero, through the norm where keys are normalised
        if self.attn.padding_window is not None:
            empty = h.new_zeros(h.shape[-1])
            empty = empty if self.residual == "normed" else self.attn_norm(empty)  # (D,)
        if self.residual == "normed":
            y = self.attn_norm(h)
            y = y + self.dropout(self.attn(y, valid=valid, kv=h, tokens=tokens, empty=empty))
            z = self.ffn_norm(y)
            h = z + self.dropout(self.ffn(z))
        else:
            h = h + self.dropout(self.attn(self.attn_norm(h), valid=valid, tokens=tokens, empty=empty))
            h = h + self.dropout(self.ffn(self.ffn_norm(h)))
        return leave(tokens, h, valid)


class TransformerEncoder(nn.Module):
    """A stack of contract-following blocks followed by a final norm.

    Args:
        blocks: the blocks, run in order; any modules with the encoder contract's ``forward``.
        dim: D (for the norms).
        final_norm: ``"layer"``, ``"rms"`` or None (no final norm; pre-norm stacks want one, post-norm stacks
            such as BSARec's have their input normalised instead: ``SequentialRecommender(input_norm=True)``).
        activation_checkpointing: recompute each block's activations in the backward pass instead of
            storing them (less memory for long sequences, ~one more forward of compute).
    """

    def __init__(
        self,
        blocks: Sequence[nn.Module],
        dim: int,
        *,
        final_norm: NormKind | None = "layer",
        activation_checkpointing: bool = False,
    ) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.norm = make_norm(final_norm, dim) if final_norm is not None else None
        self.activation_checkpointing = activation_checkpointing

    def forward(
        self,
        x: Tensor,
        *,
        valid: Tensor,
        timestamps: Tensor | None = None,
        query_timestamps: Tensor | None = None,
    ) -> Tensor:
        """Run the blocks, then the final norm.

        Args:
            x: (B, N, D) inputs (e.g. item embeddings plus positions).
            valid: (B, N) bool, True for real events.
            timestamps: (B, N) int64 event times, passed to every block.
            query_timestamps: (B, N) int64 time of the event each position predicts, passed to every block.

        Returns:
            (B, N, D); zero at padded positions.
        """
        for block in self.blocks:
            if self.activation_checkpointing and self.training:
                # Non-reentrant checkpointing passes keyword arguments and restores the dropout RNG state.
                x = checkpoint(
                    block, x, valid=valid, timestamps=timestamps, query_timestamps=query_timestamps, use_reentrant=False
                )
            else:
                x = block(x, valid=valid, timestamps=timestamps, query_timestamps=query_timestamps)
        if self.norm is not None:
            # A LayerNorm bias would make padded rows non-zero again.
            x = self.norm(x).masked_fill(~valid.unsqueeze(-1), 0.0)
        return x


def sasrec_blocks(
    n_layers: int,
    dim: int,
    heads: int,
    dropout: float = 0.0,
    ffn_dim: int | None = None,
    *,
    ffn: Literal["gelu", "relu"] = "relu",
    residual: ResidualKind = "pre_norm",
    padding_window: int | None = None,
) -> list[nn.Module]:
    """SASRec-style blocks: LayerNorm, biases, a two-layer FFN, no positions inside (add them to the input).

    ``ffn_dim`` defaults to D and ``ffn`` to ReLU, as in the SASRec paper (Kang & McAuley 2018, §III-B:
    ``ReLU(S W1 + b1) W2 + b2`` with d × d weights) and Meta's SASRec baseline; ``residual`` and
    ``padding_window`` as in :class:`TransformerBlock`.
    """
    hidden = dim if ffn_dim is None else ffn_dim
    return [
        TransformerBlock(
            dim,
            heads,
            ffn_dim=hidden,
            dropout=dropout,
            norm="layer",
            ffn=ffn,
            rotary=False,
            bias=True,
            residual=residual,
            padding_window=padding_window,
        )
        for _ in range(n_layers)
    ]


def llama_ffn_dim(dim: int, multiple_of: int = 8) -> int:
    """LLaMa's SwiGLU width: 2/3 of 4·D (same parameters as a 4·D two-matrix FFN), rounded up to ``multiple_of``."""
    return multiple_of * math.ceil(8 * dim / 3 / multiple_of)


def llama_blocks(
    n_layers: int,
    dim: int,
    heads: int,
    dropout: float = 0.0,
    ffn_dim: int | None = None,
    *,
    rope_base: float = 10000.0,
) -> list[nn.Module]:
    """LLaMa-style blocks: RMSNorm, SwiGLU FFN (width :func:`llama_ffn_dim` by default), rotary positions, no biases."""
    hidden = llama_ffn_dim(dim) if ffn_dim is None else ffn_dim
    return [
        TransformerBlock(
            dim,
            heads,
            ffn_dim=hidden,
            dropout=dropout,
            norm="rms",
            ffn="swiglu",
            rotary=True,
            bias=False,
            rope_base=rope_base,
        )
        for _ in range(n_layers)
    ]
