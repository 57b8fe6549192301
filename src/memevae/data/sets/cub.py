"""CUB image-caption (paper Sec. 4, Table 5, App. G): CUB-200-2011 bird images, each as a feature
vector, paired with each of its ten captions (Reed et al. 2016), divided by class as MMVAE and the
paper do (150 train-val classes, 50 test classes).

The images enter as cached feature vectors (``memevae features cub``): the paper's 2048-d pooled
output of an ImageNet ResNet-101 (``DEFAULT_FEATURES``), or "colour-hog", a classical
descriptor that needs no weights (results made with it are filed under "cub/colour-hog", never as
the paper's setting). The captions are token ids over the vocabulary of the training captions'
words seen at least 3 times (:class:`~memevae.data.captions.Vocabulary`), 32 tokens long.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from ..captions import LENGTH, Vocabulary
from ..files.cub import CAPTIONS_PER_IMAGE, read_cub
from ..dataset import MultimodalDataset
from ..errors import DataError
from ..features.image_features import DEFAULT_FEATURES, FeatureName, load_features
from ..registry import DataSet, ImageFeatures, ModalitySpec

MIN_COUNT = 3
"""A word enters the vocabulary when the training captions hold it at least this often (paper App. K)."""


@dataclass(frozen=True)
class CUBOptions:
    """CUB's own options: which image features its image modality is, and where they are cached."""

    what: ClassVar[str] = "image features"
    features: FeatureName = DEFAULT_FEATURES
    """The image features: "resnet101", the paper's (the pooled output of an ImageNet ResNet-101),
    or "colour-hog", a classical descriptor that needs no weights (results made with it are filed
    under its name); computed first by ``memevae features cub``."""
    features_dir: str | None = None
    """The folder of the cached features; None: the ``features`` folder inside the data folder."""

    def resolve(self, dataset) -> "CUBOptions":
        """The options with the features folder as text."""
        return replace(self, features_dir=None if self.features_dir is None else str(Path(self.features_dir).expanduser().resolve()))


def features_cache(data_dir: str | os.PathLike, features: str = DEFAULT_FEATURES, features_dir: str | os.PathLike | None = None) -> Path:
    """Where ``memevae features cub`` keeps the image features ``features`` (default the paper's)
    of the CUB folder ``data_dir``: ``<features_dir or data_dir/features>/cub-<features>.npy``."""
    return Path(features_dir or Path(data_dir) / "features") / f"cub-{features}.npy"


def load(split, data_dir, *, pairs_per_image, seed, download, verify, rendering, features=DEFAULT_FEATURES, features_dir=None):
    """The ``split`` ("train": the 150 train-val classes; "test": the 50 test classes) of the CUB
    folder ``data_dir``: a row per (image, caption), ten per image, the images as their cached
    features; the vocabulary (built from the training captions) travels with the data set.
    ``seed`` and ``rendering`` do not apply (CUB's pairs are given)."""
    if data_dir is None:
        raise DataError("cub needs --data-dir DIR, the folder holding CUB_200_2011/, text/ and split/ (docs/data.md, "
                        "'CUB'); memevae ships no CUB images")
    if download:
        raise DataError("memevae cannot download CUB: fetch CUB-200-2011, the Reed et al. captions and the class split "
                        "(docs/data.md, 'CUB') and pass --data-dir")
    if pairs_per_image != 1:
        raise DataError("cub pairs each image with each of its ten captions; --pairs-per-image does not apply")
    records = read_cub(data_dir)
    vocabulary = Vocabulary.build(records.select("train").all_captions(), min_count=MIN_COUNT)
    all_features = load_features(features_cache(data_dir, features, features_dir), list(records.paths), data_dir=data_dir)
    chosen = records.select(split)
    if len(chosen) == 0:
        raise DataError(f"the CUB folder {data_dir} has no images of {split} classes; add them (docs/data.md, 'CUB')")
    row_of = {path: row for row, path in enumerate(records.paths)}
    images = all_features[torch.tensor([row_of[path] for path in chosen.paths])]
    captions = vocabulary.encode_all([caption for image in chosen.captions for caption in image], length=LENGTH)
    n = len(chosen)
    index = {"image": torch.arange(n).repeat_interleave(CAPTIONS_PER_IMAGE), "caption": torch.arange(n * CAPTIONS_PER_IMAGE)}
    labels = torch.as_tensor(list(chosen.classes)).repeat_interleave(CAPTIONS_PER_IMAGE)
    return MultimodalDataset({"image": images, "caption": captions}, index, labels, DATASET.name, DATASET.formats(),
                             vocabularies={"caption": vocabulary},
                             views={"image": NearestPictures(images, Path(data_dir), tuple(chosen.paths))})


class NearestPictures:
    """Shows image feature vectors (real or generated) as the real images whose features are nearest
    among ``bank`` (Euclidean), as MMVAE shows its CUB feature generations; thumbnails of ``size``
    pixels a side, read from ``root / paths[row]``."""

    def __init__(self, bank: torch.Tensor, root: Path, paths: tuple[str, ...], size: int = 64):
        self.bank, self.root, self.paths, self.size = bank, root, paths, size

    def __call__(self, x: torch.Tensor) -> list[torch.Tensor]:
        from PIL import Image

        from ..features.image_features import nearest_images

        pictures = []
        for row in nearest_images(x.detach().float().cpu(), self.bank)[:, 0].tolist():
            with Image.open(self.root / self.paths[row]) as image:
                thumbnail = image.convert("RGB").resize((self.size, self.size))
            pictures.append(torch.from_numpy(np.asarray(thumbnail).copy()).permute(2, 0, 1).float() / 255)
        return pictures


DATASET = DataSet(
    name="cub",
    label="CUB",
    modalities={"image": ModalitySpec("features", (None,), "features-mlp"),
                "caption": ModalitySpec("tokens", (LENGTH,), "caption-conv")},
    load=load,
    options=CUBOptions,
    image_features=ImageFeatures(images=lambda data_dir: list(read_cub(data_dir).paths), cache=features_cache),
    judged=False,
    disjoint_classes=True,
    label_noun="class",
)
