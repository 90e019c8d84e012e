"""Causal self-attention, rotary positions, transformer blocks and the encoder stack.

References here are written independently of the code under test: attention as an explicit
einsum + masked softmax, rotary as a multiplication by complex exponentials.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch
from torch import Tensor, nn

from argusrec.nn.attention import CausalSelfAttention, apply_rotary, causal_padding_mask, rotary_tables
from argusrec.nn.transformer import (
    FeedForward,
    TransformerBlock,
    TransformerEncoder,
    llama_blocks,
    llama_ffn_dim,
    sasrec_blocks,
)

D, H = 16, 4


def make_valid(layouts: list[str]) -> Tensor:
    """(B, N) mask from strings such as '..xxxx' (x = real event, . = padding)."""
    return torch.tensor([[c == "x" for c in row] for row in layouts])


def rope_reference(x: Tensor, positions: Tensor, base: float = 10000.0) -> Tensor:
    """RoPE via complex numbers: channel j pairs with j + Dh/2 and is multiplied by exp(i·pos·θ_j), in float64."""
    half = x.shape[-1] // 2
    z = torch.complex(x[..., :half].double(), x[..., half:].double())  # (..., N, Dh/2)
    theta = torch.tensor([base ** (-2.0 * j / x.shape[-1]) for j in range(half)], dtype=torch.float64)
    z = z * torch.polar(torch.ones_like(theta), positions.double().unsqueeze(-1) * theta)
    return torch.cat((z.real, z.imag), dim=-1)


def attention_reference(attn: CausalSelfAttention, x: Tensor, valid: Tensor) -> Tensor:
    """Multi-head causal attention written out with einsum and a masked softmax, in float64."""
    b, n, d = x.shape
    h, dh = attn.heads, attn.head_dim
    qkv = x.double() @ attn.qkv.weight.double().T + attn.qkv.bias.double()
    q, k, v = (t.reshape(b, n, h, dh).transpose(1, 2) for t in qkv.split(d, dim=-1))
    if attn.rotary:
        # Position = rank among the row's real events.
        pos = torch.stack([torch.cumsum(row.long(), 0) - 1 for row in valid]).clamp_min(0)[:, None]
        q, k = rope_reference(q, pos), rope_reference(k, pos)
    scores = torch.einsum("bhqd,bhkd->bhqk", q, k) / math.sqrt(dh)
    allowed = torch.zeros(b, 1, n, n, dtype=torch.bool)
    for i in range(n):
        for j in range(i + 1):
            allowed[:, 0, i, j] = valid[:, j]
    scores = scores.masked_fill(~allowed, float("-inf"))
    probs = torch.softmax(scores, dim=-1).nan_to_num(0.0)  # fully padded query rows -> 0
    y = torch.einsum("bhqk,bhkd->bhqd", probs, v).transpose(1, 2).reshape(b, n, d)
    out = y @ attn.out.weight.double().T + attn.out.bias.double()
    return out * valid.unsqueeze(-1)


@pytest.mark.parametrize("rotary", [False, True])
def test_attention_matches_einsum_reference(rotary: bool) -> None:
    torch.manual_seed(0)
    attn = CausalSelfAttention(D, H, rotary=rotary).eval()
    valid = make_valid(["..xxxxx", "xxxxxxx", "xx.x.xx", "......."])
    x = torch.randn(4, 7, D)
    out = attn(x, valid=valid)
    expected = attention_reference(attn, x, valid)
    torch.testing.assert_close(out.double(), expected, atol=1e-5, rtol=1e-5)
    assert torch.equal(out[~valid], torch.zeros_like(out[~valid]))


def test_rotary_matches_complex_reference() -> None:
    torch.manual_seed(1)
    q, k = torch.randn(2, 3, 9, 8), torch.randn(2, 3, 9, 8)
    positions = torch.tensor([[0, 1, 2, 3, 4, 5, 6, 7, 8], [5, 6, 7, 20, 21, 22, 100, 101, 4000]])
    cos, sin = rotary_tables(positions, 8)  # (B, N, Dh/2)
    rq, rk = apply_rotary(q, k, cos[:, None], sin[:, None])
    torch.testing.assert_close(rq.double(), rope_reference(q, positions[:, None]), atol=2e-4, rtol=1e-4)
    torch.testing.assert_close(rk.double(), rope_reference(k, positions[:, None]), atol=2e-4, rtol=1e-4)
    # An int gives the table of positions 0..n-1.
    cos_n, sin_n = rotary_tables(9, 8)
    torch.testing.assert_close(cos_n, cos[0])
    torch.testing.assert_close(sin_n, sin[0])


def test_rotary_scores_depend_only_on_relative_position() -> None:
    torch.manual_seed(2)
    q, k = torch.randn(1, 1, 1, 16), torch.randn(1, 1, 1, 16)

    def score(m: int, n: int) -> float:
        cq, sq = rotary_tables(torch.tensor([m]), 16)
        ck, sk = rotary_tables(torch.tensor([n]), 16)
        rq, _ = apply_rotary(q, q, cq, sq)
        rk, _ = apply_rotary(k, k, ck, sk)
        return float((rq * rk).sum())

    base = score(7, 3)
    for shift in (1, 5, 40, 300):
        assert score(7 + shift, 3 + shift) == pytest.approx(base, abs=1e-4)
    # ... and does depend on the distance (the test would pass trivially without rotation otherwise).
    assert abs(score(7, 2) - base) > 1e-3
    assert abs(score(7, 3) - float((q * k).sum())) > 1e-3


def test_mask_allows_only_earlier_real_keys_and_the_diagonal() -> None:
    valid = make_valid(["..xx"])
    mask = causal_padding_mask(valid)[0, 0]
    expected = torch.tensor(
        [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 1, 1]],
        dtype=torch.bool,
    )
    assert torch.equal(mask, expected)


# --------------------------------------------------------------------------- blocks


def sasrec_block() -> nn.Module:
    return sasrec_blocks(1, D, H)[0]


def sasrec_gelu_block() -> nn.Module:
    return TransformerBlock(D, H, ffn_dim=24, norm="layer", ffn="gelu")


def llama_block() -> nn.Module:
    return llama_blocks(1, D, H)[0]


def sasrec_stack() -> nn.Module:
    return TransformerEncoder(sasrec_blocks(2, D, H), D, final_norm="layer")


def llama_stack() -> nn.Module:
    return TransformerEncoder(llama_blocks(2, D, H), D, final_norm="rms")


def sasrec_normed_stack() -> nn.Module:
    return TransformerEncoder(sasrec_blocks(2, D, H, residual="normed"), D, final_norm="layer")


BUILDERS: dict[str, Callable[[], nn.Module]] = {
    "sasrec_block": sasrec_block,
    "sasrec_gelu_block": sasrec_gelu_block,
    "llama_block": llama_block,
    "sasrec_stack": sasrec_stack,
    "llama_stack": llama_stack,
    "sasrec_normed_stack": sasrec_normed_stack,
}


def test_normed_residual_block_matches_the_original_sasrec_layer() -> None:
    """residual="normed", written out: y = LN(x); y + Attn(q=y, k=v=x); z = LN(.); z + FFN(z) (eval: no dropout)."""
    torch.manual_seed(9)
    block = sasrec_blocks(1, D, H, residual="normed")[0].eval()
    valid = make_valid(["..xxxx", "xxxxxx"])
    x = torch.randn(2, 6, D) * valid.unsqueeze(-1)
    attn = block.attn
    # keys / values from x, queries from y: a reference attention on stacked projections
    y = block.attn_norm(x)
    w, bias = attn.qkv.weight, attn.qkv.bias
    q = (y @ w[:D].T + bias[:D]).reshape(2, 6, H, D // H).transpose(1, 2)
    k = (x @ w[D : 2 * D].T + bias[D : 2 * D]).reshape(2, 6, H, D // H).transpose(1, 2)
    v = (x @ w[2 * D :].T + bias[2 * D :]).reshape(2, 6, H, D // H).transpose(1, 2)
    scores = torch.einsum("bhqd,bhkd->bhqk", q, k) / math.sqrt(D // H)
    allowed = torch.tril(torch.ones(6, 6, dtype=torch.bool)) & valid[:, None, None, :]
    probs = torch.softmax(scores.masked_fill(~allowed, float("-inf")), dim=-1).nan_to_num(0.0)
    a = torch.einsum("bhqk,bhkd->bhqd", probs, v).transpose(1, 2).reshape(2, 6, D) @ attn.out.weight.T + attn.out.bias
    h = y + a * valid.unsqueeze(-1)
    z = block.ffn_norm(h)
    expected = (z + block.ffn(z)) * valid.unsqueeze(-1)
    torch.testing.assert_close(block(x, valid=valid), expected, atol=1e-5, rtol=1e-5)
    # and it is not the pre-norm block with the same weights
    pre = sasrec_blocks(1, D, H)[0].eval()
    pre.load_state_dict(block.state_dict())
    assert (pre(x, valid=valid) - expected)[valid].abs().max() > 1e-2
    with pytest.raises(ValueError, match="residual"):
        TransformerBlock(D, H, ffn_dim=D, residual="post")  # type: ignore[arg-type]


def built(name: str) -> nn.Module:
    torch.manual_seed(3)
    return BUILDERS[name]().eval()


@pytest.mark.parametrize("name", list(BUILDERS))
def test_causality_future_inputs_never_change_past_outputs(name: str) -> None:
    model = built(name)
    valid = make_valid(["...xxxxx", "xxxxxxxx", "x.xx.xxx"])
    torch.manual_seed(4)
    x = torch.randn(3, 8, D)
    out = model(x, valid=valid)
    for j in range(1, 8):
        changed = x.clone()
        changed[:, j] += torch.randn(3, D) * 3.0
        out_j = model(changed, valid=valid)
        torch.testing.assert_close(out_j[:, :j], out[:, :j], atol=1e-6, rtol=0)
        # Non-vacuous: a real event at j does change its own output.
        real = valid[:, j]
        assert (out_j[real, j] - out[real, j]).abs().max() > 1e-3


@pytest.mark.parametrize("name", list(BUILDERS))
def test_padding_layout_and_padded_values_do_not_matter(name: str) -> None:
    model = built(name)
    torch.manual_seed(5)
    events = torch.randn(5, D)  # one row of 5 real events
    compact = model(events[None], valid=torch.ones(1, 5, dtype=torch.bool))[0]  # (5, D)
    for layout in ["xxxxx", "...xxxxx", ".xxxxx", "xxxxx...", "x..xx.xx.", "xxxxx" + "." * 11]:
        valid = make_valid([layout])
        x = torch.randn(1, len(layout), D) * 100.0  # garbage in padding ...
        x[0, ~valid[0]] = x[0, ~valid[0]].masked_fill(torch.rand(int((~valid).sum()), D) < 0.3, float("nan"))
        x[valid] = events
        out = model(x, valid=valid)
        torch.testing.assert_close(out[valid], compact, atol=2e-5, rtol=1e-5)
        assert torch.isfinite(out).all()
        assert torch.equal(out[~valid], torch.zeros_like(out[~valid]))


@pytest.mark.parametrize("name", ["sasrec_block", "llama_stack"])
def test_fully_padded_row_is_zero_and_gradients_stay_finite(name: str) -> None:
    model = built(name).train()
    valid = make_valid(["....", "..xx"])
    x = torch.randn(2, 4, D, requires_grad=True)
    out = model(x, valid=valid)
    assert torch.equal(out[0], torch.zeros(4, D))
    out.square().sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_timestamps_are_accepted_and_ignored() -> None:
    model = built("llama_stack")
    valid = make_valid(["..xxxx"])
    x = torch.randn(1, 6, D)
    ts = torch.arange(6)[None] * 1000
    torch.testing.assert_close(model(x, valid=valid, timestamps=ts, query_timestamps=ts + 5), model(x, valid=valid))


@pytest.mark.parametrize("stack", [sasrec_stack, llama_stack, sasrec_normed_stack])
def test_every_parameter_gets_a_gradient_through_two_blocks(stack: Callable[[], nn.Module]) -> None:
    torch.manual_seed(6)
    model = stack().train()
    valid = make_valid(["..xxxx", "xxxxxx"])
    out = model(torch.randn(2, 6, D), valid=valid)
    (out[valid] @ torch.randn(D)).square().mean().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert p.grad.abs().sum() > 0, name


def test_activation_checkpointing_gives_the_same_gradients() -> None:
    valid = make_valid(["..xxxx", "xxxxxx"])
    x = torch.randn(2, 6, D)
    grads = []
    for checkpointing in (False, True):
        torch.manual_seed(7)
        model = TransformerEncoder(sasrec_blocks(2, D, H, dropout=0.1), D, activation_checkpointing=checkpointing)
        torch.manual_seed(8)  # same dropout masks in both runs
        model.train()(x, valid=valid).sum().backward()
        grads.append([p.grad.clone() for p in model.parameters()])
    for plain, recomputed in zip(*grads, strict=True):
        torch.testing.assert_close(recomputed, plain)


def test_dropout_only_in_training() -> None:
    torch.manual_seed(9)
    model = TransformerEncoder(sasrec_blocks(1, D, H, dropout=0.5), D)
    valid = make_valid(["xxxx"])
    x = torch.randn(1, 4, D)
    model.eval()
    assert torch.equal(model(x, valid=valid), model(x, valid=valid))
    model.train()
    assert not torch.equal(model(x, valid=valid), model(x, valid=valid))


def test_styles_have_the_documented_parts_and_sizes() -> None:
    (sas,) = sasrec_blocks(1, D, H)
    assert isinstance(sas.attn_norm, nn.LayerNorm) and not sas.attn.rotary
    # Attention 4·D² + 4·D, FFN (D×D + D) × 2 (SASRec's hidden width = D), two LayerNorms 2·2·D.
    assert sum(p.numel() for p in sas.parameters()) == 4 * D * D + 4 * D + 2 * (D * D + D) + 4 * D
    (llama,) = llama_blocks(1, D, H)
    assert isinstance(llama.attn_norm, nn.RMSNorm) and llama.attn.rotary
    assert not [n for n, _ in llama.named_parameters() if n.endswith("bias")]
    f = llama_ffn_dim(D)
    assert f % 8 == 0 and f >= 8 * D / 3
    # Attention 4·D², SwiGLU 3·D·f, two RMSNorm weights 2·D.
    assert sum(p.numel() for p in llama.parameters()) == 4 * D * D + 3 * D * f + 2 * D


def test_swiglu_is_silu_gate_times_value() -> None:
    torch.manual_seed(10)
    ffn = FeedForward(D, 8, activation="swiglu", bias=False)
    x = torch.randn(3, D)
    gate_w, value_w = ffn.up.weight.split(8, dim=0)
    expected = (torch.nn.functional.silu(x @ gate_w.T) * (x @ value_w.T)) @ ffn.down.weight.T
    torch.testing.assert_close(ffn(x), expected)


def test_bad_arguments_are_rejected() -> None:
    with pytest.raises(ValueError, match="must divide"):
        CausalSelfAttention(10, 3)
    with pytest.raises(ValueError, match="even head width"):
        CausalSelfAttention(6, 2, rotary=True)
    with pytest.raises(ValueError, match="norm must be"):
        TransformerBlock(D, H, ffn_dim=8, norm="batch")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="ffn must be"):
        TransformerBlock(D, H, ffn_dim=8, ffn="tanh")  # type: ignore[arg-type]


def padding_keys_reference(block: TransformerBlock, x: Tensor, valid: Tensor, window: int) -> Tensor:
    """RecTools' layout written out: each row left-padded to ``window`` slots holding zeros, a causal mask and no
    key padding mask, through the block's own weights (eval mode); the outputs of the real events, in order."""
    out = torch.zeros_like(x)
    for b in range(x.shape[0]):
        real = x[b][valid[b]]  # (n, D)
        n = real.shape[0]
        full = torch.cat([real.new_zeros(window - n, D), real])  # (W, D): padding first, zero content
        y = block.attn_norm(full)
        kv_in = full if block.residual == "normed" else y
        w, bias = block.attn.qkv.weight, block.attn.qkv.bias
        q = (y @ w[:D].T + bias[:D]).view(window, H, D // H).transpose(0, 1)  # (H, W, Dh)
        k = (kv_in @ w[D : 2 * D].T + bias[D : 2 * D]).view(window, H, D // H).transpose(0, 1)
        v = (kv_in @ w[2 * D :].T + bias[2 * D :]).view(window, H, D // H).transpose(0, 1)
        scores = torch.einsum("hqd,hkd->hqk", q, k) / math.sqrt(D // H)
        causal = torch.tril(torch.ones(window, window, dtype=torch.bool))  # no key padding mask
        a = torch.softmax(scores.masked_fill(~causal, float("-inf")), -1) @ v  # (H, W, Dh)
        a = a.transpose(0, 1).reshape(window, D) @ block.attn.out.weight.T + block.attn.out.bias
        if block.residual == "normed":
            z = block.ffn_norm(y + a)
            h = z + block.ffn(z)
        else:
            h = full + a
            h = h + block.ffn(block.ffn_norm(h))
        out[b][valid[b]] = h[window - n :]
    return out


@pytest.mark.parametrize("residual", ["pre_norm", "normed"])
def test_attending_padding_matches_the_left_padded_window_without_key_mask(residual: str) -> None:
    """padding_window=W equals RecTools' computation: W − n zero slots before the n real events, no key mask."""
    torch.manual_seed(4)
    window = 9
    block = sasrec_blocks(1, D, H, residual=residual, padding_window=window)[0].eval()  # type: ignore[arg-type]
    with torch.no_grad():  # non-zero norm biases, so a padding slot's key is not just the projection bias
        block.attn_norm.bias.normal_()
    valid = make_valid(["..xxxx", "xxxxxx", "x.x.xx", ".....x"])
    x = torch.randn(4, 6, D) * valid.unsqueeze(-1)
    expected = padding_keys_reference(block, x, valid, window)
    for pack in (True, False):  # the real-token layout and the padded one
        block.pack_real_tokens = pack
        torch.testing.assert_close(block(x, valid=valid), expected, atol=1e-5, rtol=1e-5)
    # a full window has no padding slot: the plain block with the same weights
    plain = sasrec_blocks(1, D, H, residual=residual)[0].eval()  # type: ignore[arg-type]
    plain.load_state_dict(block.state_dict())
    full = torch.ones(2, window, dtype=torch.bool)
    xf = torch.randn(2, window, D)
    torch.testing.assert_close(block(xf, valid=full), plain(xf, valid=full), atol=1e-5, rtol=1e-5)
    # and with padding slots it is not the plain block
    assert (plain(x, valid=valid) - expected)[valid].abs().max() > 1e-3


def test_attending_padding_stays_causal_and_needs_its_input() -> None:
    torch.manual_seed(5)
    block = sasrec_blocks(1, D, H, padding_window=8)[0].eval()
    valid = make_valid(["..xxxx"])
    x = torch.randn(1, 6, D) * valid.unsqueeze(-1)
    y = block(x, valid=valid)
    x2 = x.clone()
    x2[0, 5] += 1.0  # a later event never changes an earlier output
    torch.testing.assert_close(block(x2, valid=valid)[0, :5], y[0, :5])
    with pytest.raises(ValueError, match="padding slots' input"):
        block.attn(x, valid=valid)
    with pytest.raises(ValueError, match="padding_window"):
        CausalSelfAttention(D, H, rotary=True, padding_window=8)
