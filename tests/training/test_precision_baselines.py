"""--precision bf16 for MVAE and MMVAE: under autocast only the networks compute in bfloat16; the
products of experts, densities, log-sum-exps and DReG weights of their objectives stay float32,
and the float32 path is unchanged."""

import collections

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from memevae.data import default_kinds, load_pairs
from memevae.distributions import DiagonalLaplace
from memevae.models import MMVAEConfig
from memevae.objectives import normalised_weights
from memevae.runs import build_model
from memevae.training.trainer import autocast

pytestmark = pytest.mark.usefixtures("one_thread")

CASES = {
    "meme": ("meme", {"latent_dim": 16, "pseudo_samples": 8, "classifier_samples": 3}),
    "mvae": ("mvae", {"latent_dim": 16}),
    "mmvae-dreg": ("mmvae", {"latent_dim": 16, "importance_samples": 3}),  # Gaussian experts, Tucker et al.'s DReG
    "mmvae-official": ("mmvae", {**MMVAEConfig.presets["official"], "importance_samples": 3}),  # Laplace, DReG as released
}


@pytest.fixture(scope="module")
def data():
    return load_pairs("mnist-textured", "train")


def make_model(case, data):
    name, options = CASES[case]
    torch.manual_seed(0)
    model = build_model(name, default_kinds("mnist-textured"), options)
    model.initialise(data, torch.Generator().manual_seed(0))
    return model


class BFloat16Results(TorchDispatchMode):
    """Counts, by operator, the bfloat16 tensors produced outside (``outside``) and inside
    (``inside``) the modalities' encoders and decoders, which are entered and left through forward
    hooks."""

    def __init__(self, model):
        super().__init__()
        self.depth = 0
        self.outside = collections.Counter()
        self.inside = collections.Counter()
        self.handles = []
        for modality in model.modalities.values():
            for network in (modality.encoder, modality.decoder):
                self.handles.append(network.register_forward_pre_hook(lambda *_: self._enter(1)))
                self.handles.append(network.register_forward_hook(lambda *_: self._enter(-1)))

    def _enter(self, step):
        self.depth += step

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for tensor in out if isinstance(out, (tuple, list)) else [out]:
            if isinstance(tensor, torch.Tensor) and tensor.dtype == torch.bfloat16:
                (self.inside if self.depth else self.outside)[str(func)] += 1
        return out

    def __exit__(self, *exc):
        for handle in self.handles:
            handle.remove()
        return super().__exit__(*exc)


def loss_and_grads(model, batch, precision):
    model.zero_grad()
    torch.manual_seed(1)
    with autocast("cpu", precision):
        loss = model(batch).loss
    loss.backward()
    return loss, {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("case", list(CASES))
def test_bf16_only_the_networks_compute_in_bfloat16(case, data):
    model = make_model(case, data)
    batch = data.batch(torch.arange(16))
    with autocast("cpu", "bf16"), BFloat16Results(model) as results:
        loss = model(batch).loss
    assert dict(results.outside) == {}, f"bfloat16 outside the networks: {dict(results.outside)}"
    assert results.inside["aten.addmm.default"] > 0  # the networks' matrix products do run in bfloat16
    assert loss.dtype == torch.float32 and torch.isfinite(loss)


def test_mvae_products_of_experts_and_elbo_terms_are_float32(data):
    model = make_model("mvae", data)
    batch = data.batch(torch.arange(16))
    with autocast("cpu", "bf16"):
        experts = [model.modalities[name].encode(batch.data[name]) for name in model.modality_names]
        joint = model.posterior(batch.data)
        unimodal = model.encode("textured", batch.data["textured"])
        z = joint.rsample()
        kl = joint.kl(model.prior(joint.loc))
        decoded = model.modalities["textured"].decode(z)
        log_likelihood = model.modalities["textured"].log_likelihood(batch.data["textured"], decoded)
    tensors = {"expert locs": experts[0].loc, "expert scales": experts[1].scale, "product loc": joint.loc,
               "product scale": joint.scale, "unimodal product": unimodal.scale, "sample": z, "KL": kl,
               "decoded": decoded, "log-likelihood": log_likelihood}
    assert {name: t.dtype for name, t in tensors.items()} == {name: torch.float32 for name in tensors}


@pytest.mark.parametrize("case", ["mmvae-dreg", "mmvae-official"])
def test_mmvae_densities_log_sum_exps_and_dreg_weights_are_float32(case, data):
    model = make_model(case, data)
    batch = data.batch(torch.arange(16))
    with autocast("cpu", "bf16"):
        experts = [model.encode(name, batch.data[name]) for name in model.modality_names]
        z = torch.stack([q.rsample((3,)) for q in experts])
        log_w, log_prior, log_posterior, log_likelihoods = model.log_weights(batch.data, experts, z, detach_experts=True)
        weights = normalised_weights(log_w, model.config.bound)
    tensors = {"expert locs": experts[0].loc, "expert scales": experts[1].scale, "samples": z,
               "log-weights": log_w, "log-prior": log_prior, "mixture log-density (logsumexp)": log_posterior,
               "DReG weights": weights, **{f"log-likelihood {n}": v for n, v in log_likelihoods.items()}}
    assert {name: t.dtype for name, t in tensors.items()} == {name: torch.float32 for name in tensors}


@pytest.mark.parametrize("case", ["mvae", "mmvae-dreg", "mmvae-official"])
def test_float32_is_untouched_and_bf16_differs_by_rounding_only(case, data):
    model = make_model(case, data)
    batch = data.batch(torch.arange(32))
    model.zero_grad()
    torch.manual_seed(1)
    plain = model(batch).loss
    loss32, grads32 = loss_and_grads(model, batch, "float32")
    assert torch.equal(loss32, plain)
    loss16, grads16 = loss_and_grads(model, batch, "bf16")
    assert loss16.dtype == torch.float32
    assert loss16.item() == pytest.approx(loss32.item(), rel=1e-3)  # bfloat16 rounding only
    assert grads16.keys() == grads32.keys()
    assert any(not torch.equal(grads16[name], g) for name, g in grads32.items())  # the arithmetic did change
    for name, g in grads16.items():
        assert g.dtype == torch.float32, name  # parameters and their gradients stay float32
        if grads32[name].norm() > 1e-4:  # (a conv bias before BatchNorm: true gradient 0, rounding noise)
            cosine = torch.nn.functional.cosine_similarity(g.flatten(), grads32[name].flatten(), dim=0)
            assert cosine > 0.98, (name, cosine.item())


def test_laplace_experts_in_float32_are_the_encoder_outputs_as_before(data):
    """The official preset's Laplace expert: loc and softmax(raw_scale) * L + eta of the encoder's own
    outputs, bit for bit (the float32 path does not change)."""
    model = make_model("mmvae-official", data)
    x = data.batch(torch.arange(8)).data["textured"]
    with torch.no_grad():
        expert = model.encode("textured", x)
        loc, raw_scale = model.modalities["textured"].encoder(x)
    expected = DiagonalLaplace(loc, torch.softmax(raw_scale, dim=-1) * raw_scale.shape[-1] + 1e-6)
    assert torch.equal(expert.loc, expected.loc) and torch.equal(expert.scale, expected.scale)
