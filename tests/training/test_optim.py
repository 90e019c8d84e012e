"""AdamW parameter groups, lr schedules (hand-computed values) and global grad-norm clipping."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest
import torch
from torch import nn

from argusrec.config import OptimConfig, TrainConfig
from argusrec.training import Schedule, build_optimizer, build_scheduler, clip_gradients, fit, param_groups
from argusrec.training.logs import TRAIN_LOG
from tests.training import NextItemTask, Sampler, TinyModel, toy_batches

COS_QUARTER = 0.5 * (1 + math.cos(math.pi / 4))  # 0.853553...


@pytest.mark.parametrize(
    ("kind", "warmup", "total", "expected"),
    [
        # warmup (s + 1) / w, then cosine over the remaining total - w steps
        ("cosine", 2, 10, {0: 0.5, 1: 1.0, 2: 1.0, 4: COS_QUARTER, 6: 0.5, 10: 0.0, 15: 0.0}),
        ("linear", 4, 12, {0: 0.25, 1: 0.5, 3: 1.0, 4: 1.0, 8: 0.5, 10: 0.25, 12: 0.0, 20: 0.0}),
        ("constant", 3, 10, {0: 1 / 3, 1: 2 / 3, 2: 1.0, 3: 1.0, 100: 1.0}),
        ("constant", 0, 10, {0: 1.0, 9: 1.0}),
        ("cosine", 0, 4, {0: 1.0, 1: COS_QUARTER, 2: 0.5, 4: 0.0}),
    ],
)
def test_schedule_factors(kind: str, warmup: int, total: int, expected: dict[int, float]) -> None:
    fn = Schedule(kind, warmup, total)
    for step, want in expected.items():
        assert fn(step) == pytest.approx(want, abs=1e-12), f"{kind} step {step}"


def test_scheduler_drives_the_optimizer_lr_per_step() -> None:
    """The lr each optimizer update uses is base_lr x factor(update index)."""
    model = nn.Linear(3, 2)
    cfg = OptimConfig(lr=0.1, schedule="linear", warmup_steps=2)
    opt = build_optimizer(model, cfg)
    sched = build_scheduler(opt, cfg, total_steps=6)
    used = []
    for _ in range(7):
        used.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert used == pytest.approx([0.05, 0.1, 0.1, 0.075, 0.05, 0.025, 0.0])
    assert {g["lr"] for g in opt.param_groups} == {opt.param_groups[0]["lr"]}  # every group follows


def test_unknown_schedule_rejected() -> None:
    with pytest.raises(ValueError, match="unknown schedule"):
        Schedule("exponential", 0, 10)


def test_no_decay_on_biases_norms_embeddings() -> None:
    emb = nn.Embedding(10, 4)
    model = nn.Sequential(emb, nn.Linear(4, 4), nn.LayerNorm(4), nn.Linear(4, 10, bias=False))
    model[3].weight = emb.weight  # tied output projection: listed once, as an embedding
    groups = param_groups(model, 0.1)
    decay = {id(p) for p in groups[0]["params"]}
    plain = {id(p) for p in groups[1]["params"]}
    assert groups[0]["weight_decay"] == 0.1 and groups[1]["weight_decay"] == 0.0
    assert decay == {id(model[1].weight)}
    assert plain == {id(emb.weight), id(model[1].bias), id(model[2].weight), id(model[2].bias)}
    opt = build_optimizer(model, OptimConfig(weight_decay=0.1, betas=(0.8, 0.9)))
    assert sum(len(g["params"]) for g in opt.param_groups) == 5
    assert opt.param_groups[0]["betas"] == (0.8, 0.9)


def test_clip_gradients_bounds_the_global_norm() -> None:
    model = nn.Linear(4, 3)
    for p in model.parameters():
        p.grad = torch.full_like(p, 10.0)
    before = clip_gradients(model.parameters(), 1.0)
    assert before is not None and float(before) == pytest.approx(10.0 * math.sqrt(15))
    after = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in model.parameters()]))
    assert float(after) <= 1.0 + 1e-5 and float(after) == pytest.approx(1.0, rel=1e-4)
    # Direction is kept (all gradients scaled together), and clipping off leaves them alone.
    assert torch.allclose(model.weight.grad, model.bias.grad[:, None].expand_as(model.weight.grad))
    grads = [p.grad.clone() for p in model.parameters()]
    assert clip_gradients(model.parameters(), None) is None
    assert all(torch.equal(g, p.grad) for g, p in zip(grads, model.parameters(), strict=True))


def test_fit_logs_the_lr_each_step_used(tmp_path: Path) -> None:
    cfg = OptimConfig(lr=0.02, schedule="constant", warmup_steps=4, grad_clip=None)
    fit(TinyModel(), NextItemTask(Sampler()), toy_batches(), optim=cfg, run_dir=tmp_path, progress=False,
        train=TrainConfig(epochs=1, device="cpu", log_every=1, max_steps=5), tensorboard=False)  # fmt: skip
    with open(tmp_path / TRAIN_LOG, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [float(r["lr"]) for r in rows] == pytest.approx([0.005, 0.01, 0.015, 0.02, 0.02])
    assert all(r["grad_norm"] == "" for r in rows)  # clipping off: no norm computed
