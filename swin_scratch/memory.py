"""Keep freed CPU memory in the process instead of handing it back to the OS at every free.

glibc's malloc serves blocks above its mmap threshold (at most 32 MiB, adjusted as it goes) with
fresh ``mmap`` calls and unmaps them on free. A detector's activations at 800 x 1216 are tens of
MiB each, so every forward maps and unmaps hundreds of MiB, and the kernel zero-fills each page
again on first touch: about a million page faults and 1-2 s of kernel time per training step here,
for Mask R-CNN R50-FPN and Swin-T alike (docs/benchmarks/intel-xeon-avx512-2core.md). Raising the mmap and
trim thresholds lets malloc reuse its heap; the trade-off is that memory freed after a peak stays with the process.

The tools call :func:`reuse_freed_memory` once at start-up (training, evaluation, demo, benchmarks,
so every model they compare runs under the same allocator). ``SWIN_SCRATCH_MALLOC=system`` keeps
glibc's defaults; on other C libraries (musl, macOS, Windows) nothing is changed.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os

__all__ = ["reuse_freed_memory", "allocator_description"]

logger = logging.getLogger(__name__)

# glibc's mallopt parameter numbers (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
# blocks below this come from the reusable heap; 1 GiB covers any single activation of a detector
# at COCO sizes while a truly huge request still gets its own mapping
_KEEP_BELOW_BYTES = 1 << 30

_state = {"applied": False, "reason": "not requested"}


def reuse_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds for this process (and processes it forks). Returns
    whether they were raised; idempotent."""
    if _state["applied"]:
        return True
    if os.environ.get("SWIN_SCRATCH_MALLOC", "").lower() == "system":
        _state["reason"] = "SWIN_SCRATCH_MALLOC=system"
        return False
    libc = _glibc()
    if libc is None:
        _state["reason"] = "not glibc"
        return False
    applied = bool(libc.mallopt(_M_MMAP_THRESHOLD, _KEEP_BELOW_BYTES)) and bool(
        libc.mallopt(_M_TRIM_THRESHOLD, _KEEP_BELOW_BYTES)
    )
    _state.update(applied=applied, reason="" if applied else "mallopt refused the thresholds")
    logger.debug("glibc malloc keeps freed memory: %s", applied)
    return applied


def allocator_description() -> str:
    """One phrase for benchmark headers: which allocator policy the numbers were measured under."""
    if _state["applied"]:
        return "glibc malloc keeping freed memory (swin_scratch.memory)"
    return f"system malloc defaults ({_state['reason']})"


def _glibc():
    if os.name != "posix":
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.gnu_get_libc_version.restype = ctypes.c_char_p
        libc.gnu_get_libc_version()  # only glibc has it
    except (OSError, AttributeError):
        return None
    libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    libc.mallopt.restype = ctypes.c_int
    return libc
