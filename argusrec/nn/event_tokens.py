"""The ARGUS event tokenizer: one vector each for the context, the item and the feedback of every event.

An event is ``(context, item, feedback)`` plus a timestamp (reference/ARGUS.md §1). Both ARGUS variants
(§2) embed it with the same modules; only what happens next differs (three tokens vs one fused vector):

- :class:`ContextEmbedding` — sum of one table per categorical context field (code 0 = padding/missing →
  zero) plus time features computed from the timestamps: the log-bucketed gap to the previous real event
  (always, when ``time_features``) and, optionally, UTC hour-of-day and day-of-week (``calendar``).
- :class:`ItemTokenEmbedding` — item id vector (exact :class:`IdEmbedding` or the unified
  :class:`HashedEmbedding`, §4) plus optional categorical item features (artist, album...): with a hashed
  item table every feature hashes into the SAME table under its own salt; with an id table each feature
  gets a small table of its own.
- :class:`FeedbackEmbedding` — per signal, binary → {missing, 0, 1}, continuous → {missing, bucket 1..K};
  summed over signals. NaN is "not observed" and has its own learned row (it is information: an event
  whose like was not observed differs from padding); padding positions are zero.
- :class:`EventTokenizer` — the three together; both ARGUS variants hold one.

Letters (docs/notation.md): B batch, N length, D width, V catalog; ``...`` = any leading shape.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

import torch
from torch import Tensor, nn

from argusrec.nn.embeddings import DEFAULT_INIT_STD, HashedEmbedding, IdEmbedding
from argusrec.nn.hstu import time_buckets

__all__ = [
    "ContextEmbedding",
    "EventTokenizer",
    "FeedbackEmbedding",
    "ItemTokenEmbedding",
    "SignalKind",
    "feedback_rows",
    "gap_rows",
    "previous_index",
]

SignalKind = Literal["binary", "continuous"]

# Rows of the gap table: 0 = padding (zero vector), 1 = "no previous event", 2.. = log buckets.
GAP_PAD_ROW = 0
GAP_FIRST_ROW = 1
GAP_OFFSET = 2
# Rows of every feedback table: 0 = missing (NaN, a learned row), 1.. = value rows.
FEEDBACK_MISSING_ROW = 0
SECONDS_PER_HOUR = 3600
SECONDS_PER_DAY = 86400
EPOCH_WEEKDAY = 3  # 1970-01-01 was a Thursday; Monday = 0


def previous_index(valid: Tensor) -> Tensor:
    """Column of the previous real event of every position; -1 where there is none.

    Works for any padding layout (left, right, holes): a running maximum over the columns of real events.

    Args:
        valid: (B, N) bool.

    Returns:
        (B, N) int64; ``out[b, n]`` is the largest ``m < n`` with ``valid[b, m]``, or -1.
    """
    n = valid.shape[-1]
    cols = torch.arange(n, device=valid.device).expand_as(valid)  # (B, N)
    last_upto = torch.where(valid, cols, torch.full_like(cols, -1)).cummax(dim=-1).values  # (B, N) last real <= n
    return torch.cat([torch.full_like(last_upto[:, :1], -1), last_upto[:, :-1]], dim=-1)  # (B, N) last real < n


def gap_rows(timestamps: Tensor, valid: Tensor, *, n_gap_buckets: int, divisor: float) -> Tensor:
    """Row of the gap table for every event: the log-bucketed gap to the previous real event.

    Buckets are HSTU's (:func:`argusrec.nn.hstu.time_buckets`: ``floor(ln(max(gap, 1)) / divisor)``,
    clamped to ``n_gap_buckets - 1``); row 0 is padding, row 1 "no previous event in this chunk".

    Args:
        timestamps: (B, N) int64 seconds.
        valid: (B, N) bool.

    Returns:
        (B, N) int64 in ``[0, n_gap_buckets + 2)``.
    """
    prev = previous_index(valid)  # (B, N)
    prev_ts = timestamps.gather(-1, prev.clamp(min=0))  # (B, N)
    bucket = time_buckets(timestamps - prev_ts, num_buckets=n_gap_buckets - 1, divisor=divisor) + GAP_OFFSET
    rows = torch.where(prev >= 0, bucket, torch.full_like(bucket, GAP_FIRST_ROW))
    return rows.masked_fill(~valid, GAP_PAD_ROW)


class ContextEmbedding(nn.Module):
    """``ctx(c_t)``: sum of the context fields' vectors plus time features (ARGUS.md §1: context includes time).

    Args:
        vocab_sizes: field name -> n, the field's codes are 1..n (0 = padding / missing → zero vector).
        dim: D.
        time_features: add the log-bucketed gap to the previous real event (needs timestamps).
        n_gap_buckets: number of gap buckets; with the default divisor 0.301 (each bucket ~1.35× longer),
            64 buckets reach ~e^19 s, beyond any real gap; larger gaps share the last bucket.
        gap_divisor: bucket width in ln(seconds).
        calendar: also add UTC hour-of-day (24 rows) and day-of-week (7 rows) vectors. Off by default: the
            local time zone is unknown and some sources store positions, not seconds, as timestamps.
        init_std: standard deviation of the tables' normal initialisation.
    """

    def __init__(
        self,
        vocab_sizes: Mapping[str, int],
        dim: int,
        *,
        time_features: bool = True,
        n_gap_buckets: int = 64,
        gap_divisor: float = 0.301,
        calendar: bool = False,
        init_std: float = DEFAULT_INIT_STD,
    ) -> None:
        super().__init__()
        for name, size in vocab_sizes.items():
            if size < 1:
                raise ValueError(f"context field {name!r} needs a vocabulary size >= 1, got {size}")
        if n_gap_buckets < 1:
            raise ValueError(f"n_gap_buckets must be >= 1, got {n_gap_buckets}")
        self.dim = dim
        self.names = list(vocab_sizes)
        self.fields = nn.ModuleDict({n: IdEmbedding(s + 1, dim, init_std=init_std) for n, s in vocab_sizes.items()})
        self.n_gap_buckets = n_gap_buckets
        self.gap_divisor = gap_divisor
        self.gap = IdEmbedding(n_gap_buckets + GAP_OFFSET, dim, init_std=init_std) if time_features else None
        self.calendar = calendar
        self.hour = IdEmbedding(24, dim, padding_idx=None, init_std=init_std) if calendar else None
        self.weekday = IdEmbedding(7, dim, padding_idx=None, init_std=init_std) if calendar else None

    @property
    def needs_timestamps(self) -> bool:
        return self.gap is not None or self.calendar

    def forward(self, contexts: Mapping[str, Tensor], valid: Tensor, timestamps: Tensor | None = None) -> Tensor:
        """Context vectors of every event.

        Args:
            contexts: field name -> (B, N) int codes (int32 or int64), 0 = padding / missing.
                Exactly the fields given at construction.
            valid: (B, N) bool, True for real events.
            timestamps: (B, N) int64 seconds; required when time features are on.

        Returns:
            (B, N, D); zero at padded positions.
        """
        if set(contexts) != set(self.names):
            raise KeyError(f"context fields {sorted(contexts)} do not match the model's {sorted(self.names)}")
        out = torch.zeros(*valid.shape, self.dim, device=valid.device)  # (B, N, D)
        for name in self.names:
            out = out + self.fields[name](contexts[name].long())  # (B, N, D)
        if self.needs_timestamps:
            if timestamps is None:
                raise ValueError("this ContextEmbedding has time features: pass timestamps (B, N) int64")
            ts = timestamps.long()
            if self.gap is not None:
                out = out + self.gap(gap_rows(ts, valid, n_gap_buckets=self.n_gap_buckets, divisor=self.gap_divisor))
            if self.hour is not None and self.weekday is not None:
                out = out + self.hour(torch.remainder(ts // SECONDS_PER_HOUR, 24))  # (B, N, D)
                out = out + self.weekday(torch.remainder(ts // SECONDS_PER_DAY + EPOCH_WEEKDAY, 7))  # (B, N, D)
        return out.masked_fill(~valid.unsqueeze(-1), 0.0)


class ItemTokenEmbedding(nn.Module):
    """``item(i_t)``: item id vector plus optional categorical item features (ARGUS.md §1, §4).

    The same module embeds input items and scores candidates (:meth:`all_vectors`), so item features must be
    a function of the item: they are looked up in per-item code tables (``feature_codes``, buffers saved with
    the weights) unless given explicitly.

    Args:
        items: the item id table: :class:`IdEmbedding` (exact ids) or :class:`HashedEmbedding` (unified table).
        features: feature name -> n (codes 1..n, 0 = missing → zero). With a hashed ``items`` table every feature
            hashes into that same table with salt ``1 + index`` in sorted-name order (item ids use salt 0), and
            ``n`` is only checked; with an id table each feature gets an :class:`IdEmbedding` of n + 1 rows.
        feature_codes: feature name -> (V + 1,) int64, the code of every item id (row 0 = padding = 0).
    """

    def __init__(
        self,
        items: IdEmbedding | HashedEmbedding,
        features: Mapping[str, int] | None = None,
        *,
        feature_codes: Mapping[str, Tensor] | None = None,
    ) -> None:
        super().__init__()
        self.items = items
        self.dim = items.dim
        features = dict(features or {})
        self.feature_names = sorted(features)
        self.salts = {name: 1 + i for i, name in enumerate(self.feature_names)}
        self.hashed = isinstance(items, HashedEmbedding)
        self.feature_tables = nn.ModuleDict(
            {} if self.hashed else {n: IdEmbedding(features[n] + 1, self.dim) for n in self.feature_names}
        )
        codes = dict(feature_codes or {})
        unknown = set(codes) - set(features)
        if unknown:
            raise KeyError(f"feature_codes for undeclared item features {sorted(unknown)}")
        self._coded = sorted(codes)
        for name, table in codes.items():
            if table.dim() != 1:
                raise ValueError(f"feature_codes[{name!r}] must be (V + 1,), got {tuple(table.shape)}")
            self.register_buffer(f"codes_{name}", table.long().clone())

    def _feature_vector(self, name: str, codes: Tensor) -> Tensor:
        if isinstance(self.items, HashedEmbedding):
            return self.items(codes.long(), feature=self.salts[name])  # (..., D) same table, own salt
        return self.feature_tables[name](codes.long())  # (..., D)

    def forward(self, ids: Tensor, features: Mapping[str, Tensor] | None = None) -> Tensor:
        """Item vectors.

        Args:
            ids: (...) int item ids, 0 = padding.
            features: optional feature name -> (...) codes overriding the stored per-item code tables.

        Returns:
            (..., D); zero where ``ids == 0``.
        """
        ids = ids.long()
        out = self.items(ids)  # (..., D)
        given = dict(features or {})
        for name in self.feature_names:
            if name in given:
                codes = given[name]
            elif name in self._coded:
                codes = getattr(self, f"codes_{name}")[ids]  # (...) code of each item
            else:
                raise KeyError(f"item feature {name!r}: pass its codes or build with feature_codes")
            out = out + self._feature_vector(name, codes)  # (..., D)
        return out.masked_fill((ids == 0).unsqueeze(-1), 0.0)

    def all_vectors(self, n_items: int) -> Tensor:
        """(V + 1, D) vectors of item ids 0..V (V = ``n_items``); row 0 is zero."""
        device = self.items.table.weight.device if isinstance(self.items, IdEmbedding) else self.items.table.device
        return self(torch.arange(n_items + 1, device=device))


def feedback_rows(values: Tensor, kind: SignalKind, edges: Tensor | None = None) -> Tensor:
    """Table row of every feedback value: 0 = missing (NaN); binary 0 → 1, 1 → 2 (threshold 0.5);
    continuous → 1 + ``bucketize(value, edges)`` (values below/above the edges go to the first/last bucket).

    Args:
        values: (...) float, NaN = not observed.
        kind: ``"binary"`` or ``"continuous"``.
        edges: (K - 1,) increasing interior bucket edges (continuous only); bucket k holds
            ``edges[k-1] <= v < edges[k]``.

    Returns:
        (...) int64.
    """
    missing = torch.isnan(values)
    clean = values.nan_to_num(0.0)
    if kind == "binary":
        rows = (clean >= 0.5).long() + 1
    elif kind == "continuous":
        if edges is None:
            raise ValueError("continuous feedback needs bucket edges")
        rows = torch.bucketize(clean.to(edges.dtype), edges, right=True) + 1
    else:
        raise ValueError(f"feedback kind must be 'binary' or 'continuous', got {kind!r}")
    return rows.masked_fill(missing, FEEDBACK_MISSING_ROW)


class FeedbackEmbedding(nn.Module):
    """``fb(f_t)``: sum over feedback signals of one learned vector per (signal, value row) (ARGUS.md §1).

    Args:
        signals: signal name -> ``"binary"`` or ``"continuous"``.
        dim: D.
        n_buckets: K, buckets of a continuous signal; default edges split [0, 1] into K equal parts.
        bucket_edges: signal name -> its interior edges (K_s - 1 increasing floats) for signals in other
            units (e.g. seconds played); overrides the default for that signal.
        init_std: standard deviation of the tables' normal initialisation.
    """

    def __init__(
        self,
        signals: Mapping[str, SignalKind | str],
        dim: int,
        *,
        n_buckets: int = 10,
        bucket_edges: Mapping[str, Sequence[float]] | None = None,
        init_std: float = DEFAULT_INIT_STD,
    ) -> None:
        super().__init__()
        if n_buckets < 1:
            raise ValueError(f"n_buckets must be >= 1, got {n_buckets}")
        custom = dict(bucket_edges or {})
        self.dim = dim
        self.kinds: dict[str, SignalKind] = {}
        tables = {}
        for name, kind in signals.items():
            kind = str(getattr(kind, "value", kind))
            if kind == "binary":
                self.kinds[name] = "binary"
                rows = 3  # missing, 0, 1
            elif kind == "continuous":
                self.kinds[name] = "continuous"
                edges = custom.get(name)
                if edges is None:
                    edge_t = torch.linspace(0.0, 1.0, n_buckets + 1)[1:-1]  # (K - 1,) interior edges
                else:
                    edge_t = torch.tensor([float(e) for e in edges])
                    if edge_t.dim() != 1 or (edge_t.numel() > 1 and not bool((edge_t[1:] > edge_t[:-1]).all())):
                        raise ValueError(f"bucket_edges[{name!r}] must be strictly increasing floats")
                self.register_buffer(f"edges_{name}", edge_t)
                rows = edge_t.numel() + 2  # missing + K buckets
            else:
                raise ValueError(f"feedback signal {name!r}: kind must be 'binary' or 'continuous', got {kind!r}")
            # padding_idx=None: row 0 is "missing", a learned vector, not padding (padding is masked to zero).
            tables[name] = IdEmbedding(rows, dim, padding_idx=None, init_std=init_std)
        unknown = set(custom) - {n for n, k in self.kinds.items() if k == "continuous"}
        if unknown:
            raise KeyError(f"bucket_edges given for signals that are not continuous: {sorted(unknown)}")
        self.tables = nn.ModuleDict(tables)

    @property
    def names(self) -> list[str]:
        return list(self.kinds)

    def edges(self, name: str) -> Tensor:
        """(K - 1,) interior bucket edges of continuous signal ``name``."""
        out: Tensor = getattr(self, f"edges_{name}")
        return out

    def rows(self, name: str, values: Tensor) -> Tensor:
        """(...) int64 table rows of signal ``name``'s values (...) (see :func:`feedback_rows`)."""
        kind = self.kinds[name]
        return feedback_rows(values, kind, self.edges(name) if kind == "continuous" else None)

    def forward(self, feedback: Mapping[str, Tensor], valid: Tensor) -> Tensor:
        """Feedback vectors of every event.

        Args:
            feedback: signal name -> (B, N) float, NaN = not observed; exactly the signals given at construction.
            valid: (B, N) bool, True for real events.

        Returns:
            (B, N, D); zero at padded positions, the signals' "missing" rows where a real event has NaN.
        """
        if set(feedback) != set(self.kinds):
            raise KeyError(f"feedback signals {sorted(feedback)} do not match the model's {sorted(self.kinds)}")
        out = torch.zeros(*valid.shape, self.dim, device=valid.device)  # (B, N, D)
        for name in self.kinds:
            out = out + self.tables[name](self.rows(name, feedback[name]))  # (B, N, D)
        return out.masked_fill(~valid.unsqueeze(-1), 0.0)


class EventTokenizer(nn.Module):
    """Context, item and feedback vectors of every event; shared by both ARGUS variants (ARGUS.md §2).

    Args:
        context: :class:`ContextEmbedding`.
        item: :class:`ItemTokenEmbedding` (also the item tower used for scoring).
        feedback: :class:`FeedbackEmbedding`.
    """

    def __init__(self, context: ContextEmbedding, item: ItemTokenEmbedding, feedback: FeedbackEmbedding) -> None:
        super().__init__()
        if not context.dim == item.dim == feedback.dim:
            raise ValueError(f"widths differ: context {context.dim}, item {item.dim}, feedback {feedback.dim}")
        self.dim = context.dim
        self.context = context
        self.item = item
        self.feedback = feedback

    def forward(
        self,
        items: Tensor,
        contexts: Mapping[str, Tensor],
        feedback: Mapping[str, Tensor],
        valid: Tensor,
        timestamps: Tensor | None = None,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """The three embeddings of every event.

        Args:
            items: (B, N) int item ids, 0 = padding.
            contexts: field -> (B, N) int codes.  feedback: signal -> (B, N) float, NaN = missing.
            valid: (B, N) bool.  timestamps: (B, N) int64 seconds.

        Returns:
            ``(ctx, item, fb)``, each (B, N, D), zero at padded positions.
        """
        keep = valid.unsqueeze(-1)  # (B, N, 1)
        ctx = self.context(contexts, valid, timestamps)  # (B, N, D)
        item = self.item(items).masked_fill(~keep, 0.0)  # (B, N, D)
        fb = self.feedback(feedback, valid)  # (B, N, D)
        return ctx, item, fb
