"""Reverse a digit string: variable-length, padded sequences that need order information.

Vocabulary: 0 pad, 1 bos, 2 eos, 3..12 the digits 0..9. Source "3 1 4" -> target "4 1 3 <eos>".
"""
from __future__ import annotations

import torch
from torch import Tensor

PAD, BOS, EOS, FIRST_DIGIT = 0, 1, 2, 3
VOCAB_SIZE = FIRST_DIGIT + 10


def make_split(count: int, min_length: int, max_length: int, seed: int) -> list[list[int]]:
    generator = torch.Generator().manual_seed(seed)
    lengths = torch.randint(min_length, max_length + 1, (count,), generator=generator)
    return [torch.randint(FIRST_DIGIT, VOCAB_SIZE, (int(n),), generator=generator).tolist() for n in lengths]


def target_of(source: list[int]) -> list[int]:
    return source[::-1] + [EOS]


def pad(sequences: list[list[int]], prefix: list[int] = ()) -> Tensor:
    width = max(len(s) for s in sequences) + len(prefix)
    out = torch.full((len(sequences), width), PAD, dtype=torch.long)
    for row, sequence in enumerate(sequences):
        values = list(prefix) + sequence
        out[row, : len(values)] = torch.tensor(values)
    return out


def batch_tensors(sources: list[list[int]]) -> tuple[Tensor, Tensor, Tensor]:
    """(src, decoder input = bos + target[:-1], decoder labels = target) padded with PAD."""
    targets = [target_of(s) for s in sources]
    return pad(sources), pad([t[:-1] for t in targets], prefix=[BOS]), pad(targets)
