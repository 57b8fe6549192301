"""The likelihood metric's fast path (encoders once per batch, the mixture prior in cached blocks)
computes what the straightforward estimate computes: a reference kept here, in float64."""

import math

import pytest
import torch

from memevae.distributions import gaussian_log_prob, gaussian_mixture_log_prob
from memevae.evaluation.metrics.likelihood import marginal_log_likelihood
from memevae.models import MEME, MMVAE, MEMEConfig, MMVAEConfig

pytestmark = pytest.mark.usefixtures("one_thread")


def reference_estimates(model, data, tasks, samples, chunk_size, batch_size, seed):
    """{task: (per-item estimate, mean log-weight)}: every chunk of draws encodes its batch (and
    the pseudo-samples) afresh, the mixture prior is evaluated over all (K, B, N, L) at once, and
    the log-mean-exp is taken over all K log-weights together; noise drawn in the metric's order
    (batches, then tasks, then chunks)."""
    out = {task: ([], []) for task in tasks}
    n = len(next(iter(data.values())))
    with torch.no_grad(), torch.random.fork_rng():
        torch.manual_seed(seed)
        for rows in torch.arange(n).split(batch_size):
            x = {m: v[rows] for m, v in data.items()}
            for task, log_weights in tasks.items():
                chunks, done = [], 0
                while done < samples:
                    k = min(chunk_size, samples - done)
                    chunks.append(log_weights(x, k))
                    done += k
                weights = torch.cat(chunks).double()
                out[task][0].append(torch.logsumexp(weights, 0) - math.log(samples))
                out[task][1].append(weights.mean(0))
    return {task: (torch.cat(est), torch.cat(mean)) for task, (est, mean) in out.items()}


def meme_tasks(model):
    def conditional(x, s, t, k):
        proposal, prior = model.encode(s, x[s]), model.encode(t, x[t])
        z = proposal.rsample((k,))
        return model.log_likelihood(s, x[s], z) + prior.log_prob(z) - proposal.log_prob(z)

    def marginal(x, m, k):
        proposal = model.encode(m, x[m])
        z = proposal.rsample((k,))
        (other,) = [o for o in model.modality_names if o != m]
        mixture = model.encode(other, model.pseudo_samples[other])
        per_component = gaussian_log_prob(z.unsqueeze(-2), mixture.loc, mixture.scale)  # (k, B, N)
        log_prior = torch.logsumexp(per_component, -1) - math.log(len(mixture.loc))
        return model.log_likelihood(m, x[m], z) + log_prior - proposal.log_prob(z)

    return {"mnist->textured": lambda x, k: conditional(x, "mnist", "textured", k),
            "textured->mnist": lambda x, k: conditional(x, "textured", "mnist", k),
            "marginal:textured": lambda x, k: marginal(x, "textured", k),
            "marginal:mnist": lambda x, k: marginal(x, "mnist", k)}


def float64_data(tiny_batch, n):
    return {m: v.double() for m, v in tiny_batch(batch_size=n, seed=3).data.items()}


def test_meme_estimates_equal_the_reference_in_float64(tiny_batch):
    torch.manual_seed(0)
    model = MEME(MEMEConfig(latent_dim=8, pseudo_samples=5)).double().eval()
    data = float64_data(tiny_batch, 7)
    settings = dict(samples=23, chunk_size=10, batch_size=3, seed=4)
    out = marginal_log_likelihood(model, data, progress=False, **settings)["estimates"]
    reference = reference_estimates(model, data, meme_tasks(model), **settings)
    for key in ("mnist->textured", "textured->mnist"):
        target = key.split("->")[1]
        for entry, task in ((out[key], key), (out[key]["marginal_target"], f"marginal:{target}")):
            estimate, mean = reference[task]
            assert torch.isfinite(estimate).all()
            torch.testing.assert_close(torch.tensor(entry["per_item"], dtype=torch.float64), estimate, rtol=0, atol=1e-10)
            assert entry["mean_log_weight"] == pytest.approx(mean.mean().item(), rel=0, abs=1e-10)


def test_mmvae_joint_estimate_equals_the_reference_in_float64(tiny_batch):
    torch.manual_seed(0)
    model = MMVAE(MMVAEConfig(latent_dim=8)).double().eval()
    data = float64_data(tiny_batch, 5)

    def joint(x, k):  # stratified over the two experts when k is even, a draw per sample otherwise
        mixture = model.posterior(x)
        z = torch.cat([q.rsample((k // 2,)) for q in mixture.experts]) if k % 2 == 0 else mixture.rsample((k,))
        _, log_prior, log_posterior, log_likelihoods = model.log_weights(x, mixture.experts, z, detach_experts=False)
        return log_prior + sum(log_likelihoods.values()) - log_posterior

    settings = dict(samples=21, chunk_size=8, batch_size=2, seed=1)  # chunks of 8, 8 and 5 draws
    out = marginal_log_likelihood(model, data, progress=False, **settings)["estimates"]["joint"]
    estimate, mean = reference_estimates(model, data, {"joint": joint}, **settings)["joint"]
    torch.testing.assert_close(torch.tensor(out["per_item"], dtype=torch.float64), estimate, rtol=0, atol=1e-10)
    assert out["mean_log_weight"] == pytest.approx(mean.mean().item(), rel=0, abs=1e-10)


def test_encoders_run_once_per_batch_not_once_per_chunk(tiny_batch):
    """Before, every chunk of draws encoded its batch again, and the marginal's prior encoded all
    the pseudo-samples again: 10 chunks of K = 1000 ran each encoder 10 times per batch."""
    torch.manual_seed(0)
    model = MEME(MEMEConfig(latent_dim=8, pseudo_samples=4))
    calls = []
    for name, modality in model.modalities.items():
        modality.encoder.register_forward_hook(lambda module, args, output, name=name: calls.append((name, len(args[0]))))
    marginal_log_likelihood(model, tiny_batch(batch_size=4).data, samples=30, chunk_size=5, batch_size=2, progress=False)
    # per batch of 2 and modality: the conditional's proposal, the other conditional's prior, the
    # marginal's proposal (2 items each) and the other marginal's mixture prior (4 pseudo-samples)
    assert sorted(calls) == sorted([(m, 2) for m in ("mnist", "textured") for _ in range(2 * 3)]
                                   + [(m, 4) for m in ("mnist", "textured") for _ in range(2)])


def test_blocked_mixture_density_equals_the_whole_one():
    g = torch.Generator().manual_seed(0)
    z, loc, scale = torch.randn(7, 5, 3, generator=g), torch.randn(4, 3, generator=g), torch.rand(4, 3, generator=g) + 0.1
    per_component = gaussian_log_prob(z.unsqueeze(-2), loc, scale)
    whole = torch.logsumexp(per_component, -1) - math.log(4)
    with torch.no_grad():
        import memevae.distributions as distributions

        block = distributions._MIXTURE_BLOCK
        try:
            distributions._MIXTURE_BLOCK = 3 * 12  # three rows of z per block: 12 blocks, the last one short
            assert torch.equal(gaussian_mixture_log_prob(z, loc, scale), whole)
        finally:
            distributions._MIXTURE_BLOCK = block
        assert gaussian_mixture_log_prob(z[:0], loc, scale).shape == (0, 5)
