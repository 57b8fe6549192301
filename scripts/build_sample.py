"""Build the shipped MNIST sample: src/memevae/data/files/sample/mnist_sample.npz.

A class-balanced random subset of the real MNIST train (600 per class) and test (100 per class)
images and labels, uint8, with its provenance (source file md5s, selection seed, source indices).
Lets ``load_pairs("mnist-textured", split)`` run offline with no data directory.

    python scripts/build_sample.py --mnist-dir ../shared/data/mnist
"""

from __future__ import annotations

import argparse
import io
import json
import os
import tempfile
from pathlib import Path

import numpy as np

from memevae.data.files.remote import ensure_files, md5sum
from memevae.data.files.mnist import SAMPLE_PATH, SUBDIRS, mnist_table, read_mnist


def select(labels: np.ndarray, per_class: int, rng: np.random.Generator) -> np.ndarray:
    """Sorted indices of ``per_class`` random examples of every class."""
    picks = []
    for c in range(10):
        rows = np.flatnonzero(labels == c)
        if len(rows) < per_class:
            raise SystemExit(f"class {c} has only {len(rows)} examples, fewer than {per_class}")
        picks.append(rng.choice(rows, per_class, replace=False))
    return np.sort(np.concatenate(picks))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mnist-dir", required=True, help="folder holding the four official MNIST files")
    parser.add_argument("--out", default=str(SAMPLE_PATH))
    parser.add_argument("--train-per-class", type=int, default=600)
    parser.add_argument("--test-per-class", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    arrays = {}
    provenance = {
        "seed": args.seed,
        "selection": "numpy default_rng(seed).choice per class without replacement, train then test",
        "sources": {},
    }
    for split, per_class in (("train", args.train_per_class), ("test", args.test_per_class)):
        images, labels = read_mnist(args.mnist_dir, split, verify=True)
        rows = select(labels, per_class, rng)
        arrays[f"{split}_images"], arrays[f"{split}_labels"] = images[rows], labels[rows].astype(np.uint8)
        arrays[f"{split}_source_index"] = rows.astype(np.int32)
        provenance[f"{split}_per_class"] = per_class
        for name, path in ensure_files(args.mnist_dir, mnist_table(split), False, subdirs=SUBDIRS).items():
            provenance["sources"][name] = md5sum(path)
    arrays["provenance"] = np.array(json.dumps(provenance, sort_keys=True))

    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    out = Path(args.out)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".part")
    with os.fdopen(fd, "wb") as f:
        f.write(buffer.getvalue())
    os.chmod(tmp, 0o644)  # mkstemp creates 0600
    os.replace(tmp, out)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB): {json.dumps(provenance)}")


if __name__ == "__main__":
    main()
