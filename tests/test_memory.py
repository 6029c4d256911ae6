"""swin_scratch.memory: freed blocks stay in the process instead of being unmapped and faulted in again."""
import os
import subprocess
import sys

import pytest

from swin_scratch.memory import _glibc

# a "step" that creates and frees two 64 MiB activations (above glibc's largest automatic mmap
# threshold, like a detector's stage-1 maps), repeated as training repeats its steps
ALLOCATE_AND_FREE = """
import resource, sys, torch
from swin_scratch.memory import allocator_description, reuse_freed_memory
applied = reuse_freed_memory() if sys.argv[1] == "reuse" else False
x = torch.ones(16 << 20)
def step():
    y = x * 2
    return ((y + 1).sum() + y.sum()).item()
step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    step()
print(applied, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before, allocator_description(), sep="|")
"""


def _faults(mode: str, **env: str) -> tuple[str, int, str]:
    out = subprocess.run([sys.executable, "-c", ALLOCATE_AND_FREE, mode], capture_output=True, text=True, check=True,
                         env={**os.environ, **env})
    applied, faults, description = out.stdout.strip().splitlines()[-1].split("|")
    return applied, int(faults), description


@pytest.mark.skipif(_glibc() is None, reason="mallopt thresholds exist in glibc only; elsewhere nothing is changed")
def test_freed_large_blocks_are_reused_instead_of_faulted_in_again():
    applied, reused, description = _faults("reuse")
    _, system, _ = _faults("system")
    pages = (64 << 20) // os.sysconf("SC_PAGE_SIZE")
    assert applied == "True" and "keeping freed memory" in description
    assert system >= 10 * 2 * pages  # both blocks mapped anew at every step: every page faulted in again
    assert reused < system / 4  # heap memory reused: faults only while the heap settles


def test_the_environment_variable_keeps_the_system_defaults():
    applied, _, description = _faults("reuse", SWIN_SCRATCH_MALLOC="system")
    assert applied == "False" and "SWIN_SCRATCH_MALLOC=system" in description
