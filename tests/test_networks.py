"""The fast network layers compute what the torch layers they replace compute: values and
gradients, in both memory orders; to rounding in float64 (torch's kernels) and to float32
precision in float32 (on a CPU, oneDNN's fused convolution-activation kernels)."""

import pytest
import torch
from torch import nn

from memevae.modalities import build_modality
from memevae.modalities.networks import LatentProjection, TransposedConv2d, WholeInputConv2d, _TransposedConvolution

FORMATS = [torch.contiguous_format, torch.channels_last]


def _values_and_gradients(layer, x, grad_out):
    x = x.clone().requires_grad_()
    y = layer(x)
    grads = torch.autograd.grad(y, (x, *layer.parameters()), grad_out)
    return (y, *grads)


def _assert_same_as_torch(fast, reference, x, out_shape):
    """Values and gradients (``reference`` holds the same parameters in the same order) agree: to rounding in float64 (torch's own kernels), and to float32
    precision in float32 (on a CPU, oneDNN's fused convolution-activation kernels)."""
    grad_out = torch.randn(out_shape, dtype=x.dtype)
    tolerance = 1e-12 if x.dtype == torch.float64 else 2e-5
    for got, want in zip(_values_and_gradients(fast, x, grad_out), _values_and_gradients(reference, x, grad_out)):
        assert got.shape == want.shape
        torch.testing.assert_close(got, want, rtol=tolerance, atol=tolerance)


ACTIVATION_LAYERS = {None: nn.Identity, "relu": nn.ReLU, "sigmoid": nn.Sigmoid}


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("activation", [None, "relu", "sigmoid"])
@pytest.mark.parametrize("memory_format", FORMATS)
@pytest.mark.parametrize("in_channels,out_channels", [(6, 3), (5, 20)])  # the sub-pixel forward (< 16 outputs) and oneDNN's
def test_transposed_conv_matches_torch(in_channels, out_channels, memory_format, activation, dtype):
    torch.manual_seed(0)
    fast = TransposedConv2d(in_channels, out_channels, 4, 2, 1, activation=activation).to(dtype).to(memory_format=memory_format)
    reference = nn.Sequential(nn.ConvTranspose2d(in_channels, out_channels, 4, 2, 1), ACTIVATION_LAYERS[activation]()).to(dtype)
    reference[0].load_state_dict(fast.state_dict())
    x = torch.randn(3, in_channels, 5, 7, dtype=dtype).contiguous(memory_format=memory_format)
    _assert_same_as_torch(fast, reference, x, (3, out_channels, 10, 14))


@pytest.mark.parametrize("activation", ["relu", "sigmoid"])
@pytest.mark.parametrize("in_channels,out_channels", [(6, 3), (5, 20)])
def test_without_the_fused_kernels_the_public_operators_give_the_same(monkeypatch, in_channels, out_channels, activation):
    """A torch build without oneDNN's private fused operators takes the public path (float32)."""
    import memevae.modalities.networks as networks

    torch.manual_seed(0)
    fast = TransposedConv2d(in_channels, out_channels, 4, 2, 1, activation=activation).to(memory_format=torch.channels_last)
    x = torch.randn(3, in_channels, 5, 7).contiguous(memory_format=torch.channels_last)
    fused = _values_and_gradients(fast, x, torch.ones(3, out_channels, 10, 14))
    monkeypatch.setattr(networks, "fused_kernels_available", lambda: False)
    monkeypatch.setattr(torch.ops.mkldnn, "_convolution_pointwise", None, raising=False)  # a call would now fail
    monkeypatch.setattr(torch.ops.mkldnn, "_convolution_transpose_pointwise", None, raising=False)
    reference = nn.Sequential(nn.ConvTranspose2d(in_channels, out_channels, 4, 2, 1), ACTIVATION_LAYERS[activation]())
    reference[0].load_state_dict(fast.state_dict())
    _assert_same_as_torch(fast, reference, x, (3, out_channels, 10, 14))
    for got, want in zip(_values_and_gradients(fast, x, torch.ones(3, out_channels, 10, 14)), fused):
        torch.testing.assert_close(got, want, rtol=2e-5, atol=2e-5)


def test_bfloat16_without_onednns_bfloat16_kernels_takes_the_public_operators(monkeypatch):
    """On a CPU without AVX-512 (oneDNN refuses its bfloat16 kernels there), --precision bf16 still
    trains: the layers call torch's public convolutions, never the fused private ones."""
    import memevae.modalities.networks as networks

    torch.manual_seed(0)
    layer = TransposedConv2d(16, 32, 4, 2, 1, activation="relu")
    x = torch.randn(3, 16, 6, 6)
    expected = layer(x)
    monkeypatch.setattr(networks, "bfloat16_kernels_available", lambda: False)
    monkeypatch.setattr(torch.ops.mkldnn, "_convolution_pointwise", None, raising=False)  # a call would now fail
    monkeypatch.setattr(torch.ops.mkldnn, "_convolution_transpose_pointwise", None, raising=False)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = layer(x)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), expected, atol=0.05, rtol=0.02)
    out.float().sum().backward()
    assert layer.weight.grad.dtype == torch.float32


@pytest.mark.parametrize("activation", [None, "relu", "sigmoid"])
@pytest.mark.parametrize("out_channels", [2, 17])
def test_transposed_conv_passes_gradcheck(out_channels, activation):
    torch.manual_seed(0)
    x = torch.randn(2, 3, 3, 3, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(3, out_channels, 4, 4, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(out_channels, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda *a: _TransposedConvolution.apply(*a, (2, 2), (1, 1), activation), (x, weight, bias))


def test_unknown_activation_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown activation 'tanh'"):
        TransposedConv2d(3, 2, 4, 2, 1, activation="tanh")


@pytest.mark.parametrize("activation", [None, "relu"])
@pytest.mark.parametrize("memory_format", FORMATS)
def test_latent_projection_matches_torch(memory_format, activation):
    torch.manual_seed(0)
    fast = LatentProjection(8, 6, activation=activation).double().to(memory_format=memory_format)
    reference = nn.Sequential(nn.ConvTranspose2d(8, 6, 4, 1, 0), ACTIVATION_LAYERS[activation]()).double()
    reference[0].load_state_dict(fast.state_dict())
    _assert_same_as_torch(fast, reference, torch.randn(5, 8, 1, 1, dtype=torch.float64), (5, 6, 4, 4))


@pytest.mark.parametrize("memory_format", FORMATS)
def test_whole_input_conv_matches_torch(memory_format):
    torch.manual_seed(0)
    fast = WholeInputConv2d(6, 7, 4).double()
    reference = nn.Conv2d(6, 7, 4, 1, 0).double()
    reference.load_state_dict(fast.state_dict())
    x = torch.randn(5, 6, 4, 4, dtype=torch.float64).contiguous(memory_format=memory_format)
    _assert_same_as_torch(fast, reference, x, (5, 7, 1, 1))


def test_whole_input_conv_rejects_other_sizes():
    with pytest.raises(ValueError, match="expects inputs of that spatial size"):
        WholeInputConv2d(3, 4, 4)(torch.zeros(2, 3, 5, 5))


@pytest.mark.parametrize("architecture", ["release", "paper"])
def test_conv_modality_keeps_torch_parameter_names(architecture):
    """Checkpoints name the same parameters as the plain torch layers would (state_dict keys and shapes)."""
    modality = build_modality("svhn-conv", 16, architecture)
    shapes = {key: tuple(value.shape) for key, value in modality.state_dict().items()}
    assert shapes["decoder.body.1.weight"] == (16, 128, 4, 4)
    assert shapes["decoder.body.7.weight"] == (32, 3, 4, 4)
    head = "encoder.body.9.weight" if architecture == "release" else "encoder.loc.0.weight"
    assert shapes[head] == ((512, 128, 4, 4) if architecture == "release" else (16, 128, 4, 4))


def _plain_torch_layers():
    """The benchmark's ``plain_torch_layers``: memevae's fast layers replaced by the torch layers they stand for."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "step_throughput.py"
    spec = importlib.util.spec_from_file_location("step_throughput", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.plain_torch_layers


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_nan_and_inf_come_out_where_torchs_layers_put_them(bad):
    """A NaN or inf in the latents (or in an image the encoder reads) gives NaN exactly where the
    plain torch layers give it: oneDNN's fused ReLU would map NaN to 0, and the sub-pixel form would
    spread inf into NaN through its zero taps."""
    import copy

    torch.manual_seed(0)
    modality = build_modality("svhn-conv", 16, "release").eval()
    plain = copy.deepcopy(modality)
    _plain_torch_layers()(plain)
    with torch.no_grad():
        z = torch.randn(4, 16)
        z[1, 3] = bad
        decoded, expected = modality.decoder(z), plain.decoder(z)
        assert expected.isnan().any() and not expected[[0, 2, 3]].isnan().any()
        assert torch.equal(decoded.isnan(), expected.isnan())
        torch.testing.assert_close(decoded[[0, 2, 3]], expected[[0, 2, 3]], rtol=2e-5, atol=2e-5)

        image = torch.rand(3, 3, 32, 32)
        image[0, 1, 5, 7] = bad
        translated = modality.decoder(modality.encoder(image)[0])
        expected = plain.decoder(plain.encoder(image)[0])
        assert expected[0].isnan().all() and torch.equal(translated.isnan(), expected.isnan())
