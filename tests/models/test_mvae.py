"""MVAE's model: product of experts with the prior expert, sub-sampled ELBOs, every partial scheme."""

import math
import os
import subprocess
import sys

import pytest
import torch
import torch.distributions as D

from memevae.models import MODELS, MVAE, MVAEConfig, build_config


def small_model(**options):
    options = {"latent_dim": 4, **options}
    torch.manual_seed(0)
    return MVAE(MVAEConfig(**options))


pytestmark = pytest.mark.usefixtures("one_thread")


def poe_by_hand(experts):
    """Product of N(0, 1) and the experts (loc, scale), written out per dimension."""
    precision = 1.0 + sum(scale.pow(-2) for _, scale in experts)
    loc = sum(loc * scale.pow(-2) for loc, scale in experts) / precision
    return loc, precision.rsqrt()


def test_registered_and_built_by_name():
    assert MODELS["mvae"] is MVAE and MVAE.learns_from_unpaired
    assert isinstance(build_config("mvae", latent_dim=3), MVAEConfig)


def test_unimodal_posterior_is_the_product_with_the_prior_expert(tiny_batch):
    model = small_model().eval()
    x = tiny_batch().data["mnist"]
    expert = model.modalities["mnist"].encode(x)
    q = model.encode("mnist", x)
    loc, scale = poe_by_hand([(expert.loc, expert.scale)])
    torch.testing.assert_close(q.loc, loc)
    torch.testing.assert_close(q.scale, scale)
    assert (q.scale < expert.scale).all() and (q.scale < 1).all()  # a product is sharper than each factor


def test_joint_posterior_is_the_product_of_prior_and_both_experts(tiny_batch):
    model = small_model().eval()
    data = tiny_batch().data
    experts = [(q.loc, q.scale) for q in (model.modalities[m].encode(x) for m, x in data.items())]
    q = model.posterior(data)
    loc, scale = poe_by_hand(experts)
    torch.testing.assert_close(q.loc, loc)
    torch.testing.assert_close(q.scale, scale)


def hand_bound(model, batch, beta=1.0, weights=None):
    """Joint ELBO + each unimodal ELBO (or the one ELBO), with torch.distributions and loops,
    drawing the posterior samples in the model's order (joint, then each modality)."""
    weights = weights or {}
    observed = list(batch.data)
    experts = {m: model.modalities[m].encode(x) for m, x in batch.data.items()}
    subsets = [observed] + ([[m] for m in observed] if len(observed) > 1 else [])
    prior = D.Independent(D.Normal(torch.zeros(4), torch.ones(4)), 1)
    total = 0.0
    for subset in subsets:
        loc, scale = poe_by_hand([(experts[m].loc, experts[m].scale) for m in subset])
        q = D.Independent(D.Normal(loc, scale), 1)
        z = q.rsample()
        elbo = -beta * D.kl_divergence(q, prior)
        for m in subset:  # each ELBO reconstructs only the modalities it conditions on
            decoded = model.modalities[m].decoder(z)
            elbo = elbo + weights.get(m, 1.0) * D.Laplace(decoded, 1.0).log_prob(batch.data[m]).sum((1, 2, 3))
        total = total + elbo
    return -total.mean()


@pytest.mark.parametrize("modalities", [("mnist", "textured"), ("mnist",), ("textured",)])
def test_loss_equals_hand_computation(tiny_batch, modalities):
    model = small_model().eval()
    batch = tiny_batch(batch_size=3, modalities=modalities)
    torch.manual_seed(7)
    ours = model(batch).loss
    torch.manual_seed(7)
    torch.testing.assert_close(ours, hand_bound(model, batch), rtol=1e-5, atol=1e-3)


def test_dimension_likelihood_scaling_and_kl_annealing_enter_as_weights(tiny_batch):
    model = small_model(likelihood_scaling="dimension", kl_annealing_steps=4).eval()
    batch = tiny_batch(batch_size=3)
    torch.manual_seed(5)
    ours = model(batch)
    torch.manual_seed(5)
    expected = hand_bound(model, batch, beta=0.25, weights={"mnist": 3 * 32 * 32 / 784})
    torch.testing.assert_close(ours.loss, expected, rtol=1e-5, atol=1e-3)
    assert ours.metrics["paired/kl_weight"] == 0.25


def test_kl_weight_rises_linearly_over_training_steps_and_is_saved(tiny_batch):
    model = small_model(kl_annealing_steps=3)
    batch = tiny_batch()
    seen = []
    for _ in range(5):
        seen.append(model(batch).metrics["paired/kl_weight"])
    assert seen == pytest.approx([1 / 3, 2 / 3, 1.0, 1.0, 1.0])
    model.eval()
    with torch.no_grad():
        model(batch)  # evaluation does not advance the schedule
    assert int(model.training_steps) == 5
    restored = small_model(kl_annealing_steps=3)
    restored.load_state_dict(model.state_dict())
    assert int(restored.training_steps) == 5 and restored.kl_weight() == 1.0


def official_annealing_factor(epoch, batch_idx, annealing_epochs, batches):
    """A transcription of the annealing factor of ``mnist/train.py`` (github.com/mhw32/multimodal-vae-public,
    ``train``): epochs from 1, batch_idx from 0."""
    if epoch < annealing_epochs:
        return float(batch_idx + (epoch - 1) * batches + 1) / float(annealing_epochs * batches)
    return 1.0


def test_kl_annealing_epochs_is_the_official_schedule(tiny_batch):
    """A = 3 epochs of N = 4 batches: 1/12, ..., 8/12 over epochs 1-2, then 1 from the first step
    of epoch 3 (kl_annealing_steps = 12 reaches 1 only at the last step of epoch 3)."""
    A, N = 3, 4
    batch = tiny_batch()
    official = [official_annealing_factor(e, i, A, N) for e in range(1, 5) for i in range(N)]
    assert official == pytest.approx([k / 12 for k in range(1, 9)] + [1.0] * 8)
    model, stepped = small_model(kl_annealing_epochs=A), small_model(kl_annealing_steps=A * N)
    seen, by_steps = [], []
    for epoch in range(1, 5):
        model.start_epoch(epoch, N)
        for _ in range(N):
            seen.append(model(batch).metrics["paired/kl_weight"])
            by_steps.append(stepped(batch).metrics["paired/kl_weight"])
    assert seen == pytest.approx(official)
    assert by_steps[:N * (A - 1)] == pytest.approx(official[:N * (A - 1)])
    assert by_steps[N * (A - 1):N * A] == pytest.approx([9 / 12, 10 / 12, 11 / 12, 1.0])  # one epoch later
    with pytest.raises(ValueError, match="call model.start_epoch"):
        small_model(kl_annealing_epochs=2)(batch)
    with pytest.raises(ValueError, match="not both"):
        MVAEConfig(kl_annealing_steps=2, kl_annealing_epochs=2)


def test_trainer_gives_the_epoch_to_the_schedule():
    from memevae import DataConfig, TrainConfig
    from memevae.training.trainer import Trainer

    data = DataConfig(limit=96).load("train")
    model = small_model(kl_annealing_epochs=2)
    history = Trainer(model, data, TrainConfig(epochs=2, batch_size=32)).fit()
    N = model.epoch_batches
    assert model.epoch == 2 and model.epoch_step == N
    # epoch 1 averages (i + 1) / (2N) over its batches (weighted by rows); epoch 2 is all 1
    assert N > 1 and 1 / (2 * N) < history[0]["train/paired/kl_weight"] <= 0.5 + 1e-9
    assert history[1]["train/paired/kl_weight"] == pytest.approx(1.0)


def test_each_network_runs_once_and_decoders_see_the_right_samples(tiny_batch):
    """Paired: dec_m scores the joint sample and m's unimodal sample in one pass (2B latents)."""
    model = small_model().eval()
    inputs = {}
    for name, mod in model.modalities.items():
        for part in ("encoder", "decoder"):
            getattr(mod, part).register_forward_hook(
                lambda m, i, o, key=f"{part}:{name}": inputs.setdefault(key, []).append(i[0].clone()))
    batch = tiny_batch(batch_size=5)
    torch.manual_seed(3)
    model(batch)
    assert {k: [v.shape[0] for v in vs] for k, vs in inputs.items()} == {
        "encoder:mnist": [5], "encoder:textured": [5], "decoder:mnist": [10], "decoder:textured": [10]}
    # Redraw the model's samples: joint first, then mnist alone, then textured alone.
    torch.manual_seed(3)
    joint = model.posterior(batch.data).rsample()
    alone = {m: model.encode(m, batch.data[m]).rsample() for m in ("mnist", "textured")}
    torch.testing.assert_close(inputs["decoder:mnist"][0], torch.cat([joint, alone["mnist"]]))
    torch.testing.assert_close(inputs["decoder:textured"][0], torch.cat([joint, alone["textured"]]))


def network_grads(model):
    return {f"{part}:{name}": any(p.grad is not None and p.grad.abs().sum() > 0 for p in getattr(mod, part).parameters())
            for name, mod in model.modalities.items() for part in ("encoder", "decoder")}


def test_gradients_paired_and_unpaired(tiny_batch):
    model = small_model()
    model(tiny_batch()).loss.backward()
    assert all(network_grads(model).values())
    model = small_model()
    out = model(tiny_batch(modalities=("textured",)))
    out.loss.backward()
    assert network_grads(model) == {"encoder:mnist": False, "decoder:mnist": False, "encoder:textured": True, "decoder:textured": True}
    assert set(out.metrics) == {"unpaired/textured/loss", "unpaired/textured/elbo", "unpaired/textured/kl",
                                "unpaired/textured/log_likelihood"}


def test_paired_metrics(tiny_batch):
    metrics = small_model()(tiny_batch()).metrics
    assert metrics["paired/loss"] == pytest.approx(-(metrics["paired/joint/elbo"] + metrics["paired/mnist/elbo"]
                                                     + metrics["paired/textured/elbo"]), rel=1e-5)
    assert {"paired/joint/log_likelihood/mnist", "paired/joint/log_likelihood/textured", "paired/mnist/log_likelihood",
            "paired/joint/kl"} <= set(metrics)
    assert all(isinstance(v, float) and math.isfinite(v) for v in metrics.values())


@pytest.mark.parametrize("field,value,match", [
    ("likelihood_scaling", "auto", "likelihood_scaling"), ("kl_annealing_steps", -1, "kl_annealing_steps"),
    ("kl_annealing_epochs", 1.5, "kl_annealing_epochs"),
    ("latent_dim", 0, "latent_dim"), ("architecture", "resnet", "architecture")])
def test_config_rejects_bad_values(field, value, match):
    with pytest.raises(ValueError, match=match):
        MVAEConfig(**{field: value})


def test_unknown_modality_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown modality 'svhn'"):
        small_model().encode("svhn", torch.rand(2, 3, 32, 32))


def test_any_latent_size_and_both_architectures(tiny_batch):
    for latent_dim in (1, 20, 64):
        for architecture in ("paper", "release"):
            model = small_model(latent_dim=latent_dim, architecture=architecture)
            assert torch.isfinite(model(tiny_batch()).loss)
            assert model.encode("textured", tiny_batch().data["textured"]).loc.shape == (4, latent_dim)


def test_trains_on_the_shipped_sample_with_every_observation_pattern():
    """A few dozen Adam steps on paired, MNIST-only and textured-only batches of the real sample:
    the loss of each kind of batch falls."""
    from memevae.data import load_pairs

    data = load_pairs("mnist-textured", "train")
    rows = data.patterns()[tuple(data.modalities)][:96]
    model = small_model(latent_dim=8, architecture="paper")
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    history = {}
    for step in range(36):
        batch = data.batch(rows[(step % 3) * 32:(step % 3 + 1) * 32])
        kind = ("mnist", "textured", None)[step % 3]
        if kind is not None:
            batch.data.pop(kind)
        out = model(batch)
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
        history.setdefault(kind, []).append(out.loss.item())
    for kind, losses in history.items():
        assert sum(losses[-3:]) < sum(losses[:3]), (kind, losses)


@pytest.mark.slow  # the command line end to end, in subprocesses
def test_cli_trains_one_epoch(tmp_path):
    out = tmp_path / "run"
    result = subprocess.run([sys.executable, "-m", "memevae.cli", "train", "--model", "mvae", "--epochs", "1", "--quiet",
                             "--batch-size", "256", "--latent-dim", "8", "--architecture", "paper", "--out", str(out)],
                            capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr
    from memevae import load_run

    run = load_run(out)
    assert run.config["model"] == "mvae" and type(run.model) is MVAE
    assert math.isfinite(run.history[-1]["train/paired/loss"])
