"""Each fused computation of the training step gives the values and gradients of the plain
computation it replaces, for every model, in float64 to 1e-12 (the speed-ups of README "Speed")."""

import pytest
import torch

import memevae.distributions
from memevae.data import Batch
from memevae.models import MODELS, build_config, preset_options

pytestmark = pytest.mark.usefixtures("one_thread")

CASES = [("meme", {"classifier_samples": 3, "pseudo_samples": 2}), ("mvae", {}),
         ("mmvae", {"importance_samples": 3}), ("mmvae", {**preset_options("mmvae", "official"), "importance_samples": 3})]


def plain_absolute_error_sum(x, loc, event_dims):
    """autograd's form of :func:`memevae.distributions.absolute_error_sum`."""
    return (loc - x).abs().sum(tuple(range(-event_dims, 0)))


def loss_and_gradients(name, options, batch):
    torch.manual_seed(0)
    model = MODELS[name](build_config(name, **{"latent_dim": 4, **options})).double()
    torch.manual_seed(1)
    loss = model(batch).loss
    loss.backward()
    return loss.detach(), {key: p.grad for key, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("name, options", CASES, ids=[f"{name}{'-official' if 'posterior' in options else ''}" for name, options in CASES])
def test_fused_laplace_likelihood_equals_the_plain_one(name, options, monkeypatch):
    generator = torch.Generator().manual_seed(2)
    # MNIST values on a grid, so that some decoded means equal the data exactly (the clamped
    # MNIST means of the official preset reach 1e-6 and 1 - 1e-6 only at saturation)
    data = {"mnist": torch.randint(0, 3, (3, 1, 28, 28), generator=generator).double() / 2,
            "textured": torch.rand(3, 3, 32, 32, generator=generator, dtype=torch.float64)}
    batch = Batch(data, torch.arange(3))
    fused, fused_grads = loss_and_gradients(name, options, batch)
    monkeypatch.setattr(memevae.distributions, "absolute_error_sum", plain_absolute_error_sum)
    plain, plain_grads = loss_and_gradients(name, options, batch)
    assert fused_grads.keys() == plain_grads.keys() and len(plain_grads) > 4
    assert_equal_to_rounding(fused, plain, plain.abs().item(), "loss")
    size = max(g.abs().max().item() for g in plain_grads.values())
    for key in plain_grads:
        assert_equal_to_rounding(fused_grads[key], plain_grads[key], size, key)


def assert_equal_to_rounding(ours, reference, size, what):
    """|ours - reference| <= 1e-12 ``size`` everywhere: equal up to float64 rounding of sums taken in
    another order. ``size`` is the largest gradient entry of the model: an entry near 0 is a
    difference of terms of that size (a convolution's bias before a BatchNorm has gradient 0 up to
    their rounding), so its rounding is relative to them, not to itself."""
    error = (ours - reference).abs().max().item()
    assert error <= 1e-12 * size, f"{what}: differs by {error:.3g}, {error / size:.3g} of the largest gradient entry"


@pytest.mark.parametrize("x_shape, loc_shape", [((3, 2, 4, 4), (5, 3, 2, 4, 4)), ((5, 3, 2, 4, 4), (3, 2, 4, 4))],
                         ids=["loc-has-samples", "x-has-samples"])
def test_absolute_error_sum_equals_the_plain_one_and_keeps_no_tensor_of_its_own(x_shape, loc_shape):
    """Values and both gradients of the fused sum equal autograd's (float64, ties loc = x included,
    ``loc`` in channels-last memory as the convolutional decoders give it), and what the forward
    saves for the backward is its own inputs (x possibly in loc's layout), no full-size tensor of its own."""
    generator = torch.Generator().manual_seed(3)
    x = (torch.randint(0, 3, x_shape, generator=generator).double() / 2).requires_grad_()
    loc = torch.randint(0, 3, loc_shape, generator=generator).double() / 2
    loc = loc.flatten(0, -4).contiguous(memory_format=torch.channels_last).view(loc_shape).requires_grad_()
    weights = torch.rand(torch.broadcast_shapes(x_shape, loc_shape)[:-3], generator=generator, dtype=torch.float64)
    results = []
    for function in (memevae.distributions.absolute_error_sum, plain_absolute_error_sum):
        total = function(x, loc, 3)
        if function is memevae.distributions.absolute_error_sum:
            saved = total.grad_fn.saved_tensors
            # x itself, or x read in loc's channels-last layout (in_layout_of: x's size, not loc's)
            assert all(t.data_ptr() in {x.data_ptr(), loc.data_ptr()} or t.shape == x.shape for t in saved), \
                "the forward saved a full-size tensor of its own"
        x_grad, loc_grad = torch.autograd.grad((weights * total).sum(), (x, loc))
        results.append((total, x_grad, loc_grad))
    assert (loc.detach() == x.detach()).any()  # ties, where the gradient is 0
    for ours, reference, what in zip(*results, ("value", "x gradient", "loc gradient")):
        assert_equal_to_rounding(ours, reference, reference.abs().max().item(), what)
