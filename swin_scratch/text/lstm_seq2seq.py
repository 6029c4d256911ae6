"""An LSTM encoder-decoder (no attention) on the from-scratch LSTM, for comparison with the Transformer."""
from __future__ import annotations

from torch import Tensor, nn

from swin_scratch.models.rnn import LSTM


class LSTMSeq2Seq(nn.Module):
    def __init__(self, vocab_size: int, hidden: int = 128, num_layers: int = 1, pad_id: int = 0):
        super().__init__()
        self.pad_id = pad_id
        self.embed = nn.Embedding(vocab_size, hidden, padding_idx=pad_id)
        self.encoder = LSTM(hidden, hidden, num_layers)
        self.decoder = LSTM(hidden, hidden, num_layers)
        self.output = nn.Linear(hidden, vocab_size)

    def encode(self, src: Tensor) -> tuple[Tensor, Tensor]:
        lengths = (src != self.pad_id).sum(1)
        _, state = self.encoder(self.embed(src), lengths=lengths)
        return state  # (h, c), each (L, B, H): the whole source squeezed into one state

    def forward(self, src: Tensor, tgt: Tensor) -> Tensor:
        output, _ = self.decoder(self.embed(tgt), self.encode(src))
        return self.output(output)  # (B, T, V)


class LSTMStepper:
    """Generation protocol for :class:`LSTMSeq2Seq`: the recurrent state is the cache."""

    def __init__(self, model: LSTMSeq2Seq):
        self.model = model

    def start(self, src: Tensor, num_beams: int):
        h, c = self.model.encode(src)
        return h.repeat_interleave(num_beams, 1), c.repeat_interleave(num_beams, 1)

    def step(self, tokens: Tensor, state):
        output, state = self.model.decoder(self.model.embed(tokens[:, -1:]), state)
        return self.model.output(output[:, -1]), state

    def reorder(self, state, index: Tensor):
        return tuple(s[:, index] for s in state)
