"""The fast network layers compute exactly what the torch layers they replace compute: values
and gradients, in double precision, in both memory orders."""

import subprocess
import sys
import textwrap

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
    reference.load_state_dict(fast.state_dict())
    grad_out = torch.randn(out_shape, dtype=torch.float64)
    for got, want in zip(_values_and_gradients(fast, x, grad_out), _values_and_gradients(reference, x, grad_out)):
        assert got.shape == want.shape
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("memory_format", FORMATS)
@pytest.mark.parametrize("in_channels,out_channels", [(6, 3), (5, 20)])  # the sub-pixel forward (< 16 outputs) and oneDNN's
def test_transposed_conv_matches_torch(in_channels, out_channels, memory_format):
    torch.manual_seed(0)
    fast = TransposedConv2d(in_channels, out_channels, 4, 2, 1).double().to(memory_format=memory_format)
    reference = nn.ConvTranspose2d(in_channels, out_channels, 4, 2, 1).double()
    x = torch.randn(3, in_channels, 5, 7, dtype=torch.float64).contiguous(memory_format=memory_format)
    _assert_same_as_torch(fast, reference, x, (3, out_channels, 10, 14))


@pytest.mark.parametrize("out_channels", [2, 17])
def test_transposed_conv_passes_gradcheck(out_channels):
    torch.manual_seed(0)
    x = torch.randn(2, 3, 3, 3, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(3, out_channels, 4, 4, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(out_channels, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda *a: _TransposedConvolution.apply(*a, (2, 2), (1, 1)), (x, weight, bias))


@pytest.mark.parametrize("memory_format", FORMATS)
def test_latent_projection_matches_torch(memory_format):
    torch.manual_seed(0)
    fast = LatentProjection(8, 6).double().to(memory_format=memory_format)
    reference = nn.ConvTranspose2d(8, 6, 4, 1, 0).double()
    _assert_same_as_torch(fast, reference, torch.randn(5, 8, 1, 1, dtype=torch.float64), (5, 6, 4, 4))


@pytest.mark.parametrize("memory_format", FORMATS)
def test_whole_input_conv_matches_torch(memory_format):
    torch.manual_seed(0)
    fast = WholeInputConv2d(6, 7, 4).double()
    reference = nn.Conv2d(6, 7, 4, 1, 0).double()
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


def test_keep_freed_memory_stops_page_faults_of_large_tensors():
    """In a fresh process, a 64 MB tensor allocated and freed ten times faults its pages in every
    time with malloc's defaults, and not at all with keep_freed_memory()."""
    script = textwrap.dedent("""
        import resource, sys, torch
        from memevae.training.allocator import keep_freed_memory
        if sys.argv[1] == "keep":
            assert keep_freed_memory()
        for _ in range(2):  # malloc settles where it puts the block
            torch.ones(16 * 2**20)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        for _ in range(10):
            torch.ones(16 * 2**20)
        print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    """)
    faults = {mode: int(subprocess.run([sys.executable, "-c", script, mode], check=True, capture_output=True,
                                       text=True).stdout.split()[-1]) for mode in ("keep", "system")}
    pages_per_tensor = 64 * 2**20 // 4096
    assert faults["system"] > 5 * pages_per_tensor
    assert faults["keep"] < pages_per_tensor
