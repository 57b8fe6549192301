"""CPU settings that make training steps fast without changing what they compute.

Two settings, both process-wide, which the trainer applies while it trains on the CPU
(:func:`cpu_settings`, restored when training ends; each can be turned off:
``TrainConfig.freed_memory="release"``, ``TrainConfig.subnormals="keep"``):

**Keep freed memory** (:func:`keep_freed_memory`). A training step allocates and frees tensors
of tens of megabytes (a decoder's activations over (K+2)B latents). With its default settings
glibc maps such blocks afresh (``mmap``) or gives freed heap back to the system, so every step the
kernel maps and zeroes the same memory again: measured on the benchmark's MEME step (2 threads,
batch 128, K = 10), about 70,000 page faults and 0.13 s of system time per step, 14% of its CPU
time. Telling malloc to serve blocks of up to 32 MB (the most glibc allows) from its heap and not
to give the heap back (``M_MMAP_THRESHOLD``, a high ``M_TRIM_THRESHOLD``) lets the next step reuse
the same pages; 9,000-12,000 faults per step remain (two measurements), from the blocks above
32 MB. This
is what the jemalloc and tcmalloc preloads of PyTorch's CPU tuning guides do, without preloading
anything. It changes no computed value; peak memory can grow a little, because a heap fragments
(MEME's step: 888-899 MB instead of 863 MB; MMVAE's: 1.8 GB, where an earlier, shorter benchmark
with malloc's defaults saw 1.6 GB). Serving every block from the heap (``M_MMAP_MAX = 0``) was as
fast for MEME but grew MMVAE's peak to 2.6 GB.

**Flush subnormals** (:func:`flush_subnormals`). Images have saturated pixels, so decoders learn
sigmoid inputs below -87, whose outputs and gradients are subnormal floats (|x| < 1.2e-38). x86
processors compute with subnormals through slow microcode: as training went on, the benchmark's
MEME step slowed from 0.30 s to 1.0 s. Flush-to-zero and denormals-are-zero (FTZ/DAZ) treat them
as zero instead, in the main thread and in every thread of torch's OpenMP pool (``torch.
set_flush_denormal`` alone reaches only the calling thread). Each affected value changes by less
than 1.2e-38, far below float32 resolution of any loss or gradient the model uses; the
``subnormals="keep"`` setting of :class:`~memevae.training.trainer.TrainConfig` keeps IEEE
arithmetic for anyone who needs it.

Both do nothing where they do not apply (not Linux, a C library other than glibc, no x86
flush-to-zero).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import sys

import torch

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_LARGEST_HEAP_BLOCK = 32 * 2**20  # glibc's upper limit for M_MMAP_THRESHOLD on 64-bit systems
_KEEP_UP_TO = 2**31 - 1  # bytes of free heap top malloc may keep (the largest value mallopt takes)
_GLIBC_DEFAULT = 128 * 1024  # glibc's default for both thresholds


def keep_freed_memory(enabled: bool = True) -> bool:
    """Make glibc's malloc keep freed memory for reuse (``enabled=False``: glibc's default
    thresholds again, 128 KiB each; its adaptive mmap threshold stays off once set); True if the
    setting took effect.

    Example (on Linux with glibc):
        >>> keep_freed_memory()
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
    mmap_threshold, trim_threshold = (_LARGEST_HEAP_BLOCK, _KEEP_UP_TO) if enabled else (_GLIBC_DEFAULT, _GLIBC_DEFAULT)
    return bool(mallopt(_M_MMAP_THRESHOLD, mmap_threshold)) and bool(mallopt(_M_TRIM_THRESHOLD, trim_threshold))


def _openmp_runtime_path() -> str | None:
    """The file of torch's own OpenMP runtime among those mapped in this process, or None.

    Other packages bundle runtimes of their own (scikit-learn's wheel carries a libgomp); a pool
    started through one of those is not torch's. torch's wheel ships its runtime in ``torch/lib``;
    a torch built against the system's runtime maps only that one.
    """
    try:
        with open("/proc/self/maps") as maps:
            paths = {line.split()[-1] for line in maps if "gomp" in line or "iomp5" in line}
    except OSError:
        return None
    paths = sorted(os.path.realpath(path) for path in paths if path.startswith("/"))
    package = os.path.realpath(os.path.dirname(torch.__file__)) + os.sep
    own = [path for path in paths if path.startswith(package)]
    if own:
        return own[0]
    return paths[0] if len(set(paths)) == 1 else None  # several foreign runtimes: do not guess


def _subnormals_flushed() -> bool | None:
    """True if a product of subnormals, large enough to run on every thread of torch's pool, is
    zero everywhere; False if it is zero nowhere; None if some threads flush and others do not."""
    zero = (torch.full((2**20,), 1e-39) * 1.0) == 0
    return True if bool(zero.all()) else False if not bool(zero.any()) else None


def flush_subnormals(enabled: bool = True) -> bool:
    """Treat subnormal floats as zero (FTZ/DAZ) in this thread and in every thread of torch's
    OpenMP pool (``enabled=False``: compute with them again, IEEE arithmetic); True if the setting
    took effect in the whole pool (checked on a product of subnormals large enough to run on every
    thread).

    Example (on an x86 CPU; 1e-39 is subnormal in float32):
        >>> flush_subnormals()
        True
        >>> torch.full((3,), 1e-39) * 1.0
        tensor([0., 0., 0.])
    """
    if not torch.set_flush_denormal(enabled):
        return not enabled and _subnormals_flushed() is False
    path = _openmp_runtime_path()
    if path is None:
        return False
    try:
        parallel = ctypes.CDLL(path).GOMP_parallel
    except (OSError, AttributeError):
        return False
    callback_type = ctypes.CFUNCTYPE(None, ctypes.c_void_p)
    parallel.argtypes, parallel.restype = (callback_type, ctypes.c_void_p, ctypes.c_uint, ctypes.c_uint), None
    # Run torch.set_flush_denormal on each thread of a team as large as torch's pool; threads
    # the pool creates later copy the creating thread's setting.
    parallel(callback_type(lambda _: torch.set_flush_denormal(enabled)), None, torch.get_num_threads(), 0)
    return _subnormals_flushed() is enabled


@contextlib.contextmanager
def cpu_settings(freed_memory: bool = True, subnormals_flushed: bool = True):
    """Apply the settings for the duration of a ``with`` block and restore the defaults after
    (malloc's thresholds, IEEE subnormals). Yields ``{setting: took effect}`` for the settings
    asked for, so a caller can say when one did not.

    Example (Linux, glibc, x86):
        >>> with cpu_settings() as took:
        ...     print(took, torch.full((3,), 1e-39) * 1.0)
        {'freed_memory': True, 'subnormals_flushed': True} tensor([0., 0., 0.])
        >>> bool((torch.full((3,), 1e-39) * 1.0 != 0).all())  # restored
        True
    """
    took = {}
    if freed_memory:
        took["freed_memory"] = keep_freed_memory(True)
    if subnormals_flushed:
        took["subnormals_flushed"] = flush_subnormals(True)
    try:
        yield took
    finally:
        if subnormals_flushed:
            flush_subnormals(False)
        if freed_memory:
            keep_freed_memory(False)
