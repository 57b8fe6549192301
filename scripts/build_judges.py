"""Build the judges that ship with memevae: src/memevae/evaluation/shipped_judges/<variant>/.

The per-epoch coherence of a run (``memevae train``) and the README's first run need judges
(digit classifiers) without a training step of their own. This script trains them exactly as
``memevae judges train`` does (one JudgeCNN per modality, the TRAIN split only, sha256 of
the weights recorded beside them) on the full official MNIST train split, textured digits in
memevae's default rendering, data seed 0, for one data set made from MNIST (default
mnist-textured; polymnist-textured gets one judge for each of its modalities):

    python scripts/build_judges.py --mnist-dir DIR_WITH_THE_FOUR_MNIST_FILES [--dataset polymnist-textured]

The files are md5-verified against the official ones when read; the judges record that, not the
data folder's path on the building machine.
"""

from __future__ import annotations

import argparse

from memevae import io
from memevae.data import DataConfig
from memevae.evaluation.judges import SHIPPED_JUDGES, info_path, train_judges


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mnist-dir", required=True, help="folder with the official MNIST files")
    parser.add_argument("--seed", type=int, default=0, help="judge training seed (default 0)")
    parser.add_argument("--dataset", default=DataConfig().dataset, help="a data set made from MNIST (default %(default)s)")
    parser.add_argument("--epochs", type=int, default=None, help="epochs per judge (default: memevae judges train's)")
    args = parser.parse_args(argv)
    data = DataConfig(dataset=args.dataset, data_dir=args.mnist_dir)
    out = SHIPPED_JUDGES / data.judges_variant
    records = train_judges(data, out, seed=args.seed, epochs=args.epochs)
    for modality, record in records.items():
        record["trained_on"]["data_dir"] = None
        record["trained_on"]["source"] = "the official MNIST train files (md5-verified)"
        io.write_json(info_path(out, modality), record)
    print(f"judges written to {out}")


if __name__ == "__main__":
    main()
