"""Data-parallel training (memevae.training.distributed): two CPU processes under torchrun train the
run one process trains at the same global batch, resume included."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from memevae.distributions import DiagonalGaussian, DiagonalLaplace, batch_shard
from memevae.models import MEME, MEMEConfig
from memevae.training.distributed import Process
from memevae.training.rundir import RunDir

SOURCE = Path(__file__).resolve().parents[2] / "src"
# MEME on paired and unpaired batches (pseudo-samples used by some, a decoder unused by others);
# batch 15 splits 8 + 7, and the tails of the observation groups are smaller batches still
RUN = ["--model", "meme", "--limit", "64", "--batch-size", "15", "--latent-dim", "8", "--pseudo-samples", "8",
       "--architecture", "paper", "--paired-fraction", "0.5", "--unpaired", "split", "--coherence-items", "0",
       "--device", "cpu", "--quiet"]


def _memevae(out: Path, *args: str, processes: int = 1) -> None:
    env = {**os.environ, "PYTHONPATH": str(SOURCE), "OMP_NUM_THREADS": "1"}
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes)] \
        if processes > 1 else [sys.executable]
    done = subprocess.run([*launcher, "-m", "memevae.cli", "train", "--out", str(out), *args], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]


def test_shards_cover_the_batch_and_weigh_to_the_global_mean():
    rows = torch.arange(15)
    shards = [Process(rank, 2, rank).shard(rows) for rank in range(2)]
    assert torch.equal(torch.cat([s.rows for s in shards]), rows)
    assert [len(s.rows) for s in shards] == [8, 7]
    # DDP averages the weighted losses: (1/2) sum_r weight_r * mean_r = the mean over the 15 rows
    values = torch.randn(15, dtype=torch.float64)
    averaged = sum(s.weight * values[s.start:s.stop].mean() for s in shards) / 2
    assert averaged.item() == pytest.approx(values.mean().item(), rel=1e-12)


@pytest.mark.parametrize("family", [DiagonalGaussian, DiagonalLaplace])
def test_each_shard_draws_its_rows_of_the_whole_batch_noise(family):
    loc, scale = torch.zeros(5, 3), torch.ones(5, 3)
    torch.manual_seed(0)
    whole = family(loc, scale).rsample((2,))
    after = torch.get_rng_state()
    parts = []
    for start, stop in ((0, 3), (3, 5)):
        torch.manual_seed(0)
        with batch_shard(start, stop, 5):
            parts.append(family(loc[start:stop], scale[start:stop]).rsample((2,)))
        assert torch.equal(torch.get_rng_state(), after)  # every process's generator keeps one process's pace
    assert torch.equal(torch.cat(parts, 1), whole)


def test_batchnorm_is_refused_on_the_cpu():
    model = MEME(MEMEConfig(latent_dim=8, pseudo_samples=2, architecture="release"))
    with pytest.raises(ValueError, match="BatchNorm .* --architecture paper"):
        Process(0, 2, 0).wrap(model, torch.device("cpu"))


@pytest.mark.slow
def test_two_processes_train_and_resume_the_run_of_one(tmp_path):
    """1 process for 2 epochs == 2 processes for 1 epoch, resumed for a second (each rank checks at
    every epoch end that it holds rank 0's parameters)."""
    _memevae(tmp_path / "one", *RUN, "--epochs", "2")
    _memevae(tmp_path / "two", *RUN, "--epochs", "1", processes=2)
    _memevae(tmp_path / "two", "--resume", "--epochs", "2", "--quiet", processes=2)
    one, two = (RunDir(tmp_path / name).load_checkpoint() for name in ("one", "two"))
    assert two["epoch"] == 2 and torch.equal(one["torch_rng"], two["torch_rng"])
    difference = max((one["model"][k] - two["model"][k]).abs().max().item() for k in one["model"])
    print(f"max |parameter difference| after 2 epochs: {difference:.3g}")
    assert difference < 1e-4
    # Adam's first moments: a running mean of the gradients, compared against their size
    for a, b in zip(one["optimizer"]["state"].values(), two["optimizer"]["state"].values()):
        scale = a["exp_avg"].abs().max().item()
        assert (a["exp_avg"] - b["exp_avg"]).abs().max().item() <= 1e-4 * scale + 1e-12
        assert a["step"] == b["step"]
    for a, b in zip(RunDir(tmp_path / "one").read_metrics(), RunDir(tmp_path / "two").read_metrics()):
        for key in a:
            if key.startswith(("train/", "test/")):
                assert b[key] == pytest.approx(a[key], rel=1e-5), key
