"""Likelihoods p(x | z) of the modalities (paper Sec. 4: Laplace likelihoods for images)."""

from __future__ import annotations

import torch

from ..distributions import laplace_log_prob


class LaplaceLikelihood:
    """Laplace(x; loc = decoder output, scale), summed over the example's dimensions.

    The release fixes scale = 1.0 for MNIST and SVHN images and for CUB image features.
    """

    def __init__(self, event_dims: int, scale: float = 1.0):
        self.event_dims = event_dims
        self.scale = scale

    def log_prob(self, x: torch.Tensor, decoded: torch.Tensor) -> torch.Tensor:
        """Log-density of ``x`` (B, *shape) under each decoded location (*S, B, *shape) -> (*S, B)."""
        return laplace_log_prob(x, decoded, self.scale, self.event_dims)

    def mean(self, decoded: torch.Tensor) -> torch.Tensor:
        return decoded


LIKELIHOODS = {"laplace": LaplaceLikelihood}
"""Likelihood families by name, as a :class:`~memevae.modalities.ModalityKind` declares them."""


def build_likelihood(family: str, event_dims: int, **params):
    """The likelihood ``family`` over examples of ``event_dims`` dimensions, with ``params``."""
    if family not in LIKELIHOODS:
        raise ValueError(f"unknown likelihood {family!r}; choose one of {', '.join(LIKELIHOODS)}")
    return LIKELIHOODS[family](event_dims=event_dims, **params)
