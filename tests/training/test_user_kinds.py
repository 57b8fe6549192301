"""Modality kinds of the user's own module: registered by "module:attribute" (or an entry point),
checked against the latent size, recorded by a run and imported again when it is loaded."""

import importlib.metadata
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import memevae
from memevae import DataConfig, TrainConfig, modalities
from memevae.modalities import build_modality, modality_kinds, register

HERE = Path(__file__).parent
SRC = Path(memevae.__file__).parents[1]
OPTIONS = {"latent_dim": 8, "pseudo_samples": 8, "classifier_samples": 2,
           "modalities": {"mnist": "tiny-linear", "textured": "svhn-conv"}}


@pytest.fixture(autouse=True)
def registry(monkeypatch):
    """A registry of user kinds of this test alone; this folder importable."""
    monkeypatch.setattr(modalities, "_registered", {})
    monkeypatch.syspath_prepend(str(HERE))
    modalities._register_entry_points.cache_clear()
    yield
    modalities._register_entry_points.cache_clear()


def fresh_process(code: str, *path: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(map(str, (SRC, *path)))}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=HERE.parent.parent)


def test_a_registered_kind_is_trained_recorded_and_loaded_in_a_fresh_process(tmp_path):
    assert register("user_modality:TINY").name == "tiny-linear" and "tiny-linear" in modality_kinds()
    path = tmp_path / "run"
    training = TrainConfig(epochs=1, batch_size=64, test_samples=64, seed=5, coherence_items=0)
    memevae.train(path, data=DataConfig(limit=192, seed=5), training=training, model_options=OPTIONS, progress=False)
    config = json.loads((path / "config.json").read_text())
    assert config["modality_sources"] == {"tiny-linear": "user_modality:TINY"}

    load = f"import memevae; run = memevae.load_run({str(path)!r}); print(run.model.modality('mnist').kind, len(run.history))"
    loaded = fresh_process(load, HERE)
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stdout.split() == ["tiny-linear", "1"]

    refused = fresh_process(f"import memevae\ntry:\n    {load}\nexcept memevae.RunError as e:\n    print(e)")
    assert refused.returncode == 0, refused.stderr
    assert refused.stdout.strip() == (f"{path} uses the modality kind 'tiny-linear': cannot import the modality kind "
                                      f"user_modality:TINY (ModuleNotFoundError: No module named 'user_modality'); make "
                                      f"user_modality importable (install it or add it to PYTHONPATH)")


def test_a_kind_of_an_installed_packages_entry_point_is_found(monkeypatch):
    point = importlib.metadata.EntryPoint("tiny-linear", "user_modality:TINY", modalities.ENTRY_POINTS)
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda group: [point] if group == modalities.ENTRY_POINTS else [])
    assert modality_kinds()["tiny-linear"].name == "tiny-linear"
    assert modalities.kind_source("tiny-linear") == "user_modality:TINY" and modalities.kind_source("mnist-mlp") is None


def test_user_networks_are_checked_against_the_latent_size():
    register("user_modality:WRONG")
    with pytest.raises(ValueError) as error:
        build_modality("tiny-wrong", latent_dim=8)
    assert str(error.value) == ("modality kind 'tiny-wrong' (user_modality:WRONG): the encoder must map a batch (2, 1, 28, 28) "
                                "to (loc, raw_scale) ((2, 8), (2, 8)); it returned ((2, 9), (2, 9))")


@pytest.mark.parametrize("source,message", [
    ("user_modality", "a modality kind is registered by 'module:attribute', got 'user_modality'"),
    ("user_modality:NOT_A_KIND", "user_modality:NOT_A_KIND is a str, not a memevae.modalities.ModalityKind"),
    ("user_modality:SAME_NAME", "user_modality:SAME_NAME declares the modality kind 'mnist-mlp', which memevae has; give it another name"),
    ("user_modality:MISSING", "cannot import the modality kind user_modality:MISSING (AttributeError: module 'user_modality' has no "
                              "attribute 'MISSING'); make user_modality importable (install it or add it to PYTHONPATH)"),
])
def test_a_source_that_is_not_a_new_kind_is_refused_in_one_line(source, message):
    with pytest.raises(ValueError) as error:
        register(source)
    assert str(error.value) == message
    assert set(modality_kinds()) == set(modalities.builtin_kinds())


def test_memevae_train_registers_a_kind_given_by_its_import_path(tmp_path, capsys):
    from memevae.cli import main

    path = tmp_path / "run"
    args = ["train", "--out", str(path), "--limit", "128", "--epochs", "1", "--batch-size", "64",
            "--coherence-items", "0", "--latent-dim", "8", "--pseudo-samples", "8", "--classifier-samples", "2", "--quiet"]
    assert main([*args, "--modality-kind", "mnist=user_modality:TINY"]) == 0
    config = json.loads((path / "config.json").read_text())
    assert config["model_config"]["modalities"] == {"mnist": "tiny-linear", "textured": "svhn-conv"}
    assert config["modality_sources"] == {"tiny-linear": "user_modality:TINY"}
    for given, message in (("mnist", "--modality-kind takes MODALITY=KIND (e.g. mnist=my_networks:SMALL), got 'mnist'"),
                           ("svhn=mnist-mlp", "--modality-kind svhn=mnist-mlp: mnist-textured has no modality 'svhn'; its "
                                              "modalities are mnist, textured"),
                           ("mnist=user_modality:NOT_A_KIND", "user_modality:NOT_A_KIND is a str, not a memevae.modalities.ModalityKind")):
        capsys.readouterr()
        assert main([*args[:2], str(tmp_path / "other"), *args[3:], "--modality-kind", given]) == 1
        assert capsys.readouterr().err == f"memevae: error: {message}\n"
    assert main(["train", "--out", str(path), "--resume", "--modality-kind", "mnist=mnist-mlp"]) == 1
    assert "--modality-kind cannot be given" in capsys.readouterr().err
