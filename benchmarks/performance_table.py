"""The README's performance table, measured in one run: every model's training step in float32 and
bf16, MEME against the number of modalities, memevae against MultiVae, and the evaluation metrics.

Run it on a quiet machine (nothing else computing); it took 12 min 22 s on this project's 2-core machine and prints
Markdown: a line naming the machine, then

  1. **Training steps** (``step_throughput.py``, each case in its own process, batch 128,
     2 threads): MEME (K = 10), MVAE and MMVAE ``--preset official`` (K = 30, DReG), the paired
     and (MEME, MVAE) unpaired step, in float32 and with ``--precision bf16``, and MEME's paired
     step as the authors' release computes it (``--model release-style``): median step time,
     pairs (items) per second, GFLOP per step counted on plain torch layers, GFLOP/s, that rate as a
     fraction of the best float32 matrix product measured in the same process, and peak resident
     memory. Then MEME's paired step with M = 2, 3 and 5 modalities (polymnist-textured).
  2. **Against MultiVae 1.0.3** (``peer_multivae.py``, same networks and settings, alternating
     rounds; skipped where MultiVae is not installed): pairs/s of each library and the ratio.
  3. **Evaluation**: one epoch of MEME on the shipped sample, then ``memevae evaluate --metrics
     all``; the wall time of each metric as its ``evaluation/metrics.json`` records it.

    python benchmarks/performance_table.py > table.md
    python benchmarks/performance_table.py --warmup 2 --steps 3 --skip peer,evaluation   # a quick look
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from memevae.modalities.networks import bfloat16_kernels_available
from memevae.runs import environment

HERE = Path(__file__).resolve().parent
PARTS = ("steps", "scaling", "peer", "evaluation")


def benchmark(name: str):
    """A sibling benchmark script, imported as a module."""
    spec = importlib.util.spec_from_file_location(name, HERE / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


BOTH = ("float32", "bf16")
STEPS = [("MEME paired, K = 10", ["--model", "meme", "--case", "paired"], "pairs/s", BOTH),
         ("MEME paired as the authors' release computes it", ["--model", "release-style", "--case", "paired"], "pairs/s",
          ("float32",)),
         ("MEME unpaired (mixture prior, N = 128)", ["--model", "meme", "--case", "unpaired"], "items/s", BOTH),
         ("MVAE paired (joint + unimodal ELBOs)", ["--model", "mvae", "--case", "paired"], "pairs/s", BOTH),
         ("MVAE unpaired", ["--model", "mvae", "--case", "unpaired"], "items/s", BOTH),
         ("MMVAE paired, official (K = 30, DReG as released)", ["--model", "mmvae", "--preset", "official", "--case", "paired"], "pairs/s",
          BOTH)]
"""The training steps of table 1: label, step_throughput.py options, unit, precisions."""


def rate(result: dict) -> tuple[float, float]:
    """A measured step's FLOP/s and that rate as a fraction of its process's float32 matrix product."""
    achieved = result["flops"] / result["step_s"]
    return achieved, achieved / result["matmul_flops_per_s"]


def step_row(label: str, precision: str, result: dict, unit: str) -> str:
    achieved, fraction = rate(result)
    return (f"| {label} | {precision} | {result['step_s'] * 1000:,.1f} ms | {result['items_per_s']:,.1f} {unit} | "
            f"{result['flops'] / 1e9:.1f} | {achieved / 1e9:.0f} | {fraction:.0%} | "
            f"{result['peak_rss_mb']:,.0f} MB |")


def steps_table(args, throughput) -> list[str]:
    lines = ["| step (batch 128) | precision | median step | throughput | GFLOP/step | GFLOP/s | of float32 matmul | peak memory |",
             "|---|---|---|---|---|---|---|---|"]
    matmul = []
    for label, argv, unit, precisions in STEPS:
        for precision in precisions:
            options = throughput.options(argv + ["--precision", precision, "--warmup", str(args.warmup),
                                                 "--steps", str(args.steps), "--threads", str(args.threads)])
            result = throughput.run_case(vars(options))
            matmul.append(result["matmul_flops_per_s"])
            lines.append(step_row(label, precision, result, unit))
            print(f"  measured: {label}, {precision}", file=sys.stderr, flush=True)
    return lines + ["", f"The float32 matrix product reached {min(matmul) / 1e9:.0f}-{max(matmul) / 1e9:.0f} GFLOP/s "
                        f"in the cases' processes (the fraction of each row uses its own process's)."]


def scaling_table(args, throughput) -> list[str]:
    lines = ["| MEME paired step, M modalities | median step | pairs/s | GFLOP/step (x M = 2) | of float32 matmul | peak memory |",
             "|---|---|---|---|---|---|"]
    first = None
    for m in (2, 3, 5):
        options = throughput.options(["--model", "meme", "--dataset", "polymnist-textured", "--modalities", str(m),
                                      "--case", "paired", "--warmup", str(min(args.warmup, 5)),
                                      "--steps", str(min(args.steps, 10)), "--threads", str(args.threads)])
        result = throughput.run_case(vars(options))
        first = first or result
        lines.append(f"| M = {m} | {result['step_s'] * 1000:,.1f} ms | {result['items_per_s']:,.1f} | "
                     f"{result['flops'] / 1e9:.1f} (x{result['flops'] / first['flops']:.1f}) | "
                     f"{rate(result)[1]:.0%} | {result['peak_rss_mb']:,.0f} MB |")
        print(f"  measured: MEME with M = {m}", file=sys.stderr, flush=True)
    return lines


def peer_table(args, peer) -> list[str]:
    if peer.multivae_version() != peer.VERSION:
        return [peer.MISSING + ": the comparison was skipped."]
    lines = ["| model | memevae | MultiVae 1.0.3 | memevae / MultiVae | losses agree (float64, one batch) |",
             "|---|---|---|---|---|"]
    for model in ("mvae", "mmvae"):
        options = peer.build_parser().parse_args(["--model", model, "--warmup", str(args.warmup), "--steps",
                                                  str(args.steps), "--threads", str(args.threads)])
        found = peer.agreement(model, options.batch_size)
        result = peer.compare(options)
        ours, theirs = result["memevae"], result["multivae"]
        lines.append(f"| {peer.DESCRIPTIONS[model]} | {ours['pairs_per_s']:,.1f} pairs/s, {ours['peak_rss_mb']:,.0f} MB | "
                     f"{theirs['pairs_per_s']:,.1f} pairs/s, {theirs['peak_rss_mb']:,.0f} MB | "
                     f"**{ours['pairs_per_s'] / theirs['pairs_per_s']:.2f}x** | to {found['loss_relative']:.0e} |")
        print(f"  measured: {model} against MultiVae", file=sys.stderr, flush=True)
    return lines


def evaluation_table(args) -> list[str]:
    with tempfile.TemporaryDirectory() as scratch:
        run = Path(scratch) / "run"
        for command in (["train", "--epochs", "1", "--out", str(run), "--quiet"],
                        ["evaluate", str(run), "--metrics", args.metrics, "--quiet"]):
            subprocess.run([sys.executable, "-m", "memevae.cli", *command], check=True, stdout=subprocess.DEVNULL)
        results = json.loads((run / "evaluation" / "metrics.json").read_text())["metrics"]
    lines = ["| metric | wall time |", "|---|---|"]
    lines += [f"| {name} | {entry['wall_time_s']:.1f} s |" for name, entry in results.items()]
    total = sum(entry["wall_time_s"] for entry in results.values())
    return lines + [f"| total | {total:.1f} s |"]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--warmup", type=int, default=30, help="training steps before the timed ones (M-scaling: at most 5)")
    parser.add_argument("--steps", type=int, default=20, help="timed steps, their median reported (M-scaling: at most 10)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--metrics", default="all", help="the metrics whose evaluation is timed (memevae evaluate --metrics)")
    parser.add_argument("--skip", default="", help=f"comma-separated parts to leave out: {', '.join(PARTS)}")
    args = parser.parse_args(argv)
    skipped = {part for part in args.skip.split(",") if part}
    if skipped - set(PARTS):
        parser.error(f"--skip: unknown part(s) {', '.join(sorted(skipped - set(PARTS)))}; choose from {', '.join(PARTS)}")
    throughput, peer = benchmark("step_throughput"), benchmark("peer_multivae")
    machine = environment()  # the CPU and the instruction set of torch's kernels, as a run records them
    bf16 = "with" if bfloat16_kernels_available() else "without"
    print(f"Measured {datetime.date.today()} on {machine['cpu']} ({machine['cpu_capability']} kernels, {bf16} oneDNN "
          f"bfloat16 kernels), {args.threads} threads, torch {torch.__version__}, "
          f"Python {platform.python_version()}; {args.warmup} warm-up steps, then the median of {args.steps}.\n")
    sections = {"steps": ("Training steps", lambda: steps_table(args, throughput)),
                "scaling": ("MEME against the number of modalities", lambda: scaling_table(args, throughput)),
                "peer": ("Against MultiVae (same networks and settings)", lambda: peer_table(args, peer)),
                "evaluation": (f"Evaluation of a one-epoch run on the shipped sample (`--metrics {args.metrics}`)",
                               lambda: evaluation_table(args))}
    for part in PARTS:
        if part not in skipped:
            title, make = sections[part]
            print(f"**{title}**\n\n" + "\n".join(make()) + "\n", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
