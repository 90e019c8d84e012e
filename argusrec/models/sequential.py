"""A sequential recommender: item embeddings -> encoder blocks -> user states scored against items.

The same assembly serves SASRec, LLaMa-style, HSTU and FuXi-alpha: only the list of blocks (and
whether learned absolute positions are added) changes; see :mod:`argusrec.models.builders`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from argusrec.nn.embeddings import HashedEmbedding, IdEmbedding, PositionEmbedding


class SequentialRecommender(nn.Module):
    """``states = encoder(dropout(norm(scale * item_emb(items) + pos_emb)))``; the score of item j at position n is
    ``<states[:, n], item_vector(j)>`` (cosine when ``normalize``).

    Args:
        items: item embedding module: ``forward(ids (...)) -> (..., D)`` and ``all_vectors() -> (V+1, D)``.
        encoder: runs the blocks: ``forward(x (B, N, D), *, valid, timestamps, query_timestamps) -> (B, N, D)``.
        positions: learned absolute positions (:class:`~argusrec.nn.embeddings.PositionEmbedding`: counted back
            from the latest event, so it gets the same vector in training and serving) or None (rotary models).
        n_items: catalog size V; ``all_item_vectors`` returns V + 1 rows.
        input_scale: multiply item embeddings by sqrt(D) (SASRec/HSTU convention).
        input_norm: LayerNorm on the summed item and position embeddings, before the dropout (post-norm
            stacks: BSARec and BERT normalise the encoder's input instead of its output). Pre-norm stacks
            leave it off and end with a final norm.
        normalize: L2-normalise user states and item vectors (HSTU's cosine-similarity recipe).
        temperature: a module returning the softmax temperature (fixed or learned), kept here so that it is
            trained and checkpointed with the model.
        empty_state: learn the state of a user without history (see :meth:`last_states`); otherwise such a
            user has none.
        padding_content: the BSARec code's window: every batch is left-padded to the whole position table
            (``positions.max_len`` slots), the padding slots hold the normalised position vectors instead of
            zeros, and the encoder's blocks run on them (they must accept it: ``BSARecBlock(padding_content=
            True)``). Needs ``positions`` and ``input_norm``. States at padded positions are still returned as
            zeros, and the model pads every batch itself, so its output does not depend on a batch's padding.
    """

    def __init__(
        self,
        *,
        items: IdEmbedding | HashedEmbedding,
        encoder: nn.Module,
        positions: PositionEmbedding | None,
        n_items: int,
        dim: int,
        dropout: float,
        input_scale: bool,
        input_norm: bool = False,
        normalize: bool,
        temperature: nn.Module,
        empty_state: bool = False,
        padding_content: bool = False,
    ) -> None:
        super().__init__()
        if padding_content and (positions is None or not input_norm):
            raise ValueError("padding_content needs learned positions and input_norm (the padding slots' content)")
        self.items = items
        self.encoder = encoder
        self.positions = positions
        self.n_items = n_items
        self.dim = dim
        self.dropout = nn.Dropout(dropout)
        self.scale = math.sqrt(dim) if input_scale else 1.0
        self.input_norm = nn.LayerNorm(dim) if input_norm else None
        self.normalize = normalize
        self.temperature = temperature
        # Zero at first: every item scores the same for an empty history until training moves it.
        self.empty_state = nn.Parameter(torch.zeros(dim)) if empty_state else None
        self.padding_content = padding_content

    def forward(
        self,
        items: Tensor,
        valid: Tensor,
        timestamps: Tensor | None = None,
        query_timestamps: Tensor | None = None,
    ) -> Tensor:
        """User states after every event.

        Args:
            items: (B, N) int64 item ids, 0 on padding.
            valid: (B, N) bool, True on real events.
            timestamps: (B, N) int64 seconds of the events (time-aware encoders).
            query_timestamps: (B, N) int64 time of the event each position predicts.
        Returns:
            (B, N, D) states; position n summarises events <= n.
        """
        if self.padding_content:
            return self._window_forward(items, valid, timestamps, query_timestamps)
        x = self.items(items) * self.scale  # (B, N, D)
        if self.positions is not None:
            x = x + self.positions(self.positions.positions(valid))  # (B, N, D)
        if self.input_norm is not None:  # padding zeroed before the norm (0 x NaN is NaN in backward)
            x = self.input_norm(x.masked_fill(~valid.unsqueeze(-1), 0.0))  # (B, N, D)
        x = self.dropout(x) * valid.unsqueeze(-1)  # (B, N, D), zero at padding (the norm's bias included)
        h = self.encoder(x, valid=valid, timestamps=timestamps, query_timestamps=query_timestamps)
        return self._norm(h)

    def _window_forward(
        self, items: Tensor, valid: Tensor, timestamps: Tensor | None, query_timestamps: Tensor | None
    ) -> Tensor:
        """:meth:`forward` with ``padding_content``: the batch left-padded to the window, padding with content."""
        assert self.positions is not None and self.input_norm is not None  # checked in __init__
        window, n = self.positions.max_len, items.shape[1]
        if n > window:
            raise ValueError(f"padding_content: histories of at most {window} events (the window), got {n}")

        def widen(t: Tensor) -> Tensor:
            return F.pad(t, (window - n, 0))  # (B, W): zeros (False) in front

        items_w, valid_w = widen(items), widen(valid)
        x = self.items(items_w).masked_fill(~valid_w.unsqueeze(-1), 0.0) * self.scale  # (B, W, D)
        x = self.dropout(self.input_norm(x + self.positions(window)))  # padding slots: normalised position vectors
        h = self.encoder(
            x,
            valid=valid_w,
            timestamps=None if timestamps is None else widen(timestamps),
            query_timestamps=None if query_timestamps is None else widen(query_timestamps),
        )
        return self._norm(h[:, window - n :].masked_fill(~valid.unsqueeze(-1), 0.0))  # (B, N, D)

    def last_states(self, states: Tensor, valid: Tensor) -> tuple[Tensor, Tensor]:
        """Each row's user state: the state after its latest event (left padding: the last slot).

        Args:
            states: (B, N, D) output of :meth:`forward`.
            valid: (B, N) bool, the same mask.
        Returns:
            (B, D) states and (B,) bool "has a state". A row without events gets the learned empty-history
            state when the model has one (``empty_state``), else a zero row marked False.
        """
        last = states[:, -1]  # (B, D)
        has_events = valid[:, -1]  # (B,)
        if self.empty_state is None:
            return last, has_events
        empty = self._norm(self.empty_state).to(last.dtype).expand_as(last)  # (B, D)
        # torch.where keeps the parameter in every step's graph (data-parallel wrappers want each one used).
        return torch.where(has_events.unsqueeze(-1), last, empty), torch.ones_like(has_events)

    def item_vectors(self, ids: Tensor) -> Tensor:
        """(...) item ids -> (..., D) vectors used for scoring."""
        return self._norm(self.items(ids))

    def all_item_vectors(self) -> Tensor:
        """(V + 1, D) vectors of the whole catalog (row 0 = padding)."""
        return self._norm(self.items.all_vectors(self.n_items))

    def _norm(self, x: Tensor) -> Tensor:
        return nn.functional.normalize(x, dim=-1) if self.normalize else x


class FixedTemperature(nn.Module):
    """A constant softmax temperature with the same interface as the learned one."""

    value: Tensor

    def __init__(self, value: float) -> None:
        super().__init__()
        self.register_buffer("value", torch.tensor(float(value)), persistent=False)

    def forward(self) -> Tensor:
        return self.value
