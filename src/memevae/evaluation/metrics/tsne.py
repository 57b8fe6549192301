"""t-SNE of the unimodal latent codes (paper App. H.1 Fig. 19 and App. H.3 Fig. 20).

Posterior means of test items from every modality are embedded together in 2-d, coloured by digit,
one marker and shade per modality: a joint representation shows each digit's modalities
overlapping; MVAE's failure (Fig. 19) shows them in separate regions.

Two numbers summarise the picture, computed in the latent space itself (not the 2-d embedding):
the fraction of each code's k nearest neighbours that show the same digit, and the fraction that
come from another modality (about (M-1)/M when the modalities are mixed, 0 when they occupy
separate sub-spaces).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .._common import label_noun, paired_rows, posteriors
from ..plotting import save
from ..metric import Metric


@dataclass
class TSNEOptions:
    points: int = 2000
    """Latent codes embedded, split evenly over the modalities."""
    perplexity: float = 30.0
    """t-SNE's perplexity (capped at a third of the points)."""

MARKERS = ("o", "^", "s", "D", "v", "P")


def latent_codes(model, data, *, points: int = 2000, seed: int = 0, progress: bool = False):
    """Posterior means of ``points // M`` random test pairs for each of the M modalities.

    Returns (codes (N, L) numpy, digit labels (N,), modality index (N,), modality names)."""
    rows = paired_rows(data)
    per_modality = max(1, min(len(rows), points // len(data.modalities)))
    chosen = rows[torch.randperm(len(rows), generator=torch.Generator().manual_seed(seed))[:per_modality]]
    codes, labels, which = [], [], []
    for k, modality in enumerate(data.modalities):
        images = data.banks[modality][data.index[modality][chosen]]
        loc, _ = posteriors(model, modality, images, 500, progress, f"t-SNE: encode {modality}",
                            prepare=data.formats[modality].prepare)
        codes.append(loc.numpy())
        labels.append(data.labels[chosen].numpy())
        which.append(np.full(len(chosen), k))
    return np.concatenate(codes), np.concatenate(labels), np.concatenate(which), tuple(data.modalities)


def neighbour_fractions(codes: np.ndarray, labels: np.ndarray, which: np.ndarray, k: int = 10,
                        noun: str = "digit") -> dict[str, float]:
    """The fractions of each code's ``k`` nearest neighbours with its label ("knn_same_<noun>") and
    from another modality ("knn_other_modality")."""
    from sklearn.neighbors import NearestNeighbors

    k = min(k, len(codes) - 1)
    index = NearestNeighbors(n_neighbors=k + 1).fit(codes).kneighbors(codes, return_distance=False)[:, 1:]
    return {f"knn_same_{noun}": float((labels[index] == labels[:, None]).mean()),
            "knn_other_modality": float((which[index] != which[:, None]).mean()), "knn_k": float(k)}


def tsne(model, data, *, points: int = TSNEOptions.points, perplexity: float = TSNEOptions.perplexity, seed: int = 0, progress: bool = True,
         figures_dir=None, title: str = "", threads: int | None = 1) -> dict[str, float]:
    """Embed latent codes with sklearn's TSNE (PCA initialisation); with ``figures_dir`` write
    ``tsne.png``. Returns the neighbour fractions, the point count and t-SNE's final KL.

    ``threads`` caps sklearn's OpenMP threads (None: sklearn's default). One thread is the default
    because t-SNE's parallel gradient slows down by an order of magnitude on a busy machine (on a
    loaded 2-core box 200 points took 16 s with two threads and 0.7 s with one)."""
    from sklearn.manifold import TSNE
    from threadpoolctl import threadpool_limits

    codes, labels, which, names = latent_codes(model, data, points=points, seed=seed, progress=progress)
    perplexity = min(perplexity, (len(codes) - 1) / 3)
    if progress:
        import sys

        print(f"t-SNE of {len(codes)} latent codes ...", file=sys.stderr, flush=True)
    with threadpool_limits(limits=threads):
        embedding = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit(codes)
    if figures_dir is not None:
        plot_tsne(embedding.embedding_, labels, which, names, f"{figures_dir}/tsne.png", title, label_noun(data))
    return {**neighbour_fractions(codes, labels, which, noun=label_noun(data)), "points": float(len(codes)), "kl_divergence": float(embedding.kl_divergence_)}


def plot_tsne(xy: np.ndarray, labels: np.ndarray, which: np.ndarray, names, path, title: str = "", noun: str = "digit"):
    """Scatter coloured by label (tab10; the legend titled ``noun``), one marker per modality, later
    modalities more transparent (Fig. 19: SVHN faint, MNIST strong)."""
    from ..plotting import colour_map, subplots
    from matplotlib.lines import Line2D

    colours = colour_map("tab10")
    fig, ax = subplots(figsize=(6.4, 5.2))
    alphas = np.linspace(0.8, 0.35, len(names)) if len(names) > 1 else [0.8]
    for k, name in enumerate(names):
        mine = which == k
        ax.scatter(xy[mine, 0], xy[mine, 1], c=[colours(int(y) % 10) for y in labels[mine]], marker=MARKERS[k % len(MARKERS)],
                   s=10, alpha=alphas[k], linewidths=0)
    digit_handles = [Line2D([], [], marker="o", linestyle="", color=colours(d), label=str(d)) for d in sorted(set(labels.tolist()))]
    modality_handles = [Line2D([], [], marker=MARKERS[k % len(MARKERS)], linestyle="", color="grey", alpha=alphas[k], label=name)
                        for k, name in enumerate(names)]
    first = ax.legend(handles=digit_handles, title=noun, fontsize=7, title_fontsize=8, loc="upper left",
                      bbox_to_anchor=(1.01, 1.0))
    ax.add_artist(first)
    ax.legend(handles=modality_handles, title="modality", fontsize=7, title_fontsize=8, loc="lower left", bbox_to_anchor=(1.01, 0.0))
    ax.set_xlabel("t-SNE dimension 1")
    ax.set_ylabel("t-SNE dimension 2")
    ax.set_title((title + "\n" if title else "") + f"t-SNE of posterior means, {len(xy)} test codes (Fig. 19/20)", fontsize=9)
    return save(fig, path)


class TSNE(Metric):
    name = "tsne"
    description = "t-SNE of latent codes by digit and modality (Fig. 19, 20)"
    Options = TSNEOptions
    order = 40
    figures = ("tsne.png",)
    requires = ("scikit-learn",)
    report_columns = (("knn_same_digit", "10-NN same digit"), ("knn_same_class", "10-NN same class"),
                      ("knn_other_modality", "10-NN other modality"))

    def compute(self, context, options: TSNEOptions) -> dict:
        return tsne(context.model, context.test, points=options.points, perplexity=options.perplexity, seed=context.seed,
                    progress=context.progress, figures_dir=context.figures_dir, title=context.title)

    def headline(self, values: dict) -> dict[str, float]:
        return {k: values[k] for k in ("knn_same_digit", "knn_same_class", "knn_other_modality", "kl_divergence")
                if k in values}
