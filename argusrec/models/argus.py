"""ARGUS (reference/ARGUS.md): one causal pass over ``(context, item, feedback)`` histories, two heads.

- Next-item prediction (NIP, §1): ``nip_query[:, t]`` is the query for ``item_t`` given the history
  before ``t`` and ``context_t``; the score of item j is ``<nip_query, item_vectors(j)>`` (the loss divides by
  the learned temperature and subtracts logQ, §3 — not here).
- Feedback prediction (FP, §1): ``fp_logits[s][:, t]`` predicts signal ``s`` of event ``t`` given the history
  before ``t``, ``context_t`` and ``item_t``; a logit for binary signals, and for continuous ones a logit whose
  sigmoid predicts the value scaled to [0, 1].

Variants (§2), sharing the tokenizer (:class:`argusrec.nn.event_tokens.EventTokenizer`), the encoder, the
positions and the item tower:

- ``"full"``: three tokens per event, interleaved ``[c_0, i_0, f_0, c_1, ...]`` (S = 3N), plus a learned
  token-type vector; positions count events (the three tokens of an event share one). NIP reads the state
  at ``c_t`` (seen: history < t, context_t), FP the state at ``i_t`` (also item_t, not feedback_t).
- ``"simplified"``: one token per event ``x_t = g(ctx, item, fb)``; ``g`` = MLP of the sum (``combine="sum"``,
  our default, §2) or a linear map of the concatenation (``"concat"``). With ``h_{t-1}`` the state after the
  previous real event (a learned start vector when there is none):
  ``q_t = MLP_nip([h_{t-1}; ctx_t])`` (→ D_r) and ``y_t = MLP_fp([h_{t-1}; ctx_t; item_t])`` (→ F).

FP interaction (our addition, off by default = the article's heads): with ``fp_bilinear_rank = r > 0`` each
signal's logit also gets a low-rank bilinear term ``<A_s z_t, B_s e(item_t)> / sqrt(r)``, where ``z_t`` is the NIP
head's input (full: the state at ``c_t``; simplified: ``[h_{t-1}; ctx_t]``) and ``e(item_t)`` the item token.
An MLP over a concatenation learns a user-item dot product poorly (Rendle et al., 2020, on NCF); feedback
in the simulator, as in music services, is driven by such a match, and this term hands it to the head.

Time-aware encoders (HSTU) get ``timestamps`` and ``query_timestamps`` (the contract's Δt = query − key).
Full ARGUS repeats each event's time on its three tokens. The query time (``query_time``) is by default
the token's own event time (``"own"``): the state after event t then depends on events <= t only, which
fine-tuning's lagged user states (§5) need — the gap to the predicted event reaches the heads through the
context's time features instead. ``"next"`` (simplified only) is HSTU's convention: position t is
queried at the time of the next real event (its own at the last one); it leaks that time into
``user_states[:, t]``, but not into either head's output at or before t.

Letters (docs/notation.md): B batch, N events, S = 3N tokens, D width, F feedback signals, V catalog.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from argusrec.losses import LearnedTemperature
from argusrec.nn.embeddings import HashedEmbedding, IdEmbedding, PositionEmbedding
from argusrec.nn.event_tokens import (
    ContextEmbedding,
    EventTokenizer,
    FeedbackEmbedding,
    ItemTokenEmbedding,
    SignalKind,
    previous_index,
)
from argusrec.nn.hstu import HSTULayer
from argusrec.nn.transformer import TransformerEncoder, sasrec_blocks

__all__ = ["Argus", "ArgusOutput", "build_argus", "transformer_parameters"]

Variant = Literal["full", "simplified"]
Combine = Literal["sum", "concat"]
TOKENS_PER_EVENT = 3  # full ARGUS: context, item, feedback
CONTEXT, ITEM, FEEDBACK = 0, 1, 2  # token types, also the slot of each token within its event


@dataclass
class _Encoded:
    """What the encoder pass hands the heads, each (B, N, ·): NIP head input (full: D; simplified: 2D),
    FP head input (full: D; simplified: 3D), the item tokens (D) and the user states (D)."""

    nip_in: Tensor
    fp_in: Tensor
    item: Tensor
    states: Tensor


@dataclass
class ArgusOutput:
    """What :meth:`Argus.forward` returns; every tensor is zero at padded events.

    Attributes:
        nip_query: (B, N, D_r) the query predicting ``item_t`` at every event t (L2-normalised if ``normalize``).
        fp_logits: signal -> (B, N) logits predicting ``feedback_t``.
        user_states: (B, N, D) encoder state after event t (full: the state at f_t; simplified: h_t): it has seen
            events <= t, feedback included (and, with ``query_time="next"``, the time of event t + 1); the source
            of user vectors for fine-tuning and serving (§5).
    """

    nip_query: Tensor
    fp_logits: dict[str, Tensor]
    user_states: Tensor


def _mlp(d_in: int, d_hidden: int, d_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d_in, d_hidden), nn.GELU(), nn.Linear(d_hidden, d_out))


class BilinearFeedback(nn.Module):
    """Per-signal low-rank bilinear score ``<A_s z, B_s e> / sqrt(r)``: (..., Dz), (..., De) -> (..., F)."""

    def __init__(self, d_query: int, d_item: int, n_signals: int, rank: int) -> None:
        super().__init__()
        if rank < 1 or n_signals < 1:
            raise ValueError(f"rank and n_signals must be >= 1, got rank={rank}, n_signals={n_signals}")
        self.n_signals, self.rank = n_signals, rank
        self.query = nn.Linear(d_query, n_signals * rank, bias=False)
        self.item = nn.Linear(d_item, n_signals * rank, bias=False)

    def forward(self, z: Tensor, e: Tensor) -> Tensor:
        a = self.query(z).unflatten(-1, (self.n_signals, self.rank))  # (..., F, r)
        b = self.item(e).unflatten(-1, (self.n_signals, self.rank))  # (..., F, r)
        return (a * b).sum(-1) * self.rank**-0.5  # (..., F)


class Argus(nn.Module):
    """ARGUS, full or simplified (see the module docstring).

    Args:
        variant: ``"full"`` or ``"simplified"``.
        tokenizer: the event tokenizer (its item module is also the item tower).
        encoder: contract-following encoder over (B, S or N, D) (e.g. :class:`TransformerEncoder`).
        positions: learned per-event positions counted from the latest event, or None.
        feedback_signals: names of the FP outputs, in order.
        n_items: V, for :meth:`all_item_vectors`.
        retrieval_dim: D_r of NIP queries and item vectors (default D); the item tower gets a bias-free
            projection D -> D_r when it differs.
        normalize: L2-normalise queries and item vectors (cosine scores).
        dropout: on the encoder's input tokens.
        combine: simplified ARGUS's ``g``: ``"sum"`` (sum then MLP) or ``"concat"`` (concat then linear).
        temperature: learned softmax temperature (§3), held here to be trained and checkpointed with the model.
        query_time: ``"own"`` or ``"next"`` (simplified only): the encoder's query timestamps (module docstring).
        fp_bilinear_rank: r of the FP interaction term (module docstring); 0 = the article's MLP head alone.
    """

    def __init__(
        self,
        *,
        variant: Variant,
        tokenizer: EventTokenizer,
        encoder: nn.Module,
        positions: PositionEmbedding | None,
        feedback_signals: Sequence[str],
        n_items: int,
        retrieval_dim: int | None = None,
        normalize: bool = False,
        dropout: float = 0.0,
        combine: Combine = "sum",
        temperature: nn.Module | None = None,
        query_time: Literal["own", "next"] = "own",
        fp_bilinear_rank: int = 0,
    ) -> None:
        super().__init__()
        if fp_bilinear_rank < 0:
            raise ValueError(f"fp_bilinear_rank must be >= 0, got {fp_bilinear_rank}")
        if query_time not in ("own", "next") or (query_time == "next" and variant == "full"):
            raise ValueError(f"query_time must be 'own' (or 'next' for the simplified variant), got {query_time!r}")
        self.query_time = query_time
        if variant not in ("full", "simplified"):
            raise ValueError(f"variant must be 'full' or 'simplified', got {variant!r}")
        if combine not in ("sum", "concat"):
            raise ValueError(f"combine must be 'sum' or 'concat', got {combine!r}")
        d = tokenizer.dim
        d_r = d if retrieval_dim is None else retrieval_dim
        self.variant, self.dim, self.retrieval_dim, self.n_items = variant, d, d_r, n_items
        self.normalize = normalize
        self.signals = list(feedback_signals)
        n_out = len(self.signals)
        self.tokenizer = tokenizer
        self.encoder = encoder
        self.positions = positions
        self.dropout = nn.Dropout(dropout)
        self.item_proj = nn.Linear(d, d_r, bias=False) if d_r != d else nn.Identity()
        self.temperature = temperature if temperature is not None else LearnedTemperature()
        self.token_type: nn.Embedding | None = None
        self.combine: nn.Module | None = None
        self.start: nn.Parameter | None = None
        if variant == "full":
            self.token_type = nn.Embedding(TOKENS_PER_EVENT, d)  # c / i / f (§2)
            nn.init.normal_(self.token_type.weight, std=0.02)
            self.nip_head: nn.Module = _mlp(d, d, d_r)  # state at c_t -> query
            nip_in = d
            fp_in = d  # state at i_t -> one logit per signal
        else:
            self.combine = _mlp(d, 2 * d, d) if combine == "sum" else nn.Linear(3 * d, d)
            self.start = nn.Parameter(torch.zeros(d).normal_(std=0.02))  # h_{-1}: "no history yet"
            self.nip_head = _mlp(2 * d, d, d_r)  # [h_{t-1}; ctx_t] -> query, compressed to D_r
            nip_in = 2 * d
            fp_in = 3 * d  # [h_{t-1}; ctx_t; item_t] -> one logit per signal
        # no feedback signals (e.g. Amazon sequences): no FP head at all rather than a zero-width one
        self.fp_head: nn.Module | None = _mlp(fp_in, d, n_out) if n_out else None
        self.fp_bilinear: BilinearFeedback | None = None
        if n_out and fp_bilinear_rank:
            self.fp_bilinear = BilinearFeedback(nip_in, d, n_out, fp_bilinear_rank)

    # ------------------------------------------------------------------------------------------ scoring
    def _norm(self, x: Tensor) -> Tensor:
        return F.normalize(x, dim=-1) if self.normalize else x

    def item_vectors(self, ids: Tensor) -> Tensor:
        """(...) item ids -> (..., D_r) vectors scored against ``nip_query``."""
        return self._norm(self.item_proj(self.tokenizer.item(ids)))

    def all_item_vectors(self, n_items: int | None = None) -> Tensor:
        """(V + 1, D_r) vectors of item ids 0..V (V defaults to the model's ``n_items``); row 0 is padding."""
        v = self.n_items if n_items is None else n_items
        return self._norm(self.item_proj(self.tokenizer.item.all_vectors(v)))

    # ------------------------------------------------------------------------------------------ forward
    def forward(
        self,
        items: Tensor,
        contexts: Mapping[str, Tensor],
        feedback: Mapping[str, Tensor],
        timestamps: Tensor | None,
        valid: Tensor,
    ) -> ArgusOutput:
        """One causal pass over a batch of histories.

        Args:
            items: (B, N) int item ids, 0 on padding.
            contexts: context field -> (B, N) int codes, 0 = padding / missing.
            feedback: signal -> (B, N) float, NaN = not observed.
            timestamps: (B, N) int64 seconds (needed by time features and time-aware encoders).
            valid: (B, N) bool, True for real events (any padding layout; left padding by default).

        Returns:
            :class:`ArgusOutput` (nip_query (B, N, D_r), fp_logits signal -> (B, N), user_states (B, N, D)).
        """
        valid = valid.bool()
        enc = self._encode(items, contexts, feedback, timestamps, valid)
        keep = valid.unsqueeze(-1)  # (B, N, 1)
        query = self._norm(self.nip_head(enc.nip_in)).masked_fill(~keep, 0.0)  # (B, N, D_r)
        fp_logits: dict[str, Tensor] = {}
        if self.fp_head is not None:
            logits = self.fp_head(enc.fp_in)  # (B, N, F)
            if self.fp_bilinear is not None:
                logits = logits + self.fp_bilinear(enc.nip_in, enc.item)  # (B, N, F)
            logits = logits.masked_fill(~keep, 0.0)
            fp_logits = {name: logits[..., k] for k, name in enumerate(self.signals)}
        return ArgusOutput(
            nip_query=query,
            fp_logits=fp_logits,
            user_states=enc.states,
        )

    def encode(
        self,
        items: Tensor,
        contexts: Mapping[str, Tensor],
        feedback: Mapping[str, Tensor],
        timestamps: Tensor | None,
        valid: Tensor,
    ) -> Tensor:
        """(B, N, D) ``user_states`` of :meth:`forward` (same arguments) without running the NIP / FP heads:
        the user tower of two-tower fine-tuning (§5, :mod:`argusrec.finetune.two_tower`)."""
        return self._encode(items, contexts, feedback, timestamps, valid.bool()).states

    def _encode(
        self,
        items: Tensor,
        contexts: Mapping[str, Tensor],
        feedback: Mapping[str, Tensor],
        timestamps: Tensor | None,
        valid: Tensor,
    ) -> _Encoded:
        """Tokens -> encoder -> the heads' inputs and the user states."""
        ts = timestamps.long() if timestamps is not None else None
        ctx, item, fb = self.tokenizer(items, contexts, feedback, valid, ts)  # 3 × (B, N, D)
        pos = self.positions(self.positions.positions(valid)) if self.positions is not None else None  # (B, N, D)
        run = self._full if self.variant == "full" else self._simplified
        nip_in, fp_in, states = run(ctx, item, fb, pos, valid, ts)
        return _Encoded(nip_in=nip_in, fp_in=fp_in, item=item, states=states)

    def _full(
        self, ctx: Tensor, item: Tensor, fb: Tensor, pos: Tensor | None, valid: Tensor, ts: Tensor | None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Full ARGUS (§2): encoder over S = 3N interleaved tokens; returns (state at c_t, state at i_t, at f_t)."""
        assert self.token_type is not None
        b, n, d = ctx.shape
        tokens = torch.stack([ctx, item, fb], dim=2) + self.token_type.weight  # (B, N, 3, D)
        if pos is not None:
            tokens = tokens + pos.unsqueeze(2)  # (B, N, 3, D): one position per event, shared by its tokens
        x = self.dropout(tokens.reshape(b, n * TOKENS_PER_EVENT, d))  # (B, S, D) [c_0, i_0, f_0, c_1, ...]
        valid_s = valid.repeat_interleave(TOKENS_PER_EVENT, dim=1)  # (B, S)
        ts_s = ts.repeat_interleave(TOKENS_PER_EVENT, dim=1) if ts is not None else None  # (B, S)
        h = self.encoder(x, valid=valid_s, timestamps=ts_s, query_timestamps=ts_s)  # (B, S, D)
        h = h.reshape(b, n, TOKENS_PER_EVENT, d)  # (B, N, 3, D)
        return h[:, :, CONTEXT], h[:, :, ITEM], h[:, :, FEEDBACK]

    def _simplified(
        self, ctx: Tensor, item: Tensor, fb: Tensor, pos: Tensor | None, valid: Tensor, ts: Tensor | None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Simplified ARGUS (§2): one token per event; returns ([h_{t-1}; ctx_t], [h_{t-1}; ctx_t; item_t], h_t)."""
        assert self.combine is not None and self.start is not None
        keep = valid.unsqueeze(-1)  # (B, N, 1)
        if isinstance(self.combine, nn.Linear):
            x = self.combine(torch.cat([ctx, item, fb], dim=-1))  # (B, N, 3D) -> (B, N, D)
        else:
            x = self.combine(ctx + item + fb)  # (B, N, D)
        if pos is not None:
            x = x + pos
        x = self.dropout(x).masked_fill(~keep, 0.0)  # (B, N, D)
        prev = previous_index(valid)  # (B, N) column of the previous real event, -1 if none
        query_ts = ts
        if ts is not None and self.query_time == "next":
            # HSTU's next-timestamp convention: position m is queried at the time of the next real event
            # (the one h_m serves); a position with no later real event keeps its own time.
            n = valid.shape[1]
            rev = previous_index(valid.flip(1)).flip(1)  # (B, N) previous real column in reversed order
            nxt = torch.where(rev >= 0, n - 1 - rev, -1)  # (B, N) next real column, -1 if none
            query_ts = torch.where(nxt >= 0, ts.gather(1, nxt.clamp(min=0)), ts)  # (B, N)
        h = self.encoder(x, valid=valid, timestamps=ts, query_timestamps=query_ts)  # (B, N, D)
        h_prev = h.gather(1, prev.clamp(min=0).unsqueeze(-1).expand_as(h))  # (B, N, D) state after event t-1
        h_prev = torch.where((prev >= 0).unsqueeze(-1), h_prev, self.start)  # (B, N, D) start state at t = 0
        h_prev = h_prev.masked_fill(~keep, 0.0)  # (B, N, D)
        nip_in = torch.cat([h_prev, ctx], dim=-1)  # (B, N, 2D)
        fp_in = torch.cat([h_prev, ctx, item], dim=-1)  # (B, N, 3D)
        return nip_in, fp_in, h


def build_argus(
    *,
    variant: Variant,
    vocab_sizes: Mapping[str, int],
    feedback_signals: Mapping[str, SignalKind | str],
    n_items: int,
    dim: int,
    layers: int,
    heads: int,
    max_len: int,
    encoder: Literal["transformer", "hstu"] = "transformer",
    item_embedding: Literal["id", "hashed"] = "id",
    hash_buckets: int = 1 << 19,
    num_hashes: int = 3,
    dropout: float = 0.0,
    retrieval_dim: int | None = None,
    normalize: bool = False,
    combine: Combine = "sum",
    item_features: Mapping[str, int] | None = None,
    item_feature_codes: Mapping[str, Tensor] | None = None,
    time_features: bool = True,
    calendar: bool = False,
    n_feedback_buckets: int = 10,
    bucket_edges: Mapping[str, Sequence[float]] | None = None,
    query_time: Literal["own", "next"] = "own",
    fp_bilinear_rank: int = 0,
) -> Argus:
    """Assemble an :class:`Argus` from explicit keyword arguments.

    ``max_len`` is in events (full ARGUS's HSTU layers get 3·max_len tokens). ``encoder="transformer"``:
    pre-norm LayerNorm blocks with a 4·D GELU FFN and learned positions; ``"hstu"``: research-variant
    :class:`HSTULayer` s (its relative bias over tokens) plus the same learned positions. Both end with a
    LayerNorm (the heads are MLPs, not a cosine of the raw state). ``hash_buckets``/``num_hashes`` configure
    the unified table when ``item_embedding="hashed"`` (§4: 512K rows, 3 hashes in production).
    """
    items: IdEmbedding | HashedEmbedding
    if item_embedding == "id":
        items = IdEmbedding(n_items + 1, dim)
    elif item_embedding == "hashed":
        items = HashedEmbedding(hash_buckets, dim, num_hashes=num_hashes)
    else:
        raise ValueError(f"item_embedding must be 'id' or 'hashed', got {item_embedding!r}")
    tokenizer = EventTokenizer(
        ContextEmbedding(vocab_sizes, dim, time_features=time_features, calendar=calendar),
        ItemTokenEmbedding(items, item_features, feature_codes=item_feature_codes),
        FeedbackEmbedding(feedback_signals, dim, n_buckets=n_feedback_buckets, bucket_edges=bucket_edges),
    )
    tokens = max_len * (TOKENS_PER_EVENT if variant == "full" else 1)
    blocks: list[nn.Module]
    if encoder == "transformer":
        blocks = sasrec_blocks(layers, dim, heads, dropout, ffn_dim=4 * dim, ffn="gelu")
    elif encoder == "hstu":
        head_dim = dim // heads
        blocks = [
            HSTULayer(dim, heads, qk_dim=head_dim, v_dim=head_dim, max_len=tokens, dropout=dropout)
            for _ in range(layers)
        ]
    else:
        raise ValueError(f"encoder must be 'transformer' or 'hstu', got {encoder!r}")
    return Argus(
        variant=variant,
        tokenizer=tokenizer,
        encoder=TransformerEncoder(blocks, dim, final_norm="layer"),
        positions=PositionEmbedding(max_len, dim),
        feedback_signals=list(feedback_signals),
        n_items=n_items,
        retrieval_dim=retrieval_dim,
        normalize=normalize,
        dropout=dropout,
        combine=combine,
        query_time=query_time,
        fp_bilinear_rank=fp_bilinear_rank,
    )


_TABLES = (nn.Embedding, IdEmbedding, HashedEmbedding, PositionEmbedding)


def transformer_parameters(model: nn.Module) -> int:
    """Parameters outside embedding tables (id, hashed, position, token-type tables) — the size the article
    quotes (§6: ~3.2M to ~1B transformer parameters). Heads, the combiner and the encoder count."""
    in_tables = {id(p) for m in model.modules() if isinstance(m, _TABLES) for p in m.parameters()}
    return sum(p.numel() for p in model.parameters() if id(p) not in in_tables)
