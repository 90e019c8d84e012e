"""The two-tower model: initialisation from ARGUS, positions, serving vectors, refused checkpoints."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from argusrec.data.batching import assemble_batch
from argusrec.data.store import SequenceStore
from argusrec.errors import ArgusrecError
from argusrec.finetune import TwoTower, two_tower_from_checkpoint
from argusrec.models.argus_task import run_argus
from argusrec.training.checkpoint import make_checkpoint, save_checkpoint
from tests.finetune.conftest import MAX_LEN, make_argus


def _save(model: nn.Module, path: Path) -> Path:
    return save_checkpoint(path, make_checkpoint("best", model=model, progress={"epoch": 1}))


def _batch(store: SequenceStore, length: int) -> dict[str, torch.Tensor]:
    users = [u for u in range(store.n_users) if store.lengths[u] >= length][:3]
    starts = torch.as_tensor([int(store.offsets[u]) for u in users]).numpy()
    lengths = torch.full((len(users),), length).numpy()
    return {k: torch.as_tensor(v) for k, v in assemble_batch(store, starts, lengths, n=MAX_LEN).items()}


def _states(tt: TwoTower, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    return tt(
        batch["item_id"].long(),
        {c: batch[c].long() for c in tt.context_fields},
        {s: batch[s].float() for s in tt.feedback_fields},
        batch["timestamp"],
        batch["mask"],
    )


@pytest.mark.parametrize("variant", ["simplified", "full"])
def test_encode_and_positions(sim_store: SequenceStore, variant: str) -> None:
    argus = make_argus(sim_store, variant).eval()
    tt = TwoTower(argus).eval()
    store = sim_store
    fields = (list(store.schema.context), list(store.schema.feedback))
    full = _batch(store, MAX_LEN)
    with torch.no_grad():
        out = run_argus(argus, full, *fields)
        torch.testing.assert_close(argus.encode(*_args(full, fields)), out.user_states)  # encode = forward's states
        # full-length windows: the reversed position table gives exactly the pre-trained states
        torch.testing.assert_close(_states(tt, full), out.user_states, rtol=1e-5, atol=1e-5)
        # causal prefix: the states of a window's first k events do not depend on the events after them
        prefix = {k: v.clone() for k, v in full.items()}
        prefix["mask"][:, MAX_LEN // 2 :] = False
        a, b = _states(tt, full), _states(tt, prefix)
        keep = prefix["mask"]
        torch.testing.assert_close(a[keep], b[keep], rtol=1e-5, atol=1e-5)
    assert argus.positions is not None and argus.positions.from_end  # the pre-trained model is left untouched


def _args(batch: dict[str, torch.Tensor], fields: tuple[list[str], list[str]]) -> tuple:
    ctx, fb = fields
    return (
        batch["item_id"].long(),
        {c: batch[c].long() for c in ctx},
        {s: batch[s].float() for s in fb},
        batch["timestamp"],
        batch["mask"],
    )


def test_towers_and_serving_vectors(sim_store: SequenceStore) -> None:
    tt = TwoTower(make_argus(sim_store), dim=8).eval()
    assert tt.all_item_vectors().shape == (sim_store.n_items + 1, 8)
    batch = _batch(sim_store, 10)  # left-padded to MAX_LEN
    with torch.no_grad():
        users = tt.last_user_vectors(*_args(batch, (tt.context_fields, tt.feedback_fields)))
        expected = tt.user_vectors(_states(tt, batch)[:, -1])
    torch.testing.assert_close(users, expected)
    nip = TwoTower(make_argus(sim_store, retrieval_dim=12), item_tower="nip")
    assert nip.item_vectors(torch.tensor([1, 2])).shape == (2, 12) and nip.item_head is None
    torch.testing.assert_close(nip.item_vectors(torch.tensor([3])), nip.backbone.item_vectors(torch.tensor([3])))


def test_checkpoint_loads_pretrained_weights(sim_store: SequenceStore, tmp_path: Path) -> None:
    trained = make_argus(sim_store, seed=1)
    path = _save(trained, tmp_path / "best.pt")
    skeleton = make_argus(sim_store, seed=2)
    tt = two_tower_from_checkpoint(path, skeleton)
    for name, p in trained.encoder.state_dict().items():
        torch.testing.assert_close(tt.backbone.encoder.state_dict()[name], p)
    fresh = make_argus(sim_store, seed=2)
    for name, p in fresh.state_dict().items():  # the skeleton passed in is not modified
        torch.testing.assert_close(skeleton.state_dict()[name], p)
    torch.testing.assert_close(tt.backbone.positions.table, trained.positions.table.flip(0))


def test_a_last_checkpoint_with_a_weight_average_gives_the_average(sim_store: SequenceStore, tmp_path: Path) -> None:
    """A pre-training run with train.ema_decay validated its average: fine-tuning from its last.pt starts there too."""
    raw, averaged = make_argus(sim_store, seed=1), make_argus(sim_store, seed=3)
    shadow = {n: p.detach().clone() for n, p in averaged.named_parameters()}
    optimizer = torch.optim.SGD(raw.parameters(), lr=0.1)
    ckpt = make_checkpoint("last", model=raw, progress={"epoch": 1}, optimizer=optimizer, rng={"seed": 0})
    ckpt["average"] = {"decay": 0.99, "updates": 5, "shadow": shadow}
    path = save_checkpoint(tmp_path / "last.pt", ckpt)
    tt = two_tower_from_checkpoint(path, make_argus(sim_store, seed=2))
    for name, p in averaged.encoder.named_parameters():
        torch.testing.assert_close(tt.backbone.encoder.get_parameter(name), p)


@pytest.mark.parametrize(
    ("saved_kw", "model_kw", "message"),
    [
        ({"variant": "full"}, {}, "is a full ARGUS, the model config says simplified"),
        ({"dim": 32}, {}, "width D=32, the model config 16"),
        ({"n_items": 150}, {}, "catalog of 150 items, this model has 120"),
        ({"vocab_sizes": {"surface": 5}}, {}, r"context fields are \['surface'\], the model's \['device', 'surface'\]"),
        ({"feedback_signals": {"like": "binary"}}, {}, "feedback signals"),
        ({"layers": 2}, {}, "2 layers, the model config 1"),
        ({"max_len": 64}, {}, "64 positions"),
        ({"heads": 4, "dim": 16, "retrieval_dim": 8}, {}, "do not fit this model"),
    ],
)
def test_incompatible_checkpoint_refused(
    sim_store: SequenceStore, tmp_path: Path, saved_kw: dict, model_kw: dict, message: str
) -> None:
    path = _save(make_argus(sim_store, **saved_kw), tmp_path / "pre.pt")
    with pytest.raises(ArgusrecError, match=message):
        two_tower_from_checkpoint(path, make_argus(sim_store, **model_kw))


def test_other_checkpoints_and_models_refused(sim_store: SequenceStore, tmp_path: Path) -> None:
    argus = make_argus(sim_store)
    not_argus = _save(nn.Linear(3, 3), tmp_path / "linear.pt")
    with pytest.raises(ArgusrecError, match="not a pre-trained ARGUS checkpoint"):
        two_tower_from_checkpoint(not_argus, argus)
    tuned = _save(TwoTower(argus), tmp_path / "tuned.pt")
    with pytest.raises(ArgusrecError, match="fine-tuned two-tower checkpoint"):
        two_tower_from_checkpoint(tuned, argus)
    with pytest.raises(ArgusrecError, match="no such checkpoint"):
        two_tower_from_checkpoint(tmp_path / "missing.pt", argus)
    with pytest.raises(ArgusrecError, match="query_time='next'"):
        TwoTower(make_argus(sim_store, encoder="hstu", query_time="next"))
    with pytest.raises(ArgusrecError, match="starts from an ARGUS model"):
        TwoTower(nn.Linear(2, 2))  # type: ignore[arg-type]
