"""MEME: each modality's encoder is the other's conditional prior (Joy et al., ICLR 2022)."""

from __future__ import annotations

import torch
from torch import nn

from ...distributions import MixtureOfExperts, gaussian_mixture_log_prob, gaussian_product
from ...objectives import meme_paired_bound, meme_unpaired_bound
from ..base import ModelOutput, MultimodalVAE
from .config import MEMEConfig


class MEME(MultimodalVAE):
    """Multimodal VAE trained by mutual supervision.

    One encoder and one decoder per modality serve every term (App. C, weight sharing): enc_s is
    q(z|s) in the term of s and the conditional prior p(z|s) in the terms of the other modalities;
    dec_t is the likelihood p(t|z) in the term of t and the "classifier" q(t|z) in the others. With
    two modalities these are the directions s->t of Eq. 2; with more, each observed modality's term
    has the combination of the other observed encoders as its prior (App. E, Eq. 11;
    ``combine``). Items with one modality use the mixture prior over the other modalities'
    learnable pseudo-samples (Eq. 4).

    A step encodes each observed modality once, draws K+1 samples per term, and decodes with each
    decoder once for all the latents it has to score (K+1 classifier samples for every other
    observed modality's term, and its own likelihood sample): one pass per network per step, over
    (1 + (k-1)(K+1)) B latents for k observed modalities (so decoder work grows as k^2).

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
        if len(batch.observed) >= 2:
            return self.paired(batch.data)
        return self.unpaired(batch.data, batch.observed[0])

    def conditional_prior(self, posteriors: dict, others: tuple[str, ...]):
        """p(z|T), the conditional prior of a term whose other observed modalities are ``others``:
        the one encoder q(z|t) itself (Eq. 6), or for two or more their combination of App. E
        (Eq. 11): the normalised product of the Gaussians, or the equal-weight mixture."""
        experts = [posteriors[t] for t in others]
        if len(experts) == 1:
            return experts[0]
        if self.config.combine == "product":
            return gaussian_product([q.loc for q in experts], [q.scale for q in experts])
        return MixtureOfExperts(experts)

    def paired(self, data: dict[str, torch.Tensor]) -> ModelOutput:
        """Negative mean over items of (1/|S|) sum_{s in S} L_{s,T} for the observed modalities S,
        T = S without s: 0.5 (L_st + L_ts) of Eq. 2 for two, Eq. 11 for more; or L_st alone for one
        direction. In L_{s,T} (Eq. 6 with t -> T), p(z|T) is :meth:`conditional_prior` and the
        classifier is q(T|z) = prod_{t in T} q(t|z), each q(t|z) the decoder of t."""
        cfg = self.config
        terms = cfg.directions(tuple(data))
        posteriors = {name: self.modalities[name].encode(x) for name, x in data.items()}
        samples = {source: posteriors[source].rsample((cfg.classifier_samples + 1,)) for source, _ in terms}

        # One decoder pass per modality over every latent it must score: as the classifier
        # q(m | z_k), k = 0..K, in every term s->T with m in T, and as the likelihood p(m | z) in
        # the term m->T.
        log_classifier = {source: 0 for source, _ in terms}
        log_likelihood = {}
        for name, mod in self.modalities.items():
            chunks, slots = [], []
            for source, others in terms:
                if name in others:
                    chunks.append(samples[source]); slots.append(("classifier", source))
                if source == name:
                    chunks.append(samples[name][:1]); slots.append(("likelihood", name))
            if not chunks:
                continue
            scores = mod.log_likelihood(data[name], mod.decode(torch.cat(chunks)))
            for (role, source), part in zip(slots, scores.split([len(c) for c in chunks])):
                if role == "classifier":
                    log_classifier[source] = log_classifier[source] + part
                else:
                    log_likelihood[source] = part[0]

        bounds, metrics = [], {}
        for source, others in terms:
            posterior, prior = posteriors[source], self.conditional_prior(posteriors, others)
            if cfg.kl == "analytic":
                log_prior_ratio = -posterior.kl(prior)
            else:
                z = samples[source][0]
                log_prior_ratio = prior.log_prob(z) - posterior.log_prob(z)
            parts = meme_paired_bound(log_likelihood[source], log_prior_ratio, log_classifier[source],
                                      cfg.classifier_scale, cfg.estimator)
            bounds.append(parts.bound)
            key = f"paired/{source}->{'+'.join(others)}"
            metrics.update({
                f"{key}/bound": parts.bound.mean().item(),
                f"{key}/log_likelihood": log_likelihood[source].mean().item(),
                f"{key}/log_prior_ratio": log_prior_ratio.mean().item(),
                f"{key}/log_classifier": parts.log_classifier_marginal.mean().item(),
                f"{key}/weight": parts.weight.mean().item(),
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

    def posterior(self, data: dict[str, torch.Tensor]):
        """q(z | X_S): one modality's encoder, or for several the combination of their encoders
        that MEME's objective uses as a conditional prior (``combine``: product or mixture, App. E),
        so that generation from a subset of modalities (MoPoE's leave-one-out coherence) follows
        the model's own rule."""
        if not data:
            raise ValueError("MEME's posterior needs at least one observed modality")
        posteriors = {name: self.encode(name, x) for name, x in data.items()}
        return self.conditional_prior(posteriors, tuple(posteriors))

    # -- densities of the likelihood tables (Table 2, App. C) ------------------------------------
    def prior(self, like: torch.Tensor):
        raise ValueError("MEME has no unconditional prior p(z): each modality's encoder is the other's conditional prior "
                         "p(z|t), and a modality alone has the pseudo-sample mixture of Eq. 4 (marginal_prior_log_prob)")

    def conditional_directions(self) -> list[tuple[str, str, bool]]:
        """Every ordered pair s->t of modalities; ``trained`` is False for a direction a
        one-directional model was not trained in ("flipped", App. C: the same networks with their
        roles swapped)."""
        trained = {(s, others[0]) for s, others in self.config.directions()} if len(self.modality_names) == 2 else None
        return [(s, t, trained is None or (s, t) in trained) for s in self.modality_names for t in self.modality_names if s != t]

    def conditional_importance(self, data: dict[str, torch.Tensor], source: str, target: str):
        """log p(s|z) + log p(z|t) - log q(z|s) at z ~ q(z|s) = enc_s(s), with p(s|z) = dec_s and the
        conditional prior p(z|t) = enc_t(t) (Sec. 3.1; the constant log p(t) of Eq. 6 dropped), as a
        function of the number of draws; each encoder runs once."""
        with torch.no_grad():
            proposal, prior = self.encode(source, data[source]), self.encode(target, data[target])

        @torch.no_grad()
        def log_weights(samples: int) -> torch.Tensor:
            z = proposal.rsample((samples,))
            return self.log_likelihood(source, data[source], z) + prior.log_prob(z) - proposal.log_prob(z)

        return log_weights

    def marginal_prior_log_prob(self, modality: str, z: torch.Tensor) -> torch.Tensor:
        """log p_lambda(z) = log (1/N) sum_i p(z | u_i): the mixture of the other modality's encoder at
        its pseudo-samples u_i, the prior of a modality observed alone (Eq. 4); with more than two
        modalities, the equal-weight mixture over every other modality's encoder at its N
        pseudo-samples ((M-1) N components: Eq. 4 generalised, as App. E leaves it open)."""
        return self.marginal_prior_density(modality)(z)

    def marginal_prior_density(self, modality: str):
        """:meth:`marginal_prior_log_prob` as a function of z, the pseudo-samples encoded once."""
        priors = [self.encode(other, self.pseudo_samples[other]) for other in self.modality_names if other != modality]
        loc, scale = torch.cat([p.loc for p in priors]), torch.cat([p.scale for p in priors])
        return lambda z: gaussian_mixture_log_prob(z, loc, scale)
