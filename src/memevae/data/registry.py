"""The data sets memevae knows: each is one module of :mod:`memevae.data.sets` with a module-level
``DATASET`` (a :class:`DataSet`), found when first asked for.

>>> names()
('cub', 'mnist-svhn', 'mnist-textured', 'polymnist', 'polymnist-textured')
>>> default_kinds("mnist-textured")
{'mnist': 'mnist-mlp', 'textured': 'svhn-conv'}
>>> get("polymnist-textured").chosen("mnist,m0,m1"), get("polymnist-textured").chosen(3)
(('mnist', 'm0', 'm1'), ('m0', 'm1', 'm2'))
"""

from __future__ import annotations

import dataclasses
import importlib
import numbers
import pkgutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import ClassVar

from ..options import check_choices
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


@dataclass(frozen=True)
class ImageFeatures:
    """What ``memevae features <data set>`` needs of a data set whose images enter as cached feature
    vectors: ``images(data_dir)``, the relative paths of its images in their order, and
    ``cache(data_dir, features, features_dir)``, the cache file of the features ``features``."""

    images: Callable
    cache: Callable


@dataclass(frozen=True)
class ModalityChoice:
    """The own options of a data set that offers a choice among its modalities (PolyMNIST's)."""

    what: ClassVar[str] = "a choice of modalities"
    modalities: tuple[str, ...] | str | int | None = None
    """The modalities: N (2 to 5: the first N numbered ones, m0 .. m{N-1}) or comma-separated
    names, e.g. mnist,m0,m1 (polymnist-textured's plain MNIST digits by name only); given as
    that text, an integer or a list, held as the tuple of their names in the data set's order.
    None: every numbered one (five)."""

    def resolve(self, dataset: "DataSet") -> "ModalityChoice":
        """The choice as the tuple of the names ``dataset`` chooses (:meth:`DataSet.chosen`)."""
        return ModalityChoice(dataset.chosen(self.modalities))


@dataclass(frozen=True, eq=False)
class DataSet:
    """A data set: its name (``--dataset``), the label results are published under, its modalities
    in bank order, and ``load(split, data_dir, *, pairs_per_image, seed, download, verify, rendering,
    **options)`` returning a :class:`~memevae.data.MultimodalDataset`. ``rendered``: its examples
    depend on the textured rendering, so its variant names the rendering's version. ``options``: the
    dataclass of its own typed options, which its ``load`` takes as keywords and a
    :class:`~memevae.data.DataConfig` holds (e.g. CUB's image ``features``, :class:`ModalityChoice`
    for PolyMNIST's ``modalities``); a data set's variant names its ``features`` and its chosen
    modalities when it takes them."""

    name: str
    label: str
    modalities: dict[str, ModalitySpec]
    load: Callable
    rendered: bool = False
    options: type | None = None
    image_features: ImageFeatures | None = None
    """How ``memevae features`` computes the image features its ``load`` reads (CUB's); None: it has none."""
    disjoint_classes: bool = False
    """Its test classes are not training classes (CUB's class split), so a classifier of latent
    codes fitted on training items cannot be scored on test items."""
    judged: bool = True
    """Its examples show digits that judges (classifiers) can read, so coherence is measured with
    judges; False: no judges apply (CUB's coherence is the CCA measure of App. G)."""
    label_noun: str = "digit"
    """What its labels are, in figure labels and metric keys ("knn_same_digit"): "digit", or
    "class" where they are not digits (CUB's bird classes)."""
    numbered: tuple[str, ...] = ()
    """For a data set that takes the ``modalities`` option: the modalities an integer choice N takes
    the first N of (PolyMNIST's m0 .. m4); all of them by default. The others (PolyMNIST-Textured's
    plain ``mnist``) are chosen by name."""

    def variant(self, rendering: str, **options) -> str:
        """The name results are filed under, e.g. "mnist-textured/bright-v1", "mnist-svhn",
        "cub/resnet101" or "polymnist-textured/bright-v1/m0-m1-m2"."""
        base = self.judges_variant(rendering, **options)
        return f"{base}/{'-'.join(self.chosen(options.get('modalities')))}" if self.takes("modalities") else base

    def judges_variant(self, rendering: str, **options) -> str:
        """The name judges (per-modality digit classifiers) are filed under: :meth:`variant` without
        the choice of modalities, since a modality's examples look alike whichever others are chosen
        ("polymnist-textured/bright-v1" for every choice)."""
        parts = [self.name]
        if self.rendered:
            parts.append(rendering_tag(rendering))
        elif self.takes("features") and options.get("features"):
            parts.append(options["features"])
        return "/".join(parts)

    def chosen(self, modalities: str | int | Sequence[str] | None = None) -> tuple[str, ...]:
        """The modalities a ``modalities`` option chooses, in this data set's order: None, every
        :attr:`numbered` one (every modality of a data set without the option); an integer N (or
        its text, "3"), the first N numbered ones; names, as a comma-separated text ("mnist,m0,m1")
        or a sequence. At least two; anything else is a one-line DataError naming the choices."""
        if modalities is None:
            return self.numbered or tuple(self.modalities)
        if not self.takes("modalities"):
            raise DataError(f"{self.name} has the fixed modalities {', '.join(self.modalities)}; give no modalities option")
        most = len(self.numbered)
        fix = (f"give N, 2 to {most} (the first N of {', '.join(self.numbered)}), or two or more comma-separated "
               f"names from {', '.join(self.modalities)}, e.g. '{','.join(list(self.modalities)[:2])}'")
        if isinstance(modalities, bool):
            raise DataError(f"modalities {modalities!r} of {self.name}: {fix}")
        if isinstance(modalities, numbers.Integral) or (isinstance(modalities, str) and modalities.strip().isdigit()):
            count = int(modalities)
            if not 2 <= count <= most:
                raise DataError(f"modalities {modalities!r} of {self.name}: {fix}")
            return self.numbered[:count]
        if not isinstance(modalities, (str, Sequence)):
            raise DataError(f"modalities {modalities!r} of {self.name}: {fix}")
        names = [str(name).strip() for name in (modalities.split(",") if isinstance(modalities, str) else modalities)]
        unknown = [name for name in names if name not in self.modalities]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if unknown or repeated or len(names) < 2:
            problem = (f"no modality {', '.join(map(repr, unknown))}" if unknown else
                       f"{', '.join(repeated)} named twice" if repeated else "fewer than two modalities")
            raise DataError(f"modalities {modalities!r} of {self.name}: {problem}; {fix}")
        return tuple(name for name in self.modalities if name in names)

    def kinds(self, modalities: str | int | Sequence[str] | None = None) -> dict[str, str]:
        """{modality: default network kind} of the modalities ``modalities`` chooses (:meth:`chosen`),
        in this data set's order."""
        return {name: self.modalities[name].default_kind for name in self.chosen(modalities)}

    def tag(self, modalities: str | int | Sequence[str] | None = None) -> str:
        """The chosen modalities in a run's folder name: "m3" for the first three numbered ones (what
        ``--modalities 3`` chooses), else their names joined by "-" ("mnist-m0-m1"); a choice holds at
        least two modalities, so "m3" never means the one modality m3.

        >>> get("polymnist-textured").tag("m0,m1,m2"), get("polymnist-textured").tag("m1,mnist")
        ('m3', 'mnist-m1')
        """
        chosen = self.chosen(modalities)
        return f"m{len(chosen)}" if chosen == self.numbered[: len(chosen)] else "-".join(chosen)

    @property
    def option_names(self) -> tuple[str, ...]:
        """The names of its own options (the fields of :attr:`options`)."""
        return tuple(f.name for f in dataclasses.fields(self.options)) if self.options else ()

    def takes(self, option: str) -> bool:
        """Whether ``option`` is one of its own options."""
        return option in self.option_names

    def parse_options(self, values: dict):
        """Its :attr:`options` built from ``values`` ({option: value}, those not given left out),
        checked (a ``Literal`` option against its choices) and resolved (a choice of modalities as the
        tuple of their names); None for a data set without options. A bad value is a one-line error."""
        if self.options is None:
            if values:
                raise ValueError(f"{self.name} takes no option(s) {', '.join(sorted(values))}")
            return None
        built = self.options(**values)
        check_choices(built)
        return built.resolve(self) if hasattr(built, "resolve") else built

    def formats(self) -> dict[str, str]:
        """{modality: format name}, for :class:`~memevae.data.MultimodalDataset`."""
        return {m: spec.format for m, spec in self.modalities.items()}


@cache
def datasets() -> dict[str, DataSet]:
    """Every data set, by name (sorted): the ``DATASET`` of each module of :mod:`memevae.data.sets`."""
    found, package = {}, f"{__package__}.sets"
    for module in pkgutil.iter_modules(importlib.import_module(package).__path__):
        dataset = getattr(importlib.import_module(f"{package}.{module.name}"), "DATASET", None)
        if isinstance(dataset, DataSet):
            if dataset.name in found:
                raise RuntimeError(f"two modules of {package} declare the data set {dataset.name!r}")
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
    """{modality: network kind} a model of ``dataset`` uses by default, in modality order (for a data
    set with a choice of modalities, those chosen by default; a data config's own choice:
    :meth:`memevae.data.DataConfig.kinds`)."""
    return get(dataset).kinds()
