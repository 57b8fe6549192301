"""Relatedness of the unimodal posteriors (paper Sec. 4.2, Fig. 8 and 9, App. F).

d_ij = W2(q(z | s_i), q(z | t_j)), the 2-Wasserstein distance between two diagonal Gaussians:

    W2^2 = ||m1 - m2||^2 + ||s1 - s2||^2

(App. F prints ||m1 + m2||^2: a typo; for diagonal covariances the trace term
Tr(S1 + S2 - 2 (S1^1/2 S2 S1^1/2)^1/2) reduces to sum_l (s1_l - s2_l)^2). It is therefore the
Euclidean distance between the vectors [m, s], which :func:`w2_pairwise` computes for all (i, j)
at once.

- General relatedness (Fig. 8): d_ij over all (s_i, t_j) of each test mini-batch; paired (i = j)
  against unpaired (i != j) distances, as histograms.
- Class-contextual relatedness (Fig. 9): K[a, b] = mean d_ij over test items i of class a (source
  modality) and j of class b (target modality), and a dendrogram of the digits clustered by the
  symmetrised K (average linkage).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from .._common import label_noun, paired_rows, posteriors
from ..plotting import new_figure, save, suptitle
from ..metric import Metric


@dataclass
class RelatednessOptions:
    source: str | None = None
    """The modality s of d(s, t); default the data's first."""
    target: str | None = None
    """The modality t; default the other one."""
    batch_size: int = 128
    """Pairs per group among which unpaired distances are taken (App. G)."""


def w2_distance(loc1: torch.Tensor, scale1: torch.Tensor, loc2: torch.Tensor, scale2: torch.Tensor) -> torch.Tensor:
    """Elementwise W2 between N(loc1, scale1^2) and N(loc2, scale2^2) (diagonal, over the last
    dimension, broadcasting the leading ones)."""
    return ((loc1 - loc2).pow(2).sum(-1) + (scale1 - scale2).pow(2).sum(-1)).sqrt()


def w2_pairwise(loc1: torch.Tensor, scale1: torch.Tensor, loc2: torch.Tensor, scale2: torch.Tensor) -> torch.Tensor:
    """(N, M) matrix of W2 between every Gaussian of the first set (N, L) and of the second (M, L).

    Computed as the Euclidean distance between [loc, scale] vectors without the
    ``|a|^2 + |b|^2 - 2ab`` shortcut, so equal Gaussians give exactly 0.
    """
    a = torch.cat([loc1, scale1], -1)
    b = torch.cat([loc2, scale2], -1)
    return torch.cdist(a, b, compute_mode="donot_use_mm_for_euclid_dist")


@dataclass
class Relatedness:
    """Everything Fig. 8 and 9 need, for one (source, target) pair of modalities."""

    source: str
    target: str
    paired: np.ndarray
    """d_ii of every test pair."""
    unpaired: np.ndarray
    """d_ij, i != j, within each mini-batch."""
    unpaired_same_class: np.ndarray
    """For each unpaired distance, whether s_i and t_j show the same digit."""
    class_matrix: np.ndarray
    """K (10, 10): rows the source's class, columns the target's."""
    classes: list[int] = field(default_factory=lambda: list(range(10)))
    batch_size: int = 128
    noun: str = "digit"
    """What the labels are ("digit", or "class" for CUB), in metric keys and figure labels."""

    def metrics(self) -> dict[str, float]:
        from sklearn.metrics import roc_auc_score

        same, other = self.unpaired[self.unpaired_same_class], self.unpaired[~self.unpaired_same_class]
        k = self.class_matrix
        off = ~np.eye(len(k), dtype=bool)
        scores = np.concatenate([self.paired, self.unpaired])
        is_paired = np.concatenate([np.ones(len(self.paired)), np.zeros(len(self.unpaired))])
        return {
            "paired_mean": float(self.paired.mean()),
            "unpaired_mean": float(self.unpaired.mean()),
            f"unpaired_same_{self.noun}_mean": float(same.mean()) if len(same) else float("nan"),
            f"unpaired_other_{self.noun}_mean": float(other.mean()) if len(other) else float("nan"),
            # P(d_paired < d_unpaired): 1 when every pair is closer than every non-pair, 0.5 at chance.
            "paired_closer_auc": float(roc_auc_score(is_paired, -scores)),
            "class_diagonal_mean": float(np.diag(k).mean()),
            "class_off_diagonal_mean": float(k[off].mean()),
            # Fraction of source classes whose nearest target class (smallest K[a, :]) is the same digit.
            "class_diagonal_is_row_min": float((k.argmin(1) == np.arange(len(k))).mean()),
            "batch_size": float(self.batch_size),
            "items": float(len(self.paired)),
        }


def class_distance_matrix(loc_s, scale_s, labels_s, loc_t, scale_t, labels_t, classes, chunk: int = 1000) -> np.ndarray:
    """K[a, b] = mean W2 between source items of class a and target items of class b (all pairs)."""
    classes = torch.as_tensor(classes)
    one_s = (labels_s[:, None] == classes[None]).double()
    one_t = (labels_t[:, None] == classes[None]).double()
    sums = torch.zeros(len(classes), len(classes), dtype=torch.float64)
    for start in range(0, len(loc_s), chunk):
        d = w2_pairwise(loc_s[start:start + chunk], scale_s[start:start + chunk], loc_t, scale_t).double()
        sums += one_s[start:start + chunk].T @ d @ one_t
    counts = one_s.sum(0)[:, None] * one_t.sum(0)[None, :]
    return (sums / counts.clamp_min(1)).numpy()


def relatedness_data(model, data, *, source: str | None = None, target: str | None = None, batch_size: int = 128,
                     encode_batch_size: int = 500, progress: bool = True) -> Relatedness:
    """Encode every paired test item with both unimodal encoders and compute the distances."""
    source = source or data.modalities[0]
    target = target or next(m for m in data.modalities if m != source)
    rows = paired_rows(data)
    images_s = data.banks[source][data.index[source][rows]]
    images_t = data.banks[target][data.index[target][rows]]
    labels = data.labels[rows]
    loc_s, scale_s = posteriors(model, source, images_s, encode_batch_size, progress, f"relatedness: encode {source}",
                                  prepare=data.formats[source].prepare)
    loc_t, scale_t = posteriors(model, target, images_t, encode_batch_size, progress, f"relatedness: encode {target}",
                                  prepare=data.formats[target].prepare)
    paired, unpaired, same = [], [], []
    for start in range(0, len(rows), batch_size):
        part = slice(start, start + batch_size)
        d = w2_pairwise(loc_s[part], scale_s[part], loc_t[part], scale_t[part])
        n = d.shape[0]
        if n < 2:
            continue
        off = ~torch.eye(n, dtype=torch.bool)
        y = labels[part]
        paired.append(d.diagonal())
        unpaired.append(d[off])
        same.append((y[:, None] == y[None, :])[off])
    classes = sorted(labels.unique().tolist())
    matrix = class_distance_matrix(loc_s, scale_s, labels, loc_t, scale_t, labels, classes)
    return Relatedness(source, target, torch.cat(paired).numpy(), torch.cat(unpaired).numpy(), torch.cat(same).numpy(),
                       matrix, classes, batch_size, label_noun(data))


def relatedness(model, data, *, source: str | None = None, target: str | None = None,
                batch_size: int = RelatednessOptions.batch_size, progress: bool = True, figures_dir=None, title: str = "") -> dict[str, float]:
    """Relatedness summary numbers (see :meth:`Relatedness.metrics`); with ``figures_dir``, also
    writes ``relatedness-histogram.png`` (Fig. 8) and ``relatedness-classes.png`` (Fig. 9)."""
    result = relatedness_data(model, data, source=source, target=target, batch_size=batch_size, progress=progress)
    if figures_dir is not None:
        plot_histogram(result, f"{figures_dir}/relatedness-histogram.png", title)
        plot_class_matrix(result, f"{figures_dir}/relatedness-classes.png", title)
    return result.metrics()


def plot_histogram(result: Relatedness, path, title: str = ""):
    """Fig. 8: density histograms of d_ij, unpaired (i != j, blue) and paired (i = j, orange)."""
    fig, ax = new_figure(5.2, 3.6)
    values = np.concatenate([result.paired, result.unpaired])
    low, high = np.percentile(values, [0.2, 99.8])
    bins = np.linspace(low * 0.98, high * 1.02 + 1e-9, 60)
    ax.hist(result.unpaired, bins=bins, density=True, alpha=0.6, color="tab:blue",
            label=f"unpaired (i \u2260 j), n={len(result.unpaired):,}")
    ax.hist(result.paired, bins=bins, density=True, alpha=0.6, color="tab:orange",
            label=f"paired (i = j), n={len(result.paired):,}")
    ax.set_xlabel(f"W2( q(z | {result.source}$_i$), q(z | {result.target}$_j$) )")
    ax.set_ylabel("density")
    ax.set_title((title + "\n" if title else "") + f"relatedness within test mini-batches of {result.batch_size} (Fig. 8)", fontsize=9)
    ax.legend(fontsize=8)
    return save(fig, path)


def plot_class_matrix(result: Relatedness, path, title: str = ""):
    """Fig. 9: the class distance matrix K and the dendrogram of the digits (average linkage on
    (K + K^T) / 2, its diagonal ignored)."""
    from scipy.cluster.hierarchy import dendrogram, linkage
    from scipy.spatial.distance import squareform

    from ..plotting import subplots

    k = result.class_matrix
    fig, (ax_k, ax_d) = subplots(1, 2, figsize=(10, 4.2), gridspec_kw={"width_ratios": [1, 1.15]})
    image = ax_k.imshow(k, cmap="viridis")
    ticks = range(len(result.classes))
    ax_k.set_xticks(list(ticks), [str(c) for c in result.classes])
    ax_k.set_yticks(list(ticks), [str(c) for c in result.classes])
    ax_k.set_xlabel(f"{result.target} {result.noun}")
    ax_k.set_ylabel(f"{result.source} {result.noun}")
    ax_k.set_title("mean W2 between class posteriors", fontsize=9)
    fig.colorbar(image, ax=ax_k, label="mean W2 distance", fraction=0.046, pad=0.04)
    symmetric = (k + k.T) / 2
    np.fill_diagonal(symmetric, 0.0)
    tree = linkage(squareform(symmetric, checks=False), method="average")
    dendrogram(tree, labels=[str(c) for c in result.classes], ax=ax_d, color_threshold=None)
    ax_d.set_xlabel(result.noun)
    ax_d.set_ylabel("W2 distance between clusters (average linkage)")
    ax_d.set_title(f"dendrogram of the {result.noun} labels by relatedness", fontsize=9)
    suptitle(fig, (title + ": " if title else "") + "class-contextual relatedness (Fig. 9)", 10)
    return save(fig, path)


class RelatednessMetric(Metric):
    name = "relatedness"
    description = "W2 relatedness histograms and class matrix (Fig. 8, 9)"
    Options = RelatednessOptions
    order = 30
    figures = ("relatedness-histogram.png", "relatedness-classes.png")
    requires = ("scikit-learn",)
    report_columns = (("paired_closer_auc", "relatedness AUC P(d paired < d unpaired)"),
                      ("paired_mean", "mean W2, paired"), ("unpaired_mean", "mean W2, unpaired"))

    def compute(self, context, options: RelatednessOptions) -> dict:
        return relatedness(context.model, context.test, source=options.source, target=options.target,
                           batch_size=options.batch_size, progress=context.progress, figures_dir=context.figures_dir,
                           title=context.title)
