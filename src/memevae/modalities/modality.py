"""A modality (encoder, decoder, likelihood of one kind of data) and the declaration of a kind of
modality (:class:`ModalityKind`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..data.formats import get_format
from ..distributions import DiagonalGaussian
from .likelihoods import build_likelihood


class Modality(nn.Module):
    """Encoder q(z|x) (which is also the conditional prior p(z|x) for the other modality under
    MEME's weight sharing, App. C), decoder p(x|z) and the likelihood that scores decodings.

    ``format`` names the data format it consumes (:mod:`memevae.data.formats`), which also says
    how an example or a decoding is shown (:meth:`show`)."""

    def __init__(self, name: str, kind: str, shape: tuple[int, ...], encoder: nn.Module, decoder: nn.Module,
                 likelihood, min_scale: float, memory_format: torch.memory_format = torch.contiguous_format,
                 format: str = "features"):
        super().__init__()
        self.format = get_format(format).name
        # The memory order the decoder computes in. The data it is scored against are brought into
        # it, so the gradients reaching the decoder arrive in it too (no hidden reorders).
        self.memory_format = memory_format
        self.name = name
        self.kind = kind
        self.shape = tuple(shape)
        self.encoder = encoder
        self.decoder = decoder
        self.likelihood = likelihood
        self.min_scale = min_scale

    @property
    def data_shape(self) -> tuple[int, ...]:
        """The shape of one example as the data set gives it: ``shape`` for images and features,
        (length,) token ids for a caption modality of shape (length, vocabulary size)."""
        return get_format(self.format).data_shape(self.shape)

    def relax(self, x: torch.Tensor) -> torch.Tensor:
        """Examples (B, *data_shape) in the continuous form (B, *shape) the encoder also accepts (the
        space of MEME's learnable pseudo-samples, Eq. 4): images and features as they are, token ids
        as one-hot vectors over the vocabulary."""
        return get_format(self.format).relax(x, self.shape)

    def encoder_outputs(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The encoder's (loc, raw_scale), each (B, latent_dim), for a batch x of shape (B, *shape),
        or (B, *data_shape) where the two differ (token ids), in the precision densities are
        computed in: under mixed precision (``--precision bf16``) the network computes in bfloat16,
        and its outputs, and so every density, scale link and objective built on them, are float32
        (a no-op in float32 and float64)."""
        if tuple(x.shape[1:]) not in (self.shape, self.data_shape):
            raise ValueError(f"modality {self.name!r} expects inputs of shape (batch, {', '.join(map(str, self.data_shape))}), "
                             f"got {tuple(x.shape)}")
        loc, raw_scale = self.encoder(x)
        return _densities_dtype(loc), _densities_dtype(raw_scale)

    def encode(self, x: torch.Tensor) -> DiagonalGaussian:
        """Posterior q(z|x) = N(loc, softplus(raw).clamp(min_scale)) from :meth:`encoder_outputs`."""
        loc, raw_scale = self.encoder_outputs(x)
        return DiagonalGaussian(loc, F.softplus(raw_scale).clamp(min=self.min_scale))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Likelihood parameters for latents z of shape (*S, B, L) -> (*S, B, *shape), in one network pass."""
        flat = z.reshape(-1, z.shape[-1])
        return _densities_dtype(self.decoder(flat)).reshape(*z.shape[:-1], *self.shape)

    def log_likelihood(self, x: torch.Tensor, decoded: torch.Tensor) -> torch.Tensor:
        """log p(x | z) for data x (B, *shape) and decodings (*S, B, *shape) -> (*S, B)."""
        return self.likelihood.log_prob(x.contiguous(memory_format=self.memory_format), decoded)

    def mean(self, decoded: torch.Tensor) -> torch.Tensor:
        """The likelihood's mean, i.e. what a generation shows."""
        return self.likelihood.mean(decoded)

    def show(self, x: torch.Tensor) -> torch.Tensor | None:
        """One example or decoder mean (shape ``self.shape``) as a float image (C, H, W) in [0, 1],
        or None when the format has no picture."""
        return get_format(self.format).show(x)


@dataclass(frozen=True, eq=False)
class ModalityKind:
    """A kind of modality, chosen by name (e.g. "mnist-mlp"): the data format and example shape it
    consumes, its networks, its likelihood family with its parameters, and the smallest posterior
    scale. ``likelihood`` names a family of :data:`~memevae.modalities.likelihoods.LIKELIHOODS`,
    ``likelihood_params`` its parameters (e.g. {"scale": 1.0}).

    ``networks(shape, latent_dim, architecture, hidden_dims)`` returns (encoder, decoder): the encoder
    maps a batch (B, *shape) to (loc, raw_scale), each (B, latent_dim); the decoder maps (n,
    latent_dim) to the likelihood's parameters (n, *shape). The decoder computes in ``memory_format``.

    A ``None`` in ``shape`` is a size the data decide, e.g. a caption modality's vocabulary size in
    (32, None): :meth:`build` then needs the data's shape.
    """

    name: str
    format: str
    shape: tuple[int, ...]
    networks: Callable[..., tuple[nn.Module, nn.Module]]
    likelihood: str
    likelihood_params: Mapping
    min_scale: float
    memory_format: torch.memory_format = torch.contiguous_format

    def resolve_shape(self, shape: tuple[int, ...] | None = None) -> tuple[int, ...]:
        """This kind's example shape with the sizes the data decide filled in from ``shape`` (the
        data's); a one-line ValueError when ``shape`` is missing or disagrees with the fixed sizes."""
        if shape is None:
            if None in self.shape:
                raise ValueError(f"modality kind {self.name!r} takes sizes from the data (shape {_shown(self.shape)}); "
                                 f"give the data's shape")
            return tuple(self.shape)
        shape = tuple(int(size) for size in shape)
        if len(shape) != len(self.shape) or any(fixed not in (None, size) for fixed, size in zip(self.shape, shape)):
            raise ValueError(f"modality kind {self.name!r} takes examples of shape {_shown(self.shape)}, not {shape}")
        return shape

    def build(self, name: str, latent_dim: int, architecture: str, hidden_dims: tuple[int, ...] | None = None,
              shape: tuple[int, ...] | None = None) -> Modality:
        """A new :class:`Modality` of this kind called ``name`` (``shape``: the data's example shape,
        needed where this kind leaves sizes to the data)."""
        shape = self.resolve_shape(shape)
        encoder, decoder = self.networks(shape, latent_dim, architecture, hidden_dims)
        likelihood = build_likelihood(self.likelihood, event_dims=len(shape), **self.likelihood_params)
        return Modality(name, self.name, shape, encoder, decoder.to(memory_format=self.memory_format), likelihood,
                        self.min_scale, memory_format=self.memory_format, format=self.format)


def check_networks(modality: Modality, latent_dim: int, encoder: nn.Module | None = None, decoder: nn.Module | None = None,
                   subject: str = "") -> None:
    """Refuse, in one ValueError line starting with ``subject``, an ``encoder`` that does not map a
    batch of two of ``modality``'s examples to (loc, raw_scale), each (2, latent_dim), or a
    ``decoder`` that does not map (2, latent_dim) to the likelihood's parameters (2, *shape). Each
    is checked by one forward pass (eval mode, no gradients; its mode is restored); None: not checked."""
    probe = get_format(modality.format).prepare(torch.zeros(2, *modality.data_shape))
    code = str((2, latent_dim))
    checks = [("encoder", encoder, probe, f"({code}, {code})", "(loc, raw_scale) "),
              ("decoder", decoder, torch.zeros(2, latent_dim), str((2, *modality.shape)), "")]
    for part, network, x, wanted, what in checks:
        if network is not None and (returned := _returned(network, x)) != wanted:
            raise ValueError(f"{subject}: the {part} must map a batch {tuple(x.shape)} to {what}{wanted}; it returned {returned}")


def _returned(network: nn.Module, x: torch.Tensor):
    """What ``network(x)`` returns, described by shape: "(2, 8)" for a tensor, "((2, 8), (2, 8))"
    for a tuple of tensors. Run in eval mode without gradients on the network's device (its mode
    restored); a failure is described in one line."""
    training = network.training
    network.eval()
    try:
        with torch.no_grad():
            output = network(x.to(next(network.parameters(), x).device))
    except Exception as error:  # noqa: BLE001 - any failure of a user network is reported in one line
        return f"an error ({type(error).__name__}: {(str(error).splitlines() or [''])[0]})"
    finally:
        network.train(training)
    if isinstance(output, torch.Tensor):
        return str(tuple(output.shape))
    if isinstance(output, (tuple, list)) and all(isinstance(t, torch.Tensor) for t in output):
        return f"({', '.join(str(tuple(t.shape)) for t in output)})"
    return f"a {type(output).__name__}"


def _shown(shape) -> str:
    """(32, None) as "(32, any)"."""
    sizes = ["any" if size is None else str(size) for size in shape]
    return f"({sizes[0]},)" if len(sizes) == 1 else f"({', '.join(sizes)})"


def _densities_dtype(t: torch.Tensor) -> torch.Tensor:
    """``t`` in the precision densities are computed in: float32 for lower-precision network
    outputs (bfloat16 under mixed precision), float32 and float64 as they are."""
    return t if t.dtype in (torch.float32, torch.float64) else t.float()
