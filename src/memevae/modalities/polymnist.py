"""The image modality kind of PolyMNIST's 3x28x28 digits (Sutter et al. 2021): "polymnist-mlp", the
MLPs of "mnist-mlp" (:mod:`memevae.modalities.images`) over three colour channels. No convolutional
kind takes 28x28 inputs yet (MoPoE's PolyMNIST networks are convolutional)."""

from __future__ import annotations

from .images import mlp_networks
from .modality import ModalityKind

# Laplace likelihood with scale 1.0, as the release fixes for MNIST images.
KINDS = (
    ModalityKind("polymnist-mlp", "image", (3, 28, 28), mlp_networks, "laplace", {"scale": 1.0}, min_scale=1e-3),
)
