"""Keep large freed blocks in the process heap, so that big CPU tensors do not cost page faults on every use.

glibc serves each allocation above its mmap threshold (at most 32 MB by default) with a fresh `mmap` and returns
it to the system when freed, so every full-resolution activation of a 3D network is zero-filled page by page
again: on the CPU that costs about as much as the convolutions. Raising the mmap and trim thresholds keeps those
blocks for reuse; this is the effect that jemalloc or tcmalloc give PyTorch on the CPU, without preloading them.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import sys

_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3
_LARGEST = 2**31 - 1  # mallopt takes an int


@functools.cache
def keep_freed_memory() -> bool:
    """Ask glibc malloc to reuse freed large blocks instead of unmapping them; returns whether it applied.

    Applies once per process, on Linux with glibc; elsewhere (macOS, musl, Windows) it does nothing.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        settings = ((_M_MMAP_THRESHOLD, _LARGEST), (_M_TRIM_THRESHOLD, _LARGEST), (_M_TOP_PAD, 1 << 28))
        return all(libc.mallopt(ctypes.c_int(option), ctypes.c_int(value)) == 1 for option, value in settings)
    except (OSError, AttributeError):
        return False
