"""ArgusTask: NIP + FP in one pass — learning, logQ wiring, positives-only NIP, NaN feedback, supervise mask."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

import argusrec.models.nip_loss as nip_loss
from argusrec.data.batching import ChunkBatches, assemble_batch, chunk_ranges
from argusrec.data.negatives import mixed_log_q
from argusrec.data.simulator import SimulationConfig
from argusrec.data.splits import temporal_cutoffs, temporal_split
from argusrec.data.store import SequenceStore
from argusrec.models.argus import Argus, build_argus
from argusrec.models.argus_task import SUPERVISE, ArgusTask
from argusrec.recipes.data import simulate
from tests.models import argus_for

MAX_LEN = 24


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> SequenceStore:
    path = tmp_path_factory.mktemp("sim") / "data"
    simulate(SimulationConfig(n_events=20_000, seed=3, n_items=200), path, latent=False, progress=False)
    return SequenceStore.open(path)


pytestmark = pytest.mark.usefixtures("one_thread")


def _kinds(store: SequenceStore) -> dict[str, str]:
    return {s: store.schema.feedback_kind(s).value for s in store.schema.feedback}


def _model(store: SequenceStore, variant: str = "simplified", seed: int = 0) -> Argus:
    return argus_for(store, variant, seed=seed, dim=32, heads=1, max_len=MAX_LEN)


def _task(store: SequenceStore, **kw: object) -> ArgusTask:
    args: dict = dict(
        n_items=store.n_items,
        context_fields=store.schema.context,
        feedback_inputs=store.schema.feedback,
        fp_kinds=_kinds(store),
        uniform_negatives=32,
        in_batch_negatives=True,
        logq=False,
    )
    args.update(kw)
    return ArgusTask(**args)


def _batches(store: SequenceStore, task: ArgusTask, batch_size: int = 32) -> ChunkBatches:
    offsets = store.offsets
    chunks = chunk_ranges(offsets[:-1], offsets[1:], MAX_LEN)
    return ChunkBatches(store, chunks, batch_size=batch_size, columns=task.columns(), seed=0)


def _tensors(np_batch: dict) -> dict[str, torch.Tensor]:
    return {k: torch.as_tensor(v) for k, v in np_batch.items()}


@pytest.mark.parametrize("variant", ["simplified", "full"])
def test_loss_is_finite_and_decreases_in_30_steps(store: SequenceStore, variant: str) -> None:
    task = _task(store)
    model = _model(store, variant)
    batches = _batches(store, task)
    held = _tensors(next(iter(batches.epoch(5))))

    def held_loss() -> float:
        # A fresh task with a fixed seed: the same negatives before and after training.
        with torch.no_grad():
            return float(_task(store).loss(model, held)[0])

    before = held_loss()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    steps = 0
    while steps < 30:
        for np_batch in batches.epoch(steps):
            loss, count = task.loss(model, _tensors(np_batch))
            assert math.isfinite(loss.item()) and int(count) == int(np_batch["mask"].sum())
            opt.zero_grad()
            loss.backward()
            opt.step()
            steps += 1
            if steps == 30:
                break
    after = held_loss()
    assert after < before - 0.1, (before, after)


def test_components_add_up_and_fp_signals_are_reported(store: SequenceStore) -> None:
    task = _task(store, nip_weight=0.5, fp_weights={"like": 3.0})
    batch = _tensors(next(iter(_batches(store, task).epoch(0))))
    with torch.no_grad():
        parts = task.components(_model(store), batch)
    fp = sum(parts[f"fp/{s}"] * (3.0 if s == "like" else 1.0) for s in store.schema.feedback)
    assert float(parts["fp"]) == pytest.approx(float(fp), rel=1e-6)
    assert float(parts["total"]) == pytest.approx(0.5 * float(parts["nip"]) + float(parts["fp"]), rel=1e-6)


def test_logq_is_passed_only_when_enabled_and_is_the_mixed_sampler_log_q(
    store: SequenceStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[dict] = []
    real = nip_loss.sampled_softmax_loss

    def spy(*args: object, **kwargs: object) -> torch.Tensor:
        seen.append({"args": args, **kwargs})
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(nip_loss, "sampled_softmax_loss", spy)
    freq = torch.arange(store.n_items + 1, dtype=torch.float64)
    freq[0] = 0
    model = _model(store)
    off = _task(store)
    batch = _tensors(next(iter(_batches(store, off).epoch(0))))
    off.loss(model, batch)
    assert seen[-1]["positive_log_q"] is None and seen[-1]["negative_log_q"] is None
    on = _task(store, logq=True, item_freq=freq)
    on.loss(model, batch)
    call = seen[-1]
    positive_ids, negative_ids = call["args"][2], call["args"][4]
    m = len(positive_ids)  # every NIP target is an in-batch draw
    expected_pos = mixed_log_q(positive_ids, freq, m, 32, store.n_items)
    torch.testing.assert_close(call["positive_log_q"], expected_pos)
    assert call["negative_log_q"].shape == negative_ids.shape
    assert call["temperature"] is not None and 0.01 <= call["temperature"].item() <= 100


@torch.no_grad()
def test_uniform_only_logq_is_a_constant_that_cancels(store: SequenceStore) -> None:
    """§3: log Q is subtracted from every candidate; with uniform negatives only it is the same for all."""
    model = _model(store)
    batch = _tensors(next(iter(_batches(store, _task(store)).epoch(0))))
    plain = _task(store, in_batch_negatives=False, logq=False).loss(model, batch)[0]
    corrected = _task(store, in_batch_negatives=False, logq=True).loss(model, batch)[0]
    assert float(corrected) == pytest.approx(float(plain), rel=1e-5)
    freq = torch.rand(store.n_items + 1, dtype=torch.float64) * 100
    mixed = _task(store, logq=True, item_freq=freq).loss(model, batch)[0]
    assert float(mixed) != pytest.approx(float(_task(store).loss(model, batch)[0]), rel=1e-4)


def test_nip_on_positives_supervises_only_positive_events(store: SequenceStore) -> None:
    task = _task(store, nip_on="positives", positive_signal="like", positive_threshold=0.5)
    assert "like" in task.columns()
    batch = _tensors(next(iter(_batches(store, task, batch_size=64).epoch(0))))
    n_pos = int(((batch["like"] >= 0.5) & batch["mask"]).sum())
    assert 0 < n_pos < int(batch["mask"].sum())
    loss, count = task.loss(_model(store), batch)
    assert int(count) == n_pos and math.isfinite(float(loss.detach()))
    with pytest.raises(ValueError, match="positive_signal"):
        _task(store, nip_on="positives")


def test_fp_ignores_nan_labels_exactly_like_unsupervised_events(store: SequenceStore) -> None:
    kinds = {"like": "binary"}
    task = _task(store, fp_kinds=kinds, nip_weight=0.0)
    model = _model(store)
    batch = _tensors(next(iter(_batches(store, task).epoch(0))))
    hidden = batch["mask"].clone()
    hidden[:, -5:] = False  # the last five events of every chunk: NaN like in one run, unsupervised in the other
    with_nan = dict(batch)
    with_nan["like"] = batch["like"].masked_fill(batch["mask"] & ~hidden, float("nan"))
    # The NaN'd events are the latest of each chunk (left padding), so by causality no supervised event's
    # prediction sees them as input: the two losses must agree exactly.
    a = task.components(model, with_nan)["fp"]
    b = task.components(model, {**batch, SUPERVISE: hidden})["fp"]
    assert math.isfinite(a.item()) and a.item() == pytest.approx(b.item(), rel=1e-6)
    a.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_supervise_mask_sets_the_count(store: SequenceStore) -> None:
    task = _task(store)
    np_batch = assemble_batch(store, store.offsets[:4], np.full(4, 10), columns=task.columns())
    sup = np.zeros_like(np_batch["mask"])
    sup[:, -3:] = True  # only the last three events of each window carry losses
    loss, count = task.loss(_model(store), _tensors({**np_batch, SUPERVISE: sup}))
    assert int(count) == 12 and math.isfinite(float(loss.detach()))


def test_sampler_state_round_trips(store: SequenceStore) -> None:
    a, b = _task(store, seed=1), _task(store, seed=2)
    a.nip.sampler.sample(5)
    b.load_state_dict(a.state_dict())
    assert torch.equal(a.nip.sampler.sample(7), b.nip.sampler.sample(7))


def test_works_on_a_split_store_without_context_or_feedback(tmp_path: Path, store: SequenceStore) -> None:
    """NIP only: no context fields, no feedback inputs, no FP signals."""
    cut = temporal_cutoffs(store, test_fraction=0.2)
    split = temporal_split(store, test_start=cut.test_start)
    torch.manual_seed(0)
    model = build_argus(
        variant="simplified", vocab_sizes={}, feedback_signals={}, n_items=store.n_items, dim=16, layers=1, heads=1,
        max_len=MAX_LEN,
    )  # fmt: skip
    task = ArgusTask(n_items=store.n_items, uniform_negatives=16, logq=False)
    lo, hi = split.train_ranges()
    chunks = chunk_ranges(lo, hi, MAX_LEN)
    np_batch = assemble_batch(store, chunks.start[:8], chunks.length[:8], columns=task.columns())
    assert task.columns() == ["item_id", "timestamp"]
    parts = task.components(model, _tensors(np_batch))
    assert float(parts["fp"].detach()) == 0.0 and float(parts["nip"].detach()) > 0
