"""Table 6: BALD mutual information from predictive samples, and the GP-last-layer classifier (gp_classifier.py)."""

import math

import pytest
import torch

from memevae.data.dataset import as_float_images
from memevae.evaluation.metrics.mutual_information import bald_mutual_information


pytestmark = pytest.mark.usefixtures("one_thread")


def test_agreeing_samples_have_zero_mi():
    probs = torch.softmax(torch.randn(1, 4, 10), -1).expand(7, 4, 10)
    out = bald_mutual_information(probs)
    assert torch.allclose(out["mi"], torch.zeros(4, dtype=torch.float64), atol=1e-12)
    assert torch.allclose(out["predictive_entropy"], out["expected_entropy"])


def test_confident_disagreeing_samples_have_mi_log_classes():
    probs = torch.eye(10).unsqueeze(1)  # 10 samples, each certain of a different class
    out = bald_mutual_information(probs)
    assert out["mi"].item() == pytest.approx(math.log(10))
    assert out["expected_entropy"].item() == 0.0  # 0 log 0 = 0, no NaN


def test_two_way_split_and_uniform_cases():
    # half the samples certain of class 0, half of class 1: MI = log 2
    probs = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]).repeat(3, 1).unsqueeze(1)
    assert bald_mutual_information(probs)["mi"].item() == pytest.approx(math.log(2))
    # every sample uniform: maximal predictive entropy, but no disagreement
    uniform = bald_mutual_information(torch.full((5, 2, 4), 0.25))
    assert torch.allclose(uniform["predictive_entropy"], torch.full((2,), math.log(4), dtype=torch.float64))
    assert torch.allclose(uniform["mi"], torch.zeros(2, dtype=torch.float64))


def test_mi_matches_a_direct_computation():
    g = torch.Generator().manual_seed(0)
    probs = torch.softmax(3 * torch.randn(20, 6, 10, generator=g), -1).double()
    mean = probs.mean(0)
    expected = -(mean * mean.log()).sum(-1) + (probs * probs.log()).sum(-1).mean(0)
    assert torch.allclose(bald_mutual_information(probs)["mi"], expected)
    assert (bald_mutual_information(probs)["mi"] <= math.log(10) + 1e-9).all()


@pytest.mark.parametrize("probs,message", [
    (torch.full((3, 10), 0.1), "samples, items, classes"),
    (torch.full((3, 2, 10), 0.2), "summing to 1"),
    (torch.tensor([[[1.5, -0.5]]]), "non-negative"),
])
def test_bad_probabilities_are_one_line_errors(probs, message):
    with pytest.raises(ValueError, match=message):
        bald_mutual_information(probs)


# -- the GP classifier (gpytorch) -------------------------------------------------------------

@pytest.fixture(scope="module")
def sample_mnist():
    from memevae.data import load_pairs

    train, test = load_pairs("mnist-textured", "train"), load_pairs("mnist-textured", "test")
    (x, y), (xt, yt) = train.examples("mnist"), test.examples("mnist")
    return (as_float_images(x), y), (as_float_images(xt), yt), test


@pytest.fixture(scope="module")
def tiny_classifier(sample_mnist):
    pytest.importorskip("gpytorch")
    from memevae.evaluation.gp_classifier import train_gp_classifier

    (x, y), (xt, yt), _ = sample_mnist
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return train_gp_classifier(x[:1000], y[:1000], epochs=3, gp_epochs=10, gp_learning_rate=0.05,
                                   test_images=xt[:300], test_labels=yt[:300], progress=False)
    finally:
        torch.set_num_threads(before)


def test_tiny_gp_classifier_beats_chance(tiny_classifier, sample_mnist):
    from memevae.evaluation.metrics.mutual_information import mutual_information

    (_, _), (xt, yt), _ = sample_mnist
    assert tiny_classifier.info["test_accuracy"] > 0.5  # chance: 0.1
    real = mutual_information(xt[:300], tiny_classifier, labels=yt[:300], samples=50)
    assert real["accuracy"] > 0.5 and 0 <= real["mi"] < math.log(10)
    assert real["items"] == 300 and len(real["per_item"]) == 300
    assert real["mi"] == pytest.approx(real["predictive_entropy"] - real["expected_entropy"], abs=1e-6)
    # the GP's samples disagree more on noise than on real digits of the class it learnt
    noise = mutual_information(torch.rand(300, 1, 28, 28, generator=torch.Generator().manual_seed(0)), tiny_classifier, samples=50)
    assert noise["mi"] > real["mi"]
    samples = tiny_classifier.predictive_samples(xt[:4], samples=6)
    assert samples.shape == (6, 4, 10) and torch.allclose(samples.sum(-1), torch.ones(6, 4))


def test_classifier_round_trips_through_a_file(tiny_classifier, sample_mnist, tmp_path):
    from memevae.evaluation.gp_classifier import load_gp_classifier, save_gp_classifier

    (_, _), (xt, _), _ = sample_mnist
    path = save_gp_classifier(tiny_classifier, tmp_path / "gp-mnist.pt")
    loaded = load_gp_classifier(path)
    g1, g2 = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    assert torch.allclose(loaded.predictive_samples(xt[:5], 4, g1), tiny_classifier.predictive_samples(xt[:5], 4, g2))
    assert loaded.info == tiny_classifier.info
    with pytest.raises(ValueError, match="shape"):
        loaded.predictive_samples(torch.rand(2, 3, 32, 32))


def test_generative_quality_of_a_tiny_meme(tiny_classifier, sample_mnist):
    """The model form (what `memevae evaluate` calls): cross, self and real MI per judged modality."""
    from memevae.evaluation.metrics.mutual_information import mutual_information
    from memevae.models import MEME, MEMEConfig

    _, _, test = sample_mnist
    torch.manual_seed(0)
    model = MEME(MEMEConfig(latent_dim=4, pseudo_samples=2, architecture="paper"))
    model.train()
    # judge only mnist, as the tiny classifier knows only it: a one-modality view of the model's output
    out = mutual_information(model, test, classifiers={"mnist": tiny_classifier, "textured": _TexturedStub()},
                             samples=8, max_items=20, progress=False)
    assert model.training  # mode restored
    assert set(out["generated"]) == {"mnist->mnist", "textured->mnist", "mnist->textured", "textured->textured"}
    for entry in (out["generated"]["textured->mnist"], out["real"]["mnist"]):
        assert entry["items"] == 20 and 0 <= entry["mi"] <= math.log(10) and "accuracy" in entry
    assert out["classifiers"]["mnist"]["source"] == "given"
    # an untrained model's "digits" are not digits: the classifier is less sure of them than of real ones
    assert out["generated"]["textured->mnist"]["accuracy"] <= out["real"]["mnist"]["accuracy"]


class _TexturedStub:
    """A classifier of textured images that always agrees with itself (MI 0), to skip training one."""

    def predictive_samples(self, x, samples=100, generator=None):
        return torch.full((samples, len(x), 10), 0.1)

    def summary(self):
        return {"stub": True}

    def parameters(self):
        yield torch.zeros(1)


def test_model_form_needs_a_way_to_get_classifiers(sample_mnist):
    pytest.importorskip("gpytorch")
    from memevae.evaluation.metrics.mutual_information import mutual_information
    from memevae.models import MEME, MEMEConfig

    _, _, test = sample_mnist
    model = MEME(MEMEConfig(latent_dim=4, pseudo_samples=2, architecture="paper"))
    with pytest.raises(ValueError, match="train_data"):
        mutual_information(model, test, max_items=4, progress=False)


def test_image_form_rejects_bad_input(tiny_classifier):
    from memevae.evaluation.metrics.mutual_information import mutual_information

    with pytest.raises(ValueError, match="GPClassifier"):
        mutual_information(torch.rand(2, 1, 28, 28), "not a classifier")
    with pytest.raises(ValueError, match="labels"):
        mutual_information(torch.rand(2, 1, 28, 28), tiny_classifier, labels=torch.zeros(3))
    with pytest.raises(ValueError, match="samples"):
        mutual_information(torch.rand(2, 1, 28, 28), tiny_classifier, samples=1)


def test_missing_gpytorch_is_a_one_line_error(monkeypatch):
    import builtins

    from memevae.evaluation import gp_classifier

    real_import = builtins.__import__

    def no_gpytorch(name, *args, **kwargs):
        if name == "gpytorch" or name.startswith("gpytorch."):
            raise ImportError("No module named 'gpytorch'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_gpytorch)
    with pytest.raises(ImportError, match=r'pip install "memevae\[eval\]"') as info:
        gp_classifier.train_gp_classifier(torch.rand(4, 1, 28, 28), torch.tensor([0, 1, 2, 3]))
    assert isinstance(info.value, ValueError)  # so the CLI reports it in one line
