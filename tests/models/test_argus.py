"""ARGUS (full and simplified): causality of both heads, padding invariance, shapes, gradients."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F

from argusrec.models.argus import Argus, ArgusOutput, build_argus, transformer_parameters
from argusrec.nn.event_tokens import EventTokenizer

NAN = float("nan")
V, D, B, N = 40, 16, 2, 6
SIGNALS = {"like": "binary", "played": "continuous"}
CONFIGS = list(itertools.product(["full", "simplified"], ["transformer", "hstu"]))


def make(variant: str, encoder: str, **kw: object) -> Argus:
    torch.manual_seed(0)
    args: dict = dict(
        variant=variant,
        vocab_sizes={"surface": 3, "device": 2},
        feedback_signals=SIGNALS,
        n_items=V,
        dim=D,
        layers=2,
        heads=2,
        max_len=16,
        encoder=encoder,
    )
    args.update(kw)
    return build_argus(**args).eval()


def batch(seed: int = 1) -> dict:
    g = torch.Generator().manual_seed(seed)
    valid = torch.ones(B, N, dtype=torch.bool)
    valid[0, :2] = False  # row 0 is left-padded by 2
    items = torch.randint(1, V + 1, (B, N), generator=g).masked_fill(~valid, 0)
    contexts = {
        "surface": torch.randint(1, 4, (B, N), generator=g).masked_fill(~valid, 0),
        "device": torch.randint(1, 3, (B, N), generator=g).masked_fill(~valid, 0),
    }
    like = torch.randint(0, 2, (B, N), generator=g).float()
    like[1, 1] = NAN  # an unobserved signal on a real event
    played = torch.rand(B, N, generator=g)
    feedback = {"like": like.masked_fill(~valid, NAN), "played": played.masked_fill(~valid, NAN)}
    gaps = torch.randint(1, 5000, (B, N), generator=g)
    timestamps = (1_700_000_000 + gaps.cumsum(1)).masked_fill(~valid, 0)
    return {"items": items, "contexts": contexts, "feedback": feedback, "timestamps": timestamps, "valid": valid}


def run(model: Argus, b: dict) -> ArgusOutput:
    with torch.no_grad():
        return model(b["items"], b["contexts"], b["feedback"], b["timestamps"], b["valid"])


def clone(b: dict) -> dict:
    return {k: ({n: t.clone() for n, t in v.items()} if isinstance(v, dict) else v.clone()) for k, v in b.items()}


def fp(out: ArgusOutput) -> torch.Tensor:
    return torch.stack([out.fp_logits[s] for s in SIGNALS], dim=-1)  # (B, N, F)


@pytest.mark.parametrize(("variant", "encoder"), CONFIGS)
@pytest.mark.parametrize("t", [2, 4])  # t = 2 is row 0's first real event (simplified: the start state)
@pytest.mark.parametrize("rank", [0, 3])  # 3: with the FP bilinear term
def test_causality_of_both_heads(variant: str, encoder: str, t: int, rank: int) -> None:
    model = make(variant, encoder, fp_bilinear_rank=rank)
    base = batch()
    ref = run(model, base)

    # item_t: NIP at <= t never sees it; FP at t does.
    b = clone(base)
    b["items"][:, t] = b["items"][:, t] % V + 1
    out = run(model, b)
    assert torch.equal(out.nip_query[:, : t + 1], ref.nip_query[:, : t + 1])
    assert torch.equal(fp(out)[:, :t], fp(ref)[:, :t])
    for row in range(B):
        assert not torch.equal(fp(out)[row, t], fp(ref)[row, t])

    # feedback_t: invisible to both heads at <= t, visible to NIP at t + 1.
    b = clone(base)
    b["feedback"]["like"][:, t] = 1 - b["feedback"]["like"][:, t].nan_to_num(0.0)
    b["feedback"]["played"][:, t] = NAN
    out = run(model, b)
    assert torch.equal(out.nip_query[:, : t + 1], ref.nip_query[:, : t + 1])
    assert torch.equal(fp(out)[:, : t + 1], fp(ref)[:, : t + 1])
    for row in range(B):
        assert not torch.equal(out.nip_query[row, t + 1], ref.nip_query[row, t + 1])

    # context_t: NIP at t sees it, nothing before t does.
    b = clone(base)
    b["contexts"]["surface"][:, t] = b["contexts"]["surface"][:, t] % 3 + 1
    out = run(model, b)
    assert torch.equal(out.nip_query[:, :t], ref.nip_query[:, :t])
    for row in range(B):
        assert not torch.equal(out.nip_query[row, t], ref.nip_query[row, t])

    # everything after t (items, contexts, feedback, timestamps) changes nothing at <= t.
    b = clone(base)
    b["items"][:, t + 1 :] = b["items"][:, t + 1 :] % V + 1
    b["contexts"]["device"][:, t + 1 :] = b["contexts"]["device"][:, t + 1 :] % 2 + 1
    b["feedback"]["like"][:, t + 1 :] = NAN
    b["feedback"]["played"][:, t + 1 :] = 0.01
    b["timestamps"][:, t + 1 :] += 10**6
    out = run(model, b)
    assert torch.equal(out.nip_query[:, : t + 1], ref.nip_query[:, : t + 1])
    assert torch.equal(fp(out)[:, : t + 1], fp(ref)[:, : t + 1])
    assert torch.equal(out.user_states[:, : t + 1], ref.user_states[:, : t + 1])  # query_time="own"
    assert not torch.equal(out.nip_query[:, t + 1 :], ref.nip_query[:, t + 1 :])


@pytest.mark.parametrize("t", [2, 4])
def test_next_query_time_keeps_heads_causal(t: int) -> None:
    """HSTU's next-timestamp convention: the time of event t + 1 reaches user_states[t] but neither head at <= t."""
    model = make("simplified", "hstu", query_time="next")
    base = batch()
    ref = run(model, base)
    b = clone(base)
    b["timestamps"][:, t + 1] += 10**6
    b["timestamps"][:, t + 2 :] += 2 * 10**6
    out = run(model, b)
    assert torch.equal(out.nip_query[:, : t + 1], ref.nip_query[:, : t + 1])
    assert torch.equal(fp(out)[:, : t + 1], fp(ref)[:, : t + 1])
    assert not torch.equal(out.user_states[:, t], ref.user_states[:, t])
    assert not torch.equal(out.nip_query[:, t + 1], ref.nip_query[:, t + 1])
    with pytest.raises(ValueError, match="query_time"):
        make("full", "hstu", query_time="next")


@pytest.mark.parametrize(("variant", "encoder"), CONFIGS)
def test_left_padding_amount_does_not_change_real_outputs(variant: str, encoder: str) -> None:
    model = make(variant, encoder)
    base = batch()
    ref = run(model, base)
    extra = 3

    def pad(x: torch.Tensor, value: float) -> torch.Tensor:
        return torch.cat([torch.full((B, extra), value, dtype=x.dtype), x], dim=1)  # (B, N + extra)

    padded = {
        "items": pad(base["items"], 0),
        "contexts": {k: pad(v, 0) for k, v in base["contexts"].items()},
        "feedback": {k: pad(v, NAN) for k, v in base["feedback"].items()},
        "timestamps": pad(base["timestamps"], 0),
        "valid": pad(base["valid"], False),
    }
    out = run(model, padded)
    valid = base["valid"]
    torch.testing.assert_close(out.nip_query[:, extra:][valid], ref.nip_query[valid], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(fp(out)[:, extra:][valid], fp(ref)[valid], atol=1e-5, rtol=1e-5)
    for o in (out, ref):
        assert torch.isfinite(o.nip_query).all() and torch.isfinite(fp(o)).all()
        assert torch.isfinite(o.user_states).all()
    assert torch.all(out.nip_query[:, :extra] == 0) and torch.all(fp(out)[:, :extra] == 0)


@pytest.mark.parametrize(
    ("variant", "item_embedding"), list(itertools.product(["full", "simplified"], ["id", "hashed"]))
)
def test_gradients_reach_every_parameter(variant: str, item_embedding: str) -> None:
    model = make(
        variant,
        "hstu" if item_embedding == "hashed" else "transformer",
        item_embedding=item_embedding,
        hash_buckets=101,
        retrieval_dim=8,
        combine="sum",
        fp_bilinear_rank=2,
    ).train()
    b = batch()
    out = model(b["items"], b["contexts"], b["feedback"], b["timestamps"], b["valid"])
    valid = b["valid"]
    logits = out.nip_query[valid] @ model.all_item_vectors().T / model.temperature()  # (T, V + 1)
    loss = F.cross_entropy(logits, b["items"][valid])
    for s in SIGNALS:
        target = b["feedback"][s]
        seen = valid & ~torch.isnan(target)
        loss = loss + F.binary_cross_entropy_with_logits(out.fp_logits[s][seen], target[seen])
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.any(p.grad != 0)]
    assert not missing, f"no gradient reaches {missing}"


@pytest.mark.parametrize("variant", ["full", "simplified"])
def test_fp_bilinear_term_is_the_low_rank_product(variant: str) -> None:
    """Logits with the term = the MLP's logits + <A_s z, B_s e> / sqrt(r), z = the NIP head's input, e = item token."""
    rank = 3
    model = make(variant, "transformer", fp_bilinear_rank=rank)
    assert model.fp_bilinear is not None and model.fp_head is not None
    b = batch()
    with torch.no_grad():
        enc = model._encode(b["items"], b["contexts"], b["feedback"], b["timestamps"], b["valid"])
        assert enc.nip_in.shape[-1] == (D if variant == "full" else 2 * D)
        a = (enc.nip_in @ model.fp_bilinear.query.weight.T).reshape(B, N, len(SIGNALS), rank)
        e = (enc.item @ model.fp_bilinear.item.weight.T).reshape(B, N, len(SIGNALS), rank)
        expected = model.fp_head(enc.fp_in) + torch.einsum("bnfr,bnfr->bnf", a, e) / rank**0.5
    got = fp(run(model, b))
    valid = b["valid"]
    torch.testing.assert_close(got[valid], expected[valid])
    assert torch.equal(got[~valid], torch.zeros_like(got[~valid]))
    plain = make(variant, "transformer")  # rank 0: the article's head, no extra parameters
    assert plain.fp_bilinear is None
    extra = sum(p.numel() for p in model.parameters()) - sum(p.numel() for p in plain.parameters())
    assert extra == len(SIGNALS) * rank * (enc.nip_in.shape[-1] + D)
    with pytest.raises(ValueError, match="fp_bilinear_rank"):
        make(variant, "transformer", fp_bilinear_rank=-1)


def test_concat_combiner_and_normalized_retrieval_dim() -> None:
    model = make("simplified", "transformer", combine="concat", retrieval_dim=8, normalize=True)
    assert isinstance(model.combine, torch.nn.Linear) and model.combine.in_features == 3 * D
    out = run(model, batch())
    assert out.nip_query.shape == (B, N, 8)
    valid = batch()["valid"]
    torch.testing.assert_close(out.nip_query[valid].norm(dim=-1), torch.ones(int(valid.sum())))
    vectors = model.all_item_vectors()
    assert vectors.shape == (V + 1, 8)
    torch.testing.assert_close(vectors[1:].norm(dim=-1), torch.ones(V))
    torch.testing.assert_close(model.item_vectors(torch.tensor([[3, 7]])), vectors[[3, 7]].unsqueeze(0))


def test_variants_share_the_tokenizer() -> None:
    full, simple = make("full", "transformer"), make("simplified", "transformer")
    assert type(full.tokenizer) is type(simple.tokenizer) is EventTokenizer
    b = batch()
    args = (b["items"], b["contexts"], b["feedback"], b["valid"], b["timestamps"])
    for a, c in zip(full.tokenizer(*args), simple.tokenizer(*args), strict=True):
        assert torch.equal(a, c)  # same seed, same code -> the same event vectors
    assert full.token_type is not None and simple.token_type is None
    assert simple.start is not None and full.start is None


def test_transformer_parameters_excludes_tables() -> None:
    small, large = make("full", "transformer", n_items=V), make("full", "transformer", n_items=10 * V)
    assert transformer_parameters(small) == transformer_parameters(large)  # catalog size is not counted
    total = sum(p.numel() for p in small.parameters())
    assert 0 < transformer_parameters(small) < total
    encoder = sum(p.numel() for p in small.encoder.parameters())
    assert transformer_parameters(small) >= encoder


def test_bad_arguments_raise() -> None:
    with pytest.raises(ValueError, match="variant"):
        make("tiny", "transformer")
    with pytest.raises(ValueError, match="encoder"):
        make("full", "rnn")
    model = make("full", "transformer")
    b = batch()
    with pytest.raises(KeyError, match="context fields"):
        model(b["items"], {"surface": b["contexts"]["surface"]}, b["feedback"], b["timestamps"], b["valid"])
