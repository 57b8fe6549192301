"""A run is rebuilt from the model config it recorded, not from its options over today's defaults."""

import dataclasses
import json
import shutil

import pytest

from memevae import DataConfig, RunError, TrainConfig, load_run, resume, train
from memevae.models import MEME, MEMEConfig
from memevae.version import __version__


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """A one-epoch run with MEME's default number of pseudo-samples."""
    path = tmp_path_factory.mktemp("recorded") / "run"
    training = TrainConfig(epochs=1, batch_size=64, test_samples=64, seed=5, coherence_items=0)
    train(path, data=DataConfig(limit=192, seed=5), training=training, model_options={"latent_dim": 8, "classifier_samples": 2},
          progress=False)
    return path


@pytest.fixture
def changed_default(monkeypatch):
    """MEME as a later version might define it: another default number of pseudo-samples."""
    later = dataclasses.make_dataclass("MEMEConfig", [("pseudo_samples", int, dataclasses.field(default=16))], bases=(MEMEConfig,))
    monkeypatch.setattr(MEME, "config_class", later)
    return later


def test_load_run_and_resume_build_the_recorded_model_whatever_the_defaults(recorded, changed_default, tmp_path):
    pseudo = json.loads((recorded / "config.json").read_text())["model_config"]["pseudo_samples"]
    assert pseudo == MEMEConfig().pseudo_samples != changed_default().pseudo_samples
    assert load_run(recorded).model.config.pseudo_samples == pseudo
    copy = shutil.copytree(recorded, tmp_path / "copy")
    run = resume(copy, epochs=2, progress=False)
    assert len(run.history) == 2 and run.model.config.pseudo_samples == pseudo


def test_a_recorded_field_this_version_does_not_know_is_refused_in_one_line(recorded, tmp_path):
    copy = shutil.copytree(recorded, tmp_path / "copy")
    config = json.loads((copy / "config.json").read_text())
    config["model_config"]["future_option"] = 1
    (copy / "config.json").write_text(json.dumps(config))
    with pytest.raises(RunError) as error:
        load_run(copy)
    assert str(error.value) == (f"{copy} records model_config field(s) future_option that memevae {__version__} does not know; "
                                f"use the memevae version that wrote it ({config['memevae_version']})")
