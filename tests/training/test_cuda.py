"""CUDA paths against their CPU reference: every encoder and both ARGUS variants give the CPU's outputs on the
GPU (float32 closely, bf16 autocast within bf16 rounding); training on CUDA with bf16 autocast and
``torch.compile`` runs and learns; resume is exact on the GPU too. Skipped without CUDA (run on the device
machine when one is lent; CI has none)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from argusrec.config import LossConfig, ModelConfig
from argusrec.models.builders import build_model
from argusrec.training import CHECKPOINT_DIR, LAST, load_checkpoint
from argusrec.training.device import autocast
from argusrec.training.logs import TRAIN_LOG
from tests.models.test_argus import CONFIGS, make
from tests.models.test_argus import batch as argus_batch
from tests.training.test_loop import STEPS_PER_EPOCH, assert_same_run, read_csv, run

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]
CUDA = torch.device("cuda")


@pytest.fixture(autouse=True)
def _exact_float32():
    """No TF32 in the float32 comparisons: the reference is exact float32 arithmetic."""
    old = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old


def rel_err(out: torch.Tensor, ref: torch.Tensor) -> float:
    out, ref = out.detach().float().cpu(), ref.detach().float().cpu()
    assert torch.isfinite(out).all()
    return float((out - ref).norm() / ref.norm().clamp_min(1e-12))


def _to(x, device):
    if isinstance(x, dict):
        return {k: _to(v, device) for k, v in x.items()}
    return x.to(device)


@pytest.mark.parametrize("kind", ["sasrec", "llama", "hstu", "fuxi"])
def test_encoders_match_cpu_reference(kind: str) -> None:
    torch.manual_seed(0)
    model = build_model(
        ModelConfig(kind=kind, dim=32, layers=2, heads=2, dropout=0.0), LossConfig(), n_items=50, max_len=20
    ).eval()
    g = torch.Generator().manual_seed(1)
    valid = torch.ones(4, 16, dtype=torch.bool)
    valid[0, :5] = False
    items = torch.randint(1, 51, (4, 16), generator=g).masked_fill(~valid, 0)
    ts = torch.cumsum(torch.randint(1, 5000, (4, 16), generator=g), dim=1)
    query = torch.cat([ts[:, 1:], ts[:, -1:] + 60], dim=1)
    with torch.no_grad():
        ref = model(items, valid, ts, query)
        gpu = model.to(CUDA)
        out32 = gpu(*(_to(t, CUDA) for t in (items, valid, ts, query)))
        with autocast(CUDA, True):
            out16 = gpu(*(_to(t, CUDA) for t in (items, valid, ts, query)))
    assert rel_err(out32, ref) < 1e-4
    assert 0 < rel_err(out16, ref) < 3e-2  # bf16 really ran (not exact), within its rounding


@pytest.mark.parametrize(("variant", "encoder"), CONFIGS)
def test_argus_matches_cpu_reference(variant: str, encoder: str) -> None:
    model, b = make(variant, encoder), argus_batch()
    with torch.no_grad():
        ref = model(b["items"], b["contexts"], b["feedback"], b["timestamps"], b["valid"])
        model = model.to(CUDA)
        g = _to(b, CUDA)
        out32 = model(g["items"], g["contexts"], g["feedback"], g["timestamps"], g["valid"])
        with autocast(CUDA, True):
            out16 = model(g["items"], g["contexts"], g["feedback"], g["timestamps"], g["valid"])
    valid = b["valid"]
    assert rel_err(out32.nip_query[valid], ref.nip_query[valid]) < 1e-4
    assert rel_err(out16.nip_query[valid], ref.nip_query[valid]) < 3e-2
    for s in ref.fp_logits:
        assert rel_err(out32.fp_logits[s][valid], ref.fp_logits[s][valid]) < 1e-4
        assert rel_err(out16.fp_logits[s][valid], ref.fp_logits[s][valid]) < 5e-2


@pytest.mark.parametrize("compile_model", [False, True], ids=["eager", "compiled"])
def test_training_on_cuda_with_bf16_learns(tmp_path: Path, compile_model: bool) -> None:
    _, result = run(tmp_path, device="cuda", bf16=True, compile=compile_model, epochs=4)
    losses = [float(r["loss"]) for r in read_csv(tmp_path / TRAIN_LOG)]
    assert result.steps == len(losses) == 4 * STEPS_PER_EPOCH
    assert all(map(math.isfinite, losses))
    assert sum(losses[-STEPS_PER_EPOCH:]) < sum(losses[:STEPS_PER_EPOCH])  # last epoch below the first


def test_resume_on_cuda_is_exact(tmp_path: Path) -> None:
    ref_dir, stop_dir = tmp_path / "ref", tmp_path / "stop"
    ref = run(ref_dir, device="cuda", bf16=False)
    run(stop_dir, device="cuda", bf16=False, max_steps=STEPS_PER_EPOCH + 2)
    assert load_checkpoint(stop_dir / CHECKPOINT_DIR / LAST)["progress"]["step"] == STEPS_PER_EPOCH + 2
    resumed = run(stop_dir, device="cuda", bf16=False, init_seed=999, sampler_seed=42)
    assert_same_run(ref_dir, ref, stop_dir, resumed)
