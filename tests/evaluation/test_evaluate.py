"""End to end: a tiny trained run on the shipped sample, judges trained by the CLI, `memevae
evaluate` / `report`. One module-scoped run serves every test here: one epoch on 640 sample pairs
(``DataConfig(limit=640)``; evaluation still uses all 500 sample test pairs), a few seconds."""

import json
import os
import sys

import pytest

from memevae.cli import main
from memevae.evaluation import evaluate
from memevae.evaluation.metric import Metric, metrics
from memevae.evaluation.pipeline import results_path

FAST = {"latent": {"train_items": 600}, "tsne": {"points": 200}}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    import memevae
    from memevae import DataConfig, TrainConfig

    root = tmp_path_factory.mktemp("e2e")
    run = memevae.train(root / "run", data=DataConfig(limit=640), training=TrainConfig(epochs=1, batch_size=64, test_samples=200),
                        model_options={"latent_dim": 8}, progress=False)
    judges = root / "judges"
    assert main(["judges", "train", "--out", str(judges), "--epochs", "1", "--max-items", "300", "--quiet"]) == 0
    return run, judges


def test_judges_train_writes_weights_and_records(trained):
    _, judges = trained
    for modality in ("mnist", "textured"):
        record = json.loads((judges / f"{modality}.json").read_text())
        assert record["trained_on"]["split"] == "train" and record["trained_on"]["dataset"] == "mnist-textured"
        assert record["train_items"] == 300 and record["test_items"] == 500
        assert len(record["sha256"]) == 64 and (judges / f"{modality}.pt").exists()
        # the recorded accuracy is the judge's on the test split (known answer: recomputed here)
        from memevae.data import load_pairs
        from memevae.evaluation.judges import accuracy, load_judge

        images, labels = load_pairs("mnist-textured", "test").examples(modality)
        assert record["test_accuracy"] == accuracy(load_judge(judges, modality), images, labels)


def test_evaluate_writes_metrics_json_and_figures(trained, monkeypatch):
    run, judges = trained
    replaced = []
    real_replace = os.replace
    monkeypatch.setattr("memevae.io.os.replace", lambda src, dst: (replaced.append(str(dst)), real_replace(src, dst))[1])
    results = evaluate(run, judges=judges, options=FAST, progress=False)
    path = results_path(run.path)
    assert str(path) in replaced  # written through a temporary file and a rename
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]
    on_disk = json.loads(path.read_text())
    assert on_disk == json.loads(json.dumps(results))
    assert set(on_disk["metrics"]) == {"coherence", "latent", "relatedness", "tsne", "grids"}
    for entry in on_disk["metrics"].values():
        assert entry["wall_time_s"] > 0
    values = on_disk["metrics"]["coherence"]["values"]
    from memevae.evaluation.judges import load_judges
    from memevae.evaluation.metrics.coherence import cross_coherence

    direct = cross_coherence(run.model, run.data_config.load("test"), load_judges(judges, ["mnist", "textured"]),
                             seed=0, progress=False)
    assert values == direct and values["items"] == 500  # the pipeline computes exactly the metric, on all test pairs
    assert on_disk["metrics"]["latent"]["values"]["train_items/mnist"] == 600
    assert on_disk["dataset_label"] == "MNIST-Textured (bright-v1)" and on_disk["data_variant"] == "mnist-textured/bright-v1"
    assert on_disk["reference"]["dataset"] == "MNIST-SVHN" and "MNIST-Textured" in on_disk["reference"]["note"]
    assert on_disk["reference"]["coherence"]["mnist->textured"]["mean"] == 0.625
    assert on_disk["classifiers"]["mnist"]["trained_on"]["split"] == "train"
    figures = run.path / "evaluation" / "figures"
    for name in ("relatedness-histogram.png", "relatedness-classes.png", "tsne.png", "generation.png",
                 "translate-mnist-to-textured.png", "translate-textured-to-mnist.png"):
        assert (figures / name).stat().st_size > 5_000, name
    assert "evaluation/figures/tsne.png" in on_disk["metrics"]["tsne"]["figures"]


def test_a_failing_metric_keeps_the_finished_ones(trained, monkeypatch):
    run, judges = trained

    class Broken(Metric):
        name, description = "broken", "always fails"

        def compute(self, context, options):
            raise RuntimeError("boom")

    monkeypatch.setattr("memevae.evaluation.pipeline.registered", lambda: {**metrics(), "broken": Broken})
    with pytest.raises(RuntimeError, match="boom"):
        evaluate(run, metrics=["relatedness", "broken"], classifiers=judges, progress=False)  # the former keyword
    saved = json.loads(results_path(run.path).read_text())
    assert "relatedness" in saved["metrics"]


def test_cli_evaluate_merges_and_reports(trained, capsys, tmp_path):
    run, judges = trained
    assert main(["evaluate", str(run.path), "--metrics", "coherence", "--judges", str(judges), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "coherence" in out and "MNIST-Textured (bright-v1) results written to" in out
    saved = json.loads(results_path(run.path).read_text())
    assert "coherence" in saved["metrics"] and "relatedness" in saved["metrics"]  # earlier results of this checkpoint kept
    assert main(["report", str(run.path), "--out", str(tmp_path / "report")]) == 0
    text = (tmp_path / "report" / "report.md").read_text()
    assert "MEME (ours, MNIST-Textured (bright-v1))" in text and "MEME (paper, MNIST-SVHN) | 0.625 ± 0.007" in text
    assert "![coherence per epoch](coherence-per-epoch.png)" in text and (tmp_path / "report" / "coherence-per-epoch.png").exists()
    assert "Budget: 1 epoch(s) per run, 640 training rows per run" in text


def test_cli_evaluate_without_judges_names_the_command(trained, capsys, tmp_path):
    run, _ = trained
    code = main(["evaluate", str(run.path), "--metrics", "coherence", "--classifiers", str(tmp_path / "none")])  # former option
    err = capsys.readouterr().err
    assert code == 1
    assert "memevae judges train --dataset mnist-textured" in err and err.count("\n") == 1


def test_cli_evaluate_rejects_unknown_metrics_and_options(trained, capsys):
    run, _ = trained
    assert main(["evaluate", str(run.path), "--metrics", "coherence,nonsense"]) == 1
    assert "unknown metric(s) nonsense" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # options are typed flags from each metric's Options dataclass
        main(["evaluate", str(run.path), "--metrics", "grids", "--tsne-points", "many"])
    assert "invalid int value: 'many'" in capsys.readouterr().err
    with pytest.raises(ValueError, match="metric 'tsne' has no option.*pionts.*points"):
        evaluate(run, metrics="tsne", options={"tsne": {"pionts": 10}}, progress=False)


def test_likelihood_is_wired_in_lazily(trained):
    run, _ = trained
    results = evaluate(run, metrics="likelihood", options={"likelihood": {"samples": 4, "max_items": 8}}, progress=False)
    values = results["metrics"]["likelihood"]["values"]
    assert values["items"] == 8 and set(values["estimates"]) == {"mnist->textured", "textured->mnist"}
    assert "per_item" not in values["estimates"]["mnist->textured"]  # long per-item lists stay out of metrics.json


def test_cli_metric_options_reach_the_metric_and_are_recorded(trained, capsys):
    run, _ = trained
    assert main(["evaluate", str(run.path), "--metrics", "likelihood", "--likelihood-samples", "3", "--likelihood-max-items", "5",
                 "--no-likelihood-joint", "--quiet"]) == 0
    entry = json.loads(results_path(run.path).read_text())["metrics"]["likelihood"]
    assert entry["values"]["items"] == 5 and entry["values"]["samples"] == 3
    assert entry["options"] == {"samples": 3, "max_items": 5, "joint": False}  # what differs from the defaults
    assert "joint" not in entry["values"]["estimates"]["mnist->textured"]


def test_snr_runs_as_a_metric_and_draws_its_figure(trained):
    run, _ = trained
    results = evaluate(run, metrics="snr", options={"snr": {"steps": 2, "every": 1, "repeats": 2, "batch_size": 8,
                                                            "estimators": "full"}}, progress=False)
    entry = results["metrics"]["snr"]
    assert entry["values"]["curves"]["full"]["step"] == [0, 1, 2]
    assert "evaluation/figures/snr.png" in entry["figures"]
    with pytest.raises(ValueError, match="unknown estimators 'dreg'"):
        evaluate(run, metrics="snr", options={"snr": {"estimators": "dreg"}}, progress=False)


def test_evaluate_falls_back_to_the_shipped_judges(trained, tmp_path, monkeypatch):
    """No judges trained in the default folder: the ones shipped for the run's data variant serve,
    as they serve the per-epoch coherence of training."""
    run, _ = trained
    monkeypatch.setattr("memevae.evaluation.judges.cache_root", lambda: tmp_path / "empty-cache")
    results = evaluate(run, metrics="coherence", progress=False, write=False)
    assert all(len(info["sha256"]) == 64 for info in results["classifiers"].values())
    from memevae.evaluation.judges import shipped_judges_dir

    shipped = json.loads((shipped_judges_dir("mnist-textured/bright-v1") / "mnist.json").read_text())
    assert results["classifiers"]["mnist"]["sha256"] == shipped["sha256"]


# -- results are never silently lost ----------------------------------------------------------


class Constant(Metric):
    name, description = "constant", "a fixed value (known answer)"

    def compute(self, context, options):
        return {"value": 1.0}


class Other(Constant):
    name = "other"


def fake_metrics(monkeypatch, *added):
    monkeypatch.setattr("memevae.evaluation.pipeline.registered", lambda: {**metrics(), **{m.name: m for m in added}})


@pytest.fixture
def run_copy(trained, tmp_path):
    """A copy of the trained run (its own evaluation folder), with a ``previous`` checkpoint."""
    import shutil

    run, _ = trained
    path = tmp_path / "run"
    shutil.copytree(run.path, path, ignore=shutil.ignore_patterns("evaluation"))
    shutil.copy(path / "checkpoints" / "last.pt", path / "checkpoints" / "previous.pt")
    return path


def one_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("memevae: error: ") and "Traceback" not in err, err
    return err


def test_each_checkpoint_has_its_own_results(run_copy, monkeypatch, capsys, tmp_path):
    fake_metrics(monkeypatch, Constant)
    assert main(["evaluate", str(run_copy), "--metrics", "constant,grids", "--quiet"]) == 0
    last = json.loads(results_path(run_copy).read_text())
    assert main(["evaluate", str(run_copy), "--metrics", "constant,grids", "--checkpoint", "previous", "--quiet"]) == 0
    assert f"results written to {run_copy / 'evaluation' / 'metrics-previous.json'}" in capsys.readouterr().out
    assert json.loads(results_path(run_copy).read_text()) == last and last["checkpoint"] == "last"
    previous = json.loads(results_path(run_copy, "previous").read_text())
    assert previous["checkpoint"] == "previous" and set(previous["metrics"]) == {"constant", "grids"}
    assert all(name.startswith("evaluation/figures-previous/") for name in previous["metrics"]["grids"]["figures"])
    assert all(name.startswith("evaluation/figures/") for name in last["metrics"]["grids"]["figures"])
    from memevae.evaluation.paper.report import read_run

    assert read_run(run_copy).metrics["constant"] == last["metrics"]["constant"]["values"]  # reports read those of last


def test_an_evaluation_finishing_meanwhile_keeps_its_metrics(run_copy, monkeypatch):
    class Slow(Constant):
        name = "slow"

        def compute(self, context, options):  # another evaluation of the run starts and finishes meanwhile
            evaluate(run_copy, metrics=["other"], progress=False)
            return super().compute(context, options)

    fake_metrics(monkeypatch, Slow, Other)
    results = evaluate(run_copy, metrics=["slow"], progress=False)
    assert set(results["metrics"]) == {"slow", "other"}
    assert set(json.loads(results_path(run_copy).read_text())["metrics"]) == {"slow", "other"}


def test_writers_at_once_wait_for_each_other(tmp_path, monkeypatch):
    import threading
    import time

    from memevae import io
    from memevae.evaluation.pipeline import save_results

    path = tmp_path / "evaluation" / "metrics.json"
    identity = {"checkpoint": "last", "epoch": 1, "model": "meme"}
    real, writing = io.write_json, threading.Event()

    def slow_write(target, obj):  # the first writer stays inside its write for a while
        if "first" in obj["metrics"]:
            writing.set()
            time.sleep(0.5)
        return real(target, obj)

    monkeypatch.setattr(io, "write_json", slow_write)
    first = threading.Thread(target=save_results, args=(path, {**identity, "metrics": {"first": {"values": 1}}}))
    first.start()
    assert writing.wait(10)
    save_results(path, {**identity, "metrics": {"second": {"values": 2}}})
    first.join()
    assert json.loads(path.read_text())["metrics"] == {"first": {"values": 1}, "second": {"values": 2}}


def test_evaluate_a_read_only_run_with_out(run_copy, monkeypatch, capsys, tmp_path):
    import stat

    fake_metrics(monkeypatch, Constant)
    run_copy.chmod(0o555)
    if os.geteuid() == 0:  # permission bits do not bind root: answer as access(2) does for any other user
        real = os.access
        monkeypatch.setattr(os, "access", lambda path, mode, **kw: False if mode & os.W_OK and not os.stat(path).st_mode & stat.S_IWUSR
                            else real(path, mode, **kw))
    try:
        assert main(["evaluate", str(run_copy), "--metrics", "constant", "--quiet"]) == 1
        assert f"cannot write into {run_copy} (this user may not write into it); write the results elsewhere with --out DIR" \
               in one_line(capsys)
        out = tmp_path / "results"
        assert main(["evaluate", str(run_copy), "--metrics", "constant,grids", "--out", str(out), "--quiet"]) == 0
        assert f"results written to {out / 'metrics.json'}" in capsys.readouterr().out
        saved = json.loads((out / "metrics.json").read_text())
        assert saved["metrics"]["constant"]["values"] == {"value": 1.0}
        assert saved["metrics"]["grids"]["figures"] and all(name.startswith(str(out / "figures")) for name in saved["metrics"]["grids"]["figures"])
        assert not (run_copy / "evaluation").exists()
        assert main(["evaluate", str(run_copy), "--metrics", "constant", "--out", str(out), "--quiet"]) == 0  # its own folder again
    finally:
        run_copy.chmod(0o755)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("mine")
    assert main(["evaluate", str(run_copy), "--metrics", "constant", "--out", str(tmp_path / "mine"), "--quiet"]) == 1
    assert "holds files memevae did not write (notes.txt)" in one_line(capsys)
    assert [p.name for p in (tmp_path / "mine").iterdir()] == ["notes.txt"]


def test_a_full_disk_during_evaluate(run_copy, monkeypatch, capsys):
    import errno

    from memevae import io

    fake_metrics(monkeypatch, Constant, Other)
    real, calls = io.atomic_write, {"n": 0}

    def disk_fills_up(path, write, mode="wb", **options):
        if path.name == "metrics.json":
            calls["n"] += 1
            if calls["n"] == 2:
                def half_then_full(handle):
                    handle.write("{")
                    raise OSError(errno.ENOSPC, "No space left on device")
                return real(path, half_then_full, mode, **options)
        return real(path, write, mode, **options)

    monkeypatch.setattr(io, "atomic_write", disk_fills_up)
    assert main(["evaluate", str(run_copy), "--metrics", "constant,other", "--quiet"]) == 1
    err = one_line(capsys)
    assert f"could not write {results_path(run_copy)} (No space left on device); the file was not changed and still holds " \
           "constant; the results of other were not saved: free some space or write them elsewhere with --out DIR" in err
    assert set(json.loads(results_path(run_copy).read_text())["metrics"]) == {"constant"}

    class Drawing(Constant):
        name = "drawing"

        def compute(self, context, options):
            raise OSError(errno.ENOSPC, "No space left on device", str(context.figures_dir / "drawing.png"))

    fake_metrics(monkeypatch, Drawing)
    assert main(["evaluate", str(run_copy), "--metrics", "drawing", "--quiet"]) == 1
    assert f"drawing could not write {run_copy / 'evaluation' / 'figures' / 'drawing.png'} (No space left on device)" in one_line(capsys)


@pytest.mark.parametrize("module, metric, package", [("sklearn", None, "scikit-learn"), ("sklearn", "coherence,latent", "scikit-learn"),
                                                     ("gpytorch", "coherence,mi", "gpytorch")])
def test_missing_eval_packages_are_named_before_any_metric_runs(run_copy, trained, monkeypatch, capsys, module, metric, package):
    monkeypatch.setitem(sys.modules, module, None)  # as after a plain pip install memevae
    command = ["evaluate", str(run_copy), "--judges", str(trained[1]), "--quiet"] + (["--metrics", metric] if metric else [])
    assert main(command) == 1
    err = one_line(capsys)
    needing = {None: "latent, relatedness, tsne need", "coherence,latent": "latent needs", "coherence,mi": "mi needs"}[metric]
    assert f'{needing} {package}, which is not installed: pip install "memevae[eval]"' in err
    assert not (run_copy / "evaluation").exists()  # nothing ran, nothing was written
