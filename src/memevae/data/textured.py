"""Textured digits, the offline stand-in for SVHN (real SVHN cannot reach every machine).

An MNIST digit is upscaled to 32x32 and drawn onto a random 32x32 crop of a real photograph
shipped with scikit-image. Two renderings exist; each has a name and a version, and every run
records both (``DataConfig.rendering``), so results of different renderings are never mixed:

- ``"bright"`` (the default, :data:`DEFAULT_RENDERING`): the crop is darkened to half its
  brightness and the strokes are alpha-blended over it, by digit intensity, in one bright colour
  per image (a random hue mixed with white, every channel at least 0.6 of full scale). Clutter and
  colour still vary per image, but strokes are always brighter than the background, so the class
  survives averaging: the per-class median image of the test split still shows its digit.
- ``"inverted"`` (the hard variant, the only rendering of early memevae 0.1.0): strokes colour-inverted against
  the crop as in MNIST-M (Ganin et al. 2016) and PolyMNIST (Sutter et al. 2021),
  ``out = |crop - digit|``. Over very different photographs the inversions cancel on average: the
  class-median images show no digit, and a decoder that outputs the class-conditional median
  (what a code carrying the class but not the photograph gives) scores chance in
  MNIST->textured coherence whatever the model. Kept for comparison with earlier results.

The docs (``docs/data.md``) give the acceptance measurements of each rendering.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Literal

import numpy as np
import skimage.data

from .errors import DataError

PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry", "retina")
SIZE = 32
_CHUNK = 4096  # images per vectorised step: bounds memory to a few tens of MB

RENDERINGS = {"bright": 1, "inverted": 1}
"""Rendering name -> version. A version changes whenever a rendering's pixels change."""
DEFAULT_RENDERING = "bright"
Rendering = Literal[tuple(RENDERINGS)]
"""The name of a rendering, as an option's type."""
BACKGROUND_GAIN = 0.5
"""``bright``: the crop is darkened to this fraction of its brightness."""
MIN_STROKE_CHANNEL = 0.6
"""``bright``: the stroke colour is a random hue mixed with white so that every channel is at
least this fraction of full scale (above the darkened background's maximum, 0.5)."""


def rendering_tag(name: str) -> str:
    """``"bright-v1"``: the name and version that runs and reports record."""
    check_rendering(name)
    return f"{name}-v{RENDERINGS[name]}"


def check_rendering(name: str) -> str:
    if name not in RENDERINGS:
        raise DataError(f"unknown textured rendering {name!r}; choose one of {', '.join(RENDERINGS)}")
    return name


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


def stroke_colours(count: int, rng: np.random.Generator) -> np.ndarray:
    """``bright``'s stroke colours, float (count, 3) in [MIN_STROKE_CHANNEL, 1]: a uniformly random
    hue at full saturation, mixed with white so that its lowest channel is uniform in
    [MIN_STROKE_CHANNEL, 1] (from strongly coloured to white)."""
    hue = rng.random(count)[:, None]
    # a fully saturated colour of hue h: each channel is a triangle wave of h, in [0, 1]
    pure = np.clip(np.abs((hue * 6 + np.array([0.0, 4.0, 2.0])) % 6 - 3) - 1, 0, 1)
    floor = MIN_STROKE_CHANNEL + (1 - MIN_STROKE_CHANNEL) * rng.random(count)[:, None]
    return floor + (1 - floor) * pure


def _composite(crops: np.ndarray, digits: np.ndarray, rendering: str, colours: np.ndarray) -> np.ndarray:
    """uint8 (n, 32, 32, 3) crops and uint8 (n, 32, 32) digits -> uint8 (n, 32, 32, 3)."""
    if rendering == "inverted":
        return np.abs(crops.astype(np.int16) - digits[..., None].astype(np.int16)).astype(np.uint8)
    alpha = digits[..., None].astype(np.float32) / 255
    background = crops.astype(np.float32) * BACKGROUND_GAIN
    out = background + alpha * (255 * colours[:, None, None, :].astype(np.float32) - background)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def render_textured(
    images: np.ndarray,
    rng_or_seed: np.random.Generator | int,
    photos: Sequence[str | np.ndarray] = PHOTOS,
    rendering: str = DEFAULT_RENDERING,
) -> np.ndarray:
    """Render uint8 (N,28,28) MNIST digits as textured digits, uint8 (N,3,32,32).

    Each image gets a photo drawn uniformly from ``photos`` (names from :data:`PHOTOS`, or RGB
    uint8 arrays of at least 32x32), a uniformly random 32x32 crop of it and, for ``"bright"``,
    a stroke colour (:func:`stroke_colours`); see the module docstring for the renderings.
    Deterministic given the seed. For PolyMNIST-style modalities pass one photo per modality.

    >>> digits = np.zeros((5, 28, 28), np.uint8); digits[:, 10:18, 12:16] = 255
    >>> out = render_textured(digits, 0, photos=["chelsea"])
    >>> out.shape, bool((out[:, :, 16, 16] >= 153).all()), bool((out[:, :, 0, 0] <= 128).all())
    ((5, 3, 32, 32), True, True)
    """
    check_rendering(rendering)
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
    # drawn after the crops, so both renderings place the same digit on the same crop
    colours = stroke_colours(n, rng) if rendering == "bright" else np.zeros((n, 3))
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
        out[part] = _composite(crops, upscale(images[part]), rendering, colours[part]).transpose(0, 3, 1, 2)
    return out
