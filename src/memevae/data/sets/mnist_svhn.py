"""MNIST-SVHN (paper Sec. 4): official MNIST digits paired by class with SVHN house numbers."""

from __future__ import annotations

from ..errors import DataError
from ..pairs import match_by_class, paired_dataset, read_digits, stream
from ..registry import DataSet, ModalitySpec
from ..files.svhn import read_svhn


def load(split, data_dir, *, pairs_per_image, seed, download, verify, rendering):
    """Pairs of the official files in ``data_dir`` (both are needed); ``rendering`` is unused."""
    if data_dir is None:
        raise DataError(
            "mnist-svhn needs the real files train_32x32.mat / test_32x32.mat (SVHN) and MNIST: pass "
            "--data-dir DIR (load_pairs(..., data_dir=DIR)) naming their folder, with --download to "
            "fetch them; offline, use 'mnist-textured'"
        )
    digits, classes = read_digits(split, data_dir, verify=verify, download=download)
    images, labels = read_svhn(data_dir, split, verify=verify, download=download)
    idx_m, idx_s = match_by_class(classes, labels, stream(seed, "pairs"), pairs_per_image)
    return paired_dataset(DATASET, {"mnist": (digits[:, None], idx_m), "svhn": (images, idx_s)}, classes[idx_m])


DATASET = DataSet(
    name="mnist-svhn",
    label="MNIST-SVHN",
    modalities={"mnist": ModalitySpec("image", (1, 28, 28), "mnist-mlp"),
                "svhn": ModalitySpec("image", (3, 32, 32), "svhn-conv")},
    load=load,
)
