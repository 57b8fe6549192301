"""Gradient signal-to-noise ratio of MEME's two estimators (Fig. 10, App. B of Joy et al., ICLR 2022).

App. B: differentiating Eq. 6 naively (Eq. 7, ``estimator="full"``) passes gradients through the
importance ratio w = q(t|z) / q(t|s); MEME instead detaches w (``estimator="stop-gradient"``).
Fig. 10 compares the two by the signal-to-noise ratio of the gradients, measured along training.

What is computed here. Two MEME models are trained from the same initial parameters, on the same
batches, with the same noise stream, one per estimator. Every ``every`` optimiser steps (and at
step 0), on one fixed batch B of paired items, R = ``repeats`` independent gradient estimates
g_1..g_R of the loss (-mean over B of the paired objective) are taken, differing only in the
Monte-Carlo noise (the samples z, z_1..z_K). For each parameter entry j of a network,

    SNR_j = |mean_r g_rj| / std_r g_rj            (std with R - 1 in the denominator)

(the definition of Rainforth et al. 2018; the paper gives no formula). Per network the curves are

- ``"mean"`` (plotted, the default ``statistic``): the mean of SNR_j over the network's entries;
- ``"median"``: the median of SNR_j over entries (robust to a few near-deterministic entries);
- ``"norm"``: ||mean_r g_r|| / sqrt(sum_j var_r g_rj), the SNR of the gradient vector as a whole.

Entries whose gradient is exactly 0 in every repeat carry neither signal nor noise and are left
out; an entry with zero variance but a non-zero mean has SNR_j = inf (a deterministic gradient).
An entry that is pure zero-mean noise still shows SNR_j ~ sqrt(2 / (pi R)) (E|mean| of R Gaussian
draws over their std): the result records this ``noise_floor`` and the figure draws it.

Networks. Fig. 10 shows the paper's (phi, left) and (varphi, right): in direction s->t the
recognition model is q_phi(z|s) q_varphi(t|z), i.e. under MEME's weight sharing (App. C) phi is
s's encoder and varphi is t's decoder (the "classifier" q(t|z)), the two networks the ratio w
depends on. The curves are reported for all four networks ("encoder:<m>", "decoder:<m>"), so both
the encoders of each modality and the paper's pair can be read off. With the bi-directional
objective (the default) every network plays both roles, one per direction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import dataclasses
import math
from pathlib import Path

import torch

from ...training.trainer import Callback, NonFiniteError, Trainer, TrainConfig
from .._common import progress_bar
from ..metric import Metric


@dataclass
class SNROptions:
    steps: int = 200
    """Adam steps of each estimator's short training run."""
    every: int = 20
    """Measure every this many steps (and at step 0)."""
    repeats: int = 20
    """Gradient estimates per measurement."""
    batch_size: int = 64
    """Paired items per training batch and in the fixed measurement batch."""
    learning_rate: float = 5e-4
    """Adam's learning rate."""
    estimators: Literal["both", "stop-gradient", "full"] = "both"
    """The estimators compared: App. B's stop-gradient, Eq. 7's full one, or both."""

__all__ = ["gradient_snr", "gradient_snr_at", "plot_snr", "write_snr", "network_groups", "check_arguments", "STATISTICS"]

STATISTICS = ("mean", "median", "norm")


def network_groups(model) -> dict[str, list[torch.nn.Parameter]]:
    """{"encoder:<modality>": params, "decoder:<modality>": params} for each of the model's modalities."""
    groups = {}
    for part in ("encoder", "decoder"):
        for name in model.modality_names:
            groups[f"{part}:{name}"] = [p for p in getattr(model.modality(name), part).parameters() if p.requires_grad]
    return groups


def _snr_statistics(mean: torch.Tensor, var: torch.Tensor) -> dict:
    """The three summaries of per-entry |mean| / std (see the module text), as floats."""
    std = var.clamp_min(0).sqrt()
    active = (mean != 0) | (std > 0)
    if not active.any():
        return {"mean": float("nan"), "median": float("nan"), "norm": float("nan"), "entries": 0}
    m, s = mean[active].abs(), std[active]
    ratio = torch.where(s > 0, m / s.clamp_min(torch.finfo(s.dtype).tiny), torch.full_like(m, math.inf))
    total_sd = s.pow(2).sum().sqrt()
    norm = (m.pow(2).sum().sqrt() / total_sd).item() if total_sd > 0 else math.inf
    return {"mean": ratio.mean().item(), "median": ratio.median().item(), "norm": norm, "entries": int(active.sum())}


def gradient_snr_at(loss_fn, groups: dict[str, list[torch.Tensor]], repeats: int) -> dict[str, dict]:
    """SNR of the gradients of ``loss_fn()`` over ``repeats`` independent evaluations.

    ``loss_fn()`` returns a scalar loss whose randomness (if any) is fresh on every call;
    ``groups`` names lists of parameters. Per entry j: SNR_j = |mean_r g_rj| / std_r g_rj, with
    mean and variance accumulated in float64 by Welford's method (memory: two copies of the
    parameters, whatever ``repeats``). Returns {group: {"mean", "median", "norm", "entries"}}
    (module text); a deterministic loss gives inf.

    Example:
        >>> w = torch.nn.Parameter(torch.ones(3))
        >>> gradient_snr_at(lambda: (w * torch.randn(3)).sum(), {"w": [w]}, repeats=50)["w"]["mean"] < 1
        True
        >>> gradient_snr_at(lambda: (w * 2).sum(), {"w": [w]}, repeats=3)["w"]["mean"]
        inf
    """
    if int(repeats) != repeats or repeats < 2:
        raise ValueError(f"repeats must be an integer >= 2 (a standard deviation needs two estimates), got {repeats}")
    params = [p for ps in groups.values() for p in ps]
    sizes = {name: sum(p.numel() for p in ps) for name, ps in groups.items()}
    total = sum(sizes.values())
    mean = torch.zeros(total, dtype=torch.float64)
    m2 = torch.zeros(total, dtype=torch.float64)
    for r in range(1, int(repeats) + 1):
        for p in params:
            p.grad = None
        loss_fn().backward()
        g = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1).double().cpu() for p in params])
        delta = g - mean
        mean += delta / r
        m2 += delta * (g - mean)
    for p in params:
        p.grad = None
    var = m2 / (repeats - 1)
    out = {}
    for (name, size), mean_part, var_part in zip(sizes.items(), mean.split(list(sizes.values())), var.split(list(sizes.values()))):
        out[name] = _snr_statistics(mean_part, var_part)
    return out


def _estimator_model(model, estimator: str, seed: int, train_data):
    """A model for ``estimator``: built from a config (seeded by ``seed``), a copy of a given model,
    or made by a factory ``estimator -> model``."""
    from ...models import ModelConfig, model_from_config

    if isinstance(model, ModelConfig):
        torch.manual_seed(seed)
        net = model_from_config(dataclasses.replace(model, estimator=estimator))
        net.initialise(train_data, torch.Generator().manual_seed(seed))
        return net
    if isinstance(model, torch.nn.Module):
        return model.with_options(estimator=estimator)
    if callable(model):
        torch.manual_seed(seed)
        return model(estimator)
    raise ValueError(f"model must be a model config, a model or a factory estimator -> model, got {type(model).__name__}")


def _has_estimators(model) -> bool:
    config = getattr(model, "config", model)
    return dataclasses.is_dataclass(config) and "estimator" in {f.name for f in dataclasses.fields(config)}


def _paired_subset(data):
    from ...data import MultimodalDataset

    if not isinstance(data, MultimodalDataset):
        raise ValueError(f"data must be a MultimodalDataset, got {type(data).__name__}")
    rows = data.paired_rows()
    if len(rows) < 2:
        raise ValueError("gradient SNR needs at least two paired (fully observed) training items")
    return data.subset(rows)


def check_arguments(steps, repeats, every, batch_size, learning_rate=SNROptions.learning_rate, estimators=("stop-gradient", "full")) -> list[str]:
    """One-line ValueErrors for bad :func:`gradient_snr` settings; returns the estimators as a list."""
    from ...objectives import ESTIMATORS

    for name, value, low in (("steps", steps, 0), ("repeats", repeats, 2), ("every", every, 1), ("batch_size", batch_size, 2)):
        if int(value) != value or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value}"
                             + (" (a standard deviation needs two estimates)" if name == "repeats" else ""))
    if learning_rate <= 0:
        raise ValueError(f"learning_rate must be positive, got {learning_rate}")
    estimators = [estimators] if isinstance(estimators, str) else list(estimators)
    bad = [e for e in estimators if e not in ESTIMATORS]
    if bad or not estimators:
        raise ValueError(f"unknown estimator(s) {bad or estimators}; choose from {', '.join(ESTIMATORS)}")
    return estimators


class _SNRProbe(Callback):
    """Measures the gradient SNR on one fixed batch at step 0 and at every measurement point of a
    training run, and stops the trainer after ``steps`` optimiser steps."""

    def __init__(self, batch, repeats: int, points: list[int], steps: int, bar):
        self.batch, self.repeats, self.points, self.steps, self.bar = batch, repeats, points, steps, bar
        self.step = 0
        self.curve = {"step": [], "loss": [], "snr": {}}

    def measure(self, trainer) -> None:
        net = trainer.model.train()
        buffers = {k: v.clone() for k, v in net.named_buffers()}
        stats = gradient_snr_at(lambda: net(self.batch).loss, network_groups(net), self.repeats)
        with torch.no_grad():  # the repeats must not move BatchNorm's running statistics
            for k, v in net.named_buffers():
                v.copy_(buffers[k])
        self.curve["step"].append(self.step)
        for group, values in stats.items():
            for statistic in STATISTICS:
                self.curve["snr"].setdefault(group, {s: [] for s in STATISTICS})[statistic].append(values[statistic])
        self.bar.update(1)

    def on_fit_start(self, trainer):
        self.measure(trainer)
        trainer.should_stop = self.steps == 0

    def on_batch_end(self, trainer, step, loss):
        self.step += 1
        self.curve["loss"].append(loss)
        self.bar.set_postfix(loss=f"{loss:.1f}", refresh=False)
        self.bar.update(1)
        if self.step in self.points:
            self.measure(trainer)
        trainer.should_stop = self.step >= self.steps


def _estimator_curve(net, paired, measure_rows, *, steps, repeats, every, batch_size, learning_rate, seed, progress,
                     estimator) -> dict:
    """One estimator's curve: train ``net`` with the trainer (Adam, ``learning_rate``) for ``steps``
    steps on ``paired``, measuring the SNR at step 0 and every ``every`` steps."""
    device = next(net.parameters()).device
    points = sorted(set(range(0, steps + 1, every)) | {steps})
    config = TrainConfig(epochs=steps // max(1, len(paired) // batch_size) + 2, batch_size=batch_size, learning_rate=learning_rate,
                         seed=seed, device=str(device), coherence_items=0)
    bar = progress_bar(steps + len(points), f"SNR {estimator}", progress, unit="step")
    probe = _SNRProbe(paired.batch(measure_rows).to(device), repeats, points, steps, bar)
    trainer = Trainer(net, paired, config, callbacks=[probe])
    torch.manual_seed(seed)
    try:
        trainer.fit()
    except NonFiniteError:
        probe.curve["diverged_at"] = probe.step
    finally:
        bar.close()
    return probe.curve


def gradient_snr(model, data, *, steps: int = SNROptions.steps, repeats: int = SNROptions.repeats, every: int = SNROptions.every,
                 batch_size: int = SNROptions.batch_size, learning_rate: float = SNROptions.learning_rate, estimators=("stop-gradient", "full"), seed: int = 0,
                 progress: bool = True) -> dict:
    """Gradient SNR along a short training run, per estimator and network (Fig. 10, App. B).

    For each estimator ("stop-gradient": w detached, App. B; "full": Eq. 7), a MEME model is
    trained by :class:`~memevae.training.Trainer` for ``steps`` Adam steps (lr ``learning_rate``)
    on paired batches of ``batch_size`` from ``data``; at steps 0, every, 2 every, ..., steps it
    takes ``repeats`` gradient estimates on one fixed batch and records, per network, SNR =
    |mean g| / std g over the repeats, summarised over parameter entries as "mean" (plotted),
    "median" and "norm" (module text). All estimators start from the same parameters and see the
    same batches and noise stream.

    Args:
        model: a model config with an ``estimator`` option (fresh models, seeded by ``seed``), a
            model with one (both runs start from copies of its parameters, e.g. a trained run's
            model), or a callable ``estimator -> model``. Models without the option: the study
            is MEME's; a result with ``"skipped"`` is returned.
        data: the training MultimodalDataset; its paired items are used.

    Returns a dict with ``steps``, ``repeats``, ``every``, ``batch_size``, ``groups`` (network
    names), ``statistic`` ("mean", what :func:`plot_snr` draws), ``curves[estimator]`` =
    {"step": [...], "loss": [...], "snr": {group: {"mean": [...], "median": [...], "norm": [...]}}}
    and ``summary[estimator][group]`` = the curve's "mean" SNR averaged over measurement points.

    Example:
        >>> from memevae.models import MEMEConfig
        >>> from memevae.data import load_pairs
        >>> result = gradient_snr(MEMEConfig(latent_dim=8, pseudo_samples=4), load_pairs("mnist-textured", "train"),
        ...                       steps=20, every=10, repeats=5, batch_size=16)  # doctest: +SKIP
        >>> write_snr(result, "snr-out")  # snr.json + snr.png                    # doctest: +SKIP
    """
    if not callable(model) or isinstance(model, torch.nn.Module):
        if not _has_estimators(model):
            return {"skipped": f"the gradient SNR study (Fig. 10) compares MEME's two estimators of the importance weight; "
                               f"{type(model).__name__} has no estimator option", "curves": {}}
    estimators = check_arguments(steps, repeats, every, batch_size, learning_rate, estimators)
    paired = _paired_subset(data)
    measure_rows = torch.randperm(len(paired), generator=torch.Generator().manual_seed(seed))[:batch_size]
    curves, config = {}, None
    with torch.random.fork_rng():
        for estimator in estimators:
            net = _estimator_model(model, estimator, seed, paired)
            config = dataclasses.asdict(net.config)
            curves[estimator] = _estimator_curve(net, paired, measure_rows, steps=steps, repeats=repeats, every=every,
                                                 batch_size=batch_size, learning_rate=learning_rate, seed=seed,
                                                 progress=progress, estimator=estimator)
    summary = {e: {g: _finite_mean(c["snr"][g]["mean"]) for g in c["snr"]} for e, c in curves.items()}
    return {
        "figure": "Fig. 10 (App. B): gradient SNR, stop-gradient vs full estimator",
        "dataset": getattr(data, "name", None),
        "model_config": config,
        "steps": int(steps), "repeats": int(repeats), "every": int(every), "batch_size": int(batch_size),
        "learning_rate": learning_rate, "seed": seed,
        "statistic": "mean",
        "statistic_definition": "mean over a network's parameter entries j of |mean_r g_rj| / std_r g_rj "
                                "(R repeats on one fixed batch, std with R-1); 'median' and 'norm' "
                                "(||mean g|| / sqrt(sum_j var g_j)) are also recorded",
        "noise_floor": math.sqrt(2.0 / (math.pi * repeats)),
        "groups": list(next(iter(curves.values()))["snr"]) if curves else [],
        "curves": curves,
        "summary": summary,
    }


def study(model, data, options: SNROptions, *, seed: int = 0, progress: bool = True) -> dict:
    """:func:`gradient_snr` with the settings of ``options``."""
    estimators = ("stop-gradient", "full") if options.estimators == "both" else (options.estimators,)
    return gradient_snr(model, data, steps=options.steps, repeats=options.repeats, every=options.every,
                        batch_size=options.batch_size, learning_rate=options.learning_rate, estimators=estimators, seed=seed,
                        progress=progress)


def _finite_mean(values):
    finite = [v for v in values if math.isfinite(v)]
    if len(finite) < len(values) and any(v == math.inf for v in values):
        return math.inf
    return sum(finite) / len(finite) if finite else float("nan")


def _paper_label(group: str, directions) -> str:
    """The paper's symbol for a network, for one-directional objectives (phi: enc_s, varphi: dec_t)."""
    part, name = group.split(":")
    if len(directions) != 1:
        return f"{name} {part}"
    s, t = directions[0]
    symbol = {("encoder", s): "\u03c6 = q(z|s)", ("decoder", t): "\u03d5 = q(t|z)",
              ("encoder", t): "\u03c8 = p(z|t)", ("decoder", s): "\u03b8 = p(s|z)"}[(part, name)]
    return f"{name} {part} ({symbol})"


def plot_snr(result: dict, path, statistic: str | None = None, title: str | None = None):
    """Fig. 10 as a PNG: one panel per network (encoders on top), SNR against training step, one
    curve per estimator, log scale. Written atomically; returns the path."""
    from ..plotting import save, subplots, suptitle

    statistic = statistic or result.get("statistic", "mean")
    if statistic not in STATISTICS:
        raise ValueError(f"unknown statistic {statistic!r}; choose one of {', '.join(STATISTICS)}")
    curves = result["curves"]
    if not curves:
        raise ValueError("the result has no curves to plot")
    groups = result["groups"]
    encoders = [g for g in groups if g.startswith("encoder:")]
    decoders = [g for g in groups if g.startswith("decoder:")]
    cols = max(len(encoders), len(decoders))
    directions = []
    config = result.get("model_config") or {}
    if config.get("direction", "both") != "both":
        directions = [tuple(config["direction"].split("->"))]
    colours = {"stop-gradient": "tab:blue", "full": "tab:orange"}
    fig, axes = subplots(2, cols, figsize=(4.2 * cols, 6.4), squeeze=False)
    for row, names in enumerate((encoders, decoders)):
        for col in range(cols):
            axis = axes[row, col]
            if col >= len(names):
                axis.axis("off")
                continue
            group = names[col]
            for estimator, curve in curves.items():
                values = [v if math.isfinite(v) else float("nan") for v in curve["snr"][group][statistic]]
                label = "stop-gradient (App. B)" if estimator == "stop-gradient" else "full (Eq. 7)" if estimator == "full" else estimator
                axis.plot(curve["step"], values, marker="o", ms=3, color=colours.get(estimator), label=label)
            if statistic != "norm" and result.get("noise_floor"):
                axis.axhline(result["noise_floor"], color="grey", ls="--", lw=1, label="noise floor (zero-mean gradient)")
            axis.set_yscale("log")
            axis.set_xlabel("training step")
            axis.set_ylabel(f"gradient SNR ({statistic} over entries)" if statistic != "norm" else "gradient SNR (norm)")
            axis.set_title(_paper_label(group, directions), fontsize=9)
            axis.grid(alpha=0.3, which="both")
            axis.legend(fontsize=8)
    suptitle(fig, title or (f"Gradient SNR |E g| / std g over {result['repeats']} repeats "
                           f"(Fig. 10){' on ' + result['dataset'] if result.get('dataset') else ''}; higher is better"), 10)
    save(fig, path, dpi=120)
    return Path(path)


def write_snr(result: dict, out_dir) -> dict[str, Path]:
    """Write ``snr.json`` (infinities as the string "inf") and ``snr.png`` into ``out_dir``, atomically."""
    from ... import io

    out_dir = Path(out_dir)
    json_path = io.write_json(out_dir / "snr.json", io.json_ready(result))
    png_path = plot_snr(result, out_dir / "snr.png")
    return {"json": json_path, "png": png_path}


class GradientSNR(Metric):
    """Gradient SNR along a short training run started from this run's parameters (copies; the run
    is not changed), on its training pairs; ``snr.png`` in the figures folder."""

    name = "snr"
    description = "gradient signal-to-noise ratio (Fig. 10)"
    Options = SNROptions
    needs = frozenset({"train"})
    cheap = False
    order = 70
    figures = ("snr.png",)

    def compute(self, context, options: SNROptions) -> dict:
        result = study(context.model, context.train, options, seed=context.seed, progress=context.progress)
        if result.get("curves"):
            plot_snr(result, context.figures_dir / "snr.png")
        return result

    def headline(self, values: dict) -> dict[str, float]:
        return {f"{estimator}/{group}": value for estimator, groups in values.get("summary", {}).items()
                for group, value in groups.items() if isinstance(value, float)}
