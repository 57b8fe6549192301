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


def test_every_run_the_page_counts_has_its_record_in_git():
    runs = listed_runs()
    assert runs, "the page lists no runs"
    module = results_page()
    tracked = None
    if shutil.which("git") and (ROOT / ".git").exists():
        listing = subprocess.run(["git", "ls-files", "docs/results/runs"], cwd=ROOT, capture_output=True, text=True)
        tracked = set(listing.stdout.split()) if listing.returncode == 0 else None
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
