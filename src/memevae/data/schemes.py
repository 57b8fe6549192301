"""Partial-observation schemes (paper Sec. 4.1 and App. J.2; docs/data.md)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from .dataset import MultimodalDataset
from .errors import DataError


def unpaired_choices(modalities: Sequence[str]) -> str:
    """The ``unpaired`` schemes of data with ``modalities``, for messages.

    >>> unpaired_choices(("m0", "m1", "m2"))
    "m0, m1, m2, split, random, or modalities joined by '+' (a proper subset, e.g. 'm0+m1')"
    """
    return f"{', '.join((*modalities, 'split'))}, {_more_choices(modalities)}"


def _more_choices(modalities: Sequence[str]) -> str:
    """The schemes beyond one modality and "split" (a proper subset of two modalities is one of them)."""
    if len(modalities) < 3:
        return "random"
    return f"random, or modalities joined by '+' (a proper subset, e.g. '{modalities[0]}+{modalities[1]}')"


def kept_subset(unpaired: str, modalities: Sequence[str]) -> tuple[str, ...] | None:
    """What every unpaired row keeps under scheme ``unpaired``: a modality name or a "+"-joined
    proper subset gives its modalities (in data order); "split" and "random" give None (rows keep
    different modalities). Anything else is a one-line DataError naming the choices.

    >>> kept_subset("m2+m0", ("m0", "m1", "m2")), kept_subset("random", ("m0", "m1"))
    (('m0', 'm2'), None)
    """
    if unpaired in ("split", "random"):
        return None
    names = unpaired.split("+") if isinstance(unpaired, str) else []
    known = bool(names) and set(names) <= set(modalities) and len(set(names)) == len(names)
    if known and len(names) < len(modalities):
        return tuple(m for m in modalities if m in names)
    if known and len(names) > 1:
        raise DataError(f"unpaired={unpaired!r} keeps every modality, so the unpaired rows would be paired; "
                        f"choose from {unpaired_choices(modalities)}")
    raise DataError(f"unknown unpaired choice {unpaired!r}; choose from {unpaired_choices(modalities)}")


def apply_scheme(
    dataset: MultimodalDataset,
    paired_fraction: float = 1.0,
    unpaired: str | None = None,
    paired_only: bool = False,
    seed: int = 0,
) -> MultimodalDataset:
    """Keep a fraction of the pairs and turn the rest into partially observed rows.

    Rows are drawn in groups: the rows that share their first modality's example (with one-to-one
    pairs each row alone; on CUB an image with its ten captions). A seeded random subset of
    ``round(f * G)`` of the G groups (half rounded up) stays paired. The rest:
    ``unpaired=<modality>`` keeps only that modality; ``unpaired="split"`` divides their groups into
    one near-equal part per modality (in modality order, earlier parts take the extra groups), part
    k keeping only modality k, so no unpaired examples are ever seen together;
    ``unpaired="random"`` gives each unpaired group a random non-empty proper subset of the
    modalities (uniform over the 2^M - 2 of them, drawn from the same seeded stream after the
    groups), so no unpaired row is complete; ``unpaired="m0+m2"`` (a proper subset joined by "+")
    keeps that subset; ``paired_only=True`` drops them (ablation J.2).

    Leak rule: an unpaired row is dropped when one of its kept bank examples occurs in any paired
    row, and unpaired rows keeping the same examples are collapsed to one. With one-to-one pairs
    (the default of :func:`load_pairs`) every example occurs in one row, so nothing is dropped and
    the counts are exact; with ``pairs_per_image`` > 1 nearly every example also sits in some
    paired row, so little unpaired data survives when f < 1.

    >>> from memevae.data import load_pairs
    >>> apply_scheme(load_pairs("mnist-textured", "train"), 0.25, "split", seed=1).summary()
    {'rows': 3000, 'paired': 750, 'mnist only': 1125, 'textured only': 1125}
    >>> three = load_pairs("polymnist-textured", "test", modalities=3)
    >>> apply_scheme(three, 0.5, "m0+m2", seed=1).summary()
    {'rows': 330, 'paired': 165, 'm0 only': 0, 'm1 only': 0, 'm2 only': 0, 'm0 + m2': 165}
    """
    modalities = dataset.modalities
    if not 0 < paired_fraction <= 1:
        raise DataError(f"paired_fraction must be in (0, 1], got {paired_fraction}")
    choices = (*modalities, "split")
    kept_by_all = kept_subset(unpaired, modalities) if unpaired is not None else None
    if unpaired is not None and paired_only:
        raise DataError("give either unpaired=... or paired_only=True, not both")
    partial = int((~dataset.mask().all(1)).sum())
    if partial:
        raise DataError(f"apply_scheme needs a fully paired dataset; {dataset.name} has {partial} partial rows")
    if paired_fraction == 1:
        return dataset
    if unpaired is None and not paired_only:
        raise DataError(
            f"paired_fraction={paired_fraction} < 1 needs unpaired= one of {', '.join(choices)}, or paired_only=True; "
            f"unpaired= may also be {_more_choices(modalities)}"
        )

    n = len(dataset)
    # Rows sharing their first modality's example (a CUB image with its ten captions) form a group
    # and stay on one side; groups are numbered by their first row, so with one-to-one pairs group
    # k is row k and the draw is the row permutation itself.
    _, first_row, group_of_row = np.unique(dataset.index[modalities[0]].numpy(), return_index=True, return_inverse=True)
    group = np.argsort(np.argsort(first_row))[group_of_row.ravel()]
    n_groups = len(first_row)
    position = np.empty(n_groups, np.int64)
    rng = np.random.default_rng(seed)
    position[rng.permutation(n_groups)] = np.arange(n_groups)
    row_position = position[group]
    order = np.lexsort((np.arange(n), row_position))  # rows by their group's place in the draw
    n_paired_groups = int(np.floor(paired_fraction * n_groups + 0.5))
    n_paired = int((row_position < n_paired_groups).sum())
    rest = order[n_paired:]
    if paired_only:
        return dataset.subset(torch.from_numpy(np.sort(order[:n_paired])))

    if unpaired == "split":
        group_parts = np.array_split(np.arange(n_paired_groups, n_groups), len(modalities))
        parts = [((m,), order[np.searchsorted(row_position[order], g[0]):np.searchsorted(row_position[order], g[-1], "right")]
                  if len(g) else order[:0]) for m, g in zip(modalities, group_parts)]
    elif unpaired == "random":
        if len(modalities) < 2:
            raise DataError(f"unpaired='random' needs two or more modalities; {dataset.name} has {', '.join(modalities)}")
        # one code per unpaired group: bit j set = modality j kept; 0 (nothing) and all bits (complete) never drawn
        codes = rng.integers(1, 2 ** len(modalities) - 1, size=n_groups - n_paired_groups)[row_position[rest] - n_paired_groups]
        parts = [(tuple(m for j, m in enumerate(modalities) if code >> j & 1), rest[codes == code]) for code in np.unique(codes)]
    else:
        parts = [(kept_by_all, rest)]
    index = {m: dataset.index[m].numpy().copy() for m in modalities}
    paired_rows = order[:n_paired]
    keep = np.ones(n, bool)
    for kept, part in parts:
        for other in modalities:
            if other not in kept:
                index[other][part] = -1
        examples = np.stack([index[m][part] for m in kept], 1)
        in_pair = np.zeros(len(part), bool)
        for m in kept:
            in_pair |= np.isin(index[m][part], dataset.index[m].numpy()[paired_rows])
        first = np.zeros(len(part), bool)
        first[np.unique(examples, axis=0, return_index=True)[1]] = True
        keep[part[in_pair | ~first]] = False
    rows = np.flatnonzero(keep)
    return dataset.with_rows({m: torch.from_numpy(index[m][rows]) for m in modalities}, dataset.labels[torch.from_numpy(rows)])
