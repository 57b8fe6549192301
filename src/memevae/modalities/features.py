"""The image-feature modality kind "features-mlp" of the paper's Table 8c (App. K): a feature vector
per image (CUB: the 2048-d pooled output of an ImageNet ResNet-101; its size is the data's) with a
Laplace likelihood, the encoder an MLP 1024-512-256 with ELUs and the decoder its mirror with no
output activation.

The Laplace scale is 1.0, as memevae's image likelihoods (the paper does not state it for CUB; the
official MMVAE code uses 0.01, with its image likelihood weighted by 0.002 against the captions').
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .modality import ModalityKind

HIDDEN = (1024, 512, 256)
"""Table 8c's encoder widths; the decoder uses them in reverse."""


class FeatureEncoder(nn.Module):
    """Features (B, D) -> [FC ELU] over ``hidden_dims`` -> two linear heads (loc, raw_scale), each (B, L)."""

    def __init__(self, features: int, latent_dim: int, hidden_dims=HIDDEN):
        super().__init__()
        layers, width = [], features
        for hidden in hidden_dims:
            layers += [nn.Linear(width, hidden), nn.ELU()]
            width = hidden
        self.body = nn.Sequential(*layers)
        self.loc = nn.Linear(width, latent_dim)
        self.raw_scale = nn.Linear(width, latent_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = self.body(x)
        return self.loc(hidden), self.raw_scale(hidden)


class FeatureDecoder(nn.Module):
    """Latents (n, L) -> [FC ELU] over the reversed ``hidden_dims`` -> FC(D), no output activation."""

    def __init__(self, features: int, latent_dim: int, hidden_dims=HIDDEN):
        super().__init__()
        layers, width = [], latent_dim
        for hidden in reversed(hidden_dims):
            layers += [nn.Linear(width, hidden), nn.ELU()]
            width = hidden
        self.body = nn.Sequential(*layers, nn.Linear(width, features))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.body(z)


def feature_networks(shape, latent_dim, architecture, hidden_dims=None):
    """Table 8c for feature vectors of ``shape`` = (D,); ``hidden_dims`` overrides (1024, 512, 256);
    ``architecture`` does not apply (the paper has one network; the release has none)."""
    features = math.prod(shape)
    hidden_dims = tuple(hidden_dims or HIDDEN)
    return FeatureEncoder(features, latent_dim, hidden_dims), FeatureDecoder(features, latent_dim, hidden_dims)


KINDS = (
    ModalityKind("features-mlp", "features", (None,), feature_networks, "laplace", {"scale": 1.0}, min_scale=1e-3),
)
