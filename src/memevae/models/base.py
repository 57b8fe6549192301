"""What every multimodal VAE in memevae shares: its modalities, encoding, decoding, translation.

Models differ only in how posteriors combine and in their objective; training, data and
evaluation code see only this interface.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Literal

import torch
from torch import nn

from ..data import DataConfig, default_kinds
from ..distributions import DiagonalGaussian
from ..options import check_choices
from ..modalities import Modality, build_modality, check_networks, modality_kinds


@dataclass
class ModelConfig:
    """Fields every model shares."""

    modalities: dict[str, str] = field(default_factory=lambda: default_kinds(DataConfig().dataset))
    """Data modality name -> network kind ("mnist-mlp", "svhn-conv"; paper Table 8); default: those of
    the default data set, MNIST-Textured."""
    latent_dim: int = 64
    """Latent size L. 64 in the MEME release; MMVAE used 20 (Shi et al. 2019)."""
    architecture: Literal["release", "paper"] = "release"
    """The networks: "release", the authors' (MNIST 512-512 MLP; SVHN conv with BatchNorm and a
    512-channel layer), or "paper", Table 8 of App. K (MNIST 400-unit MLP; plain conv stack)."""

    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    """The example shape of each modality whose kind leaves sizes to the data (a caption modality's
    (32, vocabulary size)), taken from the training data when a run is created and recorded with
    it; modalities of fixed shape need no entry."""

    structural: ClassVar[tuple[str, ...]] = ("modalities", "latent_dim", "architecture", "shapes")
    presets: ClassVar[dict[str, dict]] = {}
    """Named sets of field values a model offers (``memevae train --preset NAME``); none by default."""
    """The options that shape a model's parameters (:meth:`MultimodalVAE.with_options` keeps them)."""

    def __post_init__(self):
        check_choices(self)
        if len(self.modalities) < 2:
            raise ValueError(f"a multimodal model needs at least two modalities, got {list(self.modalities)}")
        for name, kind in self.modalities.items():
            if kind not in modality_kinds():
                raise ValueError(f"modality {name!r}: unknown kind {kind!r}; choose one of {', '.join(modality_kinds())}")
        if int(self.latent_dim) != self.latent_dim or self.latent_dim < 1:
            raise ValueError(f"latent_dim must be a positive integer, got {self.latent_dim}")
        unknown = sorted(set(self.shapes) - set(self.modalities))
        if unknown:
            raise ValueError(f"shapes names modalities {unknown} the model does not have; it has {list(self.modalities)}")
        self.shapes = {name: tuple(shape) for name, shape in self.shapes.items()}
        for name, kind in self.modalities.items():
            try:
                modality_kinds()[kind].resolve_shape(self.shapes.get(name))
            except ValueError as error:
                raise ValueError(f"modality {name!r}: {error} (shapes[{name!r}], which a run takes from its data)") from None


@dataclass
class ModelOutput:
    """What a model's forward returns and all the trainer reads: a scalar loss to minimise and
    float metrics to log (keys like "paired/bound")."""

    loss: torch.Tensor
    metrics: dict[str, float]


class MultimodalVAE(nn.Module):
    """Base class: owns one :class:`Modality` per data modality."""

    config_class = ModelConfig
    learns_from_unpaired = True
    """Whether the objective has terms for items with missing modalities (MMVAE's does not)."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.modalities = nn.ModuleDict({
            name: build_modality(kind, config.latent_dim, config.architecture, name=name, shape=config.shapes.get(name))
            for name, kind in config.modalities.items()
        })

    @property
    def modality_names(self) -> tuple[str, ...]:
        return tuple(self.modalities.keys())

    def initialise(self, train_data, generator: torch.Generator) -> None:
        """Data-dependent initialisation before training (e.g. MEME's pseudo-samples). Default: none."""

    def start_epoch(self, epoch: int, batches: int) -> None:
        """Called by the trainer before training epoch ``epoch`` (from 1) of ``batches`` steps, for
        schedules counted in epochs (MVAE's ``kl_annealing_epochs``). Default: nothing."""

    def modality(self, name: str) -> Modality:
        if name not in self.modalities:
            raise ValueError(f"unknown modality {name!r}; this model has {', '.join(self.modality_names)}")
        return self.modalities[name]

    def set_networks(self, modality: str, encoder: nn.Module | None = None, decoder: nn.Module | None = None) -> None:
        """Give ``modality`` your own encoder and/or decoder (before training: the optimiser takes
        the parameters the model has when training starts).

        The encoder must map a batch (B, *data_shape) to (loc, raw_scale), each (B, latent_dim); the
        decoder a batch of latents (B, latent_dim) to the likelihood's parameters (B, *shape). Each
        is checked by one forward pass on a batch of two (eval mode, no gradients; its mode is
        restored), and refused with a one-line ValueError.
        """
        mod = self.modality(modality)
        check_networks(mod, self.config.latent_dim, encoder, decoder, subject=f"modality {modality!r}")
        if encoder is not None:
            mod.encoder = encoder
        if decoder is not None:
            mod.decoder = decoder

    def encode(self, modality: str, x: torch.Tensor):
        """The posterior q(z | x) given one modality alone, in the model's latent family."""
        return self.modality(modality).encode(x)

    def posterior(self, data: dict[str, torch.Tensor]):
        """q(z | X_S) for the observed modalities S given in ``data``, an object with ``rsample(shape,
        generator=)`` and ``log_prob(z)`` in the model's own family (Gaussian, or Laplace for MMVAE's
        App. I variant). Given one modality this is :meth:`encode`; models that combine modalities
        (MVAE's product, MMVAE's mixture) override it for more."""
        if len(data) != 1:
            raise ValueError(f"{type(self).__name__} defines a posterior given one modality at a time, got {', '.join(data) or 'none'}")
        (name, x), = data.items()
        return self.encode(name, x)

    def prior(self, like: torch.Tensor):
        """The unconditional prior p(z) = N(0, I) over the latent dimension (shape (L,), broadcasts),
        on the device and dtype of ``like``."""
        L = self.config.latent_dim
        return DiagonalGaussian(like.new_zeros(L), like.new_ones(L))

    def decode(self, modality: str, z: torch.Tensor) -> torch.Tensor:
        """The likelihood mean of ``modality`` at latents z (..., L)."""
        mod = self.modality(modality)
        return mod.mean(mod.decode(z))

    def log_likelihood(self, modality: str, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """log p(x | z) of ``modality`` for data x (B, ...) at latents z (*S, B, L) -> (*S, B)."""
        mod = self.modality(modality)
        return mod.log_likelihood(x, mod.decode(z))

    # -- importance weights of the likelihood tables (Table 2, App. C) ---------------------------
    # Each ``*_log_weights`` returns log w at ``samples`` fresh draws from its proposal, shape
    # (samples, B); the IWAE estimate of the log marginal is logsumexp over the draws minus
    # log(samples). Each ``*_importance`` returns the same as a function ``k -> (k, B)`` of the
    # number of draws, with what does not depend on the draws (the encoders: proposal, prior,
    # pseudo-sample mixture) computed once, so an estimate drawn in chunks runs them once per batch.
    # A model that defines only a ``*_log_weights`` method gets it, called once per chunk.
    def _defines_own(self, method: str) -> bool:
        return getattr(type(self), method) is not getattr(MultimodalVAE, method)

    def conditional_directions(self) -> list[tuple[str, str, bool]]:
        """The (s, t, trained) for which the model defines a conditional density p(s | t) of its own
        (MEME: every direction, ``trained`` False for a direction it was not trained in); [] for
        models with one joint generative model."""
        return []

    @torch.no_grad()
    def conditional_log_weights(self, data: dict[str, torch.Tensor], source: str, target: str, samples: int) -> torch.Tensor:
        """log p(s|z) + log p(z|t) - log q(z|s) for the model's conditional p(s | t) (see
        :meth:`conditional_directions`)."""
        return self.conditional_importance(data, source, target)(samples)

    def conditional_importance(self, data: dict[str, torch.Tensor], source: str, target: str):
        """:meth:`conditional_log_weights` as a function of the number of draws (see above)."""
        if self._defines_own("conditional_log_weights"):
            return lambda samples: self.conditional_log_weights(data, source, target, samples)
        raise NotImplementedError(f"{type(self).__name__} defines no conditional density p({source} | {target}) of its own")

    def marginal_prior_log_prob(self, modality: str, z: torch.Tensor) -> torch.Tensor:
        """log p(z) in the model's density of ``modality`` observed alone (default: :meth:`prior`)."""
        return self.prior(z).log_prob(z)

    def marginal_prior_density(self, modality: str):
        """:meth:`marginal_prior_log_prob` of ``modality`` as a function of z, with what does not
        depend on z computed once."""
        return lambda z: self.marginal_prior_log_prob(modality, z)

    @torch.no_grad()
    def marginal_log_weights(self, data: dict[str, torch.Tensor], modality: str, samples: int) -> torch.Tensor:
        """log p(x|z) + log p(z) - log q(z|x) at z ~ q(z|x), for log p(x) of one modality alone
        (p(z) from :meth:`marginal_prior_log_prob`)."""
        return self.marginal_importance(data, modality)(samples)

    def marginal_importance(self, data: dict[str, torch.Tensor], modality: str):
        """:meth:`marginal_log_weights` as a function of the number of draws (see above)."""
        if self._defines_own("marginal_log_weights"):
            return lambda samples: self.marginal_log_weights(data, modality, samples)
        x = data[modality]
        with torch.no_grad():
            proposal, prior = self.posterior({modality: x}), self.marginal_prior_density(modality)

        @torch.no_grad()
        def log_weights(samples: int) -> torch.Tensor:
            z = proposal.rsample((samples,))
            return self.log_likelihood(modality, x, z) + prior(z) - proposal.log_prob(z)

        return log_weights

    @torch.no_grad()
    def joint_log_weights(self, data: dict[str, torch.Tensor], samples: int) -> torch.Tensor:
        """sum_m log p(x_m|z) + log p(z) - log q(z|X) at z ~ q(z|X) (the joint posterior of every
        modality), the likelihoods unweighted: the weights of log p(X)."""
        return self.joint_importance(data)(samples)

    def _all_modalities(self, data: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        missing = [name for name in self.modality_names if name not in data]
        if missing:
            raise ValueError(f"joint_log_weights needs every modality; missing {', '.join(missing)}")
        return {name: data[name] for name in self.modality_names}

    def joint_importance(self, data: dict[str, torch.Tensor]):
        """:meth:`joint_log_weights` as a function of the number of draws (see above)."""
        if self._defines_own("joint_log_weights"):
            return lambda samples: self.joint_log_weights(data, samples)
        data = self._all_modalities(data)
        with torch.no_grad():
            proposal = self.posterior(data)

        @torch.no_grad()
        def log_weights(samples: int) -> torch.Tensor:
            z = proposal.rsample((samples,))
            total = self.prior(z).log_prob(z) - proposal.log_prob(z)
            for name in self.modality_names:
                total = total + self.log_likelihood(name, data[name], z)
            return total

        return log_weights

    def with_options(self, **changes) -> "MultimodalVAE":
        """A copy of this model (same networks, parameters and buffers) whose config has ``changes``,
        e.g. ``model.with_options(estimator="full")``. Options that shape the parameters (the
        config's ``structural`` ones) cannot change so; an unknown option is a one-line error."""
        import copy
        import dataclasses

        known = {f.name for f in dataclasses.fields(self.config)}
        unknown, fixed = sorted(set(changes) - known), sorted(set(changes) & set(self.config.structural))
        if unknown:
            raise ValueError(f"{type(self).__name__} has no option(s) {', '.join(unknown)}")
        if fixed:
            raise ValueError(f"{', '.join(fixed)} shape(s) the parameters of {type(self).__name__}; build a new model instead")
        twin = copy.deepcopy(self)
        twin.config = dataclasses.replace(self.config, **changes)  # validated by the config's checks
        return twin

    @torch.no_grad()
    def translate(self, x: torch.Tensor, source: str, target: str, sample: bool = True,
                  generator: torch.Generator | None = None) -> torch.Tensor:
        """Cross-generation: encode ``x`` of ``source``, take z (a sample, with noise from
        ``generator`` when given, or the posterior mean), and return the decoder mean of
        ``target`` (as coherence is measured, Sec. 4.1)."""
        posterior = self.encode(source, x)
        z = posterior.rsample(generator=generator) if sample else posterior.loc
        return self.decode(target, z)

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor, modality: str, sample: bool = True) -> torch.Tensor:
        """Self-generation: ``translate`` from a modality to itself."""
        return self.translate(x, modality, modality, sample=sample)

    def forward(self, batch) -> ModelOutput:  # pragma: no cover - abstract
        raise NotImplementedError

    def check_batch(self, batch) -> None:
        unknown = [m for m in batch.observed if m not in self.modalities]
        if unknown:
            raise ValueError(f"batch has modalities {unknown} this model does not know; it has {', '.join(self.modality_names)}")
