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
