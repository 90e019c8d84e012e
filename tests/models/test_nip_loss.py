"""The shared sampled next-item loss: settings validated, sampler state restorable, logQ wired in."""

from __future__ import annotations

import pytest
import torch

from argusrec.models.nip_loss import SampledNextItemLoss


def _loss(**kw) -> SampledNextItemLoss:
    return SampledNextItemLoss(n_items=20, **{"uniform_negatives": 8, "in_batch_negatives": True, **kw})


def test_impossible_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="uniform_negatives > 0 or in_batch_negatives"):
        _loss(uniform_negatives=0, in_batch_negatives=False)
    with pytest.raises(ValueError, match="needs item_freq"):
        _loss(logq=True)
    with pytest.raises(ValueError, match=r"\(V \+ 1,\)"):
        _loss(logq=True, item_freq=torch.ones(5))


def test_sampler_state_round_trip_gives_identical_losses() -> None:
    table = torch.randn(21, 4)
    query, ids = torch.randn(6, 4), torch.randint(1, 21, (6,))
    a = _loss(seed=1)
    a(query, ids, lambda i: table[i], 0.5)  # advance the sampler
    state = a.state_dict()
    b = _loss(seed=99)
    b.load_state_dict(state)
    assert torch.equal(a(query, ids, lambda i: table[i], 0.5), b(query, ids, lambda i: table[i], 0.5))


def test_logq_changes_the_loss_and_frequencies_default_to_uniform() -> None:
    table = torch.randn(21, 4)
    query, ids = torch.randn(6, 4), torch.randint(1, 21, (6,))
    freq = torch.arange(21, dtype=torch.float64)
    plain = _loss(seed=3, in_batch_negatives=False)(query, ids, lambda i: table[i], 1.0)
    corrected = _loss(seed=3, logq=True, item_freq=freq)(query, ids, lambda i: table[i], 1.0)
    assert not torch.isclose(plain, corrected)
    default = _loss(seed=3, in_batch_negatives=False, logq=True)
    assert default.item_freq[0] == 0 and (default.item_freq[1:] == 1).all()


def test_per_position_negatives_are_refused_with_in_batch() -> None:
    with pytest.raises(ValueError, match="no in-batch"):
        _loss(uniform_sharing="position")
    with pytest.raises(ValueError, match="'batch' or 'position'"):
        _loss(uniform_sharing="row")


# (V, R): a small catalog is scored from the whole table's logits, a large one from the gathered (M, R, D)
@pytest.mark.parametrize(("n_items", "r", "looked_up"), [(20, 8, (21,)), (200, 2, (6, 2))])
def test_per_position_negatives_draw_m_by_r(n_items: int, r: int, looked_up: tuple[int, ...]) -> None:
    table = torch.randn(n_items + 1, 4, requires_grad=True)
    query, ids = torch.randn(6, 4), torch.randint(1, n_items + 1, (6,))
    seen: list[tuple[int, ...]] = []

    def vectors(i: torch.Tensor) -> torch.Tensor:
        seen.append(tuple(i.shape))
        return table[i]

    kw = {"n_items": n_items, "uniform_negatives": r, "in_batch_negatives": False, "uniform_sharing": "position"}
    loss = SampledNextItemLoss(seed=2, **kw)
    value = loss(query, ids, vectors, 0.5)
    assert seen == [(6,), looked_up]  # the positives, then the table or R negatives for each of the M = 6 positions
    # the same draws, replayed by hand: a fresh sampler with the seed gives the (M, R) ids
    drawn = torch.randint(1, n_items + 1, (6, r), generator=torch.Generator().manual_seed(2))
    logits = torch.cat([(query * table[ids]).sum(1, keepdim=True), torch.einsum("md,mrd->mr", query, table[drawn])], 1)
    logits = logits / 0.5
    logits[:, 1:] = logits[:, 1:].masked_fill(drawn == ids[:, None], float("-inf"))
    expected = torch.nn.functional.cross_entropy(logits, torch.zeros(6, dtype=torch.long))
    torch.testing.assert_close(value, expected)
    value.backward()
    # far more rows of the table get a gradient than with R shared negatives: every drawn id does, and only those
    touched = set(drawn.flatten().tolist()) | set(ids.tolist())
    assert {int(i) for i in table.grad.abs().sum(1).nonzero().flatten()} == touched
    # logQ with uniform draws only is a constant shift of every logit: the loss is unchanged
    with_logq = SampledNextItemLoss(seed=2, logq=True, **kw)
    torch.testing.assert_close(with_logq(query, ids, lambda i: table[i], 0.5), value.detach())
