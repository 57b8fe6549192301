"""Gradient SNR (Fig. 10): the statistic, the two estimators, the files and the CLI."""

import json
import math

import pytest
import torch
from torch import nn

from memevae.data import MultimodalDataset
from memevae.distributions import gaussian_log_prob
from memevae.evaluation.metrics.snr import gradient_snr, gradient_snr_at, network_groups, plot_snr, write_snr
from memevae.modalities import Modality
from memevae.models import MEME, MEMEConfig


pytestmark = pytest.mark.usefixtures("one_thread")


class GaussianLikelihood:
    def log_prob(self, x, decoded):
        return gaussian_log_prob(x, decoded, torch.ones_like(decoded))

    def mean(self, decoded):
        return decoded


class LinearEncoder(nn.Module):
    def __init__(self, dim, latent):
        super().__init__()
        self.linear = nn.Linear(dim, 2 * latent)

    def forward(self, x):
        return self.linear(x).chunk(2, dim=-1)


def toy_meme(estimator="stop-gradient", dims=(5, 4), latent=3):
    """MEME with vector modalities and linear networks: a full SNR study in well under a second."""
    model = MEME(MEMEConfig(latent_dim=latent, pseudo_samples=2, classifier_samples=3, estimator=estimator))
    model.modalities = nn.ModuleDict({
        name: Modality(name, "toy", (dim,), LinearEncoder(dim, latent), nn.Linear(latent, dim), GaussianLikelihood(), 1e-3)
        for name, dim in zip(("mnist", "textured"), dims)
    })
    model.pseudo_samples = nn.ParameterDict({name: nn.Parameter(torch.zeros(2, dim)) for name, dim in zip(("mnist", "textured"), dims)})
    return model


def toy_data(n=40, dims=(5, 4)):
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(n) % 10
    means = torch.randn(10, sum(dims), generator=g)
    x = means[labels] + 0.3 * torch.randn(n, sum(dims), generator=g)
    banks = {"mnist": x[:, :dims[0]], "textured": x[:, dims[0]:]}
    return MultimodalDataset(banks, {m: torch.arange(n) for m in banks}, labels, "toy")


def test_noisy_gradient_has_finite_snr_and_a_deterministic_one_infinite():
    w = nn.Parameter(torch.tensor([1.0, 2.0, 3.0]))
    unused = nn.Parameter(torch.zeros(2))
    torch.manual_seed(0)
    noisy = gradient_snr_at(lambda: (w * (1 + torch.randn(3))).sum(), {"w": [w]}, repeats=200)["w"]
    # g = 1 + eps, eps ~ N(0, 1): |E g| / std g ~= 1 for each entry
    assert noisy["mean"] == pytest.approx(1.0, abs=0.2) and noisy["norm"] == pytest.approx(1.0, abs=0.2)
    exact = gradient_snr_at(lambda: (w * 2).sum() + 0 * unused.sum(), {"w": [w], "unused": [unused]}, repeats=4)
    assert exact["w"]["mean"] == math.inf and exact["w"]["norm"] == math.inf
    assert exact["unused"]["entries"] == 0 and math.isnan(exact["unused"]["mean"])  # no signal, no noise: left out


def test_a_tiny_meme_with_frozen_noise_has_infinite_snr():
    torch.manual_seed(0)
    model = toy_meme()
    batch = toy_data().batch(torch.arange(8))

    def same_noise():
        torch.manual_seed(1)  # every repeat draws the same z: a deterministic gradient
        return model(batch).loss

    frozen = gradient_snr_at(same_noise, network_groups(model), repeats=3)
    assert all(v["mean"] == math.inf for v in frozen.values())
    fresh = gradient_snr_at(lambda: model(batch).loss, network_groups(model), repeats=5)
    assert all(0 < v["mean"] < math.inf for v in fresh.values())


def test_two_estimators_give_different_snr_from_the_same_start():
    result = gradient_snr(toy_meme, toy_data(), steps=6, every=3, repeats=6, batch_size=8, progress=False)
    stop, full = result["curves"]["stop-gradient"], result["curves"]["full"]
    assert stop["step"] == full["step"] == [0, 3, 6]
    assert result["groups"] == ["encoder:mnist", "encoder:textured", "decoder:mnist", "decoder:textured"]
    assert len(stop["loss"]) == 6
    # same initial parameters, batch and noise: only the estimator differs
    for group in ("encoder:mnist", "decoder:textured"):  # phi and varphi of mnist->textured, which w depends on
        assert stop["snr"][group]["mean"][0] != full["snr"][group]["mean"][0]
    assert set(result["summary"]) == {"stop-gradient", "full"}
    assert result["noise_floor"] == pytest.approx(math.sqrt(2 / (math.pi * 6)))


def test_identical_estimators_give_identical_curves():
    """Same seed, data and noise: a rerun of one estimator reproduces its curve exactly."""
    a = gradient_snr(toy_meme, toy_data(), steps=2, every=1, repeats=3, batch_size=8, estimators="full", progress=False)
    b = gradient_snr(toy_meme, toy_data(), steps=2, every=1, repeats=3, batch_size=8, estimators="full", progress=False)
    assert a["curves"] == b["curves"]


def test_a_trained_model_is_copied_not_changed():
    torch.manual_seed(0)
    model = toy_meme()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = gradient_snr(model, toy_data(), steps=2, every=2, repeats=3, batch_size=8, progress=False)
    assert result["model_config"]["estimator"] == "full"  # the last run's copy
    assert model.config.estimator == "stop-gradient"
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_json_and_png_are_written(tmp_path):
    result = gradient_snr(toy_meme, toy_data(), steps=2, every=1, repeats=3, batch_size=8, progress=False)
    result["curves"]["full"]["snr"]["encoder:mnist"]["mean"][0] = math.inf
    paths = write_snr(result, tmp_path / "out")
    saved = json.loads(paths["json"].read_text())
    assert saved["curves"]["full"]["snr"]["encoder:mnist"]["mean"][0] == "inf"
    assert saved["statistic"] == "mean" and saved["repeats"] == 3
    assert paths["png"].read_bytes()[:4] == b"\x89PNG"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["snr.json", "snr.png"]  # no temporaries left
    with pytest.raises(ValueError, match="statistic"):
        plot_snr(result, tmp_path / "x.png", statistic="max")


@pytest.mark.parametrize("kwargs,message", [
    ({"repeats": 1}, "repeats"),
    ({"steps": -1}, "steps"),
    ({"every": 0}, "every"),
    ({"estimators": ("dreg",)}, "estimator"),
])
def test_bad_arguments_are_one_line_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        gradient_snr(toy_meme, toy_data(), progress=False, **kwargs)


def test_non_meme_models_are_skipped():
    out = gradient_snr(nn.Linear(2, 2), toy_data(), progress=False)
    assert "skipped" in out and out["curves"] == {}


def test_cli_plumbing_writes_both_files(tmp_path, capsys, monkeypatch):
    """The CLI's options reach gradient_snr and both files are written (toy model and data for speed)."""
    from memevae.cli import main
    from memevae.evaluation.metrics import snr
    from memevae.runs import DataConfig

    seen = {}
    real = snr.gradient_snr

    def on_toy(config, data, **kwargs):
        seen.update(config=config, **kwargs)
        return real(toy_meme, toy_data(), **kwargs)

    monkeypatch.setattr(DataConfig, "load", lambda self, split: toy_data())
    monkeypatch.setattr(snr, "gradient_snr", on_toy)
    out = tmp_path / "snr"
    code = main(["snr", "--out", str(out), "--steps", "2", "--every", "1", "--repeats", "3", "--batch-size", "8",
                 "--latent-dim", "4", "--direction", "textured->mnist", "--lr", "1e-3", "--quiet"])
    assert code == 0
    assert seen["config"].latent_dim == 4 and seen["config"].direction == "textured->mnist"
    assert (seen["steps"], seen["every"], seen["repeats"], seen["batch_size"], seen["learning_rate"]) == (2, 1, 3, 8, 1e-3)
    saved = json.loads((out / "snr.json").read_text())
    assert saved["curves"]["stop-gradient"]["step"] == [0, 1, 2]
    assert (out / "snr.png").read_bytes()[:4] == b"\x89PNG"
    assert "stop-gradient: mean SNR" in capsys.readouterr().out


def test_cli_rejects_bad_settings_before_loading_data(tmp_path, capsys, monkeypatch):
    from memevae.cli import main
    from memevae.runs import DataConfig

    def no_load(self, split):
        raise AssertionError("data loaded before the arguments were checked")

    monkeypatch.setattr(DataConfig, "load", no_load)
    assert main(["snr", "--out", str(tmp_path), "--repeats", "1", "--quiet"]) == 1
    assert "repeats must be an integer >= 2" in capsys.readouterr().err


@pytest.mark.slow
def test_cli_on_the_shipped_sample_with_real_networks(tmp_path):
    from memevae.cli import main

    out = tmp_path / "snr"
    code = main(["snr", "--out", str(out), "--steps", "1", "--every", "1", "--repeats", "2", "--batch-size", "4",
                 "--latent-dim", "4", "--architecture", "paper", "--pseudo-samples", "2", "--quiet"])
    assert code == 0
    saved = json.loads((out / "snr.json").read_text())
    assert saved["dataset"] == "mnist-textured" and saved["curves"]["full"]["step"] == [0, 1]
    assert (out / "snr.png").exists()


def test_progress_shows_in_a_log(monkeypatch, capsys):
    """Before, stderr redirected to a file got tqdm's carriage-return frames (and no line a minute)."""
    import memevae.evaluation._common as common

    monkeypatch.setattr(common, "PROGRESS_EVERY_S", 0.0)  # a line at every update
    gradient_snr(toy_meme, toy_data(), steps=2, every=2, repeats=2, batch_size=8, estimators=("stop-gradient",))
    lines = capsys.readouterr().err.splitlines()
    # two steps and two measurements (steps 0 and 2); the running loss once a step was taken
    assert [line.split(",")[0] for line in lines] == [f"SNR stop-gradient: {k}/4 steps" for k in range(1, 5)]
    assert "loss" not in lines[0] and "loss" in lines[1]
