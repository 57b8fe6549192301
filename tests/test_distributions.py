import math

import torch
import torch.distributions as D

from memevae.distributions import (DiagonalGaussian, gaussian_kl, gaussian_log_prob, gaussian_mixture_log_prob,
                                   laplace_log_prob)


def test_gaussian_log_prob_matches_torch():
    g = torch.Generator().manual_seed(0)
    loc, scale, z = torch.randn(5, 3, generator=g), torch.rand(5, 3, generator=g) + 0.1, torch.randn(7, 5, 3, generator=g)
    expected = D.Independent(D.Normal(loc, scale), 1).log_prob(z)
    torch.testing.assert_close(gaussian_log_prob(z, loc, scale), expected)


def test_gaussian_kl_matches_torch_and_is_zero_for_equal():
    g = torch.Generator().manual_seed(1)
    a = [torch.randn(4, 6, generator=g), torch.rand(4, 6, generator=g) + 0.1]
    b = [torch.randn(4, 6, generator=g), torch.rand(4, 6, generator=g) + 0.1]
    expected = D.kl_divergence(D.Independent(D.Normal(*a), 1), D.Independent(D.Normal(*b), 1))
    torch.testing.assert_close(gaussian_kl(*a, *b), expected)
    torch.testing.assert_close(gaussian_kl(*a, *a), torch.zeros(4), atol=1e-6, rtol=0)


def test_mixture_log_prob_matches_torch_mixture():
    g = torch.Generator().manual_seed(2)
    loc, scale = torch.randn(9, 3, generator=g), torch.rand(9, 3, generator=g) + 0.2
    z = torch.randn(6, 3, generator=g)
    mixture = D.MixtureSameFamily(D.Categorical(logits=torch.zeros(9)), D.Independent(D.Normal(loc, scale), 1))
    torch.testing.assert_close(gaussian_mixture_log_prob(z, loc, scale), mixture.log_prob(z))


def test_laplace_log_prob_matches_torch():
    g = torch.Generator().manual_seed(3)
    x, loc = torch.rand(4, 1, 5, 5, generator=g), torch.rand(3, 4, 1, 5, 5, generator=g)
    expected = D.Laplace(loc, torch.full_like(loc, 0.7)).log_prob(x).sum((-3, -2, -1))
    torch.testing.assert_close(laplace_log_prob(x, loc, 0.7, event_dims=3), expected)


def test_rsample_is_reparameterised():
    loc = torch.zeros(2, 3, requires_grad=True)
    q = DiagonalGaussian(loc, torch.ones(2, 3))
    q.rsample((4,)).sum().backward()
    torch.testing.assert_close(loc.grad, torch.full((2, 3), 4.0))


def test_monte_carlo_kl_agrees_with_analytic():
    torch.manual_seed(0)
    q = DiagonalGaussian(torch.tensor([[0.3, -0.2]]), torch.tensor([[0.5, 1.2]]))
    p = DiagonalGaussian(torch.tensor([[0.0, 0.4]]), torch.tensor([[1.0, 0.8]]))
    z = q.rsample((200_000,))
    mc = (q.log_prob(z) - p.log_prob(z)).mean()
    assert math.isclose(mc.item(), q.kl(p).item(), rel_tol=0.02)
