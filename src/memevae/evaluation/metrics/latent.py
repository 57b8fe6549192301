"""Latent accuracy (paper Sec. 4.1 "Latent Accuracy", Fig. 7, Table 4).

A linear classifier predicts the digit from the latent code of a single modality: fit on the
posterior means of training images, accuracy measured on the test images, per modality. As in the
paper the probe is linear (multinomial logistic regression on standardised codes; standardising
is an affine map, so the decision boundaries stay linear in z).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .._common import posteriors
from ..metric import Metric


@dataclass
class LatentOptions:
    train_items: int | None = 10_000
    """Training images per modality the linear probe is fitted on, drawn at random (None: all)."""
    batch_size: int = 500
    """Images encoded at once."""



def _subset(images, labels, count: int | None, seed: int):
    if count is None or count >= len(labels):
        return images, labels
    keep = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))[:count]
    return images[keep], labels[keep]


def fit_linear_probe(train_codes: np.ndarray, train_labels: np.ndarray, seed: int = 0):
    """Multinomial logistic regression (lbfgs, C=1) on standardised codes."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from threadpoolctl import threadpool_limits

    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, random_state=seed))
    with threadpool_limits(limits=1):  # small matrices: threads only add contention
        return probe.fit(train_codes, train_labels)


def latent_accuracy(model, train, test, *, modalities=None, train_items: int | None = LatentOptions.train_items,
                    seed: int = 0, batch_size: int = LatentOptions.batch_size, progress: bool = True) -> dict[str, float]:
    """Per modality, the test accuracy of a linear digit classifier on posterior means.

    Args:
        train, test: MultimodalDatasets. Every distinct training image of a modality is a
            candidate (whatever rows it sits in: the probe is an evaluation tool, so the
            partial-observation scheme does not limit it); ``train_items`` of them, drawn at
            random by ``seed``, are used (None: all). All distinct test images are scored.

    Returns:
        ``{"<modality>": accuracy, ..., "train_items/<modality>": n, "test_items/<modality>": n}``.
    """
    result = {}
    for modality in modalities or test.modalities:
        x_train, y_train = _subset(*train.examples(modality), train_items, seed)
        x_test, y_test = test.examples(modality)
        z_train, _ = posteriors(model, modality, x_train, batch_size, progress, f"latent: encode {modality} (train)",
                                 prepare=train.formats[modality].prepare)
        z_test, _ = posteriors(model, modality, x_test, batch_size, progress, f"latent: encode {modality} (test)",
                               prepare=test.formats[modality].prepare)
        probe = fit_linear_probe(z_train.numpy(), y_train.numpy(), seed)
        result[modality] = float((probe.predict(z_test.numpy()) == y_test.numpy()).mean())
        result[f"train_items/{modality}"] = float(len(y_train))
        result[f"test_items/{modality}"] = float(len(y_test))
    return result


class LatentAccuracy(Metric):
    name = "latent"
    description = "linear latent accuracy per modality (Fig. 7, Table 4)"
    Options = LatentOptions
    needs = frozenset({"train"})
    order = 20

    @classmethod
    def unsupported(cls, dataset) -> str | None:
        if dataset.disjoint_classes:
            return f"its test classes are not training classes in {dataset.label}, so a probe fitted on training codes cannot score them"
        return None

    def compute(self, context, options: LatentOptions) -> dict:
        return latent_accuracy(context.model, context.train, context.test, train_items=options.train_items,
                               batch_size=options.batch_size, seed=context.seed, progress=context.progress)

    def headline(self, values: dict) -> dict[str, float]:
        return {k: v for k, v in values.items() if "/" not in k}
