"""CCA coherence (paper App. G, Table 5) on constructed data whose answer is known."""

import inspect
import json
import math
import sys

import numpy as np
import pytest
import scipy.linalg

from memevae.evaluation.cca import (GENSIM_MISSING, CCACoherence, CCAProjection, SentenceEmbedder, WordVectors,
                                    captions_checksum, fit_word_vectors)


def rotation(rng, d):
    q, r = np.linalg.qr(rng.normal(size=(d, d)))
    return q * np.sign(np.diag(r))


def raw_cosine(x, y):
    return (x * y).sum(1) / (np.linalg.norm(x, axis=1) * np.linalg.norm(y, axis=1))


def planted(rng, n, rho, mixing_x, mixing_y, offset_x=0.0, offset_y=0.0, shared=None):
    """x and y whose only dependence is one shared latent of correlation rho, mixed linearly."""
    z = rng.normal(size=n) if shared is None else shared
    x = np.column_stack([z, rng.normal(size=(n, mixing_x.shape[0] - 1))]) @ mixing_x + offset_x
    y_first = rho * z + math.sqrt(1 - rho ** 2) * rng.normal(size=n)
    y = np.column_stack([y_first, rng.normal(size=(n, mixing_y.shape[0] - 1))]) @ mixing_y + offset_y
    return x, y


# ------------------------------------------------------------------ CCA projection


def test_identical_views_correlate_fully_and_raw_cosine_would_not():
    rng = np.random.default_rng(0)
    scales = np.array([5.0, 3.0, 2.0, 1.0, 0.5, 0.2])
    offset_x, offset_y = 20 * rng.normal(size=6), 20 * rng.normal(size=6)
    turn = rotation(rng, 6)
    x_train, x_test = rng.normal(size=(2000, 6)) * scales, rng.normal(size=(500, 6)) * scales
    cca = CCAProjection().fit(x_train + offset_x, x_train @ turn + offset_y, components=6)
    assert np.allclose(cca.correlations, 1.0)
    x, y = x_test + offset_x, x_test @ turn + offset_y
    scores = cca.correlation(x, y)
    assert scores.shape == (500,) and scores.min() > 0.99
    # the naive alternatives fail: cosine of the raw vectors, or of projections without centring
    assert raw_cosine(x, y).mean() < 0.9
    assert raw_cosine(x @ cca.weights_x, y @ cca.weights_y).mean() < 0.9


def test_views_of_different_sizes_and_rank_deficient_view():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(1000, 4))
    y = x @ rng.normal(size=(4, 9))  # 9-d but rank 4: five directions without variance
    cca = CCAProjection().fit(x, y, components=4)
    assert cca.weights_x.shape == (4, 4) and cca.weights_y.shape == (9, 4)
    assert np.allclose(cca.correlations, 1.0)
    assert cca.correlation(x[:50], y[:50]).min() > 0.99
    with pytest.raises(ValueError, match="between 1 and 4"):
        CCAProjection().fit(x, y, components=5)


def test_independent_views_score_near_zero():
    rng = np.random.default_rng(2)
    cca = CCAProjection().fit(rng.normal(size=(3000, 8)), rng.normal(size=(3000, 5)) + 3, components=5)
    assert cca.correlations.max() < 0.15
    scores = cca.correlation(rng.normal(size=(4000, 8)), rng.normal(size=(4000, 5)) + 3)
    assert np.all(np.abs(scores) <= 1 + 1e-12)
    assert abs(scores.mean()) < 0.05


def test_planted_component_of_known_correlation_is_recovered():
    rng = np.random.default_rng(3)
    rho = 0.6
    mixing_x, mixing_y = rng.normal(size=(4, 4)), rng.normal(size=(3, 5))
    cca = CCAProjection().fit(*planted(rng, 20000, rho, mixing_x, mixing_y, 4.0, -2.0), components=3)
    assert cca.correlations[0] == pytest.approx(rho, abs=0.02)
    assert cca.correlations[1:].max() < 0.05
    # with one component the per-pair cosine is sign(px * py); for a bivariate normal pair of
    # correlation rho its mean is (2 / pi) arcsin(rho)
    one = CCAProjection().fit(*planted(rng, 20000, rho, mixing_x, mixing_y, 4.0, -2.0), components=1)
    scores = one.correlation(*planted(rng, 20000, rho, mixing_x, mixing_y, 4.0, -2.0))
    assert set(np.round(np.unique(scores), 9)) <= {-1.0, 1.0}
    assert scores.mean() == pytest.approx(2 / math.pi * math.asin(rho), abs=0.025)


def test_centres_with_training_means():
    """Test pairs all drawn where the shared latent is about +2: centred with the TRAINING means
    both projections are positive, so the cosine is ~1; centring with the test set's own means
    (or not centring) loses that."""
    rng = np.random.default_rng(4)
    rho = 0.95
    mixing_x, mixing_y = rng.normal(size=(3, 3)), rng.normal(size=(2, 4))
    cca = CCAProjection().fit(*planted(rng, 5000, rho, mixing_x, mixing_y, 30.0, -50.0), components=1)
    x, y = planted(rng, 2000, rho, mixing_x, mixing_y, 30.0, -50.0, shared=2 + 0.1 * rng.normal(size=2000))
    score = cca.correlation(x, y).mean()
    assert score > 0.9
    batch_centred = np.sign(((x - x.mean(0)) @ cca.weights_x) * ((y - y.mean(0)) @ cca.weights_y)).mean()
    assert batch_centred < 0.5
    # one pair alone is scored the same as inside the set (a batch-centred version would give 0)
    assert cca.correlation(x[:1], y[:1])[0] == pytest.approx(cca.correlation(x, y)[0])


def test_unit_norm_scaling_is_the_generalised_eigenproblem_solution():
    """MMVAE solves [[0, Cxy], [Cyx, 0]] v = rho blockdiag(Cxx, Cyy) v and keeps unit-length v."""
    rng = np.random.default_rng(5)
    n, dx, dy, k = 400, 4, 3, 3
    x = rng.normal(size=(n, dx)) @ rng.normal(size=(dx, dx))
    y = np.column_stack([x[:, 0] + rng.normal(size=n), x[:, 1] - x[:, 2] + 2 * rng.normal(size=n),
                         rng.normal(size=n)]) @ rng.normal(size=(dy, dy))
    xc, yc = x - x.mean(0), y - y.mean(0)
    cov = np.cov(np.hstack([xc, yc]).T)
    off_diagonal, block_diagonal = np.zeros_like(cov), np.zeros_like(cov)
    off_diagonal[:dx, dx:], off_diagonal[dx:, :dx] = cov[:dx, dx:], cov[dx:, :dx]
    block_diagonal[:dx, :dx], block_diagonal[dx:, dx:] = cov[:dx, :dx], cov[dx:, dx:]
    values, vectors = scipy.linalg.eig(off_diagonal, block_diagonal)
    order = np.argsort(values.real)[::-1][:k]
    expected = vectors[:, order].real
    expected /= np.linalg.norm(expected, axis=0)

    cca = CCAProjection().fit(x, y, components=k)
    assert np.allclose(cca.correlations, values.real[order])
    got = np.vstack([cca.weights_x, cca.weights_y])
    signs = np.sign((got * expected).sum(0))
    assert np.allclose(got, expected * signs, atol=1e-8)

    unit_variance = CCAProjection(direction_scaling="unit_variance").fit(x, y, components=k)
    px, py = unit_variance.transform(x, y)
    assert np.allclose(np.cov(px.T), np.eye(k), atol=1e-8) and np.allclose(np.cov(py.T), np.eye(k), atol=1e-8)
    assert np.allclose(np.diag(np.cov(px.T, py.T)[:k, k:]), cca.correlations)


def _correlated_views(rng, n=3000):
    """x (5-d) and y (4-d) sharing two latents, every direction of clear variance."""
    shared = rng.normal(size=(n, 2))
    x = np.column_stack([shared, rng.normal(size=(n, 3))]) @ rng.normal(size=(5, 5))
    y = np.column_stack([shared + rng.normal(size=(n, 2)), rng.normal(size=(n, 2))]) @ rng.normal(size=(4, 4))
    return x, y


def test_mmvae_arithmetic_agrees_with_whitening_on_well_conditioned_covariances():
    x, y = _correlated_views(np.random.default_rng(6))
    whitened = CCAProjection().fit(x, y, components=3)
    mmvae = CCAProjection(arithmetic="mmvae").fit(x, y, components=3)
    assert np.allclose(mmvae.correlations, whitened.correlations, atol=1e-9)
    assert np.allclose(mmvae.weights_x, whitened.weights_x, atol=1e-8)
    assert np.allclose(mmvae.weights_y, whitened.weights_y, atol=1e-8)
    assert np.allclose(mmvae.correlation(x[:200], y[:200]), whitened.correlation(x[:200], y[:200]), atol=1e-8)


def test_mmvae_arithmetic_differs_where_a_covariance_has_eigenvalues_near_its_eps():
    """A y direction of variance ~1e-13 (as SIF sentence vectors have once their principal component
    is removed): MMVAE's eps on the diagonal of A gives it an eigenvalue near 1 that outranks the
    genuine correlations; whitening drops it."""
    rng = np.random.default_rng(7)
    x, y = _correlated_views(rng)
    y = np.column_stack([y, 3e-7 * rng.normal(size=len(y))])
    assert np.linalg.eigvalsh(np.cov(y.T)).min() < 1e-12
    whitened = CCAProjection().fit(x, y, components=3)
    mmvae = CCAProjection(arithmetic="mmvae").fit(x, y, components=3)
    assert whitened.correlations.max() < 0.9 and mmvae.correlations[0] > 0.9
    x_test, y_test = x[:500], y[:500]
    assert abs(mmvae.correlation(x_test, y_test).mean() - whitened.correlation(x_test, y_test).mean()) > 0.05
    with pytest.raises(ValueError, match="use direction_scaling='unit_norm'"):
        CCAProjection(arithmetic="mmvae", direction_scaling="unit_variance")


def test_the_metric_offers_the_arithmetic_as_a_typed_option(monkeypatch):
    import torch

    from memevae.evaluation.metric import metrics
    from memevae.evaluation.metrics import cca_coherence

    metric = metrics()["cca-coherence"]
    assert metric.options().arithmetic == "whitened"
    with pytest.raises(ValueError, match="whitened.*mmvae"):
        metric.options({"arithmetic": "eigen"})
    fitted = []
    monkeypatch.setattr(CCACoherence, "fit", classmethod(lambda cls, *a, **k: fitted.append(k["arithmetic"])))
    monkeypatch.setattr(cca_coherence, "paired_rows", lambda data: np.arange(2))

    class Train:  # two training pairs, enough for the measure's inputs
        vocabularies = {"caption": type("V", (), {"words": ["a", "<eos>"], "eos": 1})()}
        banks = {"caption": torch.tensor([[0, 1], [0, 1]]), "image": torch.zeros(2, 3)}
        index = {"caption": np.arange(2), "image": np.arange(2)}

    cca_coherence.fitted_measure(Train(), "image", "caption", metric.options({"arithmetic": "mmvae"}), None)
    assert fitted == ["mmvae"]


# ------------------------------------------------------------------ sentence vectors

TOY_VECTORS = WordVectors(["the", "red", "bird"], [[1.0, 1.0, 0.0], [2.0, 0.0, 0.0], [0.0, 0.0, 3.0]])
TOY_TRAIN = [["the", "red", "bird"], ["the", "bird", "<eos>"], ["the", "the", "red", "<eos>", "<pad>"]]


def test_sif_weights_and_principal_component_removal_by_hand():
    # training tokens (structural ones aside): the x4, red x2, bird x2 -> 8; a = 0.5
    embedder = SentenceEmbedder.fit(TOY_VECTORS, TOY_TRAIN, sif_a=0.5, vocabulary_min_count=1,
                                    mmvae_conventions=False)
    weight = {w: embedder.sif_weights[embedder.vocabulary.index(w)] for w in ("the", "red", "bird")}
    assert weight == pytest.approx({"the": 0.5 / (0.5 + 4 / 8), "red": 0.5 / (0.5 + 2 / 8), "bird": 0.5 / (0.5 + 2 / 8)})
    assert weight["the"] == pytest.approx(1 / 2) and weight["red"] == pytest.approx(2 / 3)
    the, red, bird = np.array([1.0, 1, 0]), np.array([2.0, 0, 0]), np.array([0.0, 0, 3])
    averages = np.array([(the / 2 + red * 2 / 3 + bird * 2 / 3) / 3,  # plain mean over the words
                         (the / 2 + bird * 2 / 3) / 2,
                         (the / 2 + the / 2 + red * 2 / 3) / 3])
    assert np.allclose(embedder.weighted_average(TOY_TRAIN), averages)
    # first principal direction of the centred training averages, removed from each average
    centred = averages - averages.mean(0)
    u = np.linalg.eigh(centred.T @ centred)[1][:, -1]
    assert np.allclose(np.outer(embedder.principal_component, embedder.principal_component), np.outer(u, u))
    vectors = embedder(TOY_TRAIN)
    assert np.allclose(vectors, averages - np.outer(averages @ u, u))
    assert np.allclose(vectors @ u, 0)


def test_mmvae_conventions_count_eos_in_length_and_embed_excluded_words():
    embedder = SentenceEmbedder.fit(TOY_VECTORS, TOY_TRAIN + [["the", "<unk>"]], sif_a=0.5, vocabulary_min_count=2,
                                    remove_principal_component=False)
    # counts: the 5, red 2, bird 2, <unk> 1 -> 10 tokens; excluded frequency 1 / 10
    assert embedder.excluded_weight == pytest.approx(0.5 / (0.5 + 0.1))
    w = dict(zip(embedder.vocabulary, embedder.sif_weights))
    red, bird = np.array([2.0, 0, 0]), np.array([0.0, 0, 3])
    got = embedder([["red", "bird", "<eos>", "<pad>", "<pad>"], ["red", "<eos>", "bird", "red"], ["red", "bird"],
                    ["red", "zebra", "<eos>"], ["red", "<unk>", "<eos>"], ["<eos>", "<pad>"], []])
    assert np.allclose(got[0], (w["red"] * red + w["bird"] * bird) / 3)  # <eos> counted in the length
    assert np.allclose(got[1], w["red"] * red / 2)  # everything after the first <eos> ignored
    assert np.allclose(got[2], (w["red"] * red + w["bird"] * bird) / 2)  # no <eos>: all positions
    excluded = -np.ones(3) * embedder.excluded_weight
    assert np.allclose(got[3], (w["red"] * red + excluded) / 3)  # an unknown word is an excluded word
    assert np.allclose(got[4], got[3])
    assert np.allclose(got[5], 0) and np.allclose(got[6], 0)


def test_embedder_skips_special_tokens():
    embedder = SentenceEmbedder.fit(TOY_VECTORS, TOY_TRAIN, sif_a=0.5, vocabulary_min_count=1,
                                    mmvae_conventions=False, remove_principal_component=False)
    plain = embedder([["red", "bird"]])
    for tokens in (["<sos>", "red", "<unk>", "bird", "<pad>", "<eos>", "the"], ["red", "<exc>", "bird", "zebra"],
                   ["<bos>", "red", "bird", "<eos>", "<pad>"]):
        assert np.allclose(embedder([tokens]), plain)
    assert np.allclose(embedder([["<unk>", "<eos>"]]), 0)
    assert "<eos>" not in embedder.vocabulary and "<pad>" not in embedder.vocabulary
    with pytest.raises(TypeError, match="lists of tokens"):
        embedder(["red bird"])


# ------------------------------------------------------------------ word vectors

COLOURS = ["red", "blue", "yellow", "black", "white", "brown"]
PARTS = ["wings", "beak", "belly", "crown", "tail", "breast"]


def toy_captions(rng, n, classes=None):
    """Captions mentioning a class-specific colour and part; classes default to random ones."""
    classes = rng.integers(0, 6, size=n) if classes is None else classes
    captions = []
    for c in classes:
        words = ["this", "bird", "has", COLOURS[c], PARTS[c], "and", "a", rng.choice(["small", "large"]),
                 COLOURS[(c + 1) % 6], rng.choice(PARTS), ".", "<eos>"]
        captions.append(words + ["<pad>"] * int(rng.integers(0, 3)))
    return classes, captions


@pytest.fixture(scope="module")
def toy_word_vectors():
    _, captions = toy_captions(np.random.default_rng(6), 300)
    return captions, fit_word_vectors(captions, dim=8, seed=0, bucket=500)


def test_fit_word_vectors_is_deterministic_for_a_seed(toy_word_vectors):
    captions, vectors = toy_word_vectors
    assert vectors.dim == 8 and "bird" in vectors and "<eos>" not in vectors and "<pad>" not in vectors
    again = fit_word_vectors(captions, dim=8, seed=0, bucket=500)
    assert again.words == vectors.words and np.array_equal(again.vectors, vectors.vectors)
    other = fit_word_vectors(captions, dim=8, seed=1, bucket=500)
    assert not np.allclose(other.vectors, vectors.vectors)
    defaults = inspect.signature(fit_word_vectors).parameters
    assert {k: defaults[k].default for k in ("dim", "window", "min_count", "epochs")} == \
        {"dim": 300, "window": 3, "min_count": 3, "epochs": 10}


def test_missing_gensim_gives_one_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "gensim", None)
    monkeypatch.setitem(sys.modules, "gensim.models", None)
    with pytest.raises(ImportError) as error:
        fit_word_vectors([["a", "bird"]] * 5, dim=4)
    assert str(error.value) == GENSIM_MISSING == "CCA coherence needs gensim: pip install 'memevae[cub]'"


# ------------------------------------------------------------------ the measure


def toy_pairs(rng, n, word_classes=None):
    """Image features that encode the class (plus noise) paired with captions of that class."""
    classes, captions = toy_captions(rng, n, word_classes)
    centres = np.random.default_rng(7).normal(size=(6, 12))
    return classes, centres[classes] + 0.5 * rng.normal(size=(n, 12)), captions


def test_measure_scores_round_trip_and_checksum(toy_word_vectors, tmp_path):
    _, word_vectors = toy_word_vectors
    rng = np.random.default_rng(8)
    _, train_features, train_captions = toy_pairs(rng, 600)
    measure = CCACoherence.fit(train_features, train_captions, word_vectors=word_vectors, components=4)
    assert measure.projection.components == 4 and measure.embedder.dim == 8
    classes, features, captions = toy_pairs(rng, 300)
    ground_truth = measure.score(features, captions)
    shuffled = measure.score(features, toy_captions(rng, 300, (classes + 3) % 6)[1])
    assert ground_truth > 0.5 and ground_truth > shuffled + 0.4
    assert measure.matches(train_captions) and measure.training_captions_checksum == captions_checksum(train_captions)

    path = measure.save(tmp_path / "cca.npz")
    loaded = CCACoherence.load(path, train_captions)
    assert np.array_equal(loaded.pair_correlations(features, captions), measure.pair_correlations(features, captions))
    assert loaded.score(features, captions) == ground_truth
    assert loaded.embedder.vocabulary == measure.embedder.vocabulary
    sidecar = json.loads(path.with_suffix(".json").read_text())
    assert sidecar["components"] == 4 and sidecar["training_captions_sha256"] == captions_checksum(train_captions)
    with pytest.raises(ValueError, match="different training captions"):
        CCACoherence.load(path, train_captions[:-1])
