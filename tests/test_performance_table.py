"""benchmarks/performance_table.py: a measured step becomes its table row (rate and fraction of the
matrix product computed from the FLOPs and the step time), the benchmarks' options get their
model-dependent defaults, and an unknown part to skip is one line naming the choices."""

import importlib.util
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def load(name):
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def table():
    return load("performance_table")


def test_a_step_row_gives_the_rate_and_the_fraction_of_the_matrix_product(table):
    result = {"step_s": 0.25, "items_per_s": 512.0, "flops": 50e9, "matmul_flops_per_s": 250e9, "peak_rss_mb": 1234.4}
    assert table.step_row("MEME paired", "float32", result, "pairs/s") == (
        "| MEME paired | float32 | 250.0 ms | 512.0 pairs/s | 50.0 | 200 | 80% | 1,234 MB |")


def test_the_benchmarks_options_fill_the_model_dependent_defaults():
    throughput = load("step_throughput")
    meme = throughput.options(["--model", "meme", "--precision", "bf16"])
    assert (meme.classifier_samples, meme.cpu_settings, meme.precision) == (10, "trainer", "bf16")
    release = throughput.options(["--model", "release-style"])
    assert release.cpu_settings == "torch-defaults"
    assert throughput.options(["--model", "mvae"]).classifier_samples is None
    peer = load("peer_multivae").build_parser().parse_args(["--model", "mmvae", "--steps", "3"])
    assert (peer.model, peer.steps, peer.settings) == ("mmvae", 3, "same")


def test_an_unknown_part_to_skip_is_refused_with_the_choices(table, capsys):
    with pytest.raises(SystemExit) as stop:
        table.main(["--skip", "steps,speed"])
    assert stop.value.code == 2
    assert "--skip: unknown part(s) speed; choose from steps, scaling, peer, evaluation" in capsys.readouterr().err
