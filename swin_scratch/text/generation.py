"""Greedy and beam-search generation with T5's ``task_specific_params`` knobs.

Works with any model that implements the small *stepper* protocol below (the Transformer, with
or without a key/value cache, and the LSTM encoder-decoder: :mod:`.steppers`):

    state = stepper.start(src, num_beams)       # encode once, repeated per beam
    logits, state = stepper.step(tokens, state) # tokens (B*K, t) so far -> next-token logits (B*K, V)
    state = stepper.reorder(state, index)       # keep the surviving beams' states
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Optional, Protocol, Sequence

import torch
from torch import Tensor


@dataclass(frozen=True)
class GenerationConfig:
    num_beams: int = 1  # 1 = greedy
    max_length: int = 20  # generated tokens, eos included
    min_length: int = 0  # eos is forbidden before this many tokens
    length_penalty: float = 1.0  # beam score = sum log p / length ** length_penalty (> 1 favours longer)
    no_repeat_ngram_size: int = 0  # forbid any n-gram from appearing twice (0 = off)
    early_stopping: bool = False  # stop a batch item once num_beams hypotheses have finished
    prefix: Optional[Sequence[int]] = None  # task prefix token ids prepended to the source (T5's "summarize: ")
    bos_id: int = 1
    eos_id: int = 2
    pad_id: int = 0


# T5's task_specific_params["summarization"] (the prefix is text; tokenize it and pass ids via replace()).
T5_SUMMARIZATION = GenerationConfig(num_beams=4, length_penalty=2.0, max_length=200, min_length=30,
                                    no_repeat_ngram_size=3, early_stopping=True)


class Stepper(Protocol):
    def start(self, src: Tensor, num_beams: int) -> Any: ...
    def step(self, tokens: Tensor, state: Any) -> tuple[Tensor, Any]: ...
    def reorder(self, state: Any, index: Tensor) -> Any: ...


def banned_ngram_tokens(sequence: list[int], size: int) -> set[int]:
    """Tokens that would complete an n-gram already present in ``sequence``."""
    if size <= 0 or len(sequence) < size:
        return set()
    seen: dict[tuple[int, ...], set[int]] = {}
    for i in range(len(sequence) - size + 1):
        gram = tuple(sequence[i : i + size])
        seen.setdefault(gram[:-1], set()).add(gram[-1])
    return seen.get(tuple(sequence[len(sequence) - size + 1 :]), set())


@torch.no_grad()
def generate(stepper: Stepper, src: Tensor, config: GenerationConfig = GenerationConfig()) -> list[list[int]]:
    """Best generated sequence per source row (token ids without bos, eos included if produced)."""
    src = with_task_prefix(src, config)
    state = stepper.start(src, config.num_beams)
    search = BeamSearch(src.shape[0], config, src.device)
    for length in range(1, config.max_length + 1):
        logits, state = stepper.step(search.tokens, state)  # (B*K, V)
        log_probs = forbid_tokens(torch.log_softmax(logits.float(), dim=-1), search.tokens, length, config)
        state = stepper.reorder(state, search.advance(log_probs, length))
        if all(search.done):
            break
    return search.best_hypotheses()


def with_task_prefix(src: Tensor, config: GenerationConfig) -> Tensor:
    """(B, S) -> (B, P + S): the task prefix (T5's "summarize: ") before every source row."""
    if not config.prefix:
        return src
    prefix = torch.tensor(list(config.prefix), dtype=src.dtype, device=src.device)
    return torch.cat([prefix.expand(src.shape[0], -1), src], dim=1)


def forbid_tokens(log_probs: Tensor, tokens: Tensor, length: int, config: GenerationConfig) -> Tensor:
    """Set -inf (in place) for eos before ``min_length`` and for tokens that would repeat an n-gram.

    log_probs (B*K, V) for generated token number ``length``; tokens (B*K, t) bos + tokens so far.
    """
    if length <= config.min_length:
        log_probs[:, config.eos_id] = -math.inf
    if config.no_repeat_ngram_size:
        for row, sequence in enumerate(tokens[:, 1:].tolist()):
            for token in banned_ngram_tokens(sequence, config.no_repeat_ngram_size):
                log_probs[row, token] = -math.inf
    return log_probs


Beam = tuple[int, int, float]  # (row of the beam it extends, next token, summed log-probability)


class BeamSearch:
    """The running beams of a batch, their scores and each item's finished hypotheses.

    Greedy search is the one-beam case. A hypothesis that emits eos leaves the beam and is scored
    ``sum log p / length ** length_penalty``; a batch item is done once no running beam can beat
    its finished ones (or, with ``early_stopping``, once it has ``num_beams`` of them).
    """

    def __init__(self, batch: int, config: GenerationConfig, device: torch.device):
        self.config, self.beams = config, config.num_beams
        self.tokens = torch.full((batch * self.beams, 1), config.bos_id, dtype=torch.long, device=device)  # (B*K, t)
        self.scores = torch.full((batch, self.beams), -math.inf, device=device)  # (B, K); -inf = dead beam
        self.scores[:, 0] = 0.0  # all beams start identical: keep one
        self.finished: list[list[tuple[float, list[int]]]] = [[] for _ in range(batch)]
        self.done = [False] * batch

    def normalized(self, score: float, length: int) -> float:
        return score / (length ** self.config.length_penalty)

    def advance(self, log_probs: Tensor, length: int) -> Tensor:
        """Extend the beams by one token; returns, per new beam, the row of the beam it extends."""
        batch, vocab = len(self.done), log_probs.shape[-1]
        candidates = (self.scores.view(-1, 1) + log_probs).view(batch, self.beams * vocab)
        top_scores, top_index = candidates.topk(2 * self.beams, dim=-1)  # (B, 2K): room for K that are not eos
        kept: list[Beam] = []
        for item in range(batch):
            item_beams = self._next_beams(item, top_scores[item].tolist(), top_index[item].tolist(), vocab, length)
            self._update_done(item, item_beams, length)
            kept.extend(item_beams)
        rows, next_tokens, next_scores = zip(*kept)
        index = torch.tensor(rows, device=self.tokens.device)
        self.tokens = torch.cat([self.tokens[index], torch.tensor(next_tokens, device=self.tokens.device)[:, None]], 1)
        self.scores = torch.tensor(next_scores, device=self.tokens.device).view(batch, self.beams)
        return index

    def _next_beams(self, item: int, scores: list[float], flat_index: list[int], vocab: int, length: int) -> list[Beam]:
        """The item's K best candidates that do not end in eos; those that do become finished hypotheses."""
        kept: list[Beam] = []
        for score, flat in zip(scores, flat_index):
            row, token = item * self.beams + flat // vocab, flat % vocab
            if score == -math.inf:
                break
            if token == self.config.eos_id:
                if not self.done[item]:
                    hypothesis = self.tokens[row, 1:].tolist() + [token]
                    self.finished[item].append((self.normalized(score, length), hypothesis))
                continue
            kept.append((row, token, score))
            if len(kept) == self.beams:
                break
        dead_beam = (item * self.beams, self.config.pad_id, -math.inf)
        return kept + [dead_beam] * (self.beams - len(kept))  # padded so that shapes stay fixed

    def _update_done(self, item: int, beams: list[Beam], length: int) -> None:
        finished = self.finished[item]
        if len(finished) < self.beams:
            return
        best_running = max(score for _, _, score in beams)
        if self.config.early_stopping or best_running == -math.inf:
            self.done[item] = True
        elif self.normalized(best_running, length) < min(score for score, _ in finished):
            self.done[item] = True  # no running beam can still beat the worst kept hypothesis

    def best_hypotheses(self) -> list[list[int]]:
        """Per item, the best-scoring hypothesis (tokens without bos); [] when there is none."""
        results = []
        for item, finished in enumerate(self.finished):
            candidates = finished + ([] if self.done[item] else self._running_hypotheses(item))
            results.append(max(candidates, key=lambda candidate: candidate[0])[1] if candidates else [])
        return results

    def _running_hypotheses(self, item: int) -> list[tuple[float, list[int]]]:
        """At max_length, running beams count as hypotheses too."""
        length = self.tokens.shape[1] - 1
        return [(self.normalized(self.scores[item, k].item(), length), self.tokens[item * self.beams + k, 1:].tolist())
                for k in range(self.beams) if self.scores[item, k] > -math.inf]


def with_overrides(config: GenerationConfig, **overrides) -> GenerationConfig:
    return replace(config, **overrides)
