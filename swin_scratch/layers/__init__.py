"""Primitives: the shared attention kernel and the building blocks models are made of."""
from .attention import MultiHeadAttention, attention_reference, build_attention_bias, scaled_dot_product_attention

__all__ = ["MultiHeadAttention", "attention_reference", "build_attention_bias", "scaled_dot_product_attention"]
