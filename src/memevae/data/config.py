"""Which data a run trains on: :class:`DataConfig`."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields
from pathlib import Path

import torch

from ..options import FLAG, flag_names
from . import registry
from .dataset import MultimodalDataset
from .pairs import LEGACY_RENDERING, data_variant, judges_variant, load_pairs
from .schemes import apply_scheme
from .textured import DEFAULT_RENDERING, Rendering, check_rendering

def _absolute(folder) -> str:
    """``folder`` as an absolute path (``~`` expanded), so that it means the same from any working folder."""
    return str(Path(folder).expanduser().resolve())


@dataclass(init=False)
class DataConfig:
    """Which data a run trains on (paper Sec. 4; the data sets and schemes are in ``docs/data.md``):
    the settings every data set takes, and :attr:`dataset_options`, the data set's own options.

    ``DataConfig(dataset, **settings)``: the settings below by name, and the data set's own
    options (its :attr:`~memevae.data.DataSet.options`) by theirs, e.g.
    ``DataConfig("cub", data_dir="CUB", features="colour-hog")``.
    """

    dataset: str = "mnist-textured"
    """The data set, by name (the data sets are :mod:`memevae.data.registry`'s)."""
    rendering: Rendering = DEFAULT_RENDERING
    """How textured digits are drawn (mnist-textured, polymnist-textured): "bright" strokes over a
    darkened photo, or the hard "inverted" strokes of early memevae 0.1.0; see :mod:`memevae.data.textured`."""
    data_dir: str | None = None
    """Folder with the official files, kept as an absolute path (a run records it so, to be read from
    any folder later); None: the real MNIST sample shipped in the package."""
    paired_fraction: float = 1.0
    """f, the fraction of training pairs kept paired (Sec. 4.1: 1, 0.5, 0.25, 0.125, 0.0625)."""
    unpaired: str | None = None
    """What the other pairs keep: a modality name (only that modality is kept), "split" (one part
    per modality, each keeping only it), "random" (each keeps a random proper subset) or a proper
    subset joined by "+" ("m0+m2"); see :func:`~memevae.data.apply_scheme`."""
    paired_only: bool = field(default=False, metadata={FLAG: "--paired-only"})
    """Drop the unpaired remainder entirely (ablation J.2)."""
    pairs_per_image: int = 1
    """Partners per image: 1, one-to-one pairs per class (release); N, up to N (MMVAE protocol: 20)."""
    seed: int = 0
    """Seeds the pairing, the textured rendering and the partial-observation split."""
    limit: int | None = None
    """Keep only a seeded random ``limit`` training rows (after the scheme), for quick checks."""
    download: bool = field(default=False, metadata={FLAG: "--download"})
    """Fetch missing official files into ``data_dir`` (md5-verified, never a partial file)."""
    verify: bool = field(default=True, metadata={FLAG: "--no-verify"})
    """Check the official files' md5s (off: only shapes and dtypes are checked)."""
    dataset_options: object = field(default=None, metadata={FLAG: None})
    """The data set's own options, an instance of its :attr:`~memevae.data.DataSet.options` (CUB's
    image ``features``, PolyMNIST's ``modalities``: see :meth:`option_classes`); None for a data set
    without any."""

    def __init__(self, *args, **settings):
        general = [f.name for f in fields(DataConfig)]
        if len(args) > len(general):
            raise TypeError(f"DataConfig takes at most {len(general)} settings by position, got {len(args)}")
        settings.update(zip(general, args))
        for f in fields(DataConfig):
            setattr(self, f.name, settings.pop(f.name, f.default))
        self._check()
        dataset = registry.get(self.dataset)
        if isinstance(self.dataset_options, dict):  # dataclasses.asdict's or a record's
            settings = {**self.dataset_options, **settings}
        elif self.dataset_options is not None:  # dataclasses.replace's
            settings = {**dataclasses.asdict(self.dataset_options), **settings}
        for name in [name for name in settings if not dataset.takes(name)]:
            takers = [other for other, spec in registry.datasets().items() if spec.takes(name)]
            if not takers:
                raise TypeError(f"DataConfig has no setting {name!r}; its settings are {', '.join(general[:-1])} "
                                f"and the options of the data sets, {', '.join(sorted(self.option_classes()))}")
            if settings.pop(name) is not None:  # None: not given, as runs of memevae 0.x recorded every option
                what = registry.get(takers[0]).options.what
                raise ValueError(f"{name} applies to data sets with {what} ({', '.join(takers)}), not {self.dataset}")
        self.dataset_options = dataset.parse_options({k: v for k, v in settings.items() if v is not None})

    def _check(self) -> None:
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

    def __getattr__(self, name: str):
        """An option of the data set's own (``config.modalities``, ``config.features``)."""
        own = self.__dict__.get("dataset_options")
        if own is not None and name in {f.name for f in fields(own)}:
            return getattr(own, name)
        raise AttributeError(f"{type(self).__name__} of {self.__dict__.get('dataset')!r} has no attribute {name!r}")

    @staticmethod
    def option_classes() -> dict[str, type]:
        """{option: the options class of the data sets that take it}, over every data set; e.g.
        ``"features"``: CUB's, ``"modalities"``: :class:`~memevae.data.registry.ModalityChoice`."""
        return {f.name: spec.options for spec in registry.datasets().values() if spec.options
                for f in fields(spec.options)}

    @staticmethod
    def flags() -> dict[str, str | None]:
        """{setting or data set's own option: its ``memevae train`` option} (None: it has none), from
        :func:`memevae.options.flag_names`: what the command line is built from and sweeps write."""
        return {**flag_names(DataConfig), **{name: flag for cls in DataConfig.option_classes().values()
                                             for name, flag in flag_names(cls).items()}}

    def record(self) -> dict:
        """The config as ``config.json`` records it: every setting and the data set's own options in
        one flat table, a choice of modalities as its comma-joined names (what :meth:`from_record` reads)."""
        general = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "dataset_options"}
        own = {name: ",".join(value) if isinstance(value, tuple) else value for name, value in self.options().items()}
        return {**general, **own}

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
        """The data set's own options, {option: value} (:attr:`dataset_options`)."""
        return {} if self.dataset_options is None else dataclasses.asdict(self.dataset_options)

    def kinds(self) -> dict[str, str]:
        """{modality: default network kind} of the modalities this config's data have, in the data
        set's order: what a model of these data is built with.

        >>> DataConfig("polymnist-textured", modalities="mnist,m1").kinds()
        {'mnist': 'mnist-mlp', 'm1': 'svhn-conv'}
        """
        return registry.get(self.dataset).kinds(self.options().get("modalities"))

    def pairs(self, split: str, **overrides) -> MultimodalDataset:
        """Every pair of ``split`` of this config's data (:func:`~memevae.data.load_pairs` with its
        settings and the data set's own options), no partial-observation scheme or ``limit`` applied;
        ``overrides`` replace settings of ``load_pairs``, e.g. ``pairs_per_image=1`` (each image
        once) or another choice of ``modalities``."""
        settings = {"pairs_per_image": self.pairs_per_image, "seed": self.seed, "download": self.download,
                    "verify": self.verify, "rendering": self.rendering, **self.options(), **overrides}
        return load_pairs(self.dataset, split, self.data_dir, **settings)

    def load(self, split: str) -> MultimodalDataset:
        """The train split with the partial-observation scheme applied, or the full test split."""
        data = self.pairs(split)
        if split == "train":
            data = apply_scheme(data, self.paired_fraction, self.unpaired, self.paired_only, seed=self.seed)
            if self.limit is not None and self.limit < len(data):
                rows = torch.randperm(len(data), generator=torch.Generator().manual_seed(self.seed))[: self.limit]
                data = data.subset(rows.sort().values)
        return data
