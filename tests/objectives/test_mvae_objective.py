"""The MVAE ELBOs against hand computations (Wu & Goodman 2018)."""

import pytest
import torch

from memevae.objectives import mvae_elbo, mvae_subsampled_bound


def test_elbo_is_weighted_reconstruction_minus_weighted_kl():
    log_a, log_b, kl = [-3.0, -1.0], [-2.0, -5.0], [0.5, 2.0]
    out = mvae_elbo({"a": torch.tensor(log_a), "b": torch.tensor(log_b)}, torch.tensor(kl))
    assert out.tolist() == pytest.approx([log_a[i] + log_b[i] - kl[i] for i in range(2)])
    out = mvae_elbo({"a": torch.tensor(log_a), "b": torch.tensor(log_b)}, torch.tensor(kl), {"a": 3.92}, kl_weight=0.25)
    assert out.tolist() == pytest.approx([3.92 * log_a[i] + 1.0 * log_b[i] - 0.25 * kl[i] for i in range(2)])


def test_unimodal_elbo_reconstructs_only_its_modality():
    out = mvae_elbo({"a": torch.tensor([-3.0])}, torch.tensor([0.5]), {"a": 2.0, "b": 100.0})
    assert out.item() == pytest.approx(2.0 * -3.0 - 0.5)


def test_subsampled_bound_is_the_sum_of_the_elbos():
    joint, a, b = torch.tensor([-5.0, -4.0]), torch.tensor([-2.0, -2.5]), torch.tensor([-3.0, -1.0])
    torch.testing.assert_close(mvae_subsampled_bound([joint, a, b]), joint + a + b)
    torch.testing.assert_close(mvae_subsampled_bound([a]), a)


def test_gradient_of_the_bound_reaches_every_term():
    parts = [torch.tensor([-1.0], requires_grad=True) for _ in range(3)]
    kl = torch.tensor([0.3], requires_grad=True)
    bound = mvae_subsampled_bound([mvae_elbo({"a": parts[0], "b": parts[1]}, kl), mvae_elbo({"a": parts[2]}, kl, kl_weight=0.5)])
    bound.sum().backward()
    assert [p.grad.item() for p in parts] == [1.0, 1.0, 1.0]
    assert kl.grad.item() == pytest.approx(-1.5)


def test_rejects_empty_inputs():
    with pytest.raises(ValueError, match="at least one observed modality"):
        mvae_elbo({}, torch.zeros(2))
    with pytest.raises(ValueError, match="at least one ELBO"):
        mvae_subsampled_bound([])
