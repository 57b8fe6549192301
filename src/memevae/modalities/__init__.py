"""Modalities: one per kind of data, each owning its encoder, decoder and likelihood.

A model never branches on a data set's name: it asks its modalities for posteriors, decodings
and log-likelihoods. Kinds are chosen by name through :func:`build_modality`; each is a
:class:`ModalityKind` listed in the ``KINDS`` of a module of this package (e.g.
:mod:`memevae.modalities.images`), collected by :func:`modality_kinds`.

Example:
    >>> import torch
    >>> m = build_modality("mnist-mlp", latent_dim=8, architecture="paper")
    >>> q = m.encode(torch.rand(4, 1, 28, 28))
    >>> m.decode(q.rsample((3,))).shape
    torch.Size([3, 4, 1, 28, 28])
    >>> m.format, m.show(torch.rand(1, 28, 28)).shape
    ('image', torch.Size([1, 28, 28]))
"""

from __future__ import annotations

import importlib
import pkgutil
from functools import cache

from .modality import Modality, ModalityKind

ARCHITECTURES = ("release", "paper")


@cache
def modality_kinds() -> dict[str, ModalityKind]:
    """Every modality kind by name: the ``KINDS`` of each module of this package, in module order
    (found on first use)."""
    kinds = {}
    for module in pkgutil.iter_modules(__path__):
        for kind in getattr(importlib.import_module(f"{__name__}.{module.name}"), "KINDS", ()):
            if kind.name in kinds:
                raise RuntimeError(f"two modules of {__name__} declare the modality kind {kind.name!r}")
            kinds[kind.name] = kind
    return kinds


def build_modality(kind: str, latent_dim: int, architecture: str = "release", name: str | None = None,
                   hidden_dims: tuple[int, ...] | None = None, shape: tuple[int, ...] | None = None) -> Modality:
    """Build the modality ``kind`` (e.g. "mnist-mlp" or "svhn-conv") with latent size ``latent_dim``.

    ``architecture`` is "release" (the authors' code: MNIST 784-512-512 MLP, SVHN conv with
    BatchNorm and a 512-channel layer) or "paper" (Table 8: MNIST 400-unit MLP, plain conv stack).
    ``hidden_dims`` overrides the MLP widths. ``shape`` is the data's example shape, needed by kinds
    whose shape the data decide (a caption modality's vocabulary size).
    """
    if kind not in modality_kinds():
        raise ValueError(f"unknown modality kind {kind!r}; choose one of {', '.join(modality_kinds())}")
    if architecture not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {architecture!r}; choose one of {', '.join(ARCHITECTURES)}")
    if latent_dim < 1:
        raise ValueError(f"latent_dim must be a positive integer, got {latent_dim}")
    return modality_kinds()[kind].build(name or kind, latent_dim, architecture, hidden_dims, shape)


__all__ = ["Modality", "ModalityKind", "build_modality", "modality_kinds", "ARCHITECTURES"]
