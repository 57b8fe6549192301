"""SVHN cropped digits (Netzer et al. 2011): the official ``train_32x32.mat`` / ``test_32x32.mat``."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import scipy.io

from ..errors import DataError
from .remote import RemoteFile, ensure_files

BASE_URL = "http://ufldl.stanford.edu/housenumbers/"
_MD5 = {"train": "e26dedcc434d2e4c54c9b2d4a06d8373", "test": "eb5a983be6a315427106f1b164d9cef3"}
SUBDIRS = ("", "svhn", "SVHN")


def svhn_table(split: str, base_url: str = BASE_URL) -> tuple[RemoteFile, ...]:
    """The official ``.mat`` file of a split, downloadable from ``base_url``."""
    if split not in _MD5:
        raise DataError(f"unknown split {split!r}; choose 'train' or 'test'")
    name = f"{split}_32x32.mat"
    return (RemoteFile(name, _MD5[split], (base_url + name,)),)


def read_svhn_mat(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read an official SVHN ``.mat``: images uint8 (N,3,32,32), labels int64 (N,) with 10 -> 0.

    The file holds ``X`` uint8 of shape (32,32,3,N) and ``y`` of shape (N,1) with labels 1..10,
    10 meaning the digit 0.

    >>> images, labels = read_svhn_mat("test_32x32.mat")  # doctest: +SKIP
    >>> images.shape  # doctest: +SKIP
    (26032, 3, 32, 32)
    """
    path = Path(path)
    try:
        mat = scipy.io.loadmat(path, variable_names=("X", "y"))
    except NotImplementedError as e:  # scipy's answer to MATLAB v7.3 (HDF5) files
        raise DataError(f"{path}: a MATLAB v7.3 file; the official SVHN files are v5, re-download it") from e
    except Exception as e:  # scipy raises many types (MatReadError, ValueError, IndexError...) on garbage
        raise DataError(f"{path}: not a readable .mat file ({e}); re-download the official SVHN file") from e
    missing = [k for k in ("X", "y") if k not in mat]
    if missing:
        raise DataError(f"{path}: no variable {' or '.join(missing)}; expected the official SVHN keys X and y")
    x, y = mat["X"], mat["y"]
    if x.dtype != np.uint8 or x.ndim != 4 or x.shape[:3] != (32, 32, 3):
        raise DataError(f"{path}: X is {x.dtype} {x.shape}, expected uint8 (32, 32, 3, N)")
    if x.shape[3] == 0:
        raise DataError(f"{path}: holds no images (0 items); re-download the official SVHN file")
    if y.shape != (x.shape[3], 1):
        raise DataError(f"{path}: y has shape {y.shape}, expected ({x.shape[3]}, 1) to match X")
    if not (np.issubdtype(y.dtype, np.number) and np.all(np.isin(y, np.arange(1, 11)))):
        raise DataError(f"{path}: y must hold labels 1..10 (10 meaning digit 0); found {np.unique(y)[:12]}")
    images = np.ascontiguousarray(x.transpose(3, 2, 0, 1))
    return images, y[:, 0].astype(np.int64) % 10


def read_svhn(
    data_dir: str | os.PathLike, split: str, *, verify: bool = True, download: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Read an official SVHN split from ``data_dir`` (or ``data_dir/svhn``), md5-verified by default."""
    (entry,) = svhn_table(split)
    paths = ensure_files(data_dir, (entry,), download, verify=verify, subdirs=SUBDIRS)
    return read_svhn_mat(paths[entry.name])
