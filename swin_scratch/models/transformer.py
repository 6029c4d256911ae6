"""The text Transformer (Vaswani et al., 2017) on the project's shared attention kernel.

Reads like the design notes' steps. Post-norm encoder layer (the original, and the default):

    y1 = attention(x)          # queries, keys and values all from x
    y2 = norm(x + y1)          # residual, then LayerNorm
    y3 = feed_forward(y2)
    y4 = norm(y2 + y3)         # the layer's output

Decoder layer: masked (causal) self-attention -> add & norm -> cross-attention whose queries
come from the decoder and whose keys/values come from the encoder output -> add & norm -> FFN ->
add & norm. (The design notes put the masked attention in the encoder; it belongs to the
decoder's self-attention, where a position must not see the tokens it is asked to predict.)
``norm_first=True`` gives the pre-norm variant: x + sublayer(norm(x)).

``embed_dim = head_dim * num_heads``: more heads split the same width into more, smaller
subspaces; the parameter count does not change with the number of heads.
"""
from __future__ import annotations

import copy
import math
from typing import Optional

import torch
from torch import Tensor, nn

from swin_scratch.layers.attention import MultiHeadAttention
from swin_scratch.layers.mlp import Mlp

ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU}


def feed_forward(d_model: int, dim_feedforward: int, dropout: float, activation: str) -> Mlp:
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
    return Mlp(d_model, dim_feedforward, d_model, act_layer=ACTIVATIONS[activation], drop=dropout)


class SinusoidalPositionalEncoding(nn.Module):
    """x + PE: attention is permutation invariant, so order information is added to the input.

    PE[pos, 2i] = sin(pos / 10000^(2i/d)), PE[pos, 2i+1] = cos(pos / 10000^(2i/d)).
    """

    def __init__(self, d_model: int, max_len: int = 5000, dropout: float = 0.0):
        super().__init__()
        position = torch.arange(max_len)[:, None].float()
        frequency = torch.exp(torch.arange(0, d_model, 2).float() * (-math.log(10000.0) / d_model))
        table = torch.zeros(max_len, d_model)
        table[:, 0::2] = torch.sin(position * frequency)
        table[:, 1::2] = torch.cos(position * frequency[: d_model // 2])
        self.register_buffer("table", table, persistent=False)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor, offset: int = 0) -> Tensor:
        """(B, L, d) -> (B, L, d); ``offset`` is the position of x[:, 0] (incremental decoding)."""
        return self.dropout(x + self.table[offset : offset + x.shape[1]])


class TransformerEncoderLayer(nn.Module):
    def __init__(
        self,
        d_model: int,
        nhead: int,
        dim_feedforward: int = 2048,
        dropout: float = 0.1,
        activation: str = "relu",
        norm_first: bool = False,
        layer_norm_eps: float = 1e-5,
    ):
        super().__init__()
        self.self_attn = MultiHeadAttention(d_model, nhead, dropout=dropout)
        self.ffn = feed_forward(d_model, dim_feedforward, dropout, activation)
        self.norm1 = nn.LayerNorm(d_model, eps=layer_norm_eps)
        self.norm2 = nn.LayerNorm(d_model, eps=layer_norm_eps)
        self.dropout = nn.Dropout(dropout)
        self.norm_first = norm_first

    def forward(self, x: Tensor, key_padding_mask: Optional[Tensor] = None) -> Tensor:
        """x (B, L, d); key_padding_mask (B, L) bool, True = padding."""
        if self.norm_first:
            x = x + self.dropout(self.self_attn(self.norm1(x), key_padding_mask=key_padding_mask))
            return x + self.dropout(self.ffn(self.norm2(x)))
        x = self.norm1(x + self.dropout(self.self_attn(x, key_padding_mask=key_padding_mask)))
        return self.norm2(x + self.dropout(self.ffn(x)))


class TransformerDecoderLayer(nn.Module):
    def __init__(
        self,
        d_model: int,
        nhead: int,
        dim_feedforward: int = 2048,
        dropout: float = 0.1,
        activation: str = "relu",
        norm_first: bool = False,
        layer_norm_eps: float = 1e-5,
    ):
        super().__init__()
        self.self_attn = MultiHeadAttention(d_model, nhead, dropout=dropout)
        self.cross_attn = MultiHeadAttention(d_model, nhead, dropout=dropout)
        self.ffn = feed_forward(d_model, dim_feedforward, dropout, activation)
        self.norm1 = nn.LayerNorm(d_model, eps=layer_norm_eps)
        self.norm2 = nn.LayerNorm(d_model, eps=layer_norm_eps)
        self.norm3 = nn.LayerNorm(d_model, eps=layer_norm_eps)
        self.dropout = nn.Dropout(dropout)
        self.norm_first = norm_first

    def forward(
        self,
        x: Tensor,
        memory: Tensor,
        tgt_key_padding_mask: Optional[Tensor] = None,
        memory_key_padding_mask: Optional[Tensor] = None,
        causal: bool = True,
        cache: Optional[dict] = None,
    ) -> Tensor:
        """x (B, T, d) decoder states; memory (B, S, d) encoder output; cache for incremental decoding."""
        self_cache = cache.setdefault("self", {}) if cache is not None else None
        cross_cache = cache.setdefault("cross", {}) if cache is not None else None

        def self_attention(h: Tensor) -> Tensor:
            return self.self_attn(h, key_padding_mask=tgt_key_padding_mask, causal=causal, cache=self_cache)

        def cross_attention(h: Tensor) -> Tensor:
            return self.cross_attn(h, memory, key_padding_mask=memory_key_padding_mask, cache=cross_cache)

        if self.norm_first:
            x = x + self.dropout(self_attention(self.norm1(x)))
            x = x + self.dropout(cross_attention(self.norm2(x)))
            return x + self.dropout(self.ffn(self.norm3(x)))
        x = self.norm1(x + self.dropout(self_attention(x)))
        x = self.norm2(x + self.dropout(cross_attention(x)))
        return self.norm3(x + self.dropout(self.ffn(x)))


class TransformerEncoder(nn.Module):
    """``num_layers`` copies of a layer, then an optional final LayerNorm (as nn.TransformerEncoder)."""

    def __init__(self, layer: TransformerEncoderLayer, num_layers: int, norm: Optional[nn.Module] = None):
        super().__init__()
        self.layers = nn.ModuleList(copy.deepcopy(layer) for _ in range(num_layers))
        self.norm = norm

    def forward(self, x: Tensor, key_padding_mask: Optional[Tensor] = None) -> Tensor:
        for layer in self.layers:
            x = layer(x, key_padding_mask)
        return self.norm(x) if self.norm is not None else x


class TransformerDecoder(nn.Module):
    def __init__(self, layer: TransformerDecoderLayer, num_layers: int, norm: Optional[nn.Module] = None):
        super().__init__()
        self.layers = nn.ModuleList(copy.deepcopy(layer) for _ in range(num_layers))
        self.norm = norm

    def forward(
        self,
        x: Tensor,
        memory: Tensor,
        tgt_key_padding_mask: Optional[Tensor] = None,
        memory_key_padding_mask: Optional[Tensor] = None,
        causal: bool = True,
        caches: Optional[list[dict]] = None,
    ) -> Tensor:
        for index, layer in enumerate(self.layers):
            cache = caches[index] if caches is not None else None
            x = layer(x, memory, tgt_key_padding_mask, memory_key_padding_mask, causal, cache)
        return self.norm(x) if self.norm is not None else x


class Transformer(nn.Module):
    """Encoder-decoder seq2seq model: token embeddings (scaled by sqrt(d)), sinusoidal positions,
    encoder, decoder and an output projection that can share the target embedding's weight."""

    def __init__(
        self,
        src_vocab_size: int,
        tgt_vocab_size: int,
        d_model: int = 512,
        nhead: int = 8,
        num_encoder_layers: int = 6,
        num_decoder_layers: int = 6,
        dim_feedforward: int = 2048,
        dropout: float = 0.1,
        activation: str = "relu",
        norm_first: bool = False,
        max_len: int = 512,
        tie_output: bool = True,
        pad_id: int = 0,
    ):
        super().__init__()
        self.d_model = d_model
        self.pad_id = pad_id
        self.src_embed = nn.Embedding(src_vocab_size, d_model, padding_idx=pad_id)
        self.tgt_embed = nn.Embedding(tgt_vocab_size, d_model, padding_idx=pad_id)
        self.positions = SinusoidalPositionalEncoding(d_model, max_len, dropout)
        args = (d_model, nhead, dim_feedforward, dropout, activation, norm_first)
        self.encoder = TransformerEncoder(TransformerEncoderLayer(*args), num_encoder_layers, nn.LayerNorm(d_model))
        self.decoder = TransformerDecoder(TransformerDecoderLayer(*args), num_decoder_layers, nn.LayerNorm(d_model))
        self.output = nn.Linear(d_model, tgt_vocab_size, bias=False)
        if tie_output:
            self.output.weight = self.tgt_embed.weight

    def encode(self, src: Tensor) -> tuple[Tensor, Tensor]:
        """src (B, S) token ids -> memory (B, S, d) and its padding mask (B, S)."""
        padding = src == self.pad_id
        x = self.positions(self.src_embed(src) * math.sqrt(self.d_model))
        return self.encoder(x, padding), padding

    def decode(self, tgt: Tensor, memory: Tensor, memory_padding: Tensor,
               caches: Optional[list[dict]] = None, offset: int = 0) -> Tensor:
        """tgt (B, T) -> logits (B, T, V). With ``caches``, tgt holds only the new tokens."""
        padding = None if caches is not None else tgt == self.pad_id
        x = self.positions(self.tgt_embed(tgt) * math.sqrt(self.d_model), offset=offset)
        return self.output(self.decoder(x, memory, padding, memory_padding, causal=True, caches=caches))

    def forward(self, src: Tensor, tgt: Tensor) -> Tensor:
        memory, memory_padding = self.encode(src)
        return self.decode(tgt, memory, memory_padding)
