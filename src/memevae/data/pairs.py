"""Paired data sets as MultimodalDatasets: :func:`load_pairs` and what the data set modules share
(pairing by class, seeded streams, variant names). The data sets themselves are modules of their
own: :mod:`memevae.data.sets.mnist_svhn` (paper Sec. 4), :mod:`memevae.data.sets.mnist_textured` (its offline
stand-in); see :mod:`memevae.data.registry`."""

from __future__ import annotations

import functools
import numbers
import os
from collections.abc import Sequence

import numpy as np
import torch

from . import registry
from .dataset import MultimodalDataset
from .errors import DataError
from .files.mnist import read_mnist, read_mnist_sample
from .textured import DEFAULT_RENDERING, check_rendering

LEGACY_RENDERING = "inverted"
"""The rendering of runs that recorded none (early memevae 0.1.0 had only this one)."""
_STREAMS = {"halves": 1, "render": 2, "pairs": 3}


def stream(seed: int, purpose: str, part: int | None = None) -> np.random.Generator:
    """The random stream of one purpose ("halves", "render", "pairs"), independent of the others;
    ``part`` (>= 0) gives independent streams within a purpose, e.g. one rendering per modality.
    Part k is seeded with [seed, purpose, k + 1]: numpy's seeding ignores trailing zeros, so
    [seed, purpose, 0] would repeat the purpose's own stream."""
    return np.random.default_rng([seed, _STREAMS[purpose], *(() if part is None else (part + 1,))])


def data_variant(dataset: str, rendering: str = DEFAULT_RENDERING, **options) -> str:
    """The name results are filed under: the data set, with the textured rendering's name and
    version where it matters, so results of different renderings are never mixed.

    >>> data_variant("mnist-textured"), data_variant("mnist-svhn")
    ('mnist-textured/bright-v1', 'mnist-svhn')
    """
    known = registry.datasets().get(dataset)
    return known.variant(rendering, **options) if known else dataset


def judges_variant(dataset: str, rendering: str = DEFAULT_RENDERING, **options) -> str:
    """The name judges are filed under: :func:`data_variant` without a choice of modalities
    (:meth:`~memevae.data.registry.DataSet.judges_variant`).

    >>> judges_variant("polymnist-textured"), data_variant("polymnist-textured", modalities="3")
    ('polymnist-textured/bright-v1', 'polymnist-textured/bright-v1/m0-m1-m2')
    """
    known = registry.datasets().get(dataset)
    return known.judges_variant(rendering, **options) if known else dataset


def recorded_variant(config: dict) -> str:
    """The data variant a run's ``config.json`` records (derived for runs written before it was
    recorded: those used :data:`LEGACY_RENDERING`)."""
    data = config["data"]
    known = registry.datasets().get(data["dataset"])
    options = {name: data.get(name) for name in (known.option_names if known else ())}
    return config.get("data_variant") or data_variant(data["dataset"], data.get("rendering", LEGACY_RENDERING), **options)


def match_by_class(
    labels_a: np.ndarray, labels_b: np.ndarray, rng: np.random.Generator, pairs_per_image: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """Pair examples of two sets by class; return index arrays (into a, into b), rows shuffled.

    Per class, ``n = min(count_a, count_b)`` examples of each set are drawn at random and matched
    one-to-one (the MEME release protocol when ``pairs_per_image=1``). With ``pairs_per_image=N``
    the n examples of a are matched again with N-1 further random permutations of the same n
    examples of b, so every used example appears in exactly N rows: MMVAE's ``rand_match_on_idx``
    (Shi et al. 2019, dm=N), which may repeat a partner, hence "up to N" distinct partners.
    The two-set case of :func:`match_sets_by_class`.
    """
    return match_sets_by_class((labels_a, labels_b), rng, pairs_per_image)


def match_sets_by_class(
    labels: Sequence[np.ndarray], rng: np.random.Generator, pairs_per_image: int = 1
) -> tuple[np.ndarray, ...]:
    """Match examples of k >= 2 sets by class into tuples; return one index array per set, rows
    shuffled. Per class present in every set, ``n`` = the smallest count; n examples of each set
    are drawn at random and matched one-to-one. With ``pairs_per_image=N`` the n examples of the
    first set are matched again with N-1 further random permutations of the others' (drawn set by
    set), as :func:`match_by_class` does for two sets (with the same draws).

    >>> labels = [np.array([0, 1, 1]), np.array([1, 0]), np.array([1, 1, 0, 0])]
    >>> rows = match_sets_by_class(labels, np.random.default_rng(0))
    >>> [set_labels[found].tolist() for set_labels, found in zip(labels, rows)]  # a tuple per class
    [[1, 0], [1, 0], [1, 0]]
    """
    if len(labels) < 2:
        raise ValueError(f"match_sets_by_class needs at least two sets of labels, got {len(labels)}")
    out = [[] for _ in labels]
    for c in functools.reduce(np.intersect1d, labels):
        chosen = [rng.permutation(np.flatnonzero(set_labels == c)) for set_labels in labels]
        n = min(map(len, chosen))
        chosen = [rows[:n] for rows in chosen]
        for r in range(pairs_per_image):
            out[0].append(chosen[0])
            for rows, found in zip(chosen[1:], out[1:]):
                found.append(rows if r == 0 else rng.permutation(rows))
    if not out[0]:
        return tuple(np.zeros(0, np.int64) for _ in labels)
    order = rng.permutation(sum(map(len, out[0])))
    return tuple(np.concatenate(found)[order] for found in out)


def split_halves(labels: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Two disjoint class-balanced halves of a labelled set (sorted indices); an odd class gives
    its extra example to the second half. The two-part case of :func:`split_parts`."""
    return split_parts(labels, 2, rng)


def split_parts(labels: np.ndarray, count: int, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """``count`` disjoint class-balanced parts of a labelled set (sorted indices): each class's
    examples, in a random order, cut into ``count`` near-equal runs; the later parts take a class's
    extra examples.

    >>> parts = split_parts(np.repeat(np.arange(2), 7), 3, np.random.default_rng(0))
    >>> [len(part) for part in parts], sorted(np.concatenate(parts).tolist()) == list(range(14))
    ([4, 4, 6], True)
    """
    if count < 1:
        raise ValueError(f"split_parts needs count >= 1, got {count}")
    parts = [[] for _ in range(count)]
    for c in np.unique(labels):
        rows = rng.permutation(np.flatnonzero(labels == c))
        cuts = [k * len(rows) // count for k in range(count + 1)]
        for k, part in enumerate(parts):
            part.append(rows[cuts[k] : cuts[k + 1]])
    return tuple(np.sort(np.concatenate(part)) if part else np.zeros(0, np.int64) for part in parts)


def read_digits(split: str, data_dir, *, verify: bool, download: bool) -> tuple[np.ndarray, np.ndarray]:
    """MNIST digits (n, 28, 28) uint8 and labels of ``split``: from the official files in
    ``data_dir``, or the shipped sample when ``data_dir`` is None."""
    if data_dir is None and download:
        raise DataError("download=True needs a folder to download into: pass --data-dir DIR (data_dir=DIR)")
    if data_dir is None:
        return read_mnist_sample(split)
    return read_mnist(data_dir, split, verify=verify, download=download)


def paired_dataset(dataset: "registry.DataSet", parts: dict, labels: np.ndarray) -> MultimodalDataset:
    """The MultimodalDataset of ``dataset`` from ``parts`` {modality: (examples, row index)} (every
    modality of the data set, or those a ``modalities`` option chose), in the data set's modality
    order: banks hold exactly the examples some row uses."""
    unknown = sorted(set(parts) - set(dataset.modalities))
    if unknown:
        raise DataError(f"{dataset.name} has no modality {', '.join(unknown)}; its loader gave them")
    banks, index, formats = {}, {}, {}
    for name, spec in dataset.modalities.items():
        if name not in parts:
            continue
        examples, rows = parts[name]
        formats[name] = spec.format
        if tuple(examples.shape[1:]) != spec.shape:
            raise DataError(f"{dataset.name} declares {name} examples of shape {spec.shape}, its loader gave {tuple(examples.shape[1:])}")
        used, inverse = np.unique(rows, return_inverse=True)
        banks[name] = torch.from_numpy(np.ascontiguousarray(examples[used]))
        index[name] = torch.from_numpy(inverse.astype(np.int64))
    return MultimodalDataset(banks, index, torch.from_numpy(labels), dataset.name, formats)


def load_pairs(
    dataset: str,
    split: str,
    data_dir: str | os.PathLike | None = None,
    *,
    pairs_per_image: int = 1,
    seed: int = 0,
    download: bool = False,
    verify: bool = True,
    rendering: str = DEFAULT_RENDERING,
    **options,
) -> MultimodalDataset:
    """Load a paired data set: every row holds one example of each modality, of the same class.

    - ``"mnist-svhn"``: official MNIST idx and SVHN ``.mat`` files from ``data_dir``;
      modalities ("mnist", "svhn").
    - ``"mnist-textured"``: MNIST from ``data_dir`` (or, with ``data_dir=None``, the shipped
      sample); modalities ("mnist", "textured"). The split is divided by seed into two disjoint
      class-balanced halves: plain digits come from one, textured digits are rendered from the
      other, so a textured partner is always a different image of the same class. ``rendering``
      chooses how textured digits are drawn (:mod:`memevae.data.textured`).

    Pairs match by class (see :func:`match_by_class`; ``pairs_per_image`` > 1 is MMVAE's
    protocol), test pairs only from the test files. Everything is deterministic given ``seed``.
    ``download`` fetches missing official files into ``data_dir``; ``verify`` checks their md5s.
    - ``"cub"``: CUB-200-2011 images (as feature vectors) with their ten captions each (paper
      Sec. 4, App. G); ``options``: ``features`` and ``features_dir`` (:mod:`memevae.data.sets.cub`).
    - ``"polymnist-textured"`` (offline, :mod:`memevae.data.sets.polymnist_textured`) and ``"polymnist"``
      (MoPoE's files, :mod:`memevae.data.sets.polymnist`): tuples of up to five modalities; ``options``:
      ``modalities`` ("3", "mnist,m0,m1"; :meth:`~memevae.data.DataSet.chosen`).

    Banks hold exactly the examples some row uses. Each data set's ``DATASET.load`` does the
    loading (:mod:`memevae.data.registry`); this checks the arguments they share and passes
    ``options`` (a data set's own, the fields of its ``DataSet.options``) through.

    >>> train = load_pairs("mnist-textured", "train")  # the shipped sample, offline
    >>> train.summary()
    {'rows': 3000, 'paired': 3000, 'mnist only': 0, 'textured only': 0}
    """
    spec = registry.get(dataset)
    if split not in ("train", "test"):
        raise DataError(f"unknown split {split!r}; choose 'train' or 'test'")
    if not _is_int(pairs_per_image) or pairs_per_image < 1:
        raise DataError(f"pairs_per_image must be an integer >= 1, got {pairs_per_image!r}")
    if not _is_int(seed) or seed < 0:
        raise DataError(f"seed must be an integer >= 0, got {seed!r}")
    check_rendering(rendering)
    unknown = sorted(set(options) - set(spec.option_names))
    if unknown:
        raise DataError(f"{dataset} takes no option(s) {', '.join(unknown)}"
                        + (f"; its options are {', '.join(spec.option_names)}" if spec.options else ""))
    return spec.load(split, data_dir, pairs_per_image=pairs_per_image, seed=seed, download=download, verify=verify,
                     rendering=rendering, **options)


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)
