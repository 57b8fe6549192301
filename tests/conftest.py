import os
from pathlib import Path

import pytest
import torch

torch.set_num_threads(min(2, os.cpu_count() or 1))

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture
def one_thread():
    """Run torch on one thread: tiny networks gain nothing from a second one, and on a busy
    machine OpenMP's spin-waits make them many times slower. The setting is restored after."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def shared_mnist():
    path = SHARED_DATA / "mnist"
    if not (path / "train-images-idx3-ubyte.gz").exists():
        pytest.skip(f"real MNIST not found at {path}")
    return path


@pytest.fixture
def tiny_batch():
    from memevae.data import Batch

    def make(batch_size=4, modalities=("mnist", "textured"), seed=0):
        generator = torch.Generator().manual_seed(seed)
        shapes = {"mnist": (1, 28, 28), "textured": (3, 32, 32), "svhn": (3, 32, 32)}
        data = {m: torch.rand(batch_size, *shapes[m], generator=generator) for m in modalities}
        return Batch(data, torch.arange(batch_size) % 10)

    return make
