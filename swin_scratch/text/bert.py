"""An encoder-only model with BERT-style embeddings and pooler.

Size check against the design notes' estimate. The notes scale BERT-base (110 M) by
(24 / 12) x (1024 / 768) = 2.67 and get 294 M for BERT-large, against the published 340 M. Exact
counts (``bert_parameter_breakdown``; vocab 30522, 512 positions, 2 segments):

=================  ============  ============
part               base (768)    large (1024)
=================  ============  ============
embeddings         23,837,184    31,782,912
encoder layers     85,054,464   302,309,376
pooler                590,592     1,049,600
total             109,482,240   335,141,888
=================  ============  ============

A layer has about 12 d² parameters (4 d² attention + 8 d² feed-forward), so the encoder grows
with depth x d²: (24 / 12) x (1024 / 768)² = 3.56, not 2.67 (the width enters squared).
Embeddings grow only linearly with d (vocab x d) and not with depth. Scaling the total by 2.67
therefore undercounts the encoder (85.1 M x 3.56 = 302 M) and overcounts the embeddings; the
exact total is 335.1 M (published as "340 M").
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn

from swin_scratch.text.transformer import TransformerEncoder, TransformerEncoderLayer


class BertEmbeddings(nn.Module):
    """token + learned position + segment embeddings, then LayerNorm and dropout."""

    def __init__(self, vocab_size: int, embed_dim: int, max_len: int, segments: int, dropout: float):
        super().__init__()
        self.word_embeddings = nn.Embedding(vocab_size, embed_dim)
        self.position_embeddings = nn.Embedding(max_len, embed_dim)  # learned, one row per position
        self.token_type_embeddings = nn.Embedding(segments, embed_dim)
        self.norm = nn.LayerNorm(embed_dim, eps=1e-12)
        self.dropout = nn.Dropout(dropout)

    def forward(self, input_ids: Tensor, token_type_ids: Optional[Tensor] = None) -> Tensor:
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)[None]
        segments = token_type_ids if token_type_ids is not None else torch.zeros_like(input_ids)
        x = self.word_embeddings(input_ids) + self.position_embeddings(positions) + self.token_type_embeddings(segments)
        return self.dropout(self.norm(x))


class BertModel(nn.Module):
    """Post-norm GELU encoder over BERT embeddings; returns (sequence output, pooled [CLS] output)."""

    def __init__(
        self,
        vocab_size: int = 30522,
        embed_dim: int = 768,
        num_layers: int = 12,
        num_heads: int = 12,
        dim_feedforward: int = 3072,
        max_len: int = 512,
        segments: int = 2,
        dropout: float = 0.1,
    ):
        super().__init__()
        self.embeddings = BertEmbeddings(vocab_size, embed_dim, max_len, segments, dropout)
        layer = TransformerEncoderLayer(embed_dim, num_heads, dim_feedforward, dropout, "gelu", layer_norm_eps=1e-12)
        self.encoder = TransformerEncoder(layer, num_layers)
        self.pooler = nn.Linear(embed_dim, embed_dim)

    def forward(self, input_ids: Tensor, token_type_ids: Optional[Tensor] = None,
                padding_mask: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
        sequence = self.encoder(self.embeddings(input_ids, token_type_ids), padding_mask)  # (B, L, d)
        return sequence, torch.tanh(self.pooler(sequence[:, 0]))


def bert_base(**overrides) -> BertModel:
    return BertModel(**overrides)


def bert_large(**overrides) -> BertModel:
    return BertModel(**{"embed_dim": 1024, "num_layers": 24, "num_heads": 16, "dim_feedforward": 4096, **overrides})


def bert_parameter_breakdown(model: BertModel) -> dict[str, int]:
    def count(module: nn.Module) -> int:
        return sum(p.numel() for p in module.parameters())

    parts = {"embeddings": count(model.embeddings), "encoder layers": count(model.encoder),
             "pooler": count(model.pooler)}
    parts["total"] = sum(parts.values())
    return parts
