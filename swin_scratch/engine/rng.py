"""The global RNGs (torch, NumPy, Python): their state for checkpoints, seeding, and blocks that leave them untouched.

One place for this because exact resume depends on it: a checkpoint stores these states, and
anything that draws from them outside the training step (building a data loader, augmenting an
image in the main process) must put them back, or a resumed run draws different numbers.
"""
from __future__ import annotations

import contextlib
import random
from typing import Any, Iterator

import numpy as np
import torch


def rng_state() -> dict[str, Any]:
    """torch / numpy / python RNG states as tensors and plain types (loadable with weights_only)."""
    kind, keys, position, has_gauss, cached = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(position),
                  "has_gauss": int(has_gauss), "cached": float(cached)},
        "python": random.getstate(),
    }


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` returned (also after a round trip through a checkpoint)."""
    torch.set_rng_state(state["torch"])
    saved = state["numpy"]
    np.random.set_state(
        (saved["kind"], saved["keys"].numpy().astype(np.uint32), saved["pos"], saved["has_gauss"], saved["cached"])
    )
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))


@contextlib.contextmanager
def preserved_global_rngs() -> Iterator[None]:
    """Run a block without changing torch's, NumPy's or Python's global RNG state."""
    saved = rng_state()
    try:
        yield
    finally:
        set_rng_state(saved)


def seed_global_rngs(*entropy: int) -> None:
    """Seed torch, NumPy and Python's global RNGs from integers (mixed by NumPy's SeedSequence)."""
    seed = int(np.random.SeedSequence([abs(int(value)) for value in entropy]).generate_state(1)[0])
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)
