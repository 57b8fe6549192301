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

Models whose class is not MEME (MVAE, MMVAE: one joint posterior, an unconditional prior) get the
standard joint estimate with their joint posterior as proposal,

    log p(s, t) ~= logsumexp_k [sum_m log p(x_m|z_k) + log p(z_k) - log q(z_k|s, t)] - log K,

if the model exposes either ``joint_log_weights(data, samples) -> (samples, B)`` (the bracket
above per sample, for models whose proposal needs its own sampling, e.g. MMVAE's stratified
mixture) or both ``joint_posterior(data)`` (an object with ``rsample(shape)`` and ``log_prob(z)``
summed over the latent dimension) and ``prior_log_prob(z)``. Otherwise the result says it was
skipped and why. The numbers of the two kinds are not comparable: one is a conditional
log-likelihood without log p(t), the other a joint one.
"""

from __future__ import annotations

import math
import sys

import torch
from tqdm.auto import tqdm

from ..data.dataset import as_float_images
from ..distributions import gaussian_mixture_log_prob

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
    from ..data import Batch, MultimodalDataset

    if isinstance(data, MultimodalDataset):
        rows = data.patterns().get(tuple(data.modalities))
        if rows is None:
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
    tensors = {m: as_float_images(tensors[m]) for m in model.modality_names}
    sizes = {len(x) for x in tensors.values()}
    if len(sizes) != 1 or 0 in sizes:
        raise ValueError(f"every modality needs the same, non-zero number of items; got {({m: len(x) for m, x in tensors.items()})}")
    if max_items is not None:
        tensors = {m: x[:max_items] for m, x in tensors.items()}
    return tensors


def _meme_directions(model, direction) -> list[tuple[str, str]]:
    names = model.modality_names
    if direction is None:
        return [(names[0], names[1]), (names[1], names[0])]
    wanted = [direction] if isinstance(direction, str) else list(direction)
    out = []
    for item in wanted:
        parts = item.split("->") if isinstance(item, str) else []
        if len(parts) != 2 or set(parts) != set(names):
            raise ValueError(f"unknown direction {item!r}; choose '{names[0]}->{names[1]}' or '{names[1]}->{names[0]}'")
        out.append((parts[0], parts[1]))
    return out


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


def marginal_log_likelihood(model, data, *, samples: int = 1000, direction=None, joint: bool = True,
                            batch_size: int = 16, chunk_size: int = 100, max_items: int | None = None, seed: int = 0,
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
    ``{"skipped": reason}`` when the model lacks the methods.

    Args:
        model: a :class:`~memevae.models.MultimodalVAE` (or a :class:`~memevae.runs.Run`).
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
    from ..models import MEME

    model = _as_model(model)
    if int(samples) != samples or samples < 1:
        raise ValueError(f"samples must be a positive integer, got {samples}")
    if int(batch_size) != batch_size or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size}")
    if max_items is not None and max_items < 1:
        raise ValueError(f"max_items must be a positive integer or None, got {max_items}")
    tensors = _paired_tensors(model, data, max_items)
    n = len(next(iter(tensors.values())))
    device = next(model.parameters()).device
    base = {"model": type(model).__name__, "samples": int(samples), "items": n, "seed": seed, "unit": "nats per item"}

    if isinstance(model, MEME):
        directions = _meme_directions(model, direction)
        trained = model.config.direction
        trained_pairs = model.config.directions()
        jobs = {f"{s}->{t}": (s, t) for s, t in directions}
        base["trained_direction"] = trained
        describe = {key: {"quantity": f"log p({s} | {t})", "flipped": (s, t) not in trained_pairs} for key, (s, t) in jobs.items()}
    else:
        if direction is not None:
            raise ValueError(f"direction applies to MEME models only; {type(model).__name__} is evaluated on the joint log p(s, t)")
        has_weights = callable(getattr(model, "joint_log_weights", None))
        has_posterior = callable(getattr(model, "joint_posterior", None)) and callable(getattr(model, "prior_log_prob", None))
        if not (has_weights or has_posterior):
            reason = (f"{type(model).__name__} exposes neither joint_log_weights(data, samples) nor "
                      f"joint_posterior(data) + prior_log_prob(z), which the joint estimate of log p(s, t) needs")
            return {**base, "skipped": reason, "estimates": {}}
        jobs = {"joint": None}
        describe = {"joint": {"quantity": "log p(" + ", ".join(model.modality_names) + ")", "flipped": False}}

    was_training = model.training
    model.eval()
    # the jobs, each an importance-sampling estimate per item: the conditionals (or the joint),
    # then for MEME with ``joint`` the marginal log p(t) of each direction's target
    tasks = dict(jobs)
    marginals = {}
    if isinstance(model, MEME) and joint:
        for key, (s, t) in jobs.items():
            marginals[key] = f"marginal:{t}"
            tasks[f"marginal:{t}"] = ("marginal", t)
    results = {key: ([], []) for key in tasks}
    batches = list(torch.arange(n).split(batch_size))
    bar = tqdm(total=len(batches) * len(tasks), desc=f"log-likelihood (K={samples})", unit="batch",
               file=sys.stderr, disable=not progress, leave=False, dynamic_ncols=True)
    try:
        with torch.no_grad(), torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(seed)
            priors = {}
            if marginals:  # p_lambda_m(z): the mixture of enc_m at m's pseudo-samples (Eq. 4)
                priors = {m: model.modality(m).encode(model.pseudo_samples[m]) for m in model.modality_names}
            for rows in batches:
                x = {m: t[rows].to(device) for m, t in tensors.items()}
                if isinstance(model, MEME):
                    posteriors = {m: model.modality(m).encode(x[m]) for m in model.modality_names}
                for key, job in tasks.items():
                    if not isinstance(model, MEME):
                        fn = _joint_log_weights(model, x)
                    elif job[0] == "marginal":
                        fn = _meme_marginal_log_weights(model, x, posteriors, priors, job[1])
                    else:
                        fn = _meme_log_weights(model, x, posteriors, *job)
                    est, elbo = importance_log_likelihood(fn, samples, chunk_size)
                    results[key][0].append(est.cpu())
                    results[key][1].append(elbo.cpu())
                    bar.update(1)
    finally:
        bar.close()
        model.train(was_training)

    summaries = {key: _summary(torch.cat(ests), torch.cat(elbos)) for key, (ests, elbos) in results.items()}
    estimates = {}
    for key in jobs:
        entry = {**describe[key], **summaries[key]}
        if key in marginals:
            s, t = jobs[key]
            marginal = {"quantity": f"log p({t})", **summaries[marginals[key]]}
            entry = _with_joint(entry, marginal, f"log p({s}, {t}) = log p({s} | {t}) + log p({t})")
        estimates[key] = entry
    return {**base, "estimates": estimates}


def _meme_log_weights(model, x, posteriors, source: str, target: str):
    """log p(s|z) + log p(z|t) - log q(z|s) at k samples z ~ q(z|s), for direction source->target."""
    proposal, prior = posteriors[source], posteriors[target]
    mod = model.modality(source)

    def log_weights(k):
        z = proposal.rsample((k,))
        return mod.log_likelihood(x[source], mod.decode(z)) + prior.log_prob(z) - proposal.log_prob(z)

    return log_weights


def _meme_marginal_log_weights(model, x, posteriors, priors, name: str):
    """log p(x|z) + log p_lambda_other(z) - log q(z|x) at k samples z ~ q(z|x) (Eq. 4's model of x alone)."""
    (other,) = [m for m in model.modality_names if m != name]
    proposal, prior, mod = posteriors[name], priors[other], model.modality(name)

    def log_weights(k):
        z = proposal.rsample((k,))
        log_prior = gaussian_mixture_log_prob(z, prior.loc, prior.scale)
        return mod.log_likelihood(x[name], mod.decode(z)) + log_prior - proposal.log_prob(z)

    return log_weights


def _joint_log_weights(model, x):
    """sum_m log p(x_m|z) + log p(z) - log q(z|x) at k samples of the model's joint posterior."""
    if callable(getattr(model, "joint_log_weights", None)):
        return lambda k: model.joint_log_weights(x, k)
    posterior = model.joint_posterior(x)

    def log_weights(k):
        z = posterior.rsample((k,))
        total = model.prior_log_prob(z) - posterior.log_prob(z)
        for m, xm in x.items():
            mod = model.modality(m)
            total = total + mod.log_likelihood(xm, mod.decode(z))
        return total

    return log_weights
