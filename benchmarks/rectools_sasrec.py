"""RecTools' SASRecModel on an argusrec-prepared dataset: the reference side of benchmarks/leave_one_out.py.

Runs in its own virtual environment (RecTools pins its own torch / pytorch-lightning; argusrec is not
imported): reads the sequence store's ``events/item_id.npy`` + ``events/offsets.npy`` with numpy, builds
the same leave-one-out split as argusrec (last event = test, second-to-last = validation, users with
fewer than ``--min-events`` events only train), trains on the training events, and writes, for every
validation and test user, the top-``k`` items with the viewed (history) items filtered:

    <out>/valid_topk.npy, <out>/test_topk.npy   (T, k) int64 item ids of the store (0 = padding)
    <out>/valid_targets.npy, <out>/test_targets.npy
    <out>/summary.json                            training targets, seconds, events/s, peak RSS, versions

Metrics are computed by the caller with argusrec's metric code (a target outside the top-k is a miss).
With ``--max-steps N`` training stops after N optimizer steps and nothing is recommended: a throughput
measurement (benchmarks/rectools_throughput.py). Either way the summary also holds ``step_targets`` /
``step_seconds``: the targets (non-padding labels) of the steps and the time inside them (forward, loss,
backward, optimizer step; batch loading excluded), which is how argusrec's training loop counts its
throughput.

    /work/rectools-venv/bin/python benchmarks/rectools_sasrec.py --data data/beauty --out /tmp/rt --epochs 5

The environment (the default ``--rectools-python`` of leave_one_out.py and rectools_throughput.py):

    python3 -m venv /work/rectools-venv
    /work/rectools-venv/bin/pip install torch==2.13.0 "rectools[torch]==0.19.0"
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time
from pathlib import Path

import numpy as np


def load_split(data: Path, min_events: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(user of each event, item of each event, role of each event: 0 train / 1 valid / 2 test, offsets)."""
    offsets = np.load(data / "events" / "offsets.npy").astype(np.int64)
    items = np.load(data / "events" / "item_id.npy").astype(np.int64)
    lengths = np.diff(offsets)
    users = np.repeat(np.arange(len(lengths), dtype=np.int64), lengths)
    pos_from_end = offsets[users + 1] - np.arange(len(items)) - 1  # 0 = the user's last event
    kept = lengths[users] >= min_events
    role = np.where(kept & (pos_from_end == 0), 2, np.where(kept & (pos_from_end == 1), 1, 0))
    return users, items, role.astype(np.int8), offsets


def targets_per_epoch(users: np.ndarray, role: np.ndarray, n_users: int, max_len: int) -> int:
    """Training targets per epoch as RecTools' SASRec data preparator builds them: the last ``max_len + 1``
    training events of every user with at least 2, each position but the first predicting its successor
    (argusrec trains on all of a user's training events, cut in chunks: more targets for long histories).
    ``users``, ``role``: per event, from :func:`load_split`."""
    train_len = np.bincount(users[role == 0], minlength=n_users)
    many = train_len >= 2
    return int(np.minimum(train_len[many], max_len + 1).sum() - many.sum())


def interactions(users: np.ndarray, items: np.ndarray, mask: np.ndarray):
    import pandas as pd
    from rectools import Columns

    idx = np.flatnonzero(mask)
    # The store is ordered by (user, time); the event index is a strictly increasing "datetime".
    return pd.DataFrame(
        {
            Columns.User: users[idx],
            Columns.Item: items[idx],
            Columns.Weight: 1.0,
            Columns.Datetime: pd.to_datetime(idx, unit="s"),
        }
    )


def recommend(model, users: np.ndarray, items: np.ndarray, history: np.ndarray, targets_role, role, k: int):
    """Top-k for every user holding a ``targets_role`` event, from the events in ``history``, viewed filtered."""
    from rectools.dataset import Dataset

    target_idx = np.flatnonzero(role == targets_role)
    target_users, target_items = users[target_idx], items[target_idx]
    dataset = Dataset.construct(interactions(users, items, history))
    reco = model.recommend(users=target_users, dataset=dataset, k=k, filter_viewed=True, on_unsupported_targets="warn")
    topk = np.zeros((len(target_users), k), dtype=np.int64)
    row = np.searchsorted(target_users, reco["user_id"].to_numpy())
    topk[row, reco["rank"].to_numpy() - 1] = reco["item_id"].to_numpy()
    return topk, target_items


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, type=Path, help="prepared argusrec dataset directory")
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--loss", default="sampled_softmax", help="softmax | sampled_softmax | BCE | gBCE")
    ap.add_argument("--negatives", type=int, default=256, help="negatives for sampled_softmax / BCE / gBCE")
    ap.add_argument("--blocks", type=int, default=2)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--heads", type=int, default=1)
    ap.add_argument("--dropout", type=float, default=0.5)
    ap.add_argument("--max-len", type=int, default=50)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--k", type=int, default=50)
    ap.add_argument("--min-events", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-steps", type=int, default=None, help="stop after N steps; no recommendations")
    args = ap.parse_args()

    import rectools
    import torch
    from lightning_fabric import seed_everything
    from pytorch_lightning import Callback, Trainer
    from rectools.dataset import Dataset
    from rectools.models import SASRecModel
    from rectools.models.nn.item_net import IdEmbeddingsItemNet

    torch.set_num_threads(args.threads)
    seed_everything(args.seed, workers=True)
    users, items, role, offsets = load_split(args.data, args.min_events)
    train_mask = role == 0
    train_ds = Dataset.construct(interactions(users, items, train_mask))

    class StepTimer(Callback):
        """Targets and seconds of the optimizer steps (from the batch's arrival to the end of its step)."""

        targets, seconds, started = 0, 0.0, 0.0

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
            self.started = time.perf_counter()

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            self.seconds += time.perf_counter() - self.started
            self.targets += int((batch["y"] != 0).sum())  # labels are left-padded with item 0

    def trainer() -> Trainer:
        return Trainer(
            max_epochs=args.epochs,
            max_steps=args.max_steps if args.max_steps is not None else -1,
            callbacks=[StepTimer()],
            accelerator="cpu",
            devices=1,
            enable_checkpointing=False,
            logger=False,
            enable_progress_bar=False,
            enable_model_summary=False,
        )

    model = SASRecModel(
        n_blocks=args.blocks,
        n_heads=args.heads,
        n_factors=args.dim,
        dropout_rate=args.dropout,
        session_max_len=args.max_len,
        loss=args.loss,
        n_negatives=args.negatives,
        lr=args.lr,
        batch_size=args.batch_size,
        epochs=args.epochs,
        item_net_block_types=(IdEmbeddingsItemNet,),  # ids only, like ours
        get_trainer_func=trainer,
        recommend_torch_device="cpu",
    )
    n_targets = targets_per_epoch(users, role, len(offsets) - 1, args.max_len)

    start = time.perf_counter()
    model.fit(train_ds)
    train_seconds = time.perf_counter() - start
    # RecTools fits a deep copy of the trainer, callbacks included: read the copy's timer
    timer = next(c for c in model.fit_trainer.callbacks if isinstance(c, StepTimer))

    args.out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    if args.max_steps is None:
        for name, targets_role, history in (("valid", 1, role == 0), ("test", 2, role <= 1)):
            topk, target_items = recommend(model, users, items, history, targets_role, role, args.k)
            np.save(args.out / f"{name}_topk.npy", topk)
            np.save(args.out / f"{name}_targets.npy", target_items)
    reco_seconds = time.perf_counter() - start
    summary = {
        "library": f"rectools {rectools.__version__}",
        "torch": torch.__version__,
        "loss": args.loss,
        "negatives": args.negatives if args.loss != "softmax" else None,
        "epochs": args.epochs,
        "train_targets_per_epoch": n_targets,
        "train_seconds": train_seconds,
        "recommend_seconds": reco_seconds,
        # whole epochs over the fit's wall clock (data preparation included); None for a step-limited run
        "events_per_s": n_targets * args.epochs / train_seconds if args.max_steps is None else None,
        "max_steps": args.max_steps,
        "step_targets": timer.targets,
        "step_seconds": timer.seconds,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "threads": args.threads,
        "pid": os.getpid(),
    }
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
