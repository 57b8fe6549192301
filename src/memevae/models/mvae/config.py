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
    """S: raise the KL weight beta linearly, (t + 1) / S at training step t = 0, 1, ..., reaching 1 at the
    S-th step (0: off). Counted per training forward pass and saved with the model. 0 (default):
    beta = 1 throughout, the plain ELBO, since neither the MVAE paper nor MEME gives a schedule for
    MNIST-SVHN. With S = A * N (N batches an epoch) beta reaches 1 at the last step of epoch A, one
    epoch later than the official ``--annealing-epochs A``; ``kl_annealing_epochs`` is that schedule."""
    kl_annealing_epochs: int = 0
    """A: anneal beta over A epochs exactly as the official MVAE code does (0: off). The schedule of
    ``mnist/train.py`` of github.com/mhw32/multimodal-vae-public (``--annealing-epochs``, 200 of 500
    epochs for MNIST). In epoch e (from 1) at batch i (from 0)
    of N: beta = (i + (e - 1) N + 1) / (A N) while e < A, and 1 from the first step of epoch A on (it
    rises to (A - 1) / A, then steps to 1). The trainer gives the model the epoch and N
    (:meth:`MVAE.start_epoch`). Exclusive with ``kl_annealing_steps``."""

    def __post_init__(self):
        super().__post_init__()
        for name in ("kl_annealing_steps", "kl_annealing_epochs"):
            value = getattr(self, name)
            if int(value) != value or value < 0:
                raise ValueError(f"{name} must be a non-negative integer, got {value}")
        if self.kl_annealing_steps and self.kl_annealing_epochs:
            raise ValueError("give kl_annealing_steps or kl_annealing_epochs, not both")
