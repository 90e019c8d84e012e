"""Run configs: unknown keys and impossible values fail at load time, naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from argusrec.config import load_config
from argusrec.errors import ArgusrecError


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "run.yaml"
    path.write_text(text)
    return path


def test_minimal_config_gets_defaults_and_overrides(tmp_path: Path) -> None:
    path = _write(tmp_path, "data: {path: somewhere}\n")
    cfg = load_config(path, ["train.epochs=3", "model.kind=hstu", "loss.temperature=learned"])
    assert cfg.train.epochs == 3 and cfg.model.kind == "hstu" and cfg.loss.temperature == "learned"
    assert cfg.data.max_len == 50


def test_unset_similarity_follows_the_model(tmp_path: Path) -> None:
    path = _write(tmp_path, "data: {path: somewhere}\n")
    assert load_config(path).loss.similarity == "dot"
    assert load_config(path, ["model.normalize=true"]).loss.similarity == "cosine"
    assert load_config(path, ["task=argus", "model.normalize=true"]).loss.similarity == "dot"  # ARGUS: dot
    # the resolved value is written, so a run's config.yaml reads back the same
    cfg = load_config(path, ["model.normalize=true"])
    assert load_config(_write(tmp_path, cfg.to_yaml())).loss == cfg.loss


@pytest.mark.parametrize(
    ("text", "overrides", "message"),
    [
        ("data: {path: x}\nmodel: {dimm: 3}\n", [], "model.dimm: unknown key"),
        ("data: {path: x}\n", ["train.epochz=3"], "train.epochz: unknown key"),
        ("data: {path: x}\nmodel: {dim: 50, heads: 4}\n", [], "model.heads=4 does not divide model.dim=50"),
        ("data: {path: x}\n", ["loss.temperature=1000"], "outside [0.01, 100]"),
        ("data: {path: x}\n", ["loss.similarity=cosine"], "loss.similarity=cosine and model.normalize=false disagree"),
        ("data: {path: x}\n", ["model.normalize=true", "loss.similarity=dot"], "dot and model.normalize=true"),
        ("data: {path: x}\nmodel: {kind: hstu, ffn_dim: 64}\n", [], "HSTU layers have no feed-forward network"),
        ("data: {path: x}\n", ["loss.uniform_negatives=0"], "needs loss.uniform_negatives > 0"),
        (
            "data: {path: x}\n",
            ["loss.uniform_sharing=position", "loss.in_batch_negatives=true"],
            "loss.uniform_sharing: position",
        ),
        ("data: {path: x}\n", ["loss.uniform_sharing=row"], "loss.uniform_sharing"),
        ("data: {path: x}\n", ["data.max_len=1"], "data.max_len"),
        ("data: {path: x}\n", ["noequals"], "expected key.path=value"),
        ("model: {dim: 8}\n", [], "data: Field required"),
        ("[1, 2]\n", [], "expected a mapping"),
    ],
)
def test_bad_configs_name_the_key(tmp_path: Path, text: str, overrides: list[str], message: str) -> None:
    with pytest.raises(ArgusrecError) as e:
        load_config(_write(tmp_path, text), overrides)
    assert message in str(e.value)


def test_unknown_preset_lists_the_presets() -> None:
    with pytest.raises(ArgusrecError, match=r"presets: .*hstu-ml-1m"):
        load_config("no-such-preset")


def test_normed_residual_is_for_sasrec_only() -> None:
    assert load_config("sasrec-beauty", overrides=["model.residual=normed"]).model.residual == "normed"
    with pytest.raises(ArgusrecError, match=r"model\.residual"):
        load_config("hstu-beauty", overrides=["model.residual=normed"])


def test_padding_content_is_for_bsarec_only() -> None:
    assert load_config("bsarec-beauty", overrides=["model.padding_content=true"]).model.padding_content
    with pytest.raises(ArgusrecError, match=r"model\.padding_content"):
        load_config("sasrec-beauty", overrides=["model.padding_content=true"])


def test_attend_padding_is_for_sasrec_only() -> None:
    assert load_config("sasrec-sports", overrides=["model.attend_padding=true"]).model.attend_padding
    with pytest.raises(ArgusrecError, match=r"model\.attend_padding"):
        load_config("hstu-sports", overrides=["model.attend_padding=true"])
