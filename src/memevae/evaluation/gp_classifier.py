"""The GP-headed classifier of Table 6 (App. H.2 of Joy et al., ICLR 2022): a small CNN feature
extractor whose last layer is a sparse variational GP, trained on real images of one modality.

- :class:`GPClassifier`: features h(x) (two conv + max-pool blocks, two linear layers,
  standardised outputs) -> 10 independent GPs (one latent function per class, RBF kernel, constant
  mean) with a variational strategy over M learnt inducing points in feature space
  (``gpytorch.variational.VariationalStrategy`` inside ``IndependentMultitaskVariationalStrategy``)
  -> ``gpytorch.likelihoods.SoftmaxLikelihood`` (p(y|f) = softmax(f), no mixing weights).
- :func:`train_gp_classifier`: the CNN first with a linear softmax layer, then the GP layer on the
  frozen features (ELBO).
- :func:`save_gp_classifier` / :func:`load_gp_classifier`.

:mod:`memevae.evaluation.metrics.mutual_information` scores images with it (BALD mutual information).
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import torch
from torch import nn
from tqdm.auto import tqdm

from .. import tensorfile
from ..data.dataset import as_float_images

__all__ = ["GPClassifier", "train_gp_classifier", "save_gp_classifier", "load_gp_classifier", "gp_accuracy",
           "MissingDependencyError"]

FORMAT = 2
"""The layout of ``gp-<modality>.pt``. 2: a :mod:`memevae.tensorfile` file of kind "gp-classifier"
holding ``{"init_args", "state", "info"}``; 1 (earlier): that dict with ``"format"`` and ``"kind"``,
a torch pickle, read only with torch's weights-only loader."""

INSTALL_HINT = 'the GP classifier of Table 6 needs gpytorch: pip install "memevae[eval]"'


class MissingDependencyError(ImportError, ValueError):
    """An optional dependency is missing (a ValueError too, so the CLI prints it as one line)."""


def _gpytorch():
    try:
        import gpytorch
    except ImportError as error:
        raise MissingDependencyError(INSTALL_HINT) from error
    return gpytorch


# -- the network -----------------------------------------------------------------------------

class _FeatureExtractor(nn.Module):
    """Two conv(3x3) + ReLU + max-pool(2) blocks, Linear-ReLU-Linear to ``feature_dim``, then a
    BatchNorm without affine parameters, so the features the GP's RBF kernel sees stay at unit
    scale per dimension (the kernel's length-scale starts at sqrt(feature_dim) to match)."""

    def __init__(self, shape: tuple[int, ...], feature_dim: int, width: int = 16):
        super().__init__()
        channels, height, width_px = shape
        self.net = nn.Sequential(
            nn.Conv2d(channels, width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(2 * width * (height // 4) * (width_px // 4), 128), nn.ReLU(),
            nn.Linear(128, feature_dim),
            nn.BatchNorm1d(feature_dim, affine=False),
        )

    def forward(self, x):
        return self.net(x)


def _gp_layer(num_classes: int, inducing: torch.Tensor):
    """num_classes independent sparse variational GPs over features, inducing points (C, M, D)."""
    gpytorch = _gpytorch()

    class GPLayer(gpytorch.models.ApproximateGP):
        def __init__(self):
            batch = torch.Size([num_classes])
            distribution = gpytorch.variational.CholeskyVariationalDistribution(inducing.shape[-2], batch_shape=batch)
            strategy = gpytorch.variational.IndependentMultitaskVariationalStrategy(
                gpytorch.variational.VariationalStrategy(self, inducing, distribution, learn_inducing_locations=True),
                num_tasks=num_classes)
            super().__init__(strategy)
            self.mean_module = gpytorch.means.ConstantMean(batch_shape=batch)
            self.covar_module = gpytorch.kernels.ScaleKernel(gpytorch.kernels.RBFKernel(batch_shape=batch), batch_shape=batch)
            self.covar_module.base_kernel.lengthscale = math.sqrt(inducing.shape[-1])

        def forward(self, features):
            return gpytorch.distributions.MultivariateNormal(self.mean_module(features), self.covar_module(features))

    return GPLayer()


class GPClassifier(nn.Module):
    """CNN features -> 10 sparse variational GPs -> softmax (see the module text).

    ``predictive_samples(x, S)`` gives (S, B, C) class probabilities, one per sample of the GP's
    predictive marginal at each image; ``predict(x)`` their mean (p(y | x, D)).
    """

    def __init__(self, shape: tuple[int, ...], num_classes: int = 10, feature_dim: int = 16, inducing_points: int = 64):
        super().__init__()
        gpytorch = _gpytorch()
        self.init_args = {"shape": tuple(shape), "num_classes": num_classes, "feature_dim": feature_dim,
                          "inducing_points": inducing_points}
        self.shape = tuple(shape)
        self.num_classes = num_classes
        self.features = _FeatureExtractor(self.shape, feature_dim)
        inducing = torch.randn(num_classes, inducing_points, feature_dim)
        self.gp = _gp_layer(num_classes, inducing)
        self.likelihood = gpytorch.likelihoods.SoftmaxLikelihood(num_features=num_classes, num_classes=num_classes,
                                                                mixing_weights=False)
        self.info: dict = {}

    def _check(self, x):
        if tuple(x.shape[1:]) != self.shape:
            raise ValueError(f"this classifier takes images of shape (batch, {', '.join(map(str, self.shape))}), got {tuple(x.shape)}")

    def forward(self, x):
        """The GP's predictive distribution over the C latent functions at images x (B, C)."""
        self._check(x)
        return self.gp(self.features(x))

    @torch.no_grad()
    def predictive_samples(self, x: torch.Tensor, samples: int = 100, generator: torch.Generator | None = None) -> torch.Tensor:
        """(samples, B, C) probabilities softmax(f_s), f_s ~ N(mu(x), diag sigma^2(x)) per image."""
        gpytorch = _gpytorch()
        was_training = self.training
        self.eval()
        try:
            with gpytorch.settings.fast_pred_var():
                dist = self(x)
                mean, var = dist.mean, dist.variance  # (B, C) marginals
        finally:
            self.train(was_training)
        eps = torch.randn((samples, *mean.shape), generator=generator, dtype=mean.dtype).to(mean.device)
        return torch.softmax(mean + var.clamp_min(0).sqrt() * eps, dim=-1)

    @torch.no_grad()
    def predict(self, x: torch.Tensor, samples: int = 100, generator: torch.Generator | None = None) -> torch.Tensor:
        """p(y | x, D) ~= mean over samples of softmax(f_s): (B, C)."""
        return self.predictive_samples(x, samples, generator).mean(0)

    def summary(self) -> dict:
        return {**self.init_args, "shape": list(self.shape), **self.info}


# -- training ----------------------------------------------------------------------------------

def _batches(n: int, batch_size: int, generator: torch.Generator, avoid: int) -> list[torch.Tensor]:
    """Shuffled batches; a last batch of exactly ``avoid`` items is merged into the previous one
    (gpytorch's SoftmaxLikelihood mistakes a batch of num_classes items for a transposed input)."""
    chunks = list(torch.randperm(n, generator=generator).split(batch_size))
    if len(chunks) > 1 and len(chunks[-1]) in (1, avoid):
        chunks[-2] = torch.cat([chunks[-2], chunks.pop()])
    return chunks


def train_gp_classifier(images, labels, *, num_classes: int = 10, epochs: int = 5, gp_epochs: int = 20,
                        batch_size: int = 128, learning_rate: float = 1e-3, gp_learning_rate: float = 0.03,
                        feature_dim: int = 16, inducing_points: int = 64, test_images=None, test_labels=None,
                        seed: int = 0, progress: bool = True) -> GPClassifier:
    """Train the Table 6 classifier: a CNN whose last layer is a sparse variational GP (App. H.2).

    Two stages, as "replace the last layer with a sparse variational GP" reads: the CNN with a
    linear softmax last layer (:func:`_train_features`, ``epochs``, ``learning_rate``), then the GP
    last layer on the frozen features (:func:`_train_gp_layer`, ``gp_epochs``, ``gp_learning_rate``).
    (Training both jointly from scratch on the ELBO learns far more slowly: the GP starts near its
    prior, whose softmax is almost uniform.) With ``test_images``/``test_labels`` the test accuracy
    of argmax p(y|x, D) is stored in ``classifier.info``.

    Args:
        images: (N, C, H, W) real images of one modality (uint8 or float in [0, 1]).
        labels: (N,) integer classes in [0, num_classes).

    Example:
        >>> from memevae.data import load_pairs
        >>> images, labels = load_pairs("mnist-textured", "train").examples("mnist")  # doctest: +SKIP
        >>> classifier = train_gp_classifier(images, labels)                                    # doctest: +SKIP
    """
    _gpytorch()
    images, labels = _checked_inputs(images, labels, num_classes, epochs=epochs, gp_epochs=gp_epochs, batch_size=batch_size,
                                     feature_dim=feature_dim, inducing_points=inducing_points)
    generator = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        classifier = GPClassifier(tuple(images.shape[1:]), num_classes, feature_dim, inducing_points)
        bar = tqdm(total=epochs + gp_epochs, desc="GP classifier", unit="epoch", file=sys.stderr,
                   disable=not progress, leave=False, dynamic_ncols=True)
        cnn_loss = _train_features(classifier, images, labels, epochs, batch_size, learning_rate, generator, bar)
        gp_loss = _train_gp_layer(classifier, images, labels, gp_epochs, batch_size, gp_learning_rate, generator, bar)
        bar.close()
        classifier.eval()
    classifier.info = {"train_items": len(images), "epochs": epochs, "gp_epochs": gp_epochs, "seed": seed,
                       "final_cross_entropy": cnn_loss, "final_negative_elbo_per_item": gp_loss}
    if test_images is not None:
        classifier.info["test_accuracy"] = gp_accuracy(classifier, as_float_images(test_images), torch.as_tensor(test_labels).long())
    return classifier


def _checked_inputs(images, labels, num_classes: int, **counts) -> tuple[torch.Tensor, torch.Tensor]:
    """Float images (N, C, H, W) and int64 labels (N,), or a one-line ValueError."""
    images, labels = as_float_images(images), torch.as_tensor(labels).long()
    if images.dim() != 4:
        raise ValueError(f"images must be (N, C, H, W), got shape {tuple(images.shape)}")
    if labels.shape != (len(images),):
        raise ValueError(f"labels must be ({len(images)},) to match the images, got {tuple(labels.shape)}")
    if len(images) < 2:
        raise ValueError("a classifier needs at least two training images")
    if labels.min() < 0 or labels.max() >= num_classes:
        raise ValueError(f"labels must lie in [0, {num_classes}), got [{labels.min().item()}, {labels.max().item()}]")
    lowest = {"epochs": 0, "gp_epochs": 1, "batch_size": 2, "feature_dim": 1, "inducing_points": 1}
    for name, value in counts.items():
        if int(value) != value or value < lowest[name]:
            raise ValueError(f"{name} must be an integer >= {lowest[name]}, got {value}")
    return images, labels


def _train_features(classifier: GPClassifier, images, labels, epochs, batch_size, learning_rate, generator, bar) -> float:
    """Stage 1: the feature extractor h with a linear softmax head (then discarded), cross-entropy,
    Adam; returns the last epoch's mean loss (NaN for 0 epochs)."""
    head = nn.Linear(classifier.init_args["feature_dim"], classifier.num_classes)
    optimizer = torch.optim.Adam([*classifier.features.parameters(), *head.parameters()], lr=learning_rate)
    classifier.features.train()
    cnn_loss = float("nan")
    for _ in range(epochs):
        total = 0.0
        for rows in _batches(len(images), batch_size, generator, avoid=-1):
            loss = nn.functional.cross_entropy(head(classifier.features(images[rows])), labels[rows])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(rows)
        cnn_loss = total / len(images)
        bar.update(1)
        bar.set_postfix(cross_entropy=f"{cnn_loss:.3f}", refresh=False)
    return cnn_loss


@torch.no_grad()
def _frozen_features(classifier: GPClassifier, images, generator) -> torch.Tensor:
    """h(x) of every image (h in eval mode); the inducing points start at the features of random images."""
    classifier.features.eval()
    features = torch.cat([classifier.features(images[rows]) for rows in torch.arange(len(images)).split(512)])
    classes, points, dim = (classifier.init_args[k] for k in ("num_classes", "inducing_points", "feature_dim"))
    start = features[torch.randint(len(images), (classes * points,), generator=generator)]
    classifier.gp.variational_strategy.base_variational_strategy.inducing_points.copy_(start.reshape(classes, points, dim))
    return features


def _train_gp_layer(classifier: GPClassifier, images, labels, gp_epochs, batch_size, gp_learning_rate, generator, bar) -> float:
    """Stage 2, h frozen: maximise the ELBO sum_i E_q(f_i) log softmax(f_i)_{y_i} - KL(q(u) || p(u))
    (``gpytorch.mlls.VariationalELBO``, num_data = N) over q(u), the inducing locations, kernel and
    mean with Adam; features are computed once, so it is cheap. Returns the last epoch's -ELBO per item."""
    gpytorch = _gpytorch()
    features = _frozen_features(classifier, images, generator)
    for p in classifier.features.parameters():
        p.requires_grad_(False)
    classifier.gp.train()
    classifier.likelihood.train()
    objective = gpytorch.mlls.VariationalELBO(classifier.likelihood, classifier.gp, num_data=len(images))
    optimizer = torch.optim.Adam([*classifier.gp.parameters(), *classifier.likelihood.parameters()], lr=gp_learning_rate)
    gp_loss = float("nan")
    for _ in range(gp_epochs):
        total = 0.0
        for rows in _batches(len(images), batch_size, generator, avoid=classifier.num_classes):
            loss = -objective(classifier.gp(features[rows]), labels[rows])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(rows)
        gp_loss = total / len(images)
        bar.update(1)
        bar.set_postfix(neg_elbo=f"{gp_loss:.3f}", refresh=False)
    for p in classifier.features.parameters():
        p.requires_grad_(True)
    return gp_loss


# -- accuracy, save, load ----------------------------------------------------------------------

@torch.no_grad()
def gp_accuracy(classifier: GPClassifier, images, labels, batch_size: int = 512) -> float:
    """Fraction of float ``images`` whose argmax p(y | x, D) (32 GP samples) equals ``labels``."""
    generator = torch.Generator().manual_seed(0)
    correct = 0
    for rows in torch.arange(len(images)).split(batch_size):
        correct += (classifier.predict(images[rows], 32, generator).argmax(-1) == labels[rows]).sum().item()
    return correct / len(images)


def save_gp_classifier(classifier: GPClassifier, path) -> Path:
    """Write the classifier (constructor arguments, weights, info) atomically, in :data:`FORMAT`."""
    return tensorfile.write(path, {"init_args": classifier.init_args, "state": classifier.state_dict(), "info": classifier.info},
                            "gp-classifier", FORMAT)


def load_gp_classifier(path, map_location="cpu") -> GPClassifier:
    """Rebuild a classifier written by :func:`save_gp_classifier` (or by an earlier memevae: format
    1); ValueError in one line naming the file when it does not hold one that loads safely."""
    path = Path(path)
    _gpytorch()  # a missing dependency is said as such, not as a problem with the file
    try:
        data = path.read_bytes()
        if tensorfile.is_tensor_file(data):
            saved = tensorfile.loads(data, "gp-classifier", FORMAT, map_location)
        else:
            saved = tensorfile.load_legacy(data, map_location)
            if not isinstance(saved, dict) or saved.get("kind") != "gp-classifier":
                raise tensorfile.FileFormatError("it does not hold a GP classifier")
        classifier = GPClassifier(**saved["init_args"])
        classifier.load_state_dict(saved["state"])
        classifier.info = dict(saved.get("info", {}))
    except tensorfile.UnsafeFileError as problem:
        raise ValueError(f"{path} is not a GP classifier memevae can load safely ({problem}; it was not loaded); delete "
                         f"it and 'memevae evaluate --metrics mi' trains and saves a new one") from None
    except (OSError, KeyError, TypeError, ValueError, RuntimeError) as error:  # RuntimeError: weights of other shapes
        raise ValueError(f"{path} is not a GP classifier written by save_gp_classifier ({tensorfile.describe(error)}); delete it and "
                         f"'memevae evaluate --metrics mi' trains and saves a new one") from None
    return classifier.eval()
