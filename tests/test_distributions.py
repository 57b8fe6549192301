import math

import pytest
import torch
import torch.distributions as D

from memevae.distributions import (DiagonalGaussian, absolute_error_sum, gaussian_kl, gaussian_log_prob,
                                   gaussian_mixture_log_prob, laplace_log_prob)


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


@pytest.mark.parametrize("x_shape, loc_shape", [((4, 3, 5, 5), (6, 4, 3, 5, 5)), ((6, 4, 3, 5, 5), (4, 3, 5, 5)),
                                                ((4, 3, 5, 5), (4, 3, 5, 5))])
@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
def test_absolute_error_sum_has_the_values_and_gradients_of_autograds_form(x_shape, loc_shape, memory_format):
    """float64: the fused sum |loc - x| (the sign saved in place for the backward) equals
    (loc - x).abs().sum(dims) and its autograd gradients to 1e-12, for x and loc broadcast either
    way, with ties (loc = x, where both give gradient 0), in either memory order."""
    g = torch.Generator().manual_seed(5)

    def tensor(shape):  # values on a grid of 8, so that many entries of loc equal those of x
        t = torch.randint(0, 8, shape, generator=g).double() / 8
        return (t.contiguous(memory_format=memory_format) if t.dim() == 4 else t).requires_grad_()

    x, loc = tensor(x_shape), tensor(loc_shape)
    weights = torch.rand(torch.broadcast_shapes(x_shape, loc_shape)[:-3], generator=g, dtype=torch.float64)
    results = []
    for total in (absolute_error_sum(x, loc, 3), (loc - x).abs().sum((-3, -2, -1))):
        results.append((total, *torch.autograd.grad((weights * total).sum(), (x, loc))))
    assert (loc == x).any()  # the ties are there
    for fused, plain in zip(*results):
        torch.testing.assert_close(fused, plain, rtol=1e-12, atol=1e-12)
    with torch.no_grad():
        torch.testing.assert_close(absolute_error_sum(x, loc, 3), results[1][0], rtol=1e-12, atol=1e-12)


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


# -- Laplace latent (MMVAE, App. I) and the product of Gaussian experts (MVAE) ----------------

def test_laplace_latent_matches_torch_noise_and_density():
    from memevae.distributions import DiagonalLaplace

    g = torch.Generator().manual_seed(4)
    loc, scale = torch.randn(5, 3, generator=g), torch.rand(5, 3, generator=g) + 0.1
    q = DiagonalLaplace(loc, scale)
    torch.manual_seed(11)
    ours = q.rsample((7,))
    torch.manual_seed(11)
    theirs = D.Laplace(loc, scale).rsample((7,))
    torch.testing.assert_close(ours, theirs)
    torch.testing.assert_close(q.log_prob(ours), D.Independent(D.Laplace(loc, scale), 1).log_prob(ours))


def test_laplace_rsample_is_reparameterised_and_has_the_right_moments():
    from memevae.distributions import DiagonalLaplace

    loc = torch.zeros(1, 2, requires_grad=True)
    q = DiagonalLaplace(loc, torch.tensor([[1.0, 3.0]]))
    q.rsample((4,)).sum().backward()
    torch.testing.assert_close(loc.grad, torch.full((1, 2), 4.0))
    torch.manual_seed(0)
    z = q.detach().rsample((200_000,))
    torch.testing.assert_close(z.std(0)[0], torch.tensor([2**0.5, 3 * 2**0.5]), rtol=0.02, atol=0.0)


def test_product_of_two_gaussians_is_the_precision_weighted_closed_form():
    from memevae.distributions import gaussian_product

    m1, s1, m2, s2 = torch.tensor([1.0, -2.0]), torch.tensor([0.5, 2.0]), torch.tensor([3.0, 0.0]), torch.tensor([1.0, 1.0])
    q = gaussian_product([m1, m2], [s1, s2])
    # 1/s^2 = 1/s1^2 + 1/s2^2; m = s^2 (m1/s1^2 + m2/s2^2), dimension by dimension
    var = [1 / (1 / 0.25 + 1 / 1.0), 1 / (1 / 4.0 + 1 / 1.0)]
    torch.testing.assert_close(q.scale, torch.tensor(var).sqrt())
    torch.testing.assert_close(q.loc, torch.tensor([var[0] * (1 / 0.25 + 3 / 1.0), var[1] * (-2 / 4.0 + 0.0)]))


def test_product_with_the_prior_expert_and_of_a_single_expert():
    from memevae.distributions import gaussian_product

    prior_loc, prior_scale = torch.zeros(3), torch.ones(3)
    m, s = torch.tensor([[2.0, -1.0, 0.5]]), torch.tensor([[1.0, 0.5, 3.0]])
    q = gaussian_product([prior_loc, m], [prior_scale, s])  # prior broadcasts over the batch
    torch.testing.assert_close(q.scale, (1 / (1 + s.pow(-2))).sqrt())
    torch.testing.assert_close(q.loc, m * s.pow(-2) / (1 + s.pow(-2)))
    single = gaussian_product([m], [s])
    torch.testing.assert_close(single.loc, m)
    torch.testing.assert_close(single.scale, s)


def test_product_density_is_proportional_to_the_product_of_densities():
    """log N(z; product) - sum_i log N(z; expert_i) must not depend on z."""
    from memevae.distributions import gaussian_product

    g = torch.Generator().manual_seed(5)
    locs = [torch.randn(4, generator=g, dtype=torch.float64) for _ in range(3)]
    scales = [torch.rand(4, generator=g, dtype=torch.float64) + 0.2 for _ in range(3)]
    q = gaussian_product(locs, scales)
    z = torch.randn(50, 4, generator=g, dtype=torch.float64) * 3
    gap = q.log_prob(z) - sum(gaussian_log_prob(z, loc, scale) for loc, scale in zip(locs, scales))
    torch.testing.assert_close(gap, gap[:1].expand(50), rtol=0, atol=1e-9)


def test_docstring_examples():
    import doctest

    import memevae.distributions

    assert doctest.testmod(memevae.distributions).failed == 0


def test_posterior_samples_for_evaluation_keep_the_posteriors_family():
    """Evaluation samples z ~ q(z|x) with the posterior's own rsample and a generator: a Laplace
    posterior (MMVAE, --posterior laplace) gives Laplace samples (std sqrt(2) at scale 1)."""
    from memevae.distributions import DiagonalGaussian, DiagonalLaplace

    def sample_latent(q, generator):
        return q.rsample(generator=generator)

    zeros, ones = torch.zeros(200_000, 1), torch.ones(200_000, 1)
    laplace = sample_latent(DiagonalLaplace(zeros, ones), torch.Generator().manual_seed(0))
    gaussian = sample_latent(DiagonalGaussian(zeros, ones), torch.Generator().manual_seed(0))
    assert abs(laplace.std().item() - 2 ** 0.5) < 0.01 and abs(gaussian.std().item() - 1.0) < 0.01
    # a Gaussian posterior's samples are the same draws as before: z = loc + scale * randn(generator)
    assert torch.equal(gaussian, torch.randn(200_000, 1, generator=torch.Generator().manual_seed(0)))
    again = sample_latent(DiagonalLaplace(zeros, ones), torch.Generator().manual_seed(0))
    assert torch.equal(laplace, again)  # reproducible from the generator alone


def test_absolute_error_sum_of_channels_last_decoder_output_equals_autograds():
    """Decoded images in channels-last memory against targets in the usual layout: the target is
    read in the decoder's layout (in_layout_of), and value and gradient stay autograd's, bit for bit."""
    import torch

    from memevae.distributions import absolute_error_sum, in_layout_of

    torch.manual_seed(0)
    x = torch.rand(4, 3, 8, 8)
    loc = torch.rand(2 * 4, 3, 8, 8).contiguous(memory_format=torch.channels_last).view(2, 4, 3, 8, 8).requires_grad_()
    assert in_layout_of(x, loc).stride() == (192, 1, 24, 3) and in_layout_of(x, loc.contiguous()) is x
    grad = torch.rand(2, 4)
    value = absolute_error_sum(x, loc, 3)
    (ours,) = torch.autograd.grad(value, loc, grad)
    reference = (loc - x).abs().sum((-3, -2, -1))
    (theirs,) = torch.autograd.grad(reference, loc, grad)
    assert torch.equal(value, reference) and torch.equal(ours, theirs)
