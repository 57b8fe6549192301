"""PolyMNIST (Sutter et al. 2021), read from the files MoPoE (github.com/thomassutter/MoPoE)
distributes: ``train/m0`` .. ``train/m4`` and ``test/m0`` .. ``test/m4`` (also under ``MMNIST/``,
the folder its archive unpacks to), each holding 28x28 RGB PNGs named ``<index>.<label>.png``.
MoPoE's generator numbers the images of each digit class from 0 in every modality folder, so a
tuple is the files of one name ``<index>.<label>.png`` in every modality folder: one digit class,
a different MNIST image over each modality's own background photograph. The ``modalities`` option
chooses among m0 .. m4 ("3": m0 .. m2; "m0,m3").

>>> import shutil, tempfile
>>> from pathlib import Path
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

import numpy as np

from ..errors import DataError
from ..files.polymnist import LAYOUT, NAMES, SIZE, read_polymnist
from ..pairs import paired_dataset
from ..registry import DataSet, ModalityChoice, ModalitySpec


def load(split, data_dir, *, pairs_per_image, seed, download, verify, rendering, modalities=None):
    """The tuples of ``split`` in the PolyMNIST folder ``data_dir``, ordered by (index, label);
    ``seed``, ``verify`` and ``rendering`` do not apply (the files fix the tuples)."""
    if data_dir is None:
        raise DataError(f"polymnist needs --data-dir DIR, the folder holding {LAYOUT}; offline, use "
                        f"'polymnist-textured'")
    if download:
        raise DataError("memevae cannot download PolyMNIST: fetch it as MoPoE's README says (github.com/thomassutter/"
                        "MoPoE), unzip it and pass --data-dir")
    if pairs_per_image != 1:
        raise DataError("polymnist's files give its tuples; --pairs-per-image does not apply")
    images, labels = read_polymnist(data_dir, split, DATASET.chosen(modalities))
    rows = np.arange(len(labels))
    return paired_dataset(DATASET, {name: (bank, rows) for name, bank in images.items()}, labels)


DATASET = DataSet(
    name="polymnist",
    label="PolyMNIST",
    # no convolutional kind takes 28x28 inputs yet: the MLPs of mnist-mlp, widened to three channels
    modalities={name: ModalitySpec("image", (3, SIZE, SIZE), "polymnist-mlp") for name in NAMES},
    load=load,
    options=ModalityChoice,
    numbered=NAMES,
)
