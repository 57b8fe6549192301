"""MMVAE: a mixture of experts trained on a stratified importance-weighted bound (Shi et al., NeurIPS 2019)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ...distributions import DiagonalGaussian, DiagonalLaplace, MixtureOfExperts
from ...modalities.likelihoods import LaplaceLikelihood
from ...objectives import (dimension_likelihood_weights, mixture_log_prob, mmvae_dreg_bound, mmvae_iwae_bound,
                           mmvae_log_weights, mmvae_released_dreg_bound, normalised_weights)
from ..base import ModelOutput, MultimodalVAE
from .config import MMVAEConfig

SCALE_FLOOR = 1e-6
"""``Constants.eta`` of the official code, added to the softmax scale link of the Laplace variant."""

RELEASED_LIKELIHOOD_SCALES = {"mnist-mlp": 0.75, "svhn-conv": 0.75, "features-mlp": 0.01}
"""The Laplace likelihood scale of the official code's decoders, by modality kind: 0.75 for MNIST
and SVHN (``vae_mnist.py``, ``vae_svhn.py``), 0.01 for CUB image features (``vae_cub_image_ft.py``).
Other likelihoods (the categorical one of captions) are the same in both."""

RELEASED_CLAMPED_KINDS = ("mnist-mlp",)
"""Modality kinds whose likelihood location the official code clamps to [eta, 1 - eta] (its MNIST
decoder, ``vae_mnist.py``; the SVHN decoder is not clamped)."""


class MMVAE(MultimodalVAE):
    """Multimodal VAE whose joint posterior is the mixture of experts q(z|X) = (1/M) sum_m q(z|x_m).

    A training step draws K samples from each expert (stratified sampling), scores each with
    log w = log p(z) + sum_n lambda_n log p(x_n|z) - log q(z|X), and maximises the stratified
    importance-weighted bound (``importance_samples``, ``bound``) with the gradient estimator
    ``objective``: Tucker et al.'s DReG, the official code's DReG as released, or IWAE (see
    :mod:`memevae.objectives.mmvae`). The objective needs every modality of an item, so MMVAE cannot learn from
    unpaired data (``learns_from_unpaired = False``) and ``forward`` refuses a batch that lacks one.

    Each encoder runs once per step, and each decoder once over all M*K*B latents.

    Example:
        >>> model = MMVAE(MMVAEConfig(latent_dim=8, importance_samples=3))
        >>> from memevae.data import Batch
        >>> batch = Batch({"mnist": torch.rand(2, 1, 28, 28), "textured": torch.rand(2, 3, 32, 32)}, torch.zeros(2, dtype=torch.long))
        >>> model(batch).loss.shape
        torch.Size([])
    """

    config_class = MMVAEConfig
    learns_from_unpaired = False

    def __init__(self, config: MMVAEConfig):
        super().__init__(config)
        self.latent_class = DiagonalGaussian if config.posterior == "gaussian" else DiagonalLaplace
        if config.learn_prior:
            self.prior_logits = nn.Parameter(torch.zeros(config.latent_dim))
        sizes = {name: math.prod(mod.data_shape) for name, mod in self.modalities.items()}
        self.likelihood_weights = {**(dimension_likelihood_weights(sizes) if config.likelihood_scaling == "dimension"
                                      else {name: 1.0 for name in sizes}), **config.likelihood_weights}
        if config.likelihood == "released":
            for mod in self.modalities.values():
                if isinstance(mod.likelihood, LaplaceLikelihood):
                    if mod.kind not in RELEASED_LIKELIHOOD_SCALES:
                        raise ValueError(f"likelihood 'released': the official code has no likelihood for modality kind "
                                         f"{mod.kind!r} (it has {', '.join(RELEASED_LIKELIHOOD_SCALES)})")
                    clamp = SCALE_FLOOR if mod.kind in RELEASED_CLAMPED_KINDS else 0.0
                    mod.likelihood = LaplaceLikelihood(mod.likelihood.event_dims, scale=RELEASED_LIKELIHOOD_SCALES[mod.kind],
                                                       clamp=clamp)

    # -- distributions -----------------------------------------------------------------------
    def prior(self, like: torch.Tensor):
        """p(z): location 0; scale 1, or softmax(theta) * L when learnt (official ``pz_params``)."""
        L = self.config.latent_dim
        if self.config.learn_prior:
            scale = F.softmax(self.prior_logits, dim=-1) * L
        else:
            scale = like.new_ones(L)
        return self.latent_class(like.new_zeros(L), scale)

    def encode(self, modality: str, x: torch.Tensor):
        """The expert q(z | x_m): the modality's encoder, Gaussian (as MEME's) or Laplace."""
        mod = self.modality(modality)
        if self.config.posterior == "gaussian":
            return mod.encode(x)
        loc, raw_scale = mod.encoder_outputs(x)  # float32 under mixed precision, as the Gaussian's
        return DiagonalLaplace(loc, F.softmax(raw_scale, dim=-1) * raw_scale.shape[-1] + SCALE_FLOOR)

    def posterior(self, data: dict[str, torch.Tensor]):
        """The mixture of experts (1/|S|) sum_{m in S} q(z|x_m) over the modalities S given in ``data``."""
        if not data:
            raise ValueError("a posterior needs at least one modality")
        experts = [self.encode(name, x) for name, x in data.items()]
        return experts[0] if len(experts) == 1 else MixtureOfExperts(experts)

    def log_weights(self, data: dict[str, torch.Tensor], experts: list, z: torch.Tensor, detach_experts: bool):
        """log w at latents z (..., B, L) and the pieces of it, each (..., B).

        ``experts`` are the posteriors q(z|x_m) in ``modality_names`` order; with
        ``detach_experts`` their parameters are detached inside the mixture density (DReG).
        """
        mixture = [q.detach() if detach_experts else q for q in experts]
        log_posterior = mixture_log_prob(torch.stack([q.log_prob(z) for q in mixture]))
        log_prior = self.prior(z).log_prob(z)
        log_likelihoods = {}
        for name in self.modality_names:
            mod = self.modalities[name]
            log_likelihoods[name] = mod.log_likelihood(data[name], mod.decode(z))
        weighted = torch.stack([self.likelihood_weights[name] * value for name, value in log_likelihoods.items()])
        return mmvae_log_weights(log_prior, weighted, log_posterior), log_prior, log_posterior, log_likelihoods

    # -- objective ---------------------------------------------------------------------------
    def forward(self, batch) -> ModelOutput:
        """Negative mean over the batch of the stratified bound (value: the IWAE bound)."""
        self.check_batch(batch)
        missing = [name for name in self.modality_names if name not in batch.observed]
        if missing:
            raise ValueError(f"MMVAE's objective needs every modality of an item, but this batch lacks {', '.join(missing)}; "
                             f"train MMVAE on paired data (--paired-fraction 1, or --paired-only)")
        cfg = self.config
        data = batch.data
        experts = [self.encode(name, data[name]) for name in self.modality_names]
        z = torch.stack([q.rsample((cfg.importance_samples,)) for q in experts])  # (M, K, B, L)
        dreg = cfg.objective in ("dreg", "dreg-as-released")
        log_w, log_prior, log_posterior, log_likelihoods = self.log_weights(data, experts, z, detach_experts=dreg)
        if cfg.objective == "dreg":
            bound = mmvae_dreg_bound(log_w, z, cfg.bound)
        elif cfg.objective == "dreg-as-released":
            bound = mmvae_released_dreg_bound(log_w, cfg.bound)
        else:
            bound = mmvae_iwae_bound(log_w, cfg.bound)
        loss = -bound.mean()
        weights = normalised_weights(log_w, cfg.bound)
        metrics = {
            "paired/loss": loss.item(),
            "paired/bound": bound.mean().item(),
            "paired/log_prior": log_prior.mean().item(),
            "paired/log_posterior": log_posterior.mean().item(),
            # effective sample size per expert's K samples (looser) or of all M*K, as a fraction
            "paired/ess": (1.0 / weights.pow(2).sum(1 if cfg.bound == "looser" else (0, 1))).mean().item()
                          / (cfg.importance_samples * (1 if cfg.bound == "looser" else len(experts))),
        }
        for name, value in log_likelihoods.items():
            metrics[f"paired/{name}/log_likelihood"] = value.mean().item()
        return ModelOutput(loss, metrics)

    def joint_importance(self, data: dict[str, torch.Tensor]):
        """log p(X, z) - log q(z|X) at ``samples`` draws z from the mixture, (samples, B), as a
        function of ``samples`` (the experts encoded once): the importance weights of a
        marginal-likelihood estimate, with the likelihoods unweighted (lambda_m = 1, whatever
        ``likelihood_scaling``). Stratified (samples / M per expert) when M divides ``samples``;
        otherwise each draw picks its expert uniformly at random. Either way the mean of the
        weights is unbiased for p(X)."""
        data = self._all_modalities(data)
        with torch.no_grad():
            mixture = self.posterior(data)

        @torch.no_grad()
        def log_weights(samples: int) -> torch.Tensor:
            M = len(mixture.experts)
            if samples % M == 0:
                z = torch.cat([q.rsample((samples // M,)) for q in mixture.experts])
            else:
                z = mixture.rsample((samples,))
            _, log_prior, log_posterior, log_likelihoods = self.log_weights(data, mixture.experts, z, detach_experts=False)
            return log_prior + sum(log_likelihoods.values()) - log_posterior  # the unweighted joint density

        return log_weights
