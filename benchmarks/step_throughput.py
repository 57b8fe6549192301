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

Each case also prints its FLOPs per step (forward and backward: matrix products and convolutions
as ``torch.utils.flop_counter`` counts them, on a copy of the model built from plain torch layers,
because the counter does not see oneDNN's fused operators; counted once per case), the rate the
step achieves, and that rate as a fraction of the best float32 square matrix product (sizes
``--matmul-sizes``, each the fastest of three, before and after the timed steps) in the same
process: how close the step comes to this CPU's float32 peak. With several ``--modalities``
(2,3,5) it gives MEME's (or any model's) paired step against M, with the encoders' and decoders'
FLOPs and the latents the decoders score per item next to the number the objective needs.

``--precision ab`` alternates a float32 step and a bf16 step on each batch in one process (two
copies of the model with the same initialisation, each with its own optimiser) and reports both
medians, the median of the per-batch float32/bf16 time ratios with their range, and the GFLOP/s of
each precision (the same FLOPs per step; the fraction is of the float32 matrix product, so bf16
can exceed 100%): a machine whose load drifts still compares the two precisions fairly.

Steps are timed as training runs them: ``--warmup`` steps on successive batches of an epoch first
(the decoders start to saturate, which is when subnormal floats appear), then the median of
``--steps`` more. memevae's models use the trainer's CPU settings (memevae.training.cpu) unless
``--cpu-settings torch-defaults``.

    python benchmarks/step_throughput.py                 # MEME, batch 128, K=10, latent 64, 2 threads
    python benchmarks/step_throughput.py --model release-style
    python benchmarks/step_throughput.py --model mvae
    python benchmarks/step_throughput.py --cpu-settings torch-defaults
    python benchmarks/step_throughput.py --precision bf16
    python benchmarks/step_throughput.py --model mmvae --preset official
    python benchmarks/step_throughput.py --model mvae --precision ab --threads 1   # bf16 speed-up, paired A/B
    python benchmarks/step_throughput.py --model mmvae --preset official --importance-samples 10
    python benchmarks/step_throughput.py --dataset polymnist-textured --modalities 2,3,5   # step cost against M
    python benchmarks/step_throughput.py --model all   # MEME, MVAE, MMVAE official, MEME against M: one command
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

    from memevae.data import DataConfig
    from memevae.runs import build_model
    from memevae.training.cpu import cpu_settings
    from memevae.training.schedule import epoch_batches
    from memevae.training.trainer import TrainConfig, autocast, make_optimizer

    torch.set_num_threads(args.threads)
    settings = cpu_settings() if args.cpu_settings == "trainer" else contextlib.nullcontext()
    with settings as took:  # as the trainer holds them while it fits
        torch.manual_seed(0)
        config = DataConfig(dataset=args.dataset, **({"modalities": args.modalities} if args.modalities else {}))
        data = config.load("train")
        modalities = tuple(data.modalities) if args.case == "paired" else (data.modalities[0],)
        batches = [rows for epoch in (1, 2, 3) for rows in epoch_batches(data, args.batch_size, 0, epoch)
                   if len(rows) == args.batch_size][: args.warmup + args.steps]
        if len(batches) < args.warmup + args.steps:
            raise SystemExit(f"the sample has only {len(batches)} full batches; lower --warmup or --steps")

        def make_step(precision):
            """A model (the same initialisation for every precision), its optimiser, and its training step."""
            torch.manual_seed(0)
            model = build_model("meme" if args.model == "release-style" else args.model, config.kinds(), model_options(args))
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
            return model, step

        precisions = AB if args.precision == "ab" else (args.precision,)
        models, steps = zip(*(make_step(precision) for precision in precisions))
        model = models[0]
        rates = [matmul_rate(args.matmul_sizes)]
        times = [[] for _ in steps]
        for i, rows in enumerate(batches):
            for step, kept in zip(steps, times):  # with --precision ab: float32 then bf16 on each batch
                started = time.perf_counter()
                step(rows)
                if i >= args.warmup:
                    kept.append(time.perf_counter() - started)
        peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        rates.append(matmul_rate(args.matmul_sizes))

        def loss_of(counted):
            full = data.batch(batches[0])
            batch = type(full)({m: full.data[m] for m in modalities}, full.labels)
            return (release_style_loss(counted, batch, args.classifier_samples) if args.model == "release-style"
                    else counted(batch).loss)

        samples = getattr(model.config, "classifier_samples", getattr(model.config, "importance_samples", None))
        if args.precision == "ab":
            ratios = [a / b for a, b in zip(*times)]
            medians = {"float32_step_s": statistics.median(times[0]), "bf16_step_s": statistics.median(times[1]),
                      "speedup": statistics.median(ratios), "speedup_range": [min(ratios), max(ratios)]}
        else:
            median = statistics.median(times[0])
            medians = {"step_s": median, "items_per_s": args.batch_size / median}
        return {"model": args.model, "case": args.case, "precision": args.precision, "cpu_settings": took or {},
                "options": model_options(args), "samples": samples, "batch": args.batch_size, **medians,
                "peak_rss_mb": peak_rss, **step_flops(model, loss_of), "matmul_flops_per_s": max(rates)}


AB = ("float32", "bf16")
"""The precisions ``--precision ab`` alternates, in this order on each batch."""


def model_options(args) -> dict:
    """The model's options: the benchmark's latent size and networks, under ``--preset``'s options,
    under the options given on the command line (MEME's K to MEME, MMVAE's K to MMVAE)."""
    from memevae.models import preset_options

    given = {"latent_dim": args.latent_dim, "architecture": args.architecture}
    if args.model in ("meme", "release-style"):
        given["classifier_samples"] = args.classifier_samples
    if args.model == "mmvae":
        given["importance_samples"] = args.importance_samples
    preset = preset_options("meme" if args.model == "release-style" else args.model, args.preset)
    return {"latent_dim": 64, "architecture": "release", **preset, **{k: v for k, v in given.items() if v is not None}}


def matmul_rate(sizes, repeats: int = 3) -> float:
    """The best float32 rate (FLOP/s) of square matrix products n x n @ n x n over ``sizes``, each
    the fastest of ``repeats`` products after one unmeasured: this CPU's float32 peak as torch
    reaches it, in this process, with its threads."""
    import torch

    best = 0.0
    for n in sizes:
        a, b = torch.randn(n, n), torch.randn(n, n)
        out = torch.empty(n, n)
        torch.mm(a, b, out=out)
        for _ in range(repeats):
            started = time.perf_counter()
            torch.mm(a, b, out=out)
            best = max(best, 2 * n**3 / (time.perf_counter() - started))
    return best


def step_flops(model, loss_of) -> dict:
    """The floating-point operations of one training step's forward and backward (matrix products
    and convolutions, as ``torch.utils.flop_counter`` counts them), counted on a copy of ``model``
    built from plain torch layers (the counter does not see oneDNN's fused operators); those of
    its encoder passes and of its decoder passes; and the latents each decoder decodes in that
    step. Adam's elementwise update is not counted."""
    import copy

    import torch
    from torch.utils.flop_counter import FlopCounterMode

    plain = copy.deepcopy(model)
    plain_torch_layers(plain)
    rows = {"encoder": {}, "decoder": {}}

    def counting(part, name):
        return lambda _, inputs: rows[part].__setitem__(name, rows[part].get(name, 0) + len(inputs[0]))

    hooks = [getattr(mod, part).register_forward_pre_hook(counting(part, name))
             for name, mod in plain.modalities.items() for part in rows]
    with FlopCounterMode(display=False) as counter:
        loss_of(plain).backward()
    for hook in hooks:
        hook.remove()
    # the FLOPs of those passes, each network counted alone at the rows the step gave it
    # (the data do not need a gradient, the latents do)
    parts = {"encoder": 0.0, "decoder": 0.0}
    for part, seen in rows.items():
        for name, n in seen.items():
            mod = plain.modalities[name]
            inputs = (torch.rand(n, *mod.shape) if part == "encoder"
                      else torch.randn(n, plain.config.latent_dim, requires_grad=True))
            with FlopCounterMode(display=False) as alone:
                out = getattr(mod, part)(inputs)
                sum(t.sum() for t in (out if isinstance(out, tuple) else (out,))).backward()
            parts[part] += alone.get_total_flops()
    return {"flops": float(counter.get_total_flops()), "encoder_flops": parts["encoder"], "decoder_flops": parts["decoder"],
            "decoded_latents": rows["decoder"]}


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


def run_case(options: dict) -> dict:
    """One case measured in a process of its own (so that its peak RSS is its own)."""
    command = [sys.executable, __file__, "--child", json.dumps(options)]
    return json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1])


def timing(result: dict, unit: str | None = None) -> str:
    """The median step time (and the throughput in ``unit``); with ``--precision ab`` both
    precisions' medians and the median float32/bf16 ratio of the same batches, with its range."""
    if result["precision"] == "ab":
        low, high = result["speedup_range"]
        return (f"float32 {result['float32_step_s'] * 1000:7.1f} ms   bf16 {result['bf16_step_s'] * 1000:7.1f} ms   "
                f"float32/bf16 {result['speedup']:.2f}x (per-batch ratios {low:.2f}-{high:.2f}x)")
    throughput = f"   {result['items_per_s']:7.1f} {unit}" if unit else ""
    return f"step {result['step_s'] * 1000:7.1f} ms{throughput}"


def rate_line(result: dict) -> str:
    """GFLOP per step, the rate achieved (with ``--precision ab``: by each precision), and its
    fraction of the float32 matrix-product rate."""
    matmul = result["matmul_flops_per_s"]
    achieved = ([(f"{precision} ", result["flops"] / result[f"{precision}_step_s"]) for precision in AB]
                if result["precision"] == "ab" else [("", result["flops"] / result["step_s"])])
    return (f"{result['flops'] / 1e9:6.1f} GFLOP/step  "
            + "  ".join(f"{label}{rate / 1e9:6.1f} GFLOP/s = {rate / matmul:4.0%}" for label, rate in achieved)
            + f" of float32 matmul ({matmul / 1e9:.0f} GFLOP/s)")


def objective_latents(model: str, k: int, samples: int) -> int | None:
    """Latents per item the paired objective decodes with k observed modalities: MEME k (1 + (k-1)(K+1))
    (every other observed decoder scores a term's K+1 classifier samples, its own decoder its
    likelihood sample), MVAE 2k (the joint ELBO's sample and each unimodal one), MMVAE k^2 K."""
    counts = {"meme": lambda: k * (1 + (k - 1) * (samples + 1)), "mvae": lambda: 2 * k, "mmvae": lambda: k * k * samples}
    return counts[model]() if model in counts else None  # MVAE has no samples to count (None)


def describe(args) -> str:
    preset = f" --preset {args.preset}" if args.preset else ""
    return (f"{args.model}{preset}, {args.dataset}, batch {args.batch_size}, {args.threads} threads, {args.precision}, "
            f"{args.cpu_settings} CPU settings, median of {args.steps} steps after {args.warmup}")


def report_cases(args) -> None:
    cases = ["paired"] + (["unpaired"] if args.model not in ("mmvae", "release-style") else [])
    print(describe(args))
    for case in cases:
        result = run_case({**vars(args), "case": case})
        if case == "paired":
            print(f"  model options {result['options']}")
        unit = "pairs/s" if case == "paired" else "items/s"
        print(f"  {case:9s} {timing(result, unit)}   peak RSS {result['peak_rss_mb']:5.0f} MB   {rate_line(result)}")


def report_scaling(args, counts: list[int]) -> None:
    """The paired step against the number of modalities M, with its FLOPs and how much of them the
    objective's own passes account for."""
    print(describe(args) + ", paired step against M")
    first = None
    for m in counts:
        result = run_case({**vars(args), "case": "paired", "modalities": str(m)})
        if first is None:
            first = result
            print(f"  model options {result['options']}")
        latents = sum(result["decoded_latents"].values()) / args.batch_size
        needed = objective_latents(args.model, m, result["samples"])
        print(f"  M={m}  {timing(result)}  peak RSS {result['peak_rss_mb']:5.0f} MB  {rate_line(result)}  "
              f"x{result['flops'] / first['flops']:.1f} FLOPs of M={counts[0]}; encoders {result['encoder_flops'] / 1e9:.1f}, "
              f"decoders {result['decoder_flops'] / 1e9:.1f} GFLOP over {latents:.0f} latents per item"
              + (f" (the objective's {needed})" if needed is not None else ""))
    if args.model == "meme":
        print(f"  MEME's objective (Eq. 11) has one term per observed modality s; its conditional prior p(z|T) is the other "
              f"encoders' product and its classifier q(T|z) = prod_t q(t|z) scores the term's K+1 = {first['samples'] + 1} samples "
              f"with every other decoder, so with k modalities the decoders score k(1 + (k-1)(K+1)) latents per item (grows as "
              f"k^2 K) and the encoders run k times (grows as k). Where the latents counted equal the objective's, "
              f"the whole FLOP growth is what the objective needs; the step adds no passes of its own.")


QUIET_SET = [{"model": "meme"}, {"model": "mvae"}, {"model": "mmvae", "preset": "official"},
             {"model": "meme", "dataset": "polymnist-textured", "modalities": "2,3,5"}]
"""What ``--model all`` measures: every model's steps on MNIST-Textured (MMVAE as its official
code trains it) and MEME's paired step against the number of modalities."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="meme",
                        help="meme, mvae, mmvae, release-style (see above), or all: " + "; ".join(
                            " ".join(f"--{key} {value}" for key, value in case.items()) for case in QUIET_SET))
    parser.add_argument("--preset", default=None, help="the model's named set of options (mmvae: official); "
                                                       "--latent-dim, --architecture, --classifier-samples and --importance-samples given override it")
    parser.add_argument("--case", choices=["paired", "unpaired", "all"], default="all")
    parser.add_argument("--dataset", default="mnist-textured",
                        help="the shipped sample's data set: mnist-textured (default) or polymnist-textured")
    parser.add_argument("--modalities", default=None,
                        help="polymnist-textured: how many modalities (2 to 5), or several (2,3,5): the paired step against M")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--classifier-samples", type=int, default=None, help="MEME's K (default 10)")
    parser.add_argument("--importance-samples", type=int, default=None, help="MMVAE's K per expert (default: the model's or preset's)")
    parser.add_argument("--latent-dim", type=int, default=None, help="default 64, or the preset's")
    parser.add_argument("--architecture", default=None, help="default release, or the preset's")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--precision", choices=["float32", "bf16", "ab"], default="float32",
                        help="bf16: the trainer's mixed precision (autocast to bfloat16), as --precision bf16 trains; "
                             "ab: float32 and bf16 steps alternated in one process (two copies of the model on the "
                             "same batches), reporting the median of the per-batch float32/bf16 time ratios, which "
                             "a machine whose load drifts still compares fairly")
    parser.add_argument("--steps", type=int, default=20, help="timed steps (their median is reported)")
    parser.add_argument("--warmup", type=int, default=30, help="training steps before the timed ones")
    parser.add_argument("--matmul-sizes", default="1024,2048,4096",
                        help="square float32 matrix products timed before and after the steps; the best rate is the reference")
    parser.add_argument("--cpu-settings", choices=["trainer", "torch-defaults"], default=None,
                        help="trainer: memevae's trainer settings (malloc serves blocks from its heap and keeps freed memory, subnormals flushed; "
                             "the default for memevae's models); torch-defaults: none of them (the release-style default)")
    parser.add_argument("--child", help=argparse.SUPPRESS)  # one case, in its own process: its options as JSON
    return parser


def fill_defaults(args: argparse.Namespace) -> argparse.Namespace:
    """The defaults that depend on the model: release-style runs with torch's CPU settings, MEME with K = 10."""
    if args.cpu_settings is None:
        args.cpu_settings = "torch-defaults" if args.model == "release-style" else "trainer"
    if args.classifier_samples is None and args.model in ("meme", "release-style"):
        args.classifier_samples = 10
    return args


def options(argv: list[str]) -> argparse.Namespace:
    """The options of one benchmark as the command line ``argv`` gives them, defaults filled in."""
    return fill_defaults(build_parser().parse_args(argv))


def main():
    args = build_parser().parse_args()
    if args.child:
        args = argparse.Namespace(**json.loads(args.child))
        args.matmul_sizes = [int(n) for n in args.matmul_sizes.split(",")]
        print(json.dumps(measure(args)))
        return
    if args.model == "all":
        for case in QUIET_SET:
            report(argparse.Namespace(**{**vars(args), "preset": None, **case}))
        return
    report(args)


def report(args) -> None:
    fill_defaults(args)
    counts = [int(m) for m in str(args.modalities).split(",")] if args.modalities else []
    if len(counts) > 1:
        report_scaling(args, counts)
    elif args.case != "all":
        print(json.dumps(run_case(vars(args))))
    else:
        report_cases(args)


if __name__ == "__main__":
    main()
