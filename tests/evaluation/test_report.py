"""Report: runs grouped by (model, dataset, scheme, f), mean +- std over seeds, paper numbers beside."""

import json

import numpy as np
import pytest

from memevae.evaluation.paper.reference import paper_values
from memevae.evaluation.paper.report import Cell, read_run, summarise, write_report
from memevae.training.rundir import RunError


def fake_run(root, name, *, f=1.0, unpaired=None, seed=0, coherence=(0.5, 0.7), latent=(0.9, 0.6), model="meme",
             dataset="mnist-textured", rendering="bright", evaluated=True):
    other = "textured" if dataset == "mnist-textured" else "svhn"
    path = root / name
    (path / "evaluation").mkdir(parents=True)
    config = {"model": model, "model_options": {}, "model_config": {"modalities": {"mnist": "mnist-mlp", other: "svhn-conv"}},
              "data": {"dataset": dataset, "data_dir": None, "paired_fraction": f, "unpaired": unpaired, "paired_only": False,
                       "pairs_per_image": 1, "seed": seed, **({"rendering": rendering} if rendering else {})}, "train": {"epochs": 10}}
    (path / "config.json").write_text(json.dumps(config))
    if evaluated:
        metrics = {"modalities": ["mnist", other], "epoch": 10, "metrics": {
            "coherence": {"values": {f"mnist->{other}": coherence[0], f"{other}->mnist": coherence[1], "items": 500.0}},
            "latent": {"values": {"mnist": latent[0], other: latent[1], "train_items/mnist": 100.0}}}}
        (path / "evaluation" / "metrics.json").write_text(json.dumps(metrics))
    return path


@pytest.fixture
def runs(tmp_path):
    paths = [fake_run(tmp_path, f"full-{s}", seed=s, coherence=(c, 0.8)) for s, c in zip(range(3), (0.5, 0.6, 0.7))]
    paths += [fake_run(tmp_path, f"split-{s}", f=0.5, unpaired="split", seed=s, coherence=(c, 0.7)) for s, c in ((0, 0.40), (1, 0.44))]
    paths += [fake_run(tmp_path, "mnist-0", f=0.25, unpaired="mnist", coherence=(0.3, 0.6))]
    return paths


def test_cells_group_seeds_and_compute_mean_and_std(runs):
    records = [read_run(p) for p in runs]
    cells = summarise(records, "coherence", "mnist->textured")
    full = cells["meme", "mnist-textured/bright-v1", "full", 1.0]
    assert full.n == 3 and full.mean == pytest.approx(0.6) and full.std == pytest.approx(0.1)  # sample std (n - 1)
    split = cells["meme", "mnist-textured/bright-v1", "split", 0.5]
    assert split.mean == pytest.approx(0.42) and split.std == pytest.approx(np.std([0.40, 0.44], ddof=1))
    single = cells["meme", "mnist-textured/bright-v1", "mnist", 0.25]
    assert single.n == 1 and single.std is None and str(single) == "0.300 (n=1)"
    assert str(full) == "0.600 ± 0.100 (n=3)"


def test_renderings_are_reported_apart(runs, tmp_path):
    legacy = fake_run(tmp_path, "legacy", rendering=None, coherence=(0.11, 0.3))  # early memevae 0.1.0: no rendering recorded
    inverted = fake_run(tmp_path, "inverted", rendering="inverted", coherence=(0.13, 0.3))
    cells = summarise([read_run(p) for p in runs + [legacy, inverted]], "coherence", "mnist->textured")
    assert cells["meme", "mnist-textured/bright-v1", "full", 1.0].n == 3
    assert cells["meme", "mnist-textured/inverted-v1", "full", 1.0].values == [0.11, 0.13]
    text = write_report(runs + [legacy], tmp_path / "report").read_text()
    assert "## MNIST-Textured (bright-v1)" in text and "## MNIST-Textured (inverted-v1)" in text


def test_report_tables_figures_and_labels(runs, tmp_path):
    path = write_report(runs, tmp_path / "report")
    text = path.read_text()
    assert "## MNIST-Textured (bright-v1)" in text
    # Table 3 layout: scheme rows, f columns; the f = 1 runs fill the f = 1 column of every scheme row.
    assert "| model | f = 1 | f = 0.5 | f = 0.25 |" in text
    assert "| MEME_SPLIT (ours, MNIST-Textured (bright-v1)) | 0.600 ± 0.100 (n=3) | 0.420 ± 0.028 (n=2) | – |" in text
    assert "| MEME_MNIST (ours, MNIST-Textured (bright-v1)) | 0.600 ± 0.100 (n=3) | – | 0.300 (n=1) |" in text
    # paper rows beside ours, labelled as MNIST-SVHN; ours never claim MNIST-SVHN
    assert "| MEME_SPLIT (paper, MNIST-SVHN) | 0.625 ± 0.007 | 0.625 ± 0.008 | 0.503 ± 0.008 |" in text
    assert "| MEME_MNIST (paper, MNIST-SVHN) | 0.752 ± 0.004 | 0.715 ± 0.003 | 0.603 ± 0.018 |" in text
    assert not any("ours, MNIST-SVHN" in line for line in text.splitlines())
    assert "Latent accuracy (Table 4 layout)" in text and "| MEME_SPLIT (paper, MNIST-SVHN) | 0.908 ± 0.007 | 0.914 ± 0.003" in text
    for name in ("coherence-vs-f.png", "latent-accuracy-vs-f.png"):
        assert (tmp_path / "report" / name).stat().st_size > 10_000
        assert f"]({name})" in text


def test_one_run_is_plotted_on_the_whole_unit_interval_with_chance(tmp_path, saved_figures):
    """A single run's coherence and latent accuracy are not autoscaled to a sliver around its
    values (0.625-0.665 before): every panel spans [0, 1] and shows chance (0.1)."""
    write_report([fake_run(tmp_path, "one", coherence=(0.66, 0.625), latent=(0.9, 0.88))], tmp_path / "report")
    panels = [ax for figure in saved_figures for ax in figure.axes]
    assert len(panels) == 4  # two directions, two modalities
    for ax in panels:
        assert ax.get_ylim() == (0, 1)
        assert any(list(line.get_ydata()) == [0.1, 0.1] for line in ax.get_lines())


def test_report_legends_lie_outside_the_panels(tmp_path, saved_figures):
    """With every scheme of two models, MMVAE and the paper's rows (14 legend entries and chance),
    the legend is one per figure, below the panels, inside the image's width and readable."""
    paths = [fake_run(tmp_path, f"{model}-{scheme}-{f}", model=model, f=f, unpaired=scheme)
             for model in ("meme", "mvae") for scheme in ("mnist", "split", "textured") for f in (0.25, 0.0625)]
    paths += [fake_run(tmp_path, f"{model}-full", model=model) for model in ("meme", "mvae", "mmvae")]
    for path in paths:
        (path / "metrics.jsonl").write_text("".join(json.dumps({"epoch": e, "coherence/mnist->textured": 0.1 * e,
                                                                "coherence/textured->mnist": 0.1}) + "\n" for e in (1, 2)))
    write_report(paths, tmp_path / "report")
    assert len(saved_figures) == 3  # coherence and latent accuracy against f, coherence per epoch
    for figure in saved_figures:
        assert all(ax.get_legend() is None for ax in figure.axes)
        (legend,) = figure.legends
        box = legend.get_window_extent()
        assert not any(box.overlaps(ax.get_window_extent()) for ax in figure.axes)
        assert box.y1 <= min(ax.get_tightbbox().y0 for ax in figure.axes)  # below the panels and their labels
        assert 0 <= box.x0 and box.x1 <= figure.bbox.width
        assert min(text.get_fontsize() for text in legend.get_texts()) >= 7
    assert len(saved_figures[0].legends[0].get_texts()) == 15


def test_runs_without_results_are_listed_or_refused(runs, tmp_path):
    missing = fake_run(tmp_path, "pending", evaluated=False)
    text = write_report([*runs, missing], tmp_path / "r").read_text()
    assert "Not included" in text and "memevae evaluate" in text
    with pytest.raises(RunError, match="has not been evaluated"):
        write_report([*runs, missing], tmp_path / "r2", strict=True)
    with pytest.raises(RunError, match="no evaluated runs"):
        write_report([missing], tmp_path / "r3")


def test_datasets_are_reported_separately(tmp_path):
    a = fake_run(tmp_path, "t", dataset="mnist-textured")
    b = fake_run(tmp_path, "s", dataset="mnist-svhn", coherence=(0.62, 0.75))
    text = write_report([a, b], tmp_path / "r").read_text()
    assert "## MNIST-SVHN" in text and "## MNIST-Textured" in text
    assert "| MEME (ours, MNIST-SVHN) | 0.620 (n=1) |" in text
    assert (tmp_path / "r" / "coherence-vs-f-mnist-svhn.png").exists()


def test_paper_values_map_svhn_onto_the_runs_modality():
    ref = paper_values("meme", ("mnist", "textured"), "textured", 0.25)
    assert ref["dataset"] == "MNIST-SVHN"
    assert ref["coherence"]["mnist->textured"] == {"mean": 0.323, "std": 0.025, "paper_key": "MNIST->SVHN"}
    assert ref["coherence"]["textured->mnist"]["mean"] == 0.652
    assert ref["latent"]["mnist"]["mean"] == 0.870
    assert ref["latent"]["textured"] == {"mean": 0.295, "std": 0.025, "paper_key": "SVHN"}  # Table 4, MEME_SVHN at f = 0.25
    full = paper_values("mvae", ("mnist", "svhn"))
    assert full["coherence"]["mnist->svhn"]["mean"] == 0.123 and full["latent"]["svhn"]["mean"] == 0.131
    assert paper_values("mmvae", ("mnist", "svhn"), "split", 0.5)["coherence"] == {}


def test_cell_formatting():
    assert str(Cell([0.25, 0.35])) == "0.300 ± 0.071 (n=2)"


def cub_run(root, name, *, f=1.0, unpaired=None, seed=0, scores=(0.02, 0.03, 0.05), model="meme"):
    path = root / name
    (path / "evaluation").mkdir(parents=True)
    config = {"model": model, "model_options": {}, "model_config": {"modalities": {"image": "features-mlp", "caption": "caption-conv"}},
              "data": {"dataset": "cub", "data_dir": "cub", "features": "colour-hog", "paired_fraction": f, "unpaired": unpaired,
                       "paired_only": False, "pairs_per_image": 1, "seed": seed}, "train": {"epochs": 3}}
    (path / "config.json").write_text(json.dumps(config))
    values = {"image->caption": scores[0], "caption->image": scores[1], "ground_truth": scores[2], "items": 100.0}
    (path / "evaluation" / "metrics.json").write_text(json.dumps({"modalities": ["image", "caption"], "epoch": 3,
                                                                  "metrics": {"cca-coherence": {"values": values}}}))
    return path


def test_cub_runs_are_reported_in_table_5_layout_beside_the_papers_cub_numbers(tmp_path):
    paths = [cub_run(tmp_path, f"full-{s}", seed=s, scores=(0.02 + 0.01 * s, 0.03, 0.05)) for s in range(2)]
    paths.append(cub_run(tmp_path, "caption-0", f=0.5, unpaired="caption", scores=(0.01, 0.02, 0.05)))
    text = write_report(paths, tmp_path / "report").read_text()
    assert "## CUB (colour-hog)" in text and "### CCA coherence (Table 5 layout)" in text
    assert "| MEME_CAPTION (ours, CUB (colour-hog)) | 0.025 ± 0.007 (n=2) | 0.010 (n=1) |" in text
    assert "| MEME_CAPTION (paper, CUB, ResNet-101) | 0.064 ± 0.011 | 0.062 ± 0.006 |" in text  # image -> caption
    assert "| MEME_CAPTION (paper, CUB, ResNet-101) | 0.074 ± 0.001 | 0.059 ± 0.003 |" in text  # caption -> image
    assert "| MEME_CAPTION (paper, CUB, ResNet-101) | 0.106 ± 0.000 | 0.106 ± 0.000 |" in text  # ground truth
    assert "MNIST-SVHN |" not in text  # no digit numbers beside CUB


def test_many_modalities_are_summarised_by_subset_size(tmp_path):
    """Three modalities: coherence means by number of given modalities and leave-one-out, latent
    means by subset size, over seeds; no table per direction."""
    from memevae.evaluation.paper.report import RunRecord, build_report

    def record(seed, shift):
        coherence = {"a->b": 0.2, "a->c": 0.4, "b->a": 0.6, "b->c": 0.8, "c->a": 0.1, "c->b": 0.3,
                     "a+b->c": 0.5 + shift, "a+c->b": 0.7, "b+c->a": 0.9}
        latent = {"a": 0.5, "b": 0.7, "c": 0.9, "a+b": 0.6, "a+c": 0.6, "b+c": 0.9, "a+b+c": 0.95}
        return RunRecord(f"run{seed}", "meme", "toy", "full", 1.0, seed, ("a", "b", "c"),
                         {"coherence": coherence, "latent": latent}, 5)

    text = build_report([record(0, 0.0), record(1, 0.3)], tmp_path)
    assert "| MEME | 1 | 0.400 ± 0.000 (n=2) | 0.750 ± 0.071 (n=2) |" in text  # from 1: mean of six; from 2: (1.8 or 2.4) / 3
    assert "| MEME | 1 | 0.900 ± 0.000 (n=2) | 0.700 ± 0.000 (n=2) | 0.650 ± 0.212 (n=2) |" in text  # -> a, -> b, -> c
    assert "| MEME | 1 | 0.700 ± 0.000 (n=2) | 0.700 ± 0.000 (n=2) | 0.950 ± 0.000 (n=2) |" in text
    assert "**a → b**" not in text
    assert (tmp_path / "coherence-by-subset-size.png").stat().st_size > 0
    assert "![coherence against the number of given modalities](coherence-by-subset-size.png)" in text
    assert "no run with more than two modalities" in text and "MNIST-SVHN, on every" not in text  # the paper's budget is not claimed for it


def test_a_run_given_twice_is_counted_once(runs, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    full = runs[0]
    again = [full, str(full) + "/", f"./{full.name}", full.name]
    text = write_report(again + runs[1:], tmp_path / "report").read_text()
    assert f"{len(runs)} evaluated run(s)" in text and "0.600 ± 0.100 (n=3)" in text
    single = write_report(again, tmp_path / "single").read_text()
    assert "1 evaluated run(s)" in single and "0.500 (n=1)" in single


def test_a_metric_writes_its_own_section_and_columns(runs, tmp_path, monkeypatch):
    """Adding a metric is its module alone: its report() section and its report_columns appear in the report."""
    import memevae.evaluation.paper.report as report
    from memevae.evaluation.metric import Metric, metrics

    class Toy(Metric):
        name, description, order = "toy", "a toy measure", 25
        report_columns = (("score", "toy score"),)

        def report(self, part):
            return ["### Toy", "", f"{len(part.members)} runs on {part.dataset}, keys {part.keys('coherence')}", ""]

    monkeypatch.setattr(report, "metrics", lambda: {**metrics(), "toy": Toy})
    for path in runs:
        results = json.loads((path / "evaluation" / "metrics.json").read_text())
        results["metrics"]["toy"] = {"values": {"score": 0.25}}
        (path / "evaluation" / "metrics.json").write_text(json.dumps(results))
    text = write_report(runs, tmp_path / "report").read_text()
    assert ("### Toy\n\n6 runs on mnist-textured/bright-v1, keys ['mnist->textured', 'textured->mnist', 'items']\n\n"
            "### Other measures\n\n| group | toy score |") in text
    assert text.index("### Cross coherence") < text.index("### Toy") and "| MEME f=1 | 0.250 ± 0.000 (n=3) |" in text
