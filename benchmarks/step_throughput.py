"""Training-step throughput and peak memory of memevae's models on 2 CPU threads.

Measures one optimiser step (forward, backward, Adam) on a batch of real images from the shipped
MNIST sample paired with textured digits (3x32x32, the SVHN networks), for:
  - the paired step (MEME: bi-directional, K classifier samples), in pairs/s;
  - the unpaired step (MEME: one modality with the mixture prior), in items/s;
and prints the process's peak resident memory. Each case runs in its own process so that the
peak RSS belongs to that case alone.

    python benchmarks/step_throughput.py                 # MEME, batch 128, K=10, latent 64, 2 threads
    python benchmarks/step_throughput.py --model mvae
    python benchmarks/step_throughput.py --architecture paper --steps 30
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time


def measure(args) -> dict:
    import torch

    from memevae.data import load_pairs
    from memevae.runs import build_model

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    data = load_pairs("mnist-textured", "train")
    options = {"latent_dim": args.latent_dim, "architecture": args.architecture}
    if args.model == "meme":
        options["classifier_samples"] = args.classifier_samples
    model = build_model(args.model, data.modalities, options)
    model.initialise(data, torch.Generator().manual_seed(0))
    optimizer = torch.optim.Adam(model.parameters(), lr=5e-4)
    paired = data.patterns()[tuple(data.modalities)][: args.batch_size]
    modalities = tuple(data.modalities) if args.case == "paired" else (data.modalities[0],)
    full = data.batch(paired)
    batch = type(full)({m: full.data[m] for m in modalities}, full.labels)

    def step():
        output = model(batch)
        optimizer.zero_grad(set_to_none=True)
        output.loss.backward()
        optimizer.step()

    for _ in range(args.warmup):
        step()
    times = []
    for _ in range(args.steps):
        started = time.perf_counter()
        step()
        times.append(time.perf_counter() - started)
    median = statistics.median(times)
    return {"model": args.model, "case": args.case, "batch": args.batch_size, "step_s": median,
            "items_per_s": args.batch_size / median, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="meme")
    parser.add_argument("--case", choices=["paired", "unpaired", "all"], default="all")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--classifier-samples", type=int, default=10, help="MEME's K")
    parser.add_argument("--latent-dim", type=int, default=64)
    parser.add_argument("--architecture", default="release")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    args = parser.parse_args()
    if args.case != "all":
        print(json.dumps(measure(args)))
        return
    cases = ["paired"] + (["unpaired"] if args.model != "mmvae" else [])
    print(f"{args.model}, batch {args.batch_size}, latent {args.latent_dim}, {args.architecture} networks, "
          f"{args.threads} threads" + (f", K={args.classifier_samples}" if args.model == "meme" else ""))
    for case in cases:
        command = [sys.executable, __file__, *sys.argv[1:], "--case", case]
        result = json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1])
        unit = "pairs/s" if case == "paired" else "items/s"
        print(f"  {case:9s} step {result['step_s'] * 1000:7.1f} ms   {result['items_per_s']:7.1f} {unit}   "
              f"peak RSS {result['peak_rss_mb']:.0f} MB")


if __name__ == "__main__":
    main()
