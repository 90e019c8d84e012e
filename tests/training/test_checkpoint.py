"""Checkpoints: round trip under weights_only, refusal of bad files with clear messages, atomic writes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from argusrec import __version__
from argusrec.config import OptimConfig, TrainConfig
from argusrec.errors import ArgusrecError
from argusrec.training import (
    CHECKPOINT_DIR,
    FORMAT_VERSION,
    LAST,
    atomic_save,
    build_optimizer,
    build_scheduler,
    fit,
    load_checkpoint,
    load_weights,
    make_checkpoint,
    rng_state,
    save_checkpoint,
)
from argusrec.training import checkpoint as checkpoint_module
from tests.training import NextItemTask, Sampler, TinyModel, params_of, toy_batches

PROGRESS = {"epoch": 1, "batch": 2, "step": 7, "best_metric": 0.25, "best_epoch": 0}


def last_checkpoint(model: TinyModel | None = None, **kw: Any) -> dict[str, Any]:
    model = model or TinyModel()
    cfg = OptimConfig(schedule="cosine", warmup_steps=2)
    opt = build_optimizer(model, cfg)
    model(torch.tensor([[1, 2]])).sum().backward()
    opt.step()  # so that the optimizer has moments to save
    return make_checkpoint(
        "last",
        model=model,
        progress=PROGRESS,
        history=[{"epoch": 0, "step": 5, "valid/score": 0.25}],
        optimizer=opt,
        scheduler=build_scheduler(opt, cfg, 10),
        rng=rng_state(),
        **kw,
    )


def test_round_trip_with_weights_only(tmp_path: Path) -> None:
    model = TinyModel()
    sampler = Sampler()
    sampler.draw(3)
    path = save_checkpoint(tmp_path / "last.pt", last_checkpoint(model, stateful={"sampler": sampler}))
    ckpt = load_checkpoint(path, model=TinyModel(), kind="last")
    assert ckpt["format_version"] == FORMAT_VERSION and ckpt["argusrec_version"] == __version__
    assert ckpt["progress"] == PROGRESS and ckpt["history"][0]["valid/score"] == 0.25
    assert ckpt["optimizer"]["state"] and ckpt["scheduler"]["lr_lambdas"][0]["kind"] == "cosine"
    fresh = Sampler(seed=99)
    fresh.load_state_dict(ckpt["stateful"]["sampler"])
    assert torch.equal(fresh.draw(4), sampler.draw(4))
    other = TinyModel()
    assert load_weights(path, other) == PROGRESS
    assert all(torch.equal(v, params_of(model)[k]) for k, v in other.state_dict().items())


def test_mapped_read_gives_the_same_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = TinyModel()
    path = save_checkpoint(tmp_path / "last.pt", last_checkpoint(model))
    read = load_checkpoint(path, kind="last")
    calls: list[dict[str, Any]] = []
    real_load = torch.load

    def spy(*a: Any, **k: Any) -> Any:
        calls.append(k)
        return real_load(*a, **k)

    monkeypatch.setattr(torch, "load", spy)
    mapped = load_checkpoint(path, kind="last", mmap=True)
    assert calls and calls[0]["mmap"] is True  # the file is mapped, not read whole
    assert mapped["progress"] == read["progress"] == PROGRESS
    assert read["model"].keys() == mapped["model"].keys()
    assert all(torch.equal(mapped["model"][k], v) for k, v in read["model"].items())


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ArgusrecError, match=r"nope\.pt: no such checkpoint file"):
        load_checkpoint(tmp_path / "nope.pt")


@pytest.mark.parametrize("mmap", [False, True])
@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_corrupted_file_refused(tmp_path: Path, damage: str, mmap: bool) -> None:
    path = save_checkpoint(tmp_path / "last.pt", last_checkpoint())
    data = path.read_bytes()
    path.write_bytes({"truncate": data[: len(data) // 2], "garbage": b"not a zip" * 100, "empty": b""}[damage])
    with pytest.raises(
        ArgusrecError, match=r"last\.pt: cannot read the checkpoint, the file is truncated or corrupted"
    ):
        load_checkpoint(path, mmap=mmap)


def test_other_format_version_refused(tmp_path: Path) -> None:
    ckpt = last_checkpoint()
    ckpt["format_version"] = FORMAT_VERSION + 98
    path = save_checkpoint(tmp_path / "old.pt", ckpt)
    with pytest.raises(
        ArgusrecError, match=rf"old\.pt: checkpoint format version {FORMAT_VERSION + 98} .* reads version"
    ):
        load_checkpoint(path)


def test_foreign_files_refused(tmp_path: Path) -> None:
    torch.save({"state_dict": TinyModel().state_dict()}, tmp_path / "plain.pt")
    with pytest.raises(ArgusrecError, match=r"plain\.pt: not an argusrec checkpoint"):
        load_checkpoint(tmp_path / "plain.pt")
    # A pickled object is never unpickled (weights_only): a malicious file cannot run code.
    torch.save({"format": "argusrec-checkpoint", "evil": np.arange(3)}, tmp_path / "pickled.pt")
    with pytest.raises(ArgusrecError, match=r"pickled\.pt: refused to load: .*weights_only=True.*numpy"):
        load_checkpoint(tmp_path / "pickled.pt")


def test_wrong_kind_refused(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path / "best.pt", make_checkpoint("best", model=TinyModel(), progress=PROGRESS))
    with pytest.raises(ArgusrecError, match=r"best\.pt: a 'best' checkpoint where a 'last' one is needed"):
        load_checkpoint(path, kind="last")
    assert load_weights(path, TinyModel())["step"] == 7  # but its weights load fine


def test_mismatched_model_refused(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path / "last.pt", last_checkpoint(TinyModel(dim=8)))
    shape = r"shape mismatch \[emb\.weight: checkpoint \(21, 8\) vs model \(21, 16\)"
    with pytest.raises(ArgusrecError, match=r"last\.pt: .*do not fit.*" + shape):
        load_checkpoint(path, model=TinyModel(dim=16))

    class Wider(TinyModel):
        def __init__(self) -> None:
            super().__init__()
            self.extra = torch.nn.Linear(2, 2)
            del self.out

    with pytest.raises(
        ArgusrecError, match=r"missing keys \[extra\.bias, extra\.weight\]; unexpected keys \[out\.bias"
    ):
        load_checkpoint(path, model=Wider())
    untouched = TinyModel(dim=16)
    before = params_of(untouched)
    with pytest.raises(ArgusrecError):
        load_weights(path, untouched)
    assert all(torch.equal(v, before[k]) for k, v in untouched.state_dict().items())  # nothing half-loaded


def test_unsafe_stateful_state_refused_at_save_time() -> None:
    class NumpySampler:
        def state_dict(self) -> dict[str, Any]:
            return {"rng": np.random.default_rng(0).bit_generator.state, "table": np.zeros(3)}

    with pytest.raises(ArgusrecError, match=r"checkpoint\['stateful'\]\['s'\]\['table'\] is a numpy\.ndarray"):
        last_checkpoint(stateful={"s": NumpySampler()})


def test_atomic_save_leaves_previous_file_on_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = atomic_save({"v": torch.ones(3)}, tmp_path / "last.pt")
    good = path.read_bytes()

    def failing_save(obj: Any, f: Any) -> None:
        f.write(b"half a checkpoint")  # some bytes reach the temporary file, then the "disk fills up"
        raise OSError("No space left on device")

    monkeypatch.setattr(checkpoint_module.torch, "save", failing_save)
    with pytest.raises(OSError, match="No space left"):
        atomic_save({"v": torch.zeros(3)}, path)
    with pytest.raises(OSError):
        atomic_save({"v": torch.zeros(3)}, tmp_path / "new.pt")
    assert path.read_bytes() == good  # the previous checkpoint is intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]  # no temporary or partial file left


def test_fit_refuses_bad_last_checkpoint(tmp_path: Path) -> None:
    def go(model: TinyModel) -> None:
        fit(model, NextItemTask(Sampler()), toy_batches(), optim=OptimConfig(), run_dir=tmp_path, progress=False,
            train=TrainConfig(epochs=1, device="cpu", max_steps=2), tensorboard=False)  # fmt: skip

    go(TinyModel())
    last = tmp_path / CHECKPOINT_DIR / LAST
    with pytest.raises(ArgusrecError, match=r"last\.pt: the checkpoint's weights do not fit this model"):
        go(TinyModel(dim=4))
    last.write_bytes(last.read_bytes()[:100])
    with pytest.raises(ArgusrecError, match=r"last\.pt: cannot read the checkpoint"):
        go(TinyModel())
