"""Encoder and decoder networks of the paper's Table 8 (App. K) and of the authors' release.

Every encoder maps a batch of inputs to ``(loc, raw_scale)``; the :class:`~memevae.modalities.Modality`
that owns it turns ``raw_scale`` into a scale (softplus, clamped below). Every decoder maps a flat
batch of latents (n, L) to the likelihood's parameters for n examples.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class MLPEncoder(nn.Module):
    """MLP encoder for flat-able inputs (MNIST 1x28x28).

    ``style="paper"`` is Table 8a: input -> FC(h) ReLU -> two FC(L) heads.
    ``style="release"`` is the authors' release: input -> FC(h1) ELU -> FC(h2), softplus, then two
    linear heads.
    """

    def __init__(self, input_shape: tuple[int, ...], latent_dim: int, hidden_dims: tuple[int, ...], style: str):
        super().__init__()
        in_features = math.prod(input_shape)
        layers: list[nn.Module] = []
        width = in_features
        if style == "paper":
            for hidden in hidden_dims:
                layers += [nn.Linear(width, hidden), nn.ReLU()]
                width = hidden
        elif style == "release":
            for i, hidden in enumerate(hidden_dims):
                layers.append(nn.Linear(width, hidden))
                layers.append(nn.ELU() if i < len(hidden_dims) - 1 else nn.Softplus())
                width = hidden
        else:
            raise ValueError(f"unknown MLP style {style!r}; choose 'paper' or 'release'")
        self.body = nn.Sequential(nn.Flatten(), *layers)
        self.loc = nn.Linear(width, latent_dim)
        self.raw_scale = nn.Linear(width, latent_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = self.body(x)
        return self.loc(hidden), self.raw_scale(hidden)


class MLPDecoder(nn.Module):
    """MLP decoder: L -> [FC(h) ReLU]* -> FC(prod(shape)) -> sigmoid, reshaped to ``output_shape``."""

    def __init__(self, output_shape: tuple[int, ...], latent_dim: int, hidden_dims: tuple[int, ...]):
        super().__init__()
        layers: list[nn.Module] = []
        width = latent_dim
        for hidden in hidden_dims:
            layers += [nn.Linear(width, hidden), nn.ReLU()]
            width = hidden
        layers += [nn.Linear(width, math.prod(output_shape)), nn.Sigmoid(), nn.Unflatten(1, output_shape)]
        self.body = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.body(z)


class ConvEncoder(nn.Module):
    """Convolutional encoder for 3x32x32 images (SVHN, textured digits).

    ``style="paper"`` is Table 8b: 4x4 convs 32-64-128 (stride 2, ReLU), then two 4x4 convs to L.
    ``style="release"`` adds BatchNorm after each conv and a 4x4 conv to 512 channels (BatchNorm,
    no activation) followed by two linear heads, as in the authors' release.
    """

    def __init__(self, input_shape: tuple[int, ...], latent_dim: int, style: str, channels=(32, 64, 128), head_channels: int = 512):
        super().__init__()
        if tuple(input_shape[1:]) != (32, 32):
            raise ValueError(f"ConvEncoder expects Cx32x32 inputs, got {tuple(input_shape)}")
        if style not in ("paper", "release"):
            raise ValueError(f"unknown conv style {style!r}; choose 'paper' or 'release'")
        batch_norm = style == "release"
        layers: list[nn.Module] = []
        width = input_shape[0]
        for out in channels:
            layers.append(nn.Conv2d(width, out, 4, 2, 1))
            if batch_norm:
                layers.append(nn.BatchNorm2d(out))
            layers.append(nn.ReLU())
            width = out
        if style == "release":
            layers += [nn.Conv2d(width, head_channels, 4, 1, 0), nn.BatchNorm2d(head_channels), nn.Flatten()]
            self.loc = nn.Linear(head_channels, latent_dim)
            self.raw_scale = nn.Linear(head_channels, latent_dim)
        else:
            self.loc = nn.Sequential(nn.Conv2d(width, latent_dim, 4, 1, 0), nn.Flatten())
            self.raw_scale = nn.Sequential(nn.Conv2d(width, latent_dim, 4, 1, 0), nn.Flatten())
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = self.body(x)
        return self.loc(hidden), self.raw_scale(hidden)


class ConvDecoder(nn.Module):
    """Transposed-convolution decoder, L -> 128x4x4 -> 64x8x8 -> 32x16x16 -> Cx32x32, sigmoid (Table 8b)."""

    def __init__(self, output_shape: tuple[int, ...], latent_dim: int, channels=(128, 64, 32)):
        super().__init__()
        layers: list[nn.Module] = [nn.Unflatten(1, (latent_dim, 1, 1)), nn.ConvTranspose2d(latent_dim, channels[0], 4, 1, 0), nn.ReLU()]
        for width, out in zip(channels[:-1], channels[1:]):
            layers += [nn.ConvTranspose2d(width, out, 4, 2, 1), nn.ReLU()]
        layers += [nn.ConvTranspose2d(channels[-1], output_shape[0], 4, 2, 1), nn.Sigmoid()]
        self.body = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.body(z)
