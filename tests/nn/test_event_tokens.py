"""The ARGUS event tokenizer: shapes, padding/missing rows, bucket edges, time gaps."""

from __future__ import annotations

import math

import pytest
import torch

from argusrec.nn.embeddings import HashedEmbedding, IdEmbedding
from argusrec.nn.event_tokens import (
    ContextEmbedding,
    FeedbackEmbedding,
    ItemTokenEmbedding,
    feedback_rows,
    gap_rows,
    previous_index,
)

NAN = float("nan")


def test_previous_index_any_layout() -> None:
    valid = torch.tensor([[False, False, True, True, True], [True, False, True, False, False]])
    assert previous_index(valid).tolist() == [[-1, -1, -1, 2, 3], [-1, 0, 0, 2, 2]]


def test_gap_uses_previous_real_event_and_first_event_has_no_previous_bucket() -> None:
    ts = torch.tensor([[0, 0, 1000, 1010, 1010 + 86400]])
    valid = torch.tensor([[False, False, True, True, True]])
    rows = gap_rows(ts, valid, n_gap_buckets=64, divisor=0.301)
    # padding -> 0, first real event -> 1 ("no previous", NOT the gap from the padding timestamp 0),
    # then 2 + floor(ln(gap) / 0.301).
    assert rows.tolist() == [[0, 0, 1, 2 + math.floor(math.log(10) / 0.301), 2 + math.floor(math.log(86400) / 0.301)]]
    # A huge gap saturates in the last bucket.
    far = gap_rows(torch.tensor([[0, 10**12]]), torch.ones(1, 2, dtype=torch.bool), n_gap_buckets=8, divisor=0.301)
    assert far.tolist() == [[1, 2 + 7]]


def test_context_padding_is_zero_and_fields_sum() -> None:
    emb = ContextEmbedding({"surface": 3, "device": 2}, 8, time_features=False)
    codes = {"surface": torch.tensor([[0, 1, 3]]), "device": torch.tensor([[0, 0, 2]])}
    valid = torch.tensor([[False, True, True]])
    out = emb(codes, valid)
    assert out.shape == (1, 3, 8)
    assert torch.all(out[0, 0] == 0)
    surface, device = emb.fields["surface"].weight, emb.fields["device"].weight
    torch.testing.assert_close(out[0, 1], surface[1])  # device code 0 = missing -> zero contribution
    torch.testing.assert_close(out[0, 2], surface[3] + device[2])


def test_context_time_features_change_with_gap_and_calendar() -> None:
    emb = ContextEmbedding({}, 4, calendar=True)
    valid = torch.ones(1, 2, dtype=torch.bool)
    a = emb({}, valid, torch.tensor([[0, 10]]))
    b = emb({}, valid, torch.tensor([[0, 100000]]))
    assert torch.equal(a[0, 0], b[0, 0])  # same first event (no-previous bucket, Thursday 00h)
    assert not torch.equal(a[0, 1], b[0, 1])
    # 1970-01-05 was a Monday (row 0); 13h -> hour row 13.
    ts = torch.tensor([[4 * 86400 + 13 * 3600]])
    got = emb({}, torch.ones(1, 1, dtype=torch.bool), ts)[0, 0]
    want = emb.gap.weight[1] + emb.hour.weight[13] + emb.weekday.weight[0]
    torch.testing.assert_close(got, want)
    with pytest.raises(ValueError, match="timestamps"):
        emb({}, valid)
    with pytest.raises(KeyError, match="context fields"):
        emb({"x": torch.zeros(1, 2, dtype=torch.long)}, valid, torch.zeros(1, 2, dtype=torch.long))


def test_feedback_rows_binary_and_continuous_edges() -> None:
    v = torch.tensor([NAN, 0.0, 1.0, 0.7])
    assert feedback_rows(v, "binary").tolist() == [0, 1, 2, 2]
    edges = torch.linspace(0, 1, 5)[1:-1]  # 0.25, 0.5, 0.75
    c = torch.tensor([NAN, 0.0, 0.2499, 0.25, 0.5, 0.99, 1.0, 7.0, -3.0])
    assert feedback_rows(c, "continuous", edges).tolist() == [0, 1, 1, 2, 3, 4, 4, 4, 1]


def test_feedback_embedding_missing_row_padding_zero_and_custom_edges() -> None:
    emb = FeedbackEmbedding({"like": "binary", "seconds": "continuous"}, 6, bucket_edges={"seconds": [30.0, 120.0]})
    assert emb.tables["seconds"].weight.shape[0] == 1 + 3  # missing + 3 buckets
    assert emb.tables["like"].weight.shape[0] == 3
    fb = {"like": torch.tensor([[1.0, NAN, 0.0]]), "seconds": torch.tensor([[NAN, 45.0, 200.0]])}
    valid = torch.tensor([[True, True, False]])
    out = emb(fb, valid)
    like, sec = emb.tables["like"].weight, emb.tables["seconds"].weight
    torch.testing.assert_close(out[0, 0], like[2] + sec[0])  # NaN -> the learned "missing" row
    torch.testing.assert_close(out[0, 1], like[0] + sec[2])  # 30 <= 45 < 120 -> bucket 2
    assert torch.all(out[0, 2] == 0)  # padding -> zero
    assert not torch.all(sec[0] == 0)  # missing is not the padding vector
    with pytest.raises(ValueError, match="increasing"):
        FeedbackEmbedding({"s": "continuous"}, 4, bucket_edges={"s": [2.0, 1.0]})
    with pytest.raises(ValueError, match="kind"):
        FeedbackEmbedding({"s": "ordinal"}, 4)


def test_item_tokens_id_tables_with_feature_codes() -> None:
    codes = torch.tensor([0, 2, 1, 2])  # artist of items 0..3
    emb = ItemTokenEmbedding(IdEmbedding(4, 5), {"artist": 2}, feature_codes={"artist": codes})
    ids = torch.tensor([[0, 1, 3]])
    out = emb(ids)
    assert out.shape == (1, 3, 5)
    assert torch.all(out[0, 0] == 0)
    artist = emb.feature_tables["artist"].weight
    torch.testing.assert_close(out[0, 1], emb.items.weight[1] + artist[2])
    torch.testing.assert_close(emb.all_vectors(3)[1:], emb(torch.arange(1, 4)))
    bare = ItemTokenEmbedding(IdEmbedding(4, 5), {"artist": 2})
    with pytest.raises(KeyError, match="artist"):
        bare(ids)
    torch.testing.assert_close(
        bare(ids, {"artist": torch.tensor([[0, 2, 2]])})[0, 1],
        bare.items.weight[1] + bare.feature_tables["artist"].weight[2],
    )


def test_item_tokens_hashed_features_share_the_table_with_their_own_salt() -> None:
    table = HashedEmbedding(97, 4, num_hashes=2)
    emb = ItemTokenEmbedding(table, {"artist": 10, "album": 10}, feature_codes={"artist": torch.tensor([0, 5, 5])})
    assert len(list(emb.parameters())) == 1  # only the unified table
    assert emb.salts == {"album": 1, "artist": 2}
    got = emb(torch.tensor([1]), {"album": torch.tensor([5])})
    want = table(torch.tensor([1])) + table(torch.tensor([5]), feature=1) + table(torch.tensor([5]), feature=2)
    torch.testing.assert_close(got, want)
    # the same value under two salts lands in different rows
    assert not torch.equal(table.buckets(torch.tensor([5]), feature=1), table.buckets(torch.tensor([5]), feature=2))
