"""Cross- and self-generation grids of test examples (paper Fig. 3 and 11-17), built on
:mod:`memevae.evaluation.figures`."""

from __future__ import annotations

from dataclasses import dataclass

from pathlib import Path

import torch

from .._common import paired_rows
from ..figures import save_generation_grid, save_image_rows, save_translation_grid, subset_generation_rows
from ..metric import Metric


@dataclass
class GridOptions:
    count: int = 10
    """Test examples shown, one per digit first."""
    samples: int = 3
    """Latent samples per example in the translation grids."""


def one_per_class(data, count: int = 10) -> torch.Tensor:
    """Row numbers of ``count`` paired test rows with distinct first-modality examples (a CUB image
    once, not with each of its captions): the first of each class, then the next rows."""
    rows = paired_rows(data)
    first = data.index[data.modalities[0]][rows]
    seen, distinct = set(), []
    for row, example in zip(rows.tolist(), first.tolist()):
        if example not in seen:
            seen.add(example)
            distinct.append(row)
    rows = torch.tensor(distinct)
    labels = data.labels[rows]
    chosen = [int(rows[labels == digit][0]) for digit in sorted(labels.unique().tolist())][:count]
    for row in rows.tolist():
        if len(chosen) >= count:
            break
        if row not in chosen:
            chosen.append(row)
    return torch.tensor(chosen)


def generation_grids(model, data, figures_dir, *, count: int = GridOptions.count, samples: int = GridOptions.samples, seed: int = 0, title: str = "") -> dict[str, float]:
    """Write ``generation.png`` (every source's inputs, then its decoded means in every modality,
    z at the posterior mean), with more than two modalities ``generation-from-subsets.png`` (each
    modality from all the others), and ``translate-<s>-to-<t>.png`` for every direction
    (``samples`` latent samples per input). Returns the number of figures written."""
    figures_dir = Path(figures_dir)
    examples = data.batch(one_per_class(data, count)).data
    with torch.random.fork_rng(devices=[]):  # seeded samples without touching the caller's RNG stream
        torch.manual_seed(seed)
        written = [save_generation_grid(model, examples, figures_dir / "generation.png",
                                        title=(title + "\n" if title else "") + "cross- and self-generation of test examples "
                                        "(decoder means at the posterior mean)", show=data.show)]
        if len(data.modalities) > 2:
            written.append(save_image_rows(subset_generation_rows(model, examples, show=data.show),
                                           figures_dir / "generation-from-subsets.png",
                                           (title + "\n" if title else "") + "each modality generated from all the others "
                                           "(decoder means at the mean of the posterior given them)"))
        for source in data.modalities:
            for target in data.modalities:
                if source != target:
                    written.append(save_translation_grid(model, examples[source], source, target,
                                                         figures_dir / f"translate-{source}-to-{target}.png", samples=samples,
                                                         title=title, show=data.show))
    return {"figures": float(len(written)), "examples": float(len(examples[data.modalities[0]]))}


class GenerationGrids(Metric):
    name = "grids"
    description = "cross- and self-generation grids (Fig. 3, 11-17)"
    Options = GridOptions
    order = 50
    figures = ("generation.png", "generation-from-subsets.png", "translate-<s>-to-<t>.png")

    def compute(self, context, options: GridOptions) -> dict:
        return generation_grids(context.model, context.test, context.figures_dir, count=options.count, samples=options.samples,
                                seed=context.seed, title=context.title)

    def headline(self, values: dict) -> dict[str, float]:
        return {}
