"""The data sets memevae knows: each is one module of this package with a module-level
``DATASET`` (a :class:`DataSet`), found when first asked for.

>>> names()
('cub', 'mnist-svhn', 'mnist-textured')
>>> default_kinds("mnist-textured")
{'mnist': 'mnist-mlp', 'textured': 'svhn-conv'}
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

from .errors import DataError
from .formats import get_format
from .textured import rendering_tag


@dataclass(frozen=True)
class ModalitySpec:
    """One modality of a data set: its bank format (:mod:`memevae.data.formats`), the shape of one
    example and the network kind a model uses for it by default (a name of
    :func:`memevae.modalities.modality_kinds`)."""

    format: str
    shape: tuple[int, ...]
    default_kind: str

    def __post_init__(self):
        get_format(self.format)


@dataclass(frozen=True, eq=False)
class DataSet:
    """A data set: its name (``--dataset``), the label results are published under, its modalities
    in bank order, and ``load(split, data_dir, *, pairs_per_image, seed, download, verify, rendering,
    **options)`` returning a :class:`~memevae.data.MultimodalDataset`. ``rendered``: its examples
    depend on the textured rendering, so its variant names the rendering's version. ``options``: the
    further :class:`~memevae.data.DataConfig` fields its ``load`` takes (e.g. CUB's image
    ``features``); a data set's variant names its ``features`` when it takes them."""

    name: str
    label: str
    modalities: dict[str, ModalitySpec]
    load: Callable
    rendered: bool = False
    options: tuple[str, ...] = ()
    default_features: str | None = None
    """The image features its ``load`` uses when a config names none (CUB: "resnet101")."""
    disjoint_classes: bool = False
    """Its test classes are not training classes (CUB's class split), so a classifier of latent
    codes fitted on training items cannot be scored on test items."""
    judged: bool = True
    """Its examples show digits that judges (classifiers) can read, so coherence is measured with
    judges; False: no judges apply (CUB's coherence is the CCA measure of App. G)."""

    def variant(self, rendering: str, **options) -> str:
        """The name results are filed under, e.g. "mnist-textured/bright-v1", "mnist-svhn" or
        "cub/resnet101"."""
        if self.rendered:
            return f"{self.name}/{rendering_tag(rendering)}"
        if "features" in self.options and options.get("features"):
            return f"{self.name}/{options['features']}"
        return self.name

    def formats(self) -> dict[str, str]:
        """{modality: format name}, for :class:`~memevae.data.MultimodalDataset`."""
        return {m: spec.format for m, spec in self.modalities.items()}


@cache
def datasets() -> dict[str, DataSet]:
    """Every data set, by name (sorted): the ``DATASET`` of each module of :mod:`memevae.data`."""
    found = {}
    for module in pkgutil.iter_modules(importlib.import_module(__package__).__path__):
        dataset = getattr(importlib.import_module(f"{__package__}.{module.name}"), "DATASET", None)
        if isinstance(dataset, DataSet):
            if dataset.name in found:
                raise RuntimeError(f"two modules of {__package__} declare the data set {dataset.name!r}")
            found[dataset.name] = dataset
    return dict(sorted(found.items()))


def names() -> tuple[str, ...]:
    """The names of the data sets, sorted."""
    return tuple(datasets())


def get(name: str) -> DataSet:
    """The data set ``name``; a one-line DataError naming the known ones otherwise."""
    if name not in datasets():
        raise DataError(f"unknown dataset {name!r}; choose from {', '.join(names())}")
    return datasets()[name]


def default_kinds(dataset: str) -> dict[str, str]:
    """{modality: network kind} a model of ``dataset`` uses by default, in modality order."""
    return {m: spec.default_kind for m, spec in get(dataset).modalities.items()}
