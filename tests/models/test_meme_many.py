"""MEME beyond two modalities (App. E, Eq. 11): the bimodal objective is the M = 2 case exactly,
M = 3 matches a hand computation for each combination rule, and every network still runs once."""

import math

import pytest
import torch
import torch.distributions as D

from memevae.data import Batch
from memevae.models import MEME, MEMEConfig
from memevae.objectives import meme_paired_bound

THREE = {"a": "mnist-mlp", "b": "mnist-mlp", "c": "mnist-mlp"}


def model_of(modalities=None, **options):
    options = {"latent_dim": 3, "pseudo_samples": 2, "classifier_samples": 2, **options}
    torch.manual_seed(0)
    return MEME(MEMEConfig(**({"modalities": modalities} if modalities else {}), **options)).double()


def batch_of(names, batch_size=3, seed=0, shapes=None):
    generator = torch.Generator().manual_seed(seed)
    shapes = shapes or {"mnist": (1, 28, 28), "textured": (3, 32, 32)}
    data = {m: torch.rand(batch_size, *shapes.get(m, (1, 28, 28)), generator=generator, dtype=torch.float64) for m in names}
    return Batch(data, torch.arange(batch_size) % 10)


def bimodal_paired_loss(model, data):
    """MEME's paired step as memevae computed it for two modalities before the many-modality form
    (the code path of Eq. 2/6 alone, kept here verbatim in its arithmetic): directions (s, t),
    each decoder over its classifier and likelihood latents in one pass."""
    cfg = model.config
    first, second = model.modality_names
    directions = [(first, second), (second, first)] if cfg.direction == "both" else [tuple(cfg.direction.split("->"))]
    posteriors = {name: model.modalities[name].encode(x) for name, x in data.items()}
    samples = {source: posteriors[source].rsample((cfg.classifier_samples + 1,)) for source, _ in directions}
    log_classifier, log_likelihood = {}, {}
    for name, mod in model.modalities.items():
        chunks, slots = [], []
        for source, target in directions:
            if target == name:
                chunks.append(samples[source]); slots.append(("classifier", source))
            if source == name:
                chunks.append(samples[name][:1]); slots.append(("likelihood", name))
        scores = mod.log_likelihood(data[name], mod.decode(torch.cat(chunks)))
        for (role, source), part in zip(slots, scores.split([len(c) for c in chunks])):
            if role == "classifier":
                log_classifier[source] = part
            else:
                log_likelihood[source] = part[0]
    bounds = []
    for source, target in directions:
        posterior, prior = posteriors[source], posteriors[target]
        if cfg.kl == "analytic":
            log_prior_ratio = -posterior.kl(prior)
        else:
            z = samples[source][0]
            log_prior_ratio = prior.log_prob(z) - posterior.log_prob(z)
        bounds.append(meme_paired_bound(log_likelihood[source], log_prior_ratio, log_classifier[source],
                                        cfg.classifier_scale, cfg.estimator).bound)
    return -torch.stack(bounds).mean(0).mean()


def gradients(model):
    return {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("options", [{}, {"kl": "monte-carlo"}, {"direction": "textured->mnist"},
                                     {"estimator": "full"}, {"combine": "mixture"}])
def test_two_modalities_reduce_exactly_to_the_bimodal_objective(options):
    """Values and gradients of every parameter equal the bimodal code path's on the same noise
    (float64, 1e-10), for each option that changes the paired arithmetic."""
    batch = batch_of(("mnist", "textured"))
    results = []
    for loss_of in (lambda m: m(batch).loss, lambda m: bimodal_paired_loss(m, batch.data)):
        model = model_of(**options)
        torch.manual_seed(11)
        loss = loss_of(model)
        loss.backward()
        results.append((loss.detach(), gradients(model)))
    (ours, our_grads), (reference, reference_grads) = results
    assert our_grads.keys() == reference_grads.keys() and len(our_grads) > 0
    torch.testing.assert_close(ours, reference, rtol=1e-10, atol=1e-10)
    for name in reference_grads:
        torch.testing.assert_close(our_grads[name], reference_grads[name], rtol=1e-10, atol=1e-10, msg=name)


def laplace_log_likelihood(model, name, x, z):
    return D.Laplace(model.modalities[name].decoder(z), 1.0).log_prob(x).sum((1, 2, 3))


def hand_three_modality_loss(model, data, combine):
    """Eq. 11 for S = {a, b, c} recomputed with torch.distributions and explicit loops: for each s,
    T = S - {s}; z_0..z_K ~ q(z|s); log q(T|z_k) = sum_{t in T} log p(t|z_k) by t's decoder;
    log q(T|s) = log mean_k q(T|z_k); w = q(T|z_0)/q(T|s);
    L_s = w (log p(s|z_0) + log p(z_0|T) - log q(z_0|s) - log q(T|z_0)) + c log q(T|s), with p(z|T)
    the product (precision-weighted Gaussian) or the equal mixture of q(z|t), t in T; the loss is
    -mean over items of (1/3) sum_s L_s."""
    cfg = model.config
    K, c = cfg.classifier_samples, cfg.classifier_scale
    post = {}
    for name, x in data.items():
        q = model.modalities[name].encode(x)
        post[name] = (q.loc, q.scale)
    normal = lambda loc, scale: D.Independent(D.Normal(loc, scale), 1)  # noqa: E731
    samples = {s: normal(*post[s]).rsample((K + 1,)) for s in data}
    total = 0.0
    for s in data:
        others = [t for t in data if t != s]
        z = samples[s]
        if combine == "product":
            precision = sum(post[t][1] ** -2 for t in others)
            loc = sum(post[t][0] * post[t][1] ** -2 for t in others) / precision
            prior_log_prob = normal(loc, precision ** -0.5).log_prob(z[0])
            kl = D.kl_divergence(normal(*post[s]), normal(loc, precision ** -0.5))
            log_prior_ratio = -kl
        else:
            mixture = D.MixtureSameFamily(D.Categorical(torch.ones(z.shape[1], len(others), dtype=z.dtype)),
                                          normal(torch.stack([post[t][0] for t in others], 1),
                                                 torch.stack([post[t][1] for t in others], 1)))
            prior_log_prob = mixture.log_prob(z[0])
            log_prior_ratio = prior_log_prob - normal(*post[s]).log_prob(z[0])
        log_q_T = torch.stack([sum(laplace_log_likelihood(model, t, data[t], z[k]) for t in others) for k in range(K + 1)])
        top = log_q_T.max(0).values
        log_q_T_s = top + torch.log(torch.exp(log_q_T - top).mean(0))
        w = torch.exp(log_q_T[0] - log_q_T_s)
        log_ps = laplace_log_likelihood(model, s, data[s], z[0])
        total = total + w * (log_ps + log_prior_ratio - log_q_T[0]) + c * log_q_T_s
    return -(total / len(data)).mean()


@pytest.mark.parametrize("combine,kl", [("product", "analytic"), ("mixture", "monte-carlo")])
def test_three_modalities_equal_a_hand_computation(combine, kl):
    model = model_of(THREE, combine=combine, kl=kl).eval()
    batch = batch_of(("a", "b", "c"), batch_size=2)
    torch.manual_seed(5)
    ours = model(batch).loss
    torch.manual_seed(5)
    expected = hand_three_modality_loss(model, batch.data, combine)
    torch.testing.assert_close(ours, expected, rtol=1e-10, atol=1e-9)


def test_the_combination_rule_matters_with_three_modalities():
    batch = batch_of(("a", "b", "c"))
    losses = {}
    for combine in ("product", "mixture"):
        torch.manual_seed(5)
        losses[combine] = model_of(THREE, combine=combine, kl="monte-carlo").eval()(batch).loss.item()
    assert losses["product"] != pytest.approx(losses["mixture"], rel=1e-6)


def test_two_observed_of_three_use_the_two_modality_terms_and_train_only_their_networks():
    """An item observing {a, c} of {a, b, c} contributes 0.5 (L_ac + L_ca): b's networks and
    every pseudo-sample get no gradient."""
    model = model_of(THREE)
    batch = batch_of(("a", "c"))
    torch.manual_seed(2)
    out = model(batch)
    assert {k.rsplit("/", 1)[0] for k in out.metrics if k.count("/") == 2} == {"paired/a->c", "paired/c->a"}
    out.loss.backward()
    for name in ("a", "c"):
        assert model.modalities[name].encoder.loc.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.modalities["b"].parameters())
    assert all(p.grad is None for p in model.pseudo_samples.parameters())


def test_each_network_runs_once_per_step_with_three_modalities():
    """Encoders once over B items; decoder m once over its likelihood sample and the K+1
    classifier samples of each other modality's term: (1 + 2 (K+1)) B latents."""
    model = model_of(THREE)
    calls = {}
    for name, mod in model.modalities.items():
        for part in ("encoder", "decoder"):
            key = f"{part}:{name}"
            getattr(mod, part).register_forward_hook(lambda m, i, o, key=key: calls.setdefault(key, []).append(i[0].shape[0]))
    model(batch_of(("a", "b", "c"), batch_size=5))
    K = model.config.classifier_samples
    assert calls == {**{f"encoder:{m}": [5] for m in "abc"}, **{f"decoder:{m}": [(1 + 2 * (K + 1)) * 5] for m in "abc"}}


def test_one_modality_of_three_has_the_mixture_over_both_others_pseudo_samples():
    """Eq. 4 generalised: p_lambda(z) = (1/((M-1) N)) sum over the other modalities t and their
    pseudo-samples u_ti of q(z|u_ti)."""
    model = model_of(THREE).eval()
    with torch.no_grad():
        for name in "abc":
            model.pseudo_samples[name].uniform_()
    batch = batch_of(("b",))
    torch.manual_seed(3)
    ours = model(batch).loss
    torch.manual_seed(3)
    q = model.modalities["b"].encode(batch.data["b"])
    posterior = D.Independent(D.Normal(q.loc, q.scale), 1)
    z = posterior.rsample()
    components = []
    for other in ("a", "c"):
        prior = model.modalities[other].encode(model.pseudo_samples[other])
        components += [D.Independent(D.Normal(prior.loc[i], prior.scale[i]), 1).log_prob(z) for i in range(2)]
    log_prior = torch.logsumexp(torch.stack(components), 0) - math.log(4)
    log_ps = laplace_log_likelihood(model, "b", batch.data["b"], z)
    torch.testing.assert_close(ours, -(log_ps + log_prior - posterior.log_prob(z)).mean(), rtol=1e-10, atol=1e-10)


def test_conditional_directions_are_every_ordered_pair():
    model = model_of(THREE)
    assert [(s, t) for s, t, trained in model.conditional_directions() if trained] == [
        ("a", "b"), ("a", "c"), ("b", "a"), ("b", "c"), ("c", "a"), ("c", "b")]


@pytest.mark.parametrize("options,match", [
    ({"combine": "mixture"}, "kl='monte-carlo'"),
    ({"direction": "a->b"}, "one-directional objective is defined for two modalities"),
    ({"combine": "sum"}, "combine")])
def test_many_modality_config_errors_name_the_fix(options, match):
    with pytest.raises(ValueError, match=match):
        MEMEConfig(modalities=THREE, **options)


@pytest.mark.parametrize("combine", ["product", "mixture"])
def test_the_posterior_given_a_subset_follows_the_combination_rule(combine):
    """Generation from several modalities (leave-one-out coherence) uses the model's own rule."""
    model = model_of(THREE, combine=combine, kl="monte-carlo").eval()
    data = batch_of(("a", "c")).data
    q = model.posterior(data)
    qa, qc = model.encode("a", data["a"]), model.encode("c", data["c"])
    z = torch.randn(4, 3, 3, dtype=torch.float64)
    if combine == "product":
        expected = D.Independent(D.Normal((qa.loc / qa.scale**2 + qc.loc / qc.scale**2) / (qa.scale**-2 + qc.scale**-2),
                                          (qa.scale**-2 + qc.scale**-2) ** -0.5), 1).log_prob(z)
    else:
        expected = torch.logaddexp(qa.log_prob(z), qc.log_prob(z)) - math.log(2)
    torch.testing.assert_close(q.log_prob(z), expected, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(model.posterior({"a": data["a"]}).loc, qa.loc)
