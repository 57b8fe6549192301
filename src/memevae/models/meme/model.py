"""MEME: each modality's encoder is the other's conditional prior (Joy et al., ICLR 2022)."""

from __future__ import annotations

import torch
from torch import nn

from ...distributions import gaussian_mixture_log_prob
from ...objectives import meme_paired_bound, meme_unpaired_bound
from ..base import ModelOutput, MultimodalVAE
from .config import MEMEConfig


class MEME(MultimodalVAE):
    """Multimodal VAE trained by mutual supervision.

    Exactly four networks (two encoders, two decoders) serve every term (App. C, weight sharing):
    enc_s is q(z|s) in direction s->t and the conditional prior p(z|s) in direction t->s; dec_t is
    the likelihood p(t|z) in t->s and the "classifier" q(t|z) in s->t. Items with one modality use
    the mixture prior over the other modality's learnable pseudo-samples (Eq. 4).

    A step encodes each modality once, draws K+1 samples per direction, and decodes with each
    decoder once for all the latents it has to score (its K+1 classifier samples and its
    likelihood sample), so the cost is one network pass per network per step.

    Example:
        >>> model = MEME(MEMEConfig(latent_dim=8, pseudo_samples=4))
        >>> from memevae.data import Batch
        >>> batch = Batch({"mnist": torch.rand(2, 1, 28, 28), "textured": torch.rand(2, 3, 32, 32)}, torch.zeros(2, dtype=torch.long))
        >>> model(batch).loss.shape
        torch.Size([])
    """

    config_class = MEMEConfig

    def __init__(self, config: MEMEConfig):
        super().__init__(config)
        self.pseudo_samples = nn.ParameterDict({
            name: nn.Parameter(torch.zeros(config.pseudo_samples, *mod.shape)) for name, mod in self.modalities.items()
        })

    def initialise(self, train_data, generator: torch.Generator) -> None:
        """Set each modality's pseudo-samples u_1..u_N to N distinct real training examples of it (in
        the continuous form of :meth:`~memevae.modalities.Modality.relax`: captions as one-hot vectors)."""
        mask = train_data.mask()
        for column, name in enumerate(train_data.modalities):
            rows = mask[:, column].nonzero().squeeze(1)
            count = self.config.pseudo_samples
            if len(rows) < count:
                raise ValueError(f"pseudo_samples = {count} but the training data has only {len(rows)} items with "
                                 f"{name!r}; lower --pseudo-samples")
            chosen = rows[torch.randperm(len(rows), generator=generator)[:count]]
            examples = torch.stack([train_data[int(row)]["data"][name] for row in chosen])
            with torch.no_grad():
                self.pseudo_samples[name].copy_(self.modalities[name].relax(examples))

    def forward(self, batch) -> ModelOutput:
        self.check_batch(batch)
        if len(batch.observed) == 2:
            return self.paired(batch.data)
        return self.unpaired(batch.data, batch.observed[0])

    def paired(self, data: dict[str, torch.Tensor]) -> ModelOutput:
        """Negative mean of 0.5 (L_st + L_ts) (Eq. 2), or of L_st alone for one direction."""
        cfg = self.config
        posteriors = {name: self.modalities[name].encode(x) for name, x in data.items()}
        samples = {source: posteriors[source].rsample((cfg.classifier_samples + 1,)) for source, _ in cfg.directions()}

        # One decoder pass per modality over every latent it must score: as the classifier
        # q(m | z_k), k = 0..K, in direction source->m, and as the likelihood p(m | z) in m->target.
        log_classifier, log_likelihood = {}, {}
        for name, mod in self.modalities.items():
            chunks, slots = [], []
            for source, target in cfg.directions():
                if target == name:
                    chunks.append(samples[source]); slots.append(("classifier", source))
                if source == name:
                    chunks.append(samples[name][:1]); slots.append(("likelihood", name))
            scores = mod.log_likelihood(data[name], mod.decode(torch.cat(chunks)))
            for (role, source), part in zip(slots, scores.split([len(c) for c in chunks])):
                if role == "classifier":
                    log_classifier[source] = part
                else:
                    log_likelihood[source] = part[0]

        bounds, metrics = [], {}
        for source, target in cfg.directions():
            posterior, prior = posteriors[source], posteriors[target]
            if cfg.kl == "analytic":
                log_prior_ratio = -posterior.kl(prior)
            else:
                z = samples[source][0]
                log_prior_ratio = prior.log_prob(z) - posterior.log_prob(z)
            terms = meme_paired_bound(log_likelihood[source], log_prior_ratio, log_classifier[source],
                                      cfg.classifier_scale, cfg.estimator)
            bounds.append(terms.bound)
            key = f"paired/{source}->{target}"
            metrics.update({
                f"{key}/bound": terms.bound.mean().item(),
                f"{key}/log_likelihood": log_likelihood[source].mean().item(),
                f"{key}/log_prior_ratio": log_prior_ratio.mean().item(),
                f"{key}/log_classifier": terms.log_classifier_marginal.mean().item(),
                f"{key}/weight": terms.weight.mean().item(),
            })
        bound = torch.stack(bounds).mean(0)
        loss = -bound.mean()
        metrics["paired/loss"] = loss.item()
        return ModelOutput(loss, metrics)

    def unpaired(self, data: dict[str, torch.Tensor], name: str) -> ModelOutput:
        """Negative mean of L_s (Eq. 4) for items with only modality ``name`` observed."""
        mod = self.modalities[name]
        x = data[name]
        posterior = mod.encode(x)
        z = posterior.rsample()
        log_mixture_prior = self.marginal_prior_log_prob(name, z)
        log_likelihood = mod.log_likelihood(x, mod.decode(z))
        bound = meme_unpaired_bound(log_likelihood, log_mixture_prior, posterior.log_prob(z))
        loss = -bound.mean()
        key = f"unpaired/{name}"
        return ModelOutput(loss, {
            f"{key}/loss": loss.item(),
            f"{key}/log_likelihood": log_likelihood.mean().item(),
            f"{key}/log_prior_ratio": (log_mixture_prior - posterior.log_prob(z)).mean().item(),
        })

    # -- densities of the likelihood tables (Table 2, App. C) ------------------------------------
    def prior(self, like: torch.Tensor):
        raise ValueError("MEME has no unconditional prior p(z): each modality's encoder is the other's conditional prior "
                         "p(z|t), and a modality alone has the pseudo-sample mixture of Eq. 4 (marginal_prior_log_prob)")

    def conditional_directions(self) -> list[tuple[str, str, bool]]:
        """Both directions s->t; ``trained`` is False for a direction a one-directional model was
        not trained in ("flipped", App. C: the same networks with their roles swapped)."""
        first, second = self.modality_names
        trained = self.config.directions()
        return [(s, t, (s, t) in trained) for s, t in ((first, second), (second, first))]

    @torch.no_grad()
    def conditional_log_weights(self, data: dict[str, torch.Tensor], source: str, target: str, samples: int) -> torch.Tensor:
        """log p(s|z) + log p(z|t) - log q(z|s) at z ~ q(z|s) = enc_s(s), with p(s|z) = dec_s and the
        conditional prior p(z|t) = enc_t(t) (Sec. 3.1; the constant log p(t) of Eq. 6 dropped)."""
        proposal, prior = self.encode(source, data[source]), self.encode(target, data[target])
        z = proposal.rsample((samples,))
        return self.log_likelihood(source, data[source], z) + prior.log_prob(z) - proposal.log_prob(z)

    def marginal_prior_log_prob(self, modality: str, z: torch.Tensor) -> torch.Tensor:
        """log p_lambda(z) = log (1/N) sum_i p(z | u_i): the mixture of the other modality's encoder at
        its pseudo-samples u_i, the prior of a modality observed alone (Eq. 4)."""
        (other,) = [m for m in self.modality_names if m != modality]
        prior = self.encode(other, self.pseudo_samples[other])
        return gaussian_mixture_log_prob(z, prior.loc, prior.scale)

