"""Textured digits, the offline stand-in for SVHN (SPEC section 5).

An MNIST digit is upscaled to 32x32 and composited onto a random 32x32 crop of a real photograph
shipped with scikit-image; the stroke pixels are colour-inverted against the crop as in MNIST-M
(Ganin et al. 2016) and PolyMNIST (Sutter et al. 2021): ``out = |crop - digit|`` per channel, so
background pixels keep the photo and full-intensity strokes become ``255 - crop``.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np
import skimage.data

from .errors import DataError

PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry", "retina")
SIZE = 32
_CHUNK = 4096  # images per vectorised step: bounds memory to a few tens of MB


@lru_cache(maxsize=None)
def photo(name: str) -> np.ndarray:
    """A photograph bundled in scikit-image's wheel (no download), uint8 (H, W, 3)."""
    if name not in PHOTOS:
        raise DataError(f"unknown photo {name!r}; choose from {', '.join(PHOTOS)}")
    image = getattr(skimage.data, name)()
    image.setflags(write=False)
    return image


@lru_cache(maxsize=None)
def _resize_matrix(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) bilinear interpolation weights, pixel centres aligned, edges clamped."""
    src = np.clip((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0, n_in - 1)
    lo = np.floor(src).astype(int)
    hi = np.minimum(lo + 1, n_in - 1)
    weights = np.zeros((n_out, n_in), np.float32)
    np.add.at(weights, (np.arange(n_out), lo), 1 - (src - lo))
    np.add.at(weights, (np.arange(n_out), hi), src - lo)
    return weights


def upscale(images: np.ndarray, size: int = SIZE) -> np.ndarray:
    """Bilinear upscale of uint8 (N, h, w) grey images to uint8 (N, size, size)."""
    rows = _resize_matrix(images.shape[1], size)
    cols = _resize_matrix(images.shape[2], size)
    out = rows @ images.astype(np.float32) @ cols.T
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def render_textured(
    images: np.ndarray,
    rng_or_seed: np.random.Generator | int,
    photos: Sequence[str | np.ndarray] = PHOTOS,
) -> np.ndarray:
    """Render uint8 (N,28,28) MNIST digits as textured digits, uint8 (N,3,32,32).

    Each image gets a photo drawn uniformly from ``photos`` (names from :data:`PHOTOS`, or RGB
    uint8 arrays of at least 32x32) and a uniformly random 32x32 crop of it. Deterministic given
    the seed. For PolyMNIST-style modalities pass one photo per modality.

    >>> render_textured(np.zeros((5, 28, 28), np.uint8), 0, photos=["chelsea"]).shape
    (5, 3, 32, 32)
    """
    if images.dtype != np.uint8 or images.ndim != 3:
        raise DataError(f"render_textured needs uint8 (N, 28, 28) images, got {images.dtype} {images.shape}")
    backgrounds = [photo(p) if isinstance(p, str) else np.asarray(p) for p in photos]
    for b in backgrounds:
        if b.dtype != np.uint8 or b.ndim != 3 or b.shape[2] != 3 or min(b.shape[:2]) < SIZE:
            raise DataError(f"a photo must be uint8 (H>={SIZE}, W>={SIZE}, 3), got {b.dtype} {b.shape}")
    if not backgrounds:
        raise DataError("render_textured needs at least one photo")
    rng = np.random.default_rng(rng_or_seed)
    n = len(images)
    choice = rng.integers(len(backgrounds), size=n)
    corner = rng.random((n, 2))  # crop corner as a fraction of the free range of the chosen photo
    out = np.empty((n, 3, SIZE, SIZE), np.uint8)
    offsets = np.arange(SIZE)
    for start in range(0, n, _CHUNK):
        part = slice(start, min(start + _CHUNK, n))
        crops = np.empty((part.stop - start, SIZE, SIZE, 3), np.uint8)
        for k, background in enumerate(backgrounds):
            rows = np.flatnonzero(choice[part] == k)
            free = np.array(background.shape[:2]) - SIZE + 1
            y0, x0 = (corner[part][rows] * free).astype(int).T
            crops[rows] = background[
                y0[:, None, None] + offsets[None, :, None], x0[:, None, None] + offsets[None, None, :]
            ]
        digits = upscale(images[part]).astype(np.int16)[..., None]
        out[part] = np.abs(crops.astype(np.int16) - digits).astype(np.uint8).transpose(0, 3, 1, 2)
    return out
