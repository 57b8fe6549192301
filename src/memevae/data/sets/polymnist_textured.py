"""PolyMNIST-Textured, memevae's offline PolyMNIST-style stand-in (docs/data.md): modality m<k> is
MNIST digits drawn over photograph k (:mod:`memevae.data.textured`), every modality rendered from
its own disjoint part of the split's MNIST images, tuples grouped by class; an optional plain
``mnist`` modality takes one more part. The ``modalities`` option chooses them ("3": m0 .. m2;
"mnist,m0,m1").

>>> from memevae.data import load_pairs
>>> test = load_pairs("polymnist-textured", "test", modalities="mnist,m0,m1")
>>> test.modalities, test.shape("mnist"), test.shape("m0"), test.summary()["paired"]
(('mnist', 'm0', 'm1'), (1, 28, 28), (3, 32, 32), 330)
"""

from __future__ import annotations

from ..pairs import match_sets_by_class, paired_dataset, read_digits, split_parts, stream
from ..registry import DataSet, ModalityChoice, ModalitySpec
from ..textured import PHOTOS, render_textured

PHOTO_OF = {f"m{k}": PHOTOS[k] for k in range(5)}
"""The photograph each textured modality draws its digits over (m0: astronaut, m1: chelsea, ...)."""


def load(split, data_dir, *, pairs_per_image, seed, download, verify, rendering, modalities=None):
    """The split (from ``data_dir``, or the shipped sample when None) divided by seed into one
    disjoint class-balanced part per chosen modality; modality k's examples come from part k (m<j>
    rendered over its photograph, ``mnist`` plain) and match the other parts' by class
    (:func:`~memevae.data.pairs.match_sets_by_class`), so no MNIST image appears in two modalities."""
    names = DATASET.chosen(modalities)
    digits, classes = read_digits(split, data_dir, verify=verify, download=download)
    parts = split_parts(classes, len(names), stream(seed, "halves"))
    rows = match_sets_by_class([classes[part] for part in parts], stream(seed, "pairs"), pairs_per_image)
    examples = {}
    for name, part, row in zip(names, parts, rows):
        if name in PHOTO_OF:  # its own rendering stream, the same whichever modalities are chosen
            where = list(DATASET.modalities).index(name)
            images = render_textured(digits[part], stream(seed, "render", where), photos=[PHOTO_OF[name]], rendering=rendering)
        else:
            images = digits[part][:, None]
        examples[name] = (images, row)
    return paired_dataset(DATASET, examples, classes[parts[0][rows[0]]])


DATASET = DataSet(
    name="polymnist-textured",
    label="PolyMNIST-Textured",
    modalities={"mnist": ModalitySpec("image", (1, 28, 28), "mnist-mlp"),
                # textured digits, as mnist-textured's, use the SVHN networks
                **{name: ModalitySpec("image", (3, 32, 32), "svhn-conv") for name in PHOTO_OF}},
    load=load,
    rendered=True,
    options=ModalityChoice,
    numbered=tuple(PHOTO_OF),
)
