"""Assemble SASRec, LLaMa-style, HSTU, FuXi-alpha and BSARec from a :class:`ModelConfig` (composition of nn/ parts)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import torch
from torch import nn

from argusrec.config import ArgusConfig, LossConfig, ModelConfig
from argusrec.losses import LearnedTemperature
from argusrec.models.argus import Argus, build_argus
from argusrec.models.sequential import FixedTemperature, SequentialRecommender
from argusrec.nn.embeddings import HashedEmbedding, IdEmbedding, PositionEmbedding
from argusrec.nn.frequency import BSARecBlock
from argusrec.nn.fuxi import FuXiBlock
from argusrec.nn.hstu import HSTULayer
from argusrec.nn.transformer import TransformerEncoder, llama_blocks, sasrec_blocks


def build_model(model: ModelConfig, loss: LossConfig, *, n_items: int, max_len: int) -> SequentialRecommender:
    """A :class:`SequentialRecommender` for a catalog of ``n_items`` and histories of ``max_len`` events."""
    d = model.dim
    items: IdEmbedding | HashedEmbedding
    if model.item_embedding == "id":
        items = IdEmbedding(n_items + 1, d)
    else:  # ARGUS's unified hashed embedding: fixed memory whatever the catalog size
        items = HashedEmbedding(model.hash_buckets, d, num_hashes=model.num_hashes)
    qk = model.qk_dim or d // model.heads
    v = model.v_dim or d // model.heads
    positions: PositionEmbedding | None = PositionEmbedding(max_len, d)
    input_scale = True  # item embedding x sqrt(D): SASRec and HSTU convention
    input_norm = False  # post-norm stacks normalise the encoder's input instead of its output
    if model.kind == "sasrec":
        blocks = sasrec_blocks(
            model.layers,
            d,
            model.heads,
            model.dropout,
            ffn_dim=model.ffn_dim or d,
            residual=model.residual,
            padding_window=max_len if model.attend_padding else None,
        )
        final_norm: Literal["layer", "rms"] | None = "layer"
    elif model.kind == "llama":
        blocks = llama_blocks(model.layers, d, model.heads, model.dropout, ffn_dim=model.ffn_dim)
        positions, input_scale, final_norm = None, False, "rms"  # rotary positions inside attention
    elif model.kind == "hstu":
        blocks = [
            HSTULayer(
                d, model.heads, qk_dim=qk, v_dim=v, max_len=max_len, dropout=model.dropout, variant=model.hstu_variant
            )
            for _ in range(model.layers)
        ]
        final_norm = None  # HSTU's research model L2-normalises the output instead (model.normalize)
    elif model.kind == "bsarec":  # post-norm blocks: the input is normalised instead of the output
        blocks = [
            BSARecBlock(
                d,
                model.heads,
                ffn_dim=model.ffn_dim or 4 * d,
                window=max_len,
                keep=model.frequency_bins,
                alpha=model.frequency_mix,
                dropout=model.dropout,
                padding_content=model.padding_content,
            )
            for _ in range(model.layers)
        ]
        input_scale, final_norm, input_norm = False, None, True
    else:
        blocks = [
            FuXiBlock(
                d,
                model.heads,
                qk_dim=qk,
                v_dim=v,
                max_len=max_len,
                dropout=model.dropout,
                ffn_dim=model.ffn_dim,  # MFFN SwiGLU width, default D
            )
            for _ in range(model.layers)
        ]
        final_norm = "rms"
    if model.input_scale is not None:
        input_scale = model.input_scale
    temperature = LearnedTemperature() if loss.temperature == "learned" else FixedTemperature(float(loss.temperature))
    recommender = SequentialRecommender(
        items=items,
        encoder=TransformerEncoder(blocks, d, final_norm=final_norm),
        positions=positions,
        n_items=n_items,
        dim=d,
        dropout=model.dropout,
        input_scale=input_scale,
        input_norm=input_norm,
        normalize=model.normalize,
        temperature=temperature,
        empty_state=model.empty_state,
        padding_content=model.padding_content,
    )
    if model.init != "default":  # every matrix, embedding tables included
        with torch.no_grad():
            for name, p in recommender.named_parameters():
                if p.dim() > 1 and model.init == "xavier":  # RecTools' SASRec
                    nn.init.xavier_normal_(p)
                elif p.dim() > 1:  # BERT and the BSARec code: N(0, 0.02), biases zero
                    nn.init.normal_(p, std=0.02)
                elif model.init == "normal" and name.endswith(".bias"):
                    p.zero_()
            for m in recommender.modules():  # padding rows stay zero
                if isinstance(m, nn.Embedding) and m.padding_idx is not None:
                    m.weight[m.padding_idx].zero_()
    return recommender


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """(all parameters, parameters outside embedding tables) — the latter is the size papers quote."""
    total = sum(p.numel() for p in model.parameters())
    embedding = sum(
        p.numel()
        for m in model.modules()
        if isinstance(m, (IdEmbedding, HashedEmbedding, PositionEmbedding))
        for p in m.parameters()
    )
    return total, total - embedding


def build_argus_model(
    model: ModelConfig,
    argus: ArgusConfig,
    *,
    vocab_sizes: Mapping[str, int],
    feedback_signals: Mapping[str, str],
    n_items: int,
    max_len: int,
) -> Argus:
    """An :class:`~argusrec.models.argus.Argus` sized by ``model`` and shaped by ``argus`` (ARGUS.md §2)."""
    return build_argus(
        variant=argus.variant,
        vocab_sizes=vocab_sizes if argus.use_context else {},
        feedback_signals=feedback_signals,
        n_items=n_items,
        dim=model.dim,
        layers=model.layers,
        heads=model.heads,
        max_len=max_len,
        encoder=argus.encoder,
        item_embedding=model.item_embedding,
        hash_buckets=model.hash_buckets,
        num_hashes=model.num_hashes,
        dropout=model.dropout,
        retrieval_dim=argus.retrieval_dim,
        normalize=model.normalize,
        combine=argus.combine,
        time_features=argus.time_features,
        fp_bilinear_rank=argus.fp_bilinear_rank,
    )
