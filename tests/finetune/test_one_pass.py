"""One-pass fine-tuning: chunks, batches, lagged states, equality with the impression-level reference, training."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from argusrec.config import OptimConfig, TrainConfig
from argusrec.data.store import SequenceStore
from argusrec.errors import ArgusrecError
from argusrec.eval.feedback import pair_accuracy
from argusrec.finetune import (
    ImpressionBatches,
    PairConfig,
    PairwiseTask,
    TwoTower,
    build_pairs,
    evaluate_pairs,
    finetune_chunks,
    lagged_state_columns,
)
from argusrec.finetune.reference import reference_loss, reference_scores, reference_state_columns
from argusrec.training.loop import Task, fit
from tests.finetune.conftest import MAX_LEN, make_argus

LAG = 1800  # half an hour: the simulator's users have several sessions a day


def _tensors(np_batch: dict) -> dict[str, torch.Tensor]:
    return {k: torch.as_tensor(v) for k, v in np_batch.items()}


@pytest.fixture(scope="module")
def chunks(sim_store: SequenceStore):
    pairs = build_pairs(sim_store, PairConfig.music())
    return finetune_chunks(pairs, sim_store.offsets, max_len=MAX_LEN, min_len=4, max_impressions=24)


def _batches(store, chunks, model, batch_size=4, shuffle=False) -> ImpressionBatches:
    return ImpressionBatches(store, chunks, batch_size=batch_size, columns=PairwiseTask.columns(model), shuffle=shuffle)


# ------------------------------------------------------------------------------------------------ lagged states
def test_lagged_state_columns_by_hand() -> None:
    ts = torch.tensor([[0, 0, 100, 200, 200, 300, 400], [100, 200, 300, 0, 0, 0, 0]])  # left / right padding
    valid = torch.tensor([[0, 0, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0, 0]], dtype=torch.bool)
    imp_time = torch.tensor([[300, 300, 300, 300, 400], [300, 300, 300, 300, 300]])
    imp_limit = torch.tensor([[5, 5, 5, 5, 2], [2, 2, 2, 2, 0]])
    imp_mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 1, 0]], dtype=torch.bool)

    def run(lag: int) -> tuple[list, list]:
        col, ok = lagged_state_columns(ts, valid, imp_time, imp_limit, imp_mask, lag)
        return col.tolist(), ok.tolist()

    col, ok = run(0)
    assert col[0][:4] == [4, 4, 4, 4] and ok[0][:4] == [True] * 4  # t = 300 is the group's own first event: before it
    assert ok[0][4] is False  # limit = first real column: nothing before the request
    assert col[1][:4] == [1] * 4 and ok[1] == [True, True, True, True, False]  # right padding; padded slot off
    col, ok = run(100)
    assert col[0][0] == 4  # cut 200: the last of the two events at t = 200
    col, ok = run(150)
    assert col[0][0] == 2 and col[1][0] == 0  # cut 150
    col, ok = run(250)
    assert ok[0][:4] == [False] * 4 and ok[1][:4] == [False] * 4  # cut 50: no state in the window


def test_chunks_respect_limits(sim_store: SequenceStore, chunks) -> None:
    n_imp, lengths = chunks.n_impressions, chunks.history.length
    assert n_imp.max() <= 24 and lengths.max() <= MAX_LEN and lengths.min() >= 4
    assert chunks.stats["impressions"] == n_imp.sum() and chunks.stats["pairs"] == chunks.n_pairs.sum()
    assert chunks.stats["impressions"] + chunks.stats["dropped_impressions"] == chunks.stats["impressions_in"]
    # every impression of a chunk lies inside its history window and belongs to the chunk's user
    owner = np.repeat(np.arange(len(chunks)), n_imp)
    start, end = chunks.history.start[owner], chunks.history.end[owner]
    assert np.all((chunks.imp_row >= start) & (chunks.imp_row < end))
    assert np.all(chunks.imp_first <= chunks.imp_row)
    # every impression is used once: rows are unique
    assert len(np.unique(chunks.imp_row)) == len(chunks.imp_row)
    # pairs point into their own chunk
    assert np.all(chunks.pair_better < np.repeat(n_imp, chunks.n_pairs))
    # a tighter impression cap gives more, smaller chunks and drops the groups that do not fit
    small = finetune_chunks(
        build_pairs(sim_store, PairConfig.music()), sim_store.offsets, max_len=MAX_LEN, max_impressions=6
    )
    assert small.n_impressions.max() <= 6 and len(small) > len(chunks) and small.stats["dropped_large_groups"] > 0
    with pytest.raises(ArgusrecError, match="no fine-tuning examples left"):
        finetune_chunks(build_pairs(sim_store, PairConfig.music()), sim_store.offsets, max_len=10**6, min_len=10**6)


def test_batch_pairs_index_the_right_items(sim_store: SequenceStore, chunks) -> None:
    model = TwoTower(make_argus(sim_store))
    batch = next(_batches(sim_store, chunks, model, batch_size=5).epoch(0))
    m = batch["imp_item"].shape[1]
    ids = np.arange(5)
    for b in range(5):
        lo, hi = chunks.pair_offsets[ids[b]], chunks.pair_offsets[ids[b] + 1]
        sel = (batch["pair_better"] // m) == b
        rows = chunks.imp_row[chunks.imp_offsets[b] + chunks.pair_better[lo:hi]]
        assert batch["imp_item"].reshape(-1)[batch["pair_better"][sel]].tolist() == sim_store.items[rows].tolist()
    # imp_limit is the column of the group's first event in the padded batch
    b, slot = 0, 0
    col = batch["imp_limit"][b, slot]
    assert batch["timestamp"][b, col] == batch["imp_time"][b, slot]


def test_select_reads_one_ranks_share_without_the_rest(sim_store: SequenceStore, chunks) -> None:
    """A data-parallel rank reads batches 1, 3 of the epoch through ``select``: the same arrays as the epoch's."""
    model = TwoTower(make_argus(sim_store))
    source = ImpressionBatches(
        sim_store, chunks, batch_size=3, columns=PairwiseTask.columns(model), shuffle=True, seed=4, bucket=2
    )
    assert len(source) >= 4
    every = list(source.epoch(1))
    picked = list(source.select(1, [3, 1]))
    for got, want in zip(picked, [every[3], every[1]], strict=True):
        assert got.keys() == want.keys()
        assert all(np.array_equal(got[k], want[k]) for k in got)
    with pytest.raises(ValueError, match="batch index"):
        list(source.select(1, [len(source)]))


# ------------------------------------------------------------------------------------------------ the lag
@pytest.mark.parametrize("variant", ["simplified", "full"])
def test_lag_never_uses_later_events(sim_store: SequenceStore, chunks, variant: str) -> None:
    """Perturb every event after t - lag of an impression: its score (and earlier impressions') must not move;
    perturbing the state event itself must."""
    model = TwoTower(make_argus(sim_store, variant)).eval()
    task = PairwiseTask(lag=LAG)
    batch = _tensors(next(_batches(sim_store, chunks, model, batch_size=6).epoch(0)))
    with torch.no_grad():
        base, ok = task.scores(model, batch)
    gen = torch.Generator().manual_seed(0)
    checked = 0
    for b in range(batch["mask"].shape[0]):
        for j in torch.nonzero(ok[b]).flatten().tolist()[::5]:
            cut = int(batch["imp_time"][b, j]) - LAG
            later = batch["mask"][b] & (batch["timestamp"][b] > cut)  # (N,)
            p = {k: v.clone() for k, v in batch.items()}
            n = int(later.sum())
            p["item_id"][b, later] = torch.randint(1, sim_store.n_items + 1, (n,), generator=gen).to(p["item_id"].dtype)
            for c in ("surface", "device"):
                p[c][b, later] = torch.randint(1, len(sim_store.vocab(c)) + 1, (n,), generator=gen).to(p[c].dtype)
            for s in ("like", "dislike", "skip"):
                p[s][b, later] = 1.0 - p[s][b, later]
            p["played_ratio"][b, later] = torch.rand(n, generator=gen)
            p["timestamp"][b, later] += 3 * 86_400  # later events move later still: order kept
            with torch.no_grad():
                scores, ok2 = task.scores(model, p)
            same = ok[b] & (batch["imp_time"][b] <= batch["imp_time"][b, j])  # this and earlier impressions
            assert torch.equal(ok2[b], ok[b])
            torch.testing.assert_close(scores[b, same], base[b, same], rtol=1e-5, atol=1e-6)
            checked += 1
            # control: changing the state event itself changes the score
            col, _ = lagged_state_columns(
                batch["timestamp"], batch["mask"], batch["imp_time"], batch["imp_limit"], batch["imp_mask"], LAG
            )
            q = {k: v.clone() for k, v in batch.items()}
            c = int(col[b, j])
            q["item_id"][b, c] = q["item_id"][b, c] % sim_store.n_items + 1
            with torch.no_grad():
                moved, _ = task.scores(model, q)
            assert not torch.isclose(moved[b, j], base[b, j], rtol=1e-6, atol=1e-7)
    assert checked >= 5


# ------------------------------------------------------------------------------------------------ reference
@pytest.mark.parametrize(
    ("variant", "encoder", "item_tower"),
    [("simplified", "transformer", "mlp"), ("full", "transformer", "nip"), ("simplified", "hstu", "mlp")],
)
def test_one_pass_equals_impression_level_reference(
    sim_store: SequenceStore, chunks, variant: str, encoder: str, item_tower: str
) -> None:
    model = TwoTower(make_argus(sim_store, variant, encoder=encoder), item_tower=item_tower).eval()  # type: ignore[arg-type]
    task = PairwiseTask(lag=LAG)
    batch = _tensors(next(_batches(sim_store, chunks, model, batch_size=3, shuffle=True).epoch(1)))
    with torch.no_grad():
        parts = task.components(model, batch)
    ref = reference_scores(model, batch, LAG)  # (B, M), NaN without a state
    assert torch.equal(~torch.isnan(ref), parts["has_state"])
    assert 0 < int(parts["has_state"].sum())
    torch.testing.assert_close(
        parts["scores"].double()[parts["has_state"]], ref[parts["has_state"]], rtol=1e-4, atol=1e-5
    )
    loss, used = reference_loss(model, batch, LAG)
    assert used == int(parts["n_pairs"])
    assert float(parts["total"]) == pytest.approx(loss, rel=1e-5, abs=1e-6)
    # the reference's plain scan finds the same state columns as the binary search
    col, ok = lagged_state_columns(
        batch["timestamp"], batch["mask"], batch["imp_time"], batch["imp_limit"], batch["imp_mask"], LAG
    )
    scan = reference_state_columns(batch, LAG)
    assert [[c if c is not None else -1 for c in row] for row in scan] == torch.where(ok, col, -1).tolist()


def test_impressions_without_state_are_dropped_and_counted(sim_store: SequenceStore, chunks) -> None:
    model = TwoTower(make_argus(sim_store)).eval()
    batches = _batches(sim_store, chunks, model, batch_size=64)
    near, far = (
        evaluate_pairs(model, batches, PairwiseTask(lag=0)),
        evaluate_pairs(model, batches, PairwiseTask(lag=30 * 86_400)),
    )
    assert near["pairs"] + near["pairs_no_state"] == chunks.stats["pairs"]
    assert far["pairs_no_state"] > near["pairs_no_state"] and far["impressions_no_state"] > near["impressions_no_state"]


def test_pair_accuracy_matches_hand_count(sim_store: SequenceStore, chunks) -> None:
    model = TwoTower(make_argus(sim_store)).eval()
    task = PairwiseTask(lag=LAG)
    batches = _batches(sim_store, chunks, model, batch_size=8)
    got = evaluate_pairs(model, batches, task, prefix="test/")
    num = den = right = total = 0.0
    for np_batch in batches.epoch(0):
        batch = _tensors(np_batch)
        with torch.no_grad():
            scores, ok = task.scores(model, batch)
        flat, okf = scores.reshape(-1), ok.reshape(-1)
        for a, b, w in zip(batch["pair_better"], batch["pair_worse"], batch["pair_weight"], strict=True):
            if not (okf[a] and okf[b]):
                continue
            hit = 1.0 if flat[a] > flat[b] else 0.5 if flat[a] == flat[b] else 0.0
            num, den, right, total = num + float(w) * hit, den + float(w), right + hit, total + 1
    assert got["test/PairAccuracy_weighted"] == pytest.approx(num / den)
    assert got["test/PairAccuracy"] == pytest.approx(right / total)
    assert got["test/pairs"] == total


def test_pairs_carry_signal_true_affinity_orders_them(sim_store: SequenceStore) -> None:
    """The simulator's true affinity (the oracle) orders the pairs well above chance: the pairs are learnable."""
    pairs = build_pairs(sim_store, PairConfig.music())
    aff = np.asarray(sim_store["true_affinity"])
    better, worse = aff[pairs.rows[pairs.better]], aff[pairs.rows[pairs.worse]]
    oracle = pair_accuracy(better, worse, np.ones(pairs.n_pairs, dtype=bool), weights=pairs.weight)
    assert 0.6 < oracle < 1.0


# ------------------------------------------------------------------------------------------------ training
def _mean_loss(model: TwoTower, batches: ImpressionBatches, task: PairwiseTask) -> float:
    model.eval()
    num = den = 0.0
    with torch.no_grad():
        for np_batch in batches.epoch(0):
            loss, n = task.loss(model, _tensors(np_batch))
            num, den = num + float(loss) * int(n), den + int(n)
    return num / den


def test_tiny_finetuning_run_learns(sim_store: SequenceStore, chunks, tmp_path) -> None:
    model = TwoTower(make_argus(sim_store))
    task = PairwiseTask(lag=LAG)
    assert isinstance(task, Task)
    batches = _batches(sim_store, chunks, model, batch_size=16, shuffle=True)
    eval_batches = _batches(sim_store, chunks, model, batch_size=64)
    before_loss = _mean_loss(model, eval_batches, task)
    before = evaluate_pairs(model, eval_batches, task)["PairAccuracy_weighted"]
    result = fit(
        model,
        task,
        batches,
        optim=OptimConfig(lr=3e-3),
        train=TrainConfig(epochs=4, device="cpu", log_every=1, patience=None),
        run_dir=tmp_path / "run",
        progress=False,
        tensorboard=False,
    )
    assert result.steps == 4 * len(batches)
    after_loss = _mean_loss(model, eval_batches, task)
    after = evaluate_pairs(model, eval_batches, task)["PairAccuracy_weighted"]
    assert after_loss < before_loss - 0.01
    assert after > before + 0.03
