"""The project's one attention kernel and the multi-head attention module built on it.

Both the text Transformer and Swin's window attention call
:func:`scaled_dot_product_attention`; nothing else in the package computes
``softmax(Q K^T / sqrt(d) + bias) V``.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "scaled_dot_product_attention",
    "attention_reference",
    "build_attention_bias",
    "MultiHeadAttention",
]


def build_attention_bias(
    query_len: int,
    key_len: int,
    attn_bias: Optional[Tensor] = None,
    key_padding_mask: Optional[Tensor] = None,
    causal: bool = False,
    dtype: torch.dtype = torch.float32,
    device: Optional[torch.device] = None,
) -> Optional[Tensor]:
    """Fold every kind of mask into one additive float bias, broadcastable to (B, H, Lq, Lk).

    Masked positions get ``-inf``; the kernel turns rows that end up all ``-inf`` into zeros.
    Returns None when there is nothing to add, so the fast path can stay mask-free.
    """
    bias = attn_bias
    if key_padding_mask is not None:
        if key_padding_mask.dtype != torch.bool:
            raise TypeError(
                f"key_padding_mask must be a bool tensor (True = padding), got {key_padding_mask.dtype}"
            )
        # (B, Lk) -> (B, 1, 1, Lk)
        pad = torch.zeros(key_padding_mask.shape, dtype=dtype, device=key_padding_mask.device)
        pad = pad.masked_fill(key_padding_mask, float("-inf"))[:, None, None, :]
        bias = pad if bias is None else bias + pad
    if causal:
        # A query may attend to keys at its own position or earlier; with Lq < Lk (cached
        # decoding) the queries are the *last* Lq positions of the key sequence.
        offset = key_len - query_len
        future = torch.ones(query_len, key_len, dtype=torch.bool, device=device).triu(1 + offset)
        causal_bias = torch.zeros(query_len, key_len, dtype=dtype, device=device)
        causal_bias = causal_bias.masked_fill(future, float("-inf"))
        bias = causal_bias if bias is None else bias + causal_bias
    return bias


def attention_reference(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    bias: Optional[Tensor] = None,
    dropout_p: float = 0.0,
    zero_fully_masked_rows: bool = True,
) -> Tensor:
    """The explicit math, kept as the readable reference: softmax(Q K^T / sqrt(d) + bias) V.

    Shapes: q (..., Lq, d), k (..., Lk, d), v (..., Lk, dv) -> (..., Lq, dv).
    """
    scores = (q * q.shape[-1] ** -0.5) @ k.transpose(-2, -1)  # (..., Lq, Lk); scaling q is the smaller pass
    if bias is not None:
        scores = scores + bias
    weights = torch.softmax(scores, dim=-1)
    if zero_fully_masked_rows:
        # A row whose keys are all masked is all -inf -> softmax gives NaN; such a query sees nothing.
        weights = torch.nan_to_num(weights, nan=0.0)
    if dropout_p > 0.0:
        weights = F.dropout(weights, p=dropout_p)
    return weights @ v


def scaled_dot_product_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    attn_bias: Optional[Tensor] = None,
    key_padding_mask: Optional[Tensor] = None,
    causal: bool = False,
    dropout_p: float = 0.0,
    use_fused: bool = True,
) -> Tensor:
    """Multi-head attention's core, shared by every model in the package.

    Args:
        q, k, v: (B, H, Lq, d), (B, H, Lk, d), (B, H, Lk, dv). Extra leading batch dims work, but
            PyTorch's fused CPU kernel is much faster on 4-D inputs.
        attn_bias: additive float bias broadcastable to (B, H, Lq, Lk): Swin's relative position
            bias plus its shifted-window mask (0 inside a region, -inf across regions).
        key_padding_mask: (B, Lk) bool, True marks padding keys (torch's ``key_padding_mask``).
        causal: forbid attending to later positions (decoder self-attention).
        dropout_p: dropout on the attention weights (pass 0.0 in eval mode).
        use_fused: use ``torch.nn.functional.scaled_dot_product_attention`` (fast path);
            False runs :func:`attention_reference`. They agree to 1e-5 in fp32.

    Returns:
        (B, H, Lq, dv). A query whose keys are all masked returns zeros, never NaN.
    """
    query_len, key_len = q.shape[-2], k.shape[-2]
    has_mask = key_padding_mask is not None or causal
    if use_fused and not has_mask:
        # Common case (Swin, unmasked text): one fused call, no -inf rows possible unless the
        # caller's bias has them, which the fused kernel handles like the math path except for
        # fully masked rows (Swin's masks never mask a whole row: a window token always sees itself).
        bias = attn_bias.to(q.dtype) if attn_bias is not None else None
        if bias is not None and bias.requires_grad and torch.is_grad_enabled():
            # A learned bias (Swin's relative position table) needs its gradient, which PyTorch's fused
            # kernels do not give; PyTorch then runs its math path, whose fully-masked-row guard
            # (isneginf, all, where) made a Swin-T training step ~25% slower in attention here.
            return attention_reference(q, k, v, bias, dropout_p, zero_fully_masked_rows=False)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=bias, dropout_p=dropout_p)

    bias = build_attention_bias(
        query_len, key_len, attn_bias, key_padding_mask, causal, dtype=q.dtype, device=q.device
    )
    if not use_fused:
        return attention_reference(q, k, v, bias, dropout_p)
    # Fully masked rows would come back NaN from the fused kernel: give them a harmless 0 bias
    # and zero their output afterwards.
    fully_masked = torch.isneginf(bias).all(dim=-1, keepdim=True)  # (..., Lq, 1)
    safe_bias = bias.masked_fill(fully_masked, 0.0)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=safe_bias, dropout_p=dropout_p)
    return out.masked_fill(fully_masked, 0.0)


class MultiHeadAttention(nn.Module):
    """Batch-first multi-head attention; ``embed_dim = head_dim * num_heads``.

    One ``qkv`` Linear (embed_dim -> 3 * embed_dim, rows ordered q, k, v) holds the input
    projections, the layout of ``nn.MultiheadAttention.in_proj_weight`` and of official Swin's
    ``attn.qkv``; cross-attention slices the same weight (q rows for the queries, k/v rows for
    the memory). ``proj`` is the output projection.
    """

    def __init__(self, embed_dim: int, num_heads: int, bias: bool = True, dropout: float = 0.0):
        super().__init__()
        if num_heads <= 0 or embed_dim % num_heads != 0:
            raise ValueError(
                f"embed_dim ({embed_dim}) must equal head_dim * num_heads; "
                f"it is not divisible by num_heads ({num_heads}). Pick num_heads that divides embed_dim."
            )
        self.embed_dim = embed_dim
        self.num_heads = num_heads
        self.head_dim = embed_dim // num_heads
        self.dropout = dropout
        self.qkv = nn.Linear(embed_dim, 3 * embed_dim, bias=bias)
        self.proj = nn.Linear(embed_dim, embed_dim, bias=bias)

    def split_heads(self, x: Tensor) -> Tensor:
        """(B, L, C) -> (B, H, L, head_dim)."""
        batch, length, _ = x.shape
        return x.view(batch, length, self.num_heads, self.head_dim).transpose(1, 2)

    def merge_heads(self, x: Tensor) -> Tensor:
        """(B, H, L, head_dim) -> (B, L, C)."""
        batch, _, length, _ = x.shape
        return x.transpose(1, 2).reshape(batch, length, self.embed_dim)

    def project_query(self, query: Tensor) -> Tensor:
        weight, bias = self.qkv.weight[: self.embed_dim], self._bias_slice(0, self.embed_dim)
        return self.split_heads(F.linear(query, weight, bias))

    def project_key_value(self, memory: Tensor) -> tuple[Tensor, Tensor]:
        weight = self.qkv.weight[self.embed_dim :]
        kv = F.linear(memory, weight, self._bias_slice(self.embed_dim, 3 * self.embed_dim))
        key, value = kv.chunk(2, dim=-1)
        return self.split_heads(key), self.split_heads(value)

    def _bias_slice(self, start: int, stop: int) -> Optional[Tensor]:
        return None if self.qkv.bias is None else self.qkv.bias[start:stop]

    def forward(
        self,
        query: Tensor,
        memory: Optional[Tensor] = None,
        key_padding_mask: Optional[Tensor] = None,
        causal: bool = False,
        attn_bias: Optional[Tensor] = None,
        cache: Optional[dict] = None,
    ) -> Tensor:
        """Self-attention when ``memory`` is None, else cross-attention to ``memory``.

        Args:
            query: (B, Lq, C).
            memory: (B, Lk, C) keys/values source for cross-attention.
            key_padding_mask: (B, Lk) bool, True = padding.
            causal: mask future positions (decoder self-attention).
            attn_bias: additive bias broadcastable to (B, H, Lq, Lk).
            cache: incremental decoding state. For self-attention, keys/values of earlier steps
                are appended under "k"/"v"; for cross-attention the projected memory is stored
                once and reused.
        Returns:
            (B, Lq, C).
        """
        if memory is None:
            q, k, v = self._self_qkv(query)
            if cache is not None:
                if "k" in cache:
                    k = torch.cat([cache["k"], k], dim=2)
                    v = torch.cat([cache["v"], v], dim=2)
                cache["k"], cache["v"] = k, v
        else:
            q = self.project_query(query)
            if cache is not None and "k" in cache:
                k, v = cache["k"], cache["v"]
            else:
                k, v = self.project_key_value(memory)
                if cache is not None:
                    cache["k"], cache["v"] = k, v
        dropout_p = self.dropout if self.training else 0.0
        out = scaled_dot_product_attention(
            q, k, v, attn_bias=attn_bias, key_padding_mask=key_padding_mask, causal=causal, dropout_p=dropout_p
        )
        return self.proj(self.merge_heads(out))

    def _self_qkv(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        batch, length, _ = x.shape
        # (B, L, 3C) -> (3, B, H, L, head_dim)
        qkv = self.qkv(x).view(batch, length, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        return qkv[0], qkv[1], qkv[2]
