"""Importance-weighted marginal likelihoods (Table 2): exact on linear-Gaussian toys, tightening in K."""

import math

import pytest
from types import SimpleNamespace

import torch
import torch.distributions as D
from torch import nn

from memevae.distributions import DiagonalGaussian, gaussian_log_prob
from memevae.evaluation.metrics.likelihood import importance_log_likelihood, marginal_log_likelihood
from memevae.modalities import Modality
from memevae.models import MEME, MEMEConfig, MultimodalVAE


pytestmark = pytest.mark.usefixtures("one_thread")


class GaussianLikelihood:
    """N(x; decoded, scale^2 I) over a vector x: makes the toys' marginals closed-form."""

    def __init__(self, scale):
        self.scale = scale

    def log_prob(self, x, decoded):
        return gaussian_log_prob(x, decoded, torch.full_like(decoded, self.scale))

    def mean(self, decoded):
        return decoded


class LinearEncoder(nn.Module):
    def __init__(self, dim, latent, scale_bias=1.0):
        super().__init__()
        self.linear = nn.Linear(dim, 2 * latent)
        with torch.no_grad():
            # every encoder has the same constant scale softplus(1) ~ 1.31, so the proposal q(z|s)
            # is never narrower than the exact posterior p(z|s,t) (which is narrower than the
            # prior p(z|t)): the importance weights are bounded and the estimate converges fast
            self.linear.weight.mul_(0.3)
            self.linear.weight[latent:] = 0.0
            self.linear.bias.zero_()
            self.linear.bias[latent:] = scale_bias

    def forward(self, x):
        return self.linear(x).chunk(2, dim=-1)


def toy_meme(direction="both", dims=(3, 2), latent=2, noise=1.0, seed=0):
    """A MEME whose four networks are linear and whose likelihoods are Gaussian."""
    torch.manual_seed(seed)
    model = MEME(MEMEConfig(latent_dim=latent, pseudo_samples=1, direction=direction))
    model.modalities = nn.ModuleDict({
        name: Modality(name, "toy", (dim,), LinearEncoder(dim, latent), nn.Linear(latent, dim), GaussianLikelihood(noise), 1e-3)
        for name, dim in zip(("mnist", "textured"), dims)
    })
    model.pseudo_samples = nn.ParameterDict({name: nn.Parameter(torch.randn(3, dim)) for name, dim in zip(("mnist", "textured"), dims)})
    return model


def true_marginal(model, name, x, noise=1.0):
    """log p(x) = log (1/N) sum_i N(x; W mu_i + b, W diag(sigma_i^2) W^T + noise^2 I), mu_i, sigma_i
    = enc_other(u_i): Eq. 4's model of one modality under the pseudo-sample mixture prior."""
    (other,) = [m for m in model.modality_names if m != name]
    prior = model.modality(other).encode(model.pseudo_samples[other])
    dec = model.modality(name).decoder
    W, b = dec.weight, dec.bias
    means = prior.loc @ W.T + b  # (N, D)
    covs = W @ torch.diag_embed(prior.scale ** 2) @ W.T + noise ** 2 * torch.eye(W.shape[0])
    per_component = D.MultivariateNormal(means, covs).log_prob(x[name].unsqueeze(-2))  # (B, N)
    return torch.logsumexp(per_component, -1) - math.log(len(means))


def true_conditional(model, source, target, x, noise=1.0):
    """log p(s|t) = log N(s; W mu_t + b, W diag(sigma_t^2) W^T + noise^2 I), closed form."""
    prior = model.modality(target).encode(x[target])
    dec = model.modality(source).decoder
    W, b = dec.weight, dec.bias
    mean = prior.loc @ W.T + b
    cov = W @ torch.diag_embed(prior.scale ** 2) @ W.T + noise ** 2 * torch.eye(W.shape[0])
    return D.MultivariateNormal(mean, cov).log_prob(x[source])


def toy_data(n=32, dims=(3, 2), seed=1):
    g = torch.Generator().manual_seed(seed)
    return {"mnist": torch.randn(n, dims[0], generator=g), "textured": torch.randn(n, dims[1], generator=g)}


def model_data(model, source, target, n=32, noise=1.0, seed=1):
    """t ~ N(0, I), then s ~ p(s|t) = int p(s|z) p(z|t) dz: items typical of the toy model."""
    g = torch.Generator().manual_seed(seed)
    t = torch.randn(n, model.modality(target).shape[0], generator=g)
    with torch.no_grad():
        prior = model.modality(target).encode(t)
        z = prior.loc + prior.scale * torch.randn(prior.loc.shape, generator=g)
        mean = model.modality(source).decoder(z)
    return {target: t, source: mean + noise * torch.randn(mean.shape, generator=g)}


def test_importance_estimate_is_chunk_invariant_and_stable():
    weights = torch.randn(37, 5, generator=torch.Generator().manual_seed(0)) * 50 - 1e4  # far from 0: needs logsumexp
    cursor = {"at": 0}

    def log_weights(k):
        out = weights[cursor["at"]:cursor["at"] + k]
        cursor["at"] += k
        return out

    est, mean = importance_log_likelihood(log_weights, samples=37, chunk_size=5)
    expected = torch.logsumexp(weights.double(), 0) - math.log(37)
    assert torch.allclose(est, expected) and torch.isfinite(est).all()
    assert torch.allclose(mean, weights.double().mean(0))


@pytest.mark.parametrize("source,target", [("mnist", "textured"), ("textured", "mnist")])
def test_converges_to_the_closed_form_conditional(source, target):
    model = toy_meme()
    x = model_data(model, source, target)
    with torch.no_grad():
        truth = true_conditional(model, source, target, x)
    out = marginal_log_likelihood(model, x, samples=20000, chunk_size=5000, batch_size=32,
                                  direction=f"{source}->{target}", progress=False)
    est = torch.tensor(out["estimates"][f"{source}->{target}"]["per_item"])
    assert (est - truth).abs().max() < 0.2
    assert abs((est - truth).mean()) < 0.01


def test_meme_joint_is_conditional_plus_pseudo_sample_marginal():
    model = toy_meme()
    x = model_data(model, "mnist", "textured")
    with torch.no_grad():
        truth_marginal = true_marginal(model, "textured", x)
        truth_joint = true_conditional(model, "mnist", "textured", x) + truth_marginal
    out = marginal_log_likelihood(model, x, samples=20000, chunk_size=5000, batch_size=32,
                                  direction="mnist->textured", progress=False)
    entry = out["estimates"]["mnist->textured"]
    assert entry["marginal_target"]["quantity"] == "log p(textured)"
    assert entry["joint"]["quantity"].startswith("log p(mnist, textured)")
    marginal = torch.tensor(entry["marginal_target"]["per_item"])
    joint = torch.tensor(entry["joint"]["per_item"])
    assert torch.allclose(joint, torch.tensor(entry["per_item"]) + marginal)
    assert abs((marginal - truth_marginal).mean()) < 0.02 and (marginal - truth_marginal).abs().max() < 0.3
    assert abs((joint - truth_joint).mean()) < 0.03
    without = marginal_log_likelihood(model, x, samples=3, joint=False, progress=False)
    assert "joint" not in without["estimates"]["mnist->textured"]


def test_estimate_tightens_with_more_samples():
    model = toy_meme()
    x = model_data(model, "mnist", "textured", n=64)
    with torch.no_grad():
        truth = true_conditional(model, "mnist", "textured", x).mean().item()
    def mean_estimate(k):  # over items and 4 seeds: the expectation the bound orders
        return sum(marginal_log_likelihood(model, x, samples=k, direction="mnist->textured", progress=False, seed=seed)
                   ["estimates"]["mnist->textured"]["mean"] for seed in range(4)) / 4

    means = [mean_estimate(k) for k in (1, 4, 16, 64, 256)]
    # non-decreasing up to Monte-Carlo noise (once converged, the means differ by noise alone)
    assert all(b > a - 0.01 for a, b in zip(means, means[1:])), means
    assert means[0] < means[1] < means[2]
    assert all(m < truth + 0.01 for m in means), (means, truth)
    assert truth - means[0] > 0.3 and truth - means[-1] < 0.02


def test_tightens_on_a_real_tiny_meme(tiny_batch):
    torch.manual_seed(0)
    model = MEME(MEMEConfig(latent_dim=8, pseudo_samples=4))
    batch = tiny_batch(batch_size=6)
    out1 = marginal_log_likelihood(model, batch, samples=1, progress=False)
    out100 = marginal_log_likelihood(model, batch, samples=100, chunk_size=30, progress=False)
    for key in ("mnist->textured", "textured->mnist"):
        # K = 1 is the ELBO ...
        assert out1["estimates"][key]["mean"] == pytest.approx(out1["estimates"][key]["mean_log_weight"])
        # ... and over the same K samples, log-mean-exp >= mean-log (Jensen), item by item; the
        # mean log-weight is the K = 1 ELBO averaged over 100 draws, so the IWAE bound beats it
        per_item = torch.tensor(out100["estimates"][key]["per_item"])
        assert per_item.mean() > out100["estimates"][key]["mean_log_weight"]
        assert torch.isfinite(per_item).all() and len(per_item) == 6


def test_flipped_directions_are_marked_and_quantities_named():
    out = marginal_log_likelihood(toy_meme(direction="mnist->textured"), toy_data(n=4), samples=5, progress=False)
    assert out["trained_direction"] == "mnist->textured"
    assert not out["estimates"]["mnist->textured"]["flipped"]
    assert out["estimates"]["textured->mnist"]["flipped"]
    assert out["estimates"]["textured->mnist"]["quantity"] == "log p(textured | mnist)"
    both = marginal_log_likelihood(toy_meme(), toy_data(n=4), samples=5, progress=False)
    assert not any(e["flipped"] for e in both["estimates"].values())


def test_seeded_and_leaves_the_global_rng_alone():
    model, x = toy_meme(), toy_data(n=4)
    torch.manual_seed(123)
    before = torch.get_rng_state()
    a = marginal_log_likelihood(model, x, samples=7, progress=False, seed=5)
    assert torch.equal(before, torch.get_rng_state())
    b = marginal_log_likelihood(model, x, samples=7, progress=False, seed=5)
    assert a["estimates"] == b["estimates"]


def test_dataset_input_uses_paired_rows_and_max_items():
    from memevae.data import MultimodalDataset

    banks = {"mnist": torch.randn(5, 3), "textured": torch.randn(5, 2)}
    index = {"mnist": torch.tensor([0, 1, 2, 3, 4]), "textured": torch.tensor([0, -1, 1, 2, 3])}
    data = MultimodalDataset(banks, index, torch.zeros(5, dtype=torch.long), "toy")
    out = marginal_log_likelihood(toy_meme(), data, samples=3, progress=False)
    assert out["items"] == 4
    assert marginal_log_likelihood(toy_meme(), data, samples=3, max_items=2, progress=False)["items"] == 2


class ToyJoint(MultimodalVAE):
    """An MVAE-like toy: prior N(0, I) (the base class's), linear-Gaussian likelihoods, a joint
    posterior from both; the likelihood estimate uses only the model contract."""

    def __init__(self, dims=(3, 2), latent=2, noise=1.0):
        nn.Module.__init__(self)
        torch.manual_seed(0)
        self.config = SimpleNamespace(latent_dim=latent)
        self.modalities = nn.ModuleDict({
            name: Modality(name, "toy", (dim,), LinearEncoder(dim, latent), nn.Linear(latent, dim), GaussianLikelihood(noise), 1e-3)
            for name, dim in zip(("mnist", "textured"), dims)
        })
        self.joint = LinearEncoder(sum(dims), latent)
        self.noise = noise

    def posterior(self, data):
        if len(data) == 1:
            return super().posterior(data)
        loc, raw = self.joint(torch.cat([data["mnist"], data["textured"]], -1))
        return DiagonalGaussian(loc, nn.functional.softplus(raw))

    def true_joint(self, data):
        W = torch.cat([self.modalities[m].decoder.weight for m in self.modality_names])
        b = torch.cat([self.modalities[m].decoder.bias for m in self.modality_names])
        cov = W @ W.T + self.noise ** 2 * torch.eye(W.shape[0])
        return D.MultivariateNormal(b, cov).log_prob(torch.cat([data["mnist"], data["textured"]], -1))


def test_joint_estimate_for_non_meme_models_converges():
    model = ToyJoint()
    g = torch.Generator().manual_seed(2)
    with torch.no_grad():  # items drawn from the toy's own joint
        z = torch.randn(16, 2, generator=g)
        x = {m: model.modality(m).decoder(z) + torch.randn(16, model.modality(m).shape[0], generator=g) for m in model.modality_names}
    out = marginal_log_likelihood(model, x, samples=20000, chunk_size=5000, progress=False)
    assert out["model"] == "ToyJoint" and list(out["estimates"]) == ["joint"]
    assert out["estimates"]["joint"]["quantity"] == "log p(mnist, textured)"
    with torch.no_grad():
        truth = model.true_joint(x)
    assert (torch.tensor(out["estimates"]["joint"]["per_item"]) - truth).abs().max() < 0.05


def test_models_without_the_protocol_are_skipped_with_a_reason():
    class NoJoint(ToyJoint):
        def joint_log_weights(self, data, samples):
            raise NotImplementedError("no prior density")

    out = marginal_log_likelihood(NoJoint(), toy_data(n=2), samples=3, progress=False)
    assert out["estimates"] == {} and "no prior density" in out["skipped"]


@pytest.mark.parametrize("kwargs,message", [
    ({"samples": 0}, "samples"),
    ({"batch_size": 0}, "batch_size"),
    ({"direction": "mnist->svhn"}, "direction"),
])
def test_bad_arguments_are_one_line_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        marginal_log_likelihood(toy_meme(), toy_data(n=2), progress=False, **kwargs)


def test_missing_modality_is_an_error():
    with pytest.raises(ValueError, match="lacks modality textured"):
        marginal_log_likelihood(toy_meme(), {"mnist": torch.randn(2, 3)}, progress=False)
    with pytest.raises(ValueError, match="MEME models only"):
        marginal_log_likelihood(ToyJoint(), toy_data(n=2), direction="mnist->textured", progress=False)
