"""Sweeps: the grid expansion, the sweep file's checks, and a tiny sweep trained, resumed, skipped
and reported end to end."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from memevae import sweeps
from memevae.cli import main

TINY = """# a tiny grid
[sweep]
models = ["meme", "mmvae"]
fractions = [1.0, 0.5]
schemes = ["split"]
seeds = [0]
epochs = 1
limit = 64
metrics = ["latent"]
jobs = 2

[train]
batch_size = 32
coherence_items = 0

[model_options.meme]
latent_dim = 4
pseudo_samples = 4
classifier_samples = 2

[model_options.mmvae]
latent_dim = 4
importance_samples = 2
"""


def write(tmp_path, text=TINY, name="tiny.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_expansion_follows_the_papers_comparison(tmp_path):
    sweep = sweeps.load_sweep(write(tmp_path), out=str(tmp_path / "out"))
    names = [spec.path.name for spec in sweeps.expand(sweep)]
    # f = 1 once per model; f < 1 per scheme for MEME, paired-only for MMVAE (it cannot learn from unpaired data)
    assert names == ["meme-mnist-textured-f1-seed0", "meme-mnist-textured-f0.5-split-seed0",
                     "mmvae-mnist-textured-f1-seed0", "mmvae-mnist-textured-f0.5-pairedonly-seed0"]
    spec = sweeps.expand(sweep)[1]
    assert spec.data.limit == 64 and spec.train["epochs"] == 1 and spec.model_options["latent_dim"] == 4
    assert "--resume" in spec.train_command(resume=True) and "--unpaired" in spec.train_command(resume=False)


def test_every_shipped_example_expands_and_varies_options(tmp_path):
    counts = {name: len(sweeps.expand(sweeps.load_sweep(path))) for name, path in sweeps.examples().items()}
    # table3-4: MEME and MVAE 2 + 2 x 3 x 2 = 14 each, MMVAE 2 + 2 x 2 = 6
    # table5 (CUB): MEME and MVAE 1 + 3 x 3 = 10 each, MMVAE 1 + 3 = 4; many-modalities: 2 + 2 + 2
    assert counts == {"ablation-paired-only": 16, "ablation-pseudo-samples": 10, "many-modalities": 6, "table2": 6,
                      "table3-4": 34, "table5": 24, "table7": 10}
    table2 = [spec.path.name for spec in sweeps.expand(sweeps.load_sweep(sweeps.find("table2")))]
    assert "meme-mnist-textured-f1-seed0-direction-mnist-to-textured" in table2
    mmvae = [spec for spec in sweeps.expand(sweeps.load_sweep(sweeps.find("table3-4"))) if spec.model == "mmvae"]
    assert mmvae and all(spec.preset == "official" and spec.train_command(resume=False)[6:8] == ["--preset", "official"]
                         for spec in mmvae)  # MMVAE as the paper's comparison ran it


def test_many_modality_schemes_and_the_modalities_option(tmp_path):
    text = ("[sweep]\ndatasets = ['polymnist-textured']\nmodels = ['meme', 'mmvae']\nfractions = [0.5]\n"
            "schemes = ['random', 'm2+m0']\n[data]\nmodalities = '3'\n")
    specs = sweeps.expand(sweeps.load_sweep(write(tmp_path, text), out=str(tmp_path / "out")))
    assert [spec.path.name for spec in specs] == ["meme-polymnist-textured-m3-f0.5-random-seed0",
                                                  "meme-polymnist-textured-m3-f0.5-m2+m0-seed0",
                                                  "mmvae-polymnist-textured-m3-f0.5-pairedonly-seed0"]
    command = specs[1].train_command(resume=False)
    assert command[command.index("--modalities") + 1] == "m0,m1,m2" and command[command.index("--unpaired") + 1] == "m2+m0"
    refused = text.replace("'random', 'm2+m0'", "'m0+m1+m2'")
    with pytest.raises(ValueError, match=r"polymnist-textured has no scheme m0\+m1\+m2; choose from m0, m1, m2, split, "
                                         r"random, or modalities joined by '\+'"):
        sweeps.expand(sweeps.load_sweep(write(tmp_path, refused)))
    with pytest.raises(ValueError, match=r"mnist-textured has no scheme m0\+m2; choose from mnist, textured, split, random"):
        sweeps.expand(sweeps.load_sweep(write(tmp_path, "[sweep]\nfractions = [0.5]\nschemes = ['m0+m2']\n")))


@pytest.mark.parametrize("text,message", [
    ("[sweep]\nmodels = ['memo']\n", "unknown model 'memo'"),
    ("[sweep]\nepochs = 0\n", "epochs must be >= 1"),
    ("[sweep]\nfractions = [0.5]\nschemes = ['svhn']\n", "has no scheme svhn"),
    ("[sweep]\nbackend = 'ray'\n", "unknown backend 'ray'"),
    ("[sweep]\nepoch = 3\n", "[sweep] epoch: no such option; did you mean epochs?"),
    ("[runs]\n", "a sweep file has a [sweep] table"),
    ("[sweep]\n[presets]\nmmvae = 'paper'\n", "mmvae has no preset 'paper'"),
    ("[sweep\n", "is not valid TOML"),
])
def test_bad_sweep_files_are_one_line_errors(tmp_path, text, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        sweeps.expand(sweeps.load_sweep(write(tmp_path, text)))


@pytest.mark.slow  # trains runs in subprocesses
def test_a_tiny_sweep_trains_resumes_skips_and_reports(tmp_path, capsys):
    out = tmp_path / "out"
    config = write(tmp_path)
    assert main(["sweep", str(config), "--out", str(out), "--quiet"]) == 0
    manifest = json.loads((out / "sweep.json").read_text())
    assert [run["state"] for run in manifest["runs"]] == ["evaluated"] * 4
    assert manifest["budget"] == {"epochs": 1, "limit": 64}
    report = (out / "report" / "report.md").read_text()
    assert "Budget: 1 epoch(s) per run, 64 training rows per run" in report and "4 evaluated run(s)" in report
    config_json = json.loads((out / "runs" / "meme-mnist-textured-f0.5-split-seed0" / "config.json").read_text())
    assert config_json["train"]["epochs"] == 1 and config_json["data"]["limit"] == 64  # the budget, in every run

    # a larger budget resumes every run from its checkpoint; a third call finds nothing to do
    assert main(["sweep", str(config), "--out", str(out), "--epochs", "2", "--quiet"]) == 0
    history = [json.loads(line) for line in (out / "runs" / "meme-mnist-textured-f1-seed0" / "metrics.jsonl").read_text().splitlines()]
    assert [record["epoch"] for record in history] == [1, 2]
    resumed = json.loads((out / "runs" / "meme-mnist-textured-f1-seed0" / "config.json").read_text())["resumes"]
    assert resumed[0]["changes"] == {"epochs": {"from": 1, "to": 2}}
    capsys.readouterr()
    assert main(["sweep", str(config), "--out", str(out), "--epochs", "2"]) == 0
    assert "4 runs, 4 done, 0 to train or evaluate" in capsys.readouterr().err

    # another budget in the same folder is refused before anything runs: budgets are never mixed
    for args, clash in ((["--epochs", "2", "--limit", "32"], "limit 64 (the sweep: 32)"), (["--epochs", "1"], "epochs 2 (the sweep: 1)")):
        assert main(["sweep", str(config), "--out", str(out), *args]) == 1
        err = capsys.readouterr().err
        assert clash in err and "use another --out" in err and err.count("\n") == 1


@pytest.mark.slow  # trains runs in subprocesses
def test_a_failing_run_is_named_and_the_others_finish(tmp_path, capsys):
    text = TINY.replace('models = ["meme", "mmvae"]', 'models = ["meme"]').replace("latent_dim = 4\npseudo_samples = 4",
                                                                                 "latent_dim = 4\npseudo_samples = 100000")
    out = tmp_path / "out"
    assert main(["sweep", str(write(tmp_path, text)), "--out", str(out), "--quiet", "--jobs", "1"]) == 1
    err = capsys.readouterr().err
    assert "2 run(s) failed" in err and "meme-mnist-textured-f1-seed0" in err and err.count("\n") == 1
    log = (out / "logs" / "meme-mnist-textured-f1-seed0.log").read_text()
    assert "lower --pseudo-samples" in log


@pytest.mark.slow  # trains runs in subprocesses
def test_the_submitit_backend_runs_on_one_machine(tmp_path):
    pytest.importorskip("submitit")
    text = TINY.replace('models = ["meme", "mmvae"]', 'models = ["mmvae"]').replace("fractions = [1.0, 0.5]", "fractions = [1.0]")
    out = tmp_path / "out"
    assert main(["sweep", str(write(tmp_path, text)), "--out", str(out), "--backend", "submitit", "--quiet"]) == 0
    assert json.loads((out / "sweep.json").read_text())["runs"][0]["state"] == "evaluated"


def test_the_shipped_examples_are_listed(capsys):
    assert main(["sweep", "--list"]) == 0
    out = capsys.readouterr().out
    assert "table3-4" in out and "Tables 3 and 4" in out
    assert main(["sweep", "nonexistent"]) == 1
    assert "shipped examples: ablation-paired-only" in capsys.readouterr().err


HOSTILE = """[sweep]
models = ["meme", "mmvae"]
seeds = [1e9]
metrics = ["nope"]

[data]
limit = 150
paired_fraction = 0.5
rendering = "bright"
data_dr = "x"

[train]
lr = 0.001
batch_size = 32

[model_options.meme]
epochs = 2
limit = 150
bogus = 1

[model_options.mmvae]
latent_dim = 2.5
"""


def test_every_key_and_type_of_a_sweep_file_is_checked_before_anything_runs(tmp_path, capsys):
    with pytest.raises(sweeps.SweepError) as caught:
        sweeps.load_sweep(write(tmp_path, HOSTILE))
    assert caught.value.problems == [
        "[sweep] seeds must be a list of integers, got [1000000000.0]",
        "[sweep] metrics must be among coherence, cca-coherence, latent, relatedness, tsne, grids, likelihood, snr, mi, got ['nope']",
        "[data] limit: the grid sets it for each run; give limit in [sweep]",
        "[data] paired_fraction: the grid sets it for each run; give fractions in [sweep]",
        "[data] data_dr: no such option; did you mean data_dir?",
        "[train] lr: no such option; it is called learning_rate (memevae train's --lr)",
        "[model_options.meme] epochs: the grid sets it for each run; give epochs in [sweep]",
        "[model_options.meme] limit: the grid sets it for each run; give limit in [sweep]",
        "[model_options.meme] bogus: no such option; the options are architecture, classifier_samples, classifier_scale, "
        "combine, direction, estimator, kl, latent_dim, pseudo_samples",
        "[model_options.mmvae] latent_dim must be an integer, got 2.5"]
    assert main(["sweep", str(write(tmp_path, HOSTILE)), "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("memevae: error: sweep file") and "has 10 problems:" in err and err.count("\n") == 11
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("text,message", [
    ("[sweep]\nseeds = [4294967296]\n", "[sweep] seeds must be from 0 to 2**32 - 1, got [4294967296]"),
    ("[sweep]\n[train]\ntest_samples = 50\n", "[train] test_samples: memevae train takes no option for it, so a sweep cannot set it"),
    ("[sweep]\n[train]\nseed = 1\n", "[train] seed: the grid sets it for each run; give seeds in [sweep]"),
    ("[sweep]\n[model_options.meme]\nbatch_size = 64\n", "[model_options.meme] batch_size: not an option of [model_options.meme]; "
                                                        "it belongs in [train]"),
    ("[sweep]\n[model_options.mmvae]\nmodalities = '3'\n", "[model_options.mmvae] modalities: not an option of "
                                                          "[model_options.mmvae]; it belongs in [data]"),
    ("[sweep]\n[model_options.mmvae]\nlikelihood_weights = {mnist = 0.5}\n", "[model_options.mmvae] likelihood_weights: memevae "
                                                                             "train takes no option for it, so a sweep cannot set it"),
    ("[sweep]\n[model_options.meme]\npseudo_samples = 0\n", "[model_options.meme] pseudo_samples (N) must be >= 1, got 0"),
    ("[sweep]\n[vary.meme]\nlatent_dim = 8\n", "[vary.meme] latent_dim must be a list of the values to try, got 8"),
    ("[sweep]\n[vary.meme]\nlatent_dim = [8, 'x']\n", "[vary.meme] latent_dim must be an integer, got 'x'"),
    ("[sweep]\n[data]\nrendering = 'dim'\n", "[data] unknown textured rendering 'dim'"),
    ("[sweep]\nepochs = 'two'\n", "[sweep] epochs must be an integer, got 'two'"),
    ("[sweep]\njobs = 1.5\n", "[sweep] jobs must be an integer, got 1.5"),
])
def test_each_bad_key_or_value_is_named_with_its_table(tmp_path, text, message):
    with pytest.raises(sweeps.SweepError) as caught:
        sweeps.load_sweep(write(tmp_path, text))
    assert len(caught.value.problems) == 1 and caught.value.problems[0].startswith(message)


def test_a_typed_error_in_a_value_is_one_line(tmp_path, capsys):
    assert main(["sweep", str(write(tmp_path, TINY.replace("epochs = 1", 'epochs = "two"'))), "--out", str(tmp_path / "out")]) == 1
    assert capsys.readouterr().err.endswith(": [sweep] epochs must be an integer, got 'two'\n")


def test_every_option_of_a_sweep_reaches_its_runs(tmp_path):
    text = ("[sweep]\nmodels = ['mmvae']\n[presets]\nmmvae = 'official'\n[model_options.mmvae]\nlearn_prior = false\n"
            "[data]\nverify = false\n[train]\ntensorboard = true\nsubnormals = 'keep'\n")
    command = sweeps.expand(sweeps.load_sweep(write(tmp_path, text)))[0].train_command(resume=False)
    # each was dropped before: a false model option under a preset that sets it true, --no-verify, and these [train] keys
    assert {"--no-learn-prior", "--no-verify", "--tensorboard"} <= set(command)
    assert command[command.index("--subnormals") + 1] == "keep"
    from memevae.cli import build_parser
    assert build_parser().parse_args(command).learn_prior is False  # memevae train reads them as the sweep meant


@pytest.mark.parametrize("text,message", [
    ("[sweep]\nseeds = [0, 0]\n", "[sweep] seeds lists 0 more than once; give each value once"),
    ("[sweep]\nmodels = ['meme', 'mvae', 'meme']\n", "[sweep] models lists 'meme' more than once; give each value once"),
    ("[sweep]\nfractions = [1, 1.0]\n", "[sweep] fractions lists 1.0 more than once; give each value once"),
    ("[sweep]\n[vary.meme]\npseudo_samples = [4, 4]\n", "[vary.meme] pseudo_samples lists 4 more than once; give each value once"),
])
def test_duplicate_grid_entries_are_refused(tmp_path, text, message):
    with pytest.raises(sweeps.SweepError) as caught:
        sweeps.load_sweep(write(tmp_path, text))
    assert caught.value.problems == [message]


def test_runs_that_would_share_a_folder_are_refused(tmp_path):
    sweep = sweeps.load_sweep(write(tmp_path, "[sweep]\n[vary.meme]\nclassifier_scale = [1.0, -1.0]\n"))
    with pytest.raises(ValueError, match="would share the folder meme-mnist-textured-f1-seed0-classifierscale-1.0"):
        sweeps.expand(sweep)


@pytest.mark.parametrize("files", [{"notes.txt": "mine"}, {"sweep.json": '{"my": "data"}', "report/report.md": "mine"},
                                   {"sweep.json": "not json"}])
def test_a_folder_that_is_not_a_sweeps_is_never_written_to(tmp_path, capsys, files):
    out = tmp_path / "out"
    for name, text in files.items():
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_text(text)
    assert main(["sweep", str(write(tmp_path)), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "is not a memevae sweep folder" in err and "nothing was written" in err and err.count("\n") == 1
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()) == sorted(files)
    assert all((out / name).read_text() == text for name, text in files.items())


def test_a_sweeps_folder_is_marked_and_checked_as_a_runs_is(tmp_path, capsys, monkeypatch):
    from memevae.training.rundir import folder_kind, mark_folder

    monkeypatch.setattr(sweeps, "_execute", lambda sweep, left, states, progress: {})  # nothing trained
    out = tmp_path / "out"
    assert main(["sweep", str(write(tmp_path)), "--out", str(out), "--quiet"]) == 0
    assert folder_kind(out) == "sweep" and (out / "sweep.json").exists()
    (out / "sweep.json").unlink()  # the mark alone makes it the sweep's
    (out / "logs").mkdir()
    assert main(["sweep", str(write(tmp_path)), "--out", str(out), "--quiet"]) == 0
    run = tmp_path / "run"
    mark_folder(run, "run")
    capsys.readouterr()
    assert main(["sweep", str(write(tmp_path)), "--out", str(run), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert err == (f"memevae: error: --out {run} is the run folder memevae made there, so it cannot hold sweep outputs; "
                   f"choose another --out\n")


def _children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (Linux /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _alive(pid: int) -> bool:
    """Whether process ``pid`` runs (exists and is not a zombie)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the parent-death signal is Linux's")
def test_a_killed_sweep_takes_its_runs_with_it_and_a_held_run_is_named(tmp_path, capsys):
    out = tmp_path / "out"
    text = TINY.replace('models = ["meme", "mmvae"]', 'models = ["meme"]').replace("fractions = [1.0, 0.5]", "fractions = [1.0]")
    config = write(tmp_path, text.replace("epochs = 1", "epochs = 1000"))  # the shipped sample, 64 rows: it trains until killed
    sweep = subprocess.Popen([sys.executable, "-m", "memevae.cli", "sweep", str(config), "--out", str(out), "--quiet"],
                             env={**os.environ, "PYTHONPATH": str(Path(sweeps.__file__).parents[1])})
    children = []
    try:
        deadline = time.monotonic() + 120
        while not children and time.monotonic() < deadline and sweep.poll() is None:
            time.sleep(0.2)
            children = _children(sweep.pid)
        assert children, "the sweep started no run"
        sweep.kill()
        sweep.wait()
        deadline = time.monotonic() + 5
        while any(map(_alive, children)) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(map(_alive, children)), "a run outlived its sweep"
    finally:
        sweep.kill()
        for child in filter(_alive, children):  # only on failure: the run the sweep started
            os.kill(child, signal.SIGKILL)

    # a run held by another process (here: this one) is named in one line before anything runs
    from memevae.training.rundir import RunLock
    capsys.readouterr()
    with RunLock(out / "runs" / "meme-mnist-textured-f1-seed0"):
        assert main(["sweep", str(config), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert f"1 run(s) of {out} are in use by another process (meme-mnist-textured-f1-seed0: process {os.getpid()}" in err
    assert err.count("\n") == 1 and "wait for it to finish or stop it" in err
