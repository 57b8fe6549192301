"""Importance-weighted marginal log-likelihoods (Table 2 of Joy et al., ICLR 2022, App. C).

MEME's generative model in direction s->t is p(s, z, t) = p(s|z) p(z|t) p(t) (Sec. 3.1, Fig. 2):
dec_s is the likelihood p(s|z), enc_t the conditional prior p(z|t), and p(t) is a fixed density
that MEME never models (the constant log p(t) is dropped from Eq. 6). So

    log p(s, t) = log p(s | t) + log p(t),   p(s | t) = \\int p(s|z) p(z|t) dz,

and the part the model determines is the conditional marginal log p(s | t). It is estimated by
importance sampling with the direction's own approximate posterior q(z|s) = enc_s(s) as proposal
(the IWAE estimator, Burda et al. 2016):

    log p(s | t) ~= logsumexp_{k=1..K} [log p(s|z_k) + log p(z_k|t) - log q(z_k|s)] - log K,
    z_k ~ q(z|s) independently.

This is a stochastic lower bound whose expectation increases with K to log p(s|t) (for K = 1 it
is the ELBO of a plain conditional VAE). Eq. 1's bound of log p(s, t) - log p(t) is a lower
bound of the same quantity: its proposal q(z|s,t) = q(t|z) q(z|s) / q(t|s) cannot be sampled
directly, so q(z|s) is used here; with K in the thousands the proposal's choice matters little.

Table 2 trains MEME in one direction (Eq. 6), in the other, and in both (Eq. 2), then evaluates
every model in both test directions; a one-directional model evaluated in the other direction is
"flipped" (App. C): the same four networks with their roles swapped, i.e. log p(t | s) with
likelihood dec_t, conditional prior enc_s and proposal enc_t. :func:`marginal_log_likelihood`
computes both directions for every MEME model and marks which are flipped.

MEME also defines a density for t alone: Eq. 4's generative model for t-only data, p(t) =
\\int p(t|z) p_lambda_s(z) dz with the mixture prior p_lambda_s(z) = (1/N) sum_i p(z | u_i) over s's
pseudo-samples u_i (encoded by enc_s). So, with ``joint=True`` (default), each direction also gets

    log p(t) ~= logsumexp_k [log p(t|z_k) + log p_lambda_s(z_k) - log q(z_k|t)] - log K,  z_k ~ q(z|t),
    log p(s, t) ~= log p(s | t) + log p(t),

a joint log-likelihood comparable with the baselines' (the baselines' tables report log p(s, t)). The
two directions factorise the joint differently, so their two estimates of log p(s, t) need not
agree; how far apart they are is itself a measure of the model's (in)consistency. With fully
paired training (f = 1) the pseudo-samples are never trained (Eq. 4 is unused) and stay at the
real examples they were initialised with, so p_lambda_s is a fixed mixture of N posteriors.

Models with one joint generative model (MVAE, MMVAE: one joint posterior, an unconditional
prior) get the standard joint estimate with their joint posterior as proposal,

    log p(s, t) ~= logsumexp_k [sum_m log p(x_m|z_k) + log p(z_k) - log q(z_k|s, t)] - log K.

Every density comes from the model (:class:`~memevae.models.MultimodalVAE`): its
``conditional_directions``/``conditional_importance`` (MEME), ``marginal_importance`` and
``joint_importance`` (MMVAE's draws its samples stratified over the experts), each of which
encodes a batch once and then draws its log-weights chunk by chunk; a model whose
``joint_importance`` raises NotImplementedError is reported as skipped, with the reason. The
numbers of the two kinds are not comparable: one is a conditional log-likelihood without log p(t),
the other a joint one.
"""

from __future__ import annotations

from dataclasses import dataclass

import contextlib
import math

import torch

from ...data.formats import as_float_images
from ...training.cpu import cpu_settings, owns_process
from .._common import progress_bar
from ..metric import Metric


@dataclass
class LikelihoodOptions:
    samples: int = 1000
    """K, importance samples per test pair (Table 2)."""
    direction: str | None = None
    """MEME: one direction such as "mnist->textured"; default both."""
    joint: bool = True
    """MEME: also log p(t) under Eq. 4's pseudo-sample prior and log p(s, t)."""
    batch_size: int = 16
    """Test pairs encoded at once."""
    chunk_size: int = 100
    """Samples decoded at once (memory: about batch_size x chunk_size decodings)."""
    max_items: int | None = None
    """Evaluate only the first this many test pairs (None: all)."""

__all__ = ["marginal_log_likelihood", "importance_log_likelihood"]


def importance_log_likelihood(log_weights, samples: int, chunk_size: int = 100) -> tuple[torch.Tensor, torch.Tensor]:
    """Chunked, numerically stable importance-sampling estimate of a log marginal per item.

    ``log_weights(k)`` returns a (k, B) tensor of log w = log p(x, z) - log q(z|x) at k fresh
    samples z ~ q. The estimate is logsumexp over all ``samples`` log-weights minus log(samples),
    accumulated ``chunk_size`` samples at a time with a running log-add-exp, so memory is bounded
    by one chunk whatever ``samples`` is.

    Returns ``(estimate, mean_log_weight)``, each (B,): the IWAE estimate, and the average
    log-weight (the single-sample ELBO averaged over the same samples).

    Example:
        >>> est, elbo = importance_log_likelihood(lambda k: torch.full((k, 3), -2.0), samples=10, chunk_size=4)
        >>> [round(v, 6) for v in est.tolist()], elbo.tolist()
        ([-2.0, -2.0, -2.0], [-2.0, -2.0, -2.0])
    """
    if int(samples) != samples or samples < 1:
        raise ValueError(f"samples must be a positive integer, got {samples}")
    if int(chunk_size) != chunk_size or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive integer, got {chunk_size}")
    running, total, done = None, None, 0
    while done < samples:
        k = min(chunk_size, samples - done)
        lw = log_weights(k).double()
        if lw.dim() != 2 or lw.shape[0] != k:
            raise ValueError(f"log_weights({k}) must return a ({k}, batch) tensor, got {tuple(lw.shape)}")
        chunk = torch.logsumexp(lw, dim=0)
        running = chunk if running is None else torch.logaddexp(running, chunk)
        total = lw.sum(0) if total is None else total + lw.sum(0)
        done += k
    return running - math.log(samples), total / samples


def _as_model(model):
    return getattr(model, "model", model) if not isinstance(model, torch.nn.Module) else model


def _paired_tensors(model, data, max_items):
    """Data as {modality: float tensor (N, ...)} of fully observed items, in the model's modalities."""
    from ...data import Batch, MultimodalDataset

    if isinstance(data, MultimodalDataset):
        rows = data.paired_rows()
        if len(rows) == 0:
            raise ValueError("the data has no fully observed (paired) items; marginal likelihoods need pairs")
        if max_items is not None:
            rows = rows[:max_items]
        tensors = data.batch(rows).data
    elif isinstance(data, Batch):
        tensors = dict(data.data)
    elif isinstance(data, dict):
        tensors = dict(data)
    else:
        raise ValueError(f"data must be a MultimodalDataset, a Batch or a dict of tensors, got {type(data).__name__}")
    missing = [m for m in model.modality_names if m not in tensors]
    if missing:
        raise ValueError(f"data lacks modality {', '.join(missing)}; the model needs {', '.join(model.modality_names)}")
    tensors = {m: as_float_images(x) if x.dtype == torch.uint8 else x for m, x in ((m, tensors[m]) for m in model.modality_names)}
    sizes = {len(x) for x in tensors.values()}
    if len(sizes) != 1 or 0 in sizes:
        raise ValueError(f"every modality needs the same, non-zero number of items; got {({m: len(x) for m, x in tensors.items()})}")
    if max_items is not None:
        tensors = {m: x[:max_items] for m, x in tensors.items()}
    return tensors


def _directions(model, direction) -> list[tuple[str, str, bool]]:
    """The model's conditional directions (s, t, trained), those named by ``direction`` when given."""
    available = model.conditional_directions()
    if direction is None:
        return available
    if not available:
        raise ValueError(f"direction applies to MEME models only (models with a conditional density per direction); "
                         f"{type(model).__name__} is evaluated on the joint log p(s, t)")
    wanted = [direction] if isinstance(direction, str) else list(direction)
    names = {f"{s}->{t}": (s, t, trained) for s, t, trained in available}
    unknown = [item for item in wanted if item not in names]
    if unknown:
        raise ValueError(f"unknown direction {unknown[0]!r}; choose {' or '.join(repr(k) for k in names)}")
    return [names[item] for item in wanted]


def _summary(estimates: torch.Tensor, elbo: torch.Tensor) -> dict:
    n = len(estimates)
    std = estimates.std().item() if n > 1 else 0.0
    return {
        "mean": estimates.mean().item(),
        "std": std,
        "stderr": std / math.sqrt(n),
        "mean_log_weight": elbo.mean().item(),
        "per_item": estimates.tolist(),
    }


def _with_joint(conditional: dict, marginal: dict, quantity: str) -> dict:
    """Add log p(t) and log p(s, t) = log p(s|t) + log p(t) (per item) to a direction's summary."""
    joint = torch.tensor(conditional["per_item"], dtype=torch.float64) + torch.tensor(marginal["per_item"], dtype=torch.float64)
    n = len(joint)
    std = joint.std().item() if n > 1 else 0.0
    return {**conditional, "marginal_target": marginal,
            "joint": {"quantity": quantity, "mean": joint.mean().item(), "std": std, "stderr": std / math.sqrt(n),
                      "per_item": joint.tolist()}}


def _plan(model, direction, joint: bool) -> tuple[dict, dict, dict]:
    """What to estimate: the table's entries {key: description}, the importance-sampling tasks
    {task: importance(x) -> (k -> (k, B) log-weights)}, and facts for the result (the trained direction)."""
    directions = _directions(model, direction)
    if not directions:
        entries = {"joint": {"quantity": "log p(" + ", ".join(model.modality_names) + ")", "flipped": False}}
        return entries, {"joint": model.joint_importance}, {}
    entries, tasks = {}, {}
    for s, t, trained in directions:  # the conditionals, then (with ``joint``) each target's marginal
        entries[f"{s}->{t}"] = {"quantity": f"log p({s} | {t})", "flipped": not trained}
        tasks[f"{s}->{t}"] = lambda x, s=s, t=t: model.conditional_importance(x, s, t)
    for s, t, _ in directions if joint else ():
        entries[f"{s}->{t}"]["marginal_task"] = f"marginal:{t}"
        tasks[f"marginal:{t}"] = lambda x, t=t: model.marginal_importance(x, t)
    trained = [f"{s}->{t}" for s, t, was in model.conditional_directions() if was]
    return entries, tasks, {"trained_direction": "both" if len(trained) > 1 else trained[0]}


def _estimate(model, tensors: dict, tasks: dict, samples: int, batch_size: int, chunk_size: int, seed: int,
              progress: bool) -> dict:
    """Each task's per-item IWAE estimate and mean log-weight over every item, {task: summary},
    in eval mode with the noise seeded by ``seed`` (the caller's RNG state is left untouched).
    Each task's encoders run once per batch (``importance(x)``), its draws in chunks; on the CPU
    freed memory is kept for reuse where memevae owns the process, as in training
    (:func:`~memevae.training.cpu.keep_freed_memory`: the chunks' decodings allocate the same tens
    of megabytes again and again), which changes no value."""
    n = len(next(iter(tensors.values())))
    device = next(model.parameters()).device
    results = {key: ([], []) for key in tasks}
    batches = list(torch.arange(n).split(batch_size))
    bar = progress_bar(len(batches) * len(tasks), f"log-likelihood (K={samples})", progress)
    settings = cpu_settings(freed_memory=owns_process(), subnormals_flushed=False) if device.type == "cpu" else contextlib.nullcontext()
    was_training = model.training
    model.eval()
    try:
        with settings, torch.no_grad(), torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(seed)
            for rows in batches:
                x = {m: t[rows].to(device) for m, t in tensors.items()}
                for key, importance in tasks.items():
                    est, elbo = importance_log_likelihood(importance(x), samples, chunk_size)
                    results[key][0].append(est.cpu())
                    results[key][1].append(elbo.cpu())
                    bar.update(1)
    finally:
        bar.close()
        model.train(was_training)
    return {key: _summary(torch.cat(ests), torch.cat(elbos)) for key, (ests, elbos) in results.items()}


def _check_arguments(samples, batch_size, max_items) -> None:
    for name, value in (("samples", samples), ("batch_size", batch_size)):
        if int(value) != value or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value}")
    if max_items is not None and max_items < 1:
        raise ValueError(f"max_items must be a positive integer or None, got {max_items}")


def marginal_log_likelihood(model, data, *, samples: int = LikelihoodOptions.samples, direction=None,
                            joint: bool = LikelihoodOptions.joint, batch_size: int = LikelihoodOptions.batch_size,
                            chunk_size: int = LikelihoodOptions.chunk_size, max_items: int | None = None, seed: int = 0,
                            progress: bool = True) -> dict:
    """Importance-weighted marginal log-likelihood per test pair (Table 2; see the module text).

    For a MEME model, for each test direction s->t (both by default, ``direction`` picks one or a
    list, e.g. ``"mnist->textured"``):

        log p(s | t) ~= logsumexp_k [log p(s|z_k) + log p(z_k|t) - log q(z_k|s)] - log K,  z_k ~ q(z|s),

    with p(s|z) = dec_s, p(z|t) = enc_t, q(z|s) = enc_s (the constant log p(t) is dropped, as in
    Eq. 6). A direction other than the one a model was trained in is marked ``"flipped"``
    (App. C, Table 2). With ``joint`` (MEME only), also log p(t) under Eq. 4's pseudo-sample
    mixture prior and log p(s, t) = log p(s|t) + log p(t) (module text). For other models: the
    joint estimate of log p(s, t) with the model's joint posterior as proposal (module text), or
    ``{"skipped": reason}`` when the model gives none.

    Args:
        model: a :class:`~memevae.models.MultimodalVAE` (or a :class:`~memevae.run.Run`).
        data: a MultimodalDataset (its fully observed rows are used), a Batch or {modality: tensor}.
        samples: K, importance samples per item (Table 2 uses "many"; 1000 here by default).
        batch_size: items encoded at once; ``chunk_size``: samples decoded at once (memory is
            about batch_size x chunk_size decodings).
        max_items: evaluate only the first this many items.
        seed: seeds the sampling noise; the caller's global RNG state is left untouched.

    Returns a dict: ``model``, ``samples``, ``items``, ``trained_direction`` (MEME) and
    ``estimates``: {name: {"quantity", "flipped", "mean", "std", "stderr", "mean_log_weight"
    (the ELBO, K = 1, averaged over the same samples), "per_item"}} in nats per item; for MEME
    with ``joint`` each direction also has "marginal_target" (log p(t), same fields) and "joint"
    (log p(s, t): "quantity", "mean", "std", "stderr", "per_item").

    Example:
        >>> from memevae.models import MEME, MEMEConfig
        >>> model = MEME(MEMEConfig(latent_dim=8, pseudo_samples=4))
        >>> data = {"mnist": torch.rand(2, 1, 28, 28), "textured": torch.rand(2, 3, 32, 32)}
        >>> out = marginal_log_likelihood(model, data, samples=20, progress=False)
        >>> sorted(out["estimates"])
        ['mnist->textured', 'textured->mnist']
    """
    model = _as_model(model)
    _check_arguments(samples, batch_size, max_items)
    tensors = _paired_tensors(model, data, max_items)
    entries, tasks, facts = _plan(model, direction, joint)
    base = {"model": type(model).__name__, "samples": int(samples), "items": len(next(iter(tensors.values()))), "seed": seed,
            "unit": "nats per item", **facts}
    try:
        summaries = _estimate(model, tensors, tasks, samples, batch_size, chunk_size, seed, progress)
    except NotImplementedError as error:  # the model defines no such density
        return {**base, "skipped": f"{type(model).__name__} gives no estimate of {', '.join(e['quantity'] for e in entries.values())}: "
                                   f"{error}", "estimates": {}}
    estimates = {}
    for key, entry in entries.items():
        marginal_task = entry.pop("marginal_task", None)
        estimates[key] = {**entry, **summaries[key]}
        if marginal_task:
            s, t = key.split("->")
            marginal = {"quantity": f"log p({t})", **summaries[marginal_task]}
            estimates[key] = _with_joint(estimates[key], marginal, f"log p({s}, {t}) = log p({s} | {t}) + log p({t})")
    return {**base, "estimates": estimates}


class Likelihood(Metric):
    name = "likelihood"
    description = "importance-weighted marginal log-likelihood (Table 2)"
    Options = LikelihoodOptions
    cheap = False
    order = 60

    def compute(self, context, options: LikelihoodOptions) -> dict:
        return marginal_log_likelihood(context.model, context.test, samples=options.samples, direction=options.direction,
                                       joint=options.joint, batch_size=options.batch_size, chunk_size=options.chunk_size,
                                       max_items=options.max_items, seed=context.seed, progress=context.progress)

    def headline(self, values: dict) -> dict[str, float]:
        return {key: entry["mean"] for key, entry in values.get("estimates", {}).items()}
