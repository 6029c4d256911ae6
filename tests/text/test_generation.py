"""Greedy / beam search with T5's knobs; the key/value cache changes speed, never outputs."""
from __future__ import annotations

import pytest
import torch

from swin_scratch.text.generation import (
    T5_SUMMARIZATION,
    GenerationConfig,
    banned_ngram_tokens,
    generate,
    with_overrides,
)
from swin_scratch.text.lstm_seq2seq import LSTMSeq2Seq
from swin_scratch.text.steppers import LSTMStepper, TransformerStepper
from swin_scratch.text.transformer import Transformer


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return Transformer(20, 20, 32, 4, 2, 2, 64, 0.0).eval()


@pytest.mark.parametrize("num_beams", [1, 3])
def test_outputs_identical_with_and_without_the_cache(model, num_beams):
    src = torch.randint(3, 20, (3, 7))
    config = GenerationConfig(num_beams=num_beams, max_length=12)
    assert generate(TransformerStepper(model, use_cache=True), src, config) == \
        generate(TransformerStepper(model, use_cache=False), src, config)


def _sequence_log_prob(model, src, tokens):
    memory, padding = model.encode(src[None])
    inputs = torch.tensor([[1] + tokens[:-1]])
    log_probs = torch.log_softmax(model.decode(inputs, memory, padding)[0], -1)
    return sum(log_probs[i, t].item() for i, t in enumerate(tokens))


def test_greedy_picks_the_argmax_at_every_step(model):
    src = torch.randint(3, 20, (1, 6))
    (greedy,) = generate(TransformerStepper(model), src, GenerationConfig(max_length=6))
    memory, padding = model.encode(src)
    prefix = [1]
    for token in greedy:
        logits = model.decode(torch.tensor([prefix]), memory, padding)[0, -1]
        assert token == int(logits.argmax())
        prefix.append(token)


def test_lstm_greedy_picks_the_argmax_of_the_full_forward_at_every_step():
    torch.manual_seed(0)
    lstm = LSTMSeq2Seq(20, hidden_size=16).eval()
    src = torch.randint(3, 20, (1, 6))
    (greedy,) = generate(LSTMStepper(lstm), src, GenerationConfig(max_length=6))
    prefix = [1]
    for token in greedy:
        assert token == int(lstm(src, torch.tensor([prefix]))[0, -1].argmax())
        prefix.append(token)


def test_beam_search_finds_a_sequence_at_least_as_likely_as_greedy(model):
    torch.manual_seed(1)
    src = torch.randint(3, 20, (4, 6))
    config = GenerationConfig(max_length=5, length_penalty=0.0)
    greedy = generate(TransformerStepper(model), src, config)
    beam = generate(TransformerStepper(model), src, with_overrides(config, num_beams=5))
    for row in range(4):
        assert _sequence_log_prob(model, src[row], beam[row]) >= _sequence_log_prob(model, src[row], greedy[row]) - 1e-5


def test_min_length_max_length_and_no_repeat_ngram_are_respected(model):
    src = torch.randint(3, 20, (3, 6))
    config = GenerationConfig(num_beams=3, min_length=4, max_length=9, no_repeat_ngram_size=2)
    for sequence in generate(TransformerStepper(model), src, config):
        assert len(sequence) <= 9
        assert 2 not in sequence[:4]  # eos (id 2) never before min_length
        bigrams = list(zip(sequence, sequence[1:]))
        assert len(bigrams) == len(set(bigrams))


def test_banned_ngram_tokens():
    assert banned_ngram_tokens([5, 6, 7, 5, 6], 3) == {7}
    assert banned_ngram_tokens([5, 6, 7], 3) == set()


def test_prefix_is_prepended_to_the_source(model):
    src = torch.randint(3, 20, (2, 5))
    prefixed = generate(TransformerStepper(model), src, GenerationConfig(max_length=6, prefix=[7, 8]))
    manual = generate(TransformerStepper(model), torch.cat([torch.tensor([[7, 8]] * 2), src], 1),
                      GenerationConfig(max_length=6))
    assert prefixed == manual


def test_t5_summarization_settings():
    assert (T5_SUMMARIZATION.num_beams, T5_SUMMARIZATION.length_penalty, T5_SUMMARIZATION.max_length,
            T5_SUMMARIZATION.min_length, T5_SUMMARIZATION.no_repeat_ngram_size, T5_SUMMARIZATION.early_stopping) == \
        (4, 2.0, 200, 30, 3, True)
