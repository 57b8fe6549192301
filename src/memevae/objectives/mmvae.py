"""MMVAE's objective as free functions of log-densities (Shi, Siddharth, Paige & Torr, NeurIPS 2019).

MMVAE's joint posterior is the mixture of experts q(z|X) = (1/M) sum_m q(z|x_m). It is trained on
the stratified importance-weighted bound: K samples are drawn from EACH expert and, for the k-th
sample of expert m,

    log w_mk = log p(z_mk) + sum_n lambda_n log p(x_n | z_mk) - log q(z_mk | X).

The bounds follow ``src/objectives.py`` of the official code (github.com/iffsid/mmvae):
``m_iwae_looser`` (average over experts outside the log) and ``m_iwae`` (one logsumexp over all
M*K samples). Their gradient is estimated in one of three ways (``MMVAEObjective``):

- ``"iwae"``: the plain reparameterised gradient of the bound (official ``--obj iwae``);
- ``"dreg"``: the doubly-reparameterised gradient of Tucker et al. (2019) that the official
  ``m_dreg`` / ``m_dreg_looser`` are written to compute, with w~^2 on the encoders' path
  (:func:`mmvae_dreg_bound`);
- ``"dreg-as-released"``: the gradient those official functions actually produce. Their hook that
  squares the weights is registered on a tensor made by stacking the samples after log w was
  computed from the unstacked ones, so no gradient passes through it and it never fires; the
  encoders then get w~ (not w~^2) on the path (:func:`mmvae_released_dreg_bound`). This is the
  estimator behind the published MMVAE results (official ``--obj dreg``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Literal, get_args

import torch

Bound = Literal["looser", "tighter"]
BOUNDS = get_args(Bound)
MMVAEObjective = Literal["dreg", "dreg-as-released", "iwae"]
MMVAE_OBJECTIVES = get_args(MMVAEObjective)


def dimension_likelihood_weights(sizes: Mapping[str, int]) -> dict[str, float]:
    """lambda_m = max_n D_n / D_m: each modality's log-likelihood weighted as if it had as many
    values as the largest (D_m = values per example). The official MMVAE code's default
    ``llik_scaling`` for MNIST-SVHN: MNIST x 3*32*32 / (28*28) = 3.92, SVHN x 1.

    Example:
        >>> {m: round(w, 2) for m, w in dimension_likelihood_weights({"mnist": 784, "svhn": 3072}).items()}
        {'mnist': 3.92, 'svhn': 1.0}
    """
    largest = max(sizes.values())
    return {name: largest / size for name, size in sizes.items()}


def mixture_log_prob(log_probs: torch.Tensor) -> torch.Tensor:
    """log (1/J) sum_j q_j(z) from per-expert log-densities ``log_probs`` (J, ...) -> (...).

    Example:
        >>> round(mixture_log_prob(torch.tensor([0.0, -math.inf])).item(), 4)
        -0.6931
    """
    return torch.logsumexp(log_probs, dim=0) - math.log(log_probs.shape[0])


def mmvae_log_weights(log_prior: torch.Tensor, log_likelihoods: torch.Tensor, log_posterior: torch.Tensor) -> torch.Tensor:
    """log w = log p(z) + sum_n log p(x_n|z) - log q(z|X), per sample.

    Args:
        log_prior: log p(z_mk), (M, K, B).
        log_likelihoods: (already weighted) lambda_n log p(x_n | z_mk) stacked over the N
            modalities n, (N, M, K, B).
        log_posterior: log q(z_mk | X) under the mixture of experts, (M, K, B). For DReG the
            experts' parameters in it must be detached (``_m_dreg``: ``qz_xs_``).

    Example:
        >>> mmvae_log_weights(torch.tensor([-1.0]), torch.tensor([[-2.0], [-3.0]]), torch.tensor([-0.5]))
        tensor([-5.5000])
    """
    return log_prior + log_likelihoods.sum(0) - log_posterior


def _check(log_weights: torch.Tensor, bound: str) -> None:
    if bound not in BOUNDS:
        raise ValueError(f"unknown bound {bound!r}; choose one of {', '.join(BOUNDS)}")
    if log_weights.dim() != 3:
        raise ValueError(f"log_weights must be (M experts, K samples, B items), got shape {tuple(log_weights.shape)}")


def mmvae_iwae_bound(log_weights: torch.Tensor, bound: str = "looser") -> torch.Tensor:
    """MMVAE's stratified importance-weighted bound per item, from log w (M, K, B) -> (B,).

    ``"looser"`` (Shi et al. 2019: the stratified IWAE bound of their mixture of experts; official
    ``m_iwae_looser``/``m_dreg_looser``, used for the paper's runs):
        L = (1/M) sum_m log (1/K) sum_k w_mk.
    ``"tighter"`` (official ``m_iwae``/``m_dreg``): one importance-weighted average over all M*K
    samples, L = log (1/(MK)) sum_{m,k} w_mk, an upper bound on ``"looser"`` by Jensen's
    inequality (the official README calls its weighting of the modalities "unbalanced").

    Example:
        >>> lw = torch.tensor([[[-1.0], [-3.0]], [[-2.0], [-2.0]]])  # M = 2, K = 2, B = 1
        >>> round(mmvae_iwae_bound(lw).item(), 4), round(mmvae_iwae_bound(lw, "tighter").item(), 4)
        (-1.7831, -1.7598)
    """
    _check(log_weights, bound)
    if bound == "looser":
        return mixture_log_prob(log_weights.transpose(0, 1)).mean(0)
    return mixture_log_prob(log_weights.flatten(0, 1))


def normalised_weights(log_weights: torch.Tensor, bound: str = "looser") -> torch.Tensor:
    """The self-normalised importance weights w~ (detached), normalised over K within each expert
    (``"looser"``, official ``m_dreg_looser``: ``logsumexp(lw, 1)``) or over all M*K samples
    (``"tighter"``, ``m_dreg``), shape (M, K, B).

    Example:
        >>> normalised_weights(torch.zeros(2, 4, 1))[:, :, 0]
        tensor([[0.2500, 0.2500, 0.2500, 0.2500],
                [0.2500, 0.2500, 0.2500, 0.2500]])
    """
    _check(log_weights, bound)
    with torch.no_grad():
        if bound == "looser":
            return torch.softmax(log_weights, dim=1)
        return torch.softmax(log_weights.flatten(0, 1), dim=0).view_as(log_weights)


def mmvae_dreg_bound(log_weights: torch.Tensor, samples: torch.Tensor, bound: str = "looser") -> torch.Tensor:
    """The stratified bound with the doubly-reparameterised gradient (DReG) of Tucker, Lawson, Gu &
    Maddison (ICLR 2019), per item (B,): the estimator the official ``m_dreg_looser`` / ``m_dreg``
    are written to compute. The official functions do NOT produce it (their reweighting hook never
    fires); :func:`mmvae_released_dreg_bound` gives what they produce.

    ``log_weights`` (M, K, B) must have been computed from ``samples`` (M, K, B, L), the
    reparameterised draws z_mk = g(eps; phi_m), with the experts' parameters DETACHED inside
    log q(z|X), so that the encoders' parameters reach log w only through z. Then, with
    w~ the normalised weights (:func:`normalised_weights`, detached):

    - value: the bound of :func:`mmvae_iwae_bound` (the surrogate sum_k w~_k log w_k has the same
      gradient but is not a bound; we return the bound so that the logged loss is the bound);
    - gradient w.r.t. decoder and prior parameters theta: sum_k w~_k d log w_k / d theta (the IWAE
      gradient, unchanged);
    - gradient w.r.t. encoder parameters phi: sum_k w~_k^2 (d log w_k / d z_k)(d z_k / d phi),
      obtained from the surrogate sum_k w~_k log w_k and a hook on ``samples`` (the very tensor
      log w was computed from) that multiplies the gradient reaching z_k by w~_k once more.

    For ``"looser"`` each quantity is averaged over the M experts. The hook is registered only
    when ``samples`` requires a gradient (so evaluation under ``torch.no_grad`` is unaffected).

    Bias: for one expert (M = 1) this is Tucker et al.'s DReG, whose expectation is the gradient
    of the bound. For a mixture (M > 1), log w contains log q(z|X) = log (1/M) sum_j q_j(z), which
    is not the density the samples of stratum m are drawn from (q_m), so the reparameterisation
    identity behind DReG does not turn the dropped score terms into the w~^2 path terms, and the
    expectation differs from the bound's gradient (measured on a toy problem in
    ``tests/objectives/test_mmvae_objective.py``). The reparameterised IWAE gradient
    (:func:`mmvae_iwae_bound`) is the unbiased alternative.

    Example:
        >>> z = torch.zeros(1, 3, 1, 2, requires_grad=True)
        >>> lw = -(z - 1.0).pow(2).sum(-1)
        >>> out = mmvae_dreg_bound(lw, z)
        >>> torch.allclose(out, mmvae_iwae_bound(lw))
        True
    """
    _check(log_weights, bound)
    if tuple(samples.shape[:3]) != tuple(log_weights.shape):
        raise ValueError(f"samples must be (M, K, B, L) matching log_weights {tuple(log_weights.shape)}, got {tuple(samples.shape)}")
    weights = normalised_weights(log_weights, bound)
    if samples.requires_grad:
        samples.register_hook(lambda grad: grad * weights.unsqueeze(-1))
    return _surrogate_with_bound_value(log_weights, weights, bound)


def _surrogate_with_bound_value(log_weights: torch.Tensor, weights: torch.Tensor, bound: str) -> torch.Tensor:
    """The bound's value carrying the gradient of the surrogate sum_k w~_k log w_k (averaged over
    experts for "looser", summed over all M*K samples for "tighter")."""
    surrogate = (weights * log_weights).sum(1)  # (M, B)
    surrogate = surrogate.mean(0) if bound == "looser" else surrogate.sum(0)
    value = mmvae_iwae_bound(log_weights.detach(), bound)
    return value + (surrogate - surrogate.detach())


def mmvae_released_dreg_bound(log_weights: torch.Tensor, bound: str = "looser") -> torch.Tensor:
    """The stratified bound with the gradient that the official ``m_dreg_looser`` / ``m_dreg``
    (github.com/iffsid/mmvae, ``src/objectives.py``) actually produce, per item (B,).

    Those functions return the surrogate sum_k w~_k log w_k with the experts' parameters detached
    inside log q(z|X), and register a hook meant to multiply the gradient reaching the samples by
    w~ once more. But the hook is registered on ``torch.stack`` / ``torch.cat`` of the samples,
    made after log w was computed from the unstacked samples: the loss does not depend on that
    tensor, so the hook never fires. What the encoders get is therefore

        sum_k w~_k (d log w_k / d z_k)(d z_k / d phi)

    (w~, not Tucker et al.'s w~^2; the "sticking the landing" IWAE gradient of Roeder, Wu &
    Duvenaud 2017, which is biased even for one expert, see the tests). Decoder and prior
    gradients, and the value, are those of :func:`mmvae_dreg_bound`. The paper's MMVAE results
    (Shi et al. 2019, and MEME's comparison, Joy et al. 2022) were trained with this gradient.

    ``log_weights`` (M, K, B) must have been computed with the experts' parameters detached in
    log q(z|X), as for :func:`mmvae_dreg_bound`; no hook is needed.

    Example:
        >>> lw = torch.tensor([[[-1.0], [-3.0]], [[-2.0], [-2.0]]])
        >>> torch.allclose(mmvae_released_dreg_bound(lw), mmvae_iwae_bound(lw))
        True
    """
    _check(log_weights, bound)
    return _surrogate_with_bound_value(log_weights, normalised_weights(log_weights, bound), bound)
