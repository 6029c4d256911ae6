"""Greedy and beam-search generation with T5's ``task_specific_params`` knobs.

Works with any model that implements the small *stepper* protocol below (the Transformer, with
or without a key/value cache, and the LSTM encoder-decoder):

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


class TransformerStepper:
    """Adapter for :class:`swin_scratch.models.transformer.Transformer`; ``use_cache`` feeds one
    token per step and keeps keys/values, otherwise the whole prefix is decoded every step."""

    def __init__(self, model, use_cache: bool = True):
        self.model, self.use_cache = model, use_cache

    def start(self, src: Tensor, num_beams: int) -> dict:
        memory, padding = self.model.encode(src)
        memory, padding = memory.repeat_interleave(num_beams, 0), padding.repeat_interleave(num_beams, 0)
        caches = [{} for _ in self.model.decoder.layers] if self.use_cache else None
        return {"memory": memory, "padding": padding, "caches": caches}

    def step(self, tokens: Tensor, state: dict) -> tuple[Tensor, dict]:
        if self.use_cache:
            offset = tokens.shape[1] - 1
            logits = self.model.decode(tokens[:, -1:], state["memory"], state["padding"], state["caches"], offset)
        else:
            logits = self.model.decode(tokens, state["memory"], state["padding"])
        return logits[:, -1], state

    def reorder(self, state: dict, index: Tensor) -> dict:
        state["memory"], state["padding"] = state["memory"][index], state["padding"][index]
        if state["caches"] is not None:
            for layer_cache in state["caches"]:
                for part in layer_cache.values():
                    for key in part:
                        part[key] = part[key][index]
        return state


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
    if config.prefix:
        prefix = torch.tensor(list(config.prefix), dtype=src.dtype, device=src.device)
        src = torch.cat([prefix.expand(src.shape[0], -1), src], dim=1)
    batch, beams = src.shape[0], config.num_beams
    state = stepper.start(src, beams)
    tokens = torch.full((batch * beams, 1), config.bos_id, dtype=torch.long, device=src.device)
    scores = torch.full((batch, beams), -math.inf, device=src.device)
    scores[:, 0] = 0.0  # all beams start identical: keep one
    finished: list[list[tuple[float, list[int]]]] = [[] for _ in range(batch)]
    done = [False] * batch

    def normalized(score: float, length: int) -> float:
        return score / (length ** config.length_penalty)

    for length in range(1, config.max_length + 1):
        logits, state = stepper.step(tokens, state)
        log_probs = torch.log_softmax(logits.float(), dim=-1)  # (B*K, V)
        if length <= config.min_length:
            log_probs[:, config.eos_id] = -math.inf
        if config.no_repeat_ngram_size:
            for row, sequence in enumerate(tokens[:, 1:].tolist()):
                for token in banned_ngram_tokens(sequence, config.no_repeat_ngram_size):
                    log_probs[row, token] = -math.inf
        vocab = log_probs.shape[-1]
        candidates = (scores.view(-1, 1) + log_probs).view(batch, beams * vocab)
        top_scores, top_index = candidates.topk(2 * beams, dim=-1)  # (B, 2K)
        next_rows, next_tokens, next_scores = [], [], []
        for b in range(batch):
            kept = []
            for score, flat in zip(top_scores[b].tolist(), top_index[b].tolist()):
                row, token = b * beams + flat // vocab, flat % vocab
                if score == -math.inf:
                    break
                if token == config.eos_id:
                    if not done[b]:
                        finished[b].append((normalized(score, length), tokens[row, 1:].tolist() + [token]))
                    continue
                kept.append((row, token, score))
                if len(kept) == beams:
                    break
            while len(kept) < beams:  # pad with dead beams so shapes stay fixed
                kept.append((b * beams, config.pad_id, -math.inf))
            for row, token, score in kept:
                next_rows.append(row), next_tokens.append(token), next_scores.append(score)
            best_running = max(s for _, _, s in kept)
            if len(finished[b]) >= beams:
                if config.early_stopping or best_running == -math.inf:
                    done[b] = True
                elif normalized(best_running, length) < min(s for s, _ in finished[b]):
                    done[b] = True  # no running beam can still beat the worst kept hypothesis
        index = torch.tensor(next_rows, device=src.device)
        tokens = torch.cat([tokens[index], torch.tensor(next_tokens, device=src.device)[:, None]], dim=1)
        scores = torch.tensor(next_scores, device=src.device).view(batch, beams)
        state = stepper.reorder(state, index)
        if all(done):
            break
    results = []
    for b in range(batch):
        candidates = list(finished[b])
        if not done[b]:  # max_length reached: running beams count as hypotheses too
            for k in range(beams):
                if scores[b, k] > -math.inf:
                    candidates.append((normalized(scores[b, k].item(), tokens.shape[1] - 1), tokens[b * beams + k, 1:].tolist()))
        results.append(max(candidates, key=lambda item: item[0])[1] if candidates else [])
    return results


def with_overrides(config: GenerationConfig, **overrides) -> GenerationConfig:
    return replace(config, **overrides)
