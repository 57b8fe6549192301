"""--precision bf16: mixed precision in the training step only; float32 stays the exact default."""

import pytest
import torch

from memevae.data import default_kinds, load_pairs
from memevae.modalities.networks import TransposedConv2d
from memevae.runs import build_model
from memevae.training.trainer import TrainConfig, autocast

OPTIONS = {"latent_dim": 16, "pseudo_samples": 8, "classifier_samples": 3}


@pytest.fixture(scope="module")
def model_and_batch():
    torch.manual_seed(0)
    data = load_pairs("mnist-textured", "train")
    model = build_model("meme", default_kinds("mnist-textured"), OPTIONS)
    model.initialise(data, torch.Generator().manual_seed(0))
    return model, data.batch(torch.arange(32))


def loss_and_grads(model, batch, precision):
    model.zero_grad()
    torch.manual_seed(1)
    with autocast("cpu", precision):
        loss = model(batch).loss
    loss.backward()
    return loss, {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}


def test_float32_is_untouched(model_and_batch, one_thread):
    model, batch = model_and_batch
    model.zero_grad()
    torch.manual_seed(1)
    plain = model(batch).loss
    assert torch.equal(loss_and_grads(model, batch, "float32")[0], plain)


def test_bf16_networks_in_bfloat16_objective_in_float32(model_and_batch, one_thread):
    model, batch = model_and_batch
    loss32, grads32 = loss_and_grads(model, batch, "float32")
    loss16, grads16 = loss_and_grads(model, batch, "bf16")
    assert loss16.dtype == torch.float32 and torch.isfinite(loss16)
    assert loss16.item() != loss32.item()  # the arithmetic changed ...
    assert loss16.item() == pytest.approx(loss32.item(), rel=1e-3)  # ... by bfloat16 rounding only
    assert grads16.keys() == grads32.keys()
    compared = 0
    for name, g in grads16.items():
        assert g.dtype == torch.float32, name  # parameters and their gradients stay float32
        if grads32[name].norm() < 1e-4:  # a conv bias before BatchNorm: its true gradient is 0, both are rounding noise
            continue
        cosine = torch.nn.functional.cosine_similarity(g.flatten(), grads32[name].flatten(), dim=0)
        assert cosine > 0.99, (name, cosine.item())
        compared += 1
    assert compared >= len(grads32) - 4
    with autocast("cpu", "bf16"):
        q = model.modalities["textured"].encode(batch.data["textured"])
        decoded = model.modalities["textured"].decode(q.loc)
        hidden = model.modalities["textured"].decoder.body[:2](q.loc)  # unflatten, 4x4 projection
    assert q.loc.dtype == decoded.dtype == torch.float32  # densities are computed in float32
    assert hidden.dtype == torch.bfloat16  # the networks are not


@pytest.mark.parametrize("out_channels", [4, 32])  # the sub-pixel form (few channels) and the transposed convolution
def test_transposed_convolution_under_autocast_runs_in_bfloat16(one_thread, out_channels):
    torch.manual_seed(0)
    layer = TransposedConv2d(16, out_channels, 4, 2, 1, activation="relu")
    x = torch.randn(3, 16, 6, 6, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ours = layer(x)
    reference = torch.relu(torch.nn.functional.conv_transpose2d(x, layer.weight, layer.bias, 2, 1))
    assert ours.dtype == torch.bfloat16
    torch.testing.assert_close(ours.float(), reference, atol=0.05, rtol=0.02)  # bfloat16 inputs: 8-bit mantissas
    ours.float().sum().backward()
    assert layer.weight.grad.dtype == torch.float32 and x.grad.dtype == torch.float32
    grad_ours = layer.weight.grad.clone()
    layer.weight.grad = None
    reference.sum().backward()
    cosine = torch.nn.functional.cosine_similarity(grad_ours.flatten(), layer.weight.grad.flatten(), dim=0)
    assert cosine > 0.999


def test_precision_is_checked():
    assert TrainConfig(precision="bf16").precision == "bf16"
    with pytest.raises(ValueError, match="unknown precision 'fp8'; choose one of float32, bf16"):
        TrainConfig(precision="fp8")
