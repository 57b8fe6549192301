"""The paper's published numbers, to print beside ours: MNIST-SVHN (Tables 3 and 4 of Joy et al., ICLR
2022) and CUB (Table 5).

Sources: Table 3 (cross coherence, every model x scheme x f, both directions) and Table 4 (latent
accuracy, every model x scheme x f, both modalities; the paper calls MEME_MNIST "OursMNIST" there).
Entries the paper does not give (MMVAE at f < 1) are absent, never guessed.

Keys use the paper's names ("mnist", "svhn"; schemes "mnist", "svhn", "split": the modality kept
for the unpaired remainder, Sec. 4.1; docs/data.md). :func:`paper_values` maps them onto a run's modality
names, e.g. "svhn" -> "textured", and labels them "MNIST-SVHN": values measured on MNIST-Textured
are a different data set and are only set side by side, never presented as MNIST-SVHN results.
"""

from __future__ import annotations

FRACTIONS = (1.0, 0.5, 0.25, 0.125, 0.0625)
SOURCE = "Joy et al. (ICLR 2022), MNIST-SVHN"


def _rows(*values):
    """Pairs (mean, std) per f in FRACTIONS order; None where the paper has no entry."""
    return {f: v for f, v in zip(FRACTIONS, values) if v is not None}


# (model, scheme) -> f -> (mean, std). At f = 1 every scheme is the same fully paired run.
COHERENCE = {
    "mnist->svhn": {
        ("meme", "svhn"): _rows((0.625, 0.007), (0.551, 0.008), (0.323, 0.025), (0.172, 0.016), (0.143, 0.009)),
        ("meme", "mnist"): _rows((0.625, 0.007), (0.572, 0.003), (0.485, 0.013), (0.470, 0.009), (0.451, 0.011)),
        ("meme", "split"): _rows((0.625, 0.007), (0.625, 0.008), (0.503, 0.008), (0.467, 0.013), (0.387, 0.010)),
        ("mmvae", None): _rows((0.581, 0.008)),
        ("mvae", "svhn"): _rows((0.123, 0.003), (0.110, 0.014), (0.112, 0.005), (0.105, 0.005), (0.105, 0.006)),
        ("mvae", "mnist"): _rows((0.123, 0.003), (0.111, 0.007), (0.112, 0.013), (0.116, 0.012), (0.116, 0.005)),
        ("mvae", "split"): _rows((0.123, 0.003), (0.108, 0.005), (0.101, 0.005), (0.101, 0.001), (0.101, 0.002)),
    },
    "svhn->mnist": {
        ("meme", "svhn"): _rows((0.752, 0.004), (0.726, 0.006), (0.652, 0.008), (0.557, 0.018), (0.477, 0.012)),
        ("meme", "mnist"): _rows((0.752, 0.004), (0.715, 0.003), (0.603, 0.018), (0.546, 0.012), (0.446, 0.008)),
        ("meme", "split"): _rows((0.752, 0.004), (0.718, 0.002), (0.621, 0.007), (0.568, 0.014), (0.503, 0.001)),
        ("mmvae", None): _rows((0.735, 0.010)),
        ("mvae", "svhn"): _rows((0.498, 0.100), (0.305, 0.011), (0.268, 0.010), (0.220, 0.020), (0.188, 0.012)),
        ("mvae", "mnist"): _rows((0.498, 0.100), (0.365, 0.014), (0.350, 0.008), (0.302, 0.015), (0.249, 0.014)),
        ("mvae", "split"): _rows((0.498, 0.100), (0.338, 0.013), (0.273, 0.003), (0.249, 0.019), (0.169, 0.001)),
    },
}

LATENT = {
    "mnist": {
        ("meme", "svhn"): _rows((0.908, 0.007), (0.881, 0.006), (0.870, 0.007), (0.815, 0.005), (0.795, 0.010)),
        ("meme", "mnist"): _rows((0.908, 0.007), (0.882, 0.003), (0.844, 0.003), (0.824, 0.006), (0.807, 0.005)),
        ("meme", "split"): _rows((0.908, 0.007), (0.914, 0.003), (0.893, 0.005), (0.883, 0.006), (0.856, 0.003)),
        ("mmvae", None): _rows((0.886, 0.003)),
        ("mvae", "svhn"): _rows((0.892, 0.005), (0.895, 0.003), (0.890, 0.003), (0.887, 0.004), (0.880, 0.003)),
        ("mvae", "mnist"): _rows((0.892, 0.005), (0.895, 0.002), (0.898, 0.004), (0.896, 0.002), (0.895, 0.002)),
        ("mvae", "split"): _rows((0.892, 0.005), (0.898, 0.005), (0.895, 0.001), (0.894, 0.001), (0.898, 0.001)),
    },
    "svhn": {
        ("meme", "svhn"): _rows((0.648, 0.012), (0.549, 0.008), (0.295, 0.025), (0.149, 0.006), (0.113, 0.003)),
        ("meme", "mnist"): _rows((0.648, 0.012), (0.581, 0.008), (0.398, 0.029), (0.384, 0.017), (0.362, 0.018)),
        ("meme", "split"): _rows((0.648, 0.012), (0.675, 0.004), (0.507, 0.003), (0.432, 0.011), (0.316, 0.020)),
        ("mmvae", None): _rows((0.499, 0.045)),
        ("mvae", "svhn"): _rows((0.131, 0.010), (0.106, 0.008), (0.107, 0.003), (0.105, 0.005), (0.102, 0.001)),
        ("mvae", "mnist"): _rows((0.131, 0.010), (0.106, 0.005), (0.106, 0.003), (0.107, 0.005), (0.101, 0.005)),
        ("mvae", "split"): _rows((0.131, 0.010), (0.107, 0.003), (0.109, 0.003), (0.104, 0.007), (0.100, 0.008)),
    },
}


# CUB, Table 5: CCA coherence (App. G) of cross generations, (model, scheme) -> f -> (mean, std), for
# f = 1, 0.5, 0.25, 0.125. Schemes name the modality kept for the unpaired remainder ("image",
# "caption"; the paper's "Captions" rows), as for digits. The ground-truth test pairs score 0.106.
CCA = {
    "image->caption": {
        ("meme", "image"): _rows((0.064, 0.011), (0.042, 0.005), (0.026, 0.002), (0.029, 0.003)),
        ("meme", "caption"): _rows((0.064, 0.011), (0.062, 0.006), (0.048, 0.004), (0.052, 0.002)),
        ("meme", "split"): _rows((0.064, 0.011), (0.046, 0.005), (0.031, 0.006), (0.027, 0.005)),
        ("mmvae", None): _rows((0.060, 0.010)),
        ("mvae", "image"): _rows((-0.002, 0.001), (-0.000, 0.004), (0.001, 0.004), (-0.001, 0.005)),
        ("mvae", "caption"): _rows((-0.002, 0.001), (-0.000, 0.004), (0.000, 0.003), (0.001, 0.002)),
        ("mvae", "split"): _rows((-0.002, 0.001), (0.000, 0.003), (0.000, 0.005), (-0.001, 0.003)),
    },
    "caption->image": {
        ("meme", "image"): _rows((0.074, 0.001), (0.058, 0.002), (0.051, 0.001), (0.046, 0.004)),
        ("meme", "caption"): _rows((0.074, 0.001), (0.059, 0.003), (0.050, 0.001), (0.053, 0.001)),
        ("meme", "split"): _rows((0.074, 0.001), (0.061, 0.002), (0.047, 0.003), (0.049, 0.003)),
        ("mmvae", None): _rows((0.058, 0.001)),
        ("mvae", "image"): _rows((-0.002, 0.001), (-0.002, 0.000), (-0.002, 0.001), (-0.001, 0.001)),
        ("mvae", "caption"): _rows((0.002, 0.001), (-0.001, 0.002), (-0.003, 0.002), (-0.002, 0.001)),
        ("mvae", "split"): _rows((-0.002, 0.001), (-0.002, 0.002), (-0.002, 0.001), (-0.002, 0.001)),
    },
    "ground_truth": {(model, None): _rows(*[(0.106, 0.000)] * 4) for model in ("meme", "mmvae", "mvae")},
}
CCA_SOURCE = "Joy et al. (ICLR 2022), CUB with ResNet-101 features (Table 5)"

EPOCHS = {"mnist-svhn": 100, "cub": 300}
"""The paper's training epochs per data set (App. K), the budget its tables were measured at; the
MNIST-SVHN figure stands for the digit data sets memevae offers beside it."""


def to_paper_names(key: str) -> str:
    """A run's modality name or direction in the paper's names: every modality but MNIST is "svhn".

    >>> to_paper_names("mnist->textured"), to_paper_names("textured")
    ('mnist->svhn', 'svhn')
    """
    return "->".join("svhn" if part != "mnist" else part for part in key.split("->"))


def from_paper_names(key: str, other: str) -> str:
    """The paper's modality name or direction in a run's names: "svhn" becomes ``other``.

    >>> from_paper_names("svhn->mnist", "textured")
    'textured->mnist'
    """
    return "->".join(other if part == "svhn" else part for part in key.split("->"))


def paper_scheme(unpaired: str | None, modalities=("mnist", "svhn")) -> str | None:
    """The paper's scheme name for a run's ``unpaired`` setting: the non-MNIST modality is "svhn"."""
    if unpaired in (None, "split", "mnist"):
        return unpaired
    return to_paper_names(unpaired) if unpaired in modalities else None


def _lookup(table: dict, model: str, scheme: str | None, f: float):
    for key in ((model, scheme), (model, None)):
        if key in table and f in table[key]:
            return table[key][f]
    if f == 1.0:  # every scheme's f = 1 entry is the same fully paired run
        for (name, _), rows in table.items():
            if name == model and 1.0 in rows:
                return rows[1.0]
    return None


def paper_values(model: str, modalities, unpaired: str | None = None, paired_fraction: float = 1.0,
                 paired_only: bool = False) -> dict:
    """The paper's numbers for a run, keyed by the run's own modality names.

    Returns ``{"source": ..., "dataset": "MNIST-SVHN", "coherence": {"mnist->textured": {"mean", "std",
    "paper_key": "MNIST->SVHN"}}, "latent": {...}}``; entries the paper does not give are left out.
    Ablation J.2 (``paired_only``) has no reference here.
    """
    modalities = tuple(modalities)
    other = next((m for m in modalities if m != "mnist"), "svhn")
    out = {"source": SOURCE, "dataset": "MNIST-SVHN", "coherence": {}, "latent": {}}
    if "mnist" not in modalities or len(modalities) != 2 or (paired_only and paired_fraction < 1):
        return out
    scheme = paper_scheme(unpaired, modalities) if paired_fraction < 1 else None
    for name, table in (("coherence", COHERENCE), ("latent", LATENT)):
        for key, rows in table.items():
            value = _lookup(rows, model, scheme, float(paired_fraction))
            if value is not None:
                out[name][from_paper_names(key, other)] = {"mean": value[0], "std": value[1], "paper_key": key.upper()}
    return out


def cub_paper_values(model: str, unpaired: str | None = None, paired_fraction: float = 1.0,
                     paired_only: bool = False) -> dict:
    """The paper's CUB numbers (Table 5, CCA coherence) for a run on CUB, whose modalities carry the
    paper's names ("image", "caption").

    Returns ``{"source": ..., "dataset": "CUB", "cca-coherence": {"image->caption": {"mean", "std",
    "paper_key"}, "caption->image": ..., "ground_truth": ...}}``; entries the paper does not give
    (e.g. f = 0.0625, MMVAE at f < 1, ablation J.2) are left out.

    >>> cub_paper_values("meme")["cca-coherence"]["caption->image"]["mean"]
    0.074
    """
    out = {"source": CCA_SOURCE, "dataset": "CUB", "cca-coherence": {}}
    if paired_only and paired_fraction < 1:
        return out
    scheme = unpaired if paired_fraction < 1 else None
    for key, rows in CCA.items():
        value = _lookup(rows, model, scheme, float(paired_fraction))
        if value is not None:
            out["cca-coherence"][key] = {"mean": value[0], "std": value[1], "paper_key": key.upper()}
    return out
