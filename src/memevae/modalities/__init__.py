"""Modalities: one per kind of data, each owning its encoder, decoder and likelihood.

A model never branches on a data set's name: it asks its modalities for posteriors, decodings
and log-likelihoods. Kinds are chosen by name through :func:`build_modality`.

Example:
    >>> m = build_modality("mnist-mlp", latent_dim=8, architecture="paper")
    >>> q = m.encode(torch.rand(4, 1, 28, 28))
    >>> m.decode(q.rsample((3,))).shape
    torch.Size([3, 4, 1, 28, 28])
"""

from __future__ import annotations


import torch
import torch.nn.functional as F
from torch import nn

from ..distributions import DiagonalGaussian
from .likelihoods import LaplaceLikelihood
from .networks import ConvDecoder, ConvEncoder, MLPDecoder, MLPEncoder

ARCHITECTURES = ("release", "paper")


class Modality(nn.Module):
    """Encoder q(z|x) (which is also the conditional prior p(z|x) for the other modality under
    MEME's weight sharing, App. C), decoder p(x|z) and the likelihood that scores decodings."""

    def __init__(self, name: str, kind: str, shape: tuple[int, ...], encoder: nn.Module, decoder: nn.Module,
                 likelihood: LaplaceLikelihood, min_scale: float, memory_format: torch.memory_format = torch.contiguous_format):
        super().__init__()
        # The memory order the decoder computes in. The data it is scored against are brought into
        # it, so the gradients reaching the decoder arrive in it too (no hidden reorders).
        self.memory_format = memory_format
        self.name = name
        self.kind = kind
        self.shape = tuple(shape)
        self.encoder = encoder
        self.decoder = decoder
        self.likelihood = likelihood
        self.min_scale = min_scale

    def encode(self, x: torch.Tensor) -> DiagonalGaussian:
        """Posterior q(z|x) = N(loc, softplus(raw).clamp(min_scale)) for a batch x of shape (B, *shape)."""
        if tuple(x.shape[1:]) != self.shape:
            raise ValueError(f"modality {self.name!r} expects inputs of shape (batch, {', '.join(map(str, self.shape))}), "
                             f"got {tuple(x.shape)}")
        loc, raw_scale = self.encoder(x)
        # .float(): under mixed precision (``--precision bf16``) the networks compute in bfloat16,
        # the densities and the objective in float32 (a no-op otherwise)
        return DiagonalGaussian(loc.float(), F.softplus(raw_scale.float()).clamp(min=self.min_scale))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Likelihood parameters for latents z of shape (*S, B, L) -> (*S, B, *shape), in one network pass."""
        flat = z.reshape(-1, z.shape[-1])
        return self.decoder(flat).float().reshape(*z.shape[:-1], *self.shape)

    def log_likelihood(self, x: torch.Tensor, decoded: torch.Tensor) -> torch.Tensor:
        """log p(x | z) for data x (B, *shape) and decodings (*S, B, *shape) -> (*S, B)."""
        return self.likelihood.log_prob(x.contiguous(memory_format=self.memory_format), decoded)

    def mean(self, decoded: torch.Tensor) -> torch.Tensor:
        """The likelihood's mean, i.e. what a generation shows."""
        return self.likelihood.mean(decoded)


def _mnist_mlp(name, latent_dim, architecture, hidden_dims=None):
    shape = (1, 28, 28)
    if architecture == "release":
        hidden_dims = tuple(hidden_dims or (512, 512))
        encoder = MLPEncoder(shape, latent_dim, hidden_dims, style="release")
    else:
        hidden_dims = tuple(hidden_dims or (400,))
        encoder = MLPEncoder(shape, latent_dim, hidden_dims, style="paper")
    decoder = MLPDecoder(shape, latent_dim, hidden_dims)
    return Modality(name, "mnist-mlp", shape, encoder, decoder, LaplaceLikelihood(event_dims=3), min_scale=1e-3)


def _svhn_conv(name, latent_dim, architecture, hidden_dims=None):
    shape = (3, 32, 32)
    # Channels-last memory lets oneDNN run the convolutions (forward and backward) without
    # reorders: the same maths, faster on a CPU (benchmarks/step_throughput.py, README "Speed").
    encoder = ConvEncoder(shape, latent_dim, style=architecture)
    decoder = ConvDecoder(shape, latent_dim).to(memory_format=torch.channels_last)
    return Modality(name, "svhn-conv", shape, encoder, decoder, LaplaceLikelihood(event_dims=3), min_scale=1e-4,
                    memory_format=torch.channels_last)


MODALITY_KINDS = {"mnist-mlp": _mnist_mlp, "svhn-conv": _svhn_conv}

# The network kind each data modality uses by default; the textured digits use the SVHN networks.
DEFAULT_KINDS = {"mnist": "mnist-mlp", "svhn": "svhn-conv", "textured": "svhn-conv"}


def build_modality(kind: str, latent_dim: int, architecture: str = "release", name: str | None = None,
                   hidden_dims: tuple[int, ...] | None = None) -> Modality:
    """Build the modality ``kind`` ("mnist-mlp" or "svhn-conv") with latent size ``latent_dim``.

    ``architecture`` is "release" (the authors' code: MNIST 784-512-512 MLP, SVHN conv with
    BatchNorm and a 512-channel layer) or "paper" (Table 8: MNIST 400-unit MLP, plain conv stack).
    ``hidden_dims`` overrides the MLP widths.
    """
    if kind not in MODALITY_KINDS:
        raise ValueError(f"unknown modality kind {kind!r}; choose one of {', '.join(MODALITY_KINDS)}")
    if architecture not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {architecture!r}; choose one of {', '.join(ARCHITECTURES)}")
    if latent_dim < 1:
        raise ValueError(f"latent_dim must be a positive integer, got {latent_dim}")
    return MODALITY_KINDS[kind](name or kind, latent_dim, architecture, hidden_dims)


__all__ = ["Modality", "build_modality", "MODALITY_KINDS", "DEFAULT_KINDS", "ARCHITECTURES"]
