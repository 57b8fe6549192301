"""MNIST-Textured, the offline stand-in for MNIST-SVHN (docs/data.md): MNIST digits paired by
class with *other* MNIST digits of the same split drawn over photographs
(:mod:`memevae.data.textured`)."""

from __future__ import annotations

from ..pairs import match_by_class, paired_dataset, read_digits, split_halves, stream
from ..registry import DataSet, ModalitySpec
from ..textured import render_textured


def load(split, data_dir, *, pairs_per_image, seed, download, verify, rendering):
    """The split (from ``data_dir``, or the shipped sample when None) divided by seed into two
    disjoint class-balanced halves: plain digits from one, textured ones rendered from the other."""
    digits, classes = read_digits(split, data_dir, verify=verify, download=download)
    plain, textured = split_halves(classes, stream(seed, "halves"))
    images, labels = render_textured(digits[textured], stream(seed, "render"), rendering=rendering), classes[textured]
    idx_m, idx_t = match_by_class(classes[plain], labels, stream(seed, "pairs"), pairs_per_image)
    idx_m = plain[idx_m]
    return paired_dataset(DATASET, {"mnist": (digits[:, None], idx_m), "textured": (images, idx_t)}, classes[idx_m])


DATASET = DataSet(
    name="mnist-textured",
    label="MNIST-Textured",
    modalities={"mnist": ModalitySpec("image", (1, 28, 28), "mnist-mlp"),
                # the textured digits use the SVHN networks
                "textured": ModalitySpec("image", (3, 32, 32), "svhn-conv")},
    load=load,
    rendered=True,
)
