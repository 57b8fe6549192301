"""Small synthetic data written in the official formats (idx, SVHN .mat), plus a local HTTP server."""

import functools
import gzip
import http.server
import struct
import threading
from types import SimpleNamespace
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch

from memevae.data import MultimodalDataset

def write_idx(path, array, *, gz=None, type_byte=0x08):
    """Write ``array`` as an idx file (big-endian), gzip-compressed when the name ends with .gz."""
    dtype = {0x08: ">u1", 0x0C: ">i4"}[type_byte]
    raw = struct.pack(">BBBB", 0, 0, type_byte, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    raw += np.asarray(array).astype(dtype).tobytes()
    path = Path(path)
    path.write_bytes(gzip.compress(raw) if (gz if gz is not None else path.suffix == ".gz") else raw)
    return path


def write_svhn_mat(path, images, labels):
    """Write (N,3,32,32) uint8 images and 0..9 labels in the official SVHN layout (X 32x32x3xN, y Nx1, 10 = 0)."""
    y = np.where(labels == 0, 10, labels).astype(np.uint8)[:, None]
    scipy.io.savemat(path, {"X": np.ascontiguousarray(images.transpose(2, 3, 1, 0)), "y": y})
    return Path(path)


MNIST_NAMES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


def write_mnist(folder, split, images, labels, gz=True):
    for name, array in zip(MNIST_NAMES[split], (images, labels)):
        write_idx(Path(folder) / (name if gz else name[:-3]), array)


@pytest.fixture(scope="session")
def fmt():
    """The format writers above, for tests."""
    return SimpleNamespace(write_idx=write_idx, write_svhn_mat=write_svhn_mat, write_mnist=write_mnist)


@pytest.fixture(scope="session")
def synthetic(tmp_path_factory):
    """A data dir with MNIST (train 30-39/class, test 10/class) and SVHN (train 20-29/class, test 8/class).

    Returns (path, originals) with originals[(source, split)] = (images, labels).
    """
    rng = np.random.default_rng(123)
    folder = tmp_path_factory.mktemp("synthetic")
    originals = {}
    counts = {
        ("mnist", "train"): 30 + np.arange(10),
        ("mnist", "test"): np.full(10, 10),
        ("svhn", "train"): 29 - np.arange(10),
        ("svhn", "test"): np.full(10, 8),
    }
    for (source, split), per_class in counts.items():
        labels = rng.permutation(np.repeat(np.arange(10), per_class))
        shape = (28, 28) if source == "mnist" else (3, 32, 32)
        images = rng.integers(0, 256, (len(labels), *shape), dtype=np.uint8)
        originals[source, split] = images, labels
        if source == "mnist":
            write_mnist(folder, split, images, labels)
        else:
            write_svhn_mat(folder / f"{split}_32x32.mat", images, labels)
    return folder, originals


@pytest.fixture
def pair_dataset():
    """An in-memory one-to-one paired dataset: ("mnist", "textured"), n rows, row i uses example i."""

    def make(n=200, per_image=1, seed=0):
        from memevae.data.pairs import match_by_class

        rng = np.random.default_rng(seed)
        labels = np.arange(n) % 10
        a, b = match_by_class(labels, labels, rng, per_image)
        banks = {
            "mnist": torch.from_numpy(rng.integers(0, 256, (n, 1, 4, 4), dtype=np.uint8)),
            "textured": torch.from_numpy(rng.integers(0, 256, (n, 3, 4, 4), dtype=np.uint8)),
        }
        index = {"mnist": torch.from_numpy(a), "textured": torch.from_numpy(b)}
        return MultimodalDataset(banks, index, torch.from_numpy(labels[a]), "toy-pairs")

    return make


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def http_dir(tmp_path):
    """Serve a fresh folder on 127.0.0.1 from a thread; yields (folder, base_url)."""
    served = tmp_path / "served"
    served.mkdir()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(served)))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield served, f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
