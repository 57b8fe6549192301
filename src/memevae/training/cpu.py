"""CPU settings that make training steps fast without changing what they compute.

Two settings, both process-wide. They differ in whether they can be undone:

**Flush subnormals** (:func:`flush_subnormals`) can be read and restored exactly, so the trainer
holds it while it fits on the CPU and afterwards puts back, thread by thread, what it found
(:func:`cpu_settings`; ``TrainConfig.subnormals="keep"`` leaves it alone).

**Keep freed memory** (:func:`keep_freed_memory`) cannot: glibc's malloc settings cannot be read
back, and setting them ends glibc's adaptive mmap threshold for the rest of the process, so no
call restores what was there before. It is therefore applied only where memevae owns the process:
the ``memevae`` command (and so every run of a sweep, each its own ``memevae`` process;
:func:`own_process`). A program that trains through the Python API (``memevae.train``,
``Trainer.fit``) finds malloc as it left it, unless it asks (``TrainConfig.freed_memory="keep"``,
which then holds for the rest of that program's process).

Keep freed memory. A training step allocates and frees tensors of tens to hundreds of megabytes
(a decoder's activations over (K+2)B latents; MMVAE's K x B decoded latents: 94 MB for the SVHN
likelihood, 252 MB for one layer's activations). With its default settings glibc maps such blocks
afresh (``mmap``) and unmaps them when freed, or gives freed heap back to the system, so at every
step the kernel maps and zeroes the same memory again, 4 KB at a time. Measured with ``perf`` on
MEME's paired step with M = 5 modalities (2 threads, batch 128), 45% of all CPU samples were in the
kernel's page clearing. Telling malloc to serve every block from its heap (``M_MMAP_MAX = 0``) and
never to give the heap's free top back (a high ``M_TRIM_THRESHOLD``) lets the next step reuse the
same pages; this is what the jemalloc and tcmalloc preloads of PyTorch's CPU tuning guides do,
without preloading anything. It changes no computed value. Measured (median step, peak resident
memory; each case its own process, same session; the machine's speed differed between the two
sessions, so compare within a row):

====================================  =========================  =========================
step (2 threads, batch 128, float32)  torch's huge pages         heap only (this)
====================================  =========================  =========================
MMVAE ``--preset official``, AVX-512  1.66 s, 1667 MB            0.95 s, 2178 MB
MEME paired, M = 5, AVX-512           8.10 s, 3038 MB            3.31 s, 3772 MB
MMVAE ``--preset official``, AVX2     2.36-2.51 s, 1622-1637 MB  2.29-2.35 s, 2275-2388 MB
MEME paired, M = 5, AVX2              9.48 s, 3011 MB            8.16 s, 3685 MB
====================================  =========================  =========================

("Torch's huge pages": ``THP_MEM_ALLOC_ENABLE=1``, which memevae set before, with blocks above
32 MB still mapped afresh, in 2 MB pages; both together were no faster than the heap alone and
took 2988 MB for MMVAE.) The price is peak memory: a heap fragments and keeps what it once held
(MMVAE's step about 0.6 GB more). ``TrainConfig.freed_memory="release"`` (``--freed-memory
release``) leaves malloc's defaults for anyone short of memory.

Flush subnormals. Images have saturated pixels, so decoders learn
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
_M_MMAP_MAX = -4
_KEEP_UP_TO = 2**31 - 1  # bytes of free heap top malloc may keep (the largest value mallopt takes)

_owned = False


def own_process() -> None:
    """Declare this process memevae's own: from now on a trainer whose ``freed_memory`` is "auto"
    keeps freed memory (:func:`keep_freed_memory`). The ``memevae`` command does this before it
    runs a command; a program that uses memevae as a library does not."""
    global _owned
    _owned = True


def owns_process() -> bool:
    """True once :func:`own_process` was called in this process."""
    return _owned


def keep_freed_memory() -> bool:
    """Make glibc's malloc serve every block from its heap and keep freed memory for reuse, for the
    rest of the process; True if the settings took effect. Nothing undoes it: glibc's settings
    cannot be read back, and setting them ends glibc's adaptive mmap threshold for good.

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
    return bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, _KEEP_UP_TO))


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


def _on_each_pool_thread(function) -> bool:
    """Call ``function(n)`` on each thread n of an OpenMP team as large as torch's pool (thread 0 is
    the calling thread; threads the pool creates later copy the creating thread's state); False if
    torch's OpenMP runtime cannot be reached."""
    path = _openmp_runtime_path()
    if path is None:
        return False
    try:
        runtime = ctypes.CDLL(path)
        parallel, thread_number = runtime.GOMP_parallel, runtime.omp_get_thread_num
    except (OSError, AttributeError):
        return False
    thread_number.restype = ctypes.c_int
    callback_type = ctypes.CFUNCTYPE(None, ctypes.c_void_p)
    parallel.argtypes, parallel.restype = (callback_type, ctypes.c_void_p, ctypes.c_uint, ctypes.c_uint), None
    parallel(callback_type(lambda _: function(thread_number())), None, torch.get_num_threads(), 0)
    return True


_SUBNORMAL = 1e-310  # a subnormal double: x86's FTZ/DAZ flags govern float64 arithmetic too


def _thread_flushes(one: float = 1.0) -> bool:
    """Whether the calling thread flushes subnormals (its FTZ/DAZ flags), read off one product."""
    return _SUBNORMAL * one == 0.0


def subnormal_states() -> list[bool] | None:
    """Whether each thread of torch's pool flushes subnormals, by OpenMP thread number (0: the
    calling thread); None if torch's OpenMP runtime cannot be reached."""
    states: dict[int, bool] = {}
    if not _on_each_pool_thread(lambda n: states.__setitem__(n, _thread_flushes())):
        return None
    return [states[n] for n in sorted(states)]


def _set_subnormal_states(states: list[bool]) -> None:
    """Give each thread of torch's pool the state ``states[n]`` (threads beyond: ``states[0]``)."""
    _on_each_pool_thread(lambda n: torch.set_flush_denormal(states[n] if n < len(states) else states[0]))


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
        >>> flush_subnormals(False)
        True
    """
    if not torch.set_flush_denormal(enabled):
        return not enabled and _subnormals_flushed() is False
    if not _on_each_pool_thread(lambda _: torch.set_flush_denormal(enabled)):
        return False
    return _subnormals_flushed() is enabled


@contextlib.contextmanager
def cpu_settings(freed_memory: bool = True, subnormals_flushed: bool = True):
    """Apply the settings for the duration of a ``with`` block. Subnormals: each thread of torch's
    pool gets back the state it had (flushing or not) when the block began. Freed memory: kept for
    the rest of the process (:func:`keep_freed_memory` cannot be undone). Yields ``{setting: took
    effect}`` for the settings asked for, so a caller can say when one did not.

    Example (x86; the subnormal 1e-39 survives a product before and after the block):
        >>> with cpu_settings(freed_memory=False) as took:
        ...     print(took, torch.full((3,), 1e-39) * 1.0)
        {'subnormals_flushed': True} tensor([0., 0., 0.])
        >>> bool((torch.full((3,), 1e-39) * 1.0 != 0).all())  # as it was before the block
        True
    """
    took = {}
    if freed_memory:
        took["freed_memory"] = keep_freed_memory()
    if subnormals_flushed:
        calling_thread, pool = _thread_flushes(), subnormal_states()
        took["subnormals_flushed"] = flush_subnormals(True)
    try:
        yield took
    finally:
        if subnormals_flushed:
            if pool is None:
                torch.set_flush_denormal(calling_thread)
            else:
                _set_subnormal_states(pool)
