"""benchmarks/step_throughput.py: the latents the objective needs and the lines it prints for a
measured result, in one precision and in the float32/bf16 A/B."""

import importlib.util
from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def bench():
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "step_throughput.py"
    spec = importlib.util.spec_from_file_location("step_throughput", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_objective_latents_of_each_model(bench):
    """MVAE has no sample count (None), which the M-scaling report passes for it."""
    assert bench.objective_latents("mvae", 3, None) == 6
    assert bench.objective_latents("meme", 2, 10) == 24
    assert bench.objective_latents("mmvae", 3, 30) == 270
    assert bench.objective_latents("release-style", 2, 10) is None


def test_ab_result_reports_both_precisions_and_their_ratio(bench):
    result = {"precision": "ab", "float32_step_s": 0.2, "bf16_step_s": 0.1, "speedup": 1.9, "speedup_range": [1.5, 2.5],
              "flops": 20e9, "matmul_flops_per_s": 100e9}
    assert bench.timing(result, "pairs/s") == ("float32   200.0 ms   bf16   100.0 ms   "
                                                "float32/bf16 1.90x (per-batch ratios 1.50-2.50x)")
    assert bench.rate_line(result) == ("  20.0 GFLOP/step  float32  100.0 GFLOP/s = 100%  bf16  200.0 GFLOP/s = 200% "
                                       "of float32 matmul (100 GFLOP/s)")


def test_one_precision_result_reports_step_throughput_and_rate(bench):
    result = {"precision": "float32", "step_s": 0.5, "items_per_s": 256.0, "flops": 50e9, "matmul_flops_per_s": 125e9}
    assert bench.timing(result, "pairs/s") == "step   500.0 ms     256.0 pairs/s"
    assert bench.timing(result) == "step   500.0 ms"
    assert bench.rate_line(result) == "  50.0 GFLOP/step   100.0 GFLOP/s =  80% of float32 matmul (125 GFLOP/s)"


def test_importance_samples_go_to_mmvae_only(bench):
    import argparse

    args = argparse.Namespace(model="mmvae", preset="official", latent_dim=None, architecture=None,
                              classifier_samples=None, importance_samples=2)
    assert bench.model_options(args)["importance_samples"] == 2
    assert "importance_samples" not in bench.model_options(argparse.Namespace(**{**vars(args), "model": "mvae", "preset": None}))
