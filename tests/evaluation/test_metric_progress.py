"""The long metrics show progress: a bar on a terminal, a plain line a minute in a log file."""

import io

import pytest
import torch

import memevae.evaluation._common as common
from memevae.evaluation._common import Progress
from memevae.evaluation.metrics.likelihood import marginal_log_likelihood
from memevae.models import MEME, MEMEConfig

pytestmark = pytest.mark.usefixtures("one_thread")


class Clock:
    def __init__(self):
        self.now = 500.0

    def __call__(self):
        return self.now


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_a_log_file_gets_a_line_a_minute_and_a_terminal_or_a_quiet_run_none():
    out, clock = io.StringIO(), Clock()
    bar = Progress(10, "log-likelihood (K=1000)", stream=out, clock=clock)
    for _ in range(10):
        clock.now += 25.0
        bar.update(1)
        bar.set_postfix(loss="16.5")
    bar.close()
    # after 75, 150 and 225 s: batches 3, 6 and 9; the postfix as on the bar
    assert out.getvalue().splitlines() == ["log-likelihood (K=1000): 3/10 batches, 75 s, loss 16.5",
                                           "log-likelihood (K=1000): 6/10 batches, 150 s, loss 16.5",
                                           "log-likelihood (K=1000): 9/10 batches, 225 s, loss 16.5"]
    for stream, progress in ((Terminal(), True), (io.StringIO(), False)):
        bar = Progress(10, "SNR full", progress, unit="step", stream=stream, clock=clock)
        for _ in range(10):
            clock.now += 25.0
            bar.update(1)
        bar.close()
        assert "steps" not in stream.getvalue()


def test_likelihood_reports_progress_to_a_log(monkeypatch, tiny_batch, capsys):
    """Before, stderr redirected to a file got tqdm's carriage-return frames (and no line a minute)."""
    monkeypatch.setattr(common, "PROGRESS_EVERY_S", 0.0)  # a line at every batch
    torch.manual_seed(0)
    marginal_log_likelihood(MEME(MEMEConfig(latent_dim=4, pseudo_samples=2)), tiny_batch(batch_size=2).data, samples=3,
                            batch_size=1)
    lines = capsys.readouterr().err.splitlines()
    assert [line.split(",")[0] for line in lines] == [f"log-likelihood (K=3): {k}/8 batches" for k in range(1, 9)]

