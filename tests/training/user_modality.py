"""Modality kinds defined outside memevae, as a user's module would (registered by their import
path "user_modality:TINY" in test_user_kinds.py)."""

import math

from torch import nn

from memevae.modalities import ModalityKind


class Halves(nn.Module):
    """Splits the last dimension in two: (loc, raw_scale)."""

    def forward(self, x):
        return tuple(x.chunk(2, dim=-1))


def linear_networks(shape, latent_dim, architecture, hidden_dims=None, extra=0):
    """One linear layer each way; ``extra`` latent units too many in the encoder's output."""
    size = math.prod(shape)
    encoder = nn.Sequential(nn.Flatten(), nn.Linear(size, 2 * (latent_dim + extra)), Halves())
    decoder = nn.Sequential(nn.Linear(latent_dim, size), nn.Sigmoid(), nn.Unflatten(1, tuple(shape)))
    return encoder, decoder


TINY = ModalityKind("tiny-linear", "image", (1, 28, 28), linear_networks, "laplace", {"scale": 1.0}, min_scale=1e-3)
WRONG = ModalityKind("tiny-wrong", "image", (1, 28, 28), lambda *args: linear_networks(*args, extra=1), "laplace",
                     {"scale": 1.0}, min_scale=1e-3)
SAME_NAME = ModalityKind("mnist-mlp", "image", (1, 28, 28), linear_networks, "laplace", {"scale": 1.0}, min_scale=1e-3)
NOT_A_KIND = "tiny-linear"
