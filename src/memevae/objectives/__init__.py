"""Objectives as free functions of log-densities, one module per model family, each citing its equation."""

from .meme import ESTIMATORS, Estimator, DirectionalBound, meme_paired_bound, meme_unpaired_bound
from .mmvae import (BOUNDS, MMVAE_OBJECTIVES, Bound, MMVAEObjective, dimension_likelihood_weights, mixture_log_prob, mmvae_dreg_bound, mmvae_iwae_bound, mmvae_log_weights,
                    mmvae_released_dreg_bound, normalised_weights)
from .mvae import mvae_elbo, mvae_subsampled_bound

__all__ = ["ESTIMATORS", "Estimator", "Bound", "MMVAEObjective", "DirectionalBound", "meme_paired_bound", "meme_unpaired_bound",
           "mvae_elbo", "mvae_subsampled_bound",
           "BOUNDS", "MMVAE_OBJECTIVES", "dimension_likelihood_weights", "mixture_log_prob", "mmvae_log_weights", "mmvae_iwae_bound", "normalised_weights",
           "mmvae_dreg_bound", "mmvae_released_dreg_bound"]
