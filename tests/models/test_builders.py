"""Model assembly: every kind builds and runs, is causal and padding-invariant; presets and parameter counts."""

from __future__ import annotations

import pytest
import torch

from argusrec.config import LossConfig, ModelConfig, RunConfig, load_config, preset_names
from argusrec.errors import ArgusrecError
from argusrec.models.argus import Argus, transformer_parameters
from argusrec.models.builders import build_argus_model, build_model, count_parameters

CAUSAL_KINDS = ["sasrec", "llama", "hstu", "fuxi"]
KINDS = [*CAUSAL_KINDS, "bsarec"]  # bsarec mixes its window: only its last state is a history state


def _model(kind: str, **kw):
    torch.manual_seed(0)
    cfg = ModelConfig(kind=kind, dim=16, layers=2, heads=2, dropout=0.0, **kw)
    return build_model(cfg, LossConfig(), n_items=30, max_len=12).eval()


def _inputs(b: int = 3, n: int = 8, pad: int = 2):
    g = torch.Generator().manual_seed(1)
    items = torch.randint(1, 31, (b, n), generator=g)
    valid = torch.ones(b, n, dtype=torch.bool)
    valid[:, :pad] = False
    items[~valid] = 0
    ts = torch.cumsum(torch.randint(1, 5000, (b, n), generator=g), dim=1)
    query = torch.cat([ts[:, 1:], ts[:, -1:] + 60], dim=1)
    return items, valid, ts, query


@pytest.mark.parametrize("kind", KINDS)
def test_forward_shapes_and_scoring(kind: str) -> None:
    model = _model(kind)
    items, valid, ts, q = _inputs()
    states = model(items, valid, ts, q)
    assert states.shape == (3, 8, 16) and torch.isfinite(states).all()
    assert (states[~valid] == 0).all()
    table = model.all_item_vectors()
    assert table.shape == (31, 16)
    torch.testing.assert_close(model.item_vectors(torch.tensor([5])), table[5:6])


@pytest.mark.parametrize("kind", CAUSAL_KINDS)
def test_causal_a_later_item_never_changes_an_earlier_state(kind: str) -> None:
    model = _model(kind)
    items, valid, ts, q = _inputs()
    before = model(items, valid, ts, q)
    changed = items.clone()
    changed[:, 6] = (changed[:, 6] % 30) + 1
    after = model(changed, valid, ts, q)
    torch.testing.assert_close(before[:, :6], after[:, :6])
    assert not torch.allclose(before[:, 6], after[:, 6])


@pytest.mark.parametrize("kind", KINDS)
def test_left_padding_does_not_change_the_user_vector(kind: str) -> None:
    model = _model(kind)
    items, valid, ts, q = _inputs(pad=0, n=6)
    short = model(items, valid, ts, q)[:, -1]
    pad = torch.zeros(3, 4, dtype=items.dtype)
    padded = model(
        torch.cat([pad, items], 1),
        torch.cat([pad.bool(), valid], 1),
        torch.cat([pad, ts], 1),
        torch.cat([pad, q], 1),
    )[:, -1]
    torch.testing.assert_close(short, padded, atol=1e-5, rtol=1e-5)


def test_normal_init_draws_every_matrix_from_n_0_002_and_zeroes_biases() -> None:
    model = _model("bsarec", init="normal")
    matrices = [p for p in model.parameters() if p.dim() > 1]
    values = torch.cat([p.detach().flatten() for p in matrices])
    assert abs(float(values.std()) - 0.02) < 0.002
    biases = [p for n, p in model.named_parameters() if n.endswith(".bias")]
    assert biases and all(bool((b == 0).all()) for b in biases)
    assert bool((model.items.table.weight[0] == 0).all())  # the padding row stays zero
    norms = [m for m in model.modules() if isinstance(m, torch.nn.LayerNorm)]
    assert norms and all(bool((m.weight == 1).all()) for m in norms)  # gains untouched
    gains = torch.cat([p.detach() for n, p in model.named_parameters() if n.endswith("sqrt_beta")])
    assert float(gains.std()) > 0.3  # the filter's N(0, 1) gains untouched
    default = _model("bsarec")  # the linear layers' own init has non-zero biases: the zeros above come from init
    linear_biases = [m.bias for m in default.modules() if isinstance(m, torch.nn.Linear) and m.bias is not None]
    assert linear_biases and all(bool((b != 0).any()) for b in linear_biases)


class _Identity(torch.nn.Module):
    """An encoder that hands back its input, to see what the input stage built."""

    def forward(self, x, **_):
        return x


def test_bsarec_input_is_normalised_then_dropped_out_as_in_the_authors_code() -> None:
    torch.manual_seed(0)
    cfg = ModelConfig(kind="bsarec", dim=16, layers=1, heads=1, dropout=0.5)
    model = build_model(cfg, LossConfig(), n_items=30, max_len=12)
    assert model.input_norm is not None and model.encoder.norm is None  # post-norm: input normalised, not output
    model.encoder = _Identity()
    items, valid, _, _ = _inputs()
    with torch.no_grad():
        x = model.items(items) * model.scale + model.positions(model.positions.positions(valid))
        normed = torch.nn.functional.layer_norm(x, (16,))  # gain 1, bias 0 at init
        model.train()
        got = model(items, valid)
    kept = got[valid] != 0
    assert 0.3 < float(kept.float().mean()) < 0.7  # about half the entries dropped
    torch.testing.assert_close(got[valid][kept], 2.0 * normed[valid][kept])  # survivors: LN(x) / (1 - p)
    assert (got[~valid] == 0).all()
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(items, valid)[valid], normed[valid])


@pytest.mark.parametrize("kind", CAUSAL_KINDS)
def test_pre_norm_kinds_have_no_input_norm(kind: str) -> None:
    assert _model(kind).input_norm is None


def test_hashed_item_embedding_builds_and_has_fixed_memory() -> None:
    small = _model("sasrec", item_embedding="hashed", hash_buckets=1024)
    table_params = sum(p.numel() for p in small.items.parameters())
    big = build_model(
        ModelConfig(kind="sasrec", dim=16, heads=2, item_embedding="hashed", hash_buckets=1024),
        LossConfig(),
        n_items=1_000_000,
        max_len=12,
    )
    assert sum(p.numel() for p in big.items.parameters()) == table_params  # independent of the catalog size
    assert small.all_item_vectors().shape == (31, 16)


def test_count_parameters_separates_embeddings() -> None:
    model = _model("sasrec")
    total, non_embedding = count_parameters(model)
    embeddings = 31 * 16 + 12 * 16  # item table + learned positions
    assert total - non_embedding == embeddings
    assert non_embedding > 0


SIMULATED_CONTEXT = {"surface": 5, "device": 3}
SIMULATED_FEEDBACK = {"played_ratio": "continuous", "skip": "binary", "like": "binary", "dislike": "binary"}


def _simulated_argus(cfg: RunConfig, *, n_items: int) -> Argus:
    """An ARGUS model of ``cfg`` over the simulator's context fields and feedback signals."""
    return build_argus_model(
        cfg.model,
        cfg.argus,
        vocab_sizes=SIMULATED_CONTEXT,
        feedback_signals=SIMULATED_FEEDBACK,
        n_items=n_items,
        max_len=cfg.data.max_len,
    )


ARGUS_SIZES = {"argus-1m": 1e6, "argus-3m": 3.2e6, "argus-30m": 30e6, "argus-300m": 300e6, "argus-1b": 1e9}


@pytest.mark.parametrize("name", [n for n in preset_names() if not n.startswith("argus-")])
def test_every_preset_loads_and_builds_on_the_meta_device(name: str) -> None:
    cfg = load_config(name)
    with torch.device("meta"):
        model = build_model(cfg.model, cfg.loss, n_items=3706, max_len=cfg.data.max_len)
    total, non_embedding = count_parameters(model)
    assert 0 < non_embedding < total


@pytest.mark.parametrize("name", [n for n in preset_names() if n.startswith("argus-")])
def test_argus_presets_have_the_advertised_transformer_size(name: str) -> None:
    """ARGUS.md §6: the scaling range 3.2M .. 1B transformer parameters (embeddings excluded)."""
    cfg = load_config(name)
    assert cfg.task == "argus"
    with torch.device("meta"):
        model = _simulated_argus(cfg, n_items=1_000_000)
    size = transformer_parameters(model)
    if name in ARGUS_SIZES:
        assert 0.85 * ARGUS_SIZES[name] < size < 1.15 * ARGUS_SIZES[name], f"{name}: {size:,}"
    else:
        assert size < 1e6  # argus-tiny: seconds on a CPU


def test_paper_sizes_give_the_expected_parameter_order() -> None:
    """HSTU-large ML-1M (8 layers, d 50) is several times HSTU (2 layers); ML-20M models are larger still."""
    sizes = {}
    for name in ("hstu-ml-1m", "hstu-large-ml-1m", "hstu-ml-20m"):
        cfg = load_config(name)
        with torch.device("meta"):
            sizes[name] = count_parameters(build_model(cfg.model, cfg.loss, n_items=10, max_len=200))[1]
    assert sizes["hstu-large-ml-1m"] > 3 * sizes["hstu-ml-1m"]
    assert sizes["hstu-ml-20m"] > sizes["hstu-large-ml-1m"]


def test_argus_config_passes_the_fp_bilinear_rank_through() -> None:
    cfg = load_config("argus-tiny", overrides=["argus.fp_bilinear_rank=4"])
    model = _simulated_argus(cfg, n_items=50)
    assert model.fp_bilinear is not None
    assert (model.fp_bilinear.rank, model.fp_bilinear.n_signals) == (4, len(SIMULATED_FEEDBACK))
    with pytest.raises(ArgusrecError, match="fp_bilinear_rank"):
        load_config("argus-tiny", overrides=["argus.fp_bilinear_rank=-1"])


def test_sasrec_residual_reaches_every_block() -> None:
    cfg = load_config("sasrec-beauty", overrides=["model.residual=normed", "model.layers=2"])
    model = build_model(cfg.model, cfg.loss, n_items=30, max_len=cfg.data.max_len)
    residuals = [m.residual for m in model.modules() if hasattr(m, "residual") and isinstance(m.residual, str)]
    assert residuals == ["normed", "normed"]


def test_attend_padding_counts_the_window_and_ignores_the_batch_layout() -> None:
    """Padding slots are the model window's (max_len − n), so padding a batch further changes nothing, while the
    states differ from the masked model's (same weights) for histories shorter than the window."""
    padded_model = _model("sasrec", attend_padding=True)
    windows = [m.attn.padding_window for m in padded_model.modules() if hasattr(m, "attn")]
    assert windows == [12, 12]
    items, valid, ts, q = _inputs(pad=0, n=6)
    short = padded_model(items, valid, ts, q)[:, -1]
    pad = torch.zeros(3, 4, dtype=items.dtype)
    longer = padded_model(
        torch.cat([pad, items], 1), torch.cat([pad.bool(), valid], 1), torch.cat([pad, ts], 1), torch.cat([pad, q], 1)
    )[:, -1]
    torch.testing.assert_close(short, longer, atol=1e-5, rtol=1e-5)
    plain = _model("sasrec")
    plain.load_state_dict(padded_model.state_dict())
    assert (plain(items, valid, ts, q)[:, -1] - short).abs().max() > 1e-3


def test_padding_content_pads_every_batch_to_the_window_and_its_slots_count() -> None:
    """The model pads every batch to max_len itself, so extra batch padding changes nothing; the padding slots'
    content reaches the last state (it differs from the zero-padded model with the same weights)."""
    model = _model("bsarec", padding_content=True)
    assert all(m.padding_content for m in model.modules() if hasattr(m, "filter"))
    items, valid, ts, q = _inputs(pad=0, n=6)
    states = model(items, valid, ts, q)
    assert states.shape == (3, 6, 16)
    pad = torch.zeros(3, 4, dtype=items.dtype)
    longer = model(
        torch.cat([pad, items], 1), torch.cat([pad.bool(), valid], 1), torch.cat([pad, ts], 1), torch.cat([pad, q], 1)
    )
    torch.testing.assert_close(states[:, -1], longer[:, -1], atol=1e-5, rtol=1e-5)
    assert (longer[:, :4] == 0).all()  # states at padding are still handed back as zeros
    plain = _model("bsarec")
    plain.load_state_dict(model.state_dict())
    assert (plain(items, valid, ts, q)[:, -1] - states[:, -1]).abs().max() > 1e-3
    with pytest.raises(ValueError, match="at most 12 events"):
        model(torch.ones(1, 13, dtype=torch.long), torch.ones(1, 13, dtype=torch.bool))


def test_padding_content_slots_hold_the_normalised_position_vectors() -> None:
    """The window the blocks get: LN(item x scale + position) at real slots, LN(position) at padding slots."""
    model = _model("bsarec", padding_content=True)
    seen = {}

    class Capture(torch.nn.Module):
        def forward(self, x, *, valid, **_):
            seen["x"], seen["valid"] = x, valid
            return x

    model.encoder = Capture()
    items, valid, _, _ = _inputs(n=8, pad=3)
    with torch.no_grad():
        model(items, valid)
        x, window_valid = seen["x"], seen["valid"]
        assert x.shape == (3, 12, 16) and torch.equal(window_valid[:, -8:], valid) and not window_valid[:, :4].any()
        positions = model.positions(12)[0]  # (12, D), counted back from the window's last slot
        expected = model.items(torch.nn.functional.pad(items, (4, 0))) * model.scale + positions
        expected = model.input_norm(expected)
        torch.testing.assert_close(x, expected)
        torch.testing.assert_close(x[0, 0], model.input_norm(positions[0]))  # a padding slot: LN(position)


def test_xavier_init_and_input_scale_options() -> None:
    """model.init=xavier: RecTools' initialisation (every matrix Xavier-normal, padding row kept zero);
    model.input_scale overrides the kind's sqrt(D) convention."""
    n_items = 500
    base = load_config("sasrec-beauty")
    plain = build_model(base.model, base.loss, n_items=n_items, max_len=base.data.max_len)
    torch.manual_seed(0)
    cfg = load_config("sasrec-beauty", overrides=["model.init=xavier", "model.input_scale=false"])
    xavier = build_model(cfg.model, cfg.loss, n_items=n_items, max_len=cfg.data.max_len)
    table = xavier.items.table.weight.detach()
    d = cfg.model.dim
    expected_std = (2.0 / (n_items + 1 + d)) ** 0.5
    assert abs(float(table[1:].std()) - expected_std) < 0.1 * expected_std
    assert abs(float(plain.items.table.weight.detach()[1:].std()) - 0.02) < 0.002  # the default: N(0, 0.02)
    assert torch.equal(table[0], torch.zeros(d))
    assert plain.scale == d**0.5 and xavier.scale == 1.0
