"""Known answers for coherence, latent accuracy, relatedness (W2) and t-SNE on fake models."""

import numpy as np
import pytest
import torch

from memevae.evaluation.metrics.coherence import cross_coherence
from memevae.evaluation.metrics.latent import latent_accuracy
from memevae.evaluation.metrics.relatedness import class_distance_matrix, relatedness, relatedness_data, w2_distance, w2_pairwise


def test_fake_data_is_consistent(fakes):
    data = fakes.pairs(50)
    batch = data.batch(torch.arange(50))
    for m in ("a", "b"):
        assert torch.equal(fakes.read(batch.data[m]), batch.labels)


# ---------------------------------------------------------------- W2 ----------------------------------------------


def test_w2_of_equal_gaussians_is_zero():
    loc, scale = torch.randn(7, 5), torch.rand(7, 5) + 0.1
    assert torch.equal(w2_distance(loc, scale, loc, scale), torch.zeros(7))
    assert torch.equal(w2_pairwise(loc, scale, loc, scale).diagonal(), torch.zeros(7))


def test_w2_of_shifted_gaussians_is_the_shift():
    loc, scale = torch.randn(5), torch.rand(5) + 0.1
    shift = torch.tensor([3.0, 0.0, -4.0, 0.0, 0.0])
    assert w2_distance(loc, scale, loc + shift, scale).item() == pytest.approx(5.0, abs=1e-6)


def test_w2_scale_term():
    loc = torch.zeros(4)
    assert w2_distance(loc, torch.ones(4), loc, torch.full((4,), 3.0)).item() == pytest.approx(4.0)  # sqrt(4 * 2^2)
    both = w2_distance(loc, torch.ones(4), loc + torch.tensor([6.0, 0, 0, 0]), torch.tensor([1.0, 1, 1, 9]))
    assert both.item() == pytest.approx(10.0)  # sqrt(6^2 + 8^2)


def test_w2_matches_the_general_gaussian_formula():
    """App. F: W2^2 = ||m1 - m2||^2 + Tr(S1 + S2 - 2 (S1^1/2 S2 S1^1/2)^1/2) (with m1 - m2, not the printed m1 + m2)."""
    from scipy.linalg import sqrtm

    g = torch.Generator().manual_seed(1)
    m1, m2 = torch.randn(6, generator=g, dtype=torch.float64), torch.randn(6, generator=g, dtype=torch.float64)
    s1, s2 = torch.rand(6, generator=g, dtype=torch.float64) + 0.2, torch.rand(6, generator=g, dtype=torch.float64) + 0.2
    c1, c2 = np.diag(s1.numpy() ** 2), np.diag(s2.numpy() ** 2)
    root = sqrtm(c1)
    general = np.sum((m1 - m2).numpy() ** 2) + np.trace(c1 + c2 - 2 * np.real(sqrtm(root @ c2 @ root)))
    assert w2_distance(m1, s1, m2, s2).item() ** 2 == pytest.approx(general, rel=1e-10)


def test_w2_pairwise_equals_every_pair():
    g = torch.Generator().manual_seed(2)
    l1, s1 = torch.randn(6, 3, generator=g), torch.rand(6, 3, generator=g)
    l2, s2 = torch.randn(4, 3, generator=g), torch.rand(4, 3, generator=g)
    expected = torch.stack([torch.stack([w2_distance(l1[i], s1[i], l2[j], s2[j]) for j in range(4)]) for i in range(6)])
    assert torch.allclose(w2_pairwise(l1, s1, l2, s2), expected, atol=1e-6)


def test_class_distance_matrix_is_the_mean_over_class_pairs():
    g = torch.Generator().manual_seed(3)
    ls, ss, ys = torch.randn(30, 4, generator=g), torch.rand(30, 4, generator=g), torch.arange(30) % 3
    lt, st, yt = torch.randn(20, 4, generator=g), torch.rand(20, 4, generator=g), torch.arange(20) % 3
    k = class_distance_matrix(ls, ss, ys, lt, st, yt, [0, 1, 2], chunk=7)
    d = w2_pairwise(ls, ss, lt, st)
    for a in range(3):
        for b in range(3):
            assert k[a, b] == pytest.approx(d[ys == a][:, yt == b].mean().item(), rel=1e-5)


def test_relatedness_of_a_digit_encoder(fakes, tmp_path):
    """Both modalities encode a digit identically: paired and same-digit distances are 0, other digits 5 * sqrt(2)."""
    data = fakes.pairs(300)
    result = relatedness_data(fakes.Model(), data, batch_size=64, progress=False)
    assert len(result.paired) == 300 and len(result.unpaired) == 4 * 64 * 63 + 44 * 43
    metrics = result.metrics()
    assert metrics["paired_mean"] == 0.0
    assert metrics["unpaired_same_digit_mean"] == 0.0
    assert metrics["unpaired_other_digit_mean"] == pytest.approx(5 * np.sqrt(2), rel=1e-6)
    assert metrics["class_diagonal_mean"] == 0.0
    assert metrics["class_diagonal_is_row_min"] == 1.0
    assert metrics["paired_closer_auc"] > 0.9
    out = relatedness(fakes.Model(), data, progress=False, figures_dir=tmp_path, title="fake")
    assert out["paired_mean"] == 0.0
    assert (tmp_path / "relatedness-histogram.png").stat().st_size > 10_000
    assert (tmp_path / "relatedness-classes.png").stat().st_size > 10_000


# ---------------------------------------------------------------- coherence ---------------------------------------


def test_coherence_of_a_perfect_translator_is_one(fakes):
    model = fakes.Model("perfect")
    result = cross_coherence(model, fakes.pairs(300), {"a": fakes.Judge(), "b": fakes.Judge()}, batch_size=64, progress=False)
    assert result == {"a->b": 1.0, "b->a": 1.0, "items": 300.0}


def test_coherence_of_a_random_translator_is_chance(fakes):
    model = fakes.Model("random")
    result = cross_coherence(model, fakes.pairs(3000), {"a": fakes.Judge(), "b": fakes.Judge()}, progress=False)
    assert result["a->b"] == pytest.approx(0.1, abs=0.03)
    assert result["b->a"] == pytest.approx(0.1, abs=0.03)


def test_coherence_uses_eval_mode_and_restores_it(fakes):
    model = fakes.Model().train()
    cross_coherence(model, fakes.pairs(20), {"a": fakes.Judge(), "b": fakes.Judge()}, progress=False)
    assert model.calls and all(training is False for _, _, training in model.calls)
    assert model.training


def test_coherence_is_reproducible_given_a_seed(fakes):
    """Posterior samples come from the seed, not the global RNG: noisy encoders give equal results per seed."""
    model = fakes.Model("perfect", scale=3.0)
    judges = {"a": fakes.Judge(), "b": fakes.Judge()}
    data = fakes.pairs(200)
    first = cross_coherence(model, data, judges, seed=5, progress=False)
    torch.manual_seed(123)
    assert cross_coherence(model, data, judges, seed=5, progress=False) == first
    assert 0.3 < first["a->b"] < 0.95  # sampling z matters with scale 3 against a margin of 5


def test_coherence_needs_a_judge_per_target(fakes):
    with pytest.raises(ValueError, match="no judge for b"):
        cross_coherence(fakes.Model(), fakes.pairs(20), {"a": fakes.Judge()}, progress=False)


# ---------------------------------------------------------------- latent accuracy ---------------------------------


def test_latent_accuracy_of_separable_codes_is_one(fakes):
    model = fakes.Model(noise=0.5)
    result = latent_accuracy(model, fakes.pairs(400, seed=1), fakes.pairs(200, seed=2), train_items=300, progress=False)
    assert result["a"] == pytest.approx(1.0) and result["b"] == pytest.approx(1.0)
    assert result["train_items/a"] == 300 and result["test_items/b"] == 200


def test_latent_accuracy_of_uninformative_codes_is_chance(fakes):
    class Constant(type(fakes.Model())):
        def encode(self, modality, x):
            q = super().encode(modality, x)
            q.loc = torch.randn(q.loc.shape, generator=self.generator)
            return q

    result = latent_accuracy(Constant(), fakes.pairs(1000, seed=1), fakes.pairs(1000, seed=2), progress=False)
    assert result["a"] < 0.2 and result["b"] < 0.2


# ---------------------------------------------------------------- t-SNE -------------------------------------------


def test_tsne_neighbours_and_figure(fakes, tmp_path):
    from memevae.evaluation.metrics.tsne import tsne

    out = tsne(fakes.Model(noise=0.3), fakes.pairs(200), points=200, progress=False, figures_dir=tmp_path, title="fake")
    assert out["points"] == 200
    assert out["knn_same_digit"] > 0.95  # codes cluster by digit
    assert 0.3 < out["knn_other_modality"] < 0.7  # both modalities share each digit's cluster
    assert (tmp_path / "tsne.png").stat().st_size > 10_000


def test_coherence_samples_each_posterior_in_its_own_family():
    """MMVAE with App. I's Laplace posterior: (z - loc) / scale must have the Laplace(0, 1) std
    sqrt(2) = 1.41, not the 1.00 of a Gaussian draw (a defect of early memevae 0.1.0)."""
    from memevae.data import MultimodalDataset
    from memevae.evaluation.metrics.coherence import cross_coherence
    from memevae.models import MMVAE, MMVAEConfig

    torch.manual_seed(0)
    model = MMVAE(MMVAEConfig(latent_dim=16, posterior="laplace"))
    n = 64
    banks = {"mnist": torch.randint(0, 256, (n, 1, 28, 28), dtype=torch.uint8),
             "textured": torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8)}
    data = MultimodalDataset(banks, {m: torch.arange(n) for m in banks}, torch.arange(n) % 10, "toy")
    standardised, posteriors = [], []
    encode, decode = model.encode, model.decode

    def recording_encode(source, x):
        posteriors.append(encode(source, x))
        return posteriors[-1]

    def recording_decode(target, z):  # whatever draws z, it must be from the posterior's own family
        q = posteriors[-1]
        standardised.append(((z - q.loc) / q.scale).flatten())
        return decode(target, z)

    model.encode, model.decode = recording_encode, recording_decode
    judges = {m: (lambda x: torch.zeros(len(x), 10)) for m in banks}
    cross_coherence(model, data, judges, progress=False)
    std = torch.cat(standardised).std().item()
    assert abs(std - 2 ** 0.5) < 0.08, std


# ---------------------------------------------------------------- figures -----------------------------------------


def test_translation_to_text_is_a_table_of_inputs_beside_their_generations(fakes, tmp_path, monkeypatch):
    """Fig. 4/18 layout: with a text side, one row per example (input left, generations right), long
    captions wrapped to their column."""
    from memevae.evaluation import figures

    seen = {}
    monkeypatch.setattr(figures, "save", lambda fig, path, dpi: seen.update(fig=fig))
    model = fakes.Model()
    x = fakes.images(torch.arange(4), (1, 4, 4)).float() / 255
    words = lambda modality, x: [("a long caption " * 8).strip()] * len(x) if modality == "b" else list(x)  # noqa: E731
    figures.save_translation_grid(model, x, "a", "b", tmp_path / "t.png", samples=2, show=words)
    axes = seen["fig"].axes
    assert len(axes) == 4 * 2  # four examples, input and output columns
    texts = [t.get_text() for axis in axes[1::2] for t in axis.texts]
    assert len(texts) == 4 and all(t.startswith("1. ") and "\n2. " in t for t in texts)
    assert all(len(line) <= 118 for t in texts for line in t.splitlines())  # wrapped
    assert len(axes[0].images) == 1  # the input picture beside them
