"""Sampled / full softmax, logQ, accidental hits, temperature, feedback and pairwise losses."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from argusrec.losses import (
    LearnedTemperature,
    Similarity,
    binary_feedback_loss,
    feedback_loss,
    full_softmax_loss,
    pairwise_logistic_loss,
    sampled_softmax_loss,
)

V, D, M = 12, 5, 7


def _setup(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    table = torch.randn(V + 1, D, generator=g)  # row 0 = padding
    query = torch.randn(M, D, generator=g)
    targets = torch.randint(1, V + 1, (M,), generator=g)
    return table, query, targets


@pytest.mark.parametrize("similarity", ["dot", "cosine"])
def test_sampled_equals_full_softmax_when_negatives_are_the_catalog(similarity: Similarity) -> None:
    table, query, targets = _setup()
    table.requires_grad_(True)
    all_ids = torch.arange(1, V + 1)  # every item except padding, the positive included
    sampled = sampled_softmax_loss(
        query, table[targets], targets, table[all_ids], all_ids, temperature=0.3, similarity=similarity
    )
    (g_sampled,) = torch.autograd.grad(sampled, table)
    full = full_softmax_loss(query, table, targets, temperature=0.3, similarity=similarity)
    (g_full,) = torch.autograd.grad(full, table)
    torch.testing.assert_close(sampled, full)
    torch.testing.assert_close(g_sampled, g_full)
    # Without masking the positive is counted twice (once as target, once as its own negative):
    # the loss is then larger, which shows the mask is what makes the two agree.
    unmasked = sampled_softmax_loss(
        query,
        table[targets],
        targets,
        table[all_ids],
        all_ids,
        temperature=0.3,
        similarity=similarity,
        mask_accidental_hits=False,
    )
    assert unmasked > full + 1e-3


@pytest.mark.parametrize("similarity", ["dot", "cosine"])
def test_per_row_negatives_match_row_by_row_shared_losses(similarity: Similarity) -> None:
    table, query, targets = _setup(1)
    g = torch.Generator().manual_seed(5)
    neg_ids = torch.randint(1, V + 1, (M, 6), generator=g)  # (M, R): each row its own, hits included
    neg_ids[0, 2] = targets[0]  # an accidental hit, masked in row 0 only
    log_q = torch.rand(M, 6, generator=g)
    pos_log_q = torch.rand(M, generator=g)
    kw = {"temperature": 0.4, "similarity": similarity}
    per_row = sampled_softmax_loss(
        query,
        table[targets],
        targets,
        table[neg_ids],
        neg_ids,
        positive_log_q=pos_log_q,
        negative_log_q=log_q,
        reduction="none",
        **kw,
    )
    for m in range(M):  # row m alone, with its negatives as a shared set of one row
        alone = sampled_softmax_loss(
            query[m : m + 1],
            table[targets[m : m + 1]],
            targets[m : m + 1],
            table[neg_ids[m]],
            neg_ids[m],
            positive_log_q=pos_log_q[m : m + 1],
            negative_log_q=log_q[m],
            **kw,
        )
        torch.testing.assert_close(per_row[m], alone)
    # the same negatives in every row, given per row, equal the shared form
    shared_ids = neg_ids[1]
    shared = sampled_softmax_loss(query, table[targets], targets, table[shared_ids], shared_ids, **kw)
    rows = shared_ids.expand(M, -1)
    torch.testing.assert_close(sampled_softmax_loss(query, table[targets], targets, table[rows], rows, **kw), shared)
    # looked up in the whole table's logits: the same losses and the same gradients as the gathered (M, R, D)
    leaf = table.detach().requires_grad_(True)
    q = query.detach().requires_grad_(True)
    grads = []
    for form in ("gather", "table"):
        leaf.grad = q.grad = None
        out = sampled_softmax_loss(
            q,
            leaf[targets],
            targets,
            leaf[neg_ids] if form == "gather" else None,
            neg_ids,
            positive_log_q=pos_log_q,
            negative_log_q=log_q,
            reduction="none",
            item_table=leaf if form == "table" else None,
            **kw,
        )
        torch.testing.assert_close(out, per_row)
        out.sum().backward()
        grads.append((leaf.grad.clone(), q.grad.clone()))
    torch.testing.assert_close(grads[0], grads[1])
    with pytest.raises(ValueError, match="exactly one"):
        sampled_softmax_loss(query, table[targets], targets, table[neg_ids], neg_ids, item_table=table, **kw)
    with pytest.raises(ValueError, match="item_table must be"):
        sampled_softmax_loss(query, table[targets], targets, None, neg_ids, item_table=table[:, :2], **kw)
    with pytest.raises(ValueError, match=r"\(M, R, D\)"):
        sampled_softmax_loss(query, table[targets], targets, table[neg_ids[:3]], neg_ids[:3], **kw)
    with pytest.raises(ValueError, match="negative_ids"):
        sampled_softmax_loss(query, table[targets], targets, table[neg_ids], neg_ids[:, :2], **kw)


def test_full_softmax_against_cross_entropy_and_padding_excluded() -> None:
    table, query, targets = _setup(1)
    logits = query @ table.T / 0.5
    expected = F.cross_entropy(logits[:, 1:], targets - 1)
    torch.testing.assert_close(full_softmax_loss(query, table, targets, temperature=0.5), expected)
    with_pad = full_softmax_loss(query, table, targets, temperature=0.5, exclude_padding=False)
    torch.testing.assert_close(with_pad, F.cross_entropy(logits, targets))
    assert with_pad > expected  # the padding row adds mass to the partition function


def test_log_q_hand_computed() -> None:
    query = torch.tensor([[1.0, 0.0]])
    positive = torch.tensor([[2.0, 0.0]])
    negatives = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    t = 0.5
    lq_pos, lq_neg = math.log(0.5), [math.log(0.25), math.log(0.125)]
    loss = sampled_softmax_loss(
        query,
        positive,
        torch.tensor([1]),
        negatives,
        torch.tensor([2, 3]),
        temperature=t,
        positive_log_q=torch.tensor([lq_pos]),
        negative_log_q=torch.tensor(lq_neg),
    )
    # s = <q, e> / T - log Q: positive 2 / 0.5 - log .5, negatives 1 / 0.5 - log .25 and 0 - log .125.
    s = [4.0 - lq_pos, 2.0 - lq_neg[0], 0.0 - lq_neg[1]]
    expected = -s[0] + math.log(sum(math.exp(x) for x in s))
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    plain = sampled_softmax_loss(
        query, positive, torch.tensor([1]), negatives, torch.tensor([2, 3]), temperature=t
    )  # no correction: a different number
    assert plain.item() == pytest.approx(-4.0 + math.log(math.exp(4) + math.exp(2) + 1), rel=1e-6)
    assert abs(plain.item() - expected) > 0.1


def test_log_q_constant_shift_cancels_and_half_correction_is_refused() -> None:
    table, query, targets = _setup(2)
    neg_ids = torch.tensor([1, 4, 6, 9])
    g = torch.Generator().manual_seed(9)
    lq_pos, lq_neg = torch.randn(M, generator=g), torch.randn(4, generator=g)
    args = (query, table[targets], targets, table[neg_ids], neg_ids)
    a = sampled_softmax_loss(*args, temperature=0.2, positive_log_q=lq_pos, negative_log_q=lq_neg)
    b = sampled_softmax_loss(*args, temperature=0.2, positive_log_q=lq_pos + 3.0, negative_log_q=lq_neg + 3.0)
    torch.testing.assert_close(a, b)  # expected count vs probability: a constant log R, no effect
    with pytest.raises(ValueError, match="both"):
        sampled_softmax_loss(*args, temperature=0.2, negative_log_q=lq_neg)


def test_accidental_hit_contributes_nothing_and_gets_no_gradient() -> None:
    g = torch.Generator().manual_seed(7)
    query = torch.randn(3, D, generator=g)
    positive = torch.randn(3, D, generator=g)
    pos_ids = torch.tensor([5, 5, 5])
    negatives = torch.randn(4, D, generator=g).requires_grad_(True)
    neg_ids = torch.tensor([2, 5, 7, 9])  # column 1 is every row's positive
    loss = sampled_softmax_loss(query, positive, pos_ids, negatives, neg_ids, temperature=0.1)
    loss.backward()
    assert negatives.grad is not None
    assert torch.equal(negatives.grad[1], torch.zeros(D))
    assert negatives.grad[[0, 2, 3]].abs().sum() > 0
    keep = [0, 2, 3]
    without = sampled_softmax_loss(query, positive, pos_ids, negatives[keep], neg_ids[keep], temperature=0.1)
    torch.testing.assert_close(loss, without)
    # Masking is per row: id 5 is a hit only for the rows whose positive is 5.
    mixed_pos = torch.tensor([5, 3, 5])
    per_row = sampled_softmax_loss(
        query, positive, mixed_pos, negatives, neg_ids, temperature=1.0, reduction="none"
    ).detach()
    per_row_without = sampled_softmax_loss(
        query, positive, mixed_pos, negatives[keep], neg_ids[keep], temperature=1.0, reduction="none"
    ).detach()
    torch.testing.assert_close(per_row[[0, 2]], per_row_without[[0, 2]])
    assert per_row[1] > per_row_without[1]  # row 1 does see item 5 as a negative


def test_all_negatives_masked_gives_zero_loss() -> None:
    loss = sampled_softmax_loss(
        torch.randn(2, D),
        torch.randn(2, D),
        torch.tensor([4, 4]),
        torch.randn(2, D),
        torch.tensor([4, 4]),
        temperature=1.0,
        reduction="none",
    )
    torch.testing.assert_close(loss, torch.zeros(2))


def test_cosine_ignores_scale_and_matches_normalized_dot() -> None:
    table, query, targets = _setup(3)
    neg_ids = torch.tensor([2, 3, 8])
    cos = sampled_softmax_loss(
        query, table[targets], targets, table[neg_ids], neg_ids, temperature=0.05, similarity="cosine"
    )
    qn, tn = F.normalize(query, dim=-1), F.normalize(table, dim=-1)
    dot_of_unit = sampled_softmax_loss(qn, tn[targets], targets, tn[neg_ids], neg_ids, temperature=0.05)
    torch.testing.assert_close(cos, dot_of_unit)
    scaled = sampled_softmax_loss(
        query * 7.0, table[targets], targets, table[neg_ids], neg_ids, temperature=0.05, similarity="cosine"
    )
    torch.testing.assert_close(cos, scaled)
    dot = sampled_softmax_loss(query, table[targets], targets, table[neg_ids], neg_ids, temperature=0.05)
    dot_scaled = sampled_softmax_loss(query * 7.0, table[targets], targets, table[neg_ids], neg_ids, temperature=0.05)
    assert abs(dot.item() - dot_scaled.item()) > 1e-3
    with pytest.raises(ValueError, match="similarity"):
        sampled_softmax_loss(query, table[targets], targets, table[neg_ids], neg_ids, temperature=1.0, similarity="l2")  # type: ignore[arg-type]


def test_reductions_and_weights() -> None:
    table, query, targets = _setup(4)
    neg_ids = torch.tensor([1, 2, 3, 4, 5])
    args = (query, table[targets], targets, table[neg_ids], neg_ids)
    per_row = sampled_softmax_loss(*args, temperature=0.5, reduction="none")
    assert per_row.shape == (M,)
    assert (per_row >= 0).all()
    torch.testing.assert_close(sampled_softmax_loss(*args, temperature=0.5, reduction="sum"), per_row.sum())
    torch.testing.assert_close(sampled_softmax_loss(*args, temperature=0.5), per_row.mean())
    w = torch.tensor([1.0, 0.0, 2.0, 0.0, 1.0, 3.0, 0.5])
    torch.testing.assert_close(sampled_softmax_loss(*args, temperature=0.5, weights=w), (per_row * w).sum() / w.sum())
    torch.testing.assert_close(sampled_softmax_loss(*args, temperature=0.5, weights=w, reduction="none"), per_row * w)
    torch.testing.assert_close(
        sampled_softmax_loss(*args, temperature=0.5, weights=w * 10),
        sampled_softmax_loss(*args, temperature=0.5, weights=w),
    )  # weighted mean: the scale of the weights does not matter
    zero = sampled_softmax_loss(*args, temperature=0.5, weights=torch.zeros(M))
    assert zero.item() == 0.0  # not NaN
    with pytest.raises(ValueError, match="reduction"):
        sampled_softmax_loss(*args, temperature=0.5, reduction="max")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="weights"):
        sampled_softmax_loss(*args, temperature=0.5, weights=torch.ones(M + 1))


def test_temperature_scales_logits_and_tensor_temperature_gets_gradient() -> None:
    table, query, targets = _setup(5)
    neg_ids = torch.tensor([1, 6, 11])
    args = (query, table[targets], targets, table[neg_ids], neg_ids)
    # Dividing by T is the same as scaling the query by 1 / T (dot similarity, no logQ).
    torch.testing.assert_close(
        sampled_softmax_loss(*args, temperature=0.25),
        sampled_softmax_loss(query * 4.0, *args[1:], temperature=1.0),
    )
    t = torch.tensor(0.25, requires_grad=True)
    sampled_softmax_loss(*args, temperature=t).backward()
    assert t.grad is not None and t.grad.abs() > 0


def test_learned_temperature_clipping_and_gradients() -> None:
    lt = LearnedTemperature(init=0.05, min=0.01, max=100.0)
    assert lt().item() == pytest.approx(0.05, rel=1e-6)

    def grad_at(tau: float) -> tuple[float, float]:
        with torch.no_grad():
            lt.tau.fill_(tau)
        lt.tau.grad = None
        temp = lt()
        (temp * 3.0).backward()
        assert lt.tau.grad is not None
        return temp.item(), lt.tau.grad.item()

    t, g = grad_at(math.log(1.0))  # inside: dT/dtau = T
    assert t == pytest.approx(1.0) and g == pytest.approx(3.0)
    t, g = grad_at(math.log(0.001))  # below: clipped to min, no gradient
    assert t == pytest.approx(0.01, rel=1e-6) and g == 0.0
    t, g = grad_at(math.log(1e4))  # above: clipped to max, no gradient
    assert t == pytest.approx(100.0, rel=1e-6) and g == 0.0
    # Exactly at a bound the gradient passes (clamp semantics, documented on the class).
    t, g = grad_at(math.log(0.01))
    assert t == pytest.approx(0.01, rel=1e-6) and g == pytest.approx(3.0 * 0.01, rel=1e-5)
    t, g = grad_at(math.log(100.0))
    assert t == pytest.approx(100.0, rel=1e-6) and g == pytest.approx(300.0, rel=1e-5)
    with pytest.raises(ValueError, match="min"):
        LearnedTemperature(init=0.001)
    assert [name for name, _ in lt.named_parameters()] == ["tau"]


def test_learned_temperature_trains_through_the_loss() -> None:
    table, query, targets = _setup(6)
    neg_ids = torch.tensor([2, 5, 7])
    lt = LearnedTemperature(init=1.0)
    loss = sampled_softmax_loss(query, table[targets], targets, table[neg_ids], neg_ids, temperature=lt())
    loss.backward()
    assert lt.tau.grad is not None and lt.tau.grad.abs() > 0


def test_binary_feedback_loss_masks_nan_and_padding() -> None:
    nan = float("nan")
    logits = torch.tensor([[[0.5, -1.0], [2.0, 0.3], [9.0, 9.0]]], requires_grad=True)  # (B=1, N=3, F=2)
    labels = torch.tensor([[[1.0, nan], [0.0, 1.0], [1.0, 0.0]]])
    mask = torch.tensor([[True, True, False]])  # the third event is padding
    per_signal = binary_feedback_loss(logits, labels, mask, reduction="none")

    def bce(x: float, y: float) -> float:
        return F.binary_cross_entropy_with_logits(torch.tensor(x), torch.tensor(y)).item()

    expected = torch.tensor([(bce(0.5, 1.0) + bce(2.0, 0.0)) / 2, bce(0.3, 1.0)])
    torch.testing.assert_close(per_signal, expected)
    w = torch.tensor([2.0, 0.5])
    total = binary_feedback_loss(logits, labels, mask, w)
    torch.testing.assert_close(total, (expected * w).sum())
    total.backward()
    assert logits.grad is not None
    assert torch.isfinite(logits.grad).all()
    assert logits.grad[0, 0, 1] == 0 and (logits.grad[0, 2] == 0).all()  # NaN label, padding
    assert logits.grad[0, 0, 0] != 0
    # A signal observed nowhere contributes 0, not NaN.
    unseen = binary_feedback_loss(torch.zeros(2, 1), torch.full((2, 1), nan), reduction="none")
    assert unseen.item() == 0.0
    with pytest.raises(ValueError, match="mask"):
        binary_feedback_loss(logits, labels, torch.ones(3, dtype=torch.bool))


def test_pairwise_logistic_loss() -> None:
    a = torch.tensor([2.0, 0.0, -1.0, 30.0], requires_grad=True)
    b = torch.tensor([0.0, 0.0, 1.0, -30.0])
    per_pair = pairwise_logistic_loss(a, b, reduction="none")
    torch.testing.assert_close(per_pair, -F.logsigmoid(a - b))
    assert per_pair[1].item() == pytest.approx(math.log(2.0))
    assert per_pair[3].item() < 1e-12 and torch.isfinite(per_pair).all()  # no overflow
    assert per_pair[2] > per_pair[1] > per_pair[0]  # a wrongly ordered pair costs more
    w = torch.tensor([1.0, 2.0, 0.0, 1.0])
    weighted = pairwise_logistic_loss(a, b, w)
    torch.testing.assert_close(weighted, (per_pair * w).sum() / w.sum())
    weighted.backward()
    assert a.grad is not None and a.grad[2] == 0 and a.grad[0] < 0  # raising a's score lowers the loss


def test_feedback_loss_matches_hand_bce_soft_targets_nan_mask_and_weights() -> None:
    nan = float("nan")
    like_logits = torch.tensor([[0.5, -1.0, 2.0], [0.3, 4.0, -2.0]], requires_grad=True)  # (B=2, N=3)
    played_logits = torch.tensor([[1.0, 0.0, -0.5], [2.0, 7.0, 7.0]], requires_grad=True)
    like = torch.tensor([[1.0, nan, 0.0], [0.0, 1.0, 1.0]])
    played = torch.tensor([[0.25, 1.0, 0.5], [nan, 0.0, 0.75]])  # soft targets in [0, 1]
    mask = torch.tensor([[True, True, True], [True, True, False]])  # the last event is padding

    def bce(x: float, y: float) -> float:  # by hand: -(y log σ(x) + (1 - y) log(1 - σ(x)))
        s = 1 / (1 + math.exp(-x))
        return -(y * math.log(s) + (1 - y) * math.log(1 - s))

    exp_like = (bce(0.5, 1) + bce(2.0, 0) + bce(0.3, 0) + bce(4.0, 1)) / 4
    exp_played = (bce(1.0, 0.25) + bce(0.0, 1.0) + bce(-0.5, 0.5) + bce(7.0, 0.0)) / 4
    total, per = feedback_loss(
        {"like": like_logits, "played": played_logits},
        {"like": like, "played": played},
        {"like": "binary", "played": "continuous"},
        weights={"played": 0.5},  # like is left out: weight 1
        mask=mask,
    )
    assert set(per) == {"like", "played"}
    assert per["like"].item() == pytest.approx(exp_like, rel=1e-5)
    assert per["played"].item() == pytest.approx(exp_played, rel=1e-5)
    assert total.item() == pytest.approx(exp_like + 0.5 * exp_played, rel=1e-5)
    total.backward()
    assert like_logits.grad is not None and played_logits.grad is not None
    assert torch.isfinite(like_logits.grad).all() and torch.isfinite(played_logits.grad).all()
    assert like_logits.grad[0, 1] == 0 and like_logits.grad[1, 2] == 0  # NaN label, padding
    assert played_logits.grad[1, 0] == 0 and played_logits.grad[1, 2] == 0
    # Soft-target gradient is w * (σ(x) - y) / n_observed: zero exactly where σ(x) = y.
    assert played_logits.grad[0, 0].item() == pytest.approx(0.5 * (torch.sigmoid(torch.tensor(1.0)).item() - 0.25) / 4)
    assert played_logits.grad[0, 1].item() == pytest.approx(0.5 * (0.5 - 1.0) / 4)

    # Without weights and mask: the plain sum of the per-signal means, padding now counted.
    total2, per2 = feedback_loss(
        {"like": like_logits, "played": played_logits},
        {"like": like, "played": played},
        {"like": "binary", "played": "continuous"},
    )
    assert per2["like"].item() == pytest.approx((4 * exp_like + bce(-2.0, 1)) / 5, rel=1e-5)
    assert total2.item() == pytest.approx(per2["like"].item() + per2["played"].item(), rel=1e-6)


def test_feedback_loss_zero_observed_is_zero_with_finite_gradient() -> None:
    nan = float("nan")
    x = torch.tensor([[0.4, -3.0]], requires_grad=True)
    z = torch.tensor([[1.0, 2.0]], requires_grad=True)
    total, per = feedback_loss(
        {"like": x, "skip": z},
        {"like": torch.full((1, 2), nan), "skip": torch.tensor([[1.0, 0.0]])},
        {"like": "binary", "skip": "binary"},
        mask=torch.tensor([[False, False]]),  # nothing counts at all
        weights={"like": 3.0, "skip": 2.0},
    )
    assert total.item() == 0.0 and per["like"].item() == 0.0 and per["skip"].item() == 0.0
    assert total.requires_grad
    total.backward()
    assert x.grad is not None and z.grad is not None
    assert (x.grad == 0).all() and (z.grad == 0).all()  # finite: exactly zero, not NaN
    # One signal unobserved, the other observed: the unobserved one adds exactly 0.
    total, per = feedback_loss(
        {"like": x, "skip": z},
        {"like": torch.full((1, 2), nan), "skip": torch.tensor([[1.0, 0.0]])},
        {"like": "binary", "skip": "binary"},
    )
    assert per["like"].item() == 0.0 and total.item() == pytest.approx(per["skip"].item()) and total.item() > 0


def test_feedback_loss_rejects_bad_input() -> None:
    x = torch.zeros(2, 3)
    y = torch.zeros(2, 3)
    with pytest.raises(ValueError, match="binary"):
        feedback_loss({"like": x}, {"like": torch.full((2, 3), 0.5)}, {"like": "binary"})
    with pytest.raises(ValueError, match=r"outside \[0, 1\]"):
        feedback_loss({"played": x}, {"played": torch.full((2, 3), 1.5)}, {"played": "continuous"})
    # Unchecked, a soft label to a binary signal is simply used as a soft target.
    total, _ = feedback_loss({"like": x}, {"like": torch.full((2, 3), 0.5)}, {"like": "binary"}, check_labels=False)
    assert total.item() == pytest.approx(math.log(2.0))
    with pytest.raises(ValueError, match="same signals"):
        feedback_loss({"like": x}, {"skip": y}, {"like": "binary"})
    with pytest.raises(ValueError, match="kind must be"):
        feedback_loss({"like": x}, {"like": y}, {})
    with pytest.raises(ValueError, match="weights name"):
        feedback_loss({"like": x}, {"like": y}, {"like": "binary"}, weights={"lik": 1.0})
    with pytest.raises(ValueError, match="mask"):
        feedback_loss({"like": x}, {"like": y}, {"like": "binary"}, mask=torch.ones(3, dtype=torch.bool))
    with pytest.raises(ValueError, match="shape"):
        feedback_loss({"like": x}, {"like": torch.zeros(3, 2)}, {"like": "binary"})
    with pytest.raises(ValueError, match="at least one"):
        feedback_loss({}, {}, {})


def test_feedback_loss_agrees_with_binary_feedback_loss_on_stacked_signals() -> None:
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 5, 2, generator=g)  # (B, N, F)
    labels = (torch.rand(3, 5, 2, generator=g) < 0.4).float()
    labels[torch.rand(3, 5, 2, generator=g) < 0.3] = float("nan")
    mask = torch.rand(3, 5, generator=g) < 0.8
    names = ["like", "skip"]
    total, per = feedback_loss(
        {n: logits[..., f] for f, n in enumerate(names)},
        {n: labels[..., f] for f, n in enumerate(names)},
        dict.fromkeys(names, "binary"),
        weights={"like": 2.0, "skip": 0.25},
        mask=mask,
    )
    stacked = binary_feedback_loss(logits, labels, mask, reduction="none")
    torch.testing.assert_close(torch.stack([per[n] for n in names]), stacked)
    torch.testing.assert_close(total, binary_feedback_loss(logits, labels, mask, torch.tensor([2.0, 0.25])))
