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


def test_the_trainer_holds_the_settings_while_fitting_and_restores_them():
    """In a fresh process: subnormals are flushed during fit() (not with subnormals="keep"), and
    computed with again once fit() returns; the trainer reports what took effect."""
    script = textwrap.dedent("""
        import torch
        from memevae.data import load_pairs
        from memevae.models import MEME, MEMEConfig
        from memevae.training.trainer import Callback, Trainer, TrainConfig
        torch.set_num_threads(2)
        flushed = lambda: bool(((torch.full((2**20,), 1e-39) * 1.0) == 0).all())
        class Probe(Callback):
            def on_epoch_end(self, trainer, record):
                self.during = flushed()
        data = load_pairs("mnist-textured", "test").subset(torch.arange(32))
        for setting in ("flush", "keep"):
            probe = Probe()
            trainer = Trainer(MEME(MEMEConfig(latent_dim=4, pseudo_samples=4)), data,
                              TrainConfig(epochs=1, batch_size=32, subnormals=setting), callbacks=[probe])
            trainer.fit()
            print(setting, probe.during, flushed(), sorted(trainer.cpu_settings.items()))
    """)
    lines = subprocess.run([sys.executable, "-c", script], check=True, capture_output=True, text=True).stdout.splitlines()[-2:]
    assert lines == ["flush True False [('freed_memory', True), ('subnormals_flushed', True)]",
                     "keep False False [('freed_memory', True)]"]
