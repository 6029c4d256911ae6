"""Whole models: Swin, the text Transformer, RNNs, the LSTM encoder-decoder, BERT-style encoder.

Hyper-parameters share one naming scheme across them (docs/conventions.md): ``embed_dim``,
``num_heads``, ``dim_feedforward`` for attention models, ``hidden_size`` for recurrent state.
"""
from .bert import BertModel, bert_base, bert_large, bert_parameter_breakdown
from .lstm_seq2seq import LSTMSeq2Seq
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
    "LSTMSeq2Seq",
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
