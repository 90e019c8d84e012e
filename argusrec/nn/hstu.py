"""HSTU layer (Zhai et al., "Actions Speak Louder than Words", ICML 2024) and its relative attention bias.

HSTU replaces softmax attention + FFN by *pointwise* attention gated by a fourth projection U
(reference/PEERS.md §1):

    U, V, Q, K = split(SiLU(W1 · LayerNorm(X)))
    A          = SiLU(Q Kᵀ + rab) / n  ⊙ causal ⊙ key-valid        (per head, no softmax)
    Y          = X + W2 · dropout(U ⊙ LayerNorm(A V))

Choices where the spec is silent (each follows Meta's public research code unless said otherwise):

* ``n`` (``attn_norm``). In Meta's research code ``n`` is the size of the causal-mask buffer, i.e. the
  configured maximum length that every batch is padded to. ``"max_len"`` (default) divides by the layer's
  ``max_len``: identical to the research code when batches are padded to ``max_len``, and independent of
  how much padding a batch has. ``"padded_len"`` divides by this batch's ``N`` (the literal reading);
  ``"valid_keys"`` divides each query row by its number of visible real keys (a cumulative sum: cheap).
* Research variant: the two LayerNorms have no learned scale/shift and ``eps = 1e-6``; W1 has no bias and
  W2 has one (``torch.nn.Linear`` default), as in the research code. The production variant (Meta's
  ``STULayer``) has affine LayerNorms, a bias on W1 and none on W2. ``linear_bias=None`` keeps these
  per-variant defaults; ``True``/``False`` puts a bias on both W1 and W2 or on neither.
* ``rab`` is used in both variants when ``rab=True`` (Meta's production layer has none: pass ``rab=False``
  to match it). Without timestamps only the position part is added (the research code then drops the
  whole bias; we keep the position part because it needs no timestamps).
* Relative positions are column offsets ``i − j`` in the padded layout. Left/right padding shifts query
  and key alike, so the offsets between real events equal their distance in the user's history; for a
  layout with padding *between* real events the offset also counts those padded columns.
* Padded inputs are zeroed on entry (so NaN/inf in padding cannot leak through ``0 · NaN``) and outputs at
  padded positions are zeroed on exit (the shared contract).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from argusrec.nn.tokens import as_grid, as_tokens, enter, leave

__all__ = [
    "HSTULayer",
    "RelativeAttentionBias",
    "attention_divisor",
    "check_time_inputs",
    "hstu_attention",
    "hstu_attention_reference",
    "time_buckets",
]

AttnNorm = Literal["max_len", "padded_len", "valid_keys"]
_LN_EPS = 1e-6  # Meta's HSTU code uses 1e-6 for both LayerNorms


def time_buckets(dt: Tensor, *, num_buckets: int = 128, divisor: float = 0.301) -> Tensor:
    """Bucket index of time gaps: ``floor(ln(max(|dt|, 1)) / divisor)`` clamped to ``[0, num_buckets]``.

    Buckets are 0.301 wide in ln(seconds), so each covers a gap ~1.35× longer than the previous one:
    dt 0 and 1 → 0, 2 → 2, 10 → 7, 1e6 → 45 (PEERS.md §1). Computed in float32 like Meta's research code,
    so integer gaps within float32 rounding of a bucket edge land where the research code puts them.

    Args:
        dt: any shape, integer seconds (negative gaps use their magnitude).
    Returns:
        int64 tensor of the same shape.
    """
    magnitude = dt.abs().clamp(min=1).to(torch.float32)
    return torch.floor(torch.log(magnitude) / divisor).long().clamp(0, num_buckets)


class RelativeAttentionBias(nn.Module):
    """HSTU's relative attention bias, one value per (query, key) pair shared across heads.

    ``bias(i, j) = position_weight[(i − j) + max_len − 1] + time_weight[time_buckets(qts[i] − ts[j])]``
    where ``qts[i]`` is the timestamp of the event position ``i`` predicts (the contract's next-timestamp
    convention, Δt(i, j) = query_timestamps[i] − timestamps[j]). The position part is a Toeplitz matrix over
    the 2·max_len − 1 possible offsets; only offsets ``i − j ≥ 0`` survive the causal mask.
    """

    def __init__(self, max_len: int, *, num_time_buckets: int = 128, bucket_divisor: float = 0.301) -> None:
        super().__init__()
        if max_len < 1:
            raise ValueError(f"max_len must be >= 1, got {max_len}")
        self.max_len = max_len
        self.num_time_buckets = num_time_buckets
        self.bucket_divisor = bucket_divisor
        # N(0, 0.02) as in Meta's research code; bucket values 0..num_time_buckets inclusive.
        self.position_weight = nn.Parameter(torch.empty(2 * max_len - 1).normal_(0.0, 0.02))
        self.time_weight = nn.Parameter(torch.empty(num_time_buckets + 1).normal_(0.0, 0.02))

    def position_bias(self, n: int) -> Tensor:
        """Toeplitz matrix of learned relative-position values, ``out[i, j]`` depends on ``i − j`` only.

        Returns:
            (N, N) with N = ``n`` (must be <= max_len).
        """
        if n > self.max_len:
            raise ValueError(
                f"sequence length {n} exceeds the relative attention bias max_len {self.max_len}; "
                "build the layer with a larger max_len or truncate the histories"
            )
        pos = torch.arange(n, device=self.position_weight.device)
        offsets = pos[:, None] - pos[None, :] + self.max_len - 1  # (N, N), values in [0, 2·max_len − 2]
        return self.position_weight[offsets]  # (N, N)

    def time_bias(self, timestamps: Tensor, query_timestamps: Tensor) -> Tensor:
        """Learned value of the bucketed gap between each query's target time and each key's time.

        Args:
            timestamps: (B, N) int64 seconds of the events (keys).
            query_timestamps: (B, N) int64 seconds of the event each position predicts (queries).
        Returns:
            (B, N, N), ``out[b, i, j] = time_weight[bucket(query_timestamps[b, i] − timestamps[b, j])]``.
        """
        dt = query_timestamps[:, :, None] - timestamps[:, None, :]  # (B, N, N)
        buckets = time_buckets(dt, num_buckets=self.num_time_buckets, divisor=self.bucket_divisor)
        return self.time_weight[buckets]  # (B, N, N)

    def forward(self, n: int, timestamps: Tensor | None = None, query_timestamps: Tensor | None = None) -> Tensor:
        """Position part plus, when both timestamp tensors are given, the time part.

        Args:
            n: sequence length N.
            timestamps, query_timestamps: (B, N) int64 or both None.
        Returns:
            (B, N, N) with time, (1, N, N) without.
        """
        bias = self.position_bias(n)[None]  # (1, N, N)
        if timestamps is not None and query_timestamps is not None:
            bias = bias + self.time_bias(timestamps, query_timestamps)  # (B, N, N)
        return bias


def _check_attention_inputs(q: Tensor, k: Tensor, v: Tensor, valid: Tensor) -> None:
    if q.dim() != 4 or k.shape != q.shape or v.shape[:3] != q.shape[:3] or valid.shape != q.shape[:2]:
        raise ValueError(
            "expected q, k (B, N, H, d_qk), v (B, N, H, d_v), valid (B, N); got "
            f"q {tuple(q.shape)}, k {tuple(k.shape)}, v {tuple(v.shape)}, valid {tuple(valid.shape)}"
        )


def hstu_attention_reference(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    rab: Tensor | None,
    valid: Tensor,
    n: float | Tensor,
    *,
    alpha: float = 1.0,
) -> Tensor:
    """Slow, obviously-correct HSTU pointwise attention, written term by term with einsum.

    ``out[b, i, h] = Σ_j  [j <= i][valid[b, i]][valid[b, j]] · SiLU(alpha·q[b,i,h]·k[b,j,h] + rab[b,i,j]) / n
    · v[b, j, h]``. Tests compare the fast path and any fused kernel against this.

    Args:
        q: (B, N, H, d_qk) queries.  k: (B, N, H, d_qk) keys.  v: (B, N, H, d_v) values.
        rab: (B, N, N) or (1, N, N) bias added before SiLU, shared across heads; or None.
        valid: (B, N) bool, True for real events.
        n: the divisor, a number or a (B, N) tensor (one per query).
        alpha: scale of QKᵀ (1 in the research variant, 1/√d_qk in the production one).
    Returns:
        (B, N, H, d_v); zero at padded queries.
    """
    _check_attention_inputs(q, k, v, valid)
    length = q.shape[1]
    scores = torch.einsum("bihd,bjhd->bhij", q, k) * alpha  # (B, H, N, N)
    if rab is not None:
        scores = scores + rab[:, None, :, :]  # the same bias for every head
    weights = F.silu(scores)  # (B, H, N, N)
    divisor = n.to(weights.dtype)[:, None, :, None] if isinstance(n, Tensor) else n  # (B, 1, N, 1) per query
    weights = weights / divisor
    i = torch.arange(length, device=q.device)[:, None]
    j = torch.arange(length, device=q.device)[None, :]
    causal = j <= i  # (N, N)
    allowed = causal[None, None] & valid[:, None, :, None] & valid[:, None, None, :]  # (B, 1, N, N)
    weights = torch.where(allowed, weights, torch.zeros_like(weights))
    return torch.einsum("bhij,bjhd->bihd", weights, v)  # (B, N, H, d_v)


def hstu_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    rab: Tensor | None,
    valid: Tensor,
    n: float | Tensor,
    *,
    alpha: float = 1.0,
) -> Tensor:
    """HSTU pointwise attention as two batched matmuls; same contract as :func:`hstu_attention_reference`.

    This is the one function a fused GPU kernel (jagged, no materialised N×N matrix) replaces: the layer
    calls it through ``HSTULayer.attention_fn``.

    Args:
        q: (B, N, H, d_qk).  k: (B, N, H, d_qk).  v: (B, N, H, d_v).
        rab: (B or 1, N, N) or None.  valid: (B, N) bool.  n: number or (B, N).  alpha: QKᵀ scale.
    Returns:
        (B, N, H, d_v); zero at padded queries.
    """
    _check_attention_inputs(q, k, v, valid)
    length = q.shape[1]
    scores = torch.matmul(q.transpose(1, 2), k.permute(0, 2, 3, 1))  # (B, H, N, N)
    if alpha != 1.0:
        scores = scores * alpha
    if rab is not None:
        scores = scores + rab.unsqueeze(1)  # (B, H, N, N): one bias for every head
    weights = F.silu(scores)
    weights = weights / (n.to(weights.dtype)[:, None, :, None] if isinstance(n, Tensor) else n)
    causal = torch.ones(length, length, dtype=torch.bool, device=q.device).tril()  # (N, N)
    allowed = causal & valid[:, None, :] & valid[:, :, None]  # (B, N, N)
    # masked_fill rather than multiplying by the mask: an overflowing (inf) masked score cannot become NaN.
    weights = weights.masked_fill(~allowed.unsqueeze(1), 0.0)  # (B, H, N, N)
    return torch.matmul(weights, v.transpose(1, 2)).transpose(1, 2)  # (B, N, H, d_v)


def attention_divisor(mode: AttnNorm, valid: Tensor, max_len: int) -> float | Tensor:
    """The ``n`` of ``SiLU(·)/n`` for a batch: a number, or (B, N) for ``"valid_keys"``.

    Args:
        mode: ``"max_len"``, ``"padded_len"`` or ``"valid_keys"`` (see the module docstring).
        valid: (B, N) bool.
        max_len: the layer's configured maximum length.
    """
    if mode == "max_len":
        return float(max_len)
    if mode == "padded_len":
        return float(valid.shape[1])
    if mode == "valid_keys":
        # Real keys visible to query i (causal): the running count of real events; >= 1 to stay finite.
        return valid.cumsum(dim=1).clamp(min=1).to(torch.float32)  # (B, N)
    raise ValueError(f"attn_norm must be 'max_len', 'padded_len' or 'valid_keys', got {mode!r}")


def check_time_inputs(timestamps: Tensor | None, query_timestamps: Tensor | None, valid: Tensor) -> None:
    """Both timestamp tensors or neither, each (B, N) like ``valid``; a clear error otherwise."""
    if (timestamps is None) != (query_timestamps is None):
        raise ValueError(
            "pass both timestamps and query_timestamps (query_timestamps[b, n] is the time of the event "
            "position n predicts) or neither; got only one"
        )
    for name, t in (("timestamps", timestamps), ("query_timestamps", query_timestamps)):
        if t is not None and t.shape != valid.shape:
            raise ValueError(f"{name} must be (B, N) = {tuple(valid.shape)}, got {tuple(t.shape)}")


class HSTULayer(nn.Module):
    """One HSTU layer; ``variant="research"`` reproduces the published numbers, ``"production"`` is Meta's STU.

    Research: ``Y = X + W2 · dropout(U ⊙ LN(A V))`` with ``U, V, Q, K = SiLU(W1 · LN(X))`` and
    ``A = SiLU(QKᵀ + rab)/n``. Production: ``U = SiLU(·)`` only, Q/K/V linear, ``A = SiLU(QKᵀ/√d_qk + rab)/n``,
    ``Y = X + W2 · dropout([U, AV, U ⊙ LN(AV)])``. No FFN in either (the U gate replaces it).

    Args:
        dim: model width D.  heads: H.  qk_dim: d_qk per head.  v_dim: d_v per head (U has H·d_v too).
        max_len: longest sequence; sizes the relative position table and is ``n`` for ``attn_norm="max_len"``.
        dropout: on the input of W2.  rab: add the relative attention bias.
        linear_bias: None keeps the variant's biases (see module docstring); True/False forces W1 and W2.
        attn_norm: what ``n`` is (see module docstring).
    """

    def __init__(
        self,
        dim: int,
        heads: int,
        *,
        qk_dim: int,
        v_dim: int,
        max_len: int,
        dropout: float = 0.0,
        variant: Literal["research", "production"] = "research",
        rab: bool = True,
        linear_bias: bool | None = None,
        attn_norm: AttnNorm = "max_len",
        num_time_buckets: int = 128,
    ) -> None:
        super().__init__()
        if variant not in ("research", "production"):
            raise ValueError(f"variant must be 'research' or 'production', got {variant!r}")
        if attn_norm not in ("max_len", "padded_len", "valid_keys"):
            raise ValueError(f"attn_norm must be 'max_len', 'padded_len' or 'valid_keys', got {attn_norm!r}")
        self.dim, self.heads, self.qk_dim, self.v_dim = dim, heads, qk_dim, v_dim
        self.max_len, self.variant, self.attn_norm = max_len, variant, attn_norm
        research = variant == "research"
        in_bias = (not research) if linear_bias is None else linear_bias
        out_bias = research if linear_bias is None else linear_bias

        # One fused projection for U, V, Q, K (PEERS.md §1), split in that order.
        self.uvqk = nn.Linear(dim, heads * (2 * v_dim + 2 * qk_dim), bias=in_bias)
        # Research LNs carry no parameters (Meta's research code calls F.layer_norm without weight/bias).
        self.input_norm = nn.LayerNorm(dim, eps=_LN_EPS, elementwise_affine=not research)
        self.attn_norm_layer = nn.LayerNorm(heads * v_dim, eps=_LN_EPS, elementwise_affine=not research)
        # Production W2 reads [U, AV, U ⊙ LN(AV)] (3·H·d_v wide).
        self.out = nn.Linear(heads * v_dim * (1 if research else 3), dim, bias=out_bias)
        self.dropout = nn.Dropout(dropout)
        self.pack_real_tokens = True  # position-wise parts on the real tokens (argusrec.nn.tokens)
        self.rab = RelativeAttentionBias(max_len, num_time_buckets=num_time_buckets) if rab else None
        # Replaceable by a fused kernel with the same signature (see hstu_attention).
        self.attention_fn: Callable[..., Tensor] = hstu_attention
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Research: W1 ~ N(0, 0.02), W2 Xavier-uniform (Meta's research code). Production: both Xavier, zero biases."""
        if self.variant == "research":
            nn.init.normal_(self.uvqk.weight, 0.0, 0.02)
        else:
            nn.init.xavier_uniform_(self.uvqk.weight)
            if self.uvqk.bias is not None:
                nn.init.zeros_(self.uvqk.bias)
            if self.out.bias is not None:
                nn.init.zeros_(self.out.bias)
        nn.init.xavier_uniform_(self.out.weight)

    def forward(
        self,
        x: Tensor,
        *,
        valid: Tensor,
        timestamps: Tensor | None = None,
        query_timestamps: Tensor | None = None,
    ) -> Tensor:
        """Apply the layer.

        Args:
            x: (B, N, D) float.
            valid: (B, N) bool, True for real events (any padding layout).
            timestamps: (B, N) int64 seconds of the events, or None (then rab has no time part).
            query_timestamps: (B, N) int64 seconds of the event each position predicts, or None.
        Returns:
            (B, N, D); zero at padded positions.
        """
        if x.dim() != 3 or valid.shape != x.shape[:2]:
            raise ValueError(f"expected x (B, N, D) and valid (B, N); got {tuple(x.shape)} and {tuple(valid.shape)}")
        check_time_inputs(timestamps, query_timestamps, valid)
        batch, length, _ = x.shape
        # Position-wise parts on the real tokens only where that pays (argusrec.nn.tokens); padded garbage
        # (even NaN) never reaches a real output either way.
        tokens, h = enter(x, valid, enabled=self.pack_real_tokens)  # (T, D) or (B, N, D)

        projected = self.uvqk(self.input_norm(h))  # (..., H·(2·d_v + 2·d_qk))
        hv, hq = self.heads * self.v_dim, self.heads * self.qk_dim
        if self.variant == "research":
            projected = F.silu(projected)
        u, v, q, k = projected.split([hv, hv, hq, hq], dim=-1)
        if self.variant == "production":
            u = F.silu(u)  # production: SiLU on U only, Q/K/V stay linear
        q = as_grid(tokens, q).reshape(batch, length, self.heads, self.qk_dim)  # (B, N, H, d_qk)
        k = as_grid(tokens, k).reshape(batch, length, self.heads, self.qk_dim)  # (B, N, H, d_qk)
        v = as_grid(tokens, v).reshape(batch, length, self.heads, self.v_dim)  # (B, N, H, d_v)

        bias = self.rab(length, timestamps, query_timestamps) if self.rab is not None else None
        alpha = 1.0 if self.variant == "research" else 1.0 / math.sqrt(self.qk_dim)
        n = attention_divisor(self.attn_norm, valid, self.max_len)
        attn = self.attention_fn(q, k, v, bias, valid, n, alpha=alpha)  # (B, N, H, d_v)
        attn = as_tokens(tokens, attn.reshape(batch, length, hv))  # (..., H·d_v)

        gated = u * self.attn_norm_layer(attn)  # (..., H·d_v)
        if self.variant == "production":
            gated = torch.cat([u, attn, gated], dim=-1)  # (..., 3·H·d_v)
        y = h + self.out(self.dropout(gated))  # (..., D)
        return leave(tokens, y, valid)
