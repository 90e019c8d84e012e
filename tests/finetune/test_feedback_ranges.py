"""Fine-tuning reads continuous feedback through the pre-training map (argusrec/nn/feedback_scale.py)."""

from __future__ import annotations

import torch

from argusrec.data.store import SequenceStore
from argusrec.finetune import ImpressionBatches, PairConfig, PairwiseTask, TwoTower, build_pairs, finetune_chunks
from argusrec.finetune.reference import reference_scores
from argusrec.nn.feedback_scale import FeedbackRange, scale_feedback
from tests.finetune.conftest import MAX_LEN, make_argus

LAG = 1800


def test_scores_read_mapped_feedback_in_one_pass_and_in_the_reference(sim_store: SequenceStore) -> None:
    pairs = build_pairs(sim_store, PairConfig.music())
    chunks = finetune_chunks(pairs, sim_store.offsets, max_len=MAX_LEN, min_len=4, max_impressions=24)
    model = TwoTower(make_argus(sim_store)).eval()
    batches = ImpressionBatches(sim_store, chunks, batch_size=4, columns=PairwiseTask.columns(model), shuffle=False)
    batch = {k: torch.as_tensor(v) for k, v in next(batches.epoch(0)).items()}
    ranges = {"played_ratio": FeedbackRange(0.0, 0.5)}  # a map that changes the values (ratios above 0.5 -> 1)
    mapped = {**batch, "played_ratio": scale_feedback(batch["played_ratio"], ranges["played_ratio"])}
    with torch.no_grad():
        got, ok = PairwiseTask(lag=LAG, feedback_ranges=ranges).scores(model, batch)
        want, ok2 = PairwiseTask(lag=LAG).scores(model, mapped)  # the same batch, mapped by hand
        raw, _ = PairwiseTask(lag=LAG).scores(model, batch)
    assert torch.equal(ok, ok2) and bool(ok.any())
    torch.testing.assert_close(got[ok], want[ok])
    assert not torch.allclose(got[ok], raw[ok])  # the map is applied
    ref = reference_scores(model, batch, LAG, ranges)
    torch.testing.assert_close(got[ok].double(), ref[ok], atol=1e-4, rtol=1e-4)
