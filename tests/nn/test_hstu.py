"""HSTU layer, its pointwise attention and relative attention bias (reference/PEERS.md §1)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from argusrec.nn.hstu import (
    HSTULayer,
    RelativeAttentionBias,
    hstu_attention,
    hstu_attention_reference,
    time_buckets,
)
from tests.nn import make_events, place

D, H, DQK, DV, MAX_LEN = 12, 2, 5, 4, 16


def make_layer(variant: str = "research", **kwargs: object) -> HSTULayer:
    torch.manual_seed(0)
    layer = HSTULayer(D, H, qk_dim=DQK, v_dim=DV, max_len=MAX_LEN, variant=variant, **kwargs)  # type: ignore[arg-type]
    if layer.rab is not None:
        # Larger than the N(0, 0.02) init so that position/time effects are far above float noise.
        with torch.no_grad():
            layer.rab.position_weight.normal_(0.0, 1.0)
            layer.rab.time_weight.normal_(0.0, 1.0)
    return layer.eval()


# ---------------------------------------------------------------- relative attention bias


def test_time_buckets_hand_values() -> None:
    dt = torch.tensor([0, 1, 2, 3, 10, 1_000_000, -10, -2, -1, 2**62])
    # ln(2)/0.301 = 2.30, ln(3)/0.301 = 3.65, ln(10)/0.301 = 7.65, ln(1e6)/0.301 = 45.9, ln(2^62)/0.301 = 142.8
    assert time_buckets(dt).tolist() == [0, 0, 2, 3, 7, 45, 7, 2, 0, 128]
    assert time_buckets(dt).dtype == torch.int64


def test_time_buckets_match_the_formula_on_a_log_grid() -> None:
    values = [int(10 ** (k / 7)) + 3 for k in range(120)]
    expected = [min(128, math.floor(math.log(max(v, 1)) / 0.301)) for v in values]
    assert time_buckets(torch.tensor(values)).tolist() == expected


def test_position_bias_is_toeplitz_over_i_minus_j() -> None:
    rab = RelativeAttentionBias(MAX_LEN)
    p = rab.position_bias(10)
    w = rab.position_weight
    assert p.shape == (10, 10)
    for i in range(10):
        for j in range(10):
            assert p[i, j] == w[i - j + MAX_LEN - 1]
    assert torch.equal(p[1:, 1:], p[:-1, :-1])  # constant along diagonals
    assert not torch.equal(p[0, 0], p[1, 0])  # but not constant overall
    # Offsets do not depend on N: a shorter matrix is a corner of a longer one (padding-invariant).
    assert torch.equal(rab.position_bias(6), rab.position_bias(10)[4:, 4:])
    with pytest.raises(ValueError, match="max_len"):
        rab.position_bias(MAX_LEN + 1)


def test_time_bias_uses_query_minus_key_timestamps() -> None:
    rab = RelativeAttentionBias(MAX_LEN)
    ts = torch.tensor([[100, 110, 1_000_110]])
    qts = torch.tensor([[110, 1_000_110, 1_000_112]])
    t = rab.time_bias(ts, qts)
    w = rab.time_weight
    assert t.shape == (1, 3, 3)
    # query 0 predicts t=110: gaps to keys 100, 110, 1_000_110 are 10, 0, -1e6 → buckets 7, 0, 45
    assert torch.equal(t[0, 0], w[torch.tensor([7, 0, 45])])
    # query 2 predicts t=1_000_112: gap to key 2 is 2 → bucket 2
    assert t[0, 2, 2] == w[2]
    full = rab(3, ts, qts)
    assert torch.allclose(full, rab.position_bias(3)[None] + t)
    assert rab(3).shape == (1, 3, 3)


def test_rab_has_no_head_axis_and_is_shared_by_heads() -> None:
    rab = RelativeAttentionBias(MAX_LEN, num_time_buckets=128)
    assert rab.position_weight.shape == (2 * MAX_LEN - 1,)
    assert rab.time_weight.shape == (129,)
    # With Q = K = 0 the weights are SiLU(rab)/n only: every head sees the same bias, so equal V per head
    # gives equal outputs per head, and the value is computable by hand.
    b, n, heads = 2, 5, 3
    q = torch.zeros(b, n, heads, 4)
    v = torch.randn(b, n, 1, 2).expand(b, n, heads, 2)
    bias = torch.randn(b, n, n)
    valid = torch.ones(b, n, dtype=torch.bool)
    out = hstu_attention(q, q, v, bias, valid, 7.0)
    for h in range(1, heads):
        assert torch.allclose(out[:, :, h], out[:, :, 0])
    by_hand = (F.silu(bias) / 7.0 * torch.ones(n, n).tril()) @ v[:, :, 0]
    assert torch.allclose(out[:, :, 0], by_hand, atol=1e-6)


# ---------------------------------------------------------------- attention vs reference


def test_reference_matches_explicit_loops() -> None:
    g = torch.Generator().manual_seed(3)
    b, n, heads, dq, dv = 2, 4, 2, 3, 2
    q, k = torch.randn(b, n, heads, dq, generator=g), torch.randn(b, n, heads, dq, generator=g)
    v = torch.randn(b, n, heads, dv, generator=g)
    rab = torch.randn(b, n, n, generator=g)
    valid = torch.tensor([[False, True, True, True], [True, False, True, True]])
    out = hstu_attention_reference(q, k, v, rab, valid, 3.0, alpha=0.5)
    expected = torch.zeros(b, n, heads, dv)
    for bb in range(b):
        for h in range(heads):
            for i in range(n):
                for j in range(i + 1):
                    if valid[bb, i] and valid[bb, j]:
                        s = 0.5 * float(q[bb, i, h] @ k[bb, j, h]) + float(rab[bb, i, j])
                        expected[bb, i, h] += s / (1 + math.exp(-s)) / 3.0 * v[bb, j, h]
    assert torch.allclose(out, expected, atol=1e-6)


@pytest.mark.parametrize(
    ("b", "n", "heads", "bias", "divisor", "alpha"),
    [
        (1, 1, 1, "none", "float", 1.0),
        (3, 7, 2, "batch", "float", 1.0),
        (2, 9, 4, "shared", "tensor", 1.0),
        (4, 16, 3, "batch", "tensor", 1 / math.sqrt(5)),
        (2, 5, 1, "none", "tensor", 0.3),
    ],
)
def test_fast_attention_matches_reference(b: int, n: int, heads: int, bias: str, divisor: str, alpha: float) -> None:
    g = torch.Generator().manual_seed(b * 100 + n)
    q, k = torch.randn(b, n, heads, 5, generator=g), torch.randn(b, n, heads, 5, generator=g)
    v = torch.randn(b, n, heads, 3, generator=g)
    rab = {"none": None, "batch": torch.randn(b, n, n, generator=g), "shared": torch.randn(1, n, n, generator=g)}[bias]
    valid = torch.rand(b, n, generator=g) > 0.3  # arbitrary layout, holes included
    valid[0] = True
    nn_div = valid.cumsum(1).clamp(min=1).float() if divisor == "tensor" else float(n + 3)
    fast = hstu_attention(q, k, v, rab, valid, nn_div, alpha=alpha)
    ref = hstu_attention_reference(q, k, v, rab, valid, nn_div, alpha=alpha)
    assert fast.shape == (b, n, heads, 3)
    assert torch.allclose(fast, ref, atol=1e-5)
    assert torch.all(fast[~valid] == 0)


def _bias_by_hand(layer: HSTULayer, ts: torch.Tensor | None, qts: torch.Tensor | None, n: int) -> torch.Tensor:
    rab = layer.rab
    assert rab is not None
    b = 1 if ts is None else ts.shape[0]
    out = torch.zeros(b, n, n)
    for bb in range(b):
        for i in range(n):
            for j in range(n):
                out[bb, i, j] = rab.position_weight[i - j + layer.max_len - 1]
                if ts is not None and qts is not None:
                    dt = abs(int(qts[bb, i]) - int(ts[bb, j]))
                    out[bb, i, j] += rab.time_weight[min(128, math.floor(math.log(max(dt, 1)) / 0.301))]
    return out


def layer_by_formula(layer: HSTULayer, x, valid, ts, qts) -> torch.Tensor:  # type: ignore[no-untyped-def]
    """PEERS.md §1 written out from the layer's parameters, with the einsum reference attention."""
    b, n, _ = x.shape
    hv, hq = H * DV, H * DQK
    x = x * valid[..., None]
    research = layer.variant == "research"
    ln_in = layer.input_norm
    normed = F.layer_norm(x, (D,), ln_in.weight, ln_in.bias, eps=1e-6)
    proj = normed @ layer.uvqk.weight.T + (0 if layer.uvqk.bias is None else layer.uvqk.bias)
    if research:
        proj = F.silu(proj)
    u, v, q, k = proj.split([hv, hv, hq, hq], dim=-1)
    if not research:
        u = F.silu(u)
    bias = _bias_by_hand(layer, ts, qts, n) if layer.rab is not None else None
    alpha = 1.0 if research else 1 / math.sqrt(DQK)
    attn = hstu_attention_reference(
        q.reshape(b, n, H, DQK), k.reshape(b, n, H, DQK), v.reshape(b, n, H, DV), bias, valid, MAX_LEN, alpha=alpha
    ).reshape(b, n, hv)
    ln_a = layer.attn_norm_layer
    gated = u * F.layer_norm(attn, (hv,), ln_a.weight, ln_a.bias, eps=1e-6)
    if not research:
        gated = torch.cat([u, attn, gated], dim=-1)
    y = x + gated @ layer.out.weight.T + (0 if layer.out.bias is None else layer.out.bias)
    return y * valid[..., None]


@pytest.mark.parametrize("variant", ["research", "production"])
@pytest.mark.parametrize("with_time", [True, False])
def test_layer_matches_the_written_out_formula(variant: str, with_time: bool) -> None:
    layer = make_layer(variant)
    if variant == "production":
        with torch.no_grad():  # move affine LN params and biases off their init so they are exercised
            for p in (layer.input_norm.weight, layer.input_norm.bias, layer.attn_norm_layer.weight, layer.uvqk.bias):
                p.add_(torch.randn_like(p) * 0.3)
    x, valid, ts, qts, _ = place(make_events(3, 7, D, seed=5), [7, 4, 1], 7)
    x = torch.where(valid[..., None], x, torch.zeros_like(x))  # the formula multiplies, so no NaN here
    kwargs = {"timestamps": ts, "query_timestamps": qts} if with_time else {}
    out = layer(x, valid=valid, **kwargs)
    expected = layer_by_formula(layer, x, valid, ts if with_time else None, qts if with_time else None)
    assert torch.allclose(out, expected, atol=1e-5)


def test_attention_fn_can_be_swapped_for_the_reference() -> None:
    layer = make_layer()
    x, valid, ts, qts, _ = place(make_events(2, 6, D, seed=2), [6, 3], 8)
    fast = layer(x, valid=valid, timestamps=ts, query_timestamps=qts)
    layer.attention_fn = hstu_attention_reference
    assert torch.allclose(layer(x, valid=valid, timestamps=ts, query_timestamps=qts), fast, atol=1e-5)


# ---------------------------------------------------------------- causality


@pytest.mark.parametrize("variant", ["research", "production"])
def test_later_events_never_change_earlier_outputs(variant: str) -> None:
    """What may change when event k changes (one layer, next-timestamp convention):

    * its item vector x[k]: outputs >= k only;
    * its timestamp: ts[k] is a key time (rows >= k) and the query time of row k − 1 (query_timestamps[k − 1]
      is event k's time), so outputs >= k − 1 may change and outputs < k − 1 may not;
    * query_timestamps[k] alone (the time of event k + 1): row k only.
    """
    layer = make_layer(variant)
    x, valid, ts, qts, _ = place(make_events(2, 10, D, seed=7), [10, 10], 10)
    base = layer(x, valid=valid, timestamps=ts, query_timestamps=qts)
    k = 6

    x2 = x.clone()
    x2[:, k] += 1.0
    out = layer(x2, valid=valid, timestamps=ts, query_timestamps=qts)
    assert torch.equal(out[:, :k], base[:, :k])
    assert not torch.allclose(out[:, k], base[:, k])

    ts2, qts2 = ts.clone(), qts.clone()
    ts2[:, k:] += 5_000_000  # event k (and everything after it) happens much later
    qts2[:, k - 1 :] += 5_000_000
    out = layer(x, valid=valid, timestamps=ts2, query_timestamps=qts2)
    assert torch.equal(out[:, : k - 1], base[:, : k - 1])
    assert not torch.allclose(out[:, k - 1], base[:, k - 1])  # row k − 1 knows when event k happens

    qts3 = qts.clone()
    qts3[:, k] += 5_000_000
    out = layer(x, valid=valid, timestamps=ts, query_timestamps=qts3)
    changed = ~torch.isclose(out, base).all(dim=-1).all(dim=0)  # (N,)
    assert changed.tolist() == [i == k for i in range(10)]


def test_causality_holds_through_a_stack() -> None:
    layers = [make_layer(), make_layer("production")]
    x, valid, ts, qts, _ = place(make_events(1, 9, D, seed=8), [9], 9)

    def run(inp: torch.Tensor) -> torch.Tensor:
        for layer in layers:
            inp = layer(inp, valid=valid, timestamps=ts, query_timestamps=qts)
        return inp

    x2 = x.clone()
    x2[:, 5:] = torch.randn(1, 4, D)
    assert torch.equal(run(x2)[:, :5], run(x)[:, :5])


# ---------------------------------------------------------------- padding


@pytest.mark.parametrize("variant", ["research", "production"])
@pytest.mark.parametrize("attn_norm", ["max_len", "valid_keys"])
def test_padding_amount_and_values_do_not_change_real_outputs(variant: str, attn_norm: str) -> None:
    """With n = max_len or the valid-key count, real outputs are the same for any padding and length N."""
    layer = make_layer(variant, attn_norm=attn_norm)
    events = make_events(3, 8, D, seed=11)
    lengths = [8, 5, 2]
    results = []
    for n, layout, seed in [(8, "left", 1), (12, "left", 2), (16, "left", 3), (13, "right", 4)]:
        x, valid, ts, qts, spans = place(events, lengths, n, layout=layout, seed=seed)
        out = layer(x, valid=valid, timestamps=ts, query_timestamps=qts)
        assert torch.isfinite(out).all()
        assert torch.all(out[~valid] == 0)
        results.append([out[b, span] for b, span in enumerate(spans)])
    for other in results[1:]:
        for got, want in zip(other, results[0], strict=True):
            assert torch.allclose(got, want, atol=1e-5)


def test_padded_len_is_layout_invariant_at_equal_n_and_scales_attention_by_n() -> None:
    """attn_norm='padded_len' (the literal n = N): any layout at equal N gives the same real outputs;
    across N the attention output A·V of a real row scales exactly as 1/N (LayerNorm then hides most of it)."""
    layer = make_layer(attn_norm="padded_len")
    captured: list[torch.Tensor] = []

    def spy(*args: object, **kwargs: object) -> torch.Tensor:
        out = hstu_attention(*args, **kwargs)  # type: ignore[arg-type]
        captured.append(out)
        return out

    layer.attention_fn = spy
    events = make_events(2, 6, D, seed=12)
    outs, attns = [], []
    for n, layout in [(10, "left"), (10, "right"), (15, "left")]:
        x, valid, ts, qts, spans = place(events, [6, 3], n, layout=layout)
        out = layer(x, valid=valid, timestamps=ts, query_timestamps=qts)
        outs.append([out[b, s] for b, s in enumerate(spans)])
        attns.append([captured[-1][b, s] for b, s in enumerate(spans)])
    for got, want in zip(outs[1], outs[0], strict=True):
        assert torch.allclose(got, want, atol=1e-5)
    for got, want in zip(attns[2], attns[0], strict=True):
        assert torch.allclose(got * 15, want * 10, atol=1e-6)
        assert not torch.allclose(got, want)


@pytest.mark.parametrize("variant", ["research", "production"])
def test_fully_padded_rows_and_nan_padding_stay_finite_and_zero(variant: str) -> None:
    layer = make_layer(variant)
    x, valid, ts, qts, _ = place(make_events(3, 5, D, seed=4), [5, 0, 2], 6)
    x[1] = float("nan")
    out = layer(x, valid=valid, timestamps=ts, query_timestamps=qts)
    assert torch.isfinite(out).all()
    assert torch.all(out[~valid] == 0)
    assert torch.all(out[1] == 0)
    assert out[valid].abs().sum() > 0


# ---------------------------------------------------------------- parameters


@pytest.mark.parametrize("variant", ["research", "production"])
def test_gradient_reaches_every_parameter(variant: str) -> None:
    layer = make_layer(variant).train()
    x, valid, ts, qts, _ = place(make_events(2, 7, D, seed=9), [7, 4], 8)
    out = layer(x, valid=valid, timestamps=ts, query_timestamps=qts)
    (out * torch.randn_like(out)).sum().backward()
    for name, p in layer.named_parameters():
        assert p.grad is not None, name
        assert p.grad.abs().sum() > 0, name
        assert torch.isfinite(p.grad).all(), name


@pytest.mark.parametrize(
    ("variant", "rab", "linear_bias", "expected"),
    [
        # research: W1 D·H(2dv+2dqk), W2 H·dv·D + D, rab (2·max_len − 1) + 129, LNs parameter-free
        ("research", True, None, D * H * (2 * DV + 2 * DQK) + H * DV * D + D + (2 * MAX_LEN - 1) + 129),
        ("research", False, None, D * H * (2 * DV + 2 * DQK) + H * DV * D + D),
        ("research", False, False, D * H * (2 * DV + 2 * DQK) + H * DV * D),
        ("research", False, True, (D + 1) * H * (2 * DV + 2 * DQK) + H * DV * D + D),
        # production: LN(D) 2D, W1 + bias, LN(H·dv) 2·H·dv, W2 3·H·dv·D without bias
        ("production", False, None, 2 * D + (D + 1) * H * (2 * DV + 2 * DQK) + 2 * H * DV + 3 * H * DV * D),
        (
            "production",
            True,
            True,
            2 * D + (D + 1) * H * (2 * DV + 2 * DQK) + 2 * H * DV + 3 * H * DV * D + D + (2 * MAX_LEN - 1) + 129,
        ),
    ],
)
def test_parameter_count(variant: str, rab: bool, linear_bias: bool | None, expected: int) -> None:
    layer = HSTULayer(D, H, qk_dim=DQK, v_dim=DV, max_len=MAX_LEN, variant=variant, rab=rab, linear_bias=linear_bias)  # type: ignore[arg-type]
    assert sum(p.numel() for p in layer.parameters()) == expected


def test_bad_arguments_give_clear_errors() -> None:
    layer = make_layer()
    x, valid, ts, _qts, _ = place(make_events(1, 4, D, seed=0), [4], 4)
    with pytest.raises(ValueError, match="query_timestamps"):
        layer(x, valid=valid, timestamps=ts)
    with pytest.raises(ValueError, match="max_len"):
        big = torch.randn(1, MAX_LEN + 1, D)
        layer(big, valid=torch.ones(1, MAX_LEN + 1, dtype=torch.bool))
    with pytest.raises(ValueError, match="variant"):
        HSTULayer(D, H, qk_dim=DQK, v_dim=DV, max_len=MAX_LEN, variant="v2")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="attn_norm"):
        HSTULayer(D, H, qk_dim=DQK, v_dim=DV, max_len=MAX_LEN, attn_norm="softmax")  # type: ignore[arg-type]
