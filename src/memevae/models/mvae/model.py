"""MVAE: a product of Gaussian experts with a prior expert, trained by sub-sampled ELBOs (Wu & Goodman, NeurIPS 2018)."""

from __future__ import annotations

import math

import torch

from ...distributions import DiagonalGaussian, gaussian_product
from ...objectives import dimension_likelihood_weights, mvae_elbo, mvae_subsampled_bound
from ..base import ModelOutput, MultimodalVAE
from .config import MVAEConfig


class MVAE(MultimodalVAE):
    """Multimodal VAE whose posterior for any observed subset S of modalities is the product of
    experts q(z|X_S) ∝ p(z) prod_{m in S} q(z|x_m), with the prior expert p(z) = N(0, I) (closed
    form: precision-weighted, :func:`~memevae.distributions.gaussian_product`).

    Training (Wu & Goodman 2018, "sub-sampled training"; official ``mnist/train.py``): on an
    item with every modality in S observed, the joint ELBO of S plus the ELBO of each single
    modality of S; on an item with one modality, that modality's ELBO alone. So every partial-
    observation scheme trains it. Each ELBO reconstructs only the modalities it conditions on.

    ``encode(m, x)`` is the unimodal posterior p(z) q(z|x_m) (normalised), the one MVAE uses when
    only x_m is given; ``posterior(data)`` is the product over all given modalities.

    A step runs each encoder once and each decoder once (over the latents of every ELBO that
    reconstructs its modality).

    Example:
        >>> model = MVAE(MVAEConfig(latent_dim=8))
        >>> from memevae.data import Batch
        >>> batch = Batch({"mnist": torch.rand(2, 1, 28, 28), "textured": torch.rand(2, 3, 32, 32)}, torch.zeros(2, dtype=torch.long))
        >>> model(batch).loss.shape
        torch.Size([])
    """

    config_class = MVAEConfig

    def __init__(self, config: MVAEConfig):
        super().__init__(config)
        sizes = {name: math.prod(mod.shape) for name, mod in self.modalities.items()}
        self.likelihood_weights = (dimension_likelihood_weights(sizes) if config.likelihood_scaling == "dimension"
                                   else {name: 1.0 for name in sizes})
        # Training forward passes seen so far: drives KL annealing, saved with the model.
        self.register_buffer("training_steps", torch.zeros((), dtype=torch.long))
        # The epoch (from 1), its batch count and the training steps taken in it: drive
        # kl_annealing_epochs (set by start_epoch, which the trainer calls before each epoch).
        self.epoch: int | None = None
        self.epoch_batches = 0
        self.epoch_step = 0

    def start_epoch(self, epoch: int, batches: int) -> None:
        """Training epoch ``epoch`` (from 1) of ``batches`` steps begins (the trainer calls this)."""
        self.epoch, self.epoch_batches, self.epoch_step = epoch, batches, 0

    # -- posteriors (the prior p(z) = N(0, I) is the base class's) ------------------------------
    def product(self, experts: list[DiagonalGaussian]) -> DiagonalGaussian:
        """The product of the prior expert and ``experts``."""
        prior = self.prior(experts[0].loc)
        return gaussian_product([prior.loc] + [q.loc for q in experts], [prior.scale] + [q.scale for q in experts])

    def encode(self, modality: str, x: torch.Tensor) -> DiagonalGaussian:
        """q(z | x_m) ∝ p(z) q_m(z | x_m): the MVAE posterior when only ``modality`` is observed."""
        return self.product([self.modality(modality).encode(x)])

    def posterior(self, data: dict[str, torch.Tensor]) -> DiagonalGaussian:
        """q(z | X_S) ∝ p(z) prod_{m in S} q_m(z | x_m) for the modalities S given in ``data``."""
        if not data:
            raise ValueError("a posterior needs at least one modality")
        return self.product([self.modality(name).encode(x) for name, x in data.items()])

    def kl_weight(self) -> float:
        """beta at the current training step: (step + 1) / S during the first S steps, then 1
        (``kl_annealing_steps``); or the official epoch schedule (``kl_annealing_epochs``)."""
        epochs = self.config.kl_annealing_epochs
        if epochs:
            if self.epoch is None:
                raise ValueError("kl_annealing_epochs needs the epoch: call model.start_epoch(epoch, batches) "
                                 "before each training epoch (memevae's trainer does)")
            if self.epoch >= epochs:
                return 1.0
            N = self.epoch_batches
            return min(1.0, (self.epoch_step + (self.epoch - 1) * N + 1) / (epochs * N))
        steps = self.config.kl_annealing_steps
        if steps == 0:
            return 1.0
        return min(1.0, (int(self.training_steps) + 1) / steps)

    # -- objective ---------------------------------------------------------------------------
    def forward(self, batch) -> ModelOutput:
        """Negative mean of the sub-sampled bound over the batch (see the class text)."""
        self.check_batch(batch)
        observed = batch.observed
        data = batch.data
        experts = {name: self.modalities[name].encode(data[name]) for name in observed}
        subsets = [observed] + ([(name,) for name in observed] if len(observed) > 1 else [])
        posteriors = [self.product([experts[name] for name in subset]) for subset in subsets]
        samples = [q.rsample() for q in posteriors]

        # One decoder pass per modality over the samples of every ELBO that reconstructs it.
        log_likelihood: dict[tuple[int, str], torch.Tensor] = {}
        for name in observed:
            mod = self.modalities[name]
            uses = [i for i, subset in enumerate(subsets) if name in subset]
            scores = mod.log_likelihood(data[name], mod.decode(torch.stack([samples[i] for i in uses])))
            for i, score in zip(uses, scores):
                log_likelihood[i, name] = score

        beta = self.kl_weight()
        if self.training and torch.is_grad_enabled():
            self.training_steps += 1
            self.epoch_step += 1
        elbos, metrics = [], {}
        if len(observed) == len(self.modalities):
            prefix = "paired"
        elif len(observed) == 1:
            prefix = f"unpaired/{observed[0]}"
        else:
            prefix = "partial/" + "+".join(observed)
        for i, (subset, posterior) in enumerate(zip(subsets, posteriors)):
            kl = posterior.kl(self.prior(posterior.loc))
            terms = {name: log_likelihood[i, name] for name in subset}
            elbos.append(mvae_elbo(terms, kl, self.likelihood_weights, beta))
            key = prefix if len(subsets) == 1 else f"{prefix}/{'joint' if i == 0 else subset[0]}"
            metrics[f"{key}/elbo"] = (sum(terms.values()) - kl).mean().item()
            metrics[f"{key}/kl"] = kl.mean().item()
            for name, value in terms.items():
                suffix = "log_likelihood" if len(subset) == 1 else f"log_likelihood/{name}"
                metrics[f"{key}/{suffix}"] = value.mean().item()
        loss = -mvae_subsampled_bound(elbos).mean()
        metrics[f"{prefix}/loss"] = loss.item()
        if self.config.kl_annealing_steps or self.config.kl_annealing_epochs:
            metrics[f"{prefix}/kl_weight"] = beta
        return ModelOutput(loss, metrics)
