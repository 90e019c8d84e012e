"""Item frequencies, the uniform sampler, in-batch + uniform negative sets and the mixed log Q."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from argusrec.data.negatives import UniformSampler, build_negatives, item_frequencies, mixed_log_q
from argusrec.losses import sampled_softmax_loss


def test_item_frequencies_on_memmap_equals_bincount(tmp_path: Path) -> None:
    n_items = 50
    rng = np.random.default_rng(0)
    items = rng.integers(1, n_items + 1, size=1_003).astype(np.int32)
    np.save(tmp_path / "item_id.npy", items)
    mm = np.load(tmp_path / "item_id.npy", mmap_mode="r")
    freq = item_frequencies(mm, n_items, chunk=97)  # chunk boundaries fall mid-array
    assert freq.dtype == np.float64 and freq.shape == (n_items + 1,)
    np.testing.assert_array_equal(freq, np.bincount(items, minlength=n_items + 1))
    assert freq[0] == 0 and freq.sum() == len(items)
    mask = rng.random(len(items)) < 0.3
    np.testing.assert_array_equal(
        item_frequencies(mm, n_items, chunk=64, mask=mask), np.bincount(items[mask], minlength=n_items + 1)
    )


def test_item_frequencies_rejects_bad_ids() -> None:
    items = np.array([1, 2, 9, 3], dtype=np.int32)
    with pytest.raises(ValueError, match=r"item id 9 at row 2 is outside 0\.\.5"):
        item_frequencies(items, 5, chunk=2)
    with pytest.raises(ValueError, match="row 1"):
        item_frequencies(np.array([1, -1], dtype=np.int32), 5)
    with pytest.raises(ValueError, match="mask"):
        item_frequencies(items, 9, mask=np.ones(3, dtype=bool))


def test_uniform_sampler_range_and_reproducibility() -> None:
    a, b = UniformSampler(7, seed=3), UniformSampler(7, seed=3)
    draws = a.sample(2_000)
    assert draws.dtype == torch.int64 and draws.shape == (2_000,)
    assert set(draws.tolist()) == set(range(1, 8))  # 1..V inclusive, never padding
    assert torch.equal(draws, b.sample(2_000))
    assert not torch.equal(UniformSampler(7, seed=4).sample(50), UniformSampler(7, seed=3).sample(50))


def test_uniform_sampler_resume_gives_identical_next_draws(tmp_path: Path) -> None:
    s = UniformSampler(1_000, seed=11)
    s.sample(37)
    torch.save(s.state_dict(), tmp_path / "sampler.pt")
    expected = [s.sample(64), s.sample(5)]
    resumed = UniformSampler(1_000, seed=0)  # a different seed: the state must override it
    resumed.load_state_dict(torch.load(tmp_path / "sampler.pt", weights_only=True))
    assert torch.equal(resumed.sample(64), expected[0]) and torch.equal(resumed.sample(5), expected[1])
    with pytest.raises(ValueError, match="catalog"):
        UniformSampler(10).load_state_dict(s.state_dict())


def test_mixed_log_q_hand_example() -> None:
    freq = torch.tensor([0.0, 6.0, 3.0, 1.0, 0.0], dtype=torch.float64)  # p = .6, .3, .1, 0
    ids = torch.tensor([1, 2, 3, 4])
    # E[c_j] = 10 * p_j + 8 / 4 = 8, 5, 3, 2
    log_q = mixed_log_q(ids, freq, n_in_batch=10, n_uniform=8, n_items=4)
    assert log_q.dtype == torch.float32
    torch.testing.assert_close(log_q, torch.tensor([8.0, 5.0, 3.0, 2.0]).log())
    with_counts = mixed_log_q(ids, freq, 10, 8, 4, counts=torch.tensor([2, 1, 3, 1]))
    torch.testing.assert_close(with_counts, torch.tensor([4.0, 5.0, 1.0, 2.0]).log())
    # Frequencies at another scale give the same Q (they are normalised).
    torch.testing.assert_close(mixed_log_q(ids, freq * 1e9, 10, 8, 4), log_q)
    # Uniform only: every item log(R_u / V); in-batch only: an unseen item can never be proposed.
    torch.testing.assert_close(mixed_log_q(ids, torch.zeros(5), 0, 8, 4), torch.full((4,), math.log(2.0)))
    assert mixed_log_q(ids, freq, 10, 0, 4)[3] == float("-inf")
    with pytest.raises(ValueError, match="V \\+ 1"):
        mixed_log_q(ids, freq[:4], 10, 8, 4)
    with pytest.raises(ValueError, match="positive sum"):
        mixed_log_q(ids, freq, 0, 0, 4)


def test_mixed_log_q_matches_simulated_draw_counts() -> None:
    """exp(mixed_log_q) is the mean number of proposals of each id over many simulated batches."""
    n_items, n_ib, n_u, trials = 6, 5, 3, 20_000
    freq = torch.tensor([0.0, 10.0, 5.0, 3.0, 1.0, 1.0, 0.0], dtype=torch.float64)
    g = torch.Generator().manual_seed(0)
    in_batch = torch.multinomial((freq / freq.sum()).float(), trials * n_ib, replacement=True, generator=g)
    uniform = UniformSampler(n_items, seed=1).sample(trials * n_u)
    counts = torch.bincount(torch.cat([in_batch, uniform]), minlength=n_items + 1)[1:].double() / trials
    expected = mixed_log_q(torch.arange(1, n_items + 1), freq, n_ib, n_u, n_items).exp().double()
    torch.testing.assert_close(counts, expected, rtol=0.03, atol=0.0)


def test_build_negatives_dedups_with_counts_and_first_vectors() -> None:
    pos_ids = torch.tensor([3, 1, 3, 2, 3])
    pos_vec = torch.arange(5.0)[:, None].repeat(1, 2)  # row i = (i, i): shows which draw was kept
    uni_ids = torch.tensor([2, 7])
    uni_vec = torch.tensor([[10.0, 10.0], [11.0, 11.0]])
    neg = build_negatives(in_batch_ids=pos_ids, in_batch_vectors=pos_vec, uniform_ids=uni_ids, uniform_vectors=uni_vec)
    assert neg.ids.tolist() == [1, 2, 3, 7]
    assert neg.counts.tolist() == [1, 2, 3, 1]
    assert neg.vectors[:, 0].tolist() == [1.0, 3.0, 0.0, 11.0]  # first draw of each id
    assert (neg.n_in_batch, neg.n_uniform) == (5, 2)
    raw = build_negatives(in_batch_ids=pos_ids, in_batch_vectors=pos_vec, unique=False)
    assert raw.ids.tolist() == pos_ids.tolist() and raw.counts.tolist() == [1] * 5 and raw.n_uniform == 0
    only_uniform = build_negatives(uniform_ids=uni_ids, uniform_vectors=uni_vec)
    assert only_uniform.n_in_batch == 0 and only_uniform.ids.tolist() == [2, 7]
    with pytest.raises(ValueError, match="both"):
        build_negatives(in_batch_ids=pos_ids)
    with pytest.raises(ValueError, match="needs"):
        build_negatives()


def test_dedup_with_counts_equals_scoring_every_draw() -> None:
    """The deduplicated set with log-count folded into log Q gives the same loss and gradients."""
    n_items, d, m = 9, 4, 8
    g = torch.Generator().manual_seed(5)
    table = torch.randn(n_items + 1, d, generator=g, requires_grad=True)
    query = torch.randn(m, d, generator=g)
    pos_ids = torch.tensor([1, 2, 2, 2, 5, 1, 9, 2])
    uni_ids = UniformSampler(n_items, seed=2).sample(6)
    freq = torch.bincount(pos_ids, minlength=n_items + 1).double() + 1.0
    freq[0] = 0

    def loss_for(unique: bool) -> tuple[torch.Tensor, torch.Tensor]:
        neg = build_negatives(
            in_batch_ids=pos_ids,
            in_batch_vectors=table[pos_ids],
            uniform_ids=uni_ids,
            uniform_vectors=table[uni_ids],
            unique=unique,
        )
        loss = sampled_softmax_loss(
            query,
            table[pos_ids],
            pos_ids,
            neg.vectors,
            neg.ids,
            temperature=0.2,
            positive_log_q=neg.positive_log_q(pos_ids, freq, n_items),
            negative_log_q=neg.log_q(freq, n_items),
        )
        (grad,) = torch.autograd.grad(loss, table)
        return loss, grad

    (l_dedup, g_dedup), (l_all, g_all) = loss_for(True), loss_for(False)
    torch.testing.assert_close(l_dedup, l_all)
    torch.testing.assert_close(g_dedup, g_all)
    assert g_dedup[2].abs().sum() > 0  # the repeated item does receive gradient
