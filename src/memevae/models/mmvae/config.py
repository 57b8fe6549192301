"""MMVAE's configuration, every field with its source in Shi et al. (NeurIPS 2019), their code
(github.com/iffsid/mmvae) or MEME's comparison (Joy et al., ICLR 2022)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Literal, get_args

from ...objectives import Bound, MMVAEObjective
from ..base import ModelConfig
from ..mvae.config import LikelihoodScaling

Posterior = Literal["gaussian", "laplace"]
POSTERIORS = get_args(Posterior)


@dataclass
class MMVAEConfig(ModelConfig):
    """Configuration of :class:`~memevae.models.mmvae.MMVAE` (Shi et al. 2019, as the paper compares with it in Sec. 4)."""

    importance_samples: int = 30
    """K, the samples drawn from EACH expert q(z|x_m) (stratified sampling; M*K in all). The
    official MNIST-SVHN run uses K = 30 with DReG (README: ``--obj dreg --K 30 --looser``)."""
    objective: MMVAEObjective = "dreg"
    """How the bound's gradient is estimated: "dreg", "dreg-as-released" or "iwae". "dreg" (default):
    the doubly-reparameterised gradient of Tucker et al. (2019), w~^2 on the encoders' path, which
    the official ``m_dreg*`` are written to compute. "dreg-as-released": the gradient the official
    ``m_dreg*`` actually give (their reweighting hook never fires, so the encoders get w~, not
    w~^2; see :func:`memevae.objectives.mmvae_released_dreg_bound`); the published MMVAE numbers
    were trained with it (``--preset official``). "iwae": the plain reparameterised gradient of the
    same bound (``m_iwae*``). All three share the value and the decoder and prior gradients. The
    default stays "dreg": the estimator the MMVAE paper describes (unbiased for one expert),
    and the one memevae has always trained with. With a mixture (M > 1) both DReG variants are
    biased, see :func:`memevae.objectives.mmvae_dreg_bound`."""
    bound: Bound = "looser"
    """Which bound: "looser" or "tighter". "looser": (1/M) sum_m log (1/K) sum_k w_mk, the average over experts outside the log (the
    stratified bound of Shi et al. 2019; official ``--looser``, used for their runs).
    "tighter": log (1/(MK)) sum_{m,k} w_mk over all samples (official default without --looser)."""
    posterior: Posterior = "gaussian"
    """Latent family of the posterior experts and the prior: "gaussian" or "laplace". "gaussian" (default): as in MEME's
    comparison, which restricts all three models to Gaussians (App. I). "laplace": the official
    code's Laplace posterior and prior (MEME App. I, Table 7), with the official scale link
    scale = softmax(raw) * L + 1e-6 on the encoder's scale head."""
    learn_prior: bool = False
    """Learn the prior's scale (as the official ``--learn-prior``). It is parameterised as softmax(theta) * L (theta = 0: unit scale; location
    fixed at 0) as the official ``--learn-prior`` does (used for Shi et al.'s results). Default off:
    N(0, I), the prior of MEME's Gaussian comparison."""
    likelihood_scaling: LikelihoodScaling = "dimension"
    """Weights lambda_m of log p(x_m|z) in log w: "dimension" or "none". "dimension" (default, the official code's default
    ``llik_scaling``): lambda_m = max_n D_n / D_m, so MNIST's likelihood is scaled by
    3*32*32/(28*28) = 3.92 against SVHN's. "none": all 1."""

    likelihood_weights: dict[str, float] = field(default_factory=dict)
    """Weights lambda_m given per modality, replacing those of ``likelihood_scaling`` for the
    modalities named (the official CUB run: {"image": 0.002}, its ``--llik_scaling 0.002``)."""

    likelihood: Literal["meme", "released"] = "meme"
    """The modalities' likelihoods: "meme" or "released". "meme" (default): those of the modality kinds,
    shared with MEME and MVAE (Laplace, scale 1, location = the decoder's sigmoid output).
    "released": those of the official MMVAE code: Laplace with scale 0.75 for MNIST and SVHN
    (``vae_mnist.py``, ``vae_svhn.py``; "mnist-mlp" locations clamped to [1e-6, 1 - 1e-6]) and 0.01
    for CUB image features (``vae_cub_image_ft.py``); captions keep their categorical likelihood."""

    presets: ClassVar[dict[str, dict]] = {
        "official": {
            "objective": "dreg-as-released", "bound": "looser", "importance_samples": 30, "learn_prior": True,
            "posterior": "laplace", "likelihood": "released", "likelihood_scaling": "dimension", "latent_dim": 20,
            "architecture": "paper",
        },
        "official-cub": {
            "objective": "dreg-as-released", "bound": "looser", "importance_samples": 50, "learn_prior": True,
            "posterior": "gaussian", "likelihood": "released", "likelihood_scaling": "none",
            "likelihood_weights": {"image": 0.002}, "latent_dim": 64,
        },
    }
    """Named sets of options (``--preset NAME``; given options override them). "official": MMVAE as the
    official code trained it for MNIST-SVHN (its README: ``--obj dreg --K 30 --learn-prior --looser
    --latent-dim 20``; Laplace prior, posterior and likelihood, scale 0.75, clamped MNIST means,
    default ``llik_scaling``), the setting of the published MMVAE numbers, with the networks of
    MEME's Table 8 (``architecture="paper"``), which have the official MMVAE networks' layers.
    "official-cub": MMVAE as the official code trained it on CUB image features and captions (its
    README: ``--model cubISft --learn-prior --K 50 --obj dreg --looser --latent-dim 64
    --llik_scaling 0.002``; Gaussian prior and posterior; image features Laplace with scale 0.01
    weighted by 0.002, captions categorical weighted by 1); its training settings (batch 64, 50
    epochs, Adam with amsgrad at lr 1e-3) are the trainer's to set."""

    structural: ClassVar[tuple[str, ...]] = (*ModelConfig.structural, "learn_prior")

    def __post_init__(self):
        super().__post_init__()
        if int(self.importance_samples) != self.importance_samples or self.importance_samples < 1:
            raise ValueError(f"importance_samples (K) must be a positive integer, got {self.importance_samples}")
        unknown = sorted(set(self.likelihood_weights) - set(self.modalities))
        if unknown:
            raise ValueError(f"likelihood_weights names modalities {unknown} the model does not have; it has {list(self.modalities)}")
        if not isinstance(self.learn_prior, bool):
            raise ValueError(f"learn_prior must be true or false, got {self.learn_prior!r}")
