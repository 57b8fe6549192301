"""MEME's model: weight sharing, one pass per network, gradients where (and only where) Eq. 4/6 put them."""

import math

import pytest
import torch
import torch.distributions as D

from memevae.models import MEME, MEMEConfig


def small_model(**options):
    options = {"latent_dim": 4, "pseudo_samples": 3, "classifier_samples": 3, **options}
    torch.manual_seed(0)
    return MEME(MEMEConfig(**options))


def network_grads(model):
    """Whether each of the four networks and each pseudo-sample set received a non-zero gradient."""
    out = {}
    for name, mod in model.modalities.items():
        for part in ("encoder", "decoder"):
            grads = [p.grad for p in getattr(mod, part).parameters()]
            out[f"{part}:{name}"] = any(g is not None and g.abs().sum() > 0 for g in grads)
        g = model.pseudo_samples[name].grad
        out[f"pseudo:{name}"] = g is not None and g.abs().sum() > 0
    return out


def test_exactly_four_networks_serve_every_term():
    model = small_model()
    children = {name: sorted(n for n, _ in mod.named_children()) for name, mod in model.modalities.items()}
    assert children == {"mnist": ["decoder", "encoder"], "textured": ["decoder", "encoder"]}
    network_params = sum(p.numel() for mod in model.modalities.values() for p in mod.parameters())
    pseudo_params = sum(p.numel() for p in model.pseudo_samples.parameters())
    assert network_params + pseudo_params == sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("direction", ["both", "mnist->textured", "textured->mnist"])
def test_paired_loss_trains_all_four_networks(tiny_batch, direction):
    """Even one direction s->t trains enc_t (conditional prior) and dec_t (classifier q(t|z))."""
    model = small_model(direction=direction)
    model(tiny_batch()).loss.backward()
    grads = network_grads(model)
    assert all(grads[f"{part}:{m}"] for part in ("encoder", "decoder") for m in ("mnist", "textured"))
    assert not grads["pseudo:mnist"] and not grads["pseudo:textured"]


def test_each_network_runs_once_per_paired_step(tiny_batch):
    """Each encoder output serves as posterior and as conditional prior; each decoder scores all
    its latents (K+1 classifier samples and the likelihood sample) in a single pass."""
    model = small_model()
    calls = {}
    for name, mod in model.modalities.items():
        for part in ("encoder", "decoder"):
            key = f"{part}:{name}"
            getattr(mod, part).register_forward_hook(lambda m, i, o, key=key: calls.update({key: calls.get(key, []) + [i[0].shape[0]]}))
    model(tiny_batch(batch_size=5))
    K = model.config.classifier_samples
    assert calls == {"encoder:mnist": [5], "encoder:textured": [5], "decoder:mnist": [(K + 2) * 5], "decoder:textured": [(K + 2) * 5]}


def test_classifier_logsumexp_uses_the_posterior_sample(tiny_batch):
    """The latent scored by p(s|z) in direction s->t is row 0 of the K+1 latents decoded by the
    classifier q(t|z) in that direction (App. D)."""
    model = small_model(direction="mnist->textured")
    seen = {}
    model.modalities["mnist"].decoder.register_forward_hook(lambda m, i, o: seen.update(likelihood=i[0].clone()))
    model.modalities["textured"].decoder.register_forward_hook(lambda m, i, o: seen.update(classifier=i[0].clone()))
    model(tiny_batch(batch_size=5))
    K = model.config.classifier_samples
    assert seen["classifier"].shape[0] == (K + 1) * 5
    torch.testing.assert_close(seen["likelihood"], seen["classifier"][:5])


def hand_paired_loss(model, batch):
    """Eq. 2/6 recomputed with torch.distributions and explicit loops, drawing the same noise."""
    cfg = model.config
    K, c = cfg.classifier_samples, cfg.classifier_scale
    post = {}
    for name, x in batch.data.items():
        q = model.modalities[name].encode(x)
        post[name] = D.Independent(D.Normal(q.loc, q.scale), 1)
    samples = {s: post[s].rsample((K + 1,)) for s, _ in cfg.directions()}
    total = 0.0
    for s, (t,) in cfg.directions():
        x_s, x_t = batch.data[s], batch.data[t]
        dec_s, dec_t = model.modalities[s].decoder, model.modalities[t].decoder
        z = samples[s]
        log_ps = D.Laplace(dec_s(z[0]), 1.0).log_prob(x_s).sum((1, 2, 3))
        kl = D.kl_divergence(post[s], post[t])
        log_qt = torch.stack([D.Laplace(dec_t(z[k]), 1.0).log_prob(x_t).sum((1, 2, 3)) for k in range(K + 1)])
        log_qt_s = torch.log(torch.exp(log_qt - log_qt.max(0).values).mean(0)) + log_qt.max(0).values
        w = torch.exp(log_qt[0] - log_qt_s)
        total = total + (w * (log_ps - kl - log_qt[0]) + c * log_qt_s)
    return -(total / len(cfg.directions())).mean()


def test_paired_loss_equals_hand_computation(tiny_batch):
    model = small_model().eval()
    batch = tiny_batch(batch_size=3)
    torch.manual_seed(7)
    ours = model(batch).loss
    torch.manual_seed(7)
    expected = hand_paired_loss(model, batch)
    torch.testing.assert_close(ours, expected, rtol=1e-5, atol=1e-3)


def test_unpaired_loss_equals_hand_computation(tiny_batch):
    model = small_model().eval()
    batch = tiny_batch(batch_size=3, modalities=("mnist",))
    torch.manual_seed(3)
    ours = model(batch).loss
    torch.manual_seed(3)
    q = model.modalities["mnist"].encode(batch.data["mnist"])
    posterior = D.Independent(D.Normal(q.loc, q.scale), 1)
    z = posterior.rsample()
    prior = model.modalities["textured"].encode(model.pseudo_samples["textured"])
    components = [D.Independent(D.Normal(prior.loc[i], prior.scale[i]), 1).log_prob(z) for i in range(3)]
    log_prior = torch.logsumexp(torch.stack(components), 0) - math.log(3)
    log_ps = D.Laplace(model.modalities["mnist"].decoder(z), 1.0).log_prob(batch.data["mnist"]).sum((1, 2, 3))
    torch.testing.assert_close(ours, -(log_ps + log_prior - posterior.log_prob(z)).mean(), rtol=1e-5, atol=1e-3)


@pytest.mark.parametrize("observed,other", [("mnist", "textured"), ("textured", "mnist")])
def test_unpaired_gradients(tiny_batch, observed, other):
    """Eq. 4: gradients reach enc_s, dec_s, enc_t and t's pseudo-samples; dec_t (q(t|z)) gets none."""
    model = small_model()
    model(tiny_batch(modalities=(observed,))).loss.backward()
    grads = network_grads(model)
    assert grads[f"encoder:{observed}"] and grads[f"decoder:{observed}"]
    assert grads[f"encoder:{other}"] and grads[f"pseudo:{other}"]
    assert not grads[f"decoder:{other}"] and not grads[f"pseudo:{observed}"]


def test_estimators_differ_only_in_gradient(tiny_batch):
    batch = tiny_batch()
    results = {}
    for estimator in ("stop-gradient", "full"):
        model = small_model(estimator=estimator)
        torch.manual_seed(1)
        out = model(batch)
        out.loss.backward()
        results[estimator] = (out.loss.item(), model.modalities["mnist"].encoder.loc.weight.grad.clone())
    assert results["full"][0] == pytest.approx(results["stop-gradient"][0], rel=1e-6)
    assert not torch.allclose(results["full"][1], results["stop-gradient"][1])


def test_monte_carlo_kl_option_changes_only_the_prior_term(tiny_batch):
    batch = tiny_batch()
    values = {}
    for kl in ("analytic", "monte-carlo"):
        torch.manual_seed(2)
        values[kl] = small_model(kl=kl).eval()(batch).metrics
    key = "paired/mnist->textured/log_likelihood"
    assert values["analytic"][key] == values["monte-carlo"][key]
    assert values["analytic"]["paired/mnist->textured/log_prior_ratio"] != values["monte-carlo"]["paired/mnist->textured/log_prior_ratio"]


@pytest.mark.parametrize("field,value,match", [
    ("direction", "svhn->mnist", "direction"), ("kl", "exact", "kl"), ("estimator", "naive", "estimator"),
    ("classifier_samples", 0, "classifier_samples"), ("pseudo_samples", 0, "pseudo_samples"), ("latent_dim", 0, "latent_dim"),
    ("architecture", "resnet", "architecture")])
def test_config_rejects_bad_values(field, value, match):
    with pytest.raises(ValueError, match=match):
        MEMEConfig(**{field: value})


def test_wrong_input_shape_is_a_clear_error():
    model = small_model()
    with pytest.raises(ValueError, match=r"expects inputs of shape \(batch, 1, 28, 28\)"):
        model.encode("mnist", torch.rand(2, 784))
    with pytest.raises(ValueError, match="unknown modality 'svhn'"):
        model.encode("svhn", torch.rand(2, 3, 32, 32))


def test_any_latent_size_works(tiny_batch):
    for latent_dim in (1, 20, 64):
        for architecture in ("paper", "release"):
            model = small_model(latent_dim=latent_dim, architecture=architecture)
            assert torch.isfinite(model(tiny_batch()).loss)
