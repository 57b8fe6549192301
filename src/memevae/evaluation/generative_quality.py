"""Generative quality as mutual information under a sparse variational GP classifier (Table 6, App. H.2
of Joy et al., ICLR 2022).

The paper (App. H.2) scores a generated image x by the mutual information between its label y
and the parameters omega of a classifier trained on real data:

    I(y, omega | x, D) = H[p(y | x, D)] - E_{p(omega|D)} H[p(y | x, omega)],
    p(y | x, D) = \\int p(y | x, omega) p(omega | D) d omega,

the BALD quantity (Houlsby et al. 2011; Smith & Gal 2018): near 0 when every plausible classifier
agrees on x (x looks like the training data), large when they disagree (x is out of distribution).
"Lower is better"; log(number of classes) is the maximum. Instead of MC dropout the classifier's
last layer is a sparse variational GP, and both terms are estimated by Monte-Carlo samples of it.

What is computed here:

- :func:`train_gp_classifier`: a small CNN feature extractor h(x) (two conv + max-pool blocks,
  two linear layers, standardised outputs) whose last layer is 10 independent GPs (one latent
  function per class, RBF kernel, constant mean) with a variational strategy over M learnt
  inducing points in feature space (``gpytorch.variational.VariationalStrategy`` inside
  ``IndependentMultitaskVariationalStrategy``) and ``gpytorch.likelihoods.SoftmaxLikelihood``
  (p(y|f) = softmax(f), no mixing weights); trained on the real TRAIN images of one modality, the
  CNN first with a linear softmax layer, then the GP layer on the frozen features (ELBO).
- :func:`bald_mutual_information`: the equation above from S samples omega_s, given as class
  probabilities p_s = softmax(f_s(x)) with f_s drawn from the GP's predictive marginal
  q(f(x)) = N(mu(x), diag sigma^2(x)) at each image (the MI of one image needs only its marginal):
  MI = H[(1/S) sum_s p_s] - (1/S) sum_s H[p_s], in nats.
- :func:`mutual_information`: the average MI over a set of images (optionally with the
  classifier's accuracy against labels), or, given a model, Table 6 for it
  (:func:`generative_quality`): MI of cross-generated images (e.g. mnist -> textured, judged by
  the textured classifier), of self-reconstructions, and of real test images for reference.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import torch
from torch import nn
from tqdm.auto import tqdm

from ..data.dataset import as_float_images

__all__ = ["bald_mutual_information", "mutual_information", "generative_quality", "train_gp_classifier",
           "GPClassifier", "MissingDependencyError", "save_gp_classifier", "load_gp_classifier", "modality_examples"]

INSTALL_HINT = 'the GP classifier of Table 6 needs gpytorch: pip install "memevae[eval]"'


class MissingDependencyError(ImportError, ValueError):
    """An optional dependency is missing (a ValueError too, so the CLI prints it as one line)."""


def _gpytorch():
    try:
        import gpytorch
    except ImportError as error:
        raise MissingDependencyError(INSTALL_HINT) from error
    return gpytorch


def _entropy(p: torch.Tensor) -> torch.Tensor:
    """-sum_c p_c log p_c over the last dimension, with 0 log 0 = 0."""
    return -torch.special.xlogy(p, p).sum(-1)


def bald_mutual_information(probs: torch.Tensor) -> dict[str, torch.Tensor]:
    """I(y, omega | x) = H[mean_s p_s] - mean_s H[p_s] per item, from S sampled predictives.

    ``probs`` is (S, B, C): for each of S classifier samples omega_s, the class probabilities
    p(y | x_b, omega_s) of B items. Returns {"mi", "predictive_entropy", "expected_entropy"},
    each (B,), in nats (App. H.2, Table 6). MI is clamped at 0 against rounding (it is >= 0 by
    Jensen's inequality, as entropy is concave).

    Example:
        >>> agree = torch.full((5, 1, 10), 0.1)
        >>> bald_mutual_information(agree)["mi"].tolist()
        [0.0]
        >>> confident_disagreeing = torch.eye(10).unsqueeze(1)  # sample s puts all mass on class s
        >>> round(bald_mutual_information(confident_disagreeing)["mi"].item(), 4) == round(math.log(10), 4)
        True
    """
    probs = torch.as_tensor(probs)
    if probs.dim() != 3 or probs.shape[0] < 1 or probs.shape[-1] < 2:
        raise ValueError(f"probs must be (samples, items, classes) with >= 2 classes, got shape {tuple(probs.shape)}")
    probs = probs.double()
    if (probs < 0).any() or not torch.allclose(probs.sum(-1), torch.ones(()).double(), atol=1e-4):
        raise ValueError("probs must be probabilities: non-negative and summing to 1 over the last (class) dimension")
    predictive = _entropy(probs.mean(0))
    expected = _entropy(probs).mean(0)
    return {"mi": (predictive - expected).clamp_min(0.0), "predictive_entropy": predictive, "expected_entropy": expected}


# -- the classifier --------------------------------------------------------------------------

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

    Two stages, as "replace the last layer with a sparse variational GP" reads:

    1. the CNN feature extractor h with a linear softmax last layer, cross-entropy, Adam
       (``learning_rate``), ``epochs`` epochs; the linear layer is then discarded;
    2. h frozen, the GP last layer fitted on the features h(x_i): maximise the variational ELBO
       sum_i E_q(f_i) log softmax(f_i)_{y_i} - KL(q(u) || p(u)) (``gpytorch.mlls.VariationalELBO``,
       num_data = N) over q(u), the inducing locations (started at features of random training
       images), the kernel and mean hyper-parameters, Adam (``gp_learning_rate``), ``gp_epochs``
       epochs. Stage 2 is cheap (features are computed once), so it can run many epochs.

    (Training CNN and GP jointly from scratch on the ELBO learns far more slowly: the GP starts
    near its prior, whose softmax is almost uniform.) With ``test_images``/``test_labels`` the
    test accuracy of argmax p(y|x, D) is stored in ``classifier.info``.

    Args:
        images: (N, C, H, W) real images of one modality (uint8 or float in [0, 1]).
        labels: (N,) integer classes in [0, num_classes).

    Example:
        >>> from memevae.data import load_pairs
        >>> images, labels = modality_examples(load_pairs("mnist-textured", "train"), "mnist")  # doctest: +SKIP
        >>> classifier = train_gp_classifier(images, labels)                                    # doctest: +SKIP
    """
    gpytorch = _gpytorch()
    images, labels = as_float_images(images), torch.as_tensor(labels).long()
    if images.dim() != 4:
        raise ValueError(f"images must be (N, C, H, W), got shape {tuple(images.shape)}")
    if labels.shape != (len(images),):
        raise ValueError(f"labels must be ({len(images)},) to match the images, got {tuple(labels.shape)}")
    if len(images) < 2:
        raise ValueError("a classifier needs at least two training images")
    if labels.min() < 0 or labels.max() >= num_classes:
        raise ValueError(f"labels must lie in [0, {num_classes}), got [{labels.min().item()}, {labels.max().item()}]")
    for name, value, low in (("epochs", epochs, 0), ("gp_epochs", gp_epochs, 1), ("batch_size", batch_size, 2),
                             ("feature_dim", feature_dim, 1), ("inducing_points", inducing_points, 1)):
        if int(value) != value or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value}")

    generator = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        classifier = GPClassifier(tuple(images.shape[1:]), num_classes, feature_dim, inducing_points)
        bar = tqdm(total=epochs + gp_epochs, desc="GP classifier", unit="epoch", file=sys.stderr,
                   disable=not progress, leave=False, dynamic_ncols=True)

        # stage 1: the CNN with a linear softmax head
        head = nn.Linear(feature_dim, num_classes)
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

        # stage 2: the GP last layer on the frozen features
        classifier.features.eval()
        with torch.no_grad():
            features = torch.cat([classifier.features(images[rows]) for rows in torch.arange(len(images)).split(512)])
            start = features[torch.randint(len(images), (num_classes * inducing_points,), generator=generator)]
            classifier.gp.variational_strategy.base_variational_strategy.inducing_points.copy_(
                start.reshape(num_classes, inducing_points, feature_dim))
        for p in classifier.features.parameters():
            p.requires_grad_(False)
        classifier.gp.train()
        classifier.likelihood.train()
        objective = gpytorch.mlls.VariationalELBO(classifier.likelihood, classifier.gp, num_data=len(images))
        optimizer = torch.optim.Adam([*classifier.gp.parameters(), *classifier.likelihood.parameters()], lr=gp_learning_rate)
        gp_loss = float("nan")
        for _ in range(gp_epochs):
            total = 0.0
            for rows in _batches(len(images), batch_size, generator, avoid=num_classes):
                loss = -objective(classifier.gp(features[rows]), labels[rows])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                total += loss.item() * len(rows)
            gp_loss = total / len(images)
            bar.update(1)
            bar.set_postfix(neg_elbo=f"{gp_loss:.3f}", refresh=False)
        bar.close()
        for p in classifier.features.parameters():
            p.requires_grad_(True)
        classifier.eval()
    classifier.info = {"train_items": len(images), "epochs": epochs, "gp_epochs": gp_epochs, "seed": seed,
                       "final_cross_entropy": cnn_loss, "final_negative_elbo_per_item": gp_loss}
    if test_images is not None:
        classifier.info["test_accuracy"] = _accuracy(classifier, as_float_images(test_images), torch.as_tensor(test_labels).long())
    return classifier


@torch.no_grad()
def _accuracy(classifier: GPClassifier, images, labels, batch_size: int = 512) -> float:
    generator = torch.Generator().manual_seed(0)
    correct = 0
    for rows in torch.arange(len(images)).split(batch_size):
        correct += (classifier.predict(images[rows], 32, generator).argmax(-1) == labels[rows]).sum().item()
    return correct / len(images)


def save_gp_classifier(classifier: GPClassifier, path) -> Path:
    """Write the classifier (constructor arguments, weights, info) atomically."""
    from .. import io

    return io.save_torch(path, {"format": 1, "kind": "gp-classifier", "init_args": classifier.init_args,
                                "state": classifier.state_dict(), "info": classifier.info})


def load_gp_classifier(path, map_location="cpu") -> GPClassifier:
    """Rebuild a classifier written by :func:`save_gp_classifier`."""
    state = torch.load(path, map_location=map_location, weights_only=False)
    if not isinstance(state, dict) or state.get("kind") != "gp-classifier":
        raise ValueError(f"{path} is not a GP classifier written by save_gp_classifier")
    classifier = GPClassifier(**state["init_args"])
    classifier.load_state_dict(state["state"])
    classifier.info = dict(state.get("info", {}))
    return classifier.eval()


# -- scoring images and models --------------------------------------------------------------

def modality_examples(data, modality: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Every distinct example of ``modality`` in a MultimodalDataset, with its label: (images, labels)."""
    if modality not in data.modalities:
        raise ValueError(f"the data has no modality {modality!r}; it has {', '.join(data.modalities)}")
    index = data.index[modality]
    seen = index >= 0
    bank_rows, first = _first_rows(index[seen])
    rows = seen.nonzero().squeeze(1)[first]
    return as_float_images(data.banks[modality][bank_rows]), data.labels[rows]


def _first_rows(values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    unique, inverse = torch.unique(values, return_inverse=True)
    positions = torch.arange(len(values))
    first = torch.full((len(unique),), len(values), dtype=torch.long).scatter_reduce(0, inverse, positions, "amin")
    return unique, first


def _image_mi(images, classifier, labels, samples, batch_size, seed) -> dict:
    images = as_float_images(images)
    if images.dim() != 4 or len(images) == 0:
        raise ValueError(f"images must be a non-empty (N, C, H, W) batch, got shape {tuple(images.shape)}")
    if labels is not None:
        labels = torch.as_tensor(labels).long()
        if labels.shape != (len(images),):
            raise ValueError(f"labels must be ({len(images)},) to match the images, got {tuple(labels.shape)}")
    if int(samples) != samples or samples < 2:
        raise ValueError(f"samples must be an integer >= 2, got {samples}")
    generator = torch.Generator().manual_seed(seed)
    parts = {"mi": [], "predictive_entropy": [], "expected_entropy": []}
    predictions = []
    device = next(classifier.parameters()).device
    for rows in torch.arange(len(images)).split(batch_size):
        probs = classifier.predictive_samples(images[rows].to(device), samples, generator).cpu()
        for key, value in bald_mutual_information(probs).items():
            parts[key].append(value)
        predictions.append(probs.mean(0).argmax(-1))
    values = {key: torch.cat(v) for key, v in parts.items()}
    mi = values["mi"]
    n = len(mi)
    std = mi.std().item() if n > 1 else 0.0
    out = {
        "mi": mi.mean().item(), "mi_std": std, "mi_stderr": std / math.sqrt(n),
        "predictive_entropy": values["predictive_entropy"].mean().item(),
        "expected_entropy": values["expected_entropy"].mean().item(),
        "items": n, "samples": int(samples), "unit": "nats",
        "per_item": mi.tolist(),
    }
    if labels is not None:
        out["accuracy"] = (torch.cat(predictions) == labels).float().mean().item()
    return out


def mutual_information(inputs, classifier_or_data=None, labels=None, *, classifier=None, data=None, train_data=None,
                       classifiers=None, classifier_dir=None, samples: int = 100, batch_size: int = 256,
                       max_items: int | None = 1000, classifier_epochs: int = 5, seed: int = 0,
                       progress: bool = True) -> dict:
    """Mutual information I(y, omega | x, D) = H[p(y|x,D)] - E_p(omega|D) H[p(y|x,omega)] (App. H.2, Table 6).

    Two forms:

    - ``mutual_information(images, classifier, labels=None)``: the MI of each image under a
      :class:`GPClassifier` (S = ``samples`` GP samples), averaged. Returns {"mi" (mean, nats),
      "mi_std", "mi_stderr", "predictive_entropy", "expected_entropy", "items", "samples",
      "per_item", and "accuracy" of argmax p(y|x, D) against ``labels`` when given}.
    - ``mutual_information(model, test_data, train_data=...)``: Table 6 for a trained model, see
      :func:`generative_quality` (what ``memevae evaluate`` calls).

    Lower is better; 0 when all GP samples agree, log(C) when they are confident and disagree.

    Example:
        >>> classifier = train_gp_classifier(train_images, train_labels)                   # doctest: +SKIP
        >>> fake = model.translate(test_mnist, "mnist", "textured")                        # doctest: +SKIP
        >>> mutual_information(fake, classifier, labels=test_labels)["mi"]                 # doctest: +SKIP
    """
    if isinstance(inputs, torch.Tensor) or type(inputs).__module__ == "numpy":
        inputs = torch.as_tensor(inputs)
        judge = classifier if classifier is not None else classifier_or_data
        if not callable(getattr(judge, "predictive_samples", None)):
            raise ValueError("mutual_information(images, classifier): the classifier must be a GPClassifier "
                             "(see train_gp_classifier)")
        return _image_mi(inputs, judge, labels, samples, batch_size, seed)
    test = data if data is not None else classifier_or_data
    return generative_quality(inputs, test, train_data=train_data, classifiers=classifiers, classifier_dir=classifier_dir,
                              samples=samples, batch_size=batch_size, max_items=max_items,
                              classifier_epochs=classifier_epochs, seed=seed, progress=progress)


def _classifier_for(modality, classifiers, classifier_dir, train_data, test, epochs, seed, progress):
    if classifiers and modality in classifiers:
        return classifiers[modality], "given"
    path = Path(classifier_dir) / f"gp-{modality}.pt" if classifier_dir is not None else None
    if path is not None and path.exists():
        return load_gp_classifier(path), str(path)
    if train_data is None:
        raise ValueError(f"no GP classifier for {modality!r}: pass train_data (real training images to train one on), "
                         f"classifiers={{{modality!r}: ...}} or a classifier_dir holding gp-{modality}.pt")
    images, labels = modality_examples(train_data, modality)
    test_images, test_labels = modality_examples(test, modality)
    classifier = train_gp_classifier(images, labels, epochs=epochs, seed=seed, progress=progress,
                                     test_images=test_images, test_labels=test_labels)
    if path is not None:
        save_gp_classifier(classifier, path)
        return classifier, f"trained, saved to {path}"
    return classifier, "trained"


def generative_quality(model, test_data, *, train_data=None, classifiers=None, classifier_dir=None, samples: int = 100,
                       batch_size: int = 256, max_items: int | None = 1000, classifier_epochs: int = 5, seed: int = 0,
                       progress: bool = True) -> dict:
    """Table 6 for a model: MI of its generations under per-modality GP classifiers (App. H.2).

    For each target modality m, a :class:`GPClassifier` trained on the real TRAIN images of m
    (``classifiers[m]`` if given; else ``classifier_dir/gp-<m>.pt`` if present; else trained on
    ``train_data`` and, with ``classifier_dir``, saved there) scores, on the first ``max_items``
    paired test items:

    - ``"<s>-><m>"`` for every other modality s: cross-generations (decoder means of m at a
      sample z ~ q(z|x_s), as coherence is measured), with accuracy against the items' labels;
    - ``"<m>-><m>"``: self-reconstructions;
    - ``real["<m>"]``: the real test images of m, the reference floor.

    Returns {"unit": "nats", "samples", "items", "classifiers": {m: summary}, "generated":
    {"s->m": {...}}, "real": {m: {...}}}, each entry as :func:`mutual_information` returns.
    """
    from ..data import MultimodalDataset

    model = getattr(model, "model", model) if not isinstance(model, nn.Module) else model
    _gpytorch()
    if not isinstance(test_data, MultimodalDataset):
        raise ValueError(f"test_data must be a MultimodalDataset, got {type(test_data).__name__}")
    rows = test_data.patterns().get(tuple(test_data.modalities))
    if rows is None:
        raise ValueError("the test data has no paired items to translate")
    if max_items is not None:
        rows = rows[:max_items]
    missing = [m for m in model.modality_names if m not in test_data.modalities]
    if missing:
        raise ValueError(f"the test data lacks modality {', '.join(missing)}")
    test_batch = test_data.batch(rows)
    device = next(model.parameters()).device
    out = {"unit": "nats", "samples": int(samples), "items": len(rows), "seed": seed,
           "classifiers": {}, "generated": {}, "real": {}}
    was_training = model.training
    model.eval()
    try:
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(seed)
            for target in model.modality_names:
                judge, origin = _classifier_for(target, classifiers, classifier_dir, train_data, test_data,
                                                classifier_epochs, seed, progress)
                out["classifiers"][target] = {**judge.summary(), "source": origin}
                out["real"][target] = _image_mi(test_batch.data[target], judge, test_batch.labels, samples, batch_size, seed)
                for source in model.modality_names:
                    generated = []
                    for chunk in torch.arange(len(rows)).split(batch_size):
                        x = test_batch.data[source][chunk].to(device)
                        generated.append(model.translate(x, source, target, sample=True).cpu())
                    out["generated"][f"{source}->{target}"] = _image_mi(torch.cat(generated), judge, test_batch.labels,
                                                                         samples, batch_size, seed)
    finally:
        model.train(was_training)
    return out
