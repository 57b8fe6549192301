"""MMVAE's stratified bound and its gradient estimators (Shi et al. 2019; official code
github.com/iffsid/mmvae ``src/objectives.py``: ``m_iwae_looser``, ``m_dreg_looser``, ``m_iwae``,
``m_dreg``): Tucker et al.'s DReG, and the official DReG functions' gradients as released."""

import math

import pytest
import torch

from memevae.distributions import DiagonalGaussian, DiagonalLaplace
from memevae.objectives import (dimension_likelihood_weights, mixture_log_prob, mmvae_dreg_bound, mmvae_iwae_bound,
                                mmvae_log_weights, mmvae_released_dreg_bound, normalised_weights)


def log_mean_exp(values):
    return math.log(sum(math.exp(v) for v in values) / len(values))


LW = [[[-1.0, -7.0], [-3.0, -2.0], [-2.5, -4.0]],    # expert 0: K = 3 samples, B = 2 items
      [[-2.0, -0.5], [-2.0, -9.0], [-6.0, -1.0]]]    # expert 1


def test_looser_bound_averages_over_experts_outside_the_log():
    out = mmvae_iwae_bound(torch.tensor(LW), "looser")
    for b in range(2):
        expected = 0.5 * sum(log_mean_exp([LW[m][k][b] for k in range(3)]) for m in range(2))
        assert out[b].item() == pytest.approx(expected, rel=1e-6)


def test_tighter_bound_pools_all_samples_and_is_at_least_the_looser():
    out = mmvae_iwae_bound(torch.tensor(LW), "tighter")
    for b in range(2):
        assert out[b].item() == pytest.approx(log_mean_exp([LW[m][k][b] for m in range(2) for k in range(3)]), rel=1e-6)
    lw = torch.randn(3, 5, 100, generator=torch.Generator().manual_seed(0)) * 4
    assert (mmvae_iwae_bound(lw, "tighter") >= mmvae_iwae_bound(lw, "looser") - 1e-5).all()


def test_log_weights_and_mixture_density():
    torch.testing.assert_close(mmvae_log_weights(torch.tensor([-1.0]), torch.tensor([[-2.0], [-3.0]]), torch.tensor([-0.5])),
                               torch.tensor([-5.5]))
    log_q = torch.tensor([[-1.0, -2.0], [-3.0, -0.5]])  # (J experts, items)
    expected = [math.log(0.5 * (math.exp(-1.0) + math.exp(-3.0))), math.log(0.5 * (math.exp(-2.0) + math.exp(-0.5)))]
    assert mixture_log_prob(log_q).tolist() == pytest.approx(expected)


def test_normalised_weights_per_expert_or_pooled():
    lw = torch.tensor(LW)
    looser = normalised_weights(lw, "looser")
    torch.testing.assert_close(looser.sum(1), torch.ones(2, 2))
    assert looser[0, 0, 0].item() == pytest.approx(math.exp(-1.0) / sum(math.exp(LW[0][k][0]) for k in range(3)))
    pooled = normalised_weights(lw, "tighter")
    torch.testing.assert_close(pooled.sum((0, 1)), torch.ones(2))
    assert pooled[1, 0, 1].item() == pytest.approx(math.exp(-0.5) / sum(math.exp(LW[m][k][1]) for m in range(2) for k in range(3)))
    assert looser.grad_fn is None and pooled.grad_fn is None


def test_dimension_weights_are_the_official_llik_scaling():
    weights = dimension_likelihood_weights({"mnist": 1 * 28 * 28, "svhn": 3 * 32 * 32})
    assert weights == {"mnist": pytest.approx(3.9183673), "svhn": 1.0}


# -- DReG --------------------------------------------------------------------------------------

def toy(bound, M=2, K=3, B=2, seed=0, family=DiagonalGaussian, dtype=torch.float32, per_expert=False):
    """Reparameterised samples z_mk = loc_m + scale_m * eps from M experts over B items, a
    'decoder' parameter theta and a learnt prior scale, and log w = log p(z) + log p(x|z, theta)
    - log q_mix(z) with the experts' parameters detached in q_mix (as DReG requires), or not (for
    IWAE). ``log_weights(detach, at)`` evaluates log w at any latents ``at`` (default: z). With
    ``per_expert`` also returns the M per-expert sample tensors z is stacked from."""
    g = torch.Generator().manual_seed(seed)
    params = {
        "loc": torch.randn(M, B, 2, generator=g, dtype=dtype).requires_grad_(),
        "log_scale": (0.3 * torch.randn(M, B, 2, generator=g, dtype=dtype)).requires_grad_(),
        "theta": torch.randn(2, generator=g, dtype=dtype).requires_grad_(),
        "prior_log_scale": (0.2 * torch.randn(2, generator=g, dtype=dtype)).requires_grad_(),
    }
    experts = [family(params["loc"][m], params["log_scale"][m].exp()) for m in range(M)]
    torch.manual_seed(seed + 1)
    samples = [q.rsample((K,)) for q in experts]
    z = torch.stack(samples)

    def log_weights(detach, at=None):
        at = z if at is None else at
        mixture = [q.detach() if detach else q for q in experts]
        log_q = mixture_log_prob(torch.stack([q.log_prob(at) for q in mixture]))
        log_prior = (-0.5 * (at / params["prior_log_scale"].exp()).pow(2) - params["prior_log_scale"]).sum(-1)
        log_lik = -(at - params["theta"]).pow(2).sum(-1)
        return mmvae_log_weights(log_prior, log_lik[None], log_q)

    return (params, z, log_weights, samples) if per_expert else (params, z, log_weights)


@pytest.mark.parametrize("bound", ["looser", "tighter"])
def test_dreg_value_is_the_iwae_bound(bound):
    _, z, log_weights = toy(bound)
    lw = log_weights(detach=True)
    torch.testing.assert_close(mmvae_dreg_bound(lw, z, bound), mmvae_iwae_bound(lw, bound))


def hand_gradients(bound, power):
    """Gradients written out by hand from an independent autograd graph: encoder parameters
    sum_k w~_k^power (d log w_k / d z_k)(d z_k / d phi); decoder and prior parameters
    sum_k w~_k d log w_k / d theta (each averaged over experts for "looser")."""
    params, z, log_weights = toy(bound, dtype=torch.float64)
    lw = log_weights(detach=True)
    w = normalised_weights(lw, bound)
    scale = 1.0 / lw.shape[0] if bound == "looser" else 1.0
    # log w_mk depends on z_mk only, so d(sum lw)/dz_mk = d lw_mk / d z_mk
    dlw_dz = torch.autograd.grad(lw.sum(), z, retain_graph=True)[0]
    path = scale * w.pow(power).unsqueeze(-1) * dlw_dz
    eps = (z - params["loc"].unsqueeze(1)) / params["log_scale"].exp().unsqueeze(1)
    expected = {"loc": path.sum(1),                                                     # dz/dloc = 1
                "log_scale": (path * eps * params["log_scale"].exp().unsqueeze(1)).sum(1)}  # dz/dlog_scale = scale*eps
    theta, prior = torch.autograd.grad((scale * w * lw).sum(), [params["theta"], params["prior_log_scale"]])
    expected.update(theta=theta, prior_log_scale=prior)
    assert theta.abs().sum() > 0 and prior.abs().sum() > 0
    return expected


def estimator_gradients(bound, objective):
    params, z, log_weights = toy(bound, dtype=torch.float64)
    lw = log_weights(detach=True)
    out = mmvae_dreg_bound(lw, z, bound) if objective == "dreg" else mmvae_released_dreg_bound(lw, bound)
    out.sum().backward()
    return {name: p.grad for name, p in params.items()}


@pytest.mark.parametrize("bound", ["looser", "tighter"])
@pytest.mark.parametrize("objective, power", [("dreg", 2), ("dreg-as-released", 1)])
def test_estimator_gradients_equal_hand_computation(bound, objective, power):
    """"dreg": Tucker et al.'s w~^2 on the encoders' path; "dreg-as-released": w~ (the official
    functions' hook never fires). Decoder and prior gradients: w~ for both."""
    ours, expected = estimator_gradients(bound, objective), hand_gradients(bound, power)
    for name in ("loc", "log_scale", "theta", "prior_log_scale"):
        torch.testing.assert_close(ours[name], expected[name], msg=name)


@pytest.mark.parametrize("bound", ["looser", "tighter"])
def test_the_two_dreg_estimators_are_not_confused(bound):
    """They share decoder and prior gradients and differ in every encoder gradient; each fails
    the other's hand computation."""
    dreg, released = estimator_gradients(bound, "dreg"), estimator_gradients(bound, "dreg-as-released")
    for name in ("theta", "prior_log_scale"):
        torch.testing.assert_close(dreg[name], released[name])
    for name in ("loc", "log_scale"):
        relative = ((dreg[name] - released[name]).norm() / released[name].norm()).item()
        assert relative > 0.05, (name, relative)
        assert not torch.allclose(dreg[name], hand_gradients(bound, 1)[name])
        assert not torch.allclose(released[name], hand_gradients(bound, 2)[name])


def official_dreg_looser_transcribed(log_weights, samples):
    """A transcription (the arithmetic, in our words) of ``m_dreg_looser`` / ``_m_dreg_looser`` of
    the official code (github.com/iffsid/mmvae, ``src/objectives.py``): log w is computed from each
    expert's own sample tensor; those are then stacked (and concatenated over micro-batches) into a
    NEW tensor, on which the hook multiplying incoming gradients by w~ is registered; it returns
    the mean over experts of sum_k w~_k log w_k, summed over items. Also returns whether the hook
    ran."""
    lw = torch.stack([log_weights(detach=True, at=z_m) for z_m in samples])
    stacked = torch.cat([torch.stack(samples)], 2)
    fired = []
    with torch.no_grad():
        grad_wt = (lw - torch.logsumexp(lw, 1, keepdim=True)).exp()

    def hook(grad):
        fired.append(True)
        return grad_wt.unsqueeze(-1) * grad
    stacked.register_hook(hook)
    return (grad_wt * lw).mean(0).sum(), fired


def test_the_official_hook_never_fires_and_as_released_matches_it():
    """float64: "dreg-as-released" gives the transcribed official function's gradients to 1e-12
    (its hook never runs); "dreg" does not."""
    grads = {}
    for variant in ("official", "dreg-as-released", "dreg"):
        params, z, log_weights, samples = toy("looser", dtype=torch.float64, per_expert=True)
        if variant == "official":
            out, fired = official_dreg_looser_transcribed(log_weights, samples)
            out.backward()
            assert not fired
        else:
            lw = log_weights(detach=True)
            (mmvae_dreg_bound(lw, z) if variant == "dreg" else mmvae_released_dreg_bound(lw)).sum().backward()
        grads[variant] = {name: p.grad.clone() for name, p in params.items()}
    for name in grads["official"]:
        torch.testing.assert_close(grads["dreg-as-released"][name], grads["official"][name], rtol=1e-12, atol=1e-12)
    for name in ("theta", "prior_log_scale"):
        torch.testing.assert_close(grads["dreg"][name], grads["official"][name], rtol=1e-12, atol=1e-12)
    for name in ("loc", "log_scale"):
        assert not torch.allclose(grads["dreg"][name], grads["official"][name])


def test_dreg_changes_only_the_encoder_gradient_relative_to_iwae():
    grads = {}
    for objective in ("dreg", "iwae"):
        params, z, log_weights = toy("looser")
        lw = log_weights(detach=objective == "dreg")
        bound = mmvae_dreg_bound(lw, z) if objective == "dreg" else mmvae_iwae_bound(lw)
        bound.sum().backward()
        grads[objective] = {name: p.grad.clone() for name, p in params.items()}
        grads[objective]["value"] = bound.detach()
    torch.testing.assert_close(grads["dreg"]["value"], grads["iwae"]["value"])
    torch.testing.assert_close(grads["dreg"]["theta"], grads["iwae"]["theta"])
    assert not torch.allclose(grads["dreg"]["loc"], grads["iwae"]["loc"])
    assert not torch.allclose(grads["dreg"]["log_scale"], grads["iwae"]["log_scale"])


def expected_gradients(objective, family, M, replicates=100_000, K=5, seed=1):
    """Encoder gradients averaged over many independent replicates of a 1-d problem."""
    loc = torch.tensor([[0.3], [-0.8]][:M], requires_grad=True)
    log_scale = torch.tensor([[-0.5], [0.2]][:M], requires_grad=True)
    torch.manual_seed(seed)
    experts = [family(loc[m].expand(replicates, 1), log_scale[m].exp().expand(replicates, 1)) for m in range(M)]
    z = torch.stack([q.rsample((K,)) for q in experts])
    mixture = [q.detach() for q in experts] if objective != "iwae" else experts
    log_q = mixture_log_prob(torch.stack([q.log_prob(z) for q in mixture]))
    lw = -0.5 * z[..., 0].pow(2) - 2.0 * (z[..., 0] - 1.5).pow(2) - log_q
    bound = {"dreg": lambda: mmvae_dreg_bound(lw, z), "dreg-as-released": lambda: mmvae_released_dreg_bound(lw),
             "iwae": lambda: mmvae_iwae_bound(lw)}[objective]()
    bound.mean().backward()
    return torch.cat([loc.grad.flatten(), log_scale.grad.flatten()])


@pytest.mark.parametrize("family", [DiagonalGaussian, DiagonalLaplace])
def test_dreg_is_unbiased_for_a_single_expert(family):
    """M = 1 is Tucker et al.'s DReG: the same expected encoder gradient as IWAE."""
    dreg, iwae = expected_gradients("dreg", family, 1), expected_gradients("iwae", family, 1)
    torch.testing.assert_close(dreg, iwae, rtol=0.02, atol=0.01)


def test_as_released_is_biased_even_for_a_single_expert():
    """The official functions' gradient (w~ on the path, the "sticking the landing" IWAE gradient)
    does not average to the bound's gradient even for M = 1, where Tucker et al.'s DReG does."""
    released = expected_gradients("dreg-as-released", DiagonalGaussian, 1)
    iwae = expected_gradients("iwae", DiagonalGaussian, 1)
    assert (released - iwae).abs().max() > 0.05, (released, iwae)


def test_mixture_dreg_is_biased():
    """For M = 2 Tucker et al.'s estimator applied to the mixture has an expectation that differs
    from the bound's gradient (see ``mmvae_dreg_bound``), measured far beyond the Monte Carlo error
    (the two seeds of each agree to ~0.005)."""
    dreg = expected_gradients("dreg", DiagonalGaussian, 2)
    iwae = expected_gradients("iwae", DiagonalGaussian, 2)
    torch.testing.assert_close(expected_gradients("iwae", DiagonalGaussian, 2, seed=2), iwae, rtol=0.02, atol=0.02)
    assert (dreg - iwae).abs().max() > 0.08


def test_hook_only_when_samples_need_gradients():
    _, z, log_weights = toy("looser")
    with torch.no_grad():
        lw = log_weights(detach=True)
        out = mmvae_dreg_bound(lw, z.detach())
    torch.testing.assert_close(out, mmvae_iwae_bound(lw))


def test_rejects_bad_shapes_and_bound():
    with pytest.raises(ValueError, match="unknown bound"):
        mmvae_iwae_bound(torch.zeros(2, 3, 4), "tight")
    with pytest.raises(ValueError, match=r"\(M experts, K samples, B items\)"):
        mmvae_iwae_bound(torch.zeros(3, 4))
    with pytest.raises(ValueError, match="samples must be"):
        mmvae_dreg_bound(torch.zeros(2, 3, 4), torch.zeros(2, 3, 5, 1))


@pytest.mark.parametrize("name", ["memevae.objectives.mmvae", "memevae.objectives.mvae"])
def test_docstring_examples(name):
    import doctest
    import importlib

    assert doctest.testmod(importlib.import_module(name)).failed == 0
