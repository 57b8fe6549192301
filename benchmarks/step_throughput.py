"""Training-step throughput and peak memory of memevae's models on 2 CPU threads.

Measures optimiser steps (forward, backward, Adam) on real images from the shipped MNIST sample
paired with textured digits (3x32x32, the SVHN networks), for:
  - the paired step (MEME: bi-directional, K classifier samples), in pairs/s;
  - the unpaired step (MEME: one modality with the mixture prior), in items/s;
  - with ``--model release-style``: MEME's paired step as the authors' release computes it: its
    sequence of network passes (encoder run again for the classifier samples, the posterior sample
    decoded twice, validated ``torch.distributions`` objects), plain torch layers in torch's
    default memory order, and torch's default CPU settings; the same networks, batch and machine,
    so that the speed-up of memevae's step is measured at the same moment;
and prints the process's peak resident memory. Each case runs in its own process so that the
peak RSS belongs to that case alone.

Steps are timed as training runs them: ``--warmup`` steps on successive batches of an epoch first
(the decoders start to saturate, which is when subnormal floats appear), then the median of
``--steps`` more. memevae's models use the trainer's CPU settings (memevae.training.cpu) unless
``--cpu-settings torch-defaults``.

    python benchmarks/step_throughput.py                 # MEME, batch 128, K=10, latent 64, 2 threads
    python benchmarks/step_throughput.py --model release-style
    python benchmarks/step_throughput.py --model mvae
    python benchmarks/step_throughput.py --cpu-settings torch-defaults
    python benchmarks/step_throughput.py --precision bf16
    python benchmarks/step_throughput.py --model mmvae --preset official --precision ab   # bf16 speed-up, paired A/B
    python benchmarks/step_throughput.py --dataset polymnist-textured --modalities 5   # step cost against M
"""

from __future__ import annotations

import argparse
import contextlib
import json
import resource
import statistics
import subprocess
import sys
import time


def measure(args) -> dict:
    import torch

    from memevae.training.cpu import cpu_settings

    torch.set_num_threads(args.threads)
    settings = cpu_settings() if args.cpu_settings == "trainer" else contextlib.nullcontext()
    with settings as took:  # as the trainer holds them while it fits
        batches, steps = training_steps(args, [args.precision] if args.precision != "ab" else ["float32", "bf16"])
        times = [[] for _ in steps]
        for i, rows in enumerate(batches):
            for step, kept in zip(steps, times):  # with --precision ab: float32 then bf16 on each batch
                started = time.perf_counter()
                step(rows)
                if i >= args.warmup:
                    kept.append(time.perf_counter() - started)
        result = {"model": args.model, "preset": args.preset, "case": args.case, "precision": args.precision,
                  "cpu_settings": took or {}, "batch": args.batch_size,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
        if args.precision == "ab":
            ratios = [a / b for a, b in zip(*times)]
            return {**result, "float32_step_s": statistics.median(times[0]), "bf16_step_s": statistics.median(times[1]),
                    "speedup": statistics.median(ratios), "speedup_range": [min(ratios), max(ratios)]}
        median = statistics.median(times[0])
        return {**result, "step_s": median, "items_per_s": args.batch_size / median}


def training_steps(args, precisions: list[str]):
    """The batches of the timed epochs and one step function per precision, each with its own
    model (the same initialisation) and optimiser, so that alternating them compares the two
    precisions on the same batches and the same machine load."""
    import torch

    from memevae.data import DataConfig
    from memevae.runs import build_model
    from memevae.training.schedule import epoch_batches
    from memevae.training.trainer import TrainConfig, autocast, make_optimizer

    config = DataConfig(dataset=args.dataset, **({"modalities": args.modalities} if args.modalities else {}))
    data = config.load("train")
    options = model_options(args)
    modalities = tuple(data.modalities) if args.case == "paired" else (data.modalities[0],)
    batches = [rows for epoch in (1, 2, 3) for rows in epoch_batches(data, args.batch_size, 0, epoch)
               if len(rows) == args.batch_size][: args.warmup + args.steps]
    if len(batches) < args.warmup + args.steps:
        raise SystemExit(f"the sample has only {len(batches)} full batches; lower --warmup or --steps")

    def make_step(precision):
        torch.manual_seed(0)
        model = build_model("meme" if args.model == "release-style" else args.model, config.kinds(), options)
        model.initialise(data, torch.Generator().manual_seed(0))
        if args.model == "release-style":
            plain_torch_layers(model)
            model.to(memory_format=torch.contiguous_format)
        optimizer = make_optimizer(model.parameters(), TrainConfig())

        def step(rows):
            full = data.batch(rows)
            batch = type(full)({m: full.data[m] for m in modalities}, full.labels)
            with autocast("cpu", precision):
                loss = release_style_loss(model, batch, args.classifier_samples) if args.model == "release-style" else model(batch).loss
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        return step

    return batches, [make_step(precision) for precision in precisions]


def model_options(args) -> dict:
    """The model's options: latent 64 and the release networks unless the preset or the command
    line says otherwise, MEME's K, MMVAE's K when given."""
    from memevae.models import preset_options

    given = {"latent_dim": args.latent_dim, "architecture": args.architecture, "importance_samples": args.importance_samples}
    options = {"latent_dim": 64, "architecture": "release", **preset_options(args.model, args.preset),
               **{name: value for name, value in given.items() if value is not None}}
    if args.model in ("meme", "release-style"):
        options["classifier_samples"] = args.classifier_samples
    return options


def plain_torch_layers(module) -> None:
    """Replace memevae's fast layers in ``module`` by the plain torch layers they stand for
    (sharing the parameters): what the release runs."""
    from torch import nn

    from memevae.modalities.networks import TransposedConv2d, WholeInputConv2d

    activations = {None: nn.Identity, "relu": nn.ReLU, "sigmoid": nn.Sigmoid}
    for name, child in module.named_children():
        if isinstance(child, TransposedConv2d):  # LatentProjection is one too
            plain = nn.ConvTranspose2d(child.in_channels, child.out_channels, child.kernel_size, child.stride, child.padding)
            plain.weight, plain.bias = child.weight, child.bias
            setattr(module, name, nn.Sequential(plain, activations[child.activation]()))
        elif isinstance(child, WholeInputConv2d):
            plain = nn.Conv2d(child.in_channels, child.out_channels, child.kernel_size)
            plain.weight, plain.bias = child.weight, child.bias
            setattr(module, name, plain)
        else:
            plain_torch_layers(child)


def release_style_loss(model, batch, samples: int):
    """MEME's paired loss (release conventions: analytic KL, c = 10, summed directions) computed
    pass by pass as the authors' release does; same value in expectation as ``model(batch).loss``
    up to the release's factor 2 (it sums the two directions)."""
    import torch
    import torch.distributions as dist

    def laplace(decoded, x):
        return dist.Laplace(decoded, torch.ones_like(decoded)).log_prob(x).sum((-3, -2, -1))

    total = 0.0
    for source, (target,) in model.config.directions():
        enc_s, dec_s = model.modalities[source].encoder, model.modalities[source].decoder
        enc_t, dec_t = model.modalities[target].encoder, model.modalities[target].decoder
        s, t = batch.data[source], batch.data[target]

        def posterior(encoder, x):
            loc, raw = encoder(x)
            return dist.Normal(loc, torch.nn.functional.softplus(raw).clamp(min=1e-4))

        q = posterior(enc_s, s)
        z = q.rsample()
        log_qt_z = laplace(dec_t(z), t)
        prior = posterior(enc_t, t)
        kl = dist.kl_divergence(q, prior).sum(-1)
        log_ps = laplace(dec_s(z), s)
        q_again = posterior(enc_s, s)  # the release encodes s again for the classifier samples
        z_k = q_again.rsample((samples,))
        decoded = dec_t(z_k.reshape(-1, z_k.shape[-1])).reshape(samples, *t.shape)
        log_qt_k = laplace(decoded, t.unsqueeze(0).expand(samples, *t.shape))
        log_qt_zz = laplace(dec_t(z), t)  # and decodes the posterior sample a second time
        log_qt_s = torch.logsumexp(torch.cat([log_qt_k, log_qt_zz.unsqueeze(0)]), 0) - torch.log(torch.tensor(samples + 1.0))
        w = torch.exp(log_qt_z - log_qt_s)
        total = total + (w.detach() * (log_ps - log_qt_z - kl) + model.config.classifier_scale * log_qt_s).mean()
    return -total


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="meme", help="meme, mvae, mmvae, or release-style (see above)")
    parser.add_argument("--case", choices=["paired", "unpaired", "all"], default="all")
    parser.add_argument("--dataset", default="mnist-textured",
                        help="the shipped sample's data set: mnist-textured (default) or polymnist-textured")
    parser.add_argument("--modalities", default=None, help="polymnist-textured: how many modalities (2 to 5)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--classifier-samples", type=int, default=10, help="MEME's K")
    parser.add_argument("--latent-dim", type=int, default=None, help="default: the preset's, else 64")
    parser.add_argument("--architecture", default=None, help="default: the preset's, else release")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--precision", choices=["float32", "bf16", "ab"], default="float32",
                        help="bf16: the trainer's mixed precision (autocast to bfloat16), as --precision bf16 trains; "
                             "ab: float32 and bf16 steps alternated in one process (two copies of the model on the "
                             "same batches), reporting the median of the per-batch float32/bf16 time ratios, which "
                             "a machine whose load drifts still compares fairly")
    parser.add_argument("--preset", default=None, help="the model's named set of options (e.g. mmvae's official)")
    parser.add_argument("--importance-samples", type=int, default=None, help="MMVAE's K (default: the model's or preset's)")
    parser.add_argument("--steps", type=int, default=20, help="timed steps (their median is reported)")
    parser.add_argument("--warmup", type=int, default=30, help="training steps before the timed ones")
    parser.add_argument("--cpu-settings", choices=["trainer", "torch-defaults"], default=None,
                        help="trainer: memevae's trainer settings (malloc keeps freed memory, subnormals flushed; "
                             "the default for memevae's models); torch-defaults: neither (the release-style default)")
    args = parser.parse_args()
    if args.cpu_settings is None:
        args.cpu_settings = "torch-defaults" if args.model == "release-style" else "trainer"
    if args.case != "all":
        print(json.dumps(measure(args)))
        return
    options = model_options(args)
    cases = ["paired"] + (["unpaired"] if args.model not in ("mmvae", "release-style") else [])
    print(f"{args.model}" + (f" ({args.preset} preset)" if args.preset else "") + f", {args.dataset}"
          + (f" with {args.modalities} modalities" if args.modalities else "")
          + f", batch {args.batch_size}, latent {options['latent_dim']}, {options['architecture']} networks, "
          f"{args.threads} threads" + (f", K={options['classifier_samples']}" if "classifier_samples" in options else "")
          + (f", K={options['importance_samples']} per expert" if "importance_samples" in options else "")
          + f", {args.precision}, {args.cpu_settings} CPU settings, median of {args.steps} steps after {args.warmup}")
    for case in cases:
        command = [sys.executable, __file__, *sys.argv[1:], "--case", case]
        result = json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1])
        unit = "pairs/s" if case == "paired" else "items/s"
        if args.precision == "ab":
            low, high = result["speedup_range"]
            print(f"  {case:9s} float32 {result['float32_step_s'] * 1000:7.1f} ms   bf16 {result['bf16_step_s'] * 1000:7.1f} ms   "
                  f"float32/bf16 {result['speedup']:.2f}x (per-batch ratios {low:.2f}-{high:.2f}x)   "
                  f"peak RSS of both {result['peak_rss_mb']:.0f} MB")
            continue
        print(f"  {case:9s} step {result['step_s'] * 1000:7.1f} ms   {result['items_per_s']:7.1f} {unit}   "
              f"peak RSS {result['peak_rss_mb']:.0f} MB")


if __name__ == "__main__":
    main()
