"""The packed ``is_causal`` attention path equals the explicit-mask path it replaced.

:func:`packed_causal_attention` (real events first, SDPA with ``is_causal=True``, no (N, N) mask) is what
:class:`CausalSelfAttention` runs; :func:`masked_causal_attention` (the (B, 1, N, N) mask of
:func:`causal_padding_mask`) is the old path, kept as the reference. They must agree at every real query,
in outputs and in gradients, for every padding layout.
"""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

import argusrec.nn.attention as attention
from argusrec.nn.attention import (
    CausalSelfAttention,
    masked_causal_attention,
    packed_causal_attention,
    packing_index,
)
from argusrec.nn.transformer import TransformerEncoder, llama_blocks, sasrec_blocks

LAYOUTS = {
    "left": ["...xxxxxx", "xxxxxxxxx", "........x"],
    "right": ["xxxxxx...", "xxxxxxxxx", "x........"],
    "holes": ["x.x.xx..x", ".xx..xxx.", "xxxx.xxxx"],
    "empty_row": [".........", "..xxxxxxx", "xxxxxxxxx"],
    "no_padding": ["xxxxxxxxx", "xxxxxxxxx", "xxxxxxxxx"],
}


def make_valid(rows: list[str]) -> Tensor:
    """(B, N) bool from strings such as '..xxx' (x = real event, . = padding)."""
    return torch.tensor([[c == "x" for c in row] for row in rows])


def qkv(b: int, h: int, n: int, dh: int, seed: int = 0) -> tuple[Tensor, Tensor, Tensor]:
    g = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(b, h, n, dh, generator=g, dtype=torch.float64, requires_grad=True) for _ in range(3))  # type: ignore[return-value]


def test_packing_index_is_a_stable_partition() -> None:
    valid = make_valid(["x.x.xx..x", "..xxxxxxx", "........."])
    order, slot = packing_index(valid)
    n = valid.shape[1]
    for row in range(valid.shape[0]):
        real = [c for c in range(n) if valid[row, c]]
        pad = [c for c in range(n) if not valid[row, c]]
        assert order[row].tolist() == real + pad  # real events first, each group in column order
        assert torch.equal(order[row][slot[row]], torch.arange(n))  # inverse permutations
        assert torch.equal(slot[row][order[row]], torch.arange(n))


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_packed_equals_masked_outputs_and_gradients(layout: str) -> None:
    valid = make_valid(LAYOUTS[layout])
    b, n = valid.shape
    q, k, v = qkv(b, 2, n, 4)
    real = valid[:, None, :, None]  # (B, 1, N, 1): only real queries are defined (the layer zeroes the rest)
    fast = packed_causal_attention(q, k, v, valid)
    slow = masked_causal_attention(q, k, v, valid)
    torch.testing.assert_close(fast * real, slow * real, atol=1e-12, rtol=1e-12)
    assert torch.isfinite(fast).all()
    weights = torch.randn(fast.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    g_fast = torch.autograd.grad((fast * real * weights).sum(), (q, k, v))
    g_slow = torch.autograd.grad((slow * real * weights).sum(), (q, k, v))
    for a, e in zip(g_fast, g_slow, strict=True):
        torch.testing.assert_close(a, e, atol=1e-12, rtol=1e-12)


def test_packed_path_on_random_layouts_float32() -> None:
    """Many random layouts (float32, the kernels' usual dtype), a longer row, several heads."""
    g = torch.Generator().manual_seed(3)
    for _ in range(5):
        valid = torch.rand(4, 97, generator=g) < 0.7
        q, k, v = (torch.randn(4, 3, 97, 16, generator=g) for _ in range(3))
        real = valid[:, None, :, None]
        fast = packed_causal_attention(q, k, v, valid)
        slow = masked_causal_attention(q, k, v, valid)
        torch.testing.assert_close(fast * real, slow * real, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("rotary", [False, True])
def test_layer_paths_agree(rotary: bool) -> None:
    """The layer with the fast path (its default) equals the same layer switched to the masked path."""
    torch.manual_seed(0)
    attn = CausalSelfAttention(16, 4, rotary=rotary).double().eval()
    assert attn.attention_fn is packed_causal_attention
    valid = make_valid(["..xxxxx", "xxxxxxx", "xx.x.xx", "......."])
    x = torch.randn(4, 7, 16, dtype=torch.float64)
    fast = attn(x, valid=valid)
    attn.attention_fn = masked_causal_attention
    slow = attn(x, valid=valid)
    torch.testing.assert_close(fast, slow, atol=1e-12, rtol=1e-12)
    assert torch.equal(fast[~valid], torch.zeros_like(fast[~valid]))


@pytest.mark.parametrize("style", ["sasrec", "llama"])
def test_encoder_parameter_gradients_agree(style: str) -> None:
    """A whole stack: same outputs and same parameter gradients on either path."""
    torch.manual_seed(1)
    blocks = sasrec_blocks(2, 16, 2) if style == "sasrec" else llama_blocks(2, 16, 2)
    enc = TransformerEncoder(blocks, 16, final_norm="layer" if style == "sasrec" else "rms").double()
    valid = make_valid(["...xxxxxxx", "xxxxxxxxxx", "x.xx..xxx."])
    x = torch.randn(3, 10, 16, dtype=torch.float64)

    def run() -> tuple[Tensor, list[Tensor]]:
        enc.zero_grad()
        out = enc(x, valid=valid)
        (out.sin() * 3).sum().backward()
        return out.detach(), [p.grad.clone() for p in enc.parameters() if p.grad is not None]

    fast_out, fast_grads = run()
    for module in enc.modules():
        if isinstance(module, CausalSelfAttention):
            module.attention_fn = masked_causal_attention
    slow_out, slow_grads = run()
    torch.testing.assert_close(fast_out, slow_out, atol=1e-10, rtol=1e-10)
    assert len(fast_grads) == len(slow_grads)
    for a, e in zip(fast_grads, slow_grads, strict=True):
        torch.testing.assert_close(a, e, atol=1e-10, rtol=1e-10)


def test_fast_path_builds_no_square_mask(monkeypatch: pytest.MonkeyPatch) -> None:
    """The layer never calls causal_padding_mask, and a long padded row runs (no (N, N) tensor is needed)."""

    def forbidden(valid: Tensor) -> Tensor:
        raise AssertionError("the fast path must not build an (N, N) mask")

    monkeypatch.setattr(attention, "causal_padding_mask", forbidden)
    torch.manual_seed(2)
    attn = CausalSelfAttention(8, 1).eval()
    n = 6000
    valid = torch.ones(1, n, dtype=torch.bool)
    valid[0, :100] = False  # left padding: the packed (gather) path
    with torch.no_grad():
        out = attn(torch.randn(1, n, 8), valid=valid)
    assert out.shape == (1, n, 8) and torch.isfinite(out).all()
    assert torch.equal(out[0, :100], torch.zeros(100, 8))


def test_dropout_keeps_padding_zero_and_finite() -> None:
    torch.manual_seed(4)
    attn = CausalSelfAttention(16, 2, dropout=0.5).train()
    valid = make_valid(["..xxxxx", "x.x.xxx"])
    x = torch.randn(2, 7, 16, requires_grad=True)
    out = attn(x, valid=valid)
    out.sum().backward()
    assert torch.isfinite(out).all() and torch.equal(out[~valid], torch.zeros_like(out[~valid]))
    assert x.grad is not None and torch.isfinite(x.grad).all()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_packed_path_on_cuda_uses_a_fused_kernel_and_matches(dtype: torch.dtype) -> None:
    """On CUDA the packed path runs under flash (bf16) / memory-efficient (fp32) attention only — SDPA raises if
    the kernel cannot take the inputs — and equals the masked path computed in float32."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    cuda = torch.device("cuda")
    g = torch.Generator().manual_seed(5)
    valid = torch.rand(3, 300, generator=g) < 0.8
    valid[0] = True
    valid[1, :100] = False
    q, k, v = (torch.randn(3, 4, 300, 64, generator=g).to(cuda) for _ in range(3))
    valid = valid.to(cuda)
    backend = SDPBackend.FLASH_ATTENTION if dtype == torch.bfloat16 else SDPBackend.EFFICIENT_ATTENTION
    with sdpa_kernel([backend]):
        fast = packed_causal_attention(q.to(dtype), k.to(dtype), v.to(dtype), valid, dropout_p=0.0)
        with_dropout = packed_causal_attention(q.to(dtype), k.to(dtype), v.to(dtype), valid, dropout_p=0.1)
    slow = masked_causal_attention(q, k, v, valid)  # float32 reference
    real = valid[:, None, :, None]
    tol = 2e-2 if dtype == torch.bfloat16 else 1e-4
    torch.testing.assert_close((fast.float() * real), slow * real, atol=tol, rtol=tol)
    assert torch.isfinite(with_dropout).all()
