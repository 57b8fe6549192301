"""MVAE's objective as free functions of log-densities (Wu & Goodman, NeurIPS 2018).

The MVAE's posterior for any observed subset S of the modalities is the product of experts
q(z|X_S) ∝ p(z) prod_{m in S} q(z|x_m) (see :func:`memevae.distributions.gaussian_product`); its
objective is a sum of ordinary ELBOs, one per subset it "sub-samples". The official code this
follows is ``mnist/train.py`` of github.com/mhw32/multimodal-vae-public (``elbo_loss`` and the
training loop, which sums the joint ELBO and each unimodal ELBO).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch


def mvae_elbo(log_likelihoods: Mapping[str, torch.Tensor], kl: torch.Tensor,
              likelihood_weights: Mapping[str, float] | None = None, kl_weight: float = 1.0) -> torch.Tensor:
    """The (weighted) ELBO of one observed subset S, Wu & Goodman (2018), the ELBO with weights lambda, beta:

    ELBO(X_S) = sum_{m in S} lambda_m log p(x_m | z) - beta KL(q(z|X_S) || p(z)),  z ~ q(z|X_S),

    with q(z|X_S) the product of the prior expert and the experts of S. Only the modalities in S
    are reconstructed (the official ``elbo_loss`` is called with the missing modalities set to
    None). lambda_m = beta = 1 gives the ELBO itself; the official scripts use lambda > 1 for
    low-dimensional label/attribute modalities and anneal beta from 0 to 1 (see
    :class:`~memevae.models.mvae.MVAEConfig`). The KL is the analytic Gaussian one.

    Args:
        log_likelihoods: modality name -> log p(x_m | z) at the sample z, (B,), for m in S.
        kl: KL(q(z|X_S) || p(z)), (B,).
        likelihood_weights: lambda_m per modality (missing names: 1).

    Example:
        >>> mvae_elbo({"a": torch.tensor([-3.0]), "b": torch.tensor([-2.0])}, torch.tensor([0.5]))
        tensor([-5.5000])
        >>> mvae_elbo({"a": torch.tensor([-3.0])}, torch.tensor([0.5]), {"a": 2.0}, kl_weight=0.5)
        tensor([-6.2500])
    """
    if not log_likelihoods:
        raise ValueError("an ELBO needs the log-likelihood of at least one observed modality")
    weights = likelihood_weights or {}
    reconstruction = sum(weights.get(name, 1.0) * value for name, value in log_likelihoods.items())
    return reconstruction - kl_weight * kl


def mvae_subsampled_bound(elbos: Sequence[torch.Tensor]) -> torch.Tensor:
    """MVAE's sub-sampled training objective, Wu & Goodman (2018), "sub-sampled training":

    for items with the modalities S observed (|S| > 1),
        L(X_S) = ELBO(X_S) + sum_{m in S} ELBO(x_m)
    (the joint ELBO plus every unimodal ELBO; the paper's optional k random subsets are not used,
    and for two modalities there are none), and for an item with one modality m, ELBO(x_m) alone.
    This function sums the ELBOs it is given, per item.

    Example:
        >>> mvae_subsampled_bound([torch.tensor([-5.0, -4.0]), torch.tensor([-2.0, -2.5]), torch.tensor([-3.0, -1.0])])
        tensor([-10.0000,  -7.5000])
    """
    if not elbos:
        raise ValueError("the sub-sampled bound needs at least one ELBO")
    return torch.stack(list(elbos)).sum(0)
