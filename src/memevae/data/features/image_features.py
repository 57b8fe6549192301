"""Image feature vectors for CUB, computed once and cached: the image modality of the paper's CUB
image-caption experiment is one 2048-d vector per image, the global-average-pooled output of an
ImageNet ResNet-101 (paper Table 8c, App. K).

Backbones (:data:`BACKBONES`):

- ``"resnet101"`` (the paper's setting): :mod:`memevae.data.features.resnet` with torchvision's ImageNet
  weights (``resnet101-63fe2227.pth``, downloaded into the torch hub cache, or ``weights=FILE``).
  Preprocessing follows the official MMVAE code (iffsid/mmvae, ``src/datasets.py``, class
  ``CUBImageFt``, which the feature models ``vae_cub_image_ft.py`` / ``mmvae_cub_images_sentences_ft.py``
  load): each image is read as RGB, resized with bilinear interpolation so that its *shorter* side
  is 224 pixels (aspect ratio kept, the longer side truncated to an integer; no crop), and scaled to
  [0, 1] -- *no* ImageNet mean/std normalisation, unlike torchvision's own evaluation transform.
  The vector is the pooled output before ``fc`` (MMVAE drops the last child, ``fc``, of torchvision's
  ResNet-101 and squeezes the pooled map), network in eval mode. MMVAE runs 256 images per forward
  pass; memevae runs each group of same-sized images of a chunk together, which global pooling
  makes equal to one image at a time, so images of any aspect ratio work.
- ``"colour-hog"``: a classical descriptor needing no weights and no training data, for runs where
  the ImageNet weights are unavailable. **Not the paper's setting**: results made with it are
  labelled with its name. The image is resized (bilinear, aspect ratio not kept) to 128 x 128 RGB;
  then (a) HOG of the grey image (scikit-image ``hog``: 9 orientations, 16 x 16-pixel cells,
  2 x 2-cell blocks, L2-Hys block normalisation; 7 x 7 blocks x 36 = 1,764 values) and (b) a joint
  HSV colour histogram with 8 bins per channel (512 values); each part is scaled to unit L2 norm,
  so both weigh the same in Euclidean distance. Length **2,276** (float32).

The cache is ``<name>.npy`` (float32, n x dim, row i the features of ``image_paths[i]``) and a JSON
sidecar ``<name>.json`` recording the format, backbone, its weights (file name and sha256, or
``"untrained"``), the sha256 of the ``.npy`` and the ordered image paths (and their sha256).
Computation goes in chunks of ``batch_size`` images into ``<name>.partial.npy`` (a memory map) and
``<name>.partial.json`` (rows done and the settings), so an interrupted run continues where it
stopped; the final files are written atomically and the partial ones removed.

A generated feature vector is shown as the nearest real image (:func:`nearest_images`), as MMVAE
does (``NN_lookup`` in its ``src/utils.py``: Euclidean distances to the training features for
generations and reconstructions, to the test features for the test data, argmin).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Literal, Protocol, Sequence

import numpy as np
import torch

from ..errors import DataError
from .resnet import FEATURE_DIM, IMAGENET_V1_FILE, UNTRAINED, sha256_file

if TYPE_CHECKING:
    from PIL.Image import Image

    from .resnet import ResNet

FORMAT = "memevae-image-features"
VERSION = 1
"""Cache format name and version, written in every sidecar."""
DEFAULT_BATCH_SIZE = 32


class Backbone(Protocol):
    """A feature extractor: ``compute`` maps a batch of PIL images to a float32 array (n, ``dim``)."""

    name: str
    dim: int
    describe: str
    version: str

    def bind(self, weights: str | os.PathLike | None) -> "Backbone": ...

    def weights_record(self) -> dict | str | None: ...

    def prepare(self) -> None: ...

    def compute(self, images: Sequence["Image"]) -> np.ndarray: ...


# ---------------------------------------------------------------------------------------------
# ResNet-101 (the paper's setting)

RESNET_SHORT_SIDE = 224
"""MMVAE resizes the shorter side of each image to this many pixels (no crop, no normalisation)."""


def mmvae_transform(image: "Image") -> torch.Tensor:
    """MMVAE's CUB preprocessing for ResNet-101: RGB, bilinear resize of the shorter side to 224
    (longer side ``int(224 * long / short)``), pixels in [0, 1]; a (3, H, W) float32 tensor."""
    from PIL import Image as PILImage

    image = image.convert("RGB")
    w, h = image.size
    if min(w, h) != RESNET_SHORT_SIDE:
        size = ((RESNET_SHORT_SIDE, int(RESNET_SHORT_SIDE * h / w)) if w <= h
                else (int(RESNET_SHORT_SIDE * w / h), RESNET_SHORT_SIDE))
        image = image.resize(size, PILImage.BILINEAR)
    pixels = np.asarray(image, dtype=np.uint8)
    return torch.from_numpy(pixels.copy()).permute(2, 0, 1).float().div_(255.0)


def _official_record_matches(record: object) -> bool:
    """Whether a recorded weights entry is torchvision's official IMAGENET1K_V1 file."""
    return (isinstance(record, dict) and record.get("file") == IMAGENET_V1_FILE
            and str(record.get("sha256", "")).startswith(IMAGENET_V1_FILE.split("-")[1].split(".")[0]))


@dataclass
class ResNet101Features:
    """The paper's backbone: ImageNet ResNet-101, 2048-d pooled features, MMVAE's preprocessing.

    ``weights``: a state-dict file, None for the official ImageNet file (downloaded once into the
    torch hub cache), or ``"untrained"`` (tests of the plumbing only; caches made with it are
    marked untrained and refused by :func:`load_features`). The network is loaded on first use.
    """

    weights: str | os.PathLike | None = None
    name: str = "resnet101"
    dim: int = FEATURE_DIM
    version: str = "resnet101/mmvae-resize224-unnormalised/v1"
    describe: str = ("ImageNet ResNet-101, global-average-pooled 2048-d output before fc (paper Table 8c); "
                     "MMVAE's preprocessing: shorter side resized to 224 (bilinear, no crop), pixels in [0, 1], "
                     "no mean/std normalisation")
    _model: "ResNet | None" = field(default=None, repr=False)
    _record: dict | str | None = field(default=None, repr=False)

    def bind(self, weights: str | os.PathLike | None) -> "ResNet101Features":
        """A fresh instance with ``weights`` (nothing loaded yet)."""
        return ResNet101Features(weights=weights)

    def weights_record(self) -> dict | str:
        """What the cache records for the weights: ``"untrained"``, or ``{"file", "sha256"}``; before
        the official file is downloaded its sha256 is ``None`` (matched by torchvision's hash prefix)."""
        if self._record is not None:
            return self._record
        if isinstance(self.weights, str) and self.weights == UNTRAINED:
            return UNTRAINED
        if self.weights is not None:
            path = Path(self.weights)
            if not path.is_file():
                raise DataError(f"{path}: no such weights file; pass an existing file with --weights "
                                f"(torchvision's {IMAGENET_V1_FILE})")
            return {"file": path.name, "sha256": sha256_file(path)}
        cached = Path(torch.hub.get_dir()) / "checkpoints" / IMAGENET_V1_FILE
        return {"file": IMAGENET_V1_FILE, "sha256": sha256_file(cached) if cached.is_file() else None}

    def prepare(self) -> None:
        """Load (or download) the weights and build the network, once."""
        if self._model is None:
            from .resnet import build_resnet101

            self._model, info = build_resnet101(self.weights)
            self._record = UNTRAINED if info.untrained else {"file": info.file, "sha256": info.sha256}

    def compute(self, images: Sequence["Image"]) -> np.ndarray:
        """Features of ``images`` (n, 2048) float32, in order; same-sized images share a forward pass."""
        self.prepare()
        assert self._model is not None
        tensors = [mmvae_transform(image) for image in images]
        out = np.empty((len(tensors), self.dim), dtype=np.float32)
        groups: dict[tuple[int, ...], list[int]] = {}
        for i, t in enumerate(tensors):
            groups.setdefault(tuple(t.shape), []).append(i)
        with torch.no_grad(), torch.inference_mode():
            for rows in groups.values():
                batch = torch.stack([tensors[i] for i in rows])
                out[rows] = self._model.features(batch).numpy()
        return out


# ---------------------------------------------------------------------------------------------
# colour-hog (a classical stand-in, never the paper's setting)

HOG_SIZE = 128
HOG_ORIENTATIONS = 9
HOG_CELL = 16
HOG_BLOCK = 2
HSV_BINS = 8
HOG_LENGTH = ((HOG_SIZE // HOG_CELL) - HOG_BLOCK + 1) ** 2 * HOG_BLOCK ** 2 * HOG_ORIENTATIONS  # 7*7*36 = 1764
COLOUR_HOG_DIM = HOG_LENGTH + HSV_BINS ** 3  # 1764 + 512 = 2276


@dataclass
class ColourHogFeatures:
    """A classical 2,276-d descriptor (no weights, no training): HOG of the grey 128 x 128 image (9
    orientations, 16 x 16 cells, 2 x 2 blocks, L2-Hys; 1,764 values) and a joint 8 x 8 x 8 HSV colour
    histogram (512), each part scaled to unit L2 norm. Not the paper's setting (paper Table 8c uses
    ResNet-101): results made with it carry its name."""

    name: str = "colour-hog"
    dim: int = COLOUR_HOG_DIM
    version: str = "colour-hog/128-hog9x16x2-l2hys-hsv8x8x8-l2/v1"
    describe: str = ("colour-hog (NOT the paper's ResNet-101 features): 128x128 bilinear resize; HOG of the grey image "
                     "(9 orientations, 16x16 cells, 2x2 blocks, L2-Hys; 1764) + joint HSV histogram 8x8x8 (512), "
                     "each part L2-normalised; 2276 values")

    def bind(self, weights: str | os.PathLike | None) -> "ColourHogFeatures":
        """This backbone takes no weights: ``weights`` must be None."""
        if weights is not None:
            raise DataError(f"the colour-hog backbone takes no weights (got {weights}); drop --weights or use "
                            f"--features {DEFAULT_FEATURES}")
        return self

    def weights_record(self) -> None:
        """No weights: the cache records ``null``."""
        return None

    def prepare(self) -> None:
        """Import scikit-image now, so a missing install fails before any file is written."""
        import importlib

        importlib.import_module("skimage.feature")

    def compute(self, images: Sequence["Image"]) -> np.ndarray:
        """Descriptors of ``images`` (n, 2276) float32, in order; deterministic."""
        from PIL import Image as PILImage
        from skimage.color import rgb2gray, rgb2hsv
        from skimage.feature import hog

        out = np.empty((len(images), self.dim), dtype=np.float32)
        for row, image in enumerate(images):
            rgb = np.asarray(image.convert("RGB").resize((HOG_SIZE, HOG_SIZE), PILImage.BILINEAR),
                             dtype=np.float64) / 255.0
            gradients = hog(rgb2gray(rgb), orientations=HOG_ORIENTATIONS, pixels_per_cell=(HOG_CELL, HOG_CELL),
                            cells_per_block=(HOG_BLOCK, HOG_BLOCK), block_norm="L2-Hys", feature_vector=True)
            bins = np.minimum((rgb2hsv(rgb) * HSV_BINS).astype(np.int64), HSV_BINS - 1).reshape(-1, 3)
            joint = (bins[:, 0] * HSV_BINS + bins[:, 1]) * HSV_BINS + bins[:, 2]
            histogram = np.bincount(joint, minlength=HSV_BINS ** 3).astype(np.float64)
            for part in (gradients, histogram):
                norm = np.linalg.norm(part)
                if norm > 0:
                    part /= norm
            out[row, :HOG_LENGTH] = gradients
            out[row, HOG_LENGTH:] = histogram
        return out


BACKBONES: dict[str, Backbone] = {backbone.name: backbone for backbone in (ResNet101Features(), ColourHogFeatures())}
"""The feature backbones by name: ``resnet101`` (the paper's) and ``colour-hog`` (a weight-free stand-in)."""
DEFAULT_FEATURES = ResNet101Features.name
"""The backbone of the paper's image features, the default: ImageNet ResNet-101."""
FeatureName = Literal[tuple(BACKBONES)]
"""The name of a feature backbone, as an option's type: its choices are checked when it is given."""


# ---------------------------------------------------------------------------------------------
# the cache

def _sidecar(cache: Path) -> Path:
    return cache.with_suffix(".json")


def _partial(cache: Path) -> tuple[Path, Path]:
    return cache.with_suffix(".partial.npy"), cache.with_suffix(".partial.json")


def _cache_path(cache: str | os.PathLike) -> Path:
    cache = Path(cache)
    return cache if cache.suffix == ".npy" else cache.with_name(cache.name + ".npy")


def _paths_sha256(image_paths: Sequence[str]) -> str:
    return hashlib.sha256(json.dumps(list(image_paths), ensure_ascii=False).encode("utf-8")).hexdigest()


def _rerun_hint(cache: Path, backbone: str, data_dir: str | os.PathLike | None = None) -> str:
    """The command that computes ``cache``: ``memevae features cub --data-dir D --features B``, with
    ``--out`` when the cache lies elsewhere than ``D/features`` (D: ``data_dir``, or the folder
    holding the cache's ``features`` folder, else a placeholder)."""
    if data_dir is None:
        data_dir = cache.parent.parent if cache.parent.name == "features" else "DATA"
    out = "" if Path(data_dir) / "features" == cache.parent else f" --out {cache.parent}"
    return f"`memevae features cub --data-dir {data_dir} --features {backbone}{out}`"


def _weights_match(recorded: object, wanted: object) -> bool:
    """Recorded weights equal the wanted ones; an official file not yet downloaded (sha256 None)
    matches any record of that file with torchvision's hash prefix."""
    if isinstance(wanted, dict) and wanted.get("sha256") is None:
        return _official_record_matches(recorded)
    if isinstance(wanted, dict) and isinstance(recorded, dict):
        return recorded.get("sha256") == wanted.get("sha256")
    return recorded == wanted


def _difference(recorded: dict, wanted: dict) -> str | None:
    """The first setting in which a recorded cache differs from the wanted one, or None."""
    for key in ("format", "version", "backbone", "backbone_version", "dim", "count", "paths_sha256"):
        if recorded.get(key) != wanted.get(key):
            return f"{key} {recorded.get(key)!r} here, {wanted.get(key)!r} wanted"
    if not _weights_match(recorded.get("weights"), wanted.get("weights")):
        return f"weights {_weights_label(recorded.get('weights'))} here, {_weights_label(wanted.get('weights'))} wanted"
    return None


def _weights_label(record: object) -> str:
    if isinstance(record, dict):
        sha = record.get("sha256")
        return f"{record.get('file')} (sha256 {sha[:12]}...)" if sha else str(record.get("file"))
    return "none (a fixed descriptor)" if record is None else str(record)


def _read_json(path: Path) -> dict | None:
    """A JSON object from ``path``, None when absent or unreadable (an unreadable sidecar is treated as
    missing: the checksum and settings checks then decide)."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _settings(backbone: Backbone, image_paths: Sequence[str], weights_record: object) -> dict:
    return {"format": FORMAT, "version": VERSION, "backbone": backbone.name, "backbone_version": backbone.version,
            "describe": backbone.describe, "dim": backbone.dim, "count": len(image_paths),
            "paths_sha256": _paths_sha256(image_paths), "weights": weights_record,
            "untrained": weights_record == UNTRAINED}


def _check_inputs(image_paths: Sequence[str], backbone: str, batch_size: int) -> Backbone:
    if backbone not in BACKBONES:
        raise DataError(f"unknown feature backbone {backbone!r}; choose one of {', '.join(BACKBONES)}")
    if isinstance(image_paths, (str, bytes)) or not len(image_paths):
        raise DataError("no images to compute features for: pass a non-empty list of image paths")
    for path in image_paths:
        if not isinstance(path, str) or not path:
            raise DataError(f"image paths must be non-empty strings (got {path!r})")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise DataError(f"batch size must be a positive integer (got {batch_size!r})")
    return BACKBONES[backbone]


def _writable(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".memevae-write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise DataError(f"cannot write image features in {folder} ({error.strerror or error}); "
                        f"pass a writable folder with --out DIR") from None


def _load_images(root: Path, paths: Sequence[str]) -> list["Image"]:
    from PIL import Image as PILImage, UnidentifiedImageError

    images = []
    for relative in paths:
        path = root / relative
        try:
            with PILImage.open(path) as image:
                images.append(image.convert("RGB"))
        except (OSError, UnidentifiedImageError, ValueError) as error:
            reason = " ".join(str(error).split())[:120]
            raise DataError(f"{path}: cannot read the image ({reason}); re-extract the CUB images or fix the image list") from None
    return images


def _finished(cache: Path, wanted: dict) -> bool:
    """Whether ``cache`` holds exactly the wanted features (settings, paths and checksum)."""
    meta = _read_json(_sidecar(cache))
    if meta is None or not cache.is_file() or _difference(meta, wanted) is not None:
        return False
    return meta.get("npy_sha256") == sha256_file(cache)


def compute_features(root: str | os.PathLike, image_paths: list[str], backbone: str, cache: str | os.PathLike, *,
                     weights: str | os.PathLike | None = None, batch_size: int = DEFAULT_BATCH_SIZE,
                     progress: bool = True) -> Path:
    """Compute the ``backbone`` features of the images ``root / p`` for p in ``image_paths`` (in order)
    into the cache ``cache`` (``.npy`` + ``.json`` sidecar) and return its ``.npy`` path.

    ``weights`` (resnet101 only): a state-dict file, None for torchvision's official ImageNet file, or
    ``"untrained"`` (tests only; the cache is marked untrained). An existing cache with the same
    settings, paths and checksum is returned as is; an interrupted run resumes from its partial files
    (other settings there: DataError saying to delete them or use another cache path); an existing
    cache with other settings is never overwritten (DataError). Progress goes to stderr via tqdm.
    """
    from tqdm.auto import tqdm

    from ...io import atomic_write, write_json

    extractor = _check_inputs(image_paths, backbone, batch_size).bind(weights)
    image_paths = list(image_paths)
    root, cache = Path(root), _cache_path(cache)
    sidecar = _sidecar(cache)
    partial_npy, partial_json = _partial(cache)
    n, dim = len(image_paths), extractor.dim

    wanted = _settings(extractor, image_paths, extractor.weights_record())
    if _finished(cache, wanted):
        return cache
    _writable(cache.parent)
    state = _read_json(partial_json) if partial_npy.is_file() else None
    if state is not None:
        difference = _difference(state, wanted)
        if difference is not None:
            raise DataError(f"{partial_npy} is an interrupted computation with other settings ({difference}); delete "
                            f"{partial_npy.name} and {partial_json.name} or use another cache path (--out DIR)")
    elif cache.exists() or sidecar.exists():
        meta = _read_json(sidecar)
        reason = (_difference(meta, wanted) if meta is not None else None) or "its checksum or sidecar does not match"
        raise DataError(f"{cache} holds other features ({reason}); delete {cache.name} and {sidecar.name} to "
                        f"recompute, or use another cache path (--out DIR)")

    extractor.prepare()  # loads or downloads the weights: fails here, before any file is written
    wanted = _settings(extractor, image_paths, extractor.weights_record())
    if state is not None:
        try:
            rows = np.lib.format.open_memmap(partial_npy, mode="r+")
        except (OSError, ValueError):
            rows = None
        done = state.get("done")
        if (rows is None or rows.shape != (n, dim) or rows.dtype != np.float32 or not isinstance(done, int)
                or not 0 <= done <= n):
            raise DataError(f"{partial_npy} is damaged; delete {partial_npy.name} and {partial_json.name} and rerun")
    else:
        rows = np.lib.format.open_memmap(partial_npy, mode="w+", dtype=np.float32, shape=(n, dim))
        rows.flush()
        done = 0
        write_json(partial_json, {**wanted, "done": 0})

    with tqdm(total=n, initial=done, desc=f"{extractor.name} features", unit="img", file=sys.stderr,
              disable=not progress, dynamic_ncols=True) as bar:
        while done < n:
            stop = min(done + batch_size, n)
            features = np.asarray(extractor.compute(_load_images(root, image_paths[done:stop])), dtype=np.float32)
            if features.shape != (stop - done, dim):
                raise DataError(f"the {extractor.name} backbone returned shape {features.shape} for {stop - done} "
                                f"images, not ({stop - done}, {dim})")
            if not np.isfinite(features).all():
                bad = image_paths[done + int(np.flatnonzero(~np.isfinite(features).all(axis=1))[0])]
                raise DataError(f"{root / bad}: {extractor.name} gave non-finite features; check the weights file "
                                f"({_weights_label(wanted['weights'])})")
            rows[done:stop] = features
            rows.flush()
            done = stop
            write_json(partial_json, {**wanted, "done": done})
            bar.update(stop - bar.n)

    atomic_write(cache, lambda f: np.save(f, rows, allow_pickle=False))
    write_json(sidecar, {**wanted, "npy_sha256": sha256_file(cache), "image_paths": image_paths})
    partial_json.unlink(missing_ok=True)
    partial_npy.unlink(missing_ok=True)
    return cache


def load_features(cache: str | os.PathLike, image_paths: list[str], *, allow_untrained: bool = False,
                  data_dir: str | os.PathLike | None = None) -> torch.Tensor:
    """The cached features (n, dim) float32 of ``image_paths``, in their order, after checking the
    ``.npy`` against its recorded sha256 and the recorded paths against ``image_paths``; caches of an
    untrained network are refused unless ``allow_untrained`` (tests of the plumbing only), and so are
    features holding NaN or inf. Any problem is a one-line DataError naming the cache file and the fix:
    the ``memevae features`` command that (re)computes it for the data folder ``data_dir``."""
    cache = _cache_path(cache)
    meta = _read_json(_sidecar(cache))
    named = [name for name in BACKBONES if cache.stem.endswith(name)]
    backbone = (meta or {}).get("backbone", named[0] if named else DEFAULT_FEATURES)
    hint = _rerun_hint(cache, backbone, data_dir)
    if meta is None or not cache.is_file():
        missing = cache if not cache.is_file() else _sidecar(cache)
        stand_in = ("" if backbone != "resnet101" else
                    f", or, without the ImageNet weights, compute {_rerun_hint(cache, 'colour-hog', data_dir)} and train with "
                    f"--features colour-hog (not the paper's setting)")
        raise DataError(f"{missing}: no image feature cache there (missing or unreadable); compute it with {hint}{stand_in}")
    if meta.get("format") != FORMAT or meta.get("version") != VERSION:
        raise DataError(f"{cache}: not a memevae image feature cache of format {FORMAT} v{VERSION}; recompute it with {hint}")
    if meta.get("untrained") or meta.get("weights") == UNTRAINED:
        if not allow_untrained:
            raise DataError(f"{cache} holds features of an UNTRAINED network (a plumbing test), never a result; "
                            f"recompute with ImageNet weights: {hint} (optionally --weights {IMAGENET_V1_FILE})")
    digest = sha256_file(cache)
    if digest != meta.get("npy_sha256"):
        raise DataError(f"{cache}: sha256 {digest[:12]}... does not match its record "
                        f"{str(meta.get('npy_sha256'))[:12]}... (corrupt or altered); delete it and rerun {hint}")
    recorded = meta.get("image_paths")
    if recorded != list(image_paths):
        recorded = recorded if isinstance(recorded, list) else []
        first = next((i for i, (a, b) in enumerate(zip(recorded, image_paths)) if a != b),
                     min(len(recorded), len(image_paths)))
        detail = (f"{len(recorded)} images recorded, {len(image_paths)} asked" if len(recorded) != len(image_paths)
                  else f"image {first} is {recorded[first]!r} there, {image_paths[first]!r} asked")
        raise DataError(f"{cache} was computed for another image list ({detail}); rerun {hint}")
    array = np.load(cache, allow_pickle=False)
    if array.dtype != np.float32 or array.shape != (len(image_paths), meta.get("dim")):
        raise DataError(f"{cache}: holds {array.dtype} {array.shape}, not float32 ({len(image_paths)}, {meta.get('dim')}); "
                        f"delete it and rerun {hint}")
    finite = np.isfinite(array).all(axis=1)
    if not finite.all():
        row = int(np.flatnonzero(~finite)[0])
        raise DataError(f"{cache}: {int((~finite).sum())} rows hold NaN or inf, the first for {image_paths[row]}; "
                        f"delete it and rerun {hint}")
    return torch.from_numpy(array)


def cache_info(cache: str | os.PathLike) -> dict:
    """The sidecar of a cache (backbone, describe, weights, untrained...), for labelling results;
    DataError when absent."""
    cache = _cache_path(cache)
    meta = _read_json(_sidecar(cache))
    if meta is None:
        raise DataError(f"{_sidecar(cache)}: no image feature cache record there; compute it with "
                        f"{_rerun_hint(cache, DEFAULT_FEATURES)}")
    return {k: v for k, v in meta.items() if k != "image_paths"}


def nearest_images(query: torch.Tensor, bank: torch.Tensor, k: int = 1) -> torch.Tensor:
    """Indices (q, k) of the ``k`` rows of ``bank`` (n, dim) nearest to each row of ``query`` (q, dim)
    in Euclidean distance, nearest first: a generated feature vector is shown as the real image of
    its nearest training features, as MMVAE's ``NN_lookup`` does (it takes the argmin of Euclidean
    distances; a commented-out cosine variant is unused).

    >>> bank = torch.tensor([[0.0, 0.0], [1.0, 0.0], [5.0, 5.0]])
    >>> nearest_images(torch.tensor([[0.9, 0.1], [4.0, 4.0]]), bank, k=2).tolist()
    [[1, 0], [2, 1]]
    """
    if query.dim() != 2 or bank.dim() != 2 or query.shape[1] != bank.shape[1]:
        raise ValueError(f"query (q, dim) and bank (n, dim) must share dim; got {tuple(query.shape)} and {tuple(bank.shape)}")
    if not 1 <= k <= bank.shape[0]:
        raise ValueError(f"k must be in 1..{bank.shape[0]} (the bank size); got {k}")
    bank = bank.to(query.device, torch.float32)
    out = []
    for start in range(0, query.shape[0], 256):  # bounds the distance matrix at 256 x n
        distances = torch.cdist(query[start:start + 256].float(), bank)
        out.append(distances.topk(k, dim=1, largest=False).indices)
    return torch.cat(out) if out else torch.empty(0, k, dtype=torch.long)


# ---------------------------------------------------------------------------------------------
# command line: `memevae features cub ...`

def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Options of ``memevae features <data set>``: ``--data-dir D`` (required), ``--features`` (the
    backbone, as ``memevae train --features`` names it: resnet101, the paper's, or colour-hog; also
    ``--backbone``, its name in memevae 0.x), ``--weights FILE`` (resnet101: torchvision's
    resnet101-63fe2227.pth; default: download it), ``--out DIR`` (default ``D/features``; the file is
    ``<data set>-<features>.npy``), ``--batch-size N`` (images per chunk, default 32), ``--no-progress``."""
    parser.add_argument("--data-dir", type=Path, required=True, help="the data folder (image paths are relative to it)")
    parser.add_argument("--features", "--backbone", dest="backbone", choices=list(BACKBONES), default=DEFAULT_FEATURES,
                        help=f"the backbone, as 'memevae train --features' names it: {DEFAULT_FEATURES}, ImageNet "
                             f"ResNet-101 pooled features, the paper's setting (default); colour-hog: a weight-free "
                             f"HOG + HSV-histogram stand-in, not the paper's setting (--backbone: the same)")
    parser.add_argument("--weights", type=Path, default=None,
                        help=f"{DEFAULT_FEATURES} weights: a torch state dict file such as torchvision's {IMAGENET_V1_FILE} "
                             f"(default: download it into the torch hub cache)")
    parser.add_argument("--out", type=Path, default=None, help="cache folder (default DATA_DIR/features)")
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE,
                        help=f"images per chunk, the unit of progress and resumption (default {DEFAULT_BATCH_SIZE})")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    return parser


def main(args: argparse.Namespace, list_images: Callable[[Path], Sequence[str]],
         cache_path: Callable[[Path, str, Path | None], Path]) -> int:
    """Run ``memevae features <dataset>``: compute (or find) the cache ``cache_path(data_dir, backbone,
    out)`` for the images that ``list_images(data_dir)`` names (relative paths under the data folder,
    from the data set's reader), print one line, return 0. Problems raise DataError (the memevae CLI
    prints it as one line, exit 1)."""
    data_dir: Path = args.data_dir
    if not data_dir.is_dir():
        raise DataError(f"{data_dir}: no such data folder; pass the CUB folder with --data-dir")
    cache = cache_path(data_dir, args.backbone, args.out)
    out_dir = cache.parent
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        writable = os.access(out_dir, os.W_OK)
    except OSError:
        writable = False
    if not writable:
        raise DataError(f"cannot write image features in {out_dir} (read-only data folder?); pass --out DIR")
    image_paths = list(list_images(data_dir))
    cache = compute_features(data_dir, image_paths, args.backbone, cache,
                             weights=args.weights, batch_size=args.batch_size, progress=getattr(args, "progress", True))
    info = cache_info(cache)
    label = " [UNTRAINED: not a result]" if info.get("untrained") else ""
    note = "" if args.backbone == DEFAULT_FEATURES else " (not the paper's ResNet-101 features)"
    print(f"{cache}: {info['count']} x {info['dim']} {args.backbone} features{note}, weights "
          f"{_weights_label(info.get('weights'))}{label}")
    return 0
