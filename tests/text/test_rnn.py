"""From-scratch RNN / LSTM / GRU equal torch.nn's with the same weights, variable lengths included."""
from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from swin_scratch.text.rnn import GRU, LSTM, RNN

PAIRS = [(RNN, nn.RNN), (LSTM, nn.LSTM), (GRU, nn.GRU)]


def _pair(ours_type, torch_type, **kwargs):
    theirs = torch_type(5, 6, batch_first=True, **kwargs).eval()
    ours = ours_type(5, 6, batch_first=True, **kwargs).eval()
    ours.load_state_dict(theirs.state_dict())
    return ours, theirs


@pytest.mark.parametrize("ours_type,torch_type", PAIRS)
@pytest.mark.parametrize("bidirectional", [False, True])
def test_equals_torch_multi_layer_with_initial_state(ours_type, torch_type, bidirectional):
    ours, theirs = _pair(ours_type, torch_type, num_layers=2, bidirectional=bidirectional)
    x = torch.randn(3, 7, 5)
    states = 2 * (2 if bidirectional else 1)
    h0 = torch.randn(states, 3, 6)
    hx = (h0, torch.randn(states, 3, 6)) if ours_type is LSTM else h0
    expected, actual = theirs(x, hx), ours(x, hx)
    torch.testing.assert_close(actual[0], expected[0], atol=1e-5, rtol=1e-5)
    for a, e in zip(actual[1] if ours_type is LSTM else [actual[1]],
                    expected[1] if ours_type is LSTM else [expected[1]]):
        torch.testing.assert_close(a, e, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("ours_type,torch_type", PAIRS)
def test_one_batch_holds_sequences_of_different_lengths(ours_type, torch_type):
    ours, theirs = _pair(ours_type, torch_type, num_layers=2, bidirectional=True)
    x, lengths = torch.randn(3, 6, 5), torch.tensor([6, 2, 4])
    packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
    expected_packed, expected_state = theirs(packed)
    expected, _ = pad_packed_sequence(expected_packed, batch_first=True)
    actual, actual_state = ours(x, lengths=lengths)
    torch.testing.assert_close(actual, expected, atol=1e-5, rtol=1e-5)
    first = lambda s: s[0] if isinstance(s, tuple) else s  # noqa: E731
    torch.testing.assert_close(first(actual_state), first(expected_state), atol=1e-5, rtol=1e-5)
    # packed input in, packed output out
    ours_packed, _ = ours(packed)
    torch.testing.assert_close(pad_packed_sequence(ours_packed, batch_first=True)[0], expected, atol=1e-5, rtol=1e-5)
    # a sequence's result does not depend on the padding next to it
    alone, _ = ours(x[1:2, :2])
    torch.testing.assert_close(actual[1:2, :2], alone, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("ours_type", [RNN, LSTM, GRU])
def test_parameter_count_does_not_depend_on_sequence_length(ours_type):
    model = ours_type(5, 6, num_layers=2)
    count = sum(p.numel() for p in model.parameters())
    for steps in (1, 10, 100):
        output, _ = model(torch.randn(2, steps, 5))
        assert output.shape == (2, steps, 6)
    assert sum(p.numel() for p in model.parameters()) == count
