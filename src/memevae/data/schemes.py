"""Partial-observation schemes (paper Sec. 4.1 and App. J.2; docs/data.md)."""

from __future__ import annotations

import numpy as np
import torch

from .dataset import MultimodalDataset
from .errors import DataError


def apply_scheme(
    dataset: MultimodalDataset,
    paired_fraction: float = 1.0,
    unpaired: str | None = None,
    paired_only: bool = False,
    seed: int = 0,
) -> MultimodalDataset:
    """Keep a fraction of the pairs and turn the rest into single-modality rows.

    Rows are drawn in groups: the rows that share their first modality's example (with one-to-one
    pairs each row alone; on CUB an image with its ten captions). A seeded random subset of
    ``round(f * G)`` of the G groups (half rounded up) stays paired. The rest:
    ``unpaired=<modality>`` keeps only that modality; ``unpaired="split"`` divides their groups into
    one near-equal part per modality (in modality order, earlier parts take the extra groups), part
    k keeping only modality k, so no unpaired examples are ever seen together;
    ``paired_only=True`` drops them (ablation J.2).

    Leak rule: an unpaired row is dropped when its kept bank example occurs in any paired row,
    and unpaired rows repeating an example are collapsed to one. With one-to-one pairs (the
    default of :func:`load_pairs`) every example occurs in one row, so nothing is dropped and
    the counts are exact; with ``pairs_per_image`` > 1 nearly every example also sits in some
    paired row, so little unpaired data survives when f < 1.

    >>> from memevae.data import load_pairs
    >>> apply_scheme(load_pairs("mnist-textured", "train"), 0.25, "split", seed=1).summary()
    {'rows': 3000, 'paired': 750, 'mnist only': 1125, 'textured only': 1125}
    """
    modalities = dataset.modalities
    if not 0 < paired_fraction <= 1:
        raise DataError(f"paired_fraction must be in (0, 1], got {paired_fraction}")
    choices = (*modalities, "split")
    if unpaired is not None and unpaired not in choices:
        raise DataError(f"unknown unpaired choice {unpaired!r}; choose from {', '.join(choices)}")
    if unpaired is not None and paired_only:
        raise DataError("give either unpaired=... or paired_only=True, not both")
    partial = int((~dataset.mask().all(1)).sum())
    if partial:
        raise DataError(f"apply_scheme needs a fully paired dataset; {dataset.name} has {partial} partial rows")
    if paired_fraction == 1:
        return dataset
    if unpaired is None and not paired_only:
        raise DataError(
            f"paired_fraction={paired_fraction} < 1 needs unpaired= one of {', '.join(choices)}, or paired_only=True"
        )

    n = len(dataset)
    # Rows sharing their first modality's example (a CUB image with its ten captions) form a group
    # and stay on one side; groups are numbered by their first row, so with one-to-one pairs group
    # k is row k and the draw is the row permutation itself.
    _, first_row, group_of_row = np.unique(dataset.index[modalities[0]].numpy(), return_index=True, return_inverse=True)
    group = np.argsort(np.argsort(first_row))[group_of_row.ravel()]
    n_groups = len(first_row)
    position = np.empty(n_groups, np.int64)
    position[np.random.default_rng(seed).permutation(n_groups)] = np.arange(n_groups)
    row_position = position[group]
    order = np.lexsort((np.arange(n), row_position))  # rows by their group's place in the draw
    n_paired_groups = int(np.floor(paired_fraction * n_groups + 0.5))
    n_paired = int((row_position < n_paired_groups).sum())
    rest = order[n_paired:]
    if paired_only:
        return dataset.subset(torch.from_numpy(np.sort(order[:n_paired])))

    if unpaired == "split":
        group_parts = np.array_split(np.arange(n_paired_groups, n_groups), len(modalities))
        parts = [order[np.searchsorted(row_position[order], g[0]):np.searchsorted(row_position[order], g[-1], "right")]
                 if len(g) else order[:0] for g in group_parts]
    else:
        parts = [rest]
    kept = modalities if unpaired == "split" else (unpaired,)
    index = {m: dataset.index[m].numpy().copy() for m in modalities}
    keep = np.ones(n, bool)
    for m, part in zip(kept, parts):
        for other in modalities:
            if other != m:
                index[other][part] = -1
        examples = index[m][part]
        in_pair = np.isin(examples, dataset.index[m].numpy()[order[:n_paired]])
        first = np.zeros(len(part), bool)
        first[np.unique(examples, return_index=True)[1]] = True
        keep[part[in_pair | ~first]] = False
    rows = np.flatnonzero(keep)
    return dataset.with_rows({m: torch.from_numpy(index[m][rows]) for m in modalities}, dataset.labels[torch.from_numpy(rows)])
