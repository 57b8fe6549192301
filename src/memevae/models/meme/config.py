"""MEME's configuration, every field with its source in the paper or the authors' release."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal, get_args

from ...objectives import Estimator
from ..base import ModelConfig

KLEstimate = Literal["analytic", "monte-carlo"]
KL_ESTIMATES = get_args(KLEstimate)


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
    """"both", the bi-directional objective 0.5 (L_st + L_ts) of Eq. 2, or one direction "s->t" such
    as "mnist->textured", the one-directional objective of Eq. 6 (Table 2)."""
    pseudo_samples: int = 128
    """N, learnable pseudo-samples per modality in the mixture prior of Eq. 4 (release: the batch
    size, 128; App. J.1 sweeps 1 to 100). Initialised from real training examples."""

    structural: ClassVar[tuple[str, ...]] = (*ModelConfig.structural, "pseudo_samples")

    def __post_init__(self):
        super().__post_init__()
        if len(self.modalities) != 2:
            raise ValueError(f"MEME is implemented for two modalities, got {list(self.modalities)}")
        if self.classifier_samples < 1:
            raise ValueError(f"classifier_samples (K) must be >= 1, got {self.classifier_samples}")
        if self.pseudo_samples < 1:
            raise ValueError(f"pseudo_samples (N) must be >= 1, got {self.pseudo_samples}")
        self.directions()  # validates `direction`

    def directions(self) -> list[tuple[str, str]]:
        """The (s, t) pairs the paired objective averages over."""
        first, second = self.modalities
        if self.direction == "both":
            return [(first, second), (second, first)]
        parts = self.direction.split("->")
        if len(parts) == 2 and set(parts) == {first, second}:
            return [(parts[0], parts[1])]
        raise ValueError(f"unknown direction {self.direction!r}; choose 'both', '{first}->{second}' or '{second}->{first}'")
