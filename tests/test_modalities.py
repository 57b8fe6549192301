"""Modality kinds declare their data format, shape, networks and likelihood (memevae.modalities)."""

import pytest
import torch

from memevae.modalities import modality_kinds, build_modality
from memevae.modalities.likelihoods import LaplaceLikelihood, build_likelihood


def test_kinds_are_declared_once_with_format_and_likelihood():
    assert list(modality_kinds()) == ["caption-conv", "features-mlp", "mnist-mlp", "svhn-conv", "polymnist-mlp"]
    kinds = modality_kinds()
    assert (kinds["caption-conv"].format, kinds["caption-conv"].likelihood, kinds["caption-conv"].shape) == ("tokens", "categorical", (32, None))
    assert (kinds["features-mlp"].format, kinds["features-mlp"].likelihood, kinds["features-mlp"].shape) == ("features", "laplace", (None,))
    for kind in (kinds["mnist-mlp"], kinds["svhn-conv"], kinds["polymnist-mlp"]):
        assert kind.format == "image" and kind.likelihood == "laplace" and dict(kind.likelihood_params) == {"scale": 1.0}
        m = build_modality(kind.name, latent_dim=3, architecture="paper", name="x")
        assert (m.name, m.kind, m.shape, m.format) == ("x", kind.name, kind.shape, "image")
        assert isinstance(m.likelihood, LaplaceLikelihood) and m.likelihood.scale == 1.0
        assert m.likelihood.event_dims == len(kind.shape) and m.min_scale == kind.min_scale


def test_show_is_an_image_in_the_unit_range():
    m = build_modality("svhn-conv", latent_dim=3)
    shown = m.show(torch.tensor([-1.0, 0.5, 2.0]).view(3, 1, 1).expand(3, 2, 2))
    assert shown.shape == (3, 2, 2) and shown.min() == 0 and shown.max() == 1
    assert m.show(torch.full((3, 2, 2), 255, dtype=torch.uint8)).eq(1).all()


def test_an_unknown_likelihood_is_refused():
    with pytest.raises(ValueError, match="unknown likelihood 'poisson'; choose one of laplace"):
        build_likelihood("poisson", event_dims=1)
