"""MMVAE's model: mixture of experts, stratified sampling (K from EACH expert), the stratified
bound with Tucker et al.'s DReG, the official code's DReG as released, or IWAE; the official
likelihoods and the "official" preset; paired data only."""

import math
import os
import subprocess
import sys

import pytest
import torch
import torch.distributions as D

from memevae.distributions import DiagonalLaplace
from memevae.models import MODELS, MMVAE, MMVAEConfig, build_config

MNIST_WEIGHT = 3 * 32 * 32 / (28 * 28)  # the official llik_scaling for MNIST against SVHN


def small_model(**options):
    options = {"latent_dim": 4, "importance_samples": 3, **options}
    torch.manual_seed(0)
    return MMVAE(MMVAEConfig(**options))


pytestmark = pytest.mark.usefixtures("one_thread")


def test_registered_refuses_unpaired_data_and_has_the_official_defaults(tiny_batch):
    assert MODELS["mmvae"] is MMVAE and not MMVAE.learns_from_unpaired
    config = build_config("mmvae")
    assert (config.importance_samples, config.objective, config.bound, config.posterior, config.likelihood_scaling,
            config.learn_prior, config.likelihood) == (30, "dreg", "looser", "gaussian", "dimension", False, "meme")
    with pytest.raises(ValueError, match="lacks textured.*--paired-fraction 1"):
        small_model()(tiny_batch(modalities=("mnist",)))


def test_k_samples_from_each_expert(tiny_batch):
    """Push the experts far apart: the first K*B latents the decoders see come from the MNIST
    expert, the next K*B from the textured expert, and each decoder runs once over all of them."""
    model = small_model(importance_samples=4).eval()
    with torch.no_grad():
        for name, offset in (("mnist", 50.0), ("textured", -50.0)):
            head = model.modalities[name].encoder.loc
            head.weight.zero_()
            head.bias.fill_(offset)
    inputs = {}
    for name, mod in model.modalities.items():
        mod.decoder.register_forward_hook(lambda m, i, o, key=name: inputs.setdefault(key, []).append(i[0].clone()))
    B, K = 5, 4
    model(tiny_batch(batch_size=B))
    assert [len(v) for v in inputs.values()] == [1, 1]
    for latents in (inputs["mnist"][0], inputs["textured"][0]):
        assert latents.shape == (2 * K * B, 4)
        assert (latents[: K * B] > 25).all() and (latents[K * B:] < -25).all()
    torch.testing.assert_close(inputs["mnist"][0], inputs["textured"][0])


def hand_bound(model, batch, laplace=False, scale=1.0, clamp=()):
    """The looser stratified bound with torch.distributions and explicit loops over experts m,
    samples k and modalities n, drawing the samples in the model's order (expert by expert)."""
    K = model.config.importance_samples
    names = list(model.modalities)
    weights = {"mnist": MNIST_WEIGHT, "textured": 1.0}
    experts = []
    for name in names:
        q = model.encode(name, batch.data[name])
        family = D.Laplace if laplace else D.Normal
        experts.append(D.Independent(family(q.loc, q.scale), 1))
    prior = D.Independent((D.Laplace if laplace else D.Normal)(torch.zeros(4), torch.ones(4)), 1)
    samples = [q.rsample((K,)) for q in experts]
    per_expert = []
    for m in range(len(names)):
        log_w = []
        for k in range(K):
            z = samples[m][k]
            log_q = torch.logsumexp(torch.stack([q.log_prob(z) for q in experts]), 0) - math.log(len(experts))
            total = prior.log_prob(z) - log_q
            for name in names:
                decoded = model.modalities[name].decoder(z)
                if name in clamp:
                    decoded = decoded.clamp(1e-6, 1 - 1e-6)
                total = total + weights[name] * D.Laplace(decoded, scale).log_prob(batch.data[name]).sum((1, 2, 3))
            log_w.append(total)
        per_expert.append(torch.logsumexp(torch.stack(log_w), 0) - math.log(K))
    return -(sum(per_expert) / len(per_expert)).mean()


@pytest.mark.parametrize("objective", ["dreg", "dreg-as-released", "iwae"])
def test_loss_equals_hand_computation(tiny_batch, objective):
    model = small_model(objective=objective).eval()
    batch = tiny_batch(batch_size=3)
    torch.manual_seed(7)
    out = model(batch)
    torch.manual_seed(7)
    torch.testing.assert_close(out.loss, hand_bound(model, batch), rtol=1e-5, atol=1e-3)
    assert out.metrics["paired/bound"] == pytest.approx(-out.metrics["paired/loss"], rel=1e-6)


def test_laplace_posterior_and_prior_equal_hand_computation(tiny_batch):
    model = small_model(posterior="laplace").eval()
    batch = tiny_batch(batch_size=3)
    q = model.encode("mnist", batch.data["mnist"])
    assert isinstance(q, DiagonalLaplace)
    # the official scale link: softmax over the latent dimensions times L (plus 1e-6)
    torch.testing.assert_close(q.scale.sum(-1), torch.full((3,), 4.0 + 4e-6))
    torch.manual_seed(2)
    ours = model(batch).loss
    torch.manual_seed(2)
    torch.testing.assert_close(ours, hand_bound(model, batch, laplace=True), rtol=1e-5, atol=1e-3)


def test_estimators_share_value_and_decoder_and_prior_gradients_but_not_encoder_gradients(tiny_batch):
    batch = tiny_batch()
    results = {}
    objectives = ("dreg", "dreg-as-released", "iwae")
    for objective in objectives:
        model = small_model(objective=objective, architecture="paper", learn_prior=True)
        torch.manual_seed(1)
        out = model(batch)
        out.loss.backward()
        results[objective] = (out.loss.item(), {n: p.grad.clone() for n, p in model.named_parameters()})
    grads = {o: g for o, (_, g) in results.items()}
    decoder = [n for n in grads["dreg"] if ".decoder." in n or n == "prior_logits"]
    encoder = [n for n in grads["dreg"] if ".encoder." in n]
    assert len(decoder) > 1 and encoder
    for a, b in (("dreg", "dreg-as-released"), ("dreg", "iwae"), ("dreg-as-released", "iwae")):
        assert results[a][0] == pytest.approx(results[b][0], rel=1e-6)
        for name in decoder:
            torch.testing.assert_close(grads[a][name], grads[b][name], rtol=1e-4, atol=1e-4)
        assert any(not torch.allclose(grads[a][n], grads[b][n], rtol=1e-3, atol=1e-4) for n in encoder), (a, b)


def test_released_likelihoods_equal_hand_computation(tiny_batch):
    """likelihood="released": Laplace scale 0.75 for every modality, MNIST's location clamped to
    [1e-6, 1 - 1e-6] (official ``vae_mnist.py``), the textured (SVHN-kind) location not clamped."""
    model = small_model(likelihood="released", posterior="laplace").eval()
    with torch.no_grad():  # saturate both decoders' sigmoids: the clamp shows
        for name in ("mnist", "textured"):
            last = [m for m in model.modalities[name].decoder.modules() if hasattr(m, "bias") and m.bias is not None][-1]
            last.bias.fill_(40.0)
    batch = tiny_batch(batch_size=3)
    z = torch.zeros(2, 4)
    assert model.decode("mnist", z).max().item() == torch.tensor(1 - 1e-6).item()  # float32
    assert model.decode("mnist", z).max().item() < 1.0
    assert model.decode("textured", z).max().item() == 1.0
    torch.manual_seed(3)
    ours = model(batch).loss
    torch.manual_seed(3)
    torch.testing.assert_close(ours, hand_bound(model, batch, laplace=True, scale=0.75, clamp=("mnist",)), rtol=1e-5, atol=1e-3)
    torch.manual_seed(3)
    assert small_model(likelihood="released").modalities["mnist"].likelihood.scale == 0.75
    assert small_model().modalities["mnist"].likelihood.scale == 1.0  # the default: MEME's likelihoods


def test_official_preset():
    from memevae.models import preset_options

    options = preset_options("mmvae", "official")
    config = build_config("mmvae", **options)
    assert (config.objective, config.bound, config.importance_samples, config.learn_prior, config.posterior, config.likelihood,
            config.likelihood_scaling, config.latent_dim, config.architecture) == (
        "dreg-as-released", "looser", 30, True, "laplace", "released", "dimension", 20, "paper")
    options["latent_dim"] = 8
    assert preset_options("mmvae", "official")["latent_dim"] == 20  # a copy
    assert preset_options("mmvae", None) == {}
    with pytest.raises(ValueError, match="mmvae has no preset 'paper'; its presets are official"):
        preset_options("mmvae", "paper")
    with pytest.raises(ValueError, match="meme has no preset 'official'; it has no presets"):
        preset_options("meme", "official")


def test_tighter_bound_option(tiny_batch):
    batch = tiny_batch()
    values = {}
    for bound in ("looser", "tighter"):
        torch.manual_seed(4)
        values[bound] = small_model(bound=bound).eval()(batch).loss.item()
    assert values["tighter"] <= values["looser"]  # loss = -bound, and the pooled bound is higher


def test_learnt_prior_scale_is_the_official_softmax_parameterisation(tiny_batch):
    model = small_model(learn_prior=True)
    prior = model.prior(torch.zeros(1))
    torch.testing.assert_close(prior.scale, torch.ones(4))  # theta = 0: unit scale
    with torch.no_grad():
        model.prior_logits.copy_(torch.tensor([0.0, 1.0, 2.0, 3.0]))
    torch.testing.assert_close(model.prior(torch.zeros(1)).scale, torch.softmax(model.prior_logits, 0) * 4)
    model(tiny_batch()).loss.backward()
    assert model.prior_logits.grad is not None and model.prior_logits.grad.abs().sum() > 0
    assert not hasattr(small_model(), "prior_logits")


def test_unscaled_likelihoods_option(tiny_batch):
    batch = tiny_batch()
    torch.manual_seed(0)
    scaled = small_model().eval()(batch).metrics
    torch.manual_seed(0)
    plain = small_model(likelihood_scaling="none").eval()(batch).metrics
    assert scaled["paired/mnist/log_likelihood"] == pytest.approx(plain["paired/mnist/log_likelihood"], rel=1e-6)
    assert scaled["paired/loss"] > plain["paired/loss"]  # MNIST's (negative) log-likelihood counts 3.92 times


def test_joint_log_weights_are_unweighted_and_stratified(tiny_batch):
    model = small_model().eval()
    batch = tiny_batch(batch_size=3)
    for samples in (4, 5):
        log_w = model.joint_log_weights(batch.data, samples)
        assert log_w.shape == (samples, 3) and torch.isfinite(log_w).all()
    # with 2 samples: one from each expert, scored with lambda = 1
    torch.manual_seed(9)
    log_w = model.joint_log_weights(batch.data, 2)
    torch.manual_seed(9)
    experts = [model.encode(m, batch.data[m]) for m in model.modality_names]
    z = torch.cat([q.rsample((1,)) for q in experts])
    log_q = torch.logsumexp(torch.stack([q.log_prob(z) for q in experts]), 0) - math.log(2)
    expected = D.Independent(D.Normal(torch.zeros(4), torch.ones(4)), 1).log_prob(z) - log_q
    for name in model.modality_names:
        expected = expected + D.Laplace(model.modalities[name].decoder(z.flatten(0, 1)).view(2, 3, *batch.data[name].shape[1:]),
                                        1.0).log_prob(batch.data[name]).sum((2, 3, 4))
    torch.testing.assert_close(log_w, expected, rtol=1e-5, atol=1e-3)


@pytest.mark.parametrize("field,value,match", [
    ("importance_samples", 0, "importance_samples"), ("objective", "elbo", "objective"), ("bound", "tight", "bound"),
    ("posterior", "student", "posterior"), ("learn_prior", "yes", "learn_prior"),
    ("likelihood_scaling", "auto", "likelihood_scaling"), ("latent_dim", 0, "latent_dim")])
def test_config_rejects_bad_values(field, value, match):
    with pytest.raises(ValueError, match=match):
        MMVAEConfig(**{field: value})


def test_wrong_input_shape_is_a_clear_error_for_both_families():
    for posterior in ("gaussian", "laplace"):
        with pytest.raises(ValueError, match=r"expects inputs of shape \(batch, 1, 28, 28\)"):
            small_model(posterior=posterior).encode("mnist", torch.rand(2, 784))


def test_any_latent_size_and_both_architectures(tiny_batch):
    for latent_dim in (1, 20, 64):
        for architecture in ("paper", "release"):
            model = small_model(latent_dim=latent_dim, architecture=architecture, importance_samples=2)
            out = model(tiny_batch())
            out.loss.backward()
            assert torch.isfinite(out.loss) and all(math.isfinite(v) for v in out.metrics.values())


def test_trains_on_the_shipped_sample():
    """A few dozen Adam steps on paired batches of the real sample: the loss falls."""
    from memevae.data import load_pairs

    data = load_pairs("mnist-textured", "train")
    rows = data.patterns()[tuple(data.modalities)][:96]
    model = small_model(latent_dim=8, architecture="paper", importance_samples=2)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for step in range(24):
        out = model(data.batch(rows[(step % 3) * 32:(step % 3 + 1) * 32]))
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
        losses.append(out.loss.item())
    assert sum(losses[-3:]) < sum(losses[:3]), losses


def test_runs_train_refuses_partial_schemes(tmp_path):
    from memevae import DataConfig, TrainConfig, train

    with pytest.raises(ValueError, match="mmvae cannot learn from unpaired data"):
        train(tmp_path / "run", model="mmvae", data=DataConfig(paired_fraction=0.5, unpaired="mnist"),
              training=TrainConfig(epochs=1), progress=False)


@pytest.mark.slow  # the command line end to end, in subprocesses
def test_cli_trains_one_epoch(tmp_path):
    out = tmp_path / "run"
    result = subprocess.run([sys.executable, "-m", "memevae.cli", "train", "--model", "mmvae", "--epochs", "1", "--quiet",
                             "--batch-size", "256", "--preset", "official", "--latent-dim", "8", "--importance-samples", "1",
                             "--out", str(out)],
                            capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr
    from memevae import load_run

    run = load_run(out)
    assert run.config["model"] == "mmvae" and run.model.config.posterior == "laplace" and run.model.config.learn_prior
    # the preset is recorded with the options it expanded to; the options given override it
    assert run.config["preset"] == "official"
    assert run.config["model_options"]["objective"] == "dreg-as-released" and run.model.config.likelihood == "released"
    assert run.model.config.latent_dim == 8 and run.model.config.importance_samples == 1
    assert math.isfinite(run.history[-1]["train/paired/loss"])


@pytest.mark.parametrize("name", ["memevae.models.mmvae.model", "memevae.models.mvae.model"])
def test_docstring_examples(name):
    import doctest
    import importlib

    assert doctest.testmod(importlib.import_module(name)).failed == 0
