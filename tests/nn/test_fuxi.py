"""FuXi-alpha block: AMS channels and MFFN (reference/PEERS.md §2)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from argusrec.nn.fuxi import FuXiBlock, ams_attention, rms_norm
from tests.nn import make_events, place

D, H, DQK, DV, MAX_LEN = 12, 2, 5, 4, 16


def make_block(**kwargs: object) -> FuXiBlock:
    torch.manual_seed(0)
    block = FuXiBlock(D, H, qk_dim=DQK, v_dim=DV, max_len=MAX_LEN, **kwargs)  # type: ignore[arg-type]
    with torch.no_grad():  # far above the N(0, 0.02) init so position/time effects dominate float noise
        block.rab.position_weight.normal_(0.0, 1.0)
        block.rab.time_weight.normal_(0.0, 1.0)
    return block.eval()


# ---------------------------------------------------------------- AMS channels


def channels_by_hand(q, k, v, pos, time, valid, n):  # type: ignore[no-untyped-def]
    """The three channels term by term: semantic SiLU(q·k)/n, positional pos[i, j], temporal time[b, i, j]."""
    b, length, heads, dv = v.shape
    out = torch.zeros(b, length, 3, heads, dv)
    for bb in range(b):
        for i in range(length):
            if not valid[bb, i]:
                continue
            for j in range(i + 1):
                if not valid[bb, j]:
                    continue
                for h in range(heads):
                    s = float(q[bb, i, h] @ k[bb, j, h])
                    divisor = float(n[bb, i]) if isinstance(n, torch.Tensor) else n
                    out[bb, i, 0, h] += s / (1 + math.exp(-s)) / divisor * v[bb, j, h]
                    out[bb, i, 1, h] += pos[i, j] * v[bb, j, h]
                    if time is not None:
                        out[bb, i, 2, h] += time[bb, i, j] * v[bb, j, h]
    return out


@pytest.mark.parametrize(
    ("b", "n", "heads", "with_time", "tensor_n"),
    [(1, 1, 1, True, False), (2, 6, 3, True, True), (3, 5, 2, False, False)],
)
def test_ams_channels_match_a_direct_reference(b: int, n: int, heads: int, with_time: bool, tensor_n: bool) -> None:
    g = torch.Generator().manual_seed(n)
    q, k = torch.randn(b, n, heads, 3, generator=g), torch.randn(b, n, heads, 3, generator=g)
    v = torch.randn(b, n, heads, 2, generator=g)
    pos = torch.randn(n, n, generator=g)
    time = torch.randn(b, n, n, generator=g) if with_time else None
    valid = torch.rand(b, n, generator=g) > 0.3
    valid[0] = True
    divisor = valid.cumsum(1).clamp(min=1).float() if tensor_n else 9.0
    out = ams_attention(q, k, v, pos, time, valid, divisor)
    assert out.shape == (b, n, 3, heads, 2)
    assert torch.allclose(out, channels_by_hand(q, k, v, pos, time, valid, divisor), atol=1e-5)
    if not with_time:
        assert torch.all(out[:, :, 2] == 0)


def block_by_formula(block: FuXiBlock, x, valid, ts, qts) -> torch.Tensor:  # type: ignore[no-untyped-def]
    """PEERS.md §2 written out from the block's parameters (channel-major concatenation)."""
    b, n, _ = x.shape
    hv, hq = H * DV, H * DQK
    x = x * valid[..., None]
    proj = F.silu(rms_norm(x) @ block.uvqk.weight.T)
    u, v, q, k = proj.split([3 * hv, hv, hq, hq], dim=-1)
    offsets = torch.arange(n)[:, None] - torch.arange(n)[None, :] + MAX_LEN - 1
    pos = block.rab.position_weight[offsets]
    time = None
    if ts is not None:
        dt = (qts[:, :, None] - ts[:, None, :]).abs().clamp(min=1).double()
        time = block.rab.time_weight[(dt.log() / 0.301).floor().long().clamp(0, 128)]
    ch = channels_by_hand(
        q.reshape(b, n, H, DQK), k.reshape(b, n, H, DQK), v.reshape(b, n, H, DV), pos, time, valid, float(MAX_LEN)
    ).reshape(b, n, 3 * hv)
    ams = u * ch / torch.sqrt(ch.pow(2).mean(-1, keepdim=True) + 1e-6)
    h1 = x + ams @ block.ams_out.weight.T + block.ams_out.bias
    z = h1 / torch.sqrt(h1.pow(2).mean(-1, keepdim=True) + 1e-6)
    y = h1 + (F.silu(z @ block.ffn_gate.weight.T) * (z @ block.ffn_up.weight.T)) @ block.ffn_down.weight.T
    return y * valid[..., None]


@pytest.mark.parametrize("with_time", [True, False])
def test_block_matches_the_written_out_formula(with_time: bool) -> None:
    block = make_block(ffn_dim=2 * D)
    x, valid, ts, qts, _ = place(make_events(2, 6, D, seed=3), [6, 3], 6)
    x = torch.where(valid[..., None], x, torch.zeros_like(x))
    kwargs = {"timestamps": ts, "query_timestamps": qts} if with_time else {}
    with torch.no_grad():
        out = block(x, valid=valid, **kwargs)
        expected = block_by_formula(block, x, valid, ts if with_time else None, qts if with_time else None)
    assert torch.allclose(out, expected, atol=1e-5)


def test_no_timestamps_equals_a_zero_temporal_matrix() -> None:
    block = make_block()
    x, valid, ts, qts, _ = place(make_events(2, 7, D, seed=4), [7, 5], 8)
    with_time = block(x, valid=valid, timestamps=ts, query_timestamps=qts)
    without = block(x, valid=valid)
    assert not torch.allclose(with_time, without)  # the temporal channel matters when present
    with torch.no_grad():
        block.rab.time_weight.zero_()
    assert torch.allclose(block(x, valid=valid, timestamps=ts, query_timestamps=qts), without, atol=1e-6)


# ---------------------------------------------------------------- causality and padding


def test_later_events_never_change_earlier_outputs() -> None:
    """As for HSTU: x[k] may change rows >= k; event k's time (ts[k] and query_timestamps[k − 1]) rows
    >= k − 1; query_timestamps[k] alone row k only."""
    block = make_block()
    x, valid, ts, qts, _ = place(make_events(2, 10, D, seed=7), [10, 10], 10)
    base = block(x, valid=valid, timestamps=ts, query_timestamps=qts)
    k = 6

    x2 = x.clone()
    x2[:, k] += 1.0
    out = block(x2, valid=valid, timestamps=ts, query_timestamps=qts)
    assert torch.equal(out[:, :k], base[:, :k])
    assert not torch.allclose(out[:, k], base[:, k])

    ts2, qts2 = ts.clone(), qts.clone()
    ts2[:, k:] += 5_000_000
    qts2[:, k - 1 :] += 5_000_000
    out = block(x, valid=valid, timestamps=ts2, query_timestamps=qts2)
    assert torch.equal(out[:, : k - 1], base[:, : k - 1])
    assert not torch.allclose(out[:, k - 1], base[:, k - 1])

    qts3 = qts.clone()
    qts3[:, k] += 5_000_000
    out = block(x, valid=valid, timestamps=ts, query_timestamps=qts3)
    changed = ~torch.isclose(out, base).all(dim=-1).all(dim=0)  # (N,)
    assert changed.tolist() == [i == k for i in range(10)]


@pytest.mark.parametrize("attn_norm", ["max_len", "valid_keys"])
def test_padding_amount_and_values_do_not_change_real_outputs(attn_norm: str) -> None:
    block = make_block(attn_norm=attn_norm)
    events = make_events(3, 8, D, seed=11)
    lengths = [8, 5, 2]
    results = []
    for n, layout, seed in [(8, "left", 1), (14, "left", 2), (11, "right", 3)]:
        x, valid, ts, qts, spans = place(events, lengths, n, layout=layout, seed=seed)
        out = block(x, valid=valid, timestamps=ts, query_timestamps=qts)
        results.append([out[b, span] for b, span in enumerate(spans)])
    for other in results[1:]:
        for got, want in zip(other, results[0], strict=True):
            assert torch.allclose(got, want, atol=1e-5)


def test_padded_outputs_are_zero_and_everything_finite() -> None:
    block = make_block(attn_norm="padded_len")
    x, valid, ts, qts, _ = place(make_events(3, 5, D, seed=5), [5, 0, 1], 7)
    out = block(x, valid=valid, timestamps=ts, query_timestamps=qts)
    assert torch.isfinite(out).all()
    assert torch.all(out[~valid] == 0)
    assert out[valid].abs().sum() > 0


# ---------------------------------------------------------------- parameters


def test_gradient_reaches_every_parameter() -> None:
    block = make_block(dropout=0.1).train()
    x, valid, ts, qts, _ = place(make_events(2, 7, D, seed=9), [7, 4], 8)
    out = block(x, valid=valid, timestamps=ts, query_timestamps=qts)
    (out * torch.randn_like(out)).sum().backward()
    for name, p in block.named_parameters():
        assert p.grad is not None, name
        assert p.grad.abs().sum() > 0, name
        assert torch.isfinite(p.grad).all(), name


@pytest.mark.parametrize("ffn_dim", [None, 40])
def test_parameter_count(ffn_dim: int | None) -> None:
    block = FuXiBlock(D, H, qk_dim=DQK, v_dim=DV, max_len=MAX_LEN, ffn_dim=ffn_dim)
    hidden = D if ffn_dim is None else ffn_dim
    expected = (
        D * H * (4 * DV + 2 * DQK)  # W1: U (3·H·dv), V, Q, K; no bias
        + (2 * MAX_LEN - 1)
        + 129  # relative position and time-bucket values
        + 3 * H * DV * D
        + D  # MFFN stage 1 with bias
        + 3 * D * hidden  # SwiGLU gate, up, down; no bias
    )
    assert sum(p.numel() for p in block.parameters()) == expected


def test_bad_arguments_give_clear_errors() -> None:
    block = make_block()
    x, valid, _ts, qts, _ = place(make_events(1, 4, D, seed=0), [4], 4)
    with pytest.raises(ValueError, match="query_timestamps"):
        block(x, valid=valid, query_timestamps=qts)
    with pytest.raises(ValueError, match="attn_norm"):
        FuXiBlock(D, H, qk_dim=DQK, v_dim=DV, max_len=MAX_LEN, attn_norm="n")  # type: ignore[arg-type]
