"""An LSTM encoder-decoder (no attention) on the from-scratch LSTM, for comparison with the Transformer."""
from __future__ import annotations

from torch import Tensor, nn

from swin_scratch.text.rnn import LSTM


class LSTMSeq2Seq(nn.Module):
    """The source is read into one LSTM state, which starts the decoder; token embeddings have the
    state's width (``hidden_size``)."""

    def __init__(self, vocab_size: int, hidden_size: int = 128, num_layers: int = 1, pad_id: int = 0):
        super().__init__()
        self.pad_id = pad_id
        self.embed = nn.Embedding(vocab_size, hidden_size, padding_idx=pad_id)
        self.encoder = LSTM(hidden_size, hidden_size, num_layers)
        self.decoder = LSTM(hidden_size, hidden_size, num_layers)
        self.output = nn.Linear(hidden_size, vocab_size)

    def encode(self, src: Tensor) -> tuple[Tensor, Tensor]:
        lengths = (src != self.pad_id).sum(1)
        _, state = self.encoder(self.embed(src), lengths=lengths)
        return state  # (h, c), each (L, B, H): the whole source squeezed into one state

    def forward(self, src: Tensor, tgt: Tensor) -> Tensor:
        output, _ = self.decoder(self.embed(tgt), self.encode(src))
        return self.output(output)  # (B, T, V)
