"""Learning parity of --precision bf16: one model trained in float32 and in bf16 on the same data and seed.

Trains two ordinary memevae runs, ``OUT/float32`` and ``OUT/bf16``, which differ only in
``TrainConfig.precision`` (same data, same seed, so the same initialisation and the same batches),
then draws their per-epoch losses and cross coherence into one figure, ``OUT/parity.png``, and
prints the per-epoch values as a Markdown table. A finished run is kept and an interrupted one
resumed, so the same command can be started again (or with more ``--epochs``):

    python scripts/precision_parity.py --model mvae --data-dir DIR_WITH_MNIST --limit 4000 --epochs 4 --out runs/parity-mvae
    python scripts/precision_parity.py --model mmvae --preset official --importance-samples 10 --out runs/parity-mmvae
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from memevae import DataConfig, TrainConfig, resume, train
from memevae.evaluation.curves import plot_curves
from memevae.run import load_history
from memevae.training.rundir import RunDir

PRECISIONS = ("float32", "bf16")


def epochs_done(path: Path) -> int:
    """Epochs a run directory has recorded (0 for none or no run)."""
    try:
        return len(RunDir(path).read_metrics())
    except Exception:  # no run, or no metrics yet
        return 0


def train_pair(args) -> dict[str, list[dict]]:
    """Train (or finish) the float32 and bf16 runs under ``args.out``; their per-epoch histories."""
    out = Path(args.out)
    options = {"importance_samples": args.importance_samples} if args.importance_samples else {}
    for precision in PRECISIONS:
        path = out / precision
        training = TrainConfig(epochs=args.epochs, seed=args.seed, precision=precision, coherence_items=args.coherence_items)
        done = epochs_done(path)
        if done >= args.epochs:
            print(f"{precision}: {done} epochs, done", flush=True)
        elif RunDir(path).exists():
            print(f"{precision}: resuming after epoch {done} of {args.epochs}", flush=True)
            resume(path, epochs=args.epochs, progress=not args.quiet)
        else:
            print(f"{precision}: starting, {args.epochs} epochs", flush=True)
            data = DataConfig(data_dir=args.data_dir, limit=args.limit, seed=args.seed)
            train(path, model=args.model, data=data, training=training, model_options=options, preset=args.preset,
                  progress=not args.quiet)
    return {precision: load_history(out / precision) for precision in PRECISIONS}


def table(histories: dict[str, list[dict]]) -> str:
    """Per epoch and precision: each coherence direction and the test loss, in Markdown (the epoch
    times are left out: the two runs train one after the other, under whatever load there is)."""
    first = histories[PRECISIONS[0]][0]
    directions = sorted(key for key in first if key.startswith("coherence/"))
    header = ["epoch"] + [f"{precision} {key.removeprefix('coherence/')}" for precision in PRECISIONS for key in directions]
    header += [f"{precision} test loss" for precision in PRECISIONS]
    rows = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for records in zip(*(histories[precision] for precision in PRECISIONS)):
        cells = [str(records[0]["epoch"])]
        cells += [_shown(record.get(key), ".3f") for record in records for key in directions]
        cells += [_shown(record.get("test/paired/loss"), ",.1f") for record in records]
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def _shown(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="meme", help="meme, mvae or mmvae")
    parser.add_argument("--preset", help="the model's named set of options (e.g. mmvae's official)")
    parser.add_argument("--importance-samples", type=int, help="MMVAE's K (default: the model's or preset's)")
    parser.add_argument("--data-dir", help="folder with the official MNIST files (default: the shipped sample)")
    parser.add_argument("--limit", type=int, help="keep only this many training rows (seeded)")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--coherence-items", type=int, default=500, help="test pairs of the per-epoch coherence")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default="runs/precision-parity")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    histories = train_pair(args)
    what = args.model + (f" ({args.preset} preset)" if args.preset else "")
    what += f", K = {args.importance_samples}" if args.importance_samples else ""
    data = f"{args.limit or 'all'} training pairs" + ("" if args.data_dir else " of the shipped sample")
    figure = plot_curves(histories, Path(args.out) / "parity.png", title=f"{what}, {data}: float32 against bf16")
    print(table(histories))
    print(f"figure: {figure}")


if __name__ == "__main__":
    main()
