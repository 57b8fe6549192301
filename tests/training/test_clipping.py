"""The gradient-norm clipping option (TrainConfig.clip_grad_norm): off by default, changes nothing
where no step's gradient is longer than the bound, and changes the updates where it is."""

import functools

import pytest
import torch

from memevae.data import load_pairs
from memevae.models import MEME, MEMEConfig
from memevae.training.trainer import TrainConfig, Trainer


@functools.cache
def pairs():
    return load_pairs("mnist-textured", "test").subset(torch.arange(64))


@functools.cache
def fit(clip):
    """Parameters and epoch record after one epoch of two steps (batch 32)."""
    torch.manual_seed(0)
    trainer = Trainer(MEME(MEMEConfig(latent_dim=4, pseudo_samples=4, classifier_samples=2)), pairs(),
                      TrainConfig(epochs=1, batch_size=32, seed=3, clip_grad_norm=clip, freed_memory="release"))
    trainer.fit()
    return trainer.model.state_dict(), trainer.history[-1]


def test_a_bound_no_step_reaches_leaves_training_bit_identical_and_records_the_norms():
    unclipped, record = fit(None)
    assert "train/grad_norm_max" not in record  # no clipping, nothing measured: the default run's record
    loose, record = fit(1e9)
    assert record["train/clipped_fraction"] == 0.0 and 0 < record["train/grad_norm_max"] < 1e9
    assert all(torch.equal(unclipped[k], loose[k]) for k in unclipped)


def test_a_bound_below_every_gradient_norm_clips_every_step_and_changes_the_updates():
    """Adam divides by the running gradient scale, so a constant rescaling barely moves its first
    update; over two steps of differing norms, clipping to a tiny bound changes them."""
    unclipped, _ = fit(None)
    clipped, record = fit(1e-3)
    assert record["train/clipped_fraction"] == 1.0 and record["train/grad_norm_max"] > 1e-3
    assert any(not torch.allclose(unclipped[k], clipped[k]) for k in unclipped if unclipped[k].is_floating_point())


@pytest.mark.parametrize("bound", [0.0, -1.0, float("nan"), float("inf")])
def test_a_bound_that_is_not_a_positive_number_is_a_clear_error(bound):
    with pytest.raises(ValueError, match=r"clip_grad_norm must be > 0 \(or None: no clipping\)"):
        TrainConfig(clip_grad_norm=bound)
