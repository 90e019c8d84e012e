"""Negatives for sampled softmax: who proposes them, and with what probability (ARGUS.md §3).

ARGUS draws each batch's negatives from a mixture of two samplers:

* **in-batch** — the targets of the batch's other supervised positions. A batch's targets are a
  sample of the training stream, so an in-batch draw is item j with probability ``f_j / sum(f)``,
  ``f`` the item frequencies of the supervised events (:func:`item_frequencies`);
* **uniform** — ids drawn uniformly from 1..V (:class:`UniformSampler`).

:func:`build_negatives` joins the two into one (R, D) set, deduplicated with multiplicities, and
:func:`mixed_log_q` gives the log Q that :func:`argusrec.losses.sampled_softmax_loss` subtracts.
The HSTU recipe (PEERS.md §1) is the uniform sampler alone, without logQ.

Letters (docs/notation.md): M supervised positions, R negatives, D width, V catalog, E events.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

__all__ = ["NegativeSet", "UniformSampler", "build_negatives", "item_frequencies", "mixed_log_q"]


def item_frequencies(
    store_items: np.ndarray,
    n_items: int,
    *,
    chunk: int = 8_000_000,
    mask: np.ndarray | None = None,
) -> np.ndarray:
    """Count every item's events in one streaming pass over a (memory-mapped) item column.

    The column is read ``chunk`` rows at a time, so a memmap of any length costs O(chunk + V) memory.

    Args:
        store_items: (E,) int item ids 1..V, e.g. ``store.items`` (a memmap).
        n_items: V.
        chunk: rows per read.
        mask: (E,) bool, or None: count only the rows where it is true — the events that are
            supervised in training (the train split; only positives in the SASRec-style ablation),
            since those are what in-batch negatives are drawn from.

    Returns:
        (V + 1,) float64 counts; entry 0 (padding) is 0.

    Raises:
        ValueError: an id outside 0..V (names the first bad row), or a mask of the wrong length.
    """
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")
    if mask is not None and len(mask) != len(store_items):
        raise ValueError(f"mask has {len(mask)} rows, store_items has {len(store_items)}")
    counts = np.zeros(n_items + 1, dtype=np.int64)
    for lo in range(0, len(store_items), chunk):
        part = np.asarray(store_items[lo : lo + chunk])
        if mask is not None:
            part = part[np.asarray(mask[lo : lo + chunk], dtype=bool)]
        if part.size == 0:
            continue
        bad = (part < 0) | (part > n_items)
        if bad.any():
            # Report the row in the full column (the masked rows are skipped in the count).
            rows = np.arange(lo, min(lo + chunk, len(store_items)))
            if mask is not None:
                rows = rows[np.asarray(mask[lo : lo + chunk], dtype=bool)]
            row = int(rows[np.argmax(bad)])
            raise ValueError(
                f"item id {int(part[np.argmax(bad)])} at row {row} is outside 0..{n_items}; "
                "pass the store's n_items (ids are 1..V, 0 = padding)"
            )
        counts += np.bincount(part, minlength=n_items + 1)
    counts[0] = 0  # padding is never a candidate
    return counts.astype(np.float64)


class UniformSampler:
    """Uniform item ids in 1..V from its own seeded generator, so a resumed run draws the same ids.

    Args:
        n_items: V.
        seed: seed of the generator.
    """

    def __init__(self, n_items: int, seed: int = 0) -> None:
        if n_items < 1:
            raise ValueError(f"n_items must be >= 1, got {n_items}")
        self.n_items = int(n_items)
        self.seed = int(seed)
        # A CPU generator: the draws are tiny, and CPU state is the same on every machine, so a
        # checkpoint resumes identically on another device.
        self.generator = torch.Generator(device="cpu")
        self.generator.manual_seed(self.seed)

    def sample(self, n: int | tuple[int, ...], device: torch.device | str | None = None) -> Tensor:
        """Ids drawn independently and uniformly from 1..V, with replacement: ``n`` of them, or a tensor
        of shape ``n`` when it is a tuple (e.g. (M, R): R per supervised position).

        Returns:
            (n,) or ``n``-shaped int64 on ``device`` (CPU when None).
        """
        size = (n,) if isinstance(n, int) else tuple(n)
        ids = torch.randint(1, self.n_items + 1, size, generator=self.generator)  # (R,) or (M, R)
        return ids if device is None else ids.to(device)

    def state_dict(self) -> dict[str, Any]:
        """The exact generator state (a uint8 tensor) plus V and the seed; loadable with ``weights_only=True``."""
        return {"n_items": self.n_items, "seed": self.seed, "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict`; the next draws are the ones the saved sampler would have made."""
        if int(state["n_items"]) != self.n_items:
            raise ValueError(f"state is for a catalog of {state['n_items']} items, this sampler has {self.n_items}")
        self.seed = int(state["seed"])
        self.generator.set_state(state["generator"])


@dataclass(frozen=True, eq=False)  # tensors have no single truth value for ==
class NegativeSet:
    """R distinct negatives, with how many of the sampler's draws landed on each.

    Attributes:
        ids: (R,) int64 item ids.
        vectors: (R, D) their vectors.
        counts: (R,) int64 multiplicity: draws (in-batch and uniform) that proposed ``ids[r]``.
        n_in_batch: number of in-batch draws behind the set.
        n_uniform: number of uniform draws behind the set.
    """

    ids: Tensor
    vectors: Tensor
    counts: Tensor
    n_in_batch: int
    n_uniform: int

    def log_q(self, item_freq: Tensor, n_items: int) -> Tensor:
        """(R,) the ``negative_log_q`` for the loss: :func:`mixed_log_q` with the multiplicities folded in."""
        return mixed_log_q(self.ids, item_freq, self.n_in_batch, self.n_uniform, n_items, counts=self.counts)

    def positive_log_q(self, positive_ids: Tensor, item_freq: Tensor, n_items: int) -> Tensor:
        """(M,) the ``positive_log_q`` for the loss: log of the expected draws of each positive."""
        return mixed_log_q(positive_ids, item_freq, self.n_in_batch, self.n_uniform, n_items)


def build_negatives(
    *,
    in_batch_ids: Tensor | None = None,
    in_batch_vectors: Tensor | None = None,
    uniform_ids: Tensor | None = None,
    uniform_vectors: Tensor | None = None,
    unique: bool = True,
) -> NegativeSet:
    """The shared negative set of a batch: its positives (in-batch) together with uniform draws.

    With ``unique`` the multiset of draws is reduced to distinct ids, each keeping the vector of its
    first draw and its multiplicity in ``counts``. Scoring a distinct id once with an extra
    ``+ log count`` (which :meth:`NegativeSet.log_q` folds in) gives exactly the loss and gradients
    of scoring every copy, since ``exp(s - log E[c] + log c) = c * exp(s - log E[c])`` — at a
    fraction of the (M, R) logits when popular items repeat within a batch.

    Args:
        in_batch_ids: (M,) the ids of the batch's supervised targets (no padding), or None. To use
            fewer, pass a random subset: ``n_in_batch`` is then the subset's size.
        in_batch_vectors: (M, D) their item vectors (the positives' vectors, already computed).
        uniform_ids: (R_u,) ids from :class:`UniformSampler`, or None.
        uniform_vectors: (R_u, D) their item vectors.
        unique: deduplicate (else ``counts`` is all ones and ids may repeat).

    Returns:
        A :class:`NegativeSet`; vectors keep their autograd graph.
    """
    ids, vectors, sizes = [], [], []
    for name, part_ids, part_vectors in (
        ("in_batch", in_batch_ids, in_batch_vectors),
        ("uniform", uniform_ids, uniform_vectors),
    ):
        if (part_ids is None) != (part_vectors is None):
            raise ValueError(f"give both {name}_ids and {name}_vectors, or neither")
        if part_ids is None or part_vectors is None:
            sizes.append(0)
            continue
        if part_ids.dim() != 1 or part_vectors.dim() != 2 or len(part_vectors) != len(part_ids):
            raise ValueError(
                f"{name}_ids must be (n,) and {name}_vectors (n, D), got {tuple(part_ids.shape)}, "
                f"{tuple(part_vectors.shape)}"
            )
        ids.append(part_ids.long())
        vectors.append(part_vectors)
        sizes.append(len(part_ids))
    if not ids:
        raise ValueError("build_negatives needs in-batch or uniform negatives (or both)")
    all_ids = torch.cat(ids)  # (L,) L = M + R_u draws
    all_vectors = torch.cat(vectors)  # (L, D)
    if not unique:
        counts = torch.ones_like(all_ids)
        return NegativeSet(all_ids, all_vectors, counts, n_in_batch=sizes[0], n_uniform=sizes[1])
    distinct, inverse, counts = torch.unique(all_ids, return_inverse=True, return_counts=True)  # (R,), (L,), (R,)
    # First draw of each distinct id: the smallest draw index mapped onto it.
    draw = torch.arange(len(all_ids), device=all_ids.device)  # (L,)
    first = torch.full_like(distinct, len(all_ids)).scatter_reduce(0, inverse, draw, reduce="amin")  # (R,)
    return NegativeSet(distinct, all_vectors[first], counts, n_in_batch=sizes[0], n_uniform=sizes[1])


def mixed_log_q(
    item_ids: Tensor,
    item_freq: Tensor,
    n_in_batch: int,
    n_uniform: int,
    n_items: int,
    *,
    counts: Tensor | None = None,
) -> Tensor:
    """log Q(j) of the in-batch + uniform mixture: the log of the expected number of draws of j.

    With ``n_in_batch`` in-batch draws, each item j with probability ``p_j = f_j / sum(f)``, and
    ``n_uniform`` uniform draws, each j with probability ``1 / V``, linearity of expectation gives
    the expected number of times the mixed sampler proposes j in one batch::

        E[c_j] = n_in_batch * f_j / sum(f) + n_uniform / V
        log Q(j) = log E[c_j]

    Why this form: the corrected partition sum ``sum_draws exp(s(j)) / E[c_j]`` is then an unbiased
    estimate of the full-catalog ``sum_j exp(s(j))`` (each j appears E[c_j] times on average) for
    any R. The per-draw mixture probability ``E[c_j] / R`` differs by the constant ``log R``, which
    cancels in the softmax because ARGUS.md §3 subtracts log Q from every candidate including the
    positive — so both give the same loss. Items the mixture can never propose (``f_j = 0`` and no
    uniform draws) get ``-inf``; count frequencies over the same events the batches supervise.

    Args:
        item_ids: (K,) int ids 1..V (negatives (R,) or positives (M,)).
        item_freq: (V + 1,) item frequencies (:func:`item_frequencies`; any scale, they are
            normalised here). Pass a tensor on ``item_ids``' device to avoid a copy per call.
        n_in_batch: number of in-batch draws (the number of positives the in-batch part came from).
        n_uniform: number of uniform draws.
        n_items: V.
        counts: (K,) multiplicities of deduplicated ids (:func:`build_negatives`), or None. When
            given, ``log counts`` is subtracted, so scoring each distinct id once is exactly
            equivalent to scoring every draw: ``log Q(j) = log E[c_j] - log c_j``.

    Returns:
        (K,) float32.
    """
    if n_in_batch < 0 or n_uniform < 0 or n_in_batch + n_uniform == 0:
        raise ValueError(f"need n_in_batch, n_uniform >= 0 with a positive sum, got {n_in_batch}, {n_uniform}")
    freq = torch.as_tensor(item_freq, device=item_ids.device)
    if freq.shape != (n_items + 1,):
        raise ValueError(f"item_freq must be (V + 1,) = ({n_items + 1},), got {tuple(freq.shape)}")
    # float64: frequencies of popular items reach billions, and p_j of rare ones is ~1e-9.
    freq = freq.double()
    expected = torch.full(item_ids.shape, n_uniform / n_items, dtype=torch.float64, device=item_ids.device)  # (K,)
    if n_in_batch:  # skipped otherwise, so an all-zero frequency table is fine for uniform-only sampling
        expected = expected + n_in_batch * freq[item_ids.long()] / freq.sum()  # (K,)
    log_q = expected.log()
    if counts is not None:
        if counts.shape != item_ids.shape:
            raise ValueError(f"counts must be (K,) like item_ids, got {tuple(counts.shape)}")
        log_q = log_q - counts.double().log()
    return log_q.float()
