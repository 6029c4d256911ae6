"""The two seq2seq models behind :mod:`~swin_scratch.text.generation`'s ``Stepper`` protocol, side by side.

A stepper owns what generation keeps between steps (the encoder output, the key/value cache or
the recurrent state), so that ``generate`` knows nothing about the model it drives.
"""
from __future__ import annotations

from typing import Optional

from torch import Tensor

from swin_scratch.text.lstm_seq2seq import LSTMSeq2Seq
from swin_scratch.text.transformer import Transformer

LSTMState = tuple[Tensor, Tensor]  # (h, c), each (L, B*K, H)


class TransformerStepper:
    """Adapter for :class:`~swin_scratch.text.transformer.Transformer`; ``use_cache`` feeds one
    token per step and keeps keys/values, otherwise the whole prefix is decoded every step."""

    def __init__(self, model: Transformer, use_cache: bool = True):
        self.model, self.use_cache = model, use_cache

    def start(self, src: Tensor, num_beams: int) -> dict:
        memory, padding = self.model.encode(src)  # (B, S, d), (B, S)
        memory, padding = memory.repeat_interleave(num_beams, 0), padding.repeat_interleave(num_beams, 0)
        caches: Optional[list[dict]] = [{} for _ in self.model.decoder.layers] if self.use_cache else None
        return {"memory": memory, "padding": padding, "caches": caches}

    def step(self, tokens: Tensor, state: dict) -> tuple[Tensor, dict]:
        if self.use_cache:
            offset = tokens.shape[1] - 1
            logits = self.model.decode(tokens[:, -1:], state["memory"], state["padding"], state["caches"], offset)
        else:
            logits = self.model.decode(tokens, state["memory"], state["padding"])
        return logits[:, -1], state  # (B*K, V)

    def reorder(self, state: dict, index: Tensor) -> dict:
        state["memory"], state["padding"] = state["memory"][index], state["padding"][index]
        if state["caches"] is not None:
            for layer_cache in state["caches"]:
                for part in layer_cache.values():
                    for key in part:
                        part[key] = part[key][index]
        return state


class LSTMStepper:
    """Adapter for :class:`~swin_scratch.text.lstm_seq2seq.LSTMSeq2Seq`: the recurrent state is the cache."""

    def __init__(self, model: LSTMSeq2Seq):
        self.model = model

    def start(self, src: Tensor, num_beams: int) -> LSTMState:
        h, c = self.model.encode(src)  # each (L, B, H)
        return h.repeat_interleave(num_beams, 1), c.repeat_interleave(num_beams, 1)

    def step(self, tokens: Tensor, state: LSTMState) -> tuple[Tensor, LSTMState]:
        output, state = self.model.decoder(self.model.embed(tokens[:, -1:]), state)  # (B*K, 1, H)
        return self.model.output(output[:, -1]), state

    def reorder(self, state: LSTMState, index: Tensor) -> LSTMState:
        return tuple(s[:, index] for s in state)


def stepper_for(model: Transformer | LSTMSeq2Seq) -> TransformerStepper | LSTMStepper:
    """The stepper that drives ``model`` (the Transformer with its key/value cache)."""
    return TransformerStepper(model) if isinstance(model, Transformer) else LSTMStepper(model)
