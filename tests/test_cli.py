"""The command line: help, one-line errors, train -> translate."""

import subprocess
import sys

import pytest

from memevae.cli import main


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "memevae.cli", *args], capture_output=True, text=True, timeout=300)


def test_help_lists_the_commands():
    result = run_cli("--help")
    assert result.returncode == 0
    assert "train" in result.stdout and "translate" in result.stdout and "examples:" in result.stdout


@pytest.mark.parametrize("args,message", [
    (["train", "--unpaired", "bogus", "--paired-fraction", "0.5"], "bogus"),
    (["train", "--paired-fraction", "0.5"], "unpaired"),
    (["train", "--dataset", "cifar"], "unknown dataset 'cifar'"),
    (["train", "--model", "vqvae"], "unknown model 'vqvae'"),
    (["train", "--kl", "analytic", "--direction", "up->down"], "unknown direction 'up->down'"),
    (["train", "--dataset", "mnist-svhn"], "SVHN"),
    (["train", "--modalities", "3"], "modalities applies to data sets with a choice of modalities (polymnist, "
                                     "polymnist-textured), not mnist-textured"),
    (["train", "--dataset", "polymnist-textured", "--modalities", "m0,m7"], "no modality 'm7'"),
    (["train", "--dataset", "polymnist-textured", "--paired-fraction", "0.5", "--unpaired", "m0+m1+m2+m3+m4"],
     "keeps every modality"),
    (["train", "--dataset", "polymnist", "--data-dir", "/nonexistent"], "/nonexistent/train/m0: no such folder"),
    (["translate", "/nonexistent/run", "--from", "mnist", "--to", "textured", "--out", "x.png"], "not a memevae run"),
])
def test_bad_input_is_one_clear_line(args, message, tmp_path, capsys):
    code = main([*args] if args[0] == "translate" else [*args, "--out", str(tmp_path / "run"), "--epochs", "1", "--limit", "64", "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 1
    assert err.startswith("memevae: error:") and message in err and "\n" not in err
    assert not (tmp_path / "run" / "checkpoints" / "last.pt").exists()


@pytest.mark.slow  # the command line end to end, in subprocesses
def test_train_then_translate(tmp_path):
    run = tmp_path / "run"
    result = run_cli("train", "--out", str(run), "--epochs", "1", "--limit", "128", "--batch-size", "64",
                     "--latent-dim", "8", "--pseudo-samples", "8", "--classifier-samples", "2")
    assert result.returncode == 0, result.stderr
    assert "epoch 1/1" in result.stderr and (run / "checkpoints" / "last.pt").exists()
    grid = tmp_path / "grid.png"
    result = run_cli("translate", str(run), "--from", "mnist", "--to", "textured", "--out", str(grid), "--count", "5")
    assert result.returncode == 0, result.stderr
    assert grid.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    import matplotlib.image

    again, other = tmp_path / "again.png", tmp_path / "other.png"
    for out, seed in ((again, "0"), (other, "1")):
        assert run_cli("translate", str(run), "--from", "mnist", "--to", "textured", "--out", str(out), "--count", "5",
                       "--seed", seed).returncode == 0
    pixels = {p: matplotlib.image.imread(p) for p in (grid, again, other)}
    assert (pixels[grid] == pixels[again]).all() and not (pixels[grid] == pixels[other]).all()  # seeded: the same grid
    result = run_cli("translate", str(run), "--from", "svhn", "--to", "textured", "--out", str(grid))
    assert result.returncode == 1 and "unknown modality 'svhn'" in result.stderr


@pytest.mark.parametrize("model,options", [
    ("meme", ["--pseudo-samples", "4", "--classifier-samples", "2", "--combine", "mixture", "--kl", "monte-carlo"]),
    pytest.param("mvae", [], marks=pytest.mark.slow),
    pytest.param("mmvae", ["--importance-samples", "2"], marks=pytest.mark.slow)])
def test_three_modalities_train_and_evaluate_with_one_command(model, options, tmp_path):
    """The same command trains each model on three modalities with partial data, and evaluation
    gives coherence from every subset and latent accuracy per subset."""
    import json

    from memevae.data import DataConfig
    from memevae.evaluation.judges import train_judges

    judges = tmp_path / "judges"
    train_judges(DataConfig("polymnist-textured", modalities="3"), judges, modalities=["m0", "m1", "m2"], epochs=1,
                 max_items=64, progress=False, log=None)
    run = tmp_path / "run"
    scheme = ["--paired-fraction", "0.5", "--unpaired", "random"] if model != "mmvae" else ["--paired-fraction", "0.5", "--paired-only"]
    assert main(["train", "--model", model, "--dataset", "polymnist-textured", "--modalities", "3", *scheme, "--out", str(run),
                 "--epochs", "1", "--limit", "96", "--batch-size", "32", "--latent-dim", "4", "--coherence-items", "0",
                 "--quiet", *options]) == 0
    config = json.loads((run / "config.json").read_text())
    assert list(config["model_config"]["modalities"]) == ["m0", "m1", "m2"]
    assert main(["evaluate", str(run), "--metrics", "coherence,latent", "--judges", str(judges), "--coherence-batch-size", "50",
                 "--latent-train-items", "60", "--quiet"]) == 0
    values = json.loads((run / "evaluation" / "metrics.json").read_text())["metrics"]
    coherence, latent = values["coherence"]["values"], values["latent"]["values"]
    assert {"m0->m1", "m1+m2->m0", "mean/1", "mean/2"} <= set(coherence) and len([k for k in coherence if "->" in k]) == 9
    assert {"m0", "m0+m1", "m0+m1+m2"} <= set(latent)
