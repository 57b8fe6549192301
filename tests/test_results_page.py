"""docs/results.md: every run its tables count has its record in the repository, and every number and
verdict on the page is what scripts/results_page.py computes from those records."""

import importlib.util
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "results.md"


def results_page():
    spec = importlib.util.spec_from_file_location("results_page", ROOT / "scripts" / "results_page.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def listed_runs() -> list[str]:
    """The runs of the page's Runs table (``| results/runs/<name> | ...``)."""
    return re.findall(r"^\| results/runs/([^ |]+) \|", PAGE.read_text(), flags=re.MULTILINE)


def tracked_files(folder: str) -> set[str] | None:
    """The files git tracks under ``folder``; None outside a git checkout."""
    if not (shutil.which("git") and (ROOT / ".git").exists()):
        return None
    listing = subprocess.run(["git", "ls-files", folder], cwd=ROOT, capture_output=True, text=True)
    return set(listing.stdout.split()) if listing.returncode == 0 else None


def test_every_run_the_page_counts_has_its_record_in_git():
    runs = listed_runs()
    assert runs, "the page lists no runs"
    module = results_page()
    tracked = tracked_files("docs/results/runs")
    for name in runs:
        for file in module.RECORD_FILES:
            path = ROOT / "docs" / "results" / "runs" / name / file
            assert path.is_file(), f"{path} is missing"
            if tracked is not None:
                assert str(path.relative_to(ROOT)) in tracked, f"{path} is not in git"
    assert sorted(runs) == sorted(p.name for p in module.RECORDS.iterdir()), "records and the page's runs differ"


def test_the_page_is_what_its_records_give(tmp_path):
    module = results_page()
    assert module.page(module.records(), tmp_path) == PAGE.read_text(), (
        "docs/results.md differs from its records: run python scripts/results_page.py")


def test_verdicts_follow_the_numbers():
    """The claim rules on cells made up for the purpose: a verdict changes when the numbers do."""
    module = results_page()
    from memevae.evaluation.paper.report import Cell

    class Fixed:
        def __init__(self, values):
            self.values = values

        def get(self, model, f, metric, key, scheme="full"):
            found = self.values.get((model, f if f < 1 else 1, metric, key, scheme if f < 1 else "full"))
            return None if found is None else Cell(list(found))

    high, low = (0.6, 0.62), (0.3, 0.32)
    values = {("meme", 1, "coherence", k, "full"): high for k in (module.TO_TEXTURED, module.TO_MNIST)}
    values.update({(m, 1, "coherence", k, "full"): low for m in ("mmvae", "mvae") for k in (module.TO_TEXTURED, module.TO_MNIST)})
    first = module.claims(Fixed(values))[0]
    assert "**Held**" in first and "0.610 ± 0.014" in first
    values[("mvae", 1, "coherence", module.TO_MNIST, "full")] = (0.7, 0.72)
    assert "**Held in 3 of 4 comparisons**" in module.claims(Fixed(values))[0]
    assert "**Not measured yet.**" in module.claims(Fixed({}))[1]


def test_flatness_compares_window_means_not_single_epochs():
    """One noisy epoch at the end does not make a flat curve look like it moves, and a steady rise
    of 0.01 an epoch counts as not flat (5 epochs apart: +0.05)."""
    module = results_page()
    noisy = {e: 0.8 + (0.03 if e % 2 else -0.03) for e in range(1, 31)}
    noisy[30] = 0.74
    assert abs(module.window_change(noisy, 30)) <= module.FLAT
    rising = {e: 0.3 + 0.01 * e for e in range(1, 31)}
    assert module.window_change(rising, 30) > module.FLAT
    assert module.window_change(rising, 9) != module.window_change(rising, 9)  # nan: shorter than two windows


def test_a_spike_is_an_epoch_whose_paired_loss_is_many_times_the_runs_median(tmp_path, monkeypatch):
    """Epoch 4's loss of 2e5 against a median of 1.6e4 is a spike; 9x the median (epoch 2) is not."""
    import json

    from memevae.evaluation.paper.report import RunRecord

    module = results_page()
    losses = [16000.0, 9 * 16000.0, 15900.0, 2e5, 16100.0, 15800.0]
    run = tmp_path / "meme-x-seed0"
    run.mkdir()
    (run / "metrics.jsonl").write_text("".join(json.dumps({"epoch": e + 1, "train/paired/loss": loss}) + "\n"
                                               for e, loss in enumerate(losses)))
    monkeypatch.setattr(module, "RECORDS", tmp_path)
    record = RunRecord(str(run), "meme", module.DATASET, "split", 0.0625, 0, ("mnist", "textured"), {})
    assert module.spikes(record) == [4]


def _record(module, model, f, scheme, seed, coherence):
    from memevae.evaluation.paper.report import RunRecord

    values = {"coherence": {module.TO_TEXTURED: coherence, module.TO_MNIST: coherence}}
    return RunRecord(f"runs/{model}-{f}-{scheme}-{seed}", model, module.DATASET, "full" if f == 1 else scheme, f, seed,
                     ("mnist", "textured"), values)


def test_a_third_seed_goes_to_the_groups_whose_seeds_disagree(tmp_path):
    from memevae.sweeps import expand, load_sweep

    module = results_page()
    recs = [_record(module, "meme", 0.25, "split", 0, 0.6), _record(module, "mvae", 0.25, "split", 0, 0.4),
            _record(module, "meme", 0.25, "split", 1, 0.3), _record(module, "mvae", 0.25, "split", 1, 0.5),
            _record(module, "meme", 0.25, "mnist", 0, 0.6), _record(module, "mvae", 0.25, "mnist", 0, 0.4),
            _record(module, "meme", 0.25, "mnist", 1, 0.7), _record(module, "mvae", 0.25, "mnist", 1, 0.5)]
    cells = module.Cells(recs)
    found = module.disagreements(cells)
    assert [d for d, _, _ in found] == [f"claim 2, {arrow}, split scheme, f = 0.25: MEME above MVAE"
                                        for arrow in ("mnist → textured", "textured → mnist")]
    assert found[0][1] == pytest.approx({0: 0.2, 1: -0.2})
    assert module.third_seed_groups(cells) == [("meme", 0.25, "split"), ("mvae", 0.25, "split")]
    paths = module.third_seed_sweeps(cells, tmp_path)
    runs = [spec.path.name for path in paths for spec in expand(load_sweep(path))]
    assert runs == ["meme-mnist-textured-f0.25-split-seed2", "mvae-mnist-textured-f0.25-split-seed2"]
    assert "seed 0 +0.200, seed 1 -0.200" in "\n".join(module.seed_section(cells))
    # once seed 2 is there, the group is not asked for again
    recs += [_record(module, "meme", 0.25, "split", 2, 0.6), _record(module, "mvae", 0.25, "split", 2, 0.5)]
    assert module.third_seed_groups(module.Cells(recs)) == []


def test_a_run_trained_past_its_evaluation_is_not_collected(tmp_path):
    """A sweep that raised its epochs trains a run past its evaluated epoch: its record would pair
    the new curve with the old evaluation, so it is left out until it is evaluated again."""
    import json

    module = results_page()
    run = tmp_path / "runs" / "meme-x-seed0"
    (run / "evaluation").mkdir(parents=True)
    (run / "config.json").write_text("{}")
    (run / "metrics.jsonl").write_text("".join(json.dumps({"epoch": e}) + "\n" for e in (1, 2, 3)))
    assert not module.settled(run)  # not evaluated yet
    (run / "evaluation" / "metrics.json").write_text(json.dumps({"epoch": 2}))
    assert not module.settled(run)
    (run / "evaluation" / "metrics.json").write_text(json.dumps({"epoch": 3}))
    assert module.settled(run)


def test_each_group_of_the_page_is_trained_by_one_sweep_file():
    """MEME and MVAE at f = 1/16 have their own, longer budget; no group is in two grids (two
    budgets for one run folder) or in none."""
    from memevae.sweeps import load_sweep

    module = results_page()
    sweeps = [load_sweep(file) for file in module.SWEEPS.glob("*.toml")]
    groups = [("meme", f) for f in (1.0, 0.25, 0.0625)] + [("mvae", f) for f in (1.0, 0.25, 0.0625)] + [("mmvae", 1.0)]
    for model, f in groups:
        assert sum(model in s.models and f in s.fractions for s in sweeps) == 1, (model, f)
    assert module.budget("meme", 0.0625) > module.budget("meme", 0.25)
    assert module.budget("mvae", 0.0625) == module.budget("meme", 0.0625)
    with pytest.raises(ValueError, match="no sweep file"):
        module.sweep_file("mmvae", 0.25)


def test_a_variants_runs_are_recorded_apart_from_the_grid(tmp_path):
    """--collect routes each run by the training options its config.json records: the clipped
    variant's runs to its folder, default ones to the grid's records, and one that matches neither
    (clipped at another bound) is refused rather than mixed into the grid the claims are judged on."""
    import json

    module = results_page()
    assert any(name == "clip-grad-norm" for name, _, _ in module.variants())

    def run(clip):
        folder = tmp_path / f"clip-{clip}"
        folder.mkdir()
        (folder / "config.json").write_text(json.dumps({"train": {"epochs": 100, "clip_grad_norm": clip}}))
        return folder

    assert module.destination(run(None)) == module.RECORDS
    assert module.destination(run(1e5)) == module.VARIANTS / "clip-grad-norm" / "runs"
    with pytest.raises(SystemExit, match=r"clip_grad_norm = 3\.0\) match neither the page's grid nor a variant"):
        module.destination(run(3.0))


def test_every_variant_record_is_in_git():
    module = results_page()
    tracked = tracked_files("docs/results/variants")
    for name, _, _ in module.variants():
        for run in (module.VARIANTS / name / "runs").glob("*"):
            for file in module.RECORD_FILES:
                path = run / file
                assert path.is_file(), f"{path} is missing"
                if tracked is not None:
                    assert str(path.relative_to(ROOT)) in tracked, f"{path} is not in git"


def test_the_queue_lists_exactly_the_runs_not_recorded_at_their_budget(tmp_path):
    """--queue writes what scripts/session_queue.sh reads: one "model fraction scheme seed grid"
    line per run of the grid or a variant still to record (missing, or recorded before its budget's
    last epoch), each naming a sweep file that exists."""
    module = results_page()
    assert module.main(["--queue", str(tmp_path / "queue")]) == 0
    lines = (tmp_path / "queue").read_text().splitlines()
    recs = module.records()
    done = {r.path.rsplit("/", 1)[-1] for r in recs if r.epoch == module.budget(r.model, r.fraction)}
    grid = [name for name in module.expected_runs() if name not in done]
    variant = [spec.path.name for name, _, sweep in module.variants() for spec in module.expand(sweep)
               if not (module.VARIANTS / name / "runs" / spec.path.name).exists()]
    assert len(lines) == len(grid) + len(variant)
    for line in lines:
        model, fraction, scheme, seed, file = line.split()
        assert model in ("meme", "mvae", "mmvae") and float(fraction) in (1.0, 0.25, 0.0625) and int(seed) >= 0
        assert scheme in module.SCHEMES and (module.SWEEPS / file).is_file()
    if "meme-mnist-textured-f1-seed0" in done:
        assert not any(line.startswith("meme 1.0 ") and line.split()[3] == "0" for line in lines)
