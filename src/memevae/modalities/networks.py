"""Encoder and decoder networks of the paper's Table 8 (App. K) and of the authors' release.

Every encoder maps a batch of inputs to ``(loc, raw_scale)``; the :class:`~memevae.modalities.Modality`
that owns it turns ``raw_scale`` into a scale (softplus, clamped below). Every decoder maps a flat
batch of latents (n, L) to the likelihood's parameters for n examples.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import nn


class MLPEncoder(nn.Module):
    """MLP encoder for flat-able inputs (MNIST 1x28x28).

    ``style="paper"`` is Table 8a: input -> FC(h) ReLU -> two FC(L) heads.
    ``style="release"`` is the authors' release: input -> FC(h1) ELU -> FC(h2), softplus, then two
    linear heads.
    """

    def __init__(self, input_shape: tuple[int, ...], latent_dim: int, hidden_dims: tuple[int, ...], style: str):
        super().__init__()
        in_features = math.prod(input_shape)
        layers: list[nn.Module] = []
        width = in_features
        if style == "paper":
            for hidden in hidden_dims:
                layers += [nn.Linear(width, hidden), nn.ReLU()]
                width = hidden
        elif style == "release":
            for i, hidden in enumerate(hidden_dims):
                layers.append(nn.Linear(width, hidden))
                layers.append(nn.ELU() if i < len(hidden_dims) - 1 else nn.Softplus())
                width = hidden
        else:
            raise ValueError(f"unknown MLP style {style!r}; choose 'paper' or 'release'")
        self.body = nn.Sequential(nn.Flatten(), *layers)
        self.loc = nn.Linear(width, latent_dim)
        self.raw_scale = nn.Linear(width, latent_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = self.body(x)
        return self.loc(hidden), self.raw_scale(hidden)


class MLPDecoder(nn.Module):
    """MLP decoder: L -> [FC(h) ReLU]* -> FC(prod(shape)) -> sigmoid, reshaped to ``output_shape``."""

    def __init__(self, output_shape: tuple[int, ...], latent_dim: int, hidden_dims: tuple[int, ...]):
        super().__init__()
        layers: list[nn.Module] = []
        width = latent_dim
        for hidden in hidden_dims:
            layers += [nn.Linear(width, hidden), nn.ReLU()]
            width = hidden
        layers += [nn.Linear(width, math.prod(output_shape)), nn.Sigmoid(), nn.Unflatten(1, output_shape)]
        self.body = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.body(z)


class ConvEncoder(nn.Module):
    """Convolutional encoder for 3x32x32 images (SVHN, textured digits).

    ``style="paper"`` is Table 8b: 4x4 convs 32-64-128 (stride 2, ReLU), then two 4x4 convs to L.
    ``style="release"`` adds BatchNorm after each conv and a 4x4 conv to 512 channels (BatchNorm,
    no activation) followed by two linear heads, as in the authors' release.
    """

    def __init__(self, input_shape: tuple[int, ...], latent_dim: int, style: str, channels=(32, 64, 128), head_channels: int = 512):
        super().__init__()
        if tuple(input_shape[1:]) != (32, 32):
            raise ValueError(f"ConvEncoder expects Cx32x32 inputs, got {tuple(input_shape)}")
        if style not in ("paper", "release"):
            raise ValueError(f"unknown conv style {style!r}; choose 'paper' or 'release'")
        batch_norm = style == "release"
        layers: list[nn.Module] = []
        width = input_shape[0]
        for out in channels:
            layers.append(nn.Conv2d(width, out, 4, 2, 1))
            if batch_norm:
                layers.append(nn.BatchNorm2d(out))
            layers.append(nn.ReLU())
            width = out
        if style == "release":
            layers += [WholeInputConv2d(width, head_channels, 4), nn.BatchNorm2d(head_channels), nn.Flatten()]
            self.loc = nn.Linear(head_channels, latent_dim)
            self.raw_scale = nn.Linear(head_channels, latent_dim)
        else:
            self.loc = nn.Sequential(WholeInputConv2d(width, latent_dim, 4), nn.Flatten())
            self.raw_scale = nn.Sequential(WholeInputConv2d(width, latent_dim, 4), nn.Flatten())
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = self.body(x)
        return self.loc(hidden), self.raw_scale(hidden)


# Which tap of a 4x4, stride-2, padding-1 transposed kernel joins input offset d - 1 (d = 0, 1, 2)
# to output phase a (output row 2i + a): tap a + 3 - 2d, where 4 and -1 mean "none" (index 4 of
# a kernel padded with a zero row and column).
_SUB_PIXEL_TAPS = torch.tensor([[3, 1, 4], [4, 2, 0]])


ACTIVATIONS = {None: None, "relu": torch.relu, "sigmoid": torch.sigmoid}


def autocast_dtype(device_type: str) -> torch.dtype | None:
    """The lower precision ``torch.autocast`` computes in on ``device_type`` (``--precision bf16``),
    or None when autocast is off."""
    try:
        enabled, dtype = torch.is_autocast_enabled(device_type), torch.get_autocast_dtype(device_type)
    except (TypeError, AttributeError):  # torch < 2.4 names them per device
        cpu = device_type == "cpu"
        enabled = torch.is_autocast_cpu_enabled() if cpu else torch.is_autocast_enabled()
        dtype = torch.get_autocast_cpu_dtype() if cpu else torch.get_autocast_gpu_dtype()
    return dtype if enabled else None


def _activate(out: torch.Tensor, activation: str | None) -> torch.Tensor:
    return ACTIVATIONS[activation](out) if activation else out


@lru_cache(maxsize=1)
def fused_kernels_available() -> bool:
    """Whether this torch build offers oneDNN's fused convolution-activation kernels
    (``torch.ops.mkldnn._convolution_pointwise`` and its transposed form: private operators, so
    checked rather than assumed; without them the layers use torch's public ones)."""
    try:
        return torch.backends.mkldnn.is_available() and all(
            hasattr(torch.ops.mkldnn, name) for name in ("_convolution_pointwise", "_convolution_transpose_pointwise"))
    except (AttributeError, RuntimeError):
        return False


@lru_cache(maxsize=1)
def bfloat16_kernels_available() -> bool:
    """Whether this CPU runs oneDNN's bfloat16 kernels (torch needs AVX-512 BW/VL/DQ or
    AVX-NE-CONVERT and refuses them on an AVX2-only CPU; torch's public convolutions still run
    bfloat16 there, by another path)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def _fuses_activation(x: torch.Tensor) -> bool:
    """Whether oneDNN can apply the activation inside the convolution: a CPU float32 tensor, or a
    bfloat16 one on a CPU with oneDNN's bfloat16 kernels."""
    wanted = x.dtype == torch.float32 or (x.dtype == torch.bfloat16 and bfloat16_kernels_available())
    return x.device.type == "cpu" and wanted and fused_kernels_available()


def _convolution(x, weight, bias, padding, activation):
    """``activation(conv2d(x, weight, bias, padding=padding))``, fused into one oneDNN pass on a CPU."""
    if _fuses_activation(x):
        return torch.ops.mkldnn._convolution_pointwise(x, weight, bias, padding, (1, 1), (1, 1), 1, activation or "none", [], "")
    return _activate(F.conv2d(x, weight, bias, padding=padding), activation)


def _transposed_convolution(x, weight, bias, stride, padding, activation):
    """``activation(conv_transpose2d(x, weight, bias, stride, padding))``, fused on a CPU."""
    if _fuses_activation(x):
        return torch.ops.mkldnn._convolution_transpose_pointwise(
            x, weight, bias, padding, (0, 0), stride, (1, 1), 1, activation or "none", [], "")
    return _activate(F.conv_transpose2d(x, weight, bias, stride, padding), activation)


def _sub_pixel_transposed_convolution(x, weight, bias, activation):
    """``conv_transpose2d(x, weight, bias, stride=2, padding=1)`` for a 4x4 kernel (then the
    activation), computed as a 3x3 convolution to 4C channels (one per channel c and output phase
    (a, b), in that order) and a pixel shuffle, which puts channel 4c + 2a + b at pixel (2i + a, 2j + b).

    The 3x3 kernel holds the 4x4 kernel's taps and zeros, so this is the same map; it costs 2.25x
    the multiply-adds but, for a handful of output channels (C = 3 for RGB images), runs about
    twice as fast as oneDNN's transposed convolution, which vectorises over output channels.
    torch's pixel shuffle of channels-last memory interleaves the phases about 3x faster than a
    permuted copy (21.6 ms against 71 ms for MEME's M = 5 decoder output, 5,760 images, 2 threads).
    """
    in_channels, channels = weight.shape[:2]
    padded = F.pad(weight, (0, 1, 0, 1))
    taps = _SUB_PIXEL_TAPS.to(weight.device)
    # padded[ci, c, taps[a, dh], taps[b, dw]] -> (c, a, b, ci, dh, dw) -> (4C, Cin, 3, 3)
    sub_pixel = padded[:, :, taps[:, :, None, None], taps[None, None, :, :]].permute(1, 2, 4, 0, 3, 5)
    sub_pixel = sub_pixel.reshape(4 * channels, in_channels, 3, 3).contiguous(memory_format=torch.channels_last)
    phases = _convolution(x, sub_pixel, None if bias is None else bias.repeat_interleave(4), (1, 1), activation)
    return F.pixel_shuffle(phases, 2)


class _TransposedConvolution(torch.autograd.Function):
    """``activation(F.conv_transpose2d(...))`` with the activation fused into the convolution and
    a backward written through the adjoint convolution.

    A transposed convolution is the adjoint (input gradient) of the convolution with the same
    weight, so its gradients are that convolution's pieces: the input gradient is
    ``conv2d(grad, W)`` and the weight gradient is the convolution's weight gradient with ``grad``
    as input and ``x`` as output gradient. The values are those of autograd's own backward; only
    the kernels differ. On a CPU, oneDNN computes the convolution's weight gradient in
    channels-last memory with its brgemm kernels, about 1.7x faster than the transposed
    convolution's weight gradient, and applies the activation in the same pass as the
    convolution (README "Speed").
    """

    @staticmethod
    def forward(ctx, x, weight, bias, stride, padding, activation):
        if weight.shape[1] < 16 and weight.shape[2:] == (4, 4) and tuple(stride) == (2, 2) and tuple(padding) == (1, 1):
            out = _sub_pixel_transposed_convolution(x, weight, bias, activation)
        else:
            out = _transposed_convolution(x, weight, bias, stride, padding, activation)
        ctx.save_for_backward(x, weight, out if activation else None)
        ctx.stride, ctx.padding, ctx.has_bias, ctx.activation = stride, padding, bias is not None, activation
        return out

    @staticmethod
    def backward(ctx, grad_out):
        x, weight, out = ctx.saved_tensors
        if ctx.activation == "relu":
            grad_out = torch.ops.aten.threshold_backward(grad_out, out, 0)
        elif ctx.activation == "sigmoid":
            grad_out = torch.ops.aten.sigmoid_backward(grad_out, out)
        grad_x = grad_weight = grad_bias = None
        if ctx.needs_input_grad[0]:
            grad_x = F.conv2d(grad_out, weight, None, ctx.stride, ctx.padding)
        if ctx.needs_input_grad[1]:
            grad_weight = torch.ops.aten.convolution_backward(
                x, grad_out, weight, None, ctx.stride, ctx.padding, (1, 1), False, (0, 0), 1, (False, True, False))[1]
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_bias = _channel_sums(grad_out)
        return grad_x, grad_weight, grad_bias, None, None, None


def _channel_sums(grad: torch.Tensor) -> torch.Tensor:
    """``grad.sum((0, 2, 3))``; for channels-last memory, read as rows of 16 pixels x C channels,
    whose column sums vectorise however few the channels (about 2x faster for C = 3)."""
    channels = grad.shape[1]
    if grad.is_contiguous(memory_format=torch.channels_last) and (grad.numel() // channels) % 16 == 0:
        return grad.permute(0, 2, 3, 1).reshape(-1, 16 * channels).sum(0).view(16, channels).sum(0)
    return grad.sum((0, 2, 3))


def _all_finite(*tensors: torch.Tensor | None) -> bool:
    """Whether the tensors hold no NaN or inf: one sum each, which a NaN or inf makes non-finite
    (a sum that overflows reads as non-finite too, which only costs the caller its slow path)."""
    with torch.no_grad():
        return all(bool(torch.isfinite(t.sum())) for t in tensors if t is not None)


class TransposedConv2d(nn.ConvTranspose2d):
    """:class:`torch.nn.ConvTranspose2d` (no groups, dilation or output padding) followed by
    ``activation`` ("relu", "sigmoid" or None), computed by :class:`_TransposedConvolution`; the
    same parameters, values and gradients as the torch layers. Inputs or parameters holding NaN or
    inf go through torch's own layers, so NaN and inf come out where torch's put them."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int, padding: int,
                 activation: str | None = None):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding)
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; choose one of {', '.join(map(str, ACTIVATIONS))}")
        self.activation = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not _all_finite(x, self.weight, self.bias):
            # torch's layers carry NaN and inf through; oneDNN's fused ReLU maps NaN to 0, and the
            # sub-pixel form meets them with its zero taps (0 * inf = NaN), so take torch's path
            return _activate(F.conv_transpose2d(x, self.weight, self.bias, self.stride, self.padding), self.activation)
        dtype = autocast_dtype(x.device.type)
        if dtype is None:
            return _TransposedConvolution.apply(x, self.weight, self.bias, self.stride, self.padding, self.activation)
        # mixed precision: the same layer with inputs and parameters cast as autocast casts a
        # convolution's (the casts are differentiable, so gradients reach the float32 parameters)
        with torch.autocast(x.device.type, enabled=False):
            return _TransposedConvolution.apply(x.to(dtype), self.weight.to(dtype), self.bias.to(dtype), self.stride,
                                                self.padding, self.activation)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", activation={self.activation}"


class LatentProjection(TransposedConv2d):
    """A 4x4 transposed convolution (stride 1, no padding) applied to a 1x1 input, then
    ``activation``, computed as the matrix product it is: out[n, c, h, w] = sum_l z[n, l] W[l, c, h, w] + b[c].

    Same parameters and the same maths as :class:`torch.nn.ConvTranspose2d`, but one ``addmm``
    instead of a convolution (forward and backward about 8x faster on a CPU for a decoder's
    (K+2)B latents). The result is in channels-last memory order, which the next transposed
    convolution prefers.
    """

    def __init__(self, latent_dim: int, out_channels: int, kernel_size: int = 4, activation: str | None = None):
        super().__init__(latent_dim, out_channels, kernel_size, 1, 0, activation)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        n, latent_dim = z.shape[0], self.in_channels
        size = self.kernel_size[0]
        # (L, C, k, k) -> (L, k, k, C) so the product's rows are NHWC images (a view for channels-last weights).
        weight = self.weight.permute(0, 2, 3, 1).reshape(latent_dim, -1)
        out = _activate(torch.addmm(self.bias.repeat(size * size), z.reshape(n, latent_dim), weight), self.activation)
        return out.reshape(n, size, size, self.out_channels).permute(0, 3, 1, 2)


class WholeInputConv2d(nn.Conv2d):
    """A convolution whose kernel covers its whole input (no padding), computed as the matrix
    product it is: out[n, o] = sum_{c,h,w} x[n, c, h, w] W[o, c, h, w] + b[o], returned as (n, o, 1, 1).

    Same parameters and maths as :class:`torch.nn.Conv2d`; one ``addmm`` runs several times faster
    on a CPU than oneDNN's convolution for this shape (forward and backward).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int):
        super().__init__(in_channels, out_channels, kernel_size, 1, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[-2:]) != self.kernel_size:
            raise ValueError(f"WholeInputConv2d with a {self.kernel_size} kernel expects inputs of that spatial size, "
                             f"got {tuple(x.shape)}")
        out = torch.addmm(self.bias, x.flatten(1), self.weight.flatten(1).t())
        return out[:, :, None, None]


class ConvDecoder(nn.Module):
    """Transposed-convolution decoder, L -> 128x4x4 -> 64x8x8 -> 32x16x16 -> Cx32x32, sigmoid (Table 8b)."""

    def __init__(self, output_shape: tuple[int, ...], latent_dim: int, channels=(128, 64, 32)):
        super().__init__()
        layers: list[nn.Module] = [nn.Unflatten(1, (latent_dim, 1, 1)), LatentProjection(latent_dim, channels[0], activation="relu")]
        for width, out in zip(channels[:-1], channels[1:]):
            layers.append(TransposedConv2d(width, out, 4, 2, 1, activation="relu"))
        layers.append(TransposedConv2d(channels[-1], output_shape[0], 4, 2, 1, activation="sigmoid"))
        # Each layer carries its activation (fused into the convolution); the layers are named
        # 0, 1, 3, 5, ... as they were when activations were layers of their own, so parameter
        # names, and the checkpoints that hold them, are unchanged.
        self.body = nn.Sequential(OrderedDict((str(max(0, 2 * i - 1)), layer) for i, layer in enumerate(layers)))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.body(z)
