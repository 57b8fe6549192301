"""benchmarks/peer_multivae.py: its one-line answer without MultiVae, and, where MultiVae 1.0.3 is
installed, that memevae's networks wrapped for MultiVae give the same losses and gradients."""

import importlib.metadata
import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "peer_multivae.py"


def _run(*args: str, prelude: str = "") -> subprocess.CompletedProcess:
    """The benchmark run as a script with ``args``, after ``prelude`` in the same process."""
    code = f"import runpy, sys\n{prelude}\nsys.argv = [{str(SCRIPT)!r}, *{list(args)!r}]\nrunpy.run_path({str(SCRIPT)!r}, run_name='__main__')"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)


def test_without_multivae_the_benchmark_says_so_in_one_line():
    """``sys.modules["multivae"] = None`` makes ``import multivae`` fail, as where it is not installed."""
    result = _run("--model", "mvae", prelude="sys.modules['multivae'] = None")
    assert (result.returncode, result.stdout, result.stderr) == (
        0, "MultiVae 1.0.3 is not installed: pip install --no-deps multivae==1.0.3\n", "")


def _multivae_version():
    if importlib.util.find_spec("multivae") is None:
        return None
    return importlib.metadata.version("multivae")


@pytest.mark.skipif(_multivae_version() != "1.0.3", reason="MultiVae 1.0.3 is not installed")
def test_wrapped_networks_give_multivae_memevaes_losses_and_gradients():
    """On a small batch in float64 with the same noise: MVAE's loss and gradients agree to rounding;
    MMVAE's (K = 3) to the 1e-6 that MultiVae adds to its learnt prior's scale."""
    result = _run("--check-only", "--batch-size", "4", "--samples", "3")
    assert result.returncode == 0, result.stderr
    found = re.findall(r"relative difference ([-+.e0-9]+)\);.* largest relative difference ([-+.e0-9]+)", result.stdout)
    assert len(found) == 2, result.stdout
    (mvae_loss, mvae_gradient), (mmvae_loss, mmvae_gradient) = [tuple(map(float, pair)) for pair in found]
    assert mvae_loss < 1e-12 and mvae_gradient < 1e-9
    assert mmvae_loss < 1e-8 and mmvae_gradient < 1e-5


@pytest.mark.skipif(_multivae_version() != "1.0.3", reason="MultiVae 1.0.3 is not installed")
@pytest.mark.parametrize("library", ["memevae", "multivae"])
def test_each_worker_runs_with_memevaes_cpu_settings_in_effect(library):
    """Both libraries' workers run under memevae's CPU settings (compared on the same footing): the
    worker reports what took effect (malloc serving blocks from its heap, subnormals flushed in
    every thread of the pool)."""
    worker = subprocess.Popen([sys.executable, str(SCRIPT), "--worker", library, "--model", "mvae", "--warmup", "1",
                               "--steps", "1"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        ready = next(json.loads(line[len("@@ "):]) for line in worker.stdout if line.startswith("@@ "))
    finally:
        worker.communicate("quit\n", timeout=120)
    assert ready["cpu_settings"] == {"freed_memory": True, "subnormals_flushed": True}
