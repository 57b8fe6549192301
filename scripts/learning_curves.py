"""Learning curves of MEME, MVAE and MMVAE on full MNIST-Textured: one resumable queue of runs.

Each run is an ordinary memevae run directory under ``--out`` (losses and per-epoch coherence in
its ``metrics.jsonl``, curves and grids in its ``figures/``). The queue skips finished runs and
resumes interrupted ones from their last checkpoint, so it can be stopped at any time and started
again with the same command; ``--epochs`` may be raised later to extend every run. At the end (and
after each run) it draws the curves of all runs side by side into ``--out``:

    python scripts/learning_curves.py --data-dir DIR_WITH_MNIST --out runs/curves --epochs 10
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from memevae import DataConfig, TrainConfig, resume, train
from memevae.evaluation.curves import plot_curves
from memevae.run import load_history
from memevae.training.rundir import RunDir

# (name, model, paired fraction, unpaired scheme, paired only, model options)
QUEUE = [
    ("meme-f1", "meme", 1.0, None, False, {}),
    ("mvae-f1", "mvae", 1.0, None, False, {}),
    ("meme-f0.25-split", "meme", 0.25, "split", False, {}),
    ("mvae-f0.25-split", "mvae", 0.25, "split", False, {}),
    ("mmvae-f1", "mmvae", 1.0, None, False, {}),
    ("mmvae-f0.25-pairedonly", "mmvae", 0.25, None, True, {}),
]


def epochs_done(path: Path) -> int:
    try:
        return len(RunDir(path).read_metrics())
    except Exception:  # no metrics yet
        return 0


def run_queue(args) -> None:
    out = Path(args.out)
    names = args.only.split(",") if args.only else [entry[0] for entry in QUEUE]
    for name, model, f, unpaired, paired_only, options in QUEUE:
        if name not in names:
            continue
        path = out / name
        epochs = args.mmvae_epochs if model == "mmvae" and args.mmvae_epochs else args.epochs
        done = epochs_done(path)
        if done >= epochs:
            print(f"{name}: {done} epochs, done", flush=True)
            continue
        if RunDir(path).exists():  # (one that stopped before its first checkpoint restarts from epoch 1)
            print(f"{name}: resuming after epoch {done} of {epochs}", flush=True)
            resume(path, epochs=epochs, progress=not args.quiet)
        else:
            print(f"{name}: starting, {epochs} epochs", flush=True)
            data = DataConfig(data_dir=args.data_dir, paired_fraction=f, unpaired=unpaired, paired_only=paired_only,
                              seed=args.seed, rendering=args.rendering)
            train(path, model=model, data=data, training=TrainConfig(epochs=epochs, seed=args.seed), model_options=options,
                  progress=not args.quiet)
        draw(out)


def draw(out: Path) -> None:
    runs = {p.name: load_history(p) for p in sorted(out.iterdir()) if (p / "metrics.jsonl").exists()}
    for scheme, keep in (("f1", lambda n: n.endswith("-f1")), ("f0.25", lambda n: "-f0.25" in n)):
        chosen = {name: history for name, history in runs.items() if keep(name) and history}
        if chosen:
            plot_curves(chosen, out / f"curves-{scheme}.png", title=f"full MNIST-Textured, {scheme}: losses and per-epoch coherence")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True, help="folder with the four official MNIST files")
    parser.add_argument("--out", default="runs/curves", help="folder of the runs and the curve figures")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--mmvae-epochs", type=int, help="epochs of the MMVAE runs (default: --epochs)")
    parser.add_argument("--rendering", default="bright")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--only", help="comma-separated run names of the queue")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    run_queue(args)
    draw(Path(args.out))


if __name__ == "__main__":
    main()
