"""BSARec's frequency filter and block (argusrec.nn.frequency)."""

from __future__ import annotations

import pytest
import torch

from argusrec.nn.attention import CausalSelfAttention, masked_causal_attention
from argusrec.nn.frequency import BSARecBlock, FrequencyFilter, lowpass_matrix
from argusrec.nn.transformer import TransformerEncoder

W, D = 10, 8


def test_lowpass_matrix_is_the_fft_low_pass() -> None:
    x = torch.randn(W, 5, dtype=torch.float64)
    for keep in (1, 3, W // 2 + 1):
        reference = torch.fft.irfft(torch.fft.rfft(x, dim=0, norm="ortho")[:keep], n=W, dim=0, norm="ortho")
        torch.testing.assert_close(lowpass_matrix(W, keep) @ x, reference)


def test_lowpass_matrix_is_an_orthogonal_projection() -> None:
    p = lowpass_matrix(W, 3)
    torch.testing.assert_close(p @ p, p)  # idempotent
    torch.testing.assert_close(p, p.T)  # symmetric
    assert torch.linalg.matrix_rank(p) == 5  # bin 0, and bins 1-2 with a cosine and a sine each
    torch.testing.assert_close(lowpass_matrix(W, W // 2 + 1), torch.eye(W, dtype=torch.float64))  # every bin kept
    # keeping bin 0 only = the window mean in every slot
    torch.testing.assert_close(lowpass_matrix(W, 1), torch.full((W, W), 1 / W, dtype=torch.float64))


def test_lowpass_matrix_refuses_impossible_sizes() -> None:
    with pytest.raises(ValueError, match="keep must be in"):
        lowpass_matrix(W, W // 2 + 2)
    with pytest.raises(ValueError, match="keep must be in"):
        lowpass_matrix(W, 0)


def test_filter_gain_one_is_the_identity_and_zero_is_the_low_pass() -> None:
    f = FrequencyFilter(D, window=W, keep=2)
    x = torch.randn(3, W, D)
    with torch.no_grad():
        f.sqrt_beta.fill_(1.0)
        torch.testing.assert_close(f(x), x)
        f.sqrt_beta.fill_(0.0)
        low = torch.einsum("mn,bnd->bmd", lowpass_matrix(W, 2).float(), x)
        torch.testing.assert_close(f(x), low)


def test_short_batches_equal_the_zero_padded_window() -> None:
    f = FrequencyFilter(D, window=W, keep=3)
    x = torch.randn(2, 4, D)  # 4 slots of a 10-slot window; the history sits in the last slots
    full = torch.cat([torch.zeros(2, W - 4, D), x], dim=1)
    torch.testing.assert_close(f(x), f(full)[:, -4:])
    with pytest.raises(ValueError, match="window is 10"):
        f(torch.randn(1, W + 1, D))


def test_the_filter_runs_in_float32_under_autocast_and_keeps_the_input_dtype() -> None:
    f = FrequencyFilter(D, window=W, keep=3)
    x = torch.randn(2, W, D)
    with torch.no_grad():
        reference = f(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            under_autocast = f(x)
        as_bf16 = f.to(torch.bfloat16)(x.bfloat16())  # a model cast whole: the buffer is bf16 too
    assert under_autocast.dtype == torch.float32
    torch.testing.assert_close(under_autocast, reference, atol=1e-6, rtol=1e-6)  # bf16 matmuls err by ~1e-2
    assert as_bf16.dtype == torch.bfloat16
    torch.testing.assert_close(as_bf16.float(), reference, atol=0.05, rtol=0.02)


def _encoder() -> TransformerEncoder:
    blocks = [BSARecBlock(D, 2, ffn_dim=4 * D, window=W, keep=3, alpha=0.7) for _ in range(2)]
    return TransformerEncoder(blocks, D, final_norm=None).eval()


def test_extra_left_padding_changes_nothing() -> None:
    torch.manual_seed(0)
    enc = _encoder()
    x = torch.randn(1, 5, D)
    short = enc(x, valid=torch.ones(1, 5, dtype=torch.bool))
    padded_x = torch.cat([torch.full((1, 3, D), float("nan")), x], dim=1)  # NaN in padding never leaks
    valid = torch.tensor([[False] * 3 + [True] * 5])
    padded = enc(padded_x, valid=valid)
    torch.testing.assert_close(padded[:, 3:], short)
    assert torch.equal(padded[:, :3], torch.zeros(1, 3, D))


def test_the_filter_is_not_causal_so_only_the_last_slot_is_a_history_state() -> None:
    """The module doc's warning, checked: an early slot's output moves when a later event changes."""
    torch.manual_seed(0)
    enc = _encoder()
    valid = torch.ones(1, 6, dtype=torch.bool)
    x = torch.randn(1, 6, D)
    y = x.clone()
    y[0, -1] = torch.randn(D)
    assert not torch.allclose(enc(x, valid=valid)[0, 0], enc(y, valid=valid)[0, 0])


def test_alpha_must_be_a_weight() -> None:
    with pytest.raises(ValueError, match="alpha"):
        BSARecBlock(D, 1, ffn_dim=D, window=W, keep=2, alpha=1.5)


def _additive_mask_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """The BSARec code's attention, written out: -10000 added to every key that is padding or later.

    In float64: in float32, a score plus -10000 keeps only ~3 decimals (the code's own rounding)."""
    n = valid.shape[1]
    allowed = valid[:, None, None, :] & torch.ones(n, n, dtype=torch.bool).tril()  # (B, 1, N, N)
    q, k, v = q.double(), k.double(), v.double()
    scores = q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5 + (~allowed).double() * -10000.0
    return (scores.softmax(-1) @ v).float()


def _left_padded(lengths: list[int]) -> torch.Tensor:
    return torch.stack([torch.arange(W) >= W - n for n in lengths])  # (B, W) bool


def test_attention_for_padding_with_content_is_the_additive_mask_of_the_bsarec_code() -> None:
    torch.manual_seed(0)
    q, k, v = (torch.randn(3, 2, W, 4) for _ in range(3))
    valid = _left_padded([W, 4, 0])  # a full row, a short one, an empty one
    got = masked_causal_attention(q, k, v, valid, padded_queries="all")
    torch.testing.assert_close(got, _additive_mask_attention(q, k, v, valid))


def test_block_with_padding_content_matches_the_window_written_out() -> None:
    """Every slot of the block's output, padding included, against the BSARec code's computation."""
    torch.manual_seed(0)
    block = BSARecBlock(D, 2, ffn_dim=4 * D, window=W, keep=3, alpha=0.7, padding_content=True).eval()
    x = torch.randn(2, W, D)  # padding slots with content
    valid = _left_padded([6, 2])
    with torch.no_grad():
        spectrum = torch.fft.rfft(x, dim=1, norm="ortho")
        spectrum[:, 3:] = 0
        low = torch.fft.irfft(spectrum, n=W, dim=1, norm="ortho")
        spectral = block.filter_norm(x + low + block.filter.sqrt_beta**2 * (x - low))
        q, k, v = block.attn.qkv(x).view(2, W, 3, 2, D // 2).permute(2, 0, 3, 1, 4)  # 3 x (B, H, W, Dh)
        heads = _additive_mask_attention(q, k, v, valid)  # (B, H, W, Dh)
        attended = block.attn_norm(x + block.attn.out(heads.transpose(1, 2).reshape(2, W, D)))
        y = 0.7 * spectral + 0.3 * attended
        expected = block.ffn_norm(y + block.ffn(y))
        got = block(x, valid=valid)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    assert got[~valid].abs().sum() > 0  # the padding slots are kept, not zeroed


def test_padding_content_needs_the_whole_window_and_plain_attention() -> None:
    block = BSARecBlock(D, 1, ffn_dim=D, window=W, keep=2, alpha=0.5, padding_content=True)
    with pytest.raises(ValueError, match="whole 10-slot window"):
        block(torch.randn(1, W - 1, D), valid=torch.ones(1, W - 1, dtype=torch.bool))
    with pytest.raises(ValueError, match="padding_content"):
        CausalSelfAttention(D, 2, rotary=True, padding_content=True)
    with pytest.raises(ValueError, match="padding_content"):
        CausalSelfAttention(D, 2, padding_window=W, padding_content=True)
