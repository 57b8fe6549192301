"""MNIST: the official idx files and the shipped class-balanced sample."""

from __future__ import annotations

import gzip
import json
import os
import struct
import zlib
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..errors import DataError
from .remote import RemoteFile, ensure_files

MIRRORS = ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/")

# name -> (md5 of the .gz, md5 of its uncompressed content)
_MD5 = {
    "train-images-idx3-ubyte.gz": ("f68b3c2dcbeaaa9fbdd348bbdeb94873", "6bbc9ace898e44ae57da46a324031adb"),
    "train-labels-idx1-ubyte.gz": ("d53e105ee54ea40749a09fcbcd1e9432", "a25bea736e30d166cdddb491f175f624"),
    "t10k-images-idx3-ubyte.gz": ("9fb629c4189551a2d022fa330f9573f3", "2646ac647ad5339dbf082846283269ea"),
    "t10k-labels-idx1-ubyte.gz": ("ec29112dd5afa0611ce80d1b7f02629c", "27ae3e4e09519cfbb04c329615203637"),
}
_SPLIT_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
SUBDIRS = ("", "mnist", "MNIST/raw")  # data_dir itself, a shared-data layout, torchvision's layout
SAMPLE_PATH = Path(__file__).parent / "sample" / "mnist_sample.npz"

# idx type byte -> big-endian numpy dtype
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def mnist_table(split: str, mirrors: tuple[str, ...] = MIRRORS) -> tuple[RemoteFile, ...]:
    """The two official files (images, labels) of a split, downloadable from ``mirrors``."""
    return tuple(
        RemoteFile(name, _MD5[name][0], tuple(m + name for m in mirrors), plain_md5=_MD5[name][1])
        for name in _SPLIT_FILES[_check_split(split)]
    )


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an idx file (gzip-compressed or plain) into an array of its declared type and shape.

    >>> read_idx("train-images-idx3-ubyte.gz").shape  # doctest: +SKIP
    (60000, 28, 28)
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            raw = f.read()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(f"{path}: cannot read ({e}); re-download the file") from e
    if not raw:
        raise DataError(f"{path}: empty file (0 bytes); re-download the file")
    if len(raw) < 4 or raw[:2] != b"\x00\x00" or raw[2] not in _IDX_DTYPES:
        raise DataError(
            f"{path}: not an idx file (bad magic number {raw[:4].hex()}); expected an official MNIST idx file"
        )
    ndim = raw[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(raw) < header:
        raise DataError(f"{path}: idx header declares {ndim} dimensions but is cut short; re-download the file")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    expected = int(np.prod(dims)) * dtype.itemsize
    found = len(raw) - header
    if found != expected:
        what = "truncated" if found < expected else "has trailing bytes"
        raise DataError(
            f"{path}: {what}: shape {dims} needs {expected} data bytes, found {found}; re-download the file"
        )
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims).astype(dtype.newbyteorder("="))


def read_mnist(
    data_dir: str | os.PathLike, split: str, *, verify: bool = True, download: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Read an official MNIST split from ``data_dir``: images uint8 (N,28,28), labels int64 (N,).

    Files may be ``.gz`` or uncompressed, in ``data_dir``, ``data_dir/mnist`` or torchvision's
    ``data_dir/MNIST/raw``. ``verify`` checks the official md5s; shapes and dtypes are always checked.
    """
    table = mnist_table(split)
    paths = ensure_files(data_dir, table, download, verify=verify, subdirs=SUBDIRS)
    image_file, label_file = (paths[entry.name] for entry in table)
    images, labels = read_idx(image_file), read_idx(label_file)
    return _checked(images, labels, f"{image_file} / {label_file}")


def read_mnist_sample(split: str) -> tuple[np.ndarray, np.ndarray]:
    """The shipped sample: a class-balanced subset of real MNIST (600/class train, 100/class test).

    Built by ``scripts/build_sample.py``; its provenance (source md5s, seed) is in :func:`sample_provenance`.
    """
    split = _check_split(split)
    arrays = _sample_arrays()
    return _checked(arrays[f"{split}_images"], arrays[f"{split}_labels"], str(SAMPLE_PATH))


def sample_provenance() -> dict:
    """How the shipped sample was built: source file md5s, selection seed, per-class counts."""
    return json.loads(str(_sample_arrays()["provenance"]))


@lru_cache(maxsize=1)
def _sample_arrays() -> dict[str, np.ndarray]:
    if not SAMPLE_PATH.is_file():
        raise DataError(f"{SAMPLE_PATH} is missing; reinstall memevae or rebuild it with scripts/build_sample.py")
    with np.load(SAMPLE_PATH, allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}


def _checked(images: np.ndarray, labels: np.ndarray, source: str) -> tuple[np.ndarray, np.ndarray]:
    if images.ndim >= 1 and len(images) == 0:
        raise DataError(f"{source}: the files hold no images (0 items); re-download the official MNIST files")
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (28, 28):
        raise DataError(f"{source}: images are {images.dtype} {images.shape}, expected uint8 (N, 28, 28)")
    if labels.ndim != 1 or len(labels) != len(images):
        raise DataError(f"{source}: {labels.shape} labels for {len(images)} images; the files do not belong together")
    if not np.issubdtype(labels.dtype, np.integer) or labels.min(initial=0) < 0 or labels.max(initial=0) > 9:
        raise DataError(f"{source}: labels must be integers 0..9; the label file is not an MNIST label file")
    return images, labels.astype(np.int64)


def _check_split(split: str) -> str:
    if split not in _SPLIT_FILES:
        raise DataError(f"unknown split {split!r}; choose 'train' or 'test'")
    return split
