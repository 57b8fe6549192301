"""MEME's objectives as free functions of log-densities (Joy et al., ICLR 2022).

They take already-computed log-densities, so each can be checked against a hand computation and
so the model can batch all network passes of a step (see :mod:`memevae.models.meme`).
"""

from __future__ import annotations

from typing import Literal, get_args

import math
from dataclasses import dataclass

import torch

Estimator = Literal["stop-gradient", "full"]
ESTIMATORS = get_args(Estimator)


@dataclass
class DirectionalBound:
    """Per-item pieces of one direction s->t of the paired bound (Eq. 6)."""

    bound: torch.Tensor          # L_st per item, (B,)
    log_classifier_marginal: torch.Tensor  # log q(t|s), (B,)
    weight: torch.Tensor         # w = q(t|z) / q(t|s), (B,), detached


def meme_paired_bound(log_likelihood: torch.Tensor, log_prior_ratio: torch.Tensor, log_classifier: torch.Tensor,
                      classifier_scale: float = 10.0, estimator: str = "stop-gradient") -> DirectionalBound:
    """One direction s->t of MEME's paired bound, Eq. 6 with App. B (stop-gradient) and App. D.

    L_st = w * (log p(s|z) + log p(z|t) - log q(z|s) - log q(t|z)) + c * log q(t|s),
    with w = exp(log q(t|z) - log q(t|s)) and
    log q(t|s) ~= logsumexp_{k=0..K} log q(t|z_k) - log(K+1), where z_0 = z is the posterior sample
    that also appears in the first term (App. D: including it keeps w <= K+1, so exp cannot
    overflow). With ``estimator="stop-gradient"`` w is detached (App. B); ``"full"`` keeps its
    gradient (the naive estimator of Eq. 7, for the SNR study of Fig. 10). The constant log p(t)
    is dropped. The paper has c = 1; the release uses c = 10.

    Args:
        log_likelihood: log p(s | z) for the posterior sample z, (B,).
        log_prior_ratio: log p(z|t) - log q(z|s) at z, or -KL(q(z|s) || p(z|t)) (the release), (B,).
        log_classifier: log q(t | z_k) for k = 0..K, with row 0 the posterior sample z, (K+1, B).

    Example:
        >>> out = meme_paired_bound(torch.tensor([-1.0]), torch.tensor([-0.5]),
        ...                         torch.tensor([[-2.0], [-3.0]]), classifier_scale=1.0)
        >>> round(out.bound.item(), 4)
        -1.6488
    """
    if estimator not in ESTIMATORS:
        raise ValueError(f"unknown estimator {estimator!r}; choose one of {', '.join(ESTIMATORS)}")
    if log_classifier.dim() != 2 or log_classifier.shape[1:] != log_likelihood.shape:
        raise ValueError(f"log_classifier must be (K+1, B) with B = {tuple(log_likelihood.shape)}, got {tuple(log_classifier.shape)}")
    log_classifier_at_z = log_classifier[0]
    log_classifier_marginal = torch.logsumexp(log_classifier, dim=0) - math.log(log_classifier.shape[0])
    weight = torch.exp(log_classifier_at_z - log_classifier_marginal)
    if estimator == "stop-gradient":
        weight = weight.detach()
    bound = weight * (log_likelihood + log_prior_ratio - log_classifier_at_z) + classifier_scale * log_classifier_marginal
    return DirectionalBound(bound, log_classifier_marginal, weight.detach())


def meme_unpaired_bound(log_likelihood: torch.Tensor, log_mixture_prior: torch.Tensor, log_posterior: torch.Tensor) -> torch.Tensor:
    """MEME's bound for an item with only s observed, Eq. 4.

    L_s = log p(s|z) + log p_lambda_t(z) - log q(z|s), z ~ q(z|s) (one sample), where
    p_lambda_t(z) = (1/N) sum_i p(z | u_i) is the mixture of the other modality's encoder at its
    N learnable pseudo-samples u_i (see :func:`memevae.distributions.gaussian_mixture_log_prob`).

    Example:
        >>> meme_unpaired_bound(torch.tensor([-1.0]), torch.tensor([-2.0]), torch.tensor([-0.5]))
        tensor([-2.5000])
    """
    return log_likelihood + log_mixture_prior - log_posterior
