"""Causal multi-head softmax self-attention with key padding, and rotary position embedding (RoPE).

The attention mask follows the encoder contract (docs/notation.md, DESIGN.md): query n sees keys
m <= n that are real events, whatever the padding layout. The softmax itself runs in
:func:`torch.nn.functional.scaled_dot_product_attention`, which picks a fused kernel where one exists.

Two equivalent ways to apply that mask (the layer uses the first):

* :func:`packed_causal_attention` (the fast path) moves each row's real events to the front, in order
  (a stable partition: real events first, padding after), runs SDPA with ``is_causal=True`` and no mask,
  and moves the outputs back. In the packed row a real query at rank r sees exactly ranks 0..r, i.e. the
  real keys at or before its column; padding only ever meets padded queries, whose outputs the layer
  zeroes. No (N, N) tensor is built, so the flash / memory-efficient kernels apply (O(N) memory instead
  of O(N²)): full ARGUS at 8192 events is 24,576 tokens, whose (N, N) bool mask alone is 604 MB per row.
  With no padding the partition is the identity: four cheap gathers of (B, H, N, Dh) on CUDA (no host
  sync to test for it), skipped on the CPU.
* :func:`masked_causal_attention` builds the explicit (B, 1, N, N) mask of :func:`causal_padding_mask`;
  kept as the reference the fast path is tested against (tests/nn/test_attention_paths.py).

:func:`attention_with_padding_keys` is the exception to "never attend to padding", kept as an option
(``CausalSelfAttention(padding_window=W)``): RecTools' SASRec, whose published sampled-softmax numbers
we compare with, left-pads every history to the window W, zeroes the padding slots before each block and
applies no key padding mask, so every real query also attends to the W − n padding slots of its row,
whose keys and values are those of a zero input. Those slots are identical, so they are one extra key
whose logit is raised by log(W − n): a learned "attend to nothing" whose weight grows as the history
gets shorter. (Attention dropout drops that merged slot as one, where RecTools drops each slot alone:
the same expectation, a different variance.)

``causal_padding_mask(padded_queries="all")`` is the other exception (``CausalSelfAttention(padding_content=True)``):
the BSARec code fills the padding slots of its left-padded window with the normalised position vectors and
runs every layer on them. Its additive mask (−10000 on a key that is padding or later than the query)
leaves a real query the real keys at or before it, and gives a padded query the same −10000 on *every* key
of its row, which cancels in the softmax: a padded query attends to the whole row, later real events
included. Nothing is zeroed: the padded slots' outputs are the next layer's padded inputs.

RoPE (Su et al., "RoFormer", 2021) rotates each pair of query/key channels by an angle proportional
to the token's position, so that ⟨rot(q, m), rot(k, n)⟩ depends on m − n only. Pairs are the two
halves of the head (channel i with channel i + head_dim/2, the GPT-NeoX / Hugging Face LLaMa layout:
two contiguous slices instead of a strided view). Positions are counted over real events only, so a
row's padding — left, right or in between — never changes the relative distances.

Letters (docs/notation.md): B batch, N length, D width, H heads; Dh = D / H, the head width.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from argusrec.nn.tokens import RealTokens, as_grid

__all__ = [
    "CausalSelfAttention",
    "apply_rotary",
    "attention_with_padding_keys",
    "causal_padding_mask",
    "masked_causal_attention",
    "packed_causal_attention",
    "packing_index",
    "rotary_tables",
]


def causal_padding_mask(valid: Tensor, *, padded_queries: Literal["self", "all"] = "self") -> Tensor:
    """Which keys each query may attend: earlier-or-same positions that hold real events, plus itself.

    The diagonal is always allowed: a padded query (e.g. left padding, before any real key) would
    otherwise have an empty row and softmax would return 0/0 = NaN. Real queries already see
    themselves, so the extra diagonal changes only padded rows, whose outputs the caller zeroes.

    Args:
        valid: (B, N) bool, True for real events.
        padded_queries: ``"self"`` as above; ``"all"``: a padded query may attend to every key of its row, later
            real events included (the BSARec code, whose padding slots carry content; module docstring).

    Returns:
        (B, 1, N, N) bool, True = may attend (the convention of ``scaled_dot_product_attention``);
        broadcasts over heads.
    """
    n = valid.shape[-1]
    causal = torch.ones(n, n, dtype=torch.bool, device=valid.device).tril()  # (N, N) key m <= query n
    mask = causal & valid[:, None, None, :]  # (B, 1, N, N) keys must be real
    if padded_queries == "all":
        return mask | ~valid[:, None, :, None]  # (B, 1, N, N): padded query rows all True
    return mask | torch.eye(n, dtype=torch.bool, device=valid.device)  # (B, 1, N, N)


def masked_causal_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    valid: Tensor,
    dropout_p: float = 0.0,
    *,
    padded_queries: Literal["self", "all"] = "self",
) -> Tensor:
    """Causal attention over real keys with the explicit mask of :func:`causal_padding_mask`: the reference the
    packed fast path is tested against, and, with ``padded_queries="all"``, the BSARec code's attention over a
    window whose padding slots carry content (``CausalSelfAttention(padding_content=True)``).

    Args:
        q, k, v: (B, H, N, Dh).
        valid: (B, N) bool, True for real events.
        dropout_p: dropout on the attention probabilities.
        padded_queries: what a padded query attends to (:func:`causal_padding_mask`).

    Returns:
        (B, H, N, Dh); with ``"self"`` rows of padded queries are arbitrary (finite) and left for the caller to
        zero; with ``"all"`` they are attention over the whole row.
    """
    mask = causal_padding_mask(valid, padded_queries=padded_queries)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p)


def attention_with_padding_keys(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    valid: Tensor,
    empty_k: Tensor,
    empty_v: Tensor,
    empty: Tensor,
    dropout_p: float = 0.0,
) -> Tensor:
    """Causal attention over real keys plus ``empty`` identical padding slots per row (module docstring).

    Args:
        q, k, v: (B, H, N, Dh).
        valid: (B, N) bool, True for real events.
        empty_k, empty_v: (H, Dh) key and value of a padding slot.
        empty: (B,) int64 padding slots of each row (W − n); 0 gives plain causal attention over real keys.
        dropout_p: dropout on the attention probabilities.

    Returns:
        (B, H, N, Dh); rows of padded queries are arbitrary (finite) and left for the caller to zero.
    """
    b, h, n, dh = q.shape
    keys = torch.cat([empty_k.to(k.dtype).view(1, h, 1, dh).expand(b, h, 1, dh), k], dim=2)  # (B, H, 1+N, Dh)
    dv = v.shape[-1]
    values = torch.cat([empty_v.to(v.dtype).view(1, h, 1, dv).expand(b, h, 1, dv), v], dim=2)  # (B, H, 1+N, Dv)
    real = torch.zeros((b, 1, n, n), dtype=q.dtype, device=q.device)
    real = real.masked_fill(~causal_padding_mask(valid), float("-inf"))  # (B, 1, N, N)
    slots = empty.to(q.dtype).log().view(b, 1, 1, 1).expand(b, 1, n, 1)  # (B, 1, N, 1); log 0 = -inf: none
    return F.scaled_dot_product_attention(q, keys, values, attn_mask=torch.cat([slots, real], -1), dropout_p=dropout_p)


def packing_index(valid: Tensor) -> tuple[Tensor, Tensor]:
    """The stable partition "real events first, then padding" of every row, as two index tensors.

    Args:
        valid: (B, N) bool.

    Returns:
        ``(order, slot)``, each (B, N) int64 and inverse permutations of each other: ``order[b, r]`` is the
        column placed at packed rank r, ``slot[b, n]`` is the packed rank of column n. Real events keep
        their relative order (rank = number of real events before them); padding follows, also in order.
    """
    real_rank = valid.long().cumsum(-1) - 1  # (B, N) rank among real events
    pad_rank = (~valid).long().cumsum(-1) - 1  # (B, N) rank among padded columns
    n_real = valid.long().sum(-1, keepdim=True)  # (B, 1)
    slot = torch.where(valid, real_rank, n_real + pad_rank)  # (B, N) a permutation of 0..N-1 per row
    columns = torch.arange(valid.shape[-1], device=valid.device).expand_as(slot)  # (B, N)
    order = torch.empty_like(slot).scatter_(-1, slot, columns)  # (B, N) inverse permutation
    return order, slot


def packed_causal_attention(q: Tensor, k: Tensor, v: Tensor, valid: Tensor, dropout_p: float = 0.0) -> Tensor:
    """Causal attention over real keys without an (N, N) mask: pack real events first, ``is_causal=True``.

    Same result as :func:`masked_causal_attention` at every real query (up to float rounding of the
    kernels), for any padding layout (left, right, holes, empty rows); see the module docstring.

    Args:
        q, k, v: (B, H, N, Dh).
        valid: (B, N) bool, True for real events.
        dropout_p: dropout on the attention probabilities.

    Returns:
        (B, H, N, Dh); rows of padded queries are arbitrary (finite for finite inputs) and left for the
        caller to zero.
    """
    if valid.device.type == "cpu" and not torch.compiler.is_compiling() and bool(valid.all()):
        # No padding: the partition is the identity. Checked on the CPU only, where it costs no device sync.
        return F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=dropout_p)
    b, h, n, dh = q.shape
    order, slot = packing_index(valid)  # 2 × (B, N)
    gather_in = order[:, None, :, None].expand(b, h, n, dh)  # (B, H, N, Dh)
    q, k = q.gather(2, gather_in), k.gather(2, gather_in)  # (B, H, N, Dh) packed rows
    v = v.gather(2, order[:, None, :, None].expand(b, h, n, v.shape[-1]))  # (B, H, N, Dv)
    y = F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=dropout_p)  # (B, H, N, Dv)
    return y.gather(2, slot[:, None, :, None].expand_as(y))  # (B, H, N, Dv) back in column order


def rotary_tables(positions: int | Tensor, head_dim: int, base: float = 10000.0) -> tuple[Tensor, Tensor]:
    """cos and sin of the RoPE angles ``position · base**(-2i / head_dim)``, i = 0 .. head_dim/2 − 1.

    Args:
        positions: n (positions 0..n−1), or an integer tensor (..., N) of positions.
        head_dim: Dh, even.
        base: the RoPE base (10000 in RoFormer and LLaMa).

    Returns:
        (cos, sin), each float32 (n, Dh/2) or (..., N, Dh/2).
    """
    if head_dim % 2:
        raise ValueError(f"rotary embedding needs an even head width, got {head_dim}")
    if isinstance(positions, int):
        positions = torch.arange(positions)
    # float32 angles: at 8192 positions the angle error stays ~1e-3 rad; bf16 would be far worse.
    inv_freq = base ** (-torch.arange(0, head_dim, 2, device=positions.device, dtype=torch.float32) / head_dim)
    angles = positions.to(torch.float32).unsqueeze(-1) * inv_freq  # (..., N, Dh/2)
    return angles.cos(), angles.sin()


def apply_rotary(q: Tensor, k: Tensor, cos: Tensor, sin: Tensor) -> tuple[Tensor, Tensor]:
    """Rotate queries and keys: channel pair (i, i + Dh/2) turns by the angle of its position.

    Args:
        q: (B, H, N, Dh) queries.
        k: (B, H, N, Dh) keys.
        cos: broadcastable to (B, H, N, Dh/2), e.g. (N, Dh/2) or (B, 1, N, Dh/2).
        sin: same shape as ``cos``.

    Returns:
        Rotated (q, k), same shapes and dtypes as the inputs.
    """

    def rotate(x: Tensor) -> Tensor:
        # In float32 so that bf16 inputs lose no precision in the rotation itself.
        x1, x2 = x.float().chunk(2, dim=-1)  # 2 × (B, H, N, Dh/2)
        return torch.cat((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1).to(x.dtype)  # (B, H, N, Dh)

    return rotate(q), rotate(k)


class CausalSelfAttention(nn.Module):
    """Multi-head causal softmax self-attention over real events only.

    Args:
        dim: D.
        heads: H; must divide D.
        dropout: dropout on the attention probabilities (training only).
        bias: biases in the input and output projections (LLaMa style has none).
        rotary: rotate queries and keys by the events' positions (RoPE).
        rope_base: the RoPE base.
        padding_window: W: also attend to the W − n padding slots of a row of n real events, as RecTools'
            SASRec does (:func:`attention_with_padding_keys`); their key and value are the projections of
            ``forward``'s ``empty`` input. None (default): real keys only.
        padding_content: the padding slots carry content, as in the BSARec code
            (``masked_causal_attention(padded_queries="all")``): padded queries attend to their whole row and
            their outputs are kept, not zeroed. Not with ``padding_window``, rotary positions or packed ``tokens``.
    """

    def __init__(
        self,
        dim: int,
        heads: int,
        *,
        dropout: float = 0.0,
        bias: bool = True,
        rotary: bool = False,
        rope_base: float = 10000.0,
        padding_window: int | None = None,
        padding_content: bool = False,
    ) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"heads={heads} must divide dim={dim}")
        self.dim = dim
        self.heads = heads
        self.head_dim = dim // heads
        if rotary and self.head_dim % 2:
            raise ValueError(f"rotary embedding needs an even head width, got dim/heads = {self.head_dim}")
        if padding_window is not None and (padding_window < 1 or rotary):
            raise ValueError(f"padding_window must be >= 1 and without rotary positions, got {padding_window}")
        if padding_content and (rotary or padding_window is not None):
            raise ValueError("padding_content is not for rotary positions or with padding_window")
        self.dropout = dropout
        self.rotary = rotary
        self.rope_base = rope_base
        self.padding_window = padding_window
        self.padding_content = padding_content
        # One fused projection for Q, K, V: one matmul instead of three.
        self.qkv = nn.Linear(dim, 3 * dim, bias=bias)
        self.out = nn.Linear(dim, dim, bias=bias)
        # (q, k, v, valid, dropout_p) -> (B, H, N, Dh); masked_causal_attention is the O(N²)-mask reference.
        self.attention_fn: Callable[..., Tensor] = (
            partial(masked_causal_attention, padded_queries="all") if padding_content else packed_causal_attention
        )

    def forward(
        self,
        x: Tensor,
        *,
        valid: Tensor,
        kv: Tensor | None = None,
        tokens: RealTokens | None = None,
        empty: Tensor | None = None,
    ) -> Tensor:
        """Attend causally over the real events of each row.

        Args:
            x: (B, N, D) inputs (queries, and keys / values unless ``kv`` is given); (T, D) with ``tokens``.
            valid: (B, N) bool, True for real events.
            kv: inputs for the keys and values, shaped like ``x``, or None (the original SASRec code queries
                with normalised inputs and keys / values the raw ones).
            tokens: the packing of ``valid`` when ``x`` and ``kv`` hold the real tokens only
                (:mod:`argusrec.nn.tokens`): the projections run on them, attention in the (B, N) layout.
            empty: (D,) the key / value input of a padding slot, with ``padding_window`` only (the block's
                input norm of a zero vector, or zeros where keys come from the raw input).

        Returns:
            (B, N, D), exactly zero at padded positions (unless ``padding_content``); (T, D) with ``tokens``.
        """
        if self.padding_content and tokens is not None:
            raise ValueError("attention with padding_content runs on the whole window, not on packed real tokens")
        b, n = valid.shape
        d = self.dim
        if kv is None:
            qkv = self.qkv(x)  # (..., 3D)
        else:  # the fused projection's rows: Q from x, K and V from kv
            w, bias = self.qkv.weight, self.qkv.bias
            q_part = F.linear(x, w[:d], None if bias is None else bias[:d])  # (..., D)
            kv_part = F.linear(kv, w[d:], None if bias is None else bias[d:])  # (..., 2D)
            qkv = torch.cat([q_part, kv_part], dim=-1)  # (..., 3D)
        qkv = as_grid(tokens, qkv).view(b, n, 3, self.heads, self.head_dim)  # (B, N, 3, H, Dh)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # 3 × (B, H, N, Dh)
        if self.rotary:
            # Index among the row's real events, so padding anywhere leaves relative distances unchanged.
            positions = (valid.long().cumsum(-1) - 1).clamp_min(0)  # (B, N)
            cos, sin = rotary_tables(positions, self.head_dim, self.rope_base)  # 2 × (B, N, Dh/2)
            q, k = apply_rotary(q, k, cos.unsqueeze(1), sin.unsqueeze(1))  # tables (B, 1, N, Dh/2) over heads
        p = self.dropout if self.training else 0.0
        if self.padding_window is not None:
            if empty is None:
                raise ValueError("attention with padding_window needs the padding slots' input (empty=)")
            w, bias = self.qkv.weight, self.qkv.bias
            empty_kv = F.linear(empty, w[d:], None if bias is None else bias[d:]).view(2, self.heads, self.head_dim)
            slots = (self.padding_window - valid.sum(-1)).clamp_min(0)  # (B,)
            y = attention_with_padding_keys(q, k, v, valid, empty_kv[0], empty_kv[1], slots, p)  # (B, H, N, Dh)
        else:
            # Packed real-events-first + is_causal: no (N, N) mask, so SDPA's fused kernels apply (module doc).
            y = self.attention_fn(q, k, v, valid, p)  # (B, H, N, Dh)
        y = y.transpose(1, 2).reshape(b, n, d)  # (B, N, D)
        if tokens is not None:
            return self.out(tokens.pack(y))  # (T, D)
        if self.padding_content:
            return self.out(y)  # (B, N, D), padded slots kept
        return self.out(y).masked_fill(~valid.unsqueeze(-1), 0.0)
