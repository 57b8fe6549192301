"""Progress output: a bar on a terminal, plain periodic lines when the output is a file."""

import io
from types import SimpleNamespace

from memevae.training.callbacks import ProgressBar


class Clock:
    """A fake clock that a test moves forward."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


class Terminal(io.StringIO):
    def isatty(self):
        return True


def run_epoch(bar, clock, steps: int, seconds_per_step: float):
    trainer = SimpleNamespace(config=SimpleNamespace(epochs=10, batch_size=64), cpu_settings={})
    bar.on_fit_start(trainer)
    bar.on_epoch_start(trainer, 3, steps)
    for step in range(steps):
        clock.now += seconds_per_step
        bar.on_batch_end(trainer, step, 16000.0 + 10 * step)
    bar.on_epoch_end(trainer, {"epoch": 3, "train/paired/loss": 16000.0, "time/epoch_s": steps * seconds_per_step,
                               "time/items_per_s": 64 / seconds_per_step})


def test_output_to_a_file_gets_a_line_a_minute_during_an_epoch():
    """Redirected to a file the bar draws nothing; before, a long epoch (a CUB epoch takes ten
    minutes) printed nothing until its end."""
    out, clock = io.StringIO(), Clock()
    run_epoch(ProgressBar(out, clock=clock), clock, steps=10, seconds_per_step=25.0)
    lines = out.getvalue().splitlines()
    # after 75, 150 and 225 s: steps 3, 6, 9 at 64 items per step every 25 s
    assert lines[:3] == ["epoch 3/10: step 3/10, 3 items/s, loss 16010.0",
                         "epoch 3/10: step 6/10, 3 items/s, loss 16025.0",
                         "epoch 3/10: step 9/10, 3 items/s, loss 16040.0"]
    assert len(lines) == 4 and lines[3].startswith("epoch 3/10: paired/loss 16000.0")


def test_the_interval_is_an_option_and_terminals_and_quiet_runs_get_no_step_lines():
    out, clock = io.StringIO(), Clock()
    run_epoch(ProgressBar(out, every_s=0.5, clock=clock), clock, steps=4, seconds_per_step=1.0)
    assert [line.split(",")[0] for line in out.getvalue().splitlines()[:4]] == [f"epoch 3/10: step {k}/4" for k in (1, 2, 3, 4)]
    terminal = Terminal()
    run_epoch(ProgressBar(terminal, clock=clock), clock, steps=10, seconds_per_step=25.0)
    assert "step 3/10" not in terminal.getvalue() and "epoch 3/10: paired/loss" in terminal.getvalue()
    quiet = io.StringIO()
    run_epoch(ProgressBar(quiet, disable=True, clock=clock), clock, steps=10, seconds_per_step=25.0)
    assert quiet.getvalue() == ""
