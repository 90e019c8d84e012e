"""Position-wise layers on the real tokens only (argusrec.nn.tokens) give what the padded layout gives."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import nn

from argusrec.nn.frequency import BSARecBlock
from argusrec.nn.fuxi import FuXiBlock
from argusrec.nn.hstu import HSTULayer
from argusrec.nn.tokens import RealTokens
from argusrec.nn.transformer import TransformerEncoder, llama_blocks, sasrec_blocks

D, H = 16, 4
STACKS: dict[str, Callable[[], nn.Module]] = {
    "sasrec": lambda: TransformerEncoder(sasrec_blocks(2, D, H), D, final_norm="layer"),
    "sasrec_normed": lambda: TransformerEncoder(sasrec_blocks(2, D, H, residual="normed"), D, final_norm="layer"),
    "llama": lambda: TransformerEncoder(llama_blocks(2, D, H), D, final_norm="rms"),  # rotary positions
    "hstu": lambda: TransformerEncoder(
        [HSTULayer(D, H, qk_dim=4, v_dim=4, max_len=8, variant=v) for v in ("research", "production")], D
    ),
    "fuxi": lambda: TransformerEncoder([FuXiBlock(D, H, qk_dim=4, v_dim=4, max_len=8) for _ in range(2)], D),
    "bsarec": lambda: TransformerEncoder(
        [BSARecBlock(D, H, ffn_dim=2 * D, window=8, keep=3, alpha=0.7) for _ in range(2)],
        D,
        final_norm=None,
    ),
}
TIMED = {"hstu", "fuxi"}  # blocks with a time bias: given timestamps


def _valid() -> torch.Tensor:
    rows = ["......xx", "xxxxxxxx", "..x.xxx.", "xxx.....", "........"]  # left, none, holes, right, empty
    return torch.tensor([[c == "x" for c in r] for r in rows])


def test_pack_unpack_round_trip_and_zero_padding() -> None:
    valid = _valid()
    x = torch.randn(*valid.shape, 3, 2)
    tokens = RealTokens.of(valid)
    assert tokens is not None
    packed = tokens.pack(x)
    assert packed.shape == (int(valid.sum()), 3, 2)
    torch.testing.assert_close(packed, x[valid])  # row by row, in column order
    back = tokens.unpack(packed)
    torch.testing.assert_close(back[valid], x[valid])
    assert torch.equal(back[~valid], torch.zeros_like(back[~valid]))


def test_no_packing_without_padding_or_off_the_cpu() -> None:
    assert RealTokens.of(torch.ones(2, 4, dtype=torch.bool)) is None
    assert RealTokens.of(_valid()) is not None
    if torch.cuda.is_available():
        assert RealTokens.of(_valid().cuda()) is None


def _set_packing(model: nn.Module, on: bool) -> None:
    blocks = [m for m in model.modules() if hasattr(m, "pack_real_tokens")]
    assert len(blocks) == 2
    for b in blocks:
        b.pack_real_tokens = on


@pytest.mark.parametrize("name", list(STACKS))
def test_packed_and_padded_layouts_give_the_same_outputs_and_gradients(name: str) -> None:
    torch.manual_seed(0)
    model = STACKS[name]().eval()  # no dropout: the two layouts draw their dropout masks differently
    valid = _valid()
    x = torch.randn(*valid.shape, D)
    x[~valid] = float("nan")  # whatever sits in padding never reaches a real token
    ts = torch.cumsum(torch.randint(1, 10_000, valid.shape), dim=1)
    times = {"timestamps": ts, "query_timestamps": ts + 60} if name in TIMED else {}
    results = []
    for on in (False, True):
        _set_packing(model, on)
        model.zero_grad()
        xi = x.clone().requires_grad_(True)
        out = model(xi, valid=valid, **times)
        (out[valid] @ torch.arange(D, dtype=torch.float32)).sin().sum().backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        results.append((out.detach(), xi.grad[valid].clone(), grads))
    (out0, gx0, g0), (out1, gx1, g1) = results
    assert torch.isfinite(out1).all()
    torch.testing.assert_close(out1[valid], out0[valid], atol=1e-5, rtol=1e-5)
    assert torch.equal(out1[~valid], torch.zeros_like(out1[~valid]))
    torch.testing.assert_close(gx1, gx0, atol=1e-5, rtol=1e-5)
    assert g0.keys() == g1.keys() and len(g0) == len(list(model.parameters()))
    for n in g0:  # float32 sums over tokens in another order: rounding grows with the gradient's scale (up to ~100
        # here; a CPU with other vector kernels moved some entries by 2e-5), a layout bug moves them by its order
        scale = max(1.0, g0[n].abs().max().item())
        torch.testing.assert_close(g1[n], g0[n], atol=1e-5 * scale, rtol=1e-4, msg=n)


def test_packing_is_used_on_padded_cpu_batches() -> None:
    """Non-vacuous: the block takes the packed path (its attention sees (T, D) inputs) on a padded batch."""
    block = sasrec_blocks(1, D, H)[0].eval()
    seen: list[tuple[int, ...]] = []
    block.attn.register_forward_pre_hook(lambda m, args, kwargs: seen.append(tuple(args[0].shape)), with_kwargs=True)
    valid = _valid()
    block(torch.randn(*valid.shape, D), valid=valid)
    assert seen == [(int(valid.sum()), D)]
    block.pack_real_tokens = False
    block(torch.randn(*valid.shape, D), valid=valid)
    assert seen[-1] == (*valid.shape, D)
