"""Which data a run trains on: :class:`DataConfig`."""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from pathlib import Path

import torch

from . import registry
from .dataset import MultimodalDataset
from .pairs import LEGACY_RENDERING, data_variant, judges_variant, load_pairs
from .schemes import apply_scheme
from .textured import DEFAULT_RENDERING, check_rendering

_OWN_OPTIONS = {"features": "image features", "features_dir": "image features", "modalities": "a choice of modalities"}
"""The fields only some data sets take (their :attr:`DataSet.options`), with what those data sets have."""


def _absolute(folder) -> str:
    """``folder`` as an absolute path (``~`` expanded), so that it means the same from any working folder."""
    return str(Path(folder).expanduser().resolve())


@dataclass
class DataConfig:
    """Which data a run trains on (paper Sec. 4; the data sets and schemes are in ``docs/data.md``)."""

    dataset: str = "mnist-textured"
    """A data set of :mod:`memevae.data.registry`: "mnist-textured" (the offline stand-in for
    SVHN), "mnist-svhn", "cub", "polymnist-textured" (an offline PolyMNIST-style stand-in) or
    "polymnist" (MoPoE's PolyMNIST files)."""
    rendering: str = DEFAULT_RENDERING
    """How textured digits are drawn (mnist-textured, polymnist-textured): "bright" (default) or
    the hard "inverted" of early memevae 0.1.0; see :mod:`memevae.data.textured`."""
    data_dir: str | None = None
    """Folder with the official files, kept as an absolute path (a run records it so, to be read from
    any folder later); None: the real MNIST sample shipped in the package."""
    paired_fraction: float = 1.0
    """f, the fraction of training pairs kept paired (Sec. 4.1: 1, 0.5, 0.25, 0.125, 0.0625)."""
    unpaired: str | None = None
    """What the other pairs keep: a modality name (only that modality is kept), "split" (one part
    per modality, each keeping only it), "random" (each keeps a random proper subset) or a proper
    subset joined by "+" ("m0+m2"); see :func:`~memevae.data.apply_scheme`."""
    paired_only: bool = False
    """Drop the unpaired remainder entirely (ablation J.2)."""
    pairs_per_image: int = 1
    """1: one-to-one pairs per class (release). N: up to N partners per image (MMVAE protocol)."""
    seed: int = 0
    """Seeds the pairing, the textured rendering and the partial-observation split."""
    limit: int | None = None
    """Keep only a seeded random ``limit`` training rows (after the scheme), for quick checks."""
    download: bool = False
    """Fetch missing official files into ``data_dir`` (md5-verified, never a partial file)."""
    verify: bool = True
    """Check the official files' md5s (off: only shapes and dtypes are checked)."""
    features: str | None = None
    """cub only: the image features, "resnet101" (the paper's: the pooled output of an ImageNet
    ResNet-101) or "colour-hog" (a classical descriptor that needs no weights; results made with it
    are filed under its name). None: the data set's default ("resnet101"), recorded as such."""
    features_dir: str | None = None
    """cub only: the folder of the cached features (``memevae features cub``), kept as an absolute
    path; None: the ``features`` folder inside ``data_dir``."""
    modalities: str | None = None
    """polymnist, polymnist-textured only: the modalities, "N" (2 to 5: m0 .. m{N-1}) or comma-separated
    names ("mnist,m0,m1"; polymnist-textured's plain MNIST digits are chosen by name only), kept in the
    data set's order. None: the data set's default, "5" (MoPoE's PolyMNIST has five), recorded as such."""

    def __post_init__(self):
        if self.dataset not in registry.names():
            raise ValueError(f"unknown dataset {self.dataset!r}; choose one of {', '.join(registry.names())}")
        check_rendering(self.rendering)
        checks = [("paired_fraction", 0 < self.paired_fraction <= 1, "in (0, 1]"),
                  ("pairs_per_image", self.pairs_per_image >= 1, ">= 1"), ("seed", self.seed >= 0, ">= 0"),
                  ("limit", self.limit is None or self.limit >= 1, ">= 1 (or None: every row)")]
        for name, ok, need in checks:
            if not ok:
                raise ValueError(f"{name} must be {need}, got {getattr(self, name)!r}")
        if self.data_dir is not None:
            self.data_dir = _absolute(self.data_dir)
        dataset = registry.get(self.dataset)
        taken = dataset.options
        if "features" in taken and self.features is None:
            self.features = dataset.default_features
        if "modalities" in taken and self.modalities is None:
            self.modalities = str(len(dataset.numbered))
        for name, what in _OWN_OPTIONS.items():
            if getattr(self, name) is not None and name not in taken:
                takers = [d for d, spec in registry.datasets().items() if name in spec.options]
                raise ValueError(f"{name} applies to data sets with {what} ({', '.join(takers)}), not {self.dataset}")
        if self.features_dir is not None:
            self.features_dir = _absolute(self.features_dir)
        if self.modalities is not None:
            dataset.chosen(self.modalities)  # a one-line error for a bad choice, before any data is read
            if isinstance(self.modalities, numbers.Integral):  # kept as the option's text
                self.modalities = str(self.modalities)
            elif not isinstance(self.modalities, str):  # a list of names
                self.modalities = ",".join(map(str, self.modalities))

    @classmethod
    def from_record(cls, record: dict) -> "DataConfig":
        """The DataConfig a run's ``config.json`` recorded; runs written before renderings had
        names (early memevae 0.1.0) used the "inverted" one."""
        return cls(**{"rendering": LEGACY_RENDERING, **record})

    @property
    def variant(self) -> str:
        """The data a result was measured on, with the rendering's version where it matters and the
        chosen modalities: "mnist-textured/bright-v1", "mnist-svhn", "polymnist-textured/bright-v1/m0-m1-m2".
        Runs and reports record it so that results of different data are never mixed."""
        return data_variant(self.dataset, self.rendering, **self.options())

    @property
    def judges_variant(self) -> str:
        """The variant judges (per-modality digit classifiers) are filed under: :attr:`variant`
        without the choice of modalities, since a modality's examples look alike whichever other
        modalities are chosen: "polymnist-textured/bright-v1" for every choice.

        >>> DataConfig("polymnist-textured", modalities="3").judges_variant
        'polymnist-textured/bright-v1'
        """
        return judges_variant(self.dataset, self.rendering, **self.options())

    def options(self) -> dict:
        """The fields of this config that only its data set takes (:attr:`DataSet.options`)."""
        return {name: getattr(self, name) for name in registry.get(self.dataset).options}

    def kinds(self) -> dict[str, str]:
        """{modality: default network kind} of the modalities this config's data have, in the data
        set's order: what a model of these data is built with.

        >>> DataConfig("polymnist-textured", modalities="mnist,m1").kinds()
        {'mnist': 'mnist-mlp', 'm1': 'svhn-conv'}
        """
        return registry.get(self.dataset).kinds(self.modalities)

    def load(self, split: str) -> MultimodalDataset:
        """The train split with the partial-observation scheme applied, or the full test split."""
        data = load_pairs(self.dataset, split, self.data_dir, pairs_per_image=self.pairs_per_image, seed=self.seed,
                          download=self.download, verify=self.verify, rendering=self.rendering, **self.options())
        if split == "train":
            data = apply_scheme(data, self.paired_fraction, self.unpaired, self.paired_only, seed=self.seed)
            if self.limit is not None and self.limit < len(data):
                rows = torch.randperm(len(data), generator=torch.Generator().manual_seed(self.seed))[: self.limit]
                data = data.subset(rows.sort().values)
        return data
