"""Latent accuracy (paper Sec. 4.1 "Latent Accuracy", Fig. 7, Table 4).

A linear classifier predicts the digit from the latent code of a single modality: fit on the
posterior means of training images, accuracy measured on the test images, per modality. As in the
paper the probe is linear (multinomial logistic regression on standardised codes; standardising
is an affine map, so the decision boundaries stay linear in z).

With more than two modalities it is measured for every subset S of them as well (MoPoE's latent
classification per subset, Sutter et al. 2021): the code is the mean of the model's posterior
given S (:meth:`~memevae.models.MultimodalVAE.posterior`), fitted on training rows that observe
all of S and scored on the test tuples; its key joins the modalities with "+" ("m0+m2").
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import torch

from .._common import batches, evaluation_mode, model_device, paired_rows, posteriors, progress_bar
from ..metric import Metric


@dataclass
class LatentOptions:
    train_items: int | None = 10_000
    """Training images per modality the linear probe is fitted on, drawn at random (None: all)."""
    batch_size: int = 500
    """Images encoded at once."""
    subsets: str | None = None
    """Comma-separated subsets such as "m0,m0+m1"; default each modality alone, and with more than
    two modalities every non-empty subset."""



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


def default_subsets(names) -> list[tuple[str, ...]]:
    """Each modality alone; with more than two, every non-empty subset (smaller first).

    >>> default_subsets(("a", "b"))
    [('a',), ('b',)]
    >>> default_subsets(("a", "b", "c"))[-2:]
    [('b', 'c'), ('a', 'b', 'c')]
    """
    names = tuple(names)
    sizes = range(1, len(names) + 1) if len(names) > 2 else [1]
    return [subset for size in sizes for subset in itertools.combinations(names, size)]


def subset_codes(model, data, subset: tuple[str, ...], rows: torch.Tensor, batch_size: int, progress: bool,
                 description: str) -> torch.Tensor:
    """Posterior means of q(z | X_S) for the given rows of ``data`` (each observing all of S), on the CPU."""
    device = model_device(model)
    codes = []
    bar = progress_bar((len(rows) + batch_size - 1) // batch_size, description, progress)
    with evaluation_mode(model):
        for part in batches(len(rows), batch_size):
            observed = {m: data.formats[m].prepare(data.banks[m][data.index[m][rows[part]]]).to(device) for m in subset}
            codes.append(model.posterior(observed).loc.float().cpu())
            bar.update(1)
    bar.close()
    return torch.cat(codes)


def latent_accuracy(model, train, test, *, modalities=None, subsets=None, train_items: int | None = LatentOptions.train_items,
                    seed: int = 0, batch_size: int = LatentOptions.batch_size, progress: bool = True) -> dict[str, float]:
    """Per modality (or subset of modalities), the test accuracy of a linear digit classifier on
    posterior means.

    Args:
        train, test: MultimodalDatasets. Every distinct training image of a modality is a
            candidate (whatever rows it sits in: the probe is an evaluation tool, so the
            partial-observation scheme does not limit it); ``train_items`` of them, drawn at
            random by ``seed``, are used (None: all). All distinct test images are scored. A
            subset of several modalities takes the training rows that observe all of them and
            the fully observed test rows.
        modalities: single modalities to measure (default: see ``subsets``).
        subsets: tuples of modalities; default :func:`default_subsets`.

    Returns:
        ``{"<modality or m1+m2>": accuracy, ..., "train_items/<key>": n, "test_items/<key>": n}``.
    """
    if subsets is None:
        subsets = [(m,) for m in modalities] if modalities else default_subsets(test.modalities)
    result = {}
    for subset in subsets:
        key = "+".join(subset)
        if len(subset) == 1:
            (modality,) = subset
            x_train, y_train = _subset(*train.examples(modality), train_items, seed)
            x_test, y_test = test.examples(modality)
            z_train, _ = posteriors(model, modality, x_train, batch_size, progress, f"latent: encode {modality} (train)",
                                     prepare=train.formats[modality].prepare)
            z_test, _ = posteriors(model, modality, x_test, batch_size, progress, f"latent: encode {modality} (test)",
                                   prepare=test.formats[modality].prepare)
        else:
            seen = train.mask()[:, [train.modalities.index(m) for m in subset]].all(1)
            rows, y_train = _subset(torch.nonzero(seen).flatten(), train.labels[seen], train_items, seed)
            if len(rows) == 0:
                raise ValueError(f"no training row observes all of {key}; choose other subsets (--latent-subsets)")
            test_rows = paired_rows(test)
            y_test = test.labels[test_rows]
            z_train = subset_codes(model, train, subset, rows, batch_size, progress, f"latent: encode {key} (train)")
            z_test = subset_codes(model, test, subset, test_rows, batch_size, progress, f"latent: encode {key} (test)")
        probe = fit_linear_probe(z_train.numpy(), y_train.numpy(), seed)
        result[key] = float((probe.predict(z_test.numpy()) == y_test.numpy()).mean())
        result[f"train_items/{key}"] = float(len(y_train))
        result[f"test_items/{key}"] = float(len(y_test))
    return result


class LatentAccuracy(Metric):
    name = "latent"
    description = "linear latent accuracy per modality (Fig. 7, Table 4)"
    Options = LatentOptions
    needs = frozenset({"train"})
    order = 20
    requires = ("scikit-learn",)

    @classmethod
    def unsupported(cls, dataset) -> str | None:
        if dataset.disjoint_classes:
            return f"its test classes are not training classes in {dataset.label}, so a probe fitted on training codes cannot score them"
        return None

    def compute(self, context, options: LatentOptions) -> dict:
        subsets = None if options.subsets is None else [tuple(part.strip().split("+")) for part in options.subsets.split(",")]
        unknown = sorted({m for subset in subsets or [] for m in subset} - set(context.test.modalities))
        if unknown:
            raise ValueError(f"latent subsets name {', '.join(unknown)}, not modalities of the data ({', '.join(context.test.modalities)})")
        return latent_accuracy(context.model, context.train, context.test, subsets=subsets, train_items=options.train_items,
                               batch_size=options.batch_size, seed=context.seed, progress=context.progress)

    def headline(self, values: dict) -> dict[str, float]:
        return {k: v for k, v in values.items() if "/" not in k}

    def report(self, part) -> list[str]:
        """Table 4's layout (a table per modality, the paper's MNIST-SVHN rows beside ours) and Fig. 7
        (accuracy against f); with more than two modalities, the mean accuracy over the subsets of k
        modalities instead."""
        from ..paper.report import subset_table
        from ..paper.reference import LATENT

        modalities = part.modalities
        if part.many:
            return ["### Latent accuracy per subset", "",
                    "The mean over the subsets of k modalities of a linear probe's test accuracy on the posterior mean given "
                    "the subset.", "",
                    *subset_table(part, "mean latent accuracy over subsets of k modalities", "latent",
                                  [(f"{k} of {len(modalities)}", ["+".join(s) for s in itertools.combinations(modalities, k)])
                                   for k in range(1, len(modalities) + 1)])]
        keys = part.keys("latent", lambda key: "/" not in key)
        if not keys:
            return []
        return part.tables_against_f("latent", keys, LATENT, "Latent accuracy (Table 4 layout)", "latent-accuracy-vs-f",
                                     "linear latent accuracy", "Latent accuracy against f (Fig. 7)",
                                     "latent accuracy against f")
