"""The image modality kinds of the paper's Table 8 (App. K) and of the authors' release:
"mnist-mlp" (1x28x28, MLPs) and "svhn-conv" (3x32x32, convolutions; also the textured digits)."""

from __future__ import annotations

import torch

from .modality import ModalityKind
from .networks import ConvDecoder, ConvEncoder, MLPDecoder, MLPEncoder


def mlp_networks(shape, latent_dim, architecture, hidden_dims=None):
    """"release": 512-512 ELU/softplus MLP encoder; "paper": one 400-unit ReLU layer. The decoder
    mirrors the widths; ``hidden_dims`` overrides them."""
    hidden_dims = tuple(hidden_dims or ((512, 512) if architecture == "release" else (400,)))
    return MLPEncoder(shape, latent_dim, hidden_dims, style=architecture), MLPDecoder(shape, latent_dim, hidden_dims)


def conv_networks(shape, latent_dim, architecture, hidden_dims=None):
    """The convolutional encoder of ``architecture`` and the transposed-convolution decoder
    (``hidden_dims`` does not apply)."""
    return ConvEncoder(shape, latent_dim, style=architecture), ConvDecoder(shape, latent_dim)


# Laplace likelihoods with scale 1.0, as the release fixes for MNIST and SVHN images.
KINDS = (
    ModalityKind("mnist-mlp", "image", (1, 28, 28), mlp_networks, "laplace", {"scale": 1.0}, min_scale=1e-3),
    # Channels-last memory lets oneDNN run the convolutions (forward and backward) without
    # reorders: the same maths, faster on a CPU (benchmarks/step_throughput.py, README "Speed").
    ModalityKind("svhn-conv", "image", (3, 32, 32), conv_networks, "laplace", {"scale": 1.0}, min_scale=1e-4,
                 memory_format=torch.channels_last),
)
