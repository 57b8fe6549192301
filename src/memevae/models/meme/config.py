"""MEME's configuration, every field with its source in the paper or the authors' release."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal, get_args

from ...objectives import Estimator
from ..base import ModelConfig

KLEstimate = Literal["analytic", "monte-carlo"]
KL_ESTIMATES = get_args(KLEstimate)
Combine = Literal["product", "mixture"]


@dataclass
class MEMEConfig(ModelConfig):
    """Configuration of :class:`~memevae.models.meme.MEME` (paper Sec. 3, Eq. 2-6, App. B-D)."""

    classifier_samples: int = 10
    """K, extra samples z_1..z_K ~ q(z|s) in the estimate of log q(t|s) (App. D, Eq. 8); the
    posterior sample z is always included as well, so K+1 terms enter the logsumexp. Release: 10."""
    classifier_scale: float = 10.0
    """c, the weight of log q(t|s) in Eq. 6 (the paper's derivation gives 1; the release uses 10)."""
    kl: KLEstimate = "analytic"
    """How log p(z|t) - log q(z|s) is estimated: "analytic" (-KL(q(z|s) || p(z|t)), as the
    release does) or "monte-carlo" (at the posterior sample z, as Eq. 6 is written)."""
    estimator: Estimator = "stop-gradient"
    """How the gradient treats the importance weight q(t|z)/q(t|s): "stop-gradient" detaches it
    (App. B); "full" is the naive estimator of Eq. 7, kept for the gradient SNR study (Fig. 10)."""
    direction: str = "both"
    """"both", every observed modality in turn: the bi-directional objective 0.5 (L_st + L_ts) of
    Eq. 2, and for M > 2 modalities the average of Eq. 11; or, with two modalities, one direction
    "s->t" such as "mnist->textured", the one-directional objective of Eq. 6 (Table 2)."""
    combine: Combine = "product"
    """With more than two modalities (App. E, Eq. 11): how the encoders of the other observed
    modalities T combine into the conditional prior p(z|T) of a modality's term: "product", the
    normalised product of their Gaussians (precision-weighted, no prior expert), or "mixture",
    (1/|T|) sum_t q(z|t). The KL to a mixture has no closed form, so "mixture" needs
    ``kl="monte-carlo"`` once some item observes three or more modalities. With two modalities
    the prior is the other encoder itself and this option changes nothing."""
    pseudo_samples: int = 128
    """N, learnable pseudo-samples per modality in the mixture prior of Eq. 4 (release: the batch
    size, 128; App. J.1 sweeps 1 to 100). Initialised from real training examples."""

    structural: ClassVar[tuple[str, ...]] = (*ModelConfig.structural, "pseudo_samples")

    def __post_init__(self):
        super().__post_init__()
        if self.combine == "mixture" and self.kl == "analytic" and len(self.modalities) > 2:
            raise ValueError("combine='mixture' has no closed-form KL to its conditional prior when three or more modalities "
                             "are observed: use kl='monte-carlo' (--kl monte-carlo), or combine='product'")
        if self.classifier_samples < 1:
            raise ValueError(f"classifier_samples (K) must be >= 1, got {self.classifier_samples}")
        if self.pseudo_samples < 1:
            raise ValueError(f"pseudo_samples (N) must be >= 1, got {self.pseudo_samples}")
        self.directions()  # validates `direction`

    def directions(self, observed: tuple[str, ...] | None = None) -> list[tuple[str, tuple[str, ...]]]:
        """The terms (s, T) the paired objective averages over for the ``observed`` modalities
        (default: all): s the modality whose posterior q(z|s) and likelihood p(s|z) the term scores,
        T the other observed modalities, whose encoders give the conditional prior p(z|T) and whose
        decoders the "classifier" q(T|z) (Eq. 6 for |T| = 1, Eq. 11 beyond)."""
        observed = tuple(self.modalities) if observed is None else tuple(observed)
        if self.direction == "both":
            return [(s, tuple(t for t in observed if t != s)) for s in observed]
        parts = self.direction.split("->")
        names = tuple(self.modalities)
        if len(names) == 2 and len(parts) == 2 and set(parts) == set(names):
            return [(parts[0], (parts[1],))]
        if len(names) != 2:
            raise ValueError(f"direction {self.direction!r}: a one-directional objective is defined for two modalities; "
                             f"with {len(names)} use 'both'")
        first, second = names
        raise ValueError(f"unknown direction {self.direction!r}; choose 'both', '{first}->{second}' or '{second}->{first}'")
