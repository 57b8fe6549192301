"""Fault injection: a run never loses or silently corrupts work, and every failure gets one line
that says what was kept and what to do.

Covered: kill -9 during an epoch (tests/training/test_runs.py) and during a checkpoint write, a
full disk while writing a checkpoint, NaN loss and NaN gradient (with and without a checkpoint to
fall back on), a damaged checkpoint, concurrent processes on one run, a run stopped before its
first checkpoint, options a resumed run may and may not change, bad options and a damaged config.
"""

import contextlib
import errno
import json
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch

import memevae
from memevae import DataConfig, TrainConfig, load_run, train
from memevae.cli import main
from memevae.data import default_kinds
from memevae.models import MEME
from memevae.training.callbacks import Checkpointer
from memevae.training.rundir import RunDir, RunError
from memevae.training.trainer import NonFiniteError, Trainer, TrainingError

OPTIONS = {"latent_dim": 8, "pseudo_samples": 8, "classifier_samples": 2}
DATA = dict(limit=192, seed=5)  # 3 batches of 64 per epoch
CLI_RUN = ["--epochs", "2", "--limit", "192", "--batch-size", "64", "--seed", "5", "--latent-dim", "8", "--pseudo-samples", "8",
           "--classifier-samples", "2", "--coherence-items", "0", "--quiet"]


def fit(path, epochs=2, **training):
    config = TrainConfig(epochs=epochs, batch_size=64, test_samples=64, seed=5, coherence_items=0, **training)
    return train(path, data=DataConfig(**DATA), training=config, model_options=OPTIONS, progress=False)


def same_parameters(a, b) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


@contextlib.contextmanager
def single_thread():
    """torch on one thread inside the block, as the tests here run (the autouse one_thread fixture of
    conftest.py); module fixtures use it, since they must not change the process for later modules."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    """Two epochs without any fault: what every recovered run must equal."""
    with single_thread():
        path = tmp_path_factory.mktemp("straight") / "run"
        fit(path)
        return load_run(path)


def poison(monkeypatch, call: int, how: str):
    """Make MEME's ``call``-th forward (1-based) give a NaN loss, or a finite loss with NaN gradients."""
    calls = {"n": 0}
    forward = MEME.forward

    def poisoned(self, batch):
        out = forward(self, batch)
        if self.training:
            calls["n"] += 1
            if calls["n"] == call:
                if how == "loss":
                    out.loss = out.loss * float("nan")
                else:
                    out.loss.register_hook(lambda grad: grad * float("nan"))
        return out

    monkeypatch.setattr(MEME, "forward", poisoned)


# -- non-finite values -----------------------------------------------------------------------


def test_nan_gradient_with_a_finite_loss_on_an_epochs_last_step(tmp_path, monkeypatch):
    poison(monkeypatch, call=6, how="gradient")  # epoch 2, step 3: the step before epoch 2's checkpoint
    with pytest.raises(NonFiniteError) as error:
        fit(tmp_path / "run")
    message = str(error.value)
    assert "a gradient became non-finite (loss " in message and "at epoch 2, step 3" in message
    assert f"the checkpoint {tmp_path / 'run' / 'checkpoints' / 'last.pt'} (end of epoch 1) is intact" in message
    assert f"memevae train --out {tmp_path / 'run'} --resume --lr 5e-05" in message
    state = RunDir(tmp_path / "run").load_checkpoint()
    assert state["epoch"] == 1 and all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())
    assert len(RunDir(tmp_path / "run").read_metrics()) == 1


def test_nan_loss_then_the_advice_is_followed(tmp_path, monkeypatch):
    poison(monkeypatch, call=5, how="loss")  # epoch 2, step 2
    with pytest.raises(NonFiniteError, match=r"the loss became nan at epoch 2, step 2 .*end of epoch 1\) is intact"):
        fit(tmp_path / "run")
    monkeypatch.undo()
    assert main(["train", "--out", str(tmp_path / "run"), "--resume", "--lr", "5e-05", "--quiet"]) == 0
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["train"]["learning_rate"] == 5e-05
    assert config["resumes"][-1]["after_epoch"] == 1
    assert config["resumes"][-1]["changes"] == {"learning_rate": {"from": 5e-4, "to": 5e-05}}
    run = load_run(tmp_path / "run")
    assert run.history[-1]["epoch"] == 2  # trained on with the lower learning rate


def test_nan_in_the_first_epoch_leaves_a_run_that_resume_restarts(tmp_path, monkeypatch, straight):
    poison(monkeypatch, call=2, how="loss")
    with pytest.raises(NonFiniteError, match="no epoch had finished, so .* has no checkpoint; --resume restarts the run "
                                             "from epoch 1; e.g. with a lower learning rate: memevae train --out .* --resume"):
        fit(tmp_path / "run")
    monkeypatch.undo()
    run = memevae.resume(tmp_path / "run", progress=False)  # same settings: the same run as never failing
    assert same_parameters(run.model, straight.model)


def test_a_huge_learning_rate_gets_advice_that_can_be_followed(tmp_path, capsys):
    assert main(["train", "--out", str(tmp_path / "run"), "--lr", "1e6", *CLI_RUN]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "became" in err and "--resume --lr 0.0005" in err and "Traceback" not in err
    assert "end of epoch 0" not in err


def test_the_checkpointer_never_writes_non_finite_parameters(tmp_path):
    model = memevae.runs.build_model("meme", default_kinds("mnist-textured"), OPTIONS)
    trainer = Trainer(model, DataConfig(**DATA).load("train"), TrainConfig(epochs=1, batch_size=64))
    with torch.no_grad():
        next(model.parameters())[0] = float("inf")
    run_dir = RunDir(tmp_path / "run").create({"model": "meme", "data": {}, "train": {}})
    with pytest.raises(TrainingError, match="parameters became non-finite during epoch 1; its checkpoint was not written"):
        Checkpointer(run_dir, {}).on_epoch_end(trainer, {"epoch": 1})
    assert not run_dir.has_checkpoint()


def test_non_finite_test_values_are_kept_as_null(tmp_path, monkeypatch):
    forward = MEME.forward

    def nan_when_testing(self, batch):
        out = forward(self, batch)
        if not self.training:
            out.metrics["paired/loss"] = float("nan")
        return out

    monkeypatch.setattr(MEME, "forward", nan_when_testing)
    fit(tmp_path / "run", epochs=1)
    line = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[0]
    record = json.loads(line)
    assert record["test/paired/loss"] is None and record["test/non_finite"] == ["test/paired/loss"]
    assert "NaN" not in line  # strict JSON


# -- damaged files ---------------------------------------------------------------------------


def test_a_damaged_checkpoint_is_refused_everywhere_and_names_the_fallback(tmp_path, straight, capsys):
    path = tmp_path / "run"
    fit(path)
    last = path / "checkpoints" / "last.pt"
    data = bytearray(last.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 64] = bytes(b ^ 0x5A for b in data[middle:middle + 64])
    last.write_bytes(bytes(data))
    fallback = f"the checkpoint {path / 'checkpoints' / 'previous.pt'} (end of epoch 1) is intact: use it with --checkpoint previous"
    with pytest.raises(RunError, match=r"is damaged \(its contents do not match their sha256") as error:
        load_run(path)
    assert fallback in str(error.value)
    for command in (["evaluate", str(path), "--metrics", "latent", "--quiet"],
                    ["translate", str(path), "--from", "mnist", "--to", "textured", "--out", str(tmp_path / "g.png")],
                    ["train", "--out", str(path), "--resume", "--quiet"]):
        assert main(command) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "is damaged" in err and fallback in err, command
    assert load_run(path, checkpoint="previous").history[-1]["epoch"] == 1
    run = memevae.resume(path, checkpoint="previous", progress=False)
    assert same_parameters(run.model, straight.model)  # epoch 2 redone from the fallback: the same parameters


def test_the_digest_costs_no_space(tmp_path):
    fit(tmp_path / "run", epochs=1)
    state = RunDir(tmp_path / "run").load_checkpoint()
    torch.save(state, tmp_path / "plain.pt")
    assert (tmp_path / "run" / "checkpoints" / "last.pt").stat().st_size < 1.001 * (tmp_path / "plain.pt").stat().st_size + 4096


def test_checkpoints_of_memevae_0_1_still_load(tmp_path):
    path = tmp_path / "run"
    fit(path, epochs=1)
    state = RunDir(path).load_checkpoint()
    torch.save({**state, "format": 1}, path / "checkpoints" / "last.pt")  # the old layout: no digest
    assert load_run(path).history[-1]["epoch"] == 1


def test_an_edited_config_gets_one_line(tmp_path, capsys):
    path = tmp_path / "run"
    fit(path, epochs=1)
    config = path / "config.json"
    original = config.read_text()
    config.write_text(original[:-20])
    assert main(["train", "--out", str(path), "--resume", "--quiet"]) == 1
    assert "config.json is not valid JSON" in capsys.readouterr().err
    edited = json.loads(original)
    edited["train"]["momentum"] = 0.9
    config.write_text(json.dumps(edited))
    assert main(["train", "--out", str(path), "--resume", "--quiet"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "does not describe a run this memevae can continue" in err and "momentum" in err


# -- the disk, kills and other processes ------------------------------------------------------


def test_a_full_disk_while_writing_a_checkpoint(tmp_path, monkeypatch):
    from memevae import io

    real = io.atomic_write
    writes = {"last": 0}

    def disk_fills_up(path, write, mode="wb", **options):
        if path.name == "last.pt":
            writes["last"] += 1
            if writes["last"] == 2:
                def half_then_full(handle):
                    handle.write(b"\0" * 4096)
                    raise OSError(errno.ENOSPC, "No space left on device")
                return real(path, half_then_full, mode, **options)
        return real(path, write, mode, **options)

    monkeypatch.setattr(io, "atomic_write", disk_fills_up)
    with pytest.raises(TrainingError) as error:
        fit(tmp_path / "run")
    assert str(error.value).startswith(f"could not write the checkpoint of epoch 2 in {tmp_path / 'run' / 'checkpoints'} "
                                       "(No space left on device); no checkpoint file was changed by the failed write; ")
    assert "(end of epoch 1) is intact; continue with --resume" in str(error.value)
    assert RunDir(tmp_path / "run").load_checkpoint()["epoch"] == 1
    assert not RunDir(tmp_path / "run").has_checkpoint("previous")  # the fallback moves only once a new last.pt is written
    assert not list((tmp_path / "run").rglob("*.tmp"))


KILL_IN_WRITE = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    import torch
    torch.set_num_threads(1)
    from memevae import io
    real = io.atomic_write
    seen = {"n": 0}
    def slow(path, write, mode="wb", **options):
        if Path(path).name == "last.pt":
            seen["n"] += 1
            if seen["n"] == 2:  # epoch 2's checkpoint: write half of it, then wait to be killed
                def half(handle):
                    handle.write(b"\\0" * 100_000)
                    handle.flush()
                    Path(sys.argv[2]).write_text("writing")
                    time.sleep(120)
                return real(path, half, mode, **options)
        return real(path, write, mode, **options)
    io.atomic_write = slow
    from memevae.cli import main
    main(["train", "--out", sys.argv[1], *sys.argv[3:]])
""")


@pytest.mark.slow  # a training subprocess; CI runs it
def test_kill_during_a_checkpoint_write(tmp_path, straight):
    out, marker = tmp_path / "run", tmp_path / "marker"
    process = subprocess.Popen([sys.executable, "-c", KILL_IN_WRITE, str(out), str(marker), *CLI_RUN],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 180
    while not marker.exists() and process.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert marker.exists(), process.stderr.read().decode()[-2000:]
    process.send_signal(signal.SIGKILL)
    process.wait()
    leftovers = list((out / "checkpoints").glob(".last.pt.*.tmp"))
    assert leftovers  # the half-written file, never renamed onto last.pt
    assert RunDir(out).load_checkpoint()["epoch"] == 1  # the checkpoint before is intact and verified
    run = memevae.resume(out, progress=False)
    assert not list(out.rglob("*.tmp"))  # removed on the next start
    assert same_parameters(run.model, straight.model)


HOLD_THE_RUN = textwrap.dedent("""
    import sys, torch
    torch.set_num_threads(1)
    from memevae.cli import main
    main(["train", "--out", sys.argv[1], "--epochs", "500", "--limit", "64", "--batch-size", "32", "--latent-dim", "4",
          "--pseudo-samples", "4", "--classifier-samples", "1", "--coherence-items", "0", "--quiet"])
""")


@pytest.mark.slow  # a training subprocess; CI runs it
def test_concurrent_processes_on_one_run(tmp_path, capsys):
    out = tmp_path / "run"
    process = subprocess.Popen([sys.executable, "-c", HOLD_THE_RUN, str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 120
        while not (out / "checkpoints" / "last.pt").exists() and process.poll() is None and time.time() < deadline:
            time.sleep(0.05)
        assert (out / "checkpoints" / "last.pt").exists(), process.stderr.read().decode()[-2000:]
        assert main(["train", "--out", str(out), "--resume", "--quiet"]) == 1
        err = capsys.readouterr().err
        assert f"is in use by process {process.pid} on " in err and err.count("\n") == 1, err
        # a new run there is refused before the folder is touched, whoever holds it
        assert main(["train", "--out", str(out), *CLI_RUN]) == 1
        err = capsys.readouterr().err
        assert "already holds a run" in err and err.count("\n") == 1, err
        with pytest.raises(RunError, match=f"in use by process {process.pid}"):
            memevae.resume(out, progress=False)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    # the holder died: its lock went with it, and the run continues
    done = len(RunDir(out).read_metrics())
    assert memevae.resume(out, epochs=done + 1, progress=False).history[-1]["epoch"] == done + 1


# -- runs stopped early, resumed runs, options -------------------------------------------------


def test_ctrl_c_in_the_first_epoch_then_new_run_and_resume(tmp_path, monkeypatch, capsys, straight):
    out = tmp_path / "run"
    original = Trainer.fit

    def interrupted(self):
        raise KeyboardInterrupt

    monkeypatch.setattr(Trainer, "fit", interrupted)
    assert main(["train", "--out", str(out), *CLI_RUN]) == 130
    assert "interrupted; no epoch had finished, so" in capsys.readouterr().err
    monkeypatch.setattr(Trainer, "fit", original)
    assert main(["train", "--out", str(out), *CLI_RUN]) == 1
    assert "holds a run that stopped before its first checkpoint; start it again with --resume" in capsys.readouterr().err
    assert main(["train", "--out", str(out), "--resume", "--quiet"]) == 0
    assert same_parameters(load_run(out).model, straight.model)


def test_resume_refuses_changes_to_the_model_or_data(tmp_path, capsys):
    out = tmp_path / "run"
    fit(out, epochs=1)
    assert main(["train", "--out", str(out), "--resume", "--lr", "0.1", "--latent-dim", "4", "--model", "mvae",
                 "--data-dir", str(tmp_path), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "so --data-dir, --latent-dim, --model cannot be given" in err and err.count("\n") == 1
    with pytest.raises(RunError, match=r"cannot change limit \(192 -> 10\)"):
        train(out, resume=True, data=DataConfig(limit=10, seed=5))
    with pytest.raises(RunError, match=r"cannot change batch_size \(64 -> 128\)"):
        train(out, resume=True, training=TrainConfig(epochs=3))
    with pytest.raises(RunError, match="a resumed run cannot change latent_dim"):
        memevae.resume(out, latent_dim=4)
    assert len(RunDir(out).read_metrics()) == 1  # nothing trained


@pytest.mark.parametrize("option, message", [
    (["--epochs", "0"], "epochs must be >= 1, got 0"),
    (["--limit", "-5"], "limit must be >= 1"),
    (["--checkpoint-every", "-1"], "checkpoint_every must be >= 0"),
    (["--paired-fraction", "1.5"], "paired_fraction must be in (0, 1]"),
    (["--device", "cuda"], "has no CUDA device"),
    (["--device", "tpu"], "unknown device 'tpu'"),
])
def test_bad_options_get_one_line_and_leave_no_folder(tmp_path, capsys, option, message):
    out = tmp_path / "run"
    assert main(["train", "--out", str(out), "--limit", "64", "--quiet", *option]) == 1
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert not out.exists()


def test_a_checkpoint_whose_payload_is_not_serialised_bytes_is_named_as_such(tmp_path):
    path = tmp_path / "run"
    fit(path, epochs=1)
    torch.save({"format": 2, "sha256": "0" * 64, "payload": [1, 2, 3]}, path / "checkpoints" / "last.pt")
    with pytest.raises(RunError, match=r"is damaged \(its payload is a list, not serialised bytes\)"):
        load_run(path)
