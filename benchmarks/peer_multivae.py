"""Training-step throughput of memevae against MultiVae 1.0.3 on identical networks and settings.

MultiVae (pip install --no-deps multivae==1.0.3) is the library people use for MVAE and MMVAE. This
script gives both libraries the same networks: memevae's own encoders and decoders, wrapped in the
encoder and decoder interfaces MultiVae takes (pythae's BaseEncoder/BaseDecoder) with identical
weights, so that what differs is each library's model code. It times optimiser steps (forward,
backward, Adam) on batches of 128 real pairs (MNIST digits of the shipped sample paired with
textured digits) for
  - MVAE: joint and unimodal ELBOs, memevae's defaults (latent 64, release networks), Laplace
    likelihoods with scale 1, no KL annealing (MultiVae's ``warmup=0``);
  - MMVAE: memevae's ``--preset official`` (K = 30 samples per expert, the looser stratified
    bound, Laplace posterior, learnt prior and likelihoods of scale 0.75, paper networks, latent
    20) with Tucker et al.'s DReG gradient (``objective="dreg"``), the estimator MultiVae's
    ``dreg_looser`` computes (the preset's "dreg-as-released" differs from it in the encoders'
    gradient only, at the same cost).

Before timing, one batch in float64 checks that the two libraries compute the same thing: with the
same noise, the losses agree (MultiVae's MMVAE returns the DReG surrogate summed over the batch, so
its bound comes from its ``iwae_looser`` on the same samples), and so do the gradients (MultiVae's
MMVAE ones divided by the batch size). MultiVae adds 1e-6 to its learnt prior's scale and the
official MMVAE code (which memevae follows) does not, so MMVAE agrees to about 1e-6, MVAE to
rounding.

Each library trains in its own process, both alive at once but never computing at the same
time: after 30 warm-up steps each, the 20 timed steps of each run in alternating rounds (A B, B A,
...), so that a machine whose speed drifts slows both alike. Reported: the median step, pairs/s,
the ratio, and each process's peak resident memory.

Settings (``--settings``):
  same     (default) the same for both: 2 threads, memevae's CPU settings for the whole process
           (malloc serves blocks from its heap and keeps freed memory, subnormals flushed in every
           thread; ``--cpu-settings torch-defaults``: none of them), fused Adam (lr 5e-4);
  shipped  as each library trains out of the box: memevae as the ``memevae`` command trains (its
           CPU settings, fused Adam), MultiVae as its trainer does (torch's CPU defaults and its
           default optimiser, ``torch.optim.Adam`` with lr 1e-4); networks and objective stay
           identical.

MultiVae's package imports torchvision when its models are imported (its data sets use it at
import time), though neither model needs it. Where torchvision is not installed, this script puts
an inert stand-in for it into ``sys.modules`` of its own processes only, before importing
MultiVae; the stand-in is never called by the code the comparison runs.

    python benchmarks/peer_multivae.py                      # MVAE and MMVAE, same settings
    python benchmarks/peer_multivae.py --settings shipped
    python benchmarks/peer_multivae.py --model mvae --check-only
"""

from __future__ import annotations

import argparse
import copy
import importlib.abc
import importlib.machinery
import importlib.metadata
import importlib.util
import json
import resource
import statistics
import subprocess
import sys
import time
import types

VERSION = "1.0.3"
MISSING = f"MultiVae {VERSION} is not installed: pip install --no-deps multivae=={VERSION}"
PROTOCOL = "@@ "  # prefix of the lines a worker process sends its parent


# -- MultiVae ---------------------------------------------------------------------------------

def multivae_version() -> str | None:
    """The installed MultiVae's version, or None when it cannot be imported."""
    try:
        import multivae  # noqa: F401
    except ImportError:
        return None
    return importlib.metadata.version("multivae")


def _inert_attribute(owner: str, attribute: str) -> "_Inert":
    """An :class:`_Inert` for any public name; Python's own dunder names stay missing (so that
    ``inspect`` and pickling treat the stand-in as a module without a file)."""
    if attribute.startswith("__"):
        raise AttributeError(attribute)
    return _Inert(f"{owner}.{attribute}")


class _Inert:
    """What the torchvision stand-in gives for any name: attribute access, calls and subclassing
    all succeed and give more of the same (MultiVae's data sets call ``ToTensor()`` in default
    arguments at import time)."""

    def __init__(self, name: str):
        self._name = name

    def __getattr__(self, attribute: str) -> "_Inert":
        return _inert_attribute(self._name, attribute)

    def __call__(self, *args, **kwargs) -> "_Inert":
        return _Inert(f"{self._name}()")

    def __mro_entries__(self, bases):
        return (object,)


class _InertTorchvision(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds ``torchvision`` and its submodules as inert modules."""

    def find_spec(self, name, path, target=None):
        if name == "torchvision" or name.startswith("torchvision."):
            return importlib.machinery.ModuleSpec(name, self, is_package=True)
        return None

    def create_module(self, spec):
        module = types.ModuleType(spec.name)
        module.__path__ = []
        module.__getattr__ = lambda attribute, name=spec.name: _inert_attribute(name, attribute)
        return module

    def exec_module(self, module):
        pass


def import_multivae():
    """MultiVae's ``models`` module and pythae's network interfaces (BaseEncoder, BaseDecoder,
    ModelOutput, DatasetOutput), with the torchvision stand-in where torchvision is absent."""
    if importlib.util.find_spec("torchvision") is None:
        finder = _InertTorchvision()
        sys.meta_path.insert(0, finder)
        try:
            import multivae.models
        finally:
            sys.meta_path.remove(finder)
    import multivae.models
    from pythae.data.datasets import DatasetOutput
    from pythae.models.base.base_utils import ModelOutput
    from pythae.models.nn.base_architectures import BaseDecoder, BaseEncoder

    return multivae.models, BaseEncoder, BaseDecoder, ModelOutput, DatasetOutput


def wrapped_networks(model, posterior: str):
    """Copies of ``model``'s encoders and decoders (memevae's modules, same weights) in MultiVae's
    interfaces: {modality: encoder}, {modality: decoder}. An encoder gives MultiVae the location and
    the ``log_covariance`` from which MultiVae forms the scale memevae uses: 2 log(memevae's
    Gaussian scale) for "gaussian"; for "laplace" the raw head itself (MultiVae's
    ``laplace_with_softmax`` applies the official softmax link, as memevae does). A decoder gives
    the likelihood's location (memevae's, clamped where the likelihood clamps it)."""
    import torch
    import torch.nn.functional as F

    _, BaseEncoder, BaseDecoder, ModelOutput, _ = import_multivae()

    class Encoder(BaseEncoder):
        def __init__(self, network, min_scale: float):
            super().__init__()
            self.network, self.min_scale = network, min_scale

        def forward(self, x):
            loc, raw = self.network(x)
            if posterior == "laplace":
                return ModelOutput(embedding=loc, log_covariance=raw)
            return ModelOutput(embedding=loc, log_covariance=2 * torch.log(F.softplus(raw).clamp(min=self.min_scale)))

    class Decoder(BaseDecoder):
        def __init__(self, network, shape, likelihood):
            super().__init__()
            self.network, self.shape, self.likelihood = network, tuple(shape), likelihood

        def forward(self, z):
            return ModelOutput(reconstruction=self.likelihood.location(self.network(z).reshape(len(z), *self.shape)))

    encoders = {name: Encoder(copy.deepcopy(mod.encoder), mod.min_scale) for name, mod in model.modalities.items()}
    decoders = {name: Decoder(copy.deepcopy(mod.decoder), mod.shape, mod.likelihood) for name, mod in model.modalities.items()}
    return encoders, decoders


def multivae_model(model):
    """MultiVae's model of the same kind as memevae's ``model`` (MVAE or MMVAE), with its
    networks (:func:`wrapped_networks`), likelihoods, weights and objective."""
    models = import_multivae()[0]
    mods = model.modalities
    common = dict(n_modalities=len(mods), latent_dim=model.config.latent_dim,
                  input_dims={name: tuple(mod.shape) for name, mod in mods.items()},
                  decoders_dist={name: "laplace" for name in mods},
                  decoder_dist_params={name: {"scale": mod.likelihood.scale} for name, mod in mods.items()},
                  uses_likelihood_rescaling=True, rescale_factors=dict(model.likelihood_weights))
    if type(model).__name__ == "MVAE":
        encoders, decoders = wrapped_networks(model, "gaussian")
        return models.MVAE(models.MVAEConfig(**common, use_subsampling=True, k=0, warmup=0, beta=1.0), encoders, decoders)
    cfg = model.config
    if cfg.posterior != "laplace" or not cfg.learn_prior or cfg.bound != "looser" or cfg.objective != "dreg":
        raise ValueError("the comparison covers MMVAE with the official preset's Laplace posterior, learnt prior and "
                         "looser bound, and objective 'dreg'")
    encoders, decoders = wrapped_networks(model, "laplace")
    peer = models.MMVAE(models.MMVAEConfig(**common, K=cfg.importance_samples, prior_and_posterior_dist="laplace_with_softmax",
                                           learn_prior=True, beta=1.0, loss="dreg_looser"), encoders, decoders)
    with __import__("torch").no_grad():
        peer.prior_log_var.copy_(model.prior_logits.view_as(peer.prior_log_var))
    return peer


def peer_parameters(model, peer):
    """Pairs (name, memevae's parameter, MultiVae's parameter) of the two models."""
    pairs = []
    for name, mod in model.modalities.items():
        for part, networks in (("encoder", peer.encoders), ("decoder", peer.decoders)):
            own = dict(getattr(mod, part).named_parameters())
            theirs = dict(networks[name].network.named_parameters())
            pairs += [(f"{name}.{part}.{key}", own[key], theirs[key]) for key in own]
    if hasattr(model, "prior_logits"):
        pairs.append(("prior", model.prior_logits, peer.prior_log_var))
    return pairs


# -- the models and data ----------------------------------------------------------------------

def model_options(name: str, samples: int | None = None) -> dict:
    """memevae's options of the compared model ``name``."""
    from memevae.models import preset_options

    if name == "mvae":
        return {}
    options = {**preset_options("mmvae", "official"), "objective": "dreg"}
    if samples is not None:
        options["importance_samples"] = samples
    return options


def build(name: str, samples: int | None = None):
    """(the training data of the shipped sample, memevae's model ``name`` with seed 0)."""
    import torch

    from memevae.data import DataConfig
    from memevae.runs import build_model

    config = DataConfig(dataset="mnist-textured")
    data = config.load("train")
    torch.manual_seed(0)
    return data, build_model(name, config.kinds(), model_options(name, samples))


def peer_inputs(batch):
    """A memevae batch as the inputs MultiVae's models take (what its trainer's loader gives)."""
    DatasetOutput = import_multivae()[4]
    return DatasetOutput(data=dict(batch.data))


def loss_of(library: str, model, batch):
    """The training loss of one step of ``library``'s ``model`` on ``batch``."""
    if library == "memevae":
        return model(batch).loss
    return model(peer_inputs(batch), epoch=1).loss


# -- the agreement check ----------------------------------------------------------------------

def _relative(a, b, floor: float = 1e-300) -> float:
    """The largest |a - b| relative to the largest |b| (at least ``floor``)."""
    return float((a - b).abs().max() / b.abs().max().clamp(min=floor))


def agreement(name: str, batch_size: int = 128, samples: int | None = None) -> dict:
    """On one batch in float64 with the same noise: the relative difference of the two libraries'
    losses (MMVAE: bounds) and the largest relative difference of a gradient, over every parameter
    (MMVAE: MultiVae's divided by the batch size, since it sums over the batch). A gradient's
    difference is relative to its own largest value, or to 1e-6 of the model's largest gradient
    where that is more (a bias followed by batch normalisation has gradient zero up to rounding)."""
    import torch

    data, model = build(name, samples)
    peer = multivae_model(model)
    model.double().train()
    peer.double().train()
    batch = data.batch(torch.arange(batch_size))
    batch = type(batch)({key: value.double() for key, value in batch.data.items()}, batch.labels)
    torch.manual_seed(1)
    own = model(batch).loss
    own.backward()
    torch.manual_seed(1)
    theirs = peer(peer_inputs(batch), epoch=1).loss
    theirs.backward()
    scale = 1.0 if name == "mvae" else float(batch_size)
    if name == "mmvae":  # the bound on the same samples: MultiVae's iwae_looser, summed over the batch
        torch.manual_seed(1)
        with torch.no_grad():
            detail = peer(peer_inputs(batch), compute_loss=False, detailed_output=True)
            theirs = peer.iwae_looser(detail.qz_xs, detail.zss, detail.recon, peer_inputs(batch)).loss
    pairs = [(key, a.grad, b.grad.view_as(a.grad) / scale) for key, a, b in peer_parameters(model, peer)]
    floor = 1e-6 * max(float(theirs_grad.abs().max()) for _, _, theirs_grad in pairs)
    gradients = {key: _relative(own_grad, theirs_grad, floor) for key, own_grad, theirs_grad in pairs}
    worst = max(gradients, key=gradients.get)
    return {"loss_memevae": own.item(), "loss_multivae": theirs.item() / scale,
            "loss_relative": _relative(own.detach(), theirs.detach() / scale),
            "gradient_relative": gradients[worst], "gradient_worst": worst, "parameters": len(gradients)}


# -- timing: one worker process per library ---------------------------------------------------

def worker(args) -> None:
    """Build ``args.worker``'s model, then answer the parent's commands on stdin: "warmup", "steps
    N" (the seconds of each of the next N steps), "quit" (the peak resident memory)."""
    import torch

    from memevae.training.cpu import flush_subnormals, keep_freed_memory
    from memevae.training.schedule import epoch_batches
    from memevae.training.trainer import TrainConfig, make_optimizer

    library = args.worker
    memevae_settings = args.settings == "same" and args.cpu_settings == "memevae" or (
        args.settings == "shipped" and library == "memevae")
    torch.set_num_threads(args.threads)
    took = {"freed_memory": keep_freed_memory(), "subnormals_flushed": flush_subnormals(True)} if memevae_settings else {}
    data, model = build(args.model)
    if library == "multivae":
        model = multivae_model(model)
        parameters = list(model.parameters())
        optimizer = (torch.optim.Adam(parameters, lr=1e-4) if args.settings == "shipped"
                     else make_optimizer(parameters, TrainConfig()))
    else:
        optimizer = make_optimizer(model.parameters(), TrainConfig())
    model.train()
    batches = [rows for epoch in (1, 2, 3) for rows in epoch_batches(data, args.batch_size, 0, epoch)
               if len(rows) == args.batch_size][: args.warmup + args.steps]
    if len(batches) < args.warmup + args.steps:
        raise SystemExit(f"the sample has only {len(batches)} full batches; lower --warmup or --steps")
    position = 0

    def step() -> float:
        nonlocal position
        started = time.perf_counter()
        loss = loss_of(library, model, data.batch(batches[position]))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        position += 1
        return time.perf_counter() - started

    def send(message: dict) -> None:
        print(PROTOCOL + json.dumps(message), flush=True)

    send({"ready": True, "cpu_settings": took, "optimizer": type(optimizer).__name__,
          "fused": bool(optimizer.defaults.get("fused"))})
    for line in sys.stdin:
        command = line.split()
        if command[0] == "warmup":
            send({"times": [step() for _ in range(args.warmup)]})
        elif command[0] == "steps":
            send({"times": [step() for _ in range(int(command[1]))]})
        else:
            send({"peak_rss_mb": peak_rss_mb()})
            return


def peak_rss_mb() -> float:
    """This process's peak resident memory in MB: Linux's VmHWM, which starts afresh at exec
    (``ru_maxrss`` carries over the peak of the parent that forked the process), else ru_maxrss."""
    try:
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:")) / 1024
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class Worker:
    """A worker process of one library, driven line by line."""

    def __init__(self, library: str, args):
        options = ["--model", args.model, "--settings", args.settings, "--cpu-settings", args.cpu_settings,
                   "--threads", str(args.threads), "--batch-size", str(args.batch_size),
                   "--warmup", str(args.warmup), "--steps", str(args.steps)]
        self.library = library
        self.process = subprocess.Popen([sys.executable, __file__, "--worker", library, *options],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def receive(self) -> dict:
        for line in self.process.stdout:
            if line.startswith(PROTOCOL):
                return json.loads(line[len(PROTOCOL):])
        raise SystemExit(f"the {self.library} worker stopped (exit code {self.process.wait()})")

    def ask(self, command: str) -> dict:
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()
        return self.receive()

    def close(self) -> dict:
        answer = self.ask("quit")
        self.process.wait()
        return answer


def compare(args) -> dict:
    """Warm both workers up, then time ``args.steps`` steps of each in ``args.rounds`` alternating rounds."""
    workers = [Worker("memevae", args), Worker("multivae", args)]
    try:
        ready = {w.library: w.receive() for w in workers}
        for w in workers:
            w.ask("warmup")
        times = {w.library: [] for w in workers}
        sizes = [args.steps // args.rounds + (i < args.steps % args.rounds) for i in range(args.rounds)]
        for i, size in enumerate(sizes):
            for w in (workers if i % 2 == 0 else workers[::-1]):
                times[w.library] += w.ask(f"steps {size}")["times"]
        peaks = {w.library: w.close()["peak_rss_mb"] for w in workers}
    finally:
        for w in workers:
            if w.process.poll() is None:
                w.process.kill()
    return {library: {"step_s": statistics.median(times[library]), "pairs_per_s": args.batch_size / statistics.median(times[library]),
                      "peak_rss_mb": peaks[library], **ready[library]} for library in times}


DESCRIPTIONS = {"mvae": "MVAE (latent 64, release networks)",
                "mmvae": "MMVAE, --preset official with DReG (K = 30, latent 20, paper networks)"}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=["mvae", "mmvae", "all"], default="all")
    parser.add_argument("--settings", choices=["same", "shipped"], default="same")
    parser.add_argument("--cpu-settings", choices=["memevae", "torch-defaults"], default="memevae",
                        help="with --settings same: the CPU settings both libraries run under")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--warmup", type=int, default=30, help="training steps of each library before the timed ones")
    parser.add_argument("--steps", type=int, default=20, help="timed steps of each library (their median is reported)")
    parser.add_argument("--rounds", type=int, default=4, help="alternating rounds the timed steps are split into")
    parser.add_argument("--check-only", action="store_true", help="only the float64 agreement check")
    parser.add_argument("--no-check", action="store_true", help="skip the float64 agreement check")
    parser.add_argument("--samples", type=int, default=None, help="MMVAE's K in the agreement check (default: the preset's 30)")
    parser.add_argument("--worker", choices=["memevae", "multivae"], help=argparse.SUPPRESS)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    version = multivae_version()
    if version != VERSION:
        print(MISSING + ("" if version is None else f" (found {version})"))
        return 0
    if args.worker:
        worker(args)
        return 0
    models = ["mvae", "mmvae"] if args.model == "all" else [args.model]
    if not args.check_only:
        settings = (f"same settings for both ({args.cpu_settings} CPU settings, fused Adam)" if args.settings == "same"
                    else "as each library ships (memevae: its CPU settings, fused Adam; MultiVae: torch's defaults, Adam)")
        print(f"memevae against MultiVae {VERSION}: shipped mnist-textured sample, batch {args.batch_size}, {args.threads} threads, "
              f"{settings}; each library in its own process, {args.warmup} warm-up steps, median of {args.steps} in "
              f"{args.rounds} alternating rounds")
    for name in models:
        args.model = name
        print(DESCRIPTIONS[name])
        if not args.no_check:
            found = agreement(name, args.batch_size, args.samples)
            print(f"  agreement (float64, one batch): loss {found['loss_memevae']:.10g} against {found['loss_multivae']:.10g} "
                  f"(relative difference {found['loss_relative']:.1e}); gradients of {found['parameters']} parameters: "
                  f"largest relative difference {found['gradient_relative']:.1e} ({found['gradient_worst']})", flush=True)
        if args.check_only:
            continue
        result = compare(args)
        for library, label in (("memevae", "memevae "), ("multivae", "MultiVae")):
            r = result[library]
            print(f"  {label} step {r['step_s'] * 1000:8.1f} ms  {r['pairs_per_s']:7.1f} pairs/s  peak RSS {r['peak_rss_mb']:.0f} MB  "
                  f"({r['optimizer']}{', fused' if r['fused'] else ''}; CPU settings {r['cpu_settings'] or 'torch defaults'})")
        print(f"  memevae / MultiVae: {result['memevae']['pairs_per_s'] / result['multivae']['pairs_per_s']:.2f}x", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
