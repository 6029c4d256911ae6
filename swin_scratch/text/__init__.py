"""Text models on the shared attention kernel: the post-norm Transformer, RNNs, the LSTM
encoder-decoder, a BERT-style encoder, generation and its steppers, and the toy seq2seq task.

Hyper-parameters share one naming scheme with Swin (docs/conventions.md): ``embed_dim``,
``num_heads``, ``dim_feedforward`` for attention models, ``hidden_size`` for recurrent state.
"""
from .bert import BertModel, bert_base, bert_large, bert_parameter_breakdown
from .lstm_seq2seq import LSTMSeq2Seq
from .rnn import GRU, LSTM, RNN
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
    "SinusoidalPositionalEncoding",
    "Transformer",
    "TransformerDecoder",
    "TransformerDecoderLayer",
    "TransformerEncoder",
    "TransformerEncoderLayer",
    "bert_base",
    "bert_large",
    "bert_parameter_breakdown",
]
