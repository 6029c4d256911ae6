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
from typing import Callable, Optional

import torch
from torch import Tensor, nn

from swin_scratch.layers.attention import MultiHeadAttention
from swin_scratch.layers.mlp import Mlp

ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU}


def feed_forward(embed_dim: int, dim_feedforward: int, dropout: float, activation: str) -> Mlp:
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
    return Mlp(embed_dim, dim_feedforward, embed_dim, act_layer=ACTIVATIONS[activation], drop=dropout)


class SinusoidalPositionalEncoding(nn.Module):
    """x + PE: attention is permutation invariant, so order information is added to the input.

    PE[pos, 2i] = sin(pos / 10000^(2i/d)), PE[pos, 2i+1] = cos(pos / 10000^(2i/d)).
    """

    def __init__(self, embed_dim: int, max_len: int = 5000, dropout: float = 0.0):
        super().__init__()
        position = torch.arange(max_len)[:, None].float()  # (max_len, 1)
        frequency = torch.exp(torch.arange(0, embed_dim, 2).float() * (-math.log(10000.0) / embed_dim))  # (d/2,)
        table = torch.zeros(max_len, embed_dim)
        table[:, 0::2] = torch.sin(position * frequency)
        table[:, 1::2] = torch.cos(position * frequency[: embed_dim // 2])
        self.register_buffer("table", table, persistent=False)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor, offset: int = 0) -> Tensor:
        """(B, L, d) -> (B, L, d); ``offset`` is the position of x[:, 0] (incremental decoding)."""
        return self.dropout(x + self.table[offset : offset + x.shape[1]])


Sublayer = Callable[[Tensor], Tensor]


class _TransformerLayer(nn.Module):
    """What encoder and decoder layers share: attention sublayers, the feed-forward network, one
    LayerNorm per sublayer (``norm1``, ``norm2``, ...) and the residual rule that joins them.

    Built once here so both layers have the same parameter names as ``nn.Transformer*Layer``.
    """

    has_cross_attention = False

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        dim_feedforward: int = 2048,
        dropout: float = 0.1,
        activation: str = "relu",
        norm_first: bool = False,
        layer_norm_eps: float = 1e-5,
    ):
        super().__init__()
        self.self_attn = MultiHeadAttention(embed_dim, num_heads, dropout=dropout)
        if self.has_cross_attention:
            self.cross_attn = MultiHeadAttention(embed_dim, num_heads, dropout=dropout)
        self.ffn = feed_forward(embed_dim, dim_feedforward, dropout, activation)
        num_sublayers = 3 if self.has_cross_attention else 2
        for index in range(1, num_sublayers + 1):
            setattr(self, f"norm{index}", nn.LayerNorm(embed_dim, eps=layer_norm_eps))
        self.dropout = nn.Dropout(dropout)
        self.norm_first = norm_first

    def add_and_norm(self, x: Tensor, sublayer: Sublayer, norm: nn.LayerNorm) -> Tensor:
        """Post-norm: norm(x + sublayer(x)); pre-norm (``norm_first``): x + sublayer(norm(x))."""
        if self.norm_first:
            return x + self.dropout(sublayer(norm(x)))
        return norm(x + self.dropout(sublayer(x)))


class TransformerEncoderLayer(_TransformerLayer):
    """Self-attention -> add & norm -> feed-forward -> add & norm."""

    def forward(self, x: Tensor, key_padding_mask: Optional[Tensor] = None) -> Tensor:
        """x (B, L, d); key_padding_mask (B, L) bool, True = padding."""
        x = self.add_and_norm(x, lambda h: self.self_attn(h, key_padding_mask=key_padding_mask), self.norm1)
        return self.add_and_norm(x, self.ffn, self.norm2)


class TransformerDecoderLayer(_TransformerLayer):
    """Masked self-attention -> add & norm -> cross-attention -> add & norm -> feed-forward -> add & norm."""

    has_cross_attention = True

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

        def self_attention(h: Tensor) -> Tensor:  # queries, keys, values: the decoder's own tokens so far
            return self.self_attn(h, key_padding_mask=tgt_key_padding_mask, causal=causal, cache=self_cache)

        def cross_attention(h: Tensor) -> Tensor:  # queries from the decoder, keys/values from the encoder
            return self.cross_attn(h, memory, key_padding_mask=memory_key_padding_mask, cache=cross_cache)

        x = self.add_and_norm(x, self_attention, self.norm1)
        x = self.add_and_norm(x, cross_attention, self.norm2)
        return self.add_and_norm(x, self.ffn, self.norm3)


class _LayerStack(nn.Module):
    """``num_layers`` copies of a layer, then an optional final LayerNorm (as nn.TransformerEncoder)."""

    def __init__(self, layer: nn.Module, num_layers: int, norm: Optional[nn.Module] = None):
        super().__init__()
        self.layers = nn.ModuleList(copy.deepcopy(layer) for _ in range(num_layers))
        self.norm = norm

    def final_norm(self, x: Tensor) -> Tensor:
        return self.norm(x) if self.norm is not None else x


class TransformerEncoder(_LayerStack):
    def forward(self, x: Tensor, key_padding_mask: Optional[Tensor] = None) -> Tensor:
        for layer in self.layers:
            x = layer(x, key_padding_mask)
        return self.final_norm(x)


class TransformerDecoder(_LayerStack):
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
        return self.final_norm(x)


class Transformer(nn.Module):
    """Encoder-decoder seq2seq model: token embeddings (scaled by sqrt(d)), sinusoidal positions,
    encoder, decoder and an output projection that can share the target embedding's weight."""

    def __init__(
        self,
        src_vocab_size: int,
        tgt_vocab_size: int,
        embed_dim: int = 512,
        num_heads: int = 8,
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
        self.embed_dim = embed_dim
        self.pad_id = pad_id
        self.src_embed = nn.Embedding(src_vocab_size, embed_dim, padding_idx=pad_id)
        self.tgt_embed = nn.Embedding(tgt_vocab_size, embed_dim, padding_idx=pad_id)
        self.positions = SinusoidalPositionalEncoding(embed_dim, max_len, dropout)
        args = (embed_dim, num_heads, dim_feedforward, dropout, activation, norm_first)
        self.encoder = TransformerEncoder(TransformerEncoderLayer(*args), num_encoder_layers, nn.LayerNorm(embed_dim))
        self.decoder = TransformerDecoder(TransformerDecoderLayer(*args), num_decoder_layers, nn.LayerNorm(embed_dim))
        self.output = nn.Linear(embed_dim, tgt_vocab_size, bias=False)
        if tie_output:
            self.output.weight = self.tgt_embed.weight

    def encode(self, src: Tensor) -> tuple[Tensor, Tensor]:
        """src (B, S) token ids -> memory (B, S, d) and its padding mask (B, S)."""
        padding = src == self.pad_id
        x = self.positions(self.src_embed(src) * math.sqrt(self.embed_dim))
        return self.encoder(x, padding), padding

    def decode(self, tgt: Tensor, memory: Tensor, memory_padding: Tensor,
               caches: Optional[list[dict]] = None, offset: int = 0) -> Tensor:
        """tgt (B, T) -> logits (B, T, V). With ``caches``, tgt holds only the new tokens."""
        padding = None if caches is not None else tgt == self.pad_id
        x = self.positions(self.tgt_embed(tgt) * math.sqrt(self.embed_dim), offset=offset)
        return self.output(self.decoder(x, memory, padding, memory_padding, causal=True, caches=caches))

    def forward(self, src: Tensor, tgt: Tensor) -> Tensor:
        memory, memory_padding = self.encode(src)
        return self.decode(tgt, memory, memory_padding)
