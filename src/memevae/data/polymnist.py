"""PolyMNIST (Sutter et al. 2021), read from the files MoPoE (github.com/thomassutter/MoPoE)
distributes: ``train/m0`` .. ``train/m4`` and ``test/m0`` .. ``test/m4`` (also under ``MMNIST/``,
the folder its archive unpacks to), each holding 28x28 RGB PNGs named ``<index>.<label>.png``.
MoPoE's generator numbers the images of each digit class from 0 in every modality folder, so a
tuple is the files of one name ``<index>.<label>.png`` in every modality folder: one digit class,
a different MNIST image over each modality's own background photograph. The ``modalities`` option
chooses among m0 .. m4 ("3": m0 .. m2; "m0,m3").

>>> import shutil, tempfile
>>> from PIL import Image
>>> from memevae.data import load_pairs
>>> root = Path(tempfile.mkdtemp())
>>> for m in ("m0", "m1"):
...     (root / "test" / m).mkdir(parents=True)
...     for name in ("0.7.png", "0.3.png", "1.7.png"):
...         Image.new("RGB", (28, 28), (9, 9, 9)).save(root / "test" / m / name)
>>> test = load_pairs("polymnist", "test", root, modalities="m0,m1")
>>> test.summary(), test.labels.tolist(), test.shape("m1")
({'rows': 3, 'paired': 3, 'm0 only': 0, 'm1 only': 0}, [3, 7, 7], (3, 28, 28))
>>> shutil.rmtree(root)
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from .errors import DataError
from .pairs import paired_dataset
from .registry import DataSet, ModalitySpec

NAMES = tuple(f"m{k}" for k in range(5))
SIZE = 28
_FILE = re.compile(r"(\d+)\.(\d)\.png")
_LAYOUT = "train/m0 .. m4 and test/m0 .. m4 of <index>.<label>.png files, as MoPoE's PolyMNIST archive holds them"


def load(split, data_dir, *, pairs_per_image, seed, download, verify, rendering, modalities=None):
    """The tuples of ``split`` in the PolyMNIST folder ``data_dir``, ordered by (index, label);
    ``seed``, ``verify`` and ``rendering`` do not apply (the files fix the tuples)."""
    if data_dir is None:
        raise DataError(f"polymnist needs --data-dir DIR, the folder holding {_LAYOUT}; offline, use "
                        f"'polymnist-textured'")
    if download:
        raise DataError("memevae cannot download PolyMNIST: fetch it as MoPoE's README says (github.com/thomassutter/"
                        "MoPoE), unzip it and pass --data-dir")
    if pairs_per_image != 1:
        raise DataError("polymnist's files give its tuples; --pairs-per-image does not apply")
    images, labels = read_polymnist(data_dir, split, DATASET.chosen(modalities))
    rows = np.arange(len(labels))
    return paired_dataset(DATASET, {name: (bank, rows) for name, bank in images.items()}, labels)


def read_polymnist(data_dir, split: str, modalities=NAMES) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """{modality: uint8 (n, 3, 28, 28)} and int64 labels (n,) of ``split``, row i of every modality
    from the files of one name; a missing folder or file, a folder whose names differ from the
    first modality's, or an unreadable or misshapen image is a one-line DataError naming it."""
    root = Path(data_dir)
    if not (root / split).is_dir() and (root / "MMNIST" / split).is_dir():
        root = root / "MMNIST"
    names = {m: _file_names(root / split / m) for m in modalities}
    first = modalities[0]
    for m in modalities[1:]:
        missing, extra = sorted(names[first] - names[m]), sorted(names[m] - names[first])
        if missing or extra:
            odd = f"{root / split / m / missing[0]} is missing" if missing else \
                f"{root / split / m / extra[0]} has no counterpart in {split}/{first}"
            raise DataError(f"{odd} ({len(missing)} missing, {len(extra)} extra in {split}/{m}): every modality folder of "
                            f"PolyMNIST holds the same <index>.<label>.png names; unzip the files again")
    ordered = sorted(names[first], key=lambda name: tuple(map(int, _FILE.fullmatch(name).groups())))
    labels = np.array([int(_FILE.fullmatch(name).group(2)) for name in ordered], np.int64)
    return {m: _read_images(root / split / m, ordered) for m in modalities}, labels


def _file_names(folder: Path) -> set[str]:
    """The PNG names of a modality folder; each must be ``<index>.<label>.png``."""
    if not folder.is_dir():
        raise DataError(f"{folder}: no such folder; --data-dir must hold {_LAYOUT}")
    names = {path.name for path in folder.iterdir() if path.suffix.lower() == ".png"}
    odd = sorted(name for name in names if not _FILE.fullmatch(name))
    if odd:
        raise DataError(f"{folder / odd[0]}: not named <index>.<label>.png as PolyMNIST's images are; remove it")
    if not names:
        raise DataError(f"{folder}: no <index>.<label>.png images; --data-dir must hold {_LAYOUT}")
    return names


def _read_images(folder: Path, names: list[str]) -> np.ndarray:
    """uint8 (n, 3, 28, 28) of the 28x28 RGB PNGs ``names`` in ``folder``."""
    from PIL import Image, UnidentifiedImageError

    out = np.empty((len(names), 3, SIZE, SIZE), np.uint8)
    for i, name in enumerate(names):
        path = folder / name
        try:
            with Image.open(path) as image:
                image.load()
                mode, size = image.mode, image.size
                pixels = np.asarray(image) if (mode, size) == ("RGB", (SIZE, SIZE)) else None
        except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as error:  # SyntaxError: PIL's broken chunk
            raise DataError(f"{path}: cannot read it as a PNG ({error}); unzip PolyMNIST's files again") from None
        if pixels is None:
            raise DataError(f"{path}: a {mode} image of {size[0]}x{size[1]} pixels, but PolyMNIST's are {SIZE}x{SIZE} RGB; "
                            f"unzip PolyMNIST's files again")
        out[i] = pixels.transpose(2, 0, 1)
    return out


DATASET = DataSet(
    name="polymnist",
    label="PolyMNIST",
    # no convolutional kind takes 28x28 inputs yet: the MLPs of mnist-mlp, widened to three channels
    modalities={name: ModalitySpec("image", (3, SIZE, SIZE), "polymnist-mlp") for name in NAMES},
    load=load,
    options=("modalities",),
    numbered=NAMES,
)
