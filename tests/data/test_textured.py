import time

import numpy as np
import pytest

from memevae.data import DataError
from memevae.data.textured import MIN_STROKE_CHANNEL, PHOTOS, RENDERINGS, photo, render_textured, rendering_tag, stroke_colours, upscale

DIGITS = np.random.default_rng(0).integers(0, 256, (64, 28, 28), dtype=np.uint8)


def test_shape_dtype_and_determinism():
    out = render_textured(DIGITS, 3)
    assert out.shape == (64, 3, 32, 32) and out.dtype == np.uint8
    np.testing.assert_array_equal(out, render_textured(DIGITS, np.random.default_rng(3)))
    assert not np.array_equal(out, render_textured(DIGITS, 4))


def test_photos_ship_with_scikit_image():
    for name in PHOTOS:
        image = photo(name)
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3 and min(image.shape[:2]) >= 32


def test_inverted_strokes_invert_the_crop():
    grey = np.full((40, 50, 3), 100, np.uint8)
    blank, full = np.zeros((2, 28, 28), np.uint8), np.full((2, 28, 28), 255, np.uint8)
    assert (render_textured(blank, 0, photos=[grey], rendering="inverted") == 100).all()
    assert (render_textured(full, 0, photos=[grey], rendering="inverted") == 155).all()


def test_bright_strokes_over_a_darkened_crop():
    grey = np.full((40, 50, 3), 101, np.uint8)
    blank, full = np.zeros((50, 28, 28), np.uint8), np.full((50, 28, 28), 255, np.uint8)
    assert (render_textured(blank, 0, photos=[grey]) == 50).all()  # 101 * 0.5, rounded half to even
    strokes = render_textured(full, 0, photos=[grey])
    colours = strokes[:, :, 0, 0].astype(int)
    assert (strokes == colours[:, :, None, None]).all()  # one colour per image
    assert colours.min() >= round(255 * MIN_STROKE_CHANNEL) and colours.max() == 255
    assert len({tuple(c) for c in colours}) > 40  # uint8 colours: a rare repeat is possible
    half = np.full((50, 28, 28), 128, np.uint8)  # alpha 128/255 blends stroke colour and background
    blended = render_textured(half, 0, photos=[grey])[:, :, 0, 0].astype(float)
    np.testing.assert_allclose(blended, 50.5 + 128 / 255 * (colours - 50.5), atol=1.1)  # colours were rounded once


def test_stroke_colours_span_hues_and_stay_bright():
    colours = stroke_colours(10_000, np.random.default_rng(0))
    assert colours.min() >= MIN_STROKE_CHANNEL and colours.max() <= 1
    assert np.allclose(colours.max(1), 1)  # full value: the brightest channel is at full scale
    dominant = np.bincount(colours.argmin(1), minlength=3) / len(colours)  # the weakest channel varies evenly
    assert np.all(np.abs(dominant - 1 / 3) < 0.03)


def test_renderings_share_crops_and_are_named_with_versions():
    digits = DIGITS[:16]
    bright = render_textured(np.zeros_like(digits), 5, rendering="bright").astype(int)
    inverted = render_textured(np.zeros_like(digits), 5, rendering="inverted").astype(int)
    assert np.abs(bright - np.rint(inverted * 0.5)).max() <= 1
    assert rendering_tag("bright") == f"bright-v{RENDERINGS['bright']}"
    with pytest.raises(DataError, match="unknown textured rendering 'pale'"):
        render_textured(digits, 0, rendering="pale")


def test_background_is_a_crop_of_the_photo():
    ys, xs = np.mgrid[0:60, 0:70]
    coded = np.stack([ys, xs, (ys + xs) % 256], -1).astype(np.uint8)  # each pixel names its position
    out = render_textured(np.zeros((20, 28, 28), np.uint8), 1, photos=[coded], rendering="inverted").transpose(0, 2, 3, 1)
    for image in out:
        y0, x0 = image[0, 0, :2]
        np.testing.assert_array_equal(image, coded[y0 : y0 + 32, x0 : x0 + 32])
    assert len({tuple(image[0, 0, :2]) for image in out}) > 1


def test_one_photo_per_modality():
    cat = render_textured(np.zeros((30, 28, 28), np.uint8), 0, photos=["chelsea"], rendering="inverted").transpose(0, 2, 3, 1)
    chelsea = photo("chelsea")
    for image in cat[:5]:
        hits = np.argwhere((chelsea[:-31, :-31] == image[0, 0]).all(-1))
        assert any(np.array_equal(chelsea[y : y + 32, x : x + 32], image) for y, x in hits)


def test_upscale():
    assert upscale(np.full((3, 28, 28), 77, np.uint8)).tolist() == np.full((3, 32, 32), 77).tolist()
    assert upscale(DIGITS).shape == (64, 32, 32)


@pytest.mark.parametrize(
    "images, photos, message",
    [
        (DIGITS.astype(np.float32), PHOTOS, "uint8"),
        (DIGITS, ["lena"], "unknown photo 'lena'"),
        (DIGITS, [np.zeros((20, 40, 3), np.uint8)], "a photo must be uint8"),
        (DIGITS, [], "at least one photo"),
    ],
)
def test_bad_inputs(images, photos, message):
    with pytest.raises(DataError, match=message):
        render_textured(images, 0, photos=photos)


def test_rendering_is_vectorised_fast():
    digits = np.repeat(DIGITS, 160, axis=0)  # 10240 images
    start = time.perf_counter()
    render_textured(digits, 0)
    assert time.perf_counter() - start < 60  # about 0.4 s on 2 cores, 7.6 s on a loaded CI machine; a Python loop takes minutes
