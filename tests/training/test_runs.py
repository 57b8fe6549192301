"""Training runs end to end on the shipped sample: resume, kills, NaN, run directories."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

import memevae
from memevae import DataConfig, TrainConfig, load_run, train
from memevae.data import default_kinds
from memevae.training.callbacks import Checkpointer
from memevae.training.rundir import RunDir, RunError
from memevae.training.trainer import Callback, Trainer, TrainingError

DATA = dict(limit=192, seed=5)
OPTIONS = {"latent_dim": 8, "pseudo_samples": 8, "classifier_samples": 2}


def fit(path, epochs, **extra):
    training = TrainConfig(epochs=epochs, batch_size=64, test_samples=64, seed=5)
    return train(path, data=DataConfig(**DATA), training=training, model_options=OPTIONS, progress=False, **extra)


def assert_same_parameters(a, b):
    for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(x, y), name


@pytest.fixture(scope="module")
def two_epochs(tmp_path_factory):
    path = tmp_path_factory.mktemp("runs") / "straight"
    fit(path, 2)
    return load_run(path)


def test_run_directory_contents(two_epochs):
    path = two_epochs.path
    assert (path / "checkpoints" / "last.pt").exists()
    assert (path / "figures" / "generation-epoch-0002.png").stat().st_size > 1000
    lines = (path / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2]
    record = json.loads(lines[-1])
    assert {"train/paired/loss", "test/paired/loss", "time/items_per_s"} <= set(record)
    config = json.loads((path / "config.json").read_text())
    assert config["model"] == "meme" and config["model_config"]["latent_dim"] == 8
    assert not list(path.rglob("*.tmp"))
    # results move with the thread count: every run records it, and torch's version
    assert config["environment"]["threads"] == torch.get_num_threads()
    assert config["environment"]["torch"] == torch.__version__
    assert config["environment"]["cpu_capability"] == torch.backends.cpu.get_cpu_capability()


def test_resume_gives_identical_parameters(tmp_path, two_epochs):
    fit(tmp_path / "r", 1)
    run = memevae.resume(tmp_path / "r", epochs=2, progress=False)
    assert_same_parameters(run.model, two_epochs.model)
    assert run.config["resumes"][-1]["environment"]["threads"] == torch.get_num_threads()
    assert [r["epoch"] for r in RunDir(tmp_path / "r").read_metrics()] == [1, 2]


class Interrupt(Callback):
    """Stops training like Ctrl-C in the middle of epoch ``epoch``."""

    def __init__(self, epoch, step):
        self.epoch, self.step, self.current = epoch, step, 0

    def on_epoch_start(self, trainer, epoch, batches):
        self.current = epoch

    def on_batch_end(self, trainer, step, loss):
        if self.current == self.epoch and step == self.step:
            raise KeyboardInterrupt


def test_interrupt_during_an_epoch_then_resume(tmp_path, two_epochs, monkeypatch):
    original = Trainer.__init__

    def with_interrupt(self, *args, **kwargs):
        original(self, *args, **kwargs)
        self.callbacks.append(Interrupt(epoch=2, step=1))

    monkeypatch.setattr(Trainer, "__init__", with_interrupt)
    with pytest.raises(KeyboardInterrupt):
        fit(tmp_path / "r", 2)
    monkeypatch.setattr(Trainer, "__init__", original)
    assert RunDir(tmp_path / "r").load_checkpoint()["epoch"] == 1
    run = train(tmp_path / "r", resume=True, progress=False)
    assert_same_parameters(run.model, two_epochs.model)


@pytest.mark.slow  # a training subprocess; CI runs it
def test_kill_minus_nine_then_resume(tmp_path, two_epochs):
    """A real SIGKILL of the command line while it trains; the checkpoint on disk stays loadable."""
    out = tmp_path / "killed"
    command = [sys.executable, "-m", "memevae.cli", "train", "--out", str(out), "--epochs", "2", "--limit", "192",
               "--batch-size", "64", "--seed", "5", "--latent-dim", "8", "--pseudo-samples", "8", "--classifier-samples", "2", "--quiet"]
    env = {**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads())}  # the same reductions as the run compared with
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    last = out / "checkpoints" / "last.pt"
    deadline = time.time() + 120
    while not last.exists() and process.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert last.exists(), process.stderr.read().decode()
    # test_samples differs from the CLI default only in the test metrics, not in training
    run = train(out, resume=True, progress=False)
    assert_same_parameters(run.model, two_epochs.model)


def test_nan_loss_stops_with_a_clear_message_and_keeps_the_last_good_checkpoint(tmp_path):
    data = DataConfig(**DATA).load("train")
    model = memevae.runs.build_model("meme", default_kinds("mnist-textured"), OPTIONS)
    model.initialise(data, torch.Generator().manual_seed(0))
    calls = {"n": 0}
    forward = model.forward

    def poisoned(batch):
        calls["n"] += 1
        out = forward(batch)
        if calls["n"] == 5:  # epoch 2, step 2 (3 batches per epoch)
            out.loss = out.loss * float("nan")
        return out

    model.forward = poisoned
    run_dir = RunDir(tmp_path / "nan").create({"model": "meme"})
    trainer = Trainer(model, data, TrainConfig(epochs=3, batch_size=64), callbacks=[Checkpointer(run_dir, {})])
    with pytest.raises(TrainingError, match=r"loss became nan at epoch 2, step 2 .*; training stopped before that update"):
        trainer.fit()
    assert run_dir.load_checkpoint()["epoch"] == 1


def test_existing_run_is_not_overwritten(two_epochs):
    with pytest.raises(RunError, match="already holds a run"):
        fit(two_epochs.path, 1)


def test_load_run_errors_are_one_line(tmp_path):
    with pytest.raises(RunError, match="not a memevae run"):
        load_run(tmp_path)
    RunDir(tmp_path).create({"model": "meme", "data": {}, "train": {}})
    with pytest.raises(RunError, match="no checkpoint"):
        load_run(tmp_path)
    (tmp_path / "checkpoints" / "last.pt").write_bytes(b"garbage")
    with pytest.raises(RunError, match="is damaged .*cannot be read.*no intact checkpoint is left"):
        load_run(tmp_path)


def test_api_translate_encode_reconstruct(two_epochs):
    test = two_epochs.data_config.load("test")
    batch = test.batch(torch.arange(4))
    q = two_epochs.encode("mnist", batch.data["mnist"])
    assert q.loc.shape == (4, 8)
    assert two_epochs.translate(batch.data["mnist"], "mnist", "textured").shape == (4, 3, 32, 32)
    images = (batch.data["textured"] * 255).to(torch.uint8)
    assert two_epochs.reconstruct(images, "textured").shape == (4, 3, 32, 32)


def test_mmvae_style_refusal_of_unpaired_data(monkeypatch, tmp_path):
    from memevae.models import MEME

    monkeypatch.setattr(MEME, "learns_from_unpaired", False)
    with pytest.raises(ValueError, match="cannot learn from unpaired data.*--paired-only"):
        train(tmp_path / "x", data=DataConfig(paired_fraction=0.5, unpaired="split", **DATA),
              training=TrainConfig(epochs=1), model_options=OPTIONS, progress=False)


def test_runs_record_their_data_variant_and_old_runs_read_as_inverted(two_epochs, tmp_path):
    config = json.loads((two_epochs.path / "config.json").read_text())
    assert config["data_variant"] == "mnist-textured/bright-v1" and config["data"]["rendering"] == "bright"
    legacy = {**config, "data": {k: v for k, v in config["data"].items() if k != "rendering"}}
    legacy.pop("data_variant")
    from memevae.data.pairs import recorded_variant
    from memevae.run import recorded_data

    assert recorded_variant(legacy) == "mnist-textured/inverted-v1"  # early memevae 0.1.0 rendered only this way
    assert recorded_data(legacy, "old").rendering == "inverted"
    future = {**config, "data_variant": "mnist-textured/bright-v2"}
    with pytest.raises(RunError, match="was trained on mnist-textured/bright-v2, but this memevae renders mnist-textured/bright-v1"):
        recorded_data(future, "new-run")


def test_a_run_keeps_its_vocabulary_and_refuses_data_with_other_words(tmp_path):
    """Token ids mean the words of the vocabulary a run was trained with: the run saves it, and
    data whose vocabulary differs are refused in one line."""
    from memevae.data import MultimodalDataset
    from memevae.data.captions import Vocabulary
    from memevae.run import RunError, check_vocabularies, save_vocabularies, vocabulary_path

    def data(words):
        vocabulary = Vocabulary(["<pad>", "<eos>", "<unk>", *words], min_count=3)
        return MultimodalDataset({"caption": torch.tensor([[3, 1, 0]]), "x": torch.zeros(1, 2)},
                                 {"caption": torch.tensor([0]), "x": torch.tensor([0])}, torch.tensor([0]), "toy",
                                 vocabularies={"caption": vocabulary})

    save_vocabularies(tmp_path, data(["bird", "wing"]))
    assert Vocabulary.load(vocabulary_path(tmp_path, "caption")).words[3:] == ["bird", "wing"]
    check_vocabularies(tmp_path, data(["bird", "wing"]))
    with pytest.raises(RunError, match=r"caption vocabulary .* differs from the one .* was trained with"):
        check_vocabularies(tmp_path, data(["wing", "bird"]))
    check_vocabularies(tmp_path / "older-run", data(["wing"]))  # a run without a saved vocabulary: nothing to check
