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

- the classifier: :class:`memevae.evaluation.gp_classifier.GPClassifier`, a small CNN whose last
  layer is 10 sparse variational GPs, trained on the real TRAIN images of one modality
  (:func:`memevae.evaluation.gp_classifier.train_gp_classifier`).
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

from dataclasses import dataclass

import math
from pathlib import Path

import torch
from torch import nn

from ...data.dataset import as_float_images
from ..gp_classifier import _gpytorch, load_gp_classifier, save_gp_classifier, train_gp_classifier
from ..judges import default_judges_dir
from ..metric import Metric


@dataclass
class MutualInformationOptions:
    samples: int = 100
    """Draws of the GP classifier's function values per image (BALD's expectation over omega)."""
    batch_size: int = 256
    """Images scored at once."""
    max_items: int | None = 1000
    """Paired test items translated and scored (None: all)."""
    classifier_epochs: int = 5
    """Epochs of the GP classifier's feature network when it has to be trained."""

__all__ = ["bald_mutual_information", "mutual_information", "generative_quality"]


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


# -- scoring images and models --------------------------------------------------------------

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
                       classifiers=None, classifier_dir=None, samples: int = MutualInformationOptions.samples,
                       batch_size: int = MutualInformationOptions.batch_size, max_items: int | None = MutualInformationOptions.max_items,
                       classifier_epochs: int = MutualInformationOptions.classifier_epochs, seed: int = 0, progress: bool = True) -> dict:
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
    images, labels = train_data.examples(modality)
    test_images, test_labels = test.examples(modality)
    classifier = train_gp_classifier(images, labels, epochs=epochs, seed=seed, progress=progress,
                                     test_images=test_images, test_labels=test_labels)
    if path is not None:
        save_gp_classifier(classifier, path)
        return classifier, f"trained, saved to {path}"
    return classifier, "trained"


def generative_quality(model, test_data, *, train_data=None, classifiers=None, classifier_dir=None,
                       samples: int = MutualInformationOptions.samples, batch_size: int = MutualInformationOptions.batch_size,
                       max_items: int | None = MutualInformationOptions.max_items, classifier_epochs: int = MutualInformationOptions.classifier_epochs, seed: int = 0,
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
    from ...data import MultimodalDataset

    model = getattr(model, "model", model) if not isinstance(model, nn.Module) else model
    _gpytorch()
    if not isinstance(test_data, MultimodalDataset):
        raise ValueError(f"test_data must be a MultimodalDataset, got {type(test_data).__name__}")
    rows = test_data.paired_rows()
    if len(rows) == 0:
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


class MutualInformation(Metric):
    """Table 6: loads ``gp-<modality>.pt`` from the judges' folder, or trains a GP-headed classifier
    on real training images (saved there for next time), then scores generations."""

    name = "mi"
    description = "mutual information of generations under a GP classifier (Table 6)"
    Options = MutualInformationOptions
    needs = frozenset({"train"})
    cheap = False
    requires = ("gpytorch",)
    order = 80

    def compute(self, context, options: MutualInformationOptions) -> dict:
        source = context.judges_source
        folder = None if isinstance(source, dict) else (
            Path(source) if source is not None else default_judges_dir(context.data_config.judges_variant, context.data_config.data_dir))
        return generative_quality(context.model, context.test, train_data=context.train, classifier_dir=folder,
                                  samples=options.samples, batch_size=options.batch_size, max_items=options.max_items,
                                  classifier_epochs=options.classifier_epochs, seed=context.seed, progress=context.progress)

    def headline(self, values: dict) -> dict[str, float]:
        return {key: entry["mi"] for key, entry in values.get("generated", {}).items() if isinstance(entry.get("mi"), float)}
