"""Closed-form log-densities used by every objective.

These are plain tensor functions rather than ``torch.distributions`` objects: the objectives call
them hundreds of times per step, and ``torch.distributions`` validates its arguments and builds
broadcast views on every call (the authors' release spends a visible share of its step there).
Each function is checked against ``torch.distributions`` in ``tests/test_distributions.py``.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
from dataclasses import dataclass

import torch

LOG_2PI = math.log(2.0 * math.pi)
LOG_2 = math.log(2.0)

_SHARD: contextvars.ContextVar[tuple[int, int, int] | None] = contextvars.ContextVar("shard", default=None)


@contextlib.contextmanager
def batch_shard(start: int, stop: int, total: int):
    """Within this context the distributions hold rows ``start:stop`` of a batch of ``total`` rows,
    and every draw from torch's global generator is the draw for the whole batch, sliced to those
    rows: a process of a data-parallel run then uses the noise one process would use for its rows,
    and its generator advances as that process's would (:mod:`memevae.training.distributed`)."""
    token = _SHARD.set((start, stop, total))
    try:
        yield
    finally:
        _SHARD.reset(token)


def _noise(draw, shape: tuple[int, ...], batch_dim: int, generator) -> torch.Tensor:
    """``draw(shape)``, or under :func:`batch_shard` (global generator only) the slice of
    ``draw`` over the whole batch that belongs to the shard's rows."""
    shard = _SHARD.get()
    if shard is None or generator is not None:
        return draw(shape)
    start, stop, total = shard
    if shape[batch_dim] != stop - start:
        raise RuntimeError(f"a draw of shape {shape} in a shard of rows {start}:{stop}: its dimension {batch_dim} is not the batch")
    whole = draw(shape[:batch_dim] + (total,) + shape[batch_dim + 1:])
    return whole.narrow(batch_dim, start, stop - start)


@dataclass
class DiagonalGaussian:
    """N(loc, diag(scale^2)) over the last dimension; leading dimensions are batch dimensions.

    Example:
        >>> q = DiagonalGaussian(torch.zeros(3, 2), torch.ones(3, 2))
        >>> q.rsample((5,)).shape
        torch.Size([5, 3, 2])
    """

    loc: torch.Tensor
    scale: torch.Tensor

    def rsample(self, sample_shape: tuple[int, ...] = (), generator: torch.Generator | None = None) -> torch.Tensor:
        """Reparameterised sample loc + scale * eps, shape ``sample_shape + loc.shape``; the noise
        comes from ``generator`` when given (drawn on its device, e.g. a CPU generator for results
        that do not depend on the device), else from torch's global generator."""
        shape = tuple(sample_shape) + tuple(self.loc.shape)
        device = generator.device if generator is not None else self.loc.device
        draw = lambda size: torch.randn(size, generator=generator, dtype=self.loc.dtype, device=device)  # noqa: E731
        eps = _noise(draw, shape, len(tuple(sample_shape)), generator).to(self.loc.device)
        return self.loc + self.scale * eps

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """log N(z; loc, scale), summed over the last (latent) dimension."""
        return gaussian_log_prob(z, self.loc, self.scale)

    def kl(self, other: "DiagonalGaussian") -> torch.Tensor:
        """Analytic KL(self || other), summed over the latent dimension."""
        return gaussian_kl(self.loc, self.scale, other.loc, other.scale)

    def detach(self) -> "DiagonalGaussian":
        return DiagonalGaussian(self.loc.detach(), self.scale.detach())

    def __getitem__(self, rows) -> "DiagonalGaussian":
        return DiagonalGaussian(self.loc[rows], self.scale[rows])


@dataclass
class DiagonalLaplace:
    """Laplace(loc, scale) independently over the last dimension; leading dimensions are batch
    dimensions. The latent distribution of MMVAE's official code (Shi et al. 2019) and of MEME's
    App. I; it offers what the evaluation uses of :class:`DiagonalGaussian` (``loc``, ``scale``,
    ``rsample``, ``log_prob``). ``rsample`` draws the same noise as ``torch.distributions.Laplace``.

    Example:
        >>> q = DiagonalLaplace(torch.zeros(3, 2), torch.ones(3, 2))
        >>> q.rsample((5,)).shape, q.log_prob(torch.zeros(3, 2)).shape
        (torch.Size([5, 3, 2]), torch.Size([3]))
    """

    loc: torch.Tensor
    scale: torch.Tensor

    def rsample(self, sample_shape: tuple[int, ...] = (), generator: torch.Generator | None = None) -> torch.Tensor:
        """Reparameterised sample loc - scale * sign(u) * log(1 - |u|), u ~ U(eps - 1, 1); the noise
        comes from ``generator`` when given (as :meth:`DiagonalGaussian.rsample`)."""
        shape = tuple(sample_shape) + tuple(torch.broadcast_shapes(self.loc.shape, self.scale.shape))
        device = generator.device if generator is not None else self.loc.device
        low = torch.finfo(self.loc.dtype).eps - 1
        draw = lambda size: torch.empty(size, dtype=self.loc.dtype, device=device).uniform_(low, 1, generator=generator)  # noqa: E731
        u = _noise(draw, shape, len(tuple(sample_shape)), generator).to(self.loc.device)
        return self.loc - self.scale * u.sign() * torch.log1p(-u.abs())

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """log Laplace(z; loc, scale), summed over the last (latent) dimension."""
        return -((z - self.loc).abs() / self.scale + (2.0 * self.scale).log()).sum(-1)

    def detach(self) -> "DiagonalLaplace":
        return DiagonalLaplace(self.loc.detach(), self.scale.detach())

    def __getitem__(self, rows) -> "DiagonalLaplace":
        return DiagonalLaplace(self.loc[rows], self.scale[rows])


@dataclass
class MixtureOfExperts:
    """The equally weighted mixture (1/M) sum_m q_m(z) of M experts over the same latents: MMVAE's
    joint posterior (Shi et al. 2019). ``rsample`` draws each sample from an expert chosen
    uniformly at random (noise from ``generator`` when given); ``log_prob`` is
    logsumexp_m log q_m(z) - log M.

    Example:
        >>> q = MixtureOfExperts([DiagonalGaussian(torch.zeros(2), torch.ones(2)), DiagonalGaussian(torch.ones(2), torch.ones(2))])
        >>> q.rsample((4,)).shape, q.log_prob(torch.zeros(2)).shape
        (torch.Size([4, 2]), torch.Size([]))
    """

    experts: list

    @property
    def loc(self) -> torch.Tensor:
        """The mixture's mean, (1/M) sum_m loc_m (what evaluation takes as a point code)."""
        return torch.stack([q.loc for q in self.experts]).mean(0)

    def rsample(self, sample_shape: tuple[int, ...] = (), generator: torch.Generator | None = None) -> torch.Tensor:
        draws = torch.stack([q.rsample(sample_shape, generator=generator) for q in self.experts])  # (M, *S, *B, L)
        device = generator.device if generator is not None else draws.device
        draw = lambda size: torch.randint(len(self.experts), size, generator=generator, device=device)  # noqa: E731
        pick = _noise(draw, tuple(draws.shape[1:-1]), len(tuple(sample_shape)), generator).to(draws.device)
        return draws.gather(0, pick[None, ..., None].expand(1, *draws.shape[1:]))[0]

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """log (1/M) sum_m q_m(z), summed over the latent dimension within each expert."""
        return torch.logsumexp(torch.stack([q.log_prob(z) for q in self.experts]), 0) - math.log(len(self.experts))


def gaussian_product(locs, scales) -> DiagonalGaussian:
    """The normalised product of Gaussian experts prod_i N(loc_i, scale_i), itself a Gaussian.

    Precision-weighted (Wu & Goodman 2018; Hinton 2002): with T_i = scale_i^-2,
    scale^2 = 1 / sum_i T_i and loc = scale^2 * sum_i T_i loc_i, per latent dimension. ``locs``
    and ``scales`` are sequences of tensors that broadcast together (so a prior expert may be
    ``torch.zeros(L)``/``torch.ones(L)``).

    Example:
        >>> q = gaussian_product([torch.tensor([2.0]), torch.tensor([0.0])], [torch.tensor([1.0]), torch.tensor([1.0])])
        >>> q.loc, q.scale
        (tensor([1.]), tensor([0.7071]))
    """
    if len(locs) != len(scales) or not locs:
        raise ValueError(f"need one scale per expert and at least one expert, got {len(locs)} locs and {len(scales)} scales")
    precision = sum(scale.pow(-2) for scale in scales)
    weighted = sum(loc * scale.pow(-2) for loc, scale in zip(locs, scales))
    variance = precision.reciprocal()
    return DiagonalGaussian(weighted * variance, variance.sqrt())


def gaussian_log_prob(z: torch.Tensor, loc: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """sum_l log N(z_l; loc_l, scale_l) with broadcasting over leading dimensions."""
    standardised = (z - loc) / scale
    return -(0.5 * standardised.pow(2) + scale.log()).sum(-1) - 0.5 * LOG_2PI * z.shape[-1]


def gaussian_kl(loc_q, scale_q, loc_p, scale_p) -> torch.Tensor:
    """KL(N(loc_q, scale_q) || N(loc_p, scale_p)) for diagonal Gaussians, summed over the last dim.

    KL = sum_l [log(s_p/s_q) + (s_q^2 + (m_q - m_p)^2) / (2 s_p^2) - 1/2].
    """
    var_ratio = (scale_q / scale_p).pow(2)
    mean_term = ((loc_q - loc_p) / scale_p).pow(2)
    return 0.5 * (var_ratio + mean_term - 1.0 - var_ratio.log()).sum(-1)


_MIXTURE_BLOCK = 2**21
"""Elements of z - loc per block in :func:`gaussian_mixture_log_prob` without gradients (8 MB in float32)."""


def gaussian_mixture_log_prob(z: torch.Tensor, loc: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """log (1/N) sum_i N(z; loc_i, scale_i): an equal-weight mixture of N diagonal Gaussians.

    ``z`` is (..., L); ``loc``/``scale`` are (N, L). Returns (...). Computed with logsumexp over
    the components, as the mixture prior p_lambda(z) of Eq. 4 needs.
    """
    if torch.is_grad_enabled() and (z.requires_grad or loc.requires_grad or scale.requires_grad):
        per_component = gaussian_log_prob(z.unsqueeze(-2), loc, scale)  # (..., N)
        return torch.logsumexp(per_component, dim=-1) - math.log(loc.shape[0])
    # Without gradients (the importance-sampled likelihoods evaluate (K, B, N, L) of these), a
    # block of rows of z at a time, each operation of gaussian_log_prob done in place: one buffer
    # of a few megabytes that malloc reuses and the cache holds, instead of five fresh ones of
    # the whole size. The same operations on the same values, so the same result.
    flat = z.reshape(-1, z.shape[-1])
    log_scale, constant = scale.log(), 0.5 * LOG_2PI * z.shape[-1]
    blocks = []
    for part in flat.split(max(1, _MIXTURE_BLOCK // max(1, loc.numel()))):
        standardised = (part.unsqueeze(-2) - loc).div_(scale)
        per_component = standardised.pow_(2).mul_(0.5).add_(log_scale).sum(-1).neg_().sub_(constant)
        blocks.append(torch.logsumexp(per_component, dim=-1))
    return torch.cat(blocks).reshape(z.shape[:-1]) - math.log(loc.shape[0])


def laplace_log_prob(x: torch.Tensor, loc: torch.Tensor, scale: float, event_dims: int) -> torch.Tensor:
    """log Laplace(x; loc, scale) summed over the last ``event_dims`` dimensions (fixed scalar scale).

    Sums |x - loc| first and scales the sum (two full-size passes fewer than scaling each
    element), by :func:`absolute_error_sum`."""
    absolute_error = absolute_error_sum(x, loc, event_dims)
    return absolute_error / -scale - math.log(2.0 * scale) * math.prod(x.shape[-event_dims:])


def absolute_error_sum(x: torch.Tensor, loc: torch.Tensor, event_dims: int) -> torch.Tensor:
    """sum |loc - x| over the last ``event_dims`` dimensions, ``x`` broadcast against ``loc``: the
    value (the same operations) and gradients of ``(loc - x).abs().sum(dims)`` (the gradient at
    loc = x is 0, as torch's), making two full-size tensors instead of autograd's three and keeping
    none of them from the forward to the backward.

    A likelihood scores every decoded latent of a step (MEME: (K+2) B per decoder; MMVAE: M K B),
    so these tensors are the largest of the step (MMVAE's official step: 94 MB for SVHN), and each
    pass over them is memory traffic; a fresh one above malloc's 32 MB heap limit is also freshly
    mapped pages. The forward takes the absolute values of the difference in place and sums them
    (one full-size tensor, freed at once), and saves nothing new: ``x`` and ``loc`` (the decoder's
    output, which the decoder keeps for its own backward). The backward recomputes the difference
    into the tensor it returns and turns it into sign times gradient in place: the same operations
    on the same values as autograd's, so the same values and gradients.
    (``torch.linalg.vector_norm`` with ord 1 would sum the absolute values without the temporary,
    but its float32 sum is about 20x less accurate than ``sum``'s, measured over 3,072 pixels.)
    """
    dims = tuple(range(-event_dims, 0))
    x = in_layout_of(x, loc)
    if not torch.is_grad_enabled() or not (loc.requires_grad or x.requires_grad):
        return (loc - x).abs().sum(dims)
    return _AbsoluteErrorSum.apply(x, loc, dims)


def in_layout_of(x: torch.Tensor, loc: torch.Tensor) -> torch.Tensor:
    """``x`` (images, (B, C, H, W)) in channels-last memory when ``loc``, decoded images it is
    broadcast against ((..., B, C, H, W)), holds each image channels-last, as memevae's
    convolutional decoders write them; else ``x`` itself. The values are the same; an elementwise
    pass over the two then reads both in one order instead of gathering one of them, and hands the
    decoder a gradient in its own layout: on MEME's M = 5 decoder output (5,760 images of 3x32x32,
    2 threads), |loc - x| summed per image took 5.6 ms instead of 9.9, and the decoder's sigmoid
    backward 5.1 ms instead of 24.1.

    Example:
        >>> loc = torch.zeros(6, 3, 4, 4).contiguous(memory_format=torch.channels_last).view(2, 3, 3, 4, 4)
        >>> in_layout_of(torch.ones(3, 3, 4, 4), loc).stride()
        (48, 1, 12, 3)
    """
    if x.dim() != 4 or loc.dim() < 4 or x.shape[1] < 2 or x.stride(1) == 1 or loc.stride(-3) != 1:
        return x
    return x.contiguous(memory_format=torch.channels_last)


class _AbsoluteErrorSum(torch.autograd.Function):
    """:func:`absolute_error_sum` with the difference recomputed in the backward (see there)."""

    @staticmethod
    def forward(ctx, x, loc, dims):
        ctx.save_for_backward(x, loc)
        ctx.dims = dims
        return (loc - x).abs_().sum(dims)

    @staticmethod
    def backward(ctx, grad):
        x, loc = ctx.saved_tensors
        grad_difference = torch.sub(loc, x).sign_().mul_(grad.reshape(grad.shape + (1,) * len(ctx.dims)))
        grad_x = -grad_difference.sum_to_size(x.shape) if ctx.needs_input_grad[0] else None
        grad_loc = grad_difference.sum_to_size(loc.shape) if ctx.needs_input_grad[1] else None
        return grad_x, grad_loc, None
