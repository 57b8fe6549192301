"""Likelihoods p(x | z) of the modalities (paper Sec. 4: Laplace likelihoods for images)."""

from __future__ import annotations

import torch

from ..distributions import laplace_log_prob


class LaplaceLikelihood:
    """Laplace(x; loc = decoder output, scale), summed over the example's dimensions.

    The release fixes scale = 1.0 for MNIST and SVHN images and for CUB image features. With
    ``clamp`` c > 0 the location is clamped to [c, 1 - c] first (as the official MMVAE code's MNIST
    decoder does with c = 1e-6); 0 (default): no clamping.
    """

    def __init__(self, event_dims: int, scale: float = 1.0, clamp: float = 0.0):
        if not 0.0 <= clamp < 0.5:
            raise ValueError(f"clamp must be in [0, 0.5), got {clamp}")
        self.event_dims = event_dims
        self.scale = scale
        self.clamp = clamp

    def location(self, decoded: torch.Tensor) -> torch.Tensor:
        return decoded.clamp(self.clamp, 1.0 - self.clamp) if self.clamp else decoded

    def log_prob(self, x: torch.Tensor, decoded: torch.Tensor) -> torch.Tensor:
        """Log-density of ``x`` (B, *shape) under each decoded location (*S, B, *shape) -> (*S, B)."""
        return laplace_log_prob(x, self.location(decoded), self.scale, self.event_dims)

    def mean(self, decoded: torch.Tensor) -> torch.Tensor:
        return self.location(decoded)


LIKELIHOODS = {"laplace": LaplaceLikelihood}
"""Likelihood families by name, as a :class:`~memevae.modalities.ModalityKind` declares them."""


def build_likelihood(family: str, event_dims: int, **params):
    """The likelihood ``family`` over examples of ``event_dims`` dimensions, with ``params``."""
    if family not in LIKELIHOODS:
        raise ValueError(f"unknown likelihood {family!r}; choose one of {', '.join(LIKELIHOODS)}")
    return LIKELIHOODS[family](event_dims=event_dims, **params)
