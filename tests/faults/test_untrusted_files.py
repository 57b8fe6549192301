"""Files a user is handed: no checkpoint, GP classifier or judge runs code when memevae loads it.

A crafted pickle whose unpickling would create a marker file (as it could run any command) is
put where memevae reads: as ``last.pt``, inside a format-2 envelope with a recomputed digest, as
``previous.pt`` or ``epoch-NNNN.pt`` beside a garbage ``last.pt`` (read by the fallback advice),
as ``gp-<modality>.pt`` and as a judge's weights. Every command refuses it in one line and the
marker never appears. The format itself (:mod:`memevae.tensorfile`) is tested to rebuild a
nested state exactly and to be read without the pickle module.
"""

import collections
import hashlib
import io
import json
import math
import pathlib
import pickle
import random
import re
import shutil

import numpy as np
import pytest
import torch

import memevae
from memevae import DataConfig, TrainConfig, load_run, sweeps, tensorfile, train
from memevae.cli import main
from memevae.evaluation.judges import JudgeCNN, JudgeError, info_path, load_judge, save_judge, weights_path
from memevae.training.rundir import CHECKPOINT_FORMAT, RunDir, RunError

from test_faults import single_thread

OPTIONS = {"latent_dim": 4, "pseudo_samples": 4, "classifier_samples": 1}
JUDGE_INFO = {"test_accuracy": 0.5, "trained_on": {"dataset": "mnist-textured", "variant": "mnist-textured/bright-v1",
                                                   "data_dir": None, "split": "train", "seed": 0}}


class Touch:
    """Unpickling it creates ``path``: what a hostile file does instead of running a command."""

    def __init__(self, path):
        self.path = pathlib.Path(path)

    def __reduce__(self):
        return pathlib.Path.touch, (self.path,)


def crafted_pickle(marker, **entries) -> bytes:
    """A torch file (as ``torch.save`` writes) of a dict holding a :class:`Touch` of ``marker``."""
    buffer = io.BytesIO()
    torch.save({**entries, "epoch": 1, "model": Touch(marker)}, buffer)
    return buffer.getvalue()


def format_2_envelope(payload: bytes) -> bytes:
    """A checkpoint as memevae wrote it before format 3: ``payload`` (the pickled state) as a uint8
    tensor beside its sha256."""
    buffer = io.BytesIO()
    torch.save({"format": 2, "sha256": hashlib.sha256(payload).hexdigest(),
                "payload": torch.frombuffer(bytearray(payload), dtype=torch.uint8)}, buffer)
    return buffer.getvalue()


def pickled(obj) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def without_running(marker, call, *args, **kwargs):
    """``call(*args, **kwargs)``, then (whether it returned or raised) a check that ``marker`` was not created."""
    try:
        return call(*args, **kwargs)
    finally:
        assert not marker.exists(), "loading the crafted file ran its code"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A real one-epoch run (copied by each test that alters it)."""
    with single_thread():
        path = tmp_path_factory.mktemp("trained") / "run"
        train(path, data=DataConfig(limit=64, seed=3),
              training=TrainConfig(epochs=1, batch_size=32, test_samples=32, seed=3, coherence_items=0, checkpoint_every=1),
              model_options=OPTIONS, progress=False)
        return path


@pytest.fixture
def run(trained, tmp_path):
    path = tmp_path / "run"
    shutil.copytree(trained, path)
    return path


# -- crafted checkpoints -----------------------------------------------------------------------

UNSAFE = r"checkpoint .*last\.pt is not a checkpoint memevae can load safely \(it is a pickle of more than tensors"
DAMAGED = r"checkpoint .*last\.pt is damaged \(it cannot be read: .*\); "


def place(run, marker, where: str) -> str:
    """Put a crafted file in ``run`` as ``where`` says; returns the message expected."""
    checkpoints = run / "checkpoints"
    if where == "last":
        (checkpoints / "last.pt").write_bytes(crafted_pickle(marker, format=1))
        return UNSAFE
    if where == "format-2 envelope":  # a legitimate envelope, its digest recomputed for the crafted payload
        (checkpoints / "last.pt").write_bytes(format_2_envelope(crafted_pickle(marker)))
        return UNSAFE
    (checkpoints / "last.pt").write_bytes(b"garbage")  # the fallback advice reads previous.pt, then epoch-NNNN.pt
    if where == "previous":
        (checkpoints / "previous.pt").write_bytes(crafted_pickle(marker, format=1))
        return DAMAGED + r"the checkpoint .*epoch-0001\.pt \(end of epoch 1\) is intact: use it with --checkpoint epoch-0001"
    (checkpoints / "epoch-0001.pt").write_bytes(crafted_pickle(marker, format=1))
    return DAMAGED + "no intact checkpoint is left to fall back on"


WHERE = ["last", "format-2 envelope", "previous", "epoch-0001"]


@pytest.mark.parametrize("where", WHERE)
@pytest.mark.parametrize("command", ["evaluate", "translate", "train --resume"])
def test_a_crafted_checkpoint_is_refused_by_the_commands(run, tmp_path, capsys, where, command):
    marker = tmp_path / "MARKER"
    expected = place(run, marker, where)
    arguments = {"evaluate": ["evaluate", str(run), "--metrics", "latent", "--quiet"],
                 "translate": ["translate", str(run), "--from", "mnist", "--to", "textured", "--out", str(tmp_path / "g.png")],
                 "train --resume": ["train", "--out", str(run), "--resume", "--quiet"]}[command]
    assert without_running(marker, main, arguments) == 1
    err = capsys.readouterr().err
    assert err.startswith("memevae: error: ") and err.count("\n") == 1, err
    assert re.search(expected, err), err


@pytest.mark.parametrize("where", WHERE)
def test_a_crafted_checkpoint_is_refused_by_load_run_and_sweep_state(run, tmp_path, where):
    marker = tmp_path / "MARKER"
    expected = place(run, marker, where)
    with pytest.raises(RunError, match=expected):
        without_running(marker, load_run, run)
    spec = sweeps.RunSpec("meme", DataConfig(limit=64, seed=3), {"epochs": 1}, OPTIONS, run)
    assert without_running(marker, sweeps.state, spec, ["latent"]) == "partial"  # as for any checkpoint that does not load


def test_a_crafted_checkpoint_named_directly_is_refused(run, tmp_path):
    marker = tmp_path / "MARKER"
    (run / "checkpoints" / "epoch-0001.pt").write_bytes(crafted_pickle(marker, format=1))
    with pytest.raises(RunError, match=r"epoch-0001\.pt is not a checkpoint memevae can load safely .*"
                                       r"refused by torch's weights-only loader: Unsupported global.*memevae never writes such a file.*the checkpoint .*last\.pt "
                                       r"\(end of epoch 1\) is intact: use it with --checkpoint last"):
        without_running(marker, load_run, run, checkpoint="epoch-0001")


# -- older checkpoints that are real ----------------------------------------------------------

def test_a_real_format_2_checkpoint_still_loads_and_resumes_as_before(run, tmp_path):
    """The envelope memevae wrote before format 3, read through torch's allow-listed loader."""
    state = RunDir(run).load_checkpoint()
    (run / "checkpoints" / "last.pt").write_bytes(format_2_envelope(pickled(state)))
    old = load_run(run)
    assert old.history == state["history"]
    assert all(torch.equal(a, b) for a, b in zip(old.model.state_dict().values(), state["model"].values()))
    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    RunDir(copy).save_checkpoint(state)  # the same state in format 3
    resumed = [memevae.resume(path, epochs=2, progress=False) for path in (run, copy)]
    assert all(torch.equal(a, b) for a, b in zip(*(r.model.state_dict().values() for r in resumed)))
    assert RunDir(run).checkpoint_path().read_bytes().startswith(b"memevae checkpoint 3 ")  # continued in format 3


def test_damaged_payloads_with_recomputed_digests_get_one_line(run):
    last = run / "checkpoints" / "last.pt"
    state = RunDir(run).load_checkpoint()
    skeleton, tensors = tensorfile.encode(state)
    skeleton["dict"]["torch_rng"] = {"tensor": "999"}  # a tensor the file does not hold

    from safetensors.torch import save
    for payload, problem in [(b"not a safetensors file", r"its payload is not of the format \(SafetensorError"),
                             (save(tensors, metadata={"memevae": json.dumps(skeleton)}), r"its structure names a tensor '999' that it does not hold"),
                             (save(tensors, metadata={"memevae": '{"dict": {"epoch": NaN}}'}), r"its payload is not of the format \(ValueError: NaN is not strict JSON\)")]:
        last.write_bytes(f"memevae checkpoint {CHECKPOINT_FORMAT} sha256={hashlib.sha256(payload).hexdigest()}\n".encode() + payload)
        with pytest.raises(RunError, match=r"last\.pt is damaged \(" + problem):
            load_run(run)


# -- GP classifiers and judges ----------------------------------------------------------------

def test_a_crafted_gp_classifier_is_refused(run, tmp_path, capsys):
    pytest.importorskip("gpytorch")
    marker, judges = tmp_path / "MARKER", tmp_path / "judges"
    judges.mkdir()
    for modality in ("mnist", "textured"):
        (judges / f"gp-{modality}.pt").write_bytes(crafted_pickle(marker, format=1, kind="gp-classifier"))
    assert without_running(marker, main, ["evaluate", str(run), "--metrics", "mi", "--judges", str(judges), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "gp-mnist.pt is not a GP classifier memevae can load safely" in err, err


def crafted_judge(folder, marker) -> None:
    """A judge record with the right sha256 of crafted weights (format 1: a torch state dict file)."""
    save_judge(JudgeCNN((1, 28, 28)), folder, "mnist", JUDGE_INFO)
    data = crafted_pickle(marker)
    weights_path(folder, "mnist").write_bytes(data)
    record = json.loads(info_path(folder, "mnist").read_text())
    info_path(folder, "mnist").write_text(json.dumps({**record, "format": 1, "sha256": hashlib.sha256(data).hexdigest()}))


def test_a_crafted_judge_is_refused(run, tmp_path, capsys):
    marker, judges = tmp_path / "MARKER", tmp_path / "judges"
    crafted_judge(judges, marker)
    with pytest.raises(JudgeError, match=r"mnist\.pt is not a judge memevae can load safely \(it is a pickle of more"):
        without_running(marker, load_judge, judges, "mnist")
    save_judge(JudgeCNN((3, 32, 32)), judges, "textured", JUDGE_INFO)
    assert without_running(marker, main, ["evaluate", str(run), "--metrics", "coherence", "--judges", str(judges), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "mnist.pt is not a judge memevae can load safely" in err, err


def rerecord(folder, modality, data: bytes, **changes) -> None:
    """Replace a judge's weights by ``data`` and its record's sha256 by theirs (and ``changes``)."""
    weights_path(folder, modality).write_bytes(data)
    record = json.loads(info_path(folder, modality).read_text())
    info_path(folder, modality).write_text(json.dumps({**record, "sha256": hashlib.sha256(data).hexdigest(), **changes}))


@pytest.mark.parametrize("data, changes, message", [
    (b"garbage", {}, r"mnist\.pt does not hold a judge's weights \(it does not start with a memevae file header\)"),
    (b"garbage", {"format": 1}, r"mnist\.pt does not hold a judge's weights \(it cannot be read: it is neither"),
    (None, {"input_shape": [3, 32, 32]}, r"mnist\.pt does not hold the network mnist\.json describes \(input_shape "
                                         r"\[3, 32, 32\], classes 10\): features\.0\.weight is \(32, 1, 3, 3\) in the file, "
                                         r"\(32, 3, 3, 3\) for that record"),
    (None, {"input_shape": [1, 28]}, r"mnist\.json records input_shape \[1, 28\] and classes 10, not a \[channels, height, "
                                     r"width\] image shape .*ValueError"),
    (None, {"input_shape": [1, 10 ** 7, 10 ** 7]}, r"head\.2\.weight is \(10, 1152\) in the file"),
])
def test_a_malformed_judge_gets_one_line(tmp_path, data, changes, message):
    save_judge(JudgeCNN((1, 28, 28)), tmp_path, "mnist", JUDGE_INFO)
    rerecord(tmp_path, "mnist", weights_path(tmp_path, "mnist").read_bytes() if data is None else data, **changes)
    with pytest.raises(JudgeError, match=message + r".*; retrain with: memevae judges train") as error:
        load_judge(tmp_path, "mnist")
    assert "\n" not in str(error.value)


def test_judges_of_format_1_still_load(tmp_path):
    """As the shipped judges are stored: a torch state dict file, read with the weights-only loader."""
    torch.manual_seed(0)
    net = JudgeCNN((1, 28, 28)).eval()
    save_judge(net, tmp_path, "mnist", JUDGE_INFO)
    rerecord(tmp_path, "mnist", pickled(net.state_dict()), format=1)
    x = torch.rand(3, 1, 28, 28)
    assert torch.equal(load_judge(tmp_path, "mnist")(x), net(x))


# -- the format --------------------------------------------------------------------------------

def assert_identical(a, b, where="state"):
    """``a`` and ``b`` equal in type and value, floats and tensors bit for bit (nan included)."""
    assert type(a) is type(b), where
    if isinstance(a, dict):
        assert list(a) == list(b), where
        assert getattr(a, "_metadata", None) == getattr(b, "_metadata", None), where
        for key in a:
            assert_identical(a[key], b[key], f"{where}[{key!r}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_identical(x, y, f"{where}[{i}]")
    elif isinstance(a, torch.Tensor):
        assert (a.dtype, a.shape, a.stride()) == (b.dtype, b.shape, b.stride()), where
        assert torch.equal(a.contiguous().flatten().view(torch.uint8), b.contiguous().flatten().view(torch.uint8)), where
    elif isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and np.array_equal(a, b), where
    elif isinstance(a, float):
        assert math.copysign(1, a) == math.copysign(1, b) and (a == b or math.isnan(a) and math.isnan(b)), where
    else:
        assert a == b, where


def test_the_format_rebuilds_a_nested_state_exactly():
    generator = torch.Generator().manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4)).to(memory_format=torch.channels_last)
    numpy_state = np.random.RandomState(1).get_state()
    state = {
        "epoch": 7, "big": 2 ** 70, "flags": [True, False, None], "name": "ünïcode",
        "floats": [0.1, -0.0, 1e-310, float("nan"), float("inf"), -float("inf")],
        "nested": {"tuple": (1, (2.5, "x"), []), 3: {"inner": [{"a": (None,)}]}, (1, "k"): "tuple key", None: 0},
        "model": model.state_dict(),
        "tensors": [torch.rand(3, 4, generator=generator).to(dtype) for dtype in (torch.float32, torch.float64, torch.bfloat16, torch.float16)]
                   + [torch.randint(0, 255, (5,), generator=generator, dtype=torch.uint8), torch.arange(-3, 3, dtype=torch.int64) * 2 ** 40,
                      torch.tensor([True, False]), torch.tensor(1.5), torch.zeros(0, 3), torch.tensor([float("nan"), -0.0])],
        "channels_last": torch.rand(2, 3, 4, 5, generator=generator).to(memory_format=torch.channels_last),
        "python_rng": random.Random(3).getstate(),
        "numpy_rng": numpy_state,
        "torch_rng": generator.get_state(),
    }
    rebuilt = tensorfile.loads(tensorfile.dumps(state, "checkpoint", 3), "checkpoint", 3)
    assert_identical(state, rebuilt)
    assert isinstance(rebuilt["model"], collections.OrderedDict) and rebuilt["model"]._metadata[""]["version"] == 1
    random.Random().setstate(rebuilt["python_rng"])  # what the consumers take
    np.random.RandomState().set_state(rebuilt["numpy_rng"])


def test_a_checkpoint_is_tensors_and_json_read_without_pickle(run, monkeypatch):
    data = (run / "checkpoints" / "last.pt").read_bytes()
    header, payload = data.split(b"\n", 1)
    assert header == b"memevae checkpoint 3 sha256=" + hashlib.sha256(payload).hexdigest().encode()
    length = int.from_bytes(payload[:8], "little")
    entries = json.loads(payload[8:8 + length])
    json.loads(entries.pop("__metadata__")["memevae"])
    sizes = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}
    # every byte after the JSON header is a tensor's raw data: nothing else is in the file
    assert len(payload) - 8 - length == sum(math.prod(e["shape"]) * sizes[e["dtype"]] for e in entries.values())
    for name in ("load", "loads", "Unpickler"):
        monkeypatch.setattr(pickle, name, lambda *args, **kwargs: pytest.fail("the pickle module was used"))
    monkeypatch.setattr(torch, "load", lambda *args, **kwargs: pytest.fail("torch.load was used"))
    assert load_run(run).history[-1]["epoch"] == 1
