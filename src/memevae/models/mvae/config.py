"""MVAE's configuration, every field with its source in Wu & Goodman (NeurIPS 2018) or their code."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

from ..base import ModelConfig

LikelihoodScaling = Literal["none", "dimension"]
LIKELIHOOD_SCALINGS = get_args(LikelihoodScaling)


@dataclass
class MVAEConfig(ModelConfig):
    """Configuration of :class:`~memevae.models.mvae.MVAE` (Wu & Goodman 2018, as the paper compares with it in Sec. 4).

    Everything not listed here is shared with MEME (modality networks, Laplace likelihoods with
    scale 1, Gaussian posteriors, latent size), so that MEME and its baselines differ only in how
    posteriors combine and in their objective.
    """

    likelihood_scaling: LikelihoodScaling = "none"
    """The weights lambda_m of log p(x_m|z) in every ELBO: "none" or "dimension". "none": all 1,
    the ELBO itself (default: the official code's weights, e.g. 10 for MNIST labels, balance a
    low-dimensional label against an image and have no setting for two images). "dimension":
    lambda_m = max_n D_n / D_m with D_m the number of values of an example of m, i.e. each
    modality weighted as if it were as large as the largest (MMVAE's rule, 3.92 for MNIST)."""
    kl_annealing_steps: int = 0
    """S: raise the KL weight beta linearly from 1/S to 1 over the first S training steps (0: off). As the
    official scripts do by default (``--annealing-epochs``, 200 of 500 epochs for MNIST); counted
    per training forward pass and saved with the model. 0 (default): beta = 1 throughout, the
    plain ELBO, since neither the MVAE paper nor MEME gives a schedule for MNIST-SVHN."""

    def __post_init__(self):
        super().__post_init__()
        if int(self.kl_annealing_steps) != self.kl_annealing_steps or self.kl_annealing_steps < 0:
            raise ValueError(f"kl_annealing_steps must be a non-negative integer, got {self.kl_annealing_steps}")
