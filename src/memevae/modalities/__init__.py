"""Modalities: one per kind of data, each owning its encoder, decoder and likelihood.

A model never branches on a data set's name: it asks its modalities for posteriors, decodings
and log-likelihoods. Kinds are chosen by name through :func:`build_modality`; each is a
:class:`ModalityKind` listed in the ``KINDS`` of a module of this package (e.g.
:mod:`memevae.modalities.images`), collected by :func:`modality_kinds`.

A kind defined outside memevae (your own networks) is registered by its import path
``"module:attribute"``: with :func:`register`, or as an entry point of the group
``memevae.modalities`` of an installed package (found on first use). A run records the path of
each such kind it uses, so :func:`memevae.load_run` imports it again in another process. The
networks of such a kind are checked against the latent size each time one is built.

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
import importlib.metadata
import pkgutil
from functools import cache

from .modality import Modality, ModalityKind, check_networks

ARCHITECTURES = ("release", "paper")
ENTRY_POINTS = "memevae.modalities"
"""The entry-point group through which an installed package offers modality kinds; each entry
point's value is the ``"module:attribute"`` of a :class:`ModalityKind`."""

_registered: dict[str, tuple[ModalityKind, str]] = {}
"""The kinds defined outside memevae, by name: (kind, its "module:attribute")."""


@cache
def builtin_kinds() -> dict[str, ModalityKind]:
    """memevae's own modality kinds by name: the ``KINDS`` of each module of this package, in
    module order (found on first use)."""
    kinds = {}
    for module in pkgutil.iter_modules(__path__):
        for kind in getattr(importlib.import_module(f"{__name__}.{module.name}"), "KINDS", ()):
            if kind.name in kinds:
                raise RuntimeError(f"two modules of {__name__} declare the modality kind {kind.name!r}")
            kinds[kind.name] = kind
    return kinds


@cache
def _register_entry_points() -> None:
    for entry_point in importlib.metadata.entry_points(group=ENTRY_POINTS):
        register(entry_point.value)


def modality_kinds() -> dict[str, ModalityKind]:
    """Every modality kind by name: memevae's own (:func:`builtin_kinds`), then those of installed
    packages' ``memevae.modalities`` entry points and those given to :func:`register`."""
    _register_entry_points()
    return {**builtin_kinds(), **{name: kind for name, (kind, _) in _registered.items()}}


def register(source: str) -> ModalityKind:
    """Make the :class:`ModalityKind` at ``source`` ("module:attribute", e.g. "my_networks:SMALL_MLP")
    a kind models can be built with, and return it. Registering the same source again changes
    nothing; a name memevae or another source already uses, a source that cannot be imported or
    that is not a ModalityKind is a one-line ValueError."""
    module, _, attribute = str(source).partition(":")
    if not module or not attribute:
        raise ValueError(f"a modality kind is registered by 'module:attribute', got {source!r}")
    try:
        kind = importlib.import_module(module)
        for part in attribute.split("."):
            kind = getattr(kind, part)
    except Exception as error:  # noqa: BLE001 - any failure of the user's module is reported in one line
        raise ValueError(f"cannot import the modality kind {source} ({type(error).__name__}: "
                         f"{(str(error).splitlines() or [''])[0]}); make {module} importable (install it or add it to PYTHONPATH)") from None
    if not isinstance(kind, ModalityKind):
        raise ValueError(f"{source} is a {type(kind).__name__}, not a memevae.modalities.ModalityKind")
    if kind.name in builtin_kinds():
        raise ValueError(f"{source} declares the modality kind {kind.name!r}, which memevae has; give it another name")
    known = _registered.get(kind.name)
    if known is not None and known[1] != source:
        raise ValueError(f"{source} declares the modality kind {kind.name!r}, which {known[1]} registered already")
    _registered[kind.name] = (kind, source)
    return kind


def kind_source(name: str) -> str | None:
    """The "module:attribute" of a registered kind; None for memevae's own kinds."""
    known = _registered.get(name)
    return known[1] if known else None


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
    modality = modality_kinds()[kind].build(name or kind, latent_dim, architecture, hidden_dims, shape)
    if kind_source(kind) is not None:  # networks written outside memevae: checked against the latent size
        check_networks(modality, latent_dim, modality.encoder, modality.decoder, subject=f"modality kind {kind!r} ({kind_source(kind)})")
    return modality


__all__ = ["Modality", "ModalityKind", "build_modality", "modality_kinds", "builtin_kinds", "register", "kind_source", "check_networks",
           "ARCHITECTURES", "ENTRY_POINTS"]
