#!/usr/bin/env python
"""Incremental decoding with and without the key/value cache (same outputs; the cache avoids
re-running the decoder over the whole prefix at every step).

    python tools/benchmark_generation.py --length 200 --threads 2
"""
import argparse
import sys
import time

import torch

from swin_scratch.benchmark.machine import describe_machine
from swin_scratch.memory import reuse_freed_memory
from swin_scratch.text.generation import GenerationConfig, generate
from swin_scratch.text.steppers import TransformerStepper
from swin_scratch.text.transformer import Transformer

SOURCE_LENGTH = 50  # tokens in the encoded source sentence


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--length", type=int, default=200, help="tokens to generate (eos is disabled)")
    parser.add_argument("--beams", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    reuse_freed_memory()  # every model timed under the allocator policy the tools run with
    print(describe_machine(args.threads).line())
    torch.manual_seed(0)
    model = Transformer(100, 100, embed_dim=256, num_heads=8, num_encoder_layers=3, num_decoder_layers=3,
                        dim_feedforward=1024, dropout=0.0, max_len=max(args.length, SOURCE_LENGTH) + 8).eval()
    src = torch.randint(3, 100, (1, SOURCE_LENGTH))
    config = GenerationConfig(num_beams=args.beams, max_length=args.length, min_length=args.length)
    timings, outputs = {}, {}
    for use_cache in (True, False, True, False):
        start = time.perf_counter()
        outputs[use_cache] = generate(TransformerStepper(model, use_cache=use_cache), src, config)
        timings.setdefault(use_cache, []).append(time.perf_counter() - start)
    with_cache, without = min(timings[True]), min(timings[False])
    print(f"{args.length} tokens, {args.beams} beam(s), embed_dim 256, 3+3 layers, {args.threads} threads")
    print("| decoding | seconds |\n|---|---|")
    print(f"| with KV cache | {with_cache:.2f} |\n| without (full prefix each step) | {without:.2f} |")
    print(f"speed-up from the cache: {without / with_cache:.1f}x; identical outputs: {outputs[True] == outputs[False]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
