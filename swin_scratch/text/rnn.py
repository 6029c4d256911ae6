"""RNN, LSTM and GRU written from scratch: multi-layer, batch-first, bidirectional, variable length.

The trade-offs the design notes list, and where they show up here:

* variable-length sequences: one batch holds sequences of different lengths (``lengths`` or a
  ``PackedSequence``); a step past a sequence's end leaves its state untouched;
* weights are shared across time steps: the same ``weight_ih``/``weight_hh`` at every step, so
* the model size does not depend on the input length (tested), and history enters through the state;
* computation is sequential: step t needs step t-1, so time steps cannot run in parallel (slow),
  unlike attention, which sees all positions at once;
* long-range memory is weak: information must survive many multiplications by W_hh (vanishing or
  exploding gradients); LSTM/GRU gates mitigate it but do not remove it;
* a unidirectional model cannot look at the future; ``bidirectional=True`` adds a reverse pass.

Parameter names and gate orders are torch's (``weight_ih_l0``, ``bias_hh_l1_reverse``; LSTM
gates i, f, g, o; GRU gates r, z, n), so weights copy over 1:1 and the tests compare against
``nn.RNN``/``nn.LSTM``/``nn.GRU``.
"""
from __future__ import annotations

import math
from typing import Optional

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

State = tuple[Tensor, ...]  # (h,) for RNN/GRU, (h, c) for LSTM; each (B, H)


class _Recurrent(nn.Module):
    gate_count = 1
    state_count = 1

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = True, dropout: float = 0.0, bidirectional: bool = False):
        super().__init__()
        if not batch_first:
            raise ValueError("these modules are batch-first: pass (B, T, features) and batch_first=True")
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bias, self.dropout = bias, dropout
        self.num_directions = 2 if bidirectional else 1
        gates = self.gate_count * hidden_size
        for layer in range(num_layers):
            layer_input = input_size if layer == 0 else hidden_size * self.num_directions
            for suffix in self._suffixes(layer):
                setattr(self, f"weight_ih{suffix}", nn.Parameter(torch.empty(gates, layer_input)))
                setattr(self, f"weight_hh{suffix}", nn.Parameter(torch.empty(gates, hidden_size)))
                if bias:
                    setattr(self, f"bias_ih{suffix}", nn.Parameter(torch.empty(gates)))
                    setattr(self, f"bias_hh{suffix}", nn.Parameter(torch.empty(gates)))
        bound = 1.0 / math.sqrt(hidden_size)
        for param in self.parameters():
            nn.init.uniform_(param, -bound, bound)

    def _suffixes(self, layer: int) -> list[str]:
        return [f"_l{layer}", f"_l{layer}_reverse"][: self.num_directions]

    def cell(self, gates_x: Tensor, state: State, weight_hh: Tensor, bias_hh: Optional[Tensor]) -> State:
        raise NotImplementedError

    def _run_direction(
        self, x: Tensor, lengths: Tensor, state: State, suffix: str, reverse: bool
    ) -> tuple[Tensor, State]:
        """x (B, T, in) -> outputs (B, T, H), final state; steps past a sequence's length are skipped."""
        weight_ih, weight_hh = getattr(self, f"weight_ih{suffix}"), getattr(self, f"weight_hh{suffix}")
        bias_ih = getattr(self, f"bias_ih{suffix}") if self.bias else None
        bias_hh = getattr(self, f"bias_hh{suffix}") if self.bias else None
        gates_x = nn.functional.linear(x, weight_ih, bias_ih)  # (B, T, G*H): the input part, all steps at once
        outputs = x.new_zeros(x.shape[0], x.shape[1], self.hidden_size)
        steps = range(x.shape[1] - 1, -1, -1) if reverse else range(x.shape[1])
        for t in steps:
            active = (t < lengths)[:, None]  # (B, 1): sequences that still have a token at t
            new_state = self.cell(gates_x[:, t], state, weight_hh, bias_hh)
            state = tuple(torch.where(active, new, old) for new, old in zip(new_state, state))
            outputs[:, t] = torch.where(active, state[0], outputs[:, t])
        return outputs, state

    def forward(self, x: Tensor | PackedSequence, hx: Optional[Tensor | State] = None,
                lengths: Optional[Tensor] = None):
        """x (B, T, in) or a PackedSequence; hx (L*D, B, H) (LSTM: a pair). Returns output, h_n (and c_n)."""
        packed = isinstance(x, PackedSequence)
        if packed:
            x, lengths = pad_packed_sequence(x, batch_first=True)
        batch, steps = x.shape[0], x.shape[1]
        lengths = torch.full((batch,), steps) if lengths is None else torch.as_tensor(lengths).to(x.device)
        if hx is None:
            zeros = x.new_zeros(self.num_layers * self.num_directions, batch, self.hidden_size)
            hx = tuple(zeros for _ in range(self.state_count))
        elif isinstance(hx, Tensor):
            hx = (hx,)
        final: list[State] = []
        layer_input = x
        for layer in range(self.num_layers):
            outputs = []
            for direction, suffix in enumerate(self._suffixes(layer)):
                index = layer * self.num_directions + direction
                state = tuple(h[index] for h in hx)
                out, state = self._run_direction(layer_input, lengths, state, suffix, reverse=direction == 1)
                outputs.append(out)
                final.append(state)
            layer_input = torch.cat(outputs, dim=-1)  # (B, T, D*H)
            if self.dropout and self.training and layer < self.num_layers - 1:
                layer_input = nn.functional.dropout(layer_input, self.dropout)
        states = tuple(torch.stack([s[i] for s in final]) for i in range(self.state_count))  # each (L*D, B, H)
        output = layer_input
        if packed:
            output = pack_padded_sequence(output, lengths.cpu(), batch_first=True, enforce_sorted=False)
        return output, (states if self.state_count > 1 else states[0])


class RNN(_Recurrent):
    """Elman RNN: h' = tanh(W_ih x + b_ih + W_hh h + b_hh) (or relu)."""

    def __init__(self, *args, nonlinearity: str = "tanh", **kwargs):
        super().__init__(*args, **kwargs)
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        self.activation = torch.tanh if nonlinearity == "tanh" else torch.relu

    def cell(self, gates_x, state, weight_hh, bias_hh):
        return (self.activation(gates_x + nn.functional.linear(state[0], weight_hh, bias_hh)),)


class LSTM(_Recurrent):
    """LSTM: gates i, f, g, o; c' = f * c + i * g; h' = o * tanh(c')."""

    gate_count, state_count = 4, 2

    def cell(self, gates_x, state, weight_hh, bias_hh):
        h, c = state
        i, f, g, o = (gates_x + nn.functional.linear(h, weight_hh, bias_hh)).chunk(4, dim=-1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c), c


class GRU(_Recurrent):
    """GRU: r, z gates; n = tanh(x_n + r * (W_hn h + b_hn)); h' = (1 - z) * n + z * h."""

    gate_count = 3

    def cell(self, gates_x, state, weight_hh, bias_hh):
        h = state[0]
        x_r, x_z, x_n = gates_x.chunk(3, dim=-1)
        h_r, h_z, h_n = nn.functional.linear(h, weight_hh, bias_hh).chunk(3, dim=-1)
        r, z = torch.sigmoid(x_r + h_r), torch.sigmoid(x_z + h_z)
        n = torch.tanh(x_n + r * h_n)
        return ((1 - z) * n + z * h,)
