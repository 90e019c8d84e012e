"""BSARec's block: self-attention next to a learned low-pass / high-pass filter over the history window.

BSARec (Shin et al., "An Attentive Inductive Bias for Sequential Recommendation beyond the
Self-Attention", AAAI 2024) argues that self-attention acts as a low-pass filter that over-smooths
short histories, and adds a Fourier-domain branch that keeps the lowest frequencies of the window and
re-weights the rest by a learned per-channel gain ``beta²``:

    low = lowpass(x),  filter(x) = low + beta² ⊙ (x − low)
    y = α · Norm(x + Drop(filter(x))) + (1 − α) · Norm(x + Drop(Attn(x)))
    out = Norm(y + Drop(FFN(y)))                  (post-norm, as BERT and the BSARec code)

``lowpass`` projects each channel of the W-slot window (W = the model's ``max_len``; the history sits
in its last slots, left-padded with zeros) onto the ``keep`` lowest real Fourier modes:
``irfft(rfft(x, W)[:keep], W)``, the first ``keep`` bins of the window's rFFT. That map is linear and
fixed, so it is a (W, W) matrix ``P`` built once; a batch of N ≤ W slots uses ``P[W-N:, W-N:]`` (the
zero rows in front of the batch contribute nothing), which gives the same numbers whatever the
batch's padding.

**Not causal.** The filter mixes every slot of the window with every other, so only the *last*
slot's output is a state of "the history so far"; earlier slots have seen later events. Models with
these blocks are trained on the last position of each history prefix (``train.targets: last``, what
the BSARec code does) and read at the last slot (as leave-one-out evaluation does); the run config
refuses them with every-position training. **Left padding only**: the filter treats the last N slots
of a batch as the last N slots of the window, so histories must end in the last slot (as the
next-item task and leave-one-out evaluation build them); right-padded rows or holes give other
numbers. With left padding the shared encoder contract holds: padding invariance, zero at padding, no
NaN.

**Padding with content** (``padding_content=True``, the BSARec code's window): every row is the whole
W-slot window, and its padding slots hold what the model put there (the normalised position vectors, see
:class:`~argusrec.models.sequential.SequentialRecommender`) instead of zeros. The block then runs every
part on every slot, the filter mixes the padding slots into the real ones, padded queries attend to their
whole row (:func:`~argusrec.nn.attention.causal_padding_mask`), and nothing is zeroed: the padded
outputs are the next block's padded inputs. The output at a real slot then depends on the row's padding,
so padding invariance holds only across batches padded to the same window (the model pads every batch to W).
The projection runs in float32 even under autocast (a (N, N) matrix: cheap, and bf16 would round
its entries to three digits).

Letters (docs/notation.md): B batch, N length, D width, H heads; W the filter's window.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from argusrec.nn.attention import CausalSelfAttention
from argusrec.nn.tokens import as_grid, as_tokens, enter, leave
from argusrec.nn.transformer import FeedForward

__all__ = ["BSARecBlock", "FrequencyFilter", "lowpass_matrix"]


def lowpass_matrix(window: int, keep: int) -> Tensor:
    """(W, W) float64 ``P`` with ``P @ x == irfft(rfft(x)[:keep], n=W)`` for any (W, ...) ``x`` (ortho norm).

    Built by filtering the identity: column j of ``P`` is the low-passed unit impulse at slot j.
    """
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    if not 1 <= keep <= window // 2 + 1:
        raise ValueError(f"keep must be in [1, window // 2 + 1 = {window // 2 + 1}], got {keep}")
    eye = torch.eye(window, dtype=torch.float64)  # (W, W): column j = impulse at slot j
    spectrum = torch.fft.rfft(eye, dim=0, norm="ortho")[:keep]  # (keep, W) lowest bins of each impulse
    return torch.fft.irfft(spectrum, n=window, dim=0, norm="ortho")  # (W, W); missing bins read as zero


class FrequencyFilter(nn.Module):
    """``low + beta² ⊙ (x − low)`` with ``low`` the ``keep`` lowest Fourier modes of the window (module doc).

    Args:
        dim: D (``beta`` has one gain per channel).
        window: W, the longest history (the model's ``max_len``); inputs may be shorter (left-padded).
        keep: rFFT bins kept by the low-pass, 1..W//2+1 (BSARec's ``c`` gives ``c // 2 + 1``).
    """

    lowpass: Tensor

    def __init__(self, dim: int, *, window: int, keep: int) -> None:
        super().__init__()
        self.window = window
        self.register_buffer("lowpass", lowpass_matrix(window, keep).float(), persistent=False)
        self.sqrt_beta = nn.Parameter(torch.randn(dim))  # beta = sqrt_beta², >= 0; N(0, 1) init as the paper's code

    def forward(self, x: Tensor) -> Tensor:
        """x: (B, N, D), N <= W, latest event in the last slot, zero at padding -> (B, N, D)."""
        n = x.shape[1]
        if n > self.window:
            raise ValueError(f"the frequency filter's window is {self.window} events, got a batch of {n}")
        p = self.lowpass[self.window - n :, self.window - n :].float()  # (N, N): the window's last N slots
        with torch.autocast(x.device.type, enabled=False):  # float32 projection (module doc)
            x32 = x.float()
            low = torch.einsum("mn,bnd->bmd", p, x32)  # (B, N, D)
            out = low + self.sqrt_beta.float().square() * (x32 - low)
        return out.to(x.dtype)


class BSARecBlock(nn.Module):
    """One BSARec block (module doc): filter and attention branches mixed by ``alpha``, then an FFN; post-norm.

    Follows the encoder's call contract (``forward(x, *, valid, timestamps, query_timestamps)``, zero at
    padding) but is **not causal** (module doc).

    Args:
        dim: D.
        heads: H.
        ffn_dim: hidden width of the GELU feed-forward network (BSARec: 4·D).
        window: W, the filter's window (the model's ``max_len``).
        keep: rFFT bins the low-pass keeps.
        alpha: weight of the filter branch; 1 − alpha goes to attention.
        dropout: on attention probabilities and on every residual branch.
        padding_content: the padding slots carry content (module doc): inputs must span the whole window,
            and the output keeps the padded slots.
    """

    def __init__(
        self,
        dim: int,
        heads: int,
        *,
        ffn_dim: int,
        window: int,
        keep: int,
        alpha: float,
        dropout: float = 0.0,
        padding_content: bool = False,
    ) -> None:
        super().__init__()
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {alpha}")
        self.alpha = alpha
        self.filter = FrequencyFilter(dim, window=window, keep=keep)
        self.filter_norm = nn.LayerNorm(dim)
        self.attn = CausalSelfAttention(dim, heads, dropout=dropout, bias=True, padding_content=padding_content)
        self.attn_norm = nn.LayerNorm(dim)
        self.ffn = FeedForward(dim, ffn_dim, activation="gelu", bias=True)
        self.ffn_norm = nn.LayerNorm(dim)
        self.dropout = nn.Dropout(dropout)
        self.padding_content = padding_content
        # Position-wise parts on the real tokens only (argusrec.nn.tokens), unless the padding slots carry content.
        self.pack_real_tokens = not padding_content

    def forward(
        self,
        x: Tensor,
        *,
        valid: Tensor,
        timestamps: Tensor | None = None,
        query_timestamps: Tensor | None = None,
    ) -> Tensor:
        """x: (B, N, D), valid: (B, N) bool (left padding: the latest event last); timestamps unused -> (B, N, D)."""
        if self.padding_content:  # the whole window, padding slots as they come (module doc)
            window = self.filter.window
            if x.shape[1] != window:
                raise ValueError(f"padding_content needs rows of the whole {window}-slot window, got {x.shape[1]}")
            tokens, h = None, x
        else:
            tokens, h = enter(x, valid, enabled=self.pack_real_tokens)  # (T, D) or (B, N, D), zero at padding
        filtered = as_tokens(tokens, self.filter(as_grid(tokens, h)))  # the filter needs the (B, N) window
        spectral = self.filter_norm(h + self.dropout(filtered))
        attended = self.attn_norm(h + self.dropout(self.attn(h, valid=valid, tokens=tokens)))
        y = self.alpha * spectral + (1.0 - self.alpha) * attended
        out = self.ffn_norm(y + self.dropout(self.ffn(y)))
        return out if self.padding_content else leave(tokens, out, valid)
