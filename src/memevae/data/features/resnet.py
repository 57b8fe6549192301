"""ResNet-101 in plain torch, for the CUB image features of the paper's Table 8c (App. K): the image
modality of the CUB image-caption experiment is the 2048-d global-average-pooled output of an
ImageNet ResNet-101, one vector per image.

torchvision cannot be relied on (memevae needs only torch), so the network is defined here: the
standard "v1.5" ResNet-101 (He et al. 2016; bottleneck blocks [3, 4, 23, 3], expansion 4, the stride
on the 3x3 convolution of a block), with parameter and buffer names identical to torchvision's
``resnet101`` state dict (``conv1``, ``bn1``, ``layer3.22.bn3.running_var``,
``layer4.0.downsample.0.weight``, ``fc``...; 44,549,160 parameters), so torchvision's ImageNet
files load with ``load_state_dict(strict=True)``:

- ``resnet101-63fe2227.pth``: ``ResNet101_Weights.IMAGENET1K_V1``, the weights the official MMVAE
  code used (``models.resnet101(pretrained=True)``); the default, downloaded from
  :data:`IMAGENET_V1_URL` into the torch hub cache when no file is given;
- ``resnet101-cd907fc2.pth``: ``IMAGENET1K_V2`` (a later training recipe); accepted with
  ``weights=FILE``, but it is not the paper's setting.

Weights are never made up silently: :func:`build_resnet101` either loads a verified file, downloads
the official one, or, only when asked for ``"untrained"`` explicitly (tests of the plumbing),
returns a deterministically initialised network that its caller must label as untrained.
"""

from __future__ import annotations

import functools
import hashlib
import os
import socket
import urllib.error
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Mapping

import torch
from torch import Tensor, nn

from ..errors import DataError

IMAGENET_V1_FILE = "resnet101-63fe2227.pth"
"""torchvision's ``ResNet101_Weights.IMAGENET1K_V1`` file (the name holds its sha256 prefix)."""
IMAGENET_V2_FILE = "resnet101-cd907fc2.pth"
"""torchvision's ``ResNet101_Weights.IMAGENET1K_V2`` file."""
IMAGENET_V1_URL = f"https://download.pytorch.org/models/{IMAGENET_V1_FILE}"
"""Where torchvision downloads :data:`IMAGENET_V1_FILE` from."""
DOWNLOAD_TIMEOUT = 15.0
"""Seconds any one network operation of the weights download may stall before it fails."""
FEATURE_DIM = 2048
"""Width of the pooled output of ResNet-101 (512 x expansion 4)."""
PARAMETERS = 44_549_160
"""Parameters of torchvision's ``resnet101`` (fc included)."""
UNTRAINED = "untrained"
"""The explicit ``weights`` value that asks for a randomly initialised network (tests only)."""


class Bottleneck(nn.Module):
    """One bottleneck block: 1x1 (width) -> 3x3 (width, ``stride``) -> 1x1 (4 x width), each followed
    by BatchNorm, ReLU after the first two and after the residual sum; ``downsample`` (a strided 1x1
    conv and BatchNorm, named ``downsample.0``/``downsample.1``) maps the input when shapes differ."""

    expansion = 4

    def __init__(self, in_channels: int, width: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        out = width * self.expansion
        self.conv1 = nn.Conv2d(in_channels, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return self.relu(y + identity)


class ResNet(nn.Module):
    """A bottleneck ResNet with torchvision's module names: a 7x7/2 stem conv, BatchNorm, ReLU and a
    3x3/2 max pool, four stages ``layer1``..``layer4`` of widths 64, 128, 256, 512 (stride 2 from the
    second stage on), global average pooling and a linear classifier ``fc``.
    :meth:`features` is the pooled vector before ``fc``."""

    def __init__(self, blocks: tuple[int, int, int, int] = (3, 4, 23, 3), classes: int = 1000):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        channels = 64
        for stage, (count, width) in enumerate(zip(blocks, (64, 128, 256, 512)), start=1):
            stride = 1 if stage == 1 else 2
            layers = []
            for i in range(count):
                s = stride if i == 0 else 1
                downsample = None
                if i == 0 and (s != 1 or channels != width * Bottleneck.expansion):
                    downsample = nn.Sequential(nn.Conv2d(channels, width * Bottleneck.expansion, 1, stride=s, bias=False),
                                               nn.BatchNorm2d(width * Bottleneck.expansion))
                layers.append(Bottleneck(channels, width, s, downsample))
                channels = width * Bottleneck.expansion
            setattr(self, f"layer{stage}", nn.Sequential(*layers))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, classes)

    def features(self, x: Tensor) -> Tensor:
        """Images (n, 3, H, W) -> the global-average-pooled output of ``layer4``, (n, 2048)."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return torch.flatten(self.avgpool(x), 1)

    def forward(self, x: Tensor) -> Tensor:
        """Images (n, 3, H, W) -> class scores (n, 1000)."""
        return self.fc(self.features(x))


def _initialise(model: ResNet, seed: int = 0) -> None:
    """torchvision's initialisation (He normal, fan-out, for convs; BatchNorm 1 and 0; the default
    uniform for ``fc``) drawn from a private generator, so untrained networks are reproducible and
    the global random state is untouched."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu", generator=generator)
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Linear):
                bound = 1.0 / module.in_features ** 0.5
                module.weight.uniform_(-bound, bound, generator=generator)
                module.bias.uniform_(-bound, bound, generator=generator)


def resnet101(*, seed: int = 0) -> ResNet:
    """An untrained ResNet-101 (torchvision's layout and initialisation, seeded), in eval mode."""
    model = ResNet((3, 4, 23, 3))
    _initialise(model, seed)
    return model.eval()


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _unwrap(obj: object) -> object:
    """The state dict inside a checkpoint: ``{"state_dict": sd}``, ``{"model": sd}`` (repeatedly),
    and DataParallel's ``module.`` prefix stripped."""
    while isinstance(obj, Mapping) and not any(isinstance(v, Tensor) for v in obj.values()):
        inner = [obj[k] for k in ("state_dict", "model", "model_state_dict", "net") if isinstance(obj.get(k), Mapping)]
        if not inner:
            break
        obj = inner[0]
    if isinstance(obj, Mapping) and obj and all(isinstance(k, str) and k.startswith("module.") for k in obj):
        obj = {k[len("module."):]: v for k, v in obj.items()}
    return obj


def check_state_dict(state: object, source: str) -> dict[str, Tensor]:
    """``state`` (a state dict, optionally wrapped) as a float32 ResNet-101 state dict, or DataError
    in one line naming ``source`` and the first problem. BatchNorm ``num_batches_tracked`` buffers,
    absent from torchvision's older files, are filled with 0."""
    state = _unwrap(state)
    fix = f"pass torchvision's ImageNet ResNet-101 file ({IMAGENET_V1_FILE}) with --weights"
    if not isinstance(state, Mapping):
        raise DataError(f"{source}: holds a {type(state).__name__}, not a state dict; {fix}")
    expected = _expected_shapes()
    optional = {k for k in expected if k.endswith("num_batches_tracked")}
    missing = [k for k in expected if k not in state and k not in optional]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing keys (e.g. {missing[0]!r})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys (e.g. {unexpected[0]!r})")
        raise DataError(f"{source}: not a ResNet-101 state dict: {' and '.join(parts)}; {fix}")
    out: dict[str, Tensor] = {}
    for key, shape in expected.items():
        value = state.get(key, torch.tensor(0, dtype=torch.long))
        if not isinstance(value, Tensor):
            raise DataError(f"{source}: {key!r} is a {type(value).__name__}, not a tensor; {fix}")
        if value.shape != shape:
            raise DataError(f"{source}: {key!r} has shape {tuple(value.shape)}, ResNet-101 needs {tuple(shape)}; {fix}")
        if key not in optional and not value.is_floating_point():
            raise DataError(f"{source}: {key!r} has dtype {value.dtype}, not floating point; {fix}")
        out[key] = value.float() if key not in optional else value.long()
    return out


@functools.cache
def _expected_shapes() -> dict[str, torch.Size]:
    """Names and shapes of ResNet-101's state dict, in order (built on the meta device: no memory)."""
    with torch.device("meta"):
        return {k: v.shape for k, v in ResNet((3, 4, 23, 3)).state_dict().items()}


def read_weights_file(path: str | os.PathLike) -> dict[str, Tensor]:
    """The verified ResNet-101 state dict in the file ``path`` (``torch.load`` with
    ``weights_only=True``), or DataError in one line naming the file and what is wrong."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such weights file; pass an existing file with --weights "
                        f"(torchvision's {IMAGENET_V1_FILE})")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - any unreadable file gets the same one-line answer
        reason = " ".join(str(error).split())[:160] or type(error).__name__
        raise DataError(f"{path}: not a readable torch state dict ({type(error).__name__}: {reason}); "
                        f"pass torchvision's {IMAGENET_V1_FILE} with --weights") from None
    return check_state_dict(state, str(path))


@contextmanager
def _socket_timeout(seconds: float) -> Iterator[None]:
    """A default socket timeout for the duration of the block (torch.hub passes none), restored after."""
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous)


def download_imagenet_weights() -> Path:
    """The official ImageNet weights (:data:`IMAGENET_V1_FILE`) in the torch hub cache, downloaded
    once with torchvision's hash check; any failure is one DataError line at once (no retries),
    saying to pass ``--weights FILE``."""
    cached = Path(torch.hub.get_dir()) / "checkpoints" / IMAGENET_V1_FILE
    fix = (f"download {IMAGENET_V1_FILE} (torchvision's ResNet101_Weights.IMAGENET1K_V1, {IMAGENET_V1_URL}) "
           f"on a machine with internet and pass it with --weights FILE")
    try:
        with _socket_timeout(DOWNLOAD_TIMEOUT):
            torch.hub.load_state_dict_from_url(IMAGENET_V1_URL, map_location="cpu", check_hash=True,
                                               progress=False, weights_only=True)
    except (urllib.error.URLError, OSError, ConnectionError, TimeoutError) as error:
        reason = " ".join(str(getattr(error, "reason", error)).split())[:120]
        raise DataError(f"could not download the ImageNet weights of ResNet-101 (no internet?): {reason}; {fix}") from None
    except RuntimeError as error:  # torch.hub's hash check, or an unreadable download
        reason = " ".join(str(error).split())[:160]
        raise DataError(f"the downloaded ImageNet weights {cached} are unusable ({reason}); delete it and {fix}") from None
    if not cached.is_file():
        raise DataError(f"the ImageNet weights were not found at {cached} after download; {fix}")
    return cached


@dataclass(frozen=True)
class WeightsInfo:
    """Which weights a network holds: the file name and sha256 of the file, or both ``"untrained"``."""

    file: str
    sha256: str

    @property
    def untrained(self) -> bool:
        return self.file == UNTRAINED


def build_resnet101(weights: str | os.PathLike | None = None) -> tuple[ResNet, WeightsInfo]:
    """ResNet-101 in eval mode with ``weights``: a state-dict file (verified, loaded strictly), None for
    the official ImageNet file (:func:`download_imagenet_weights`), or ``"untrained"`` for a seeded
    random network (tests of the plumbing only; its results must never be reported)."""
    if isinstance(weights, str) and weights == UNTRAINED:
        return resnet101(), WeightsInfo(UNTRAINED, UNTRAINED)
    path = download_imagenet_weights() if weights is None else Path(weights)
    state = read_weights_file(path)
    with torch.device("meta"):
        model = ResNet((3, 4, 23, 3))  # no wasted random initialisation: every tensor comes from the file
    model.load_state_dict(state, strict=True, assign=True)
    return model.eval(), WeightsInfo(path.name, sha256_file(path))
