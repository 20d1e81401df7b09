"""Keep freed memory in the process for reuse: glibc's default hands large blocks back to the kernel on free.

A training step allocates and frees tensors of a few MB each (STFT frames, activations). With glibc's defaults each
such block is its own mmap, returned on free, so every step page-faults the same memory back in (benchmarks/README.md
has the measured cost). Set once per process; peak memory grows by the few MB that stay cached.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import sys

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 << 20  # glibc's largest: blocks under 32 MB come from the heap and are reused
TRIM_THRESHOLD = 1 << 30  # return the heap's free top to the kernel only past 1 GB


@functools.cache
def retain_freed_memory() -> bool:
    """Raise glibc malloc's mmap and trim thresholds for this process (Linux with glibc); True when applied.

    Elsewhere (macOS, Windows, musl) nothing changes. Set AUDIOMNIST_MALLOC=default to keep glibc's own settings.
    """
    import os

    if not sys.platform.startswith("linux") or os.environ.get("AUDIOMNIST_MALLOC", "") == "default":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
