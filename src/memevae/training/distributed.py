"""Data-parallel training with ``torch.distributed``, launched by ``torchrun``: one run across
processes, equal to one process at the same global batch up to float rounding.

Every process computes the same batch schedule (:func:`~memevae.training.schedule.epoch_batches`,
a function of seed and epoch) and takes a contiguous slice of each batch's rows. Its loss, the mean
over its rows, is weighted by ``world_size * rows / batch rows``, so the gradient that
``DistributedDataParallel`` averages is the gradient of the global batch mean, also when the batch
does not divide evenly. The sampling noise of a step is drawn for the whole batch on every process
and sliced (:func:`memevae.distributions.batch_shard`): each process uses the noise one process
would use for its rows, and every process's generator stays in step with one process's, so the
generator state saved by rank 0 is every rank's state on resume.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from ..distributions import batch_shard
from .trainer import TrainingError, resolve_device

ENVIRONMENT = ("WORLD_SIZE", "RANK", "LOCAL_RANK")
"""What ``torchrun`` sets for each process it starts."""


@dataclass(frozen=True)
class Process:
    """This process's place in a data-parallel run."""

    rank: int
    world_size: int
    local_rank: int

    @property
    def writes(self) -> bool:
        """Rank 0 alone writes the run directory and prints progress."""
        return self.rank == 0

    def device(self, device: str) -> torch.device:
        """``device`` for this process: the CPU, or the CUDA device of its local rank."""
        resolved = resolve_device(device)
        if resolved.type == "cuda":
            if resolved.index is not None:
                raise ValueError(f"device {device!r}: under torchrun each process uses cuda:LOCAL_RANK; pass --device cuda")
            count = torch.cuda.device_count()
            if self.local_rank >= count:
                raise ValueError(f"local rank {self.local_rank} has no CUDA device (this machine has {count}); "
                                 f"start at most {count} processes per machine")
            return torch.device("cuda", self.local_rank)
        if resolved.type != "cpu":
            raise ValueError(f"device {device!r}: data-parallel training runs on the CPU (gloo) or on CUDA (nccl)")
        return resolved

    def shard(self, rows: torch.Tensor) -> "Shard":
        """This process's contiguous slice of a batch's ``rows`` (the first ``len(rows) %
        world_size`` processes hold one row more)."""
        size, extra = divmod(len(rows), self.world_size)
        start = self.rank * size + min(self.rank, extra)
        stop = start + size + (self.rank < extra)
        return Shard(rows[start:stop], start, stop, len(rows), self.world_size)

    def check_batches(self, batches: list[torch.Tensor]) -> None:
        """Refuse a schedule with a batch smaller than the number of processes (the batch sizes are
        the same every epoch: only the order within each observation pattern changes)."""
        smallest = min(len(rows) for rows in batches)
        if smallest < self.world_size:
            raise ValueError(f"a batch of {smallest} rows cannot be shared by {self.world_size} processes; "
                             f"use at most {smallest} processes or other --batch-size/--limit")

    def sum(self, values: list[float]) -> list[float]:
        """The sum over processes of each of ``values`` (in float64)."""
        total = torch.tensor(values, dtype=torch.float64, device=self._collective_device())
        dist.all_reduce(total)
        return total.tolist()

    def check_replicas(self, model: nn.Module, epoch: int) -> None:
        """Refuse to go on unless every process holds rank 0's parameters and buffers (compared by a
        float64 sum per tensor: one collective per epoch)."""
        digest = torch.stack([t.detach().double().sum() for t in (*model.parameters(), *model.buffers())])
        digest = digest.to(self._collective_device())
        reference = digest.clone()
        dist.broadcast(reference, 0)
        same = torch.tensor([float(torch.equal(reference, digest))], device=digest.device)
        dist.all_reduce(same, op=dist.ReduceOp.MIN)
        if not same.item():
            raise TrainingError(f"after epoch {epoch} the processes hold different parameters; the data-parallel run "
                                f"cannot go on (its last checkpoint is rank 0's)")

    def mean_loss(self, loss: torch.Tensor) -> torch.Tensor:
        """The global batch's mean loss from this process's weighted loss: the mean over processes."""
        total = loss.detach().clone()
        dist.all_reduce(total)
        return total / self.world_size

    @staticmethod
    def check_model(model: nn.Module, device: torch.device) -> None:
        """Refuse a model with BatchNorm on the CPU: torch's SyncBatchNorm needs CUDA, and statistics
        per process would not be the global batch's (the "release" convolutional encoder has it)."""
        if device.type != "cuda" and any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules()):
            raise ValueError("this model has BatchNorm (the 'release' convolutional encoder), which cannot be synchronised "
                             "across processes on the CPU (torch's SyncBatchNorm needs CUDA); use --architecture paper, "
                             "CUDA devices, or one process")

    def wrap(self, model: nn.Module, device: torch.device) -> nn.Module:
        """``model`` wrapped in ``DistributedDataParallel`` for the training steps.

        BatchNorm becomes SyncBatchNorm on CUDA, so its statistics are those of the global batch (on
        the CPU it is refused, :meth:`check_model`). ``find_unused_parameters`` is needed: a paired
        batch leaves MEME's pseudo-samples unused, an unpaired one a decoder; DDP leaves the gradient
        of a parameter that no process used unset, so Adam skips it as in one process.
        """
        self.check_model(model, device)
        if device.type == "cuda":
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        return nn.parallel.DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None,
                                                   find_unused_parameters=True)

    def _collective_device(self) -> torch.device:
        return torch.device("cuda", self.local_rank) if dist.get_backend() == "nccl" else torch.device("cpu")


@dataclass(frozen=True)
class Shard:
    """Rows ``start:stop`` of a batch of ``total`` rows."""

    rows: torch.Tensor
    start: int
    stop: int
    total: int
    world_size: int

    @property
    def weight(self) -> float:
        """The factor of this process's mean loss that makes DDP's average the global mean."""
        return self.world_size * (self.stop - self.start) / self.total

    def noise(self):
        """The context in which the model draws this shard's rows of the whole batch's noise."""
        return batch_shard(self.start, self.stop, self.total)


def from_environment() -> Process | None:
    """The process of a run started by ``torchrun`` (None outside torchrun, or with one process)."""
    if not all(name in os.environ for name in ENVIRONMENT):
        return None
    try:
        rank, world_size, local_rank = (int(os.environ[name]) for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"))
    except ValueError:
        raise ValueError(f"torchrun's {', '.join(ENVIRONMENT)} must be integers, got "
                         f"{', '.join(os.environ[name] for name in ENVIRONMENT)}") from None
    return Process(rank, world_size, local_rank) if world_size > 1 else None


@contextlib.contextmanager
def process_group(process: Process | None, device: torch.device):
    """Join the run's process group (nccl on CUDA, gloo on the CPU) for the life of the context."""
    if process is None:
        yield
        return
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    try:
        yield
    finally:
        dist.destroy_process_group()

