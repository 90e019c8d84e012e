"""Exact id table, ARGUS unified hashed table, learned positions."""

from __future__ import annotations

import pytest
import torch

from argusrec.nn.embeddings import (
    HashedEmbedding,
    IdEmbedding,
    PositionEmbedding,
    event_positions,
    hash_constants,
)

M31 = (1 << 31) - 1


# --------------------------------------------------------------------------- IdEmbedding


def test_id_embedding_padding_is_zero_and_gets_no_gradient() -> None:
    emb = IdEmbedding(11, 6)  # ids 1..10 plus padding
    ids = torch.tensor([[0, 0, 3, 7], [1, 2, 3, 0]])
    out = emb(ids)
    assert out.shape == (2, 4, 6)
    assert torch.equal(out[ids == 0], torch.zeros(3, 6))
    out.sum().backward()
    grad = emb.weight.grad
    assert grad is not None
    assert torch.equal(grad[0], torch.zeros(6))
    assert (grad[[1, 2, 3, 7]].abs().sum(-1) > 0).all()
    assert torch.equal(grad[[4, 5, 6, 8, 9, 10]], torch.zeros(6, 6))  # unused ids


def test_id_embedding_all_vectors_and_size() -> None:
    emb = IdEmbedding(11, 6, init_std=0.5)
    assert sum(p.numel() for p in emb.parameters()) == 11 * 6
    assert emb.all_vectors().shape == (11, 6)
    assert torch.equal(emb.all_vectors(), emb(torch.arange(11)))
    assert torch.equal(emb.all_vectors(4), emb.weight[:5])
    assert 0.3 < float(emb.weight[1:].detach().std()) < 0.7  # init_std is honoured
    with pytest.raises(ValueError, match="outside the table"):
        emb.all_vectors(11)


# --------------------------------------------------------------------------- hashing


def python_buckets(value: int, feature: int, num_buckets: int, constants: list[tuple[int, int, int]]) -> list[int]:
    """The hash spelled out on exact Python integers (no int64 overflow is possible here)."""

    def mix(x: int, m1: int, m2: int) -> int:
        x ^= x >> 16
        x = (x * m1) & M31
        x ^= x >> 15
        x = (x * m2) & M31
        return x ^ (x >> 16)

    bits = value & ((1 << 64) - 1)  # two's complement bits of an int64
    limbs = (bits & M31, (bits >> 31) & M31, (bits >> 62) & 3)
    out = []
    for start, m1, m2 in constants:
        state = mix(start ^ feature, m1, m2)
        for limb in limbs:
            state = mix(state ^ limb, m1, m2)
        out.append(state % num_buckets)
    return out


def test_hash_equals_exact_integer_reference_for_extreme_ids() -> None:
    emb = HashedEmbedding(1000003, 4, num_hashes=4)
    values = [1, 2, 3, 2**31 - 1, 2**31, 2**40 + 7, 2**62 + 5, 2**63 - 1, -1, -(2**63), -123456789]
    buckets = emb.buckets(torch.tensor(values), feature=5)
    constants = hash_constants(4, 0)
    for value, row in zip(values, buckets.tolist(), strict=True):
        assert row == python_buckets(value, 5, 1000003, constants), value


def test_hash_is_pinned() -> None:
    """These exact buckets are what saved checkpoints rely on; changing the hash must be deliberate."""
    emb = HashedEmbedding(1 << 16, 4)
    ids = torch.tensor([1, 2, 12345, 2**40 + 7, -5])
    assert emb.buckets(ids).tolist() == [
        [12181, 1039, 56611],
        [46839, 32243, 14301],
        [38079, 14948, 61690],
        [36111, 12705, 6441],
        [237, 6464, 63420],
    ]
    assert emb.buckets(ids, feature=3)[:2].tolist() == [[8807, 48964, 5234], [51135, 18390, 65138]]


def test_hash_is_deterministic_and_seeded() -> None:
    ids = torch.randint(1, 10**12, (50, 7))
    a = HashedEmbedding(4096, 4, seed=0).buckets(ids)
    b = HashedEmbedding(4096, 4, seed=0).buckets(ids)
    c = HashedEmbedding(4096, 4, seed=1).buckets(ids)
    assert a.shape == (50, 7, 3)
    assert torch.equal(a, b)
    assert (a != c).float().mean() > 0.9
    assert int(a.min()) >= 0 and int(a.max()) < 4096


def test_distinct_ids_never_share_all_k_rows() -> None:
    buckets = HashedEmbedding(1 << 16, 4, num_hashes=3).buckets(torch.arange(1, 10_001))  # (10000, 3)
    assert torch.unique(buckets, dim=0).shape[0] == 10_000
    # Each single hash behaves like a random function: C(10000, 2) / 65536 ≈ 763 colliding pairs.
    for j in range(3):
        counts = torch.bincount(buckets[:, j], minlength=1 << 16)
        pairs = int((counts * (counts - 1) // 2).sum())
        assert 600 < pairs < 950, (j, pairs)
    # ... and the k functions are independent: no pair collides even in two of them (expected ≈ 0.04).
    for i, j in [(0, 1), (0, 2), (1, 2)]:
        assert torch.unique(buckets[:, i] * (1 << 16) + buckets[:, j]).numel() == 10_000


def test_consecutive_ids_fill_buckets_uniformly() -> None:
    buckets = HashedEmbedding(64, 4, num_hashes=1).buckets(torch.arange(1, 64_001))[:, 0]
    counts = torch.bincount(buckets, minlength=64).double()
    chi2 = float(((counts - 1000) ** 2 / 1000).sum())
    assert chi2 < 120  # 63 degrees of freedom: the 99.99th percentile is about 115


def test_features_are_salted_apart() -> None:
    emb = HashedEmbedding(1 << 16, 4)
    ids = torch.arange(1, 5001)
    items, artists = emb.buckets(ids, feature=0), emb.buckets(ids, feature=1)
    assert (items == artists).float().mean() < 0.002  # per-hash agreement about 1/65536
    assert not (items == artists).all(-1).any()
    vec_item, vec_artist = emb(torch.tensor([5]), feature=0), emb(torch.tensor([5]), feature=1)
    assert not torch.allclose(vec_item, vec_artist)


# --------------------------------------------------------------------------- HashedEmbedding module


@pytest.mark.parametrize("combine", ["sum", "concat"])
def test_hashed_padding_is_zero_and_shapes(combine: str) -> None:
    emb = HashedEmbedding(500, 8, combine=combine, row_dim=8 if combine == "sum" else 5)  # type: ignore[arg-type]
    ids = torch.tensor([[0, 4, 9], [7, 0, 0]])
    out = emb(ids, feature=2)
    assert out.shape == (2, 3, 8)
    assert torch.equal(out[ids == 0], torch.zeros(3, 8))
    assert (out[ids != 0].abs().sum(-1) > 0).all()
    vectors = emb.all_vectors(20, feature=2)
    assert vectors.shape == (21, 8)
    assert torch.equal(vectors[0], torch.zeros(8))
    torch.testing.assert_close(vectors[[4, 9, 7]], out[ids != 0][[0, 1, 2]])


def test_hashed_parameter_counts_do_not_depend_on_the_catalog() -> None:
    summed = HashedEmbedding(1000, 16, num_hashes=3)
    assert sum(p.numel() for p in summed.parameters()) == 1000 * 16
    concat = HashedEmbedding(1000, 16, num_hashes=3, combine="concat", row_dim=8)
    assert sum(p.numel() for p in concat.parameters()) == 1000 * 8 + 3 * 8 * 16
    # A catalog 100x larger than the table still gets vectors from the same parameters.
    assert summed.all_vectors(100_000).shape == (100_001, 16)


def test_sum_is_the_sum_of_the_hashed_rows() -> None:
    emb = HashedEmbedding(300, 4)
    ids = torch.tensor([17, 40])
    rows = emb.buckets(ids)
    torch.testing.assert_close(emb(ids), emb.table[rows].sum(1))


def test_gradient_reaches_only_the_k_rows_of_the_ids_used() -> None:
    for combine in ("sum", "concat"):
        emb = HashedEmbedding(2000, 4, num_hashes=3, combine=combine)  # type: ignore[arg-type]
        ids = torch.tensor([0, 0, 123])  # padding must contribute nothing
        (emb(ids) @ torch.randn(4)).sum().backward()
        assert emb.table.grad is not None
        touched = set(torch.nonzero(emb.table.grad.abs().sum(-1)).flatten().tolist())
        assert touched == set(emb.buckets(torch.tensor([123]))[0].tolist()), combine


def test_hash_params_travel_with_the_state_dict() -> None:
    emb = HashedEmbedding(1000, 4, seed=7)
    state = emb.state_dict()
    assert state["hash_params"].shape == (3, 3)
    other = HashedEmbedding(1000, 4, seed=0)
    other.load_state_dict(state)
    ids = torch.arange(1, 50)
    assert torch.equal(other.buckets(ids), emb.buckets(ids))
    assert torch.equal(other(ids), emb(ids))


def test_hashed_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="must equal dim"):
        HashedEmbedding(100, 8, row_dim=4)
    with pytest.raises(ValueError, match="combine"):
        HashedEmbedding(100, 8, combine="mean")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="int64"):
        HashedEmbedding(100, 8)(torch.tensor([1, 2], dtype=torch.int32))


# --------------------------------------------------------------------------- positions


def test_event_positions_conventions() -> None:
    valid = torch.tensor([[False, False, True, True, True], [True, False, True, True, False]])
    assert event_positions(valid).tolist() == [[-1, -1, 2, 1, 0], [2, -1, 1, 0, -1]]
    assert event_positions(valid, from_end=False).tolist() == [[-1, -1, 0, 1, 2], [0, -1, 1, 2, -1]]


def test_last_event_gets_the_same_vector_whatever_the_padding() -> None:
    pos = PositionEmbedding(16, 8)
    short = pos(pos.positions(torch.tensor([[True, True, True]])))  # (1, 3, 8)
    padded_valid = torch.tensor([[False] * 6 + [True] * 3])
    padded = pos(pos.positions(padded_valid))  # (1, 9, 8)
    torch.testing.assert_close(padded[0, 6:], short[0])
    assert torch.equal(padded[0, :6], torch.zeros(6, 8))
    torch.testing.assert_close(pos(3), short)  # an int means n events, no padding
    torch.testing.assert_close(short[0, -1], pos.table[0])  # the most recent event is position 0


def test_positions_from_start_and_clamping() -> None:
    pos = PositionEmbedding(4, 8, from_end=False)
    out = pos(pos.positions(torch.tensor([[False, True, True]])))
    torch.testing.assert_close(out[0, 1:], pos.table[:2])
    far = pos(torch.tensor([[2, 3, 4, 1000]]))
    torch.testing.assert_close(far[0], pos.table[[2, 3, 3, 3]])  # beyond max_len: the last row
    assert pos(6).shape == (1, 6, 8)
