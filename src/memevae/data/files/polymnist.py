"""PolyMNIST's files as MoPoE (github.com/thomassutter/MoPoE) distributes them: ``train/m0`` ..
``train/m4`` and ``test/m0`` .. ``test/m4`` (also under ``MMNIST/``, the folder its archive unpacks
to), each holding 28x28 RGB PNGs named ``<index>.<label>.png``; the data set is
:mod:`memevae.data.sets.polymnist`."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ..errors import DataError

NAMES = tuple(f"m{k}" for k in range(5))
"""The modality folders of PolyMNIST."""
SIZE = 28
_FILE = re.compile(r"(\d+)\.(\d)\.png")
LAYOUT = "train/m0 .. m4 and test/m0 .. m4 of <index>.<label>.png files, as MoPoE's PolyMNIST archive holds them"
"""What a PolyMNIST folder holds, for messages."""


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
        raise DataError(f"{folder}: no such folder; --data-dir must hold {LAYOUT}")
    names = {path.name for path in folder.iterdir() if path.suffix.lower() == ".png"}
    odd = sorted(name for name in names if not _FILE.fullmatch(name))
    if odd:
        raise DataError(f"{folder / odd[0]}: not named <index>.<label>.png as PolyMNIST's images are; remove it")
    if not names:
        raise DataError(f"{folder}: no <index>.<label>.png images; --data-dir must hold {LAYOUT}")
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
