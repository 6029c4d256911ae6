"""Whole models: Swin, the text Transformer, RNNs, BERT-style encoder."""
from .bert import BertModel, bert_base, bert_large, bert_parameter_breakdown
from .rnn import GRU, LSTM, RNN
from .swin import SwinTransformer, swin_base, swin_large, swin_small, swin_tiny
from .swin_checkpoint import LoadReport, load_swin_checkpoint
from .transformer import (
    SinusoidalPositionalEncoding,
    Transformer,
    TransformerDecoder,
    TransformerDecoderLayer,
    TransformerEncoder,
    TransformerEncoderLayer,
)

__all__ = [
    "BertModel",
    "GRU",
    "LSTM",
    "RNN",
    "LoadReport",
    "SinusoidalPositionalEncoding",
    "Transformer",
    "TransformerDecoder",
    "TransformerDecoderLayer",
    "TransformerEncoder",
    "TransformerEncoderLayer",
    "bert_base",
    "bert_large",
    "bert_parameter_breakdown",
    "SwinTransformer",
    "load_swin_checkpoint",
    "swin_base",
    "swin_large",
    "swin_small",
    "swin_tiny",
]
