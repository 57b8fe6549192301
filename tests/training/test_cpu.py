"""The trainer's CPU settings (memevae.training.cpu) do what they claim, in fresh processes
(both are process-wide)."""

import os
import subprocess
import sys
import textwrap

import pytest

from memevae.training.trainer import TrainConfig


def test_keep_freed_memory_stops_page_faults_of_large_tensors():
    """In a fresh process, tensors of 20-28 MB allocated together and freed, as a training step
    does, fault their pages in on every repetition when malloc maps them afresh (pinned here with
    glibc's MALLOC_MMAP_THRESHOLD_ at its 128 KB default, so that its adaptive threshold cannot
    make the baseline depend on history), and not after the first ones with keep_freed_memory()."""
    script = textwrap.dedent("""
        import resource, sys, torch
        from memevae.training.cpu import keep_freed_memory
        if sys.argv[1] == "keep":
            assert keep_freed_memory()
        def step():
            a, b, c = torch.ones(5 * 2**20), torch.ones(5 * 2**20), torch.ones(7 * 2**20)
        for _ in range(3):
            step()
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        for _ in range(5):
            step()
        print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    """)
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "131072"}
    faults = {mode: int(subprocess.run([sys.executable, "-c", script, mode], check=True, capture_output=True, text=True,
                                       env=env).stdout.split()[-1]) for mode in ("keep", "system")}
    pages_per_step = 17 * 4 * 2**20 // 4096
    assert faults["system"] > 4 * pages_per_step
    assert faults["keep"] < pages_per_step // 2


def test_flush_subnormals_reaches_every_thread_of_the_pool():
    """After torch's thread pool exists, torch.set_flush_denormal reaches only the calling thread;
    flush_subnormals() makes a two-thread product of subnormals zero everywhere."""
    script = textwrap.dedent("""
        import sys, torch
        from memevae.training.cpu import flush_subnormals
        torch.set_num_threads(2)
        x = torch.full((2**22,), 1e-39)
        x * 1.0  # the pool now exists
        if sys.argv[1] == "pool":
            assert flush_subnormals()
        else:
            torch.set_flush_denormal(True)
        print(((x * 1.0) == 0).float().mean().item())
    """)
    zero_fraction = {mode: float(subprocess.run([sys.executable, "-c", script, mode], check=True, capture_output=True,
                                                text=True).stdout.split()[-1]) for mode in ("pool", "calling-thread")}
    assert zero_fraction["pool"] == 1.0
    assert zero_fraction["calling-thread"] < 1.0


def test_flush_subnormals_finds_torchs_runtime_when_another_is_loaded_first():
    """scikit-learn's wheel bundles its own libgomp; imported before torch, it is mapped first (and
    sorts first). flush_subnormals() must still reach torch's pool, and say so truthfully."""
    pytest.importorskip("sklearn")
    script = textwrap.dedent("""
        import sklearn.cluster  # loads scikit-learn's bundled OpenMP runtime
        import torch
        from memevae.training.cpu import _openmp_runtime_path, flush_subnormals
        torch.set_num_threads(2)
        x = torch.full((2**22,), 1e-39)
        x * 1.0
        runtimes = sorted({l.split()[-1] for l in open("/proc/self/maps") if "gomp" in l})
        took = flush_subnormals()
        print(len(runtimes), "torch" in _openmp_runtime_path(), took, ((x * 1.0) == 0).float().mean().item())
    """)
    count, chose_torch, took, zero_fraction = subprocess.run([sys.executable, "-c", script], check=True, capture_output=True,
                                                             text=True).stdout.split()[-4:]
    assert int(count) >= 2  # the situation of the defect: two OpenMP runtimes in one process
    assert chose_torch == "True" and took == "True" and float(zero_fraction) == 1.0


def test_unknown_subnormals_setting_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown subnormals 'zero'; choose one of flush, keep"):
        TrainConfig(subnormals="zero")


def test_docstring_examples():
    """Run in a fresh process: both settings are process-wide."""
    script = "import doctest, memevae.training.cpu as cpu; print(doctest.testmod(cpu).failed)"
    assert subprocess.run([sys.executable, "-c", script], check=True, capture_output=True, text=True).stdout.split()[-1] == "0"


_FIT = textwrap.dedent("""
    import torch
    from memevae.data import load_pairs
    from memevae.models import MEME, MEMEConfig
    from memevae.training.trainer import Callback, Trainer, TrainConfig
    torch.set_num_threads(2)
    def fit(callbacks=(), **options):
        data = load_pairs("mnist-textured", "test").subset(torch.arange(32))
        trainer = Trainer(MEME(MEMEConfig(latent_dim=4, pseudo_samples=4)), data,
                          TrainConfig(epochs=1, batch_size=32, **options), callbacks=list(callbacks))
        trainer.fit()
        return trainer
""")


def _run(script: str, *args: str) -> list[str]:
    """The output lines of ``script`` run with ``args`` in a fresh Python process."""
    return subprocess.run([sys.executable, "-c", script, *args], check=True, capture_output=True, text=True,
                          cwd=os.path.dirname(__file__)).stdout.splitlines()


def test_the_trainer_holds_the_subnormal_setting_while_fitting_and_restores_it():
    """In a fresh process: subnormals are flushed during fit() (not with subnormals="keep"), and
    computed with again once fit() returns; the trainer reports what it applied (in library use,
    no malloc setting)."""
    script = _FIT + textwrap.dedent("""
        flushed = lambda: bool(((torch.full((2**20,), 1e-39) * 1.0) == 0).all())
        class Probe(Callback):
            def on_epoch_end(self, trainer, record):
                self.during = flushed()
        for setting in ("flush", "keep"):
            probe = Probe()
            trainer = fit([probe], subnormals=setting)
            print(setting, probe.during, flushed(), sorted(trainer.cpu_settings.items()))
    """)
    assert _run(script)[-2:] == ["flush True False [('subnormals_flushed', True)]", "keep False False []"]


def test_fit_gives_each_thread_back_its_subnormal_state():
    """Whatever the threads of torch's pool did before fit() (all flushing; only the calling thread,
    as torch.set_flush_denormal alone does once the pool exists; none), each does the same after:
    the fraction of a two-thread product of subnormals that comes out zero is unchanged."""
    script = _FIT + textwrap.dedent("""
        import sys
        from memevae.training.cpu import flush_subnormals
        x = torch.full((2**22,), 1e-39)
        x * 1.0  # the pool now exists
        if sys.argv[1] == "all":
            assert flush_subnormals()
        elif sys.argv[1] == "calling-thread":
            torch.set_flush_denormal(True)
        zero_fraction = lambda: ((x * 1.0) == 0).float().mean().item()
        before = zero_fraction()
        fit()
        print(before, zero_fraction())
    """)
    found = {state: tuple(map(float, _run(script, state)[-1].split())) for state in ("all", "calling-thread", "none")}
    assert found == {"all": (1.0, 1.0), "calling-thread": (0.5, 0.5), "none": (0.0, 0.0)}


_MMAP_PROBE = textwrap.dedent("""
    import ctypes
    class Mallinfo2(ctypes.Structure):
        _fields_ = [(name, ctypes.c_size_t) for name in
                    ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]
    libc = ctypes.CDLL("libc.so.6")
    libc.mallinfo2.restype, libc.malloc.restype = Mallinfo2, ctypes.c_void_p
    libc.malloc.argtypes, libc.free.argtypes = (ctypes.c_size_t,), (ctypes.c_void_p,)
    def mapped(size):
        before = libc.mallinfo2().hblks
        block = libc.malloc(size)
        after = libc.mallinfo2().hblks
        libc.free(block)
        return after > before
    def probe():
        # glibc's adaptive threshold: a freed mapped block of 24 MB raises the threshold past it, so
        # the second one comes from the heap; fixed settings map both (a low threshold) or neither
        # (memevae's: every block from the heap). A 64 MB block is above the adaptive threshold's
        # 32 MB ceiling: glibc maps it whatever came before, memevae's setting never does.
        print([mapped(24 * 2**20) for _ in range(2)] + [mapped(64 * 2**20)])
""")


def test_malloc_is_left_as_found_in_library_use_and_kept_where_memevae_owns_the_process():
    """glibc's malloc settings cannot be read back or restored, so a program that calls fit()
    (default freed_memory="auto") must find malloc untouched after it: glibc's adaptive mmap
    threshold still works, as in a process that never trained (observed through mallinfo2's count
    of mapped blocks). The ``memevae`` command (main() on the process's command line) owns its
    process and keeps freed memory, and so does freed_memory="keep" in library use."""
    pytest.importorskip("ctypes")
    if not sys.platform.startswith("linux") or not hasattr(__import__("ctypes").CDLL("libc.so.6"), "mallinfo2"):
        pytest.skip("needs glibc 2.33 or later (mallinfo2)")
    script = _FIT + _MMAP_PROBE + textwrap.dedent("""
        import sys, tempfile
        case = sys.argv[1]
        if case == "library":
            fit()
        elif case == "library-keep":
            fit(freed_memory="keep")
        elif case == "command":
            from memevae.cli import main
            with tempfile.TemporaryDirectory() as folder:
                sys.argv = ["memevae", "train", "--out", folder + "/run", "--epochs", "1", "--limit", "32",
                            "--batch-size", "32", "--latent-dim", "4", "--pseudo-samples", "4", "--coherence-items", "0",
                            "--quiet"]
                assert main() == 0
        probe()
    """)
    found = {case: _run(script, case)[-1] for case in ("no-training", "library", "library-keep", "command")}
    assert found == {"no-training": "[True, False, True]", "library": "[True, False, True]",
                     "library-keep": "[False, False, False]", "command": "[False, False, False]"}


def test_kept_memory_serves_blocks_above_32_mb_from_the_heap():
    """Blocks above glibc's 32 MB heap limit (MMVAE's decoded latents, M = 5 MEME's activations) are
    mapped afresh and zeroed by the kernel on every step with malloc's defaults: a 64 MB tensor made
    and freed again faults its 16,384 pages in each time. With keep_freed_memory() it comes from the
    heap; the heap grows again only when a small object has landed above the freed block (seen
    once in the first few repetitions), so over 8 repetitions at most two full re-faults."""
    script = textwrap.dedent("""
        import resource, sys, torch
        from memevae.training.cpu import keep_freed_memory
        if sys.argv[1] == "keep":
            assert keep_freed_memory()
        for _ in range(2):
            torch.empty(2**24).fill_(1.0)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        for _ in range(8):
            torch.empty(2**24).fill_(1.0)
        print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) // 8)
    """)
    env = {k: v for k, v in os.environ.items() if k != "THP_MEM_ALLOC_ENABLE"}  # 4 KB pages in both cases
    faults = {case: int(subprocess.run([sys.executable, "-c", script, case], check=True, capture_output=True, text=True,
                                       env=env).stdout.split()[-1]) for case in ("keep", "system")}
    assert faults["system"] > 16000
    assert faults["keep"] < 16384 * 2 // 8
