"""Sweeps: the grid expansion, the sweep file's checks, and a tiny sweep trained, resumed, skipped
and reported end to end."""

import json

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
test_samples = 50

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
    assert command[command.index("--modalities") + 1] == "3" and command[command.index("--unpaired") + 1] == "m2+m0"
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
    ("[sweep]\nepoch = 3\n", "has no option(s) epoch"),
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
