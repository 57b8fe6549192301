"""The training loop. It reads only ``output.loss`` and ``output.metrics`` from a model; progress,
logging, checkpoints and figures are callbacks (:mod:`memevae.training.callbacks`)."""

from __future__ import annotations

import contextlib
import math
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Literal

import torch

from ..options import FLAG, check_choices
from .cpu import cpu_settings, owns_process
from .schedule import epoch_batches


PRECISIONS = {"float32": None, "bf16": torch.bfloat16}


class TrainingError(RuntimeError):
    """Training cannot go on (e.g. a full disk); the message says why and what to do."""


class NonFiniteError(TrainingError):
    """A loss, gradient or parameter became NaN or infinite; nothing of that step was applied or saved."""


RESUMABLE = ("epochs", "learning_rate", "checkpoint_every", "device", "subnormals", "freed_memory", "precision", "coherence_items",
             "test_samples", "tensorboard")
"""The TrainConfig fields a resumed run may change: none changes the model, the data or the
order in which the data are seen."""


@dataclass
class TrainConfig:
    """Optimisation settings (paper App. K: Adam, lr 5e-4, betas (0.9, 0.999), batch 128, 100
    epochs for MNIST-SVHN; CUB uses lr 1e-4 and 300 epochs)."""

    epochs: int = 100
    """Passes over the training data; a resumed run continues until it has trained this many."""
    batch_size: int = 128
    """Training rows per optimisation step."""
    learning_rate: float = field(default=5e-4, metadata={FLAG: "--lr"})
    """Adam's learning rate."""
    betas: tuple[float, float] = field(default=(0.9, 0.999), metadata={FLAG: None})
    """Adam's coefficients of the running averages of the gradient and its square."""
    seed: int = 0
    """Seeds initialisation, data order (per epoch) and sampling noise."""
    device: str = "auto"
    """"auto" picks CUDA when present, else CPU; or any torch device string."""
    test_samples: int = field(default=2000, metadata={FLAG: None})
    """Test pairs on which the per-epoch test loss is computed (0: all)."""
    coherence_items: int = 500
    """Test pairs on which the per-epoch cross coherence is measured (0: not measured); see
    :mod:`memevae.monitor`."""
    judges: str | None = None
    """Folder of the judge classifiers for the per-epoch coherence; None: the judges that ship with
    memevae for the run's data variant (when there are none, the coherence is not measured)."""
    tensorboard: bool = field(default=False, metadata={FLAG: "--tensorboard"})
    """Also write each epoch's values and generation grid for TensorBoard into ``RUN/tensorboard/``
    (needs the ``tensorboard`` extra)."""
    checkpoint_every: int = 0
    """Besides ``last.pt`` (every epoch), keep a checkpoint every this many epochs (0: none)."""
    subnormals: Literal["flush", "keep"] = "flush"
    """On the CPU, "flush" treats subnormal floats (|x| < 1.2e-38, from saturated sigmoids) as
    zero in every torch thread, so steps do not slow down up to 3x as decoders saturate; "keep"
    computes with them, IEEE-exact (:mod:`memevae.training.cpu`)."""
    freed_memory: Literal["auto", "keep", "release"] = "auto"
    """On the CPU (glibc): whether malloc serves every block from its heap and keeps freed memory
    for the next step, instead of mapping large blocks afresh for the kernel to zero at every step
    (faster; peak memory somewhat higher). A process-wide setting that nothing can undo
    (:mod:`memevae.training.cpu`), so "auto" (default) applies it only where memevae owns the
    process (the ``memevae`` command, each run of a sweep) and leaves malloc as it is in a program
    that trains through the Python API; "keep": always (in such a program, for the rest of its
    process); "release": never."""
    clip_grad_norm: float | None = None
    """None (default): each step applies its gradient as it is, as the paper and the authors'
    release train. A number: scale each step's gradient down to this global L2 norm when it is
    longer (``torch.nn.utils.clip_grad_norm_``); each epoch then records the largest norm met and
    the fraction of steps clipped (``train/grad_norm_max``, ``train/clipped_fraction``). It changes
    the updates of the steps it clips, so it is never the default: a stabilising variant for runs
    whose loss spikes (MEME with few pairs, docs/results.md)."""
    precision: Literal["float32", "bf16"] = "float32"
    """"float32" (default), or "bf16": mixed precision for the training steps (``torch.autocast``
    with bfloat16: matrix products and convolutions in bfloat16, parameters, densities and the
    objective in float32). It changes the arithmetic, so it is never the default; fast on CPUs
    with AVX-512 BF16 or AMX and on GPUs. Test losses and coherence are computed in float32."""

    def __post_init__(self):
        self.betas = tuple(self.betas)
        check_choices(self)
        if self.judges is not None:
            self.judges = str(self.judges)
        checks = [("epochs", self.epochs >= 1, ">= 1"), ("batch_size", self.batch_size >= 2, ">= 2"),
                  ("learning_rate", math.isfinite(self.learning_rate) and self.learning_rate > 0, "> 0"),
                  ("checkpoint_every", self.checkpoint_every >= 0, ">= 0 (0: only last.pt)"),
                  ("coherence_items", self.coherence_items >= 0, ">= 0 (0: off)"),
                  ("test_samples", self.test_samples >= 0, ">= 0 (0: all test pairs)"),
                  ("seed", self.seed >= 0, ">= 0"),
                  ("clip_grad_norm", self.clip_grad_norm is None or (math.isfinite(self.clip_grad_norm) and self.clip_grad_norm > 0),
                   "> 0 (or None: no clipping)")]
        for name, ok, need in checks:
            if not ok:
                raise ValueError(f"{name} must be {need}, got {getattr(self, name)!r}")


def autocast(device_type: str, precision: str):
    """The mixed-precision context of a training step: ``torch.autocast`` with bfloat16 for
    "bf16", a context that changes nothing for "float32"."""
    dtype = PRECISIONS[precision]
    return torch.autocast(device_type, dtype=dtype or torch.bfloat16, enabled=dtype is not None)


def resolve_device(device: str) -> torch.device:
    """The torch device for ``device`` ("auto": CUDA when present, else the CPU); one-line errors
    for an unknown device or one this machine does not have."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError:
        raise ValueError(f"unknown device {device!r}; use 'auto', 'cpu', 'cuda' or 'cuda:N'") from None
    if resolved.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ValueError(f"device {device!r}: this machine has no CUDA device (or this torch build has no CUDA); "
                             f"use --device cpu or auto")
        if resolved.index is not None and resolved.index >= count:
            raise ValueError(f"device {device!r}: this machine has {count} CUDA device(s), cuda:0 to cuda:{count - 1}")
    elif resolved.type != "cpu":
        try:
            torch.empty(0, device=resolved)
        except Exception:
            raise ValueError(f"device {device!r} is not available on this machine; use --device cpu or auto") from None
    return resolved


def gradients_finite(model: torch.nn.Module) -> bool:
    """Whether every parameter gradient is finite (one fused norm per tensor: 1.3 ms for MEME's 3.5M
    parameters on 2 CPU threads, about 0.3% of its step)."""
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    if not grads:
        return True
    return bool(torch.isfinite(torch.stack(torch._foreach_norm(grads))).all())


def _where(epoch: int, step: int, batch) -> str:
    return f"at epoch {epoch}, step {step + 1} (a batch with {', '.join(batch.observed)})"


def parameters_finite(model: torch.nn.Module) -> bool:
    """Whether every parameter and buffer (e.g. BatchNorm statistics) is finite."""
    tensors = [t for t in (*model.parameters(), *model.buffers()) if t.is_floating_point()]
    return bool(torch.isfinite(torch.stack(torch._foreach_norm(tensors))).all()) if tensors else True


def make_optimizer(parameters, config: TrainConfig) -> torch.optim.Optimizer:
    """Adam with the paper's settings. The fused kernel (one pass per parameter tensor instead of
    about ten) computes the same update; it is used whenever this torch build offers it."""
    parameters = list(parameters)
    try:
        return torch.optim.Adam(parameters, lr=config.learning_rate, betas=config.betas, fused=True)
    except (RuntimeError, TypeError):  # an older torch, or a device without the fused kernel
        return torch.optim.Adam(parameters, lr=config.learning_rate, betas=config.betas)


class Callback:
    """Hooks the trainer calls; override what you need."""

    def on_fit_start(self, trainer): ...
    def on_epoch_start(self, trainer, epoch: int, batches: int): ...
    def on_batch_end(self, trainer, step: int, loss: float): ...
    def on_epoch_end(self, trainer, record: dict): ...
    def on_fit_end(self, trainer): ...


class Trainer:
    """Fits ``model`` on ``train_data`` (a :class:`~memevae.data.MultimodalDataset`).

    Randomness: the data order of epoch e is a function of (seed, e); the sampling noise comes
    from torch's global generator, whose state is saved with each checkpoint. Resuming from the
    checkpoint of epoch e therefore gives, on the CPU, the same parameters as never stopping.

    With a ``process`` (data-parallel, :mod:`memevae.training.distributed`) each step trains on
    this process's rows of the global batch, and the epoch's metrics are the global means.
    """

    def __init__(self, model, train_data, config: TrainConfig, test_data=None, callbacks=(), process=None):
        self.config = config
        self.process = process
        """The place of this process in a data-parallel run (a
        :class:`~memevae.training.distributed.Process`), or None for one process."""
        self.device = process.device(config.device) if process else resolve_device(config.device)
        self.model = model.to(self.device)
        self.step_model = process.wrap(self.model, self.device) if process else self.model
        """What a training step calls: the model, or its DistributedDataParallel wrapper."""
        self.cpu_settings: dict[str, bool] = {}
        """While fitting on the CPU: each CPU setting asked for, and whether it took effect."""
        self.train_data = train_data
        self.test_data = test_data
        self.callbacks = list(callbacks)
        self.optimizer = make_optimizer(model.parameters(), config)
        self.epoch = 0
        self.history: list[dict] = []
        self.should_stop = False
        """Set by a callback to end :meth:`fit` after the current step (its epoch is recorded as far as it went)."""

    # -- state -------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {
            "epoch": self.epoch,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "history": list(self.history),
        }

    def load_state_dict(self, state: dict) -> None:
        """Continue from ``state``; the optimiser's settings come from this trainer's config (a
        resumed run may lower its learning rate), its moment estimates from ``state``."""
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        for group in self.optimizer.param_groups:
            group["lr"], group["betas"] = self.config.learning_rate, self.config.betas
        torch.set_rng_state(state["torch_rng"])
        if state.get("cuda_rng") and torch.cuda.is_available():
            if self.process and self.device.type == "cuda":  # every rank draws as rank 0 did, on cuda:0
                torch.cuda.set_rng_state(state["cuda_rng"][0], self.device)
            else:
                torch.cuda.set_rng_state_all(state["cuda_rng"])
        self.epoch = state["epoch"]
        self.history = list(state["history"])

    # -- loop --------------------------------------------------------------------------------
    def _emit(self, hook: str, *args) -> None:
        for callback in self.callbacks:
            getattr(callback, hook)(self, *args)

    def fit(self) -> list[dict]:
        """Train from ``self.epoch`` up to ``config.epochs``; returns the per-epoch history. On the
        CPU the settings of :mod:`memevae.training.cpu` apply: subnormals as ``config.subnormals``
        says while fitting, restored after; malloc's freed memory as ``config.freed_memory`` says."""
        on_cpu = self.device.type == "cpu"
        keep = self.config.freed_memory == "keep" or (self.config.freed_memory == "auto" and owns_process())
        settings = cpu_settings(freed_memory=keep, subnormals_flushed=self.config.subnormals == "flush") if on_cpu \
            else contextlib.nullcontext({})
        with settings as took:
            self.cpu_settings = took
            self._emit("on_fit_start")
            while self.epoch < self.config.epochs and not self.should_stop:
                self.history.append(self.train_epoch(self.epoch + 1))
                self.epoch += 1
                if self.process:
                    self.process.check_replicas(self.model, self.epoch)
                self._emit("on_epoch_end", self.history[-1])
            self._emit("on_fit_end")
        return self.history

    def train_epoch(self, epoch: int) -> dict:
        self.step_model.train()
        batches = epoch_batches(self.train_data, self.config.batch_size, self.config.seed, epoch)
        if self.process:
            self.process.check_batches(batches)
        self._emit("on_epoch_start", epoch, len(batches))
        if hasattr(self.model, "start_epoch"):  # schedules counted in epochs (MVAE's kl_annealing_epochs)
            self.model.start_epoch(epoch, len(batches))
        sums: dict[str, float] = defaultdict(float)
        counts: dict[str, int] = defaultdict(int)
        started = time.perf_counter()
        items = 0
        norms: list[torch.Tensor] = []
        for step, rows in enumerate(batches):
            shard = self.process.shard(rows) if self.process else None
            local = rows if shard is None else shard.rows
            batch = self.train_data.batch(local).to(self.device)
            with autocast(self.device.type, self.config.precision), shard.noise() if shard else contextlib.nullcontext():
                output = self.step_model(batch)
            loss = output.loss if shard is None else output.loss * shard.weight
            reported = loss if shard is None else self.process.mean_loss(loss)  # the global batch's mean loss
            if not torch.isfinite(reported):
                raise NonFiniteError(f"the loss became {reported.item()} {_where(epoch, step, batch)}; training stopped before that update")
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if not gradients_finite(self.model):
                raise NonFiniteError(f"a gradient became non-finite (loss {reported.item():.6g}) {_where(epoch, step, batch)}; "
                                    f"training stopped before that update")
            if self.config.clip_grad_norm is not None:
                norms.append(torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.clip_grad_norm))
            self.optimizer.step()
            items += len(rows)
            for key, value in output.metrics.items():
                sums[key] += value * len(local)
                counts[key] += len(local)
            self._emit("on_batch_end", step, reported.item())
            if self.should_stop:
                break
        if self.process:  # the global means: sums and counts over every process
            keys = sorted(sums)
            totals = self.process.sum([sums[key] for key in keys] + [counts[key] for key in keys])
            sums, counts = dict(zip(keys, totals[:len(keys)])), dict(zip(keys, totals[len(keys):]))
        seconds = time.perf_counter() - started
        record = {"epoch": epoch}
        record.update({f"train/{key}": sums[key] / counts[key] for key in sorted(sums)})
        if norms:  # the same on every process: gradients are averaged before they are clipped
            norm = torch.stack(norms)
            record.update({"train/grad_norm_max": norm.max().item(),
                           "train/clipped_fraction": (norm > self.config.clip_grad_norm).float().mean().item()})
        record.update({"time/epoch_s": seconds, "time/items_per_s": items / seconds})
        if self.test_data is not None:
            record.update(self.evaluate_loss(self.test_data))
        return record

    @torch.no_grad()
    def evaluate_loss(self, data, prefix: str = "test") -> dict:
        """Mean of each metric over the paired rows of ``data`` (at most ``test_samples``), in
        eval mode, with fixed noise that does not disturb the training stream."""
        self.model.eval()
        paired = data.paired_rows()
        if len(paired) == 0:
            return {}
        if self.config.test_samples:
            paired = paired[: self.config.test_samples]
        sums: dict[str, float] = defaultdict(float)
        with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
            torch.manual_seed(self.config.seed)
            for rows in paired.split(self.config.batch_size * 4):
                output = self.model(data.batch(rows).to(self.device))
                for key, value in output.metrics.items():
                    sums[key] += value * len(rows)
        self.model.train()
        # a non-finite test value is kept (as None, null in metrics.jsonl) and listed, never dropped
        record = {f"{prefix}/{key}": value / len(paired) if math.isfinite(value) else None for key, value in sorted(sums.items())}
        non_finite = [key for key, value in record.items() if value is None]
        if non_finite:
            record[f"{prefix}/non_finite"] = non_finite
        return record
