"""Process-level settings: glibc's malloc keeping freed memory (CPU training and token extraction)."""

from __future__ import annotations

import subprocess
import sys

import pytest

# After a 256 MiB tensor is freed, how many bytes does malloc still hold free for reuse
# (mallinfo2().fordblks)? With glibc's defaults such a tensor is its own mmap, unmapped on free.
PROBE = r"""
import ctypes, sys
import torch
if sys.argv[1] == "keep":
    from speechssl.runtime import keep_freed_memory
    assert keep_freed_memory()
class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]
libc = ctypes.CDLL(None)
libc.mallinfo2.restype = MallInfo2
x = torch.ones(64 * 2**20)  # 256 MiB
mmapped = libc.mallinfo2().hblkhd
del x
print(mmapped, libc.mallinfo2().fordblks)
"""


def _probe(mode: str) -> tuple[int, int]:
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True).stdout
    mmapped, free_held = out.split()
    return int(mmapped), int(free_held)


def test_keep_freed_memory_keeps_a_freed_large_tensor_for_reuse():
    try:
        import ctypes

        ctypes.CDLL(None).mallinfo2
    except (OSError, AttributeError):
        pytest.skip("needs glibc >= 2.33 (mallinfo2)")
    size = 256 * 2**20
    mmapped, held = _probe("default")
    assert mmapped >= size and held < size // 4  # glibc's default: its own mmap, handed back on free
    mmapped, held = _probe("keep")
    assert mmapped < size // 4 and held >= size  # kept: from the heap, and still there after the free
