"""Keep freed memory in the process for reuse (glibc malloc), for fast training steps on a CPU.

A training step allocates and frees tensors of tens of megabytes (a decoder's activations over
(K+2)B latents). glibc serves each of those with a fresh ``mmap`` and returns it with ``munmap``
on free, so every step the kernel maps and zeroes the same memory again: measured on the
benchmark's MEME step (2 threads, batch 128, K = 10), about 70,000 page faults and 0.13 s of system
time per step, 15% of its wall time. Telling malloc to serve large blocks from its heap and not to
give the heap back (``M_MMAP_MAX = 0``, a high ``M_TRIM_THRESHOLD``) lets the next step reuse the
same pages: the faults fall to a few hundred and peak memory does not grow (it is the step's peak
either way). This is the effect the jemalloc and tcmalloc preloads that PyTorch's CPU tuning
guides recommend have, without preloading anything.

It changes no computed value. It is a process-wide malloc setting, so the trainer applies it only
when it trains on the CPU; elsewhere (not Linux, or a C library other than glibc) it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_KEEP_UP_TO = 2**31 - 1  # bytes of free heap top malloc may keep (the largest value mallopt takes)


def keep_freed_memory() -> bool:
    """Make glibc's malloc keep freed memory for reuse; True if the setting took effect.

    Example:
        >>> keep_freed_memory() in (True, False)
        True
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, _KEEP_UP_TO))
