"""docs/precision.md: every row of its float32/bf16 learning tables is what scripts/precision_parity.py
computes from the runs' records kept beside the page, and every figure it shows is there."""

import importlib.util
import re
from pathlib import Path

import pytest

from memevae.run import load_history

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "precision.md"
RECORDS = ROOT / "docs" / "precision" / "runs"


def precision_parity():
    spec = importlib.util.spec_from_file_location("precision_parity", ROOT / "scripts" / "precision_parity.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def page_tables() -> dict[str, list[str]]:
    """The rows (``| 1 | 0.110 | ...``) of each learning table on the page, by the model named in
    the paragraph that introduces it (``**MVAE**``, ``**MMVAE**``)."""
    tables, model = {}, None
    for line in PAGE.read_text().splitlines():
        if match := re.match(r"\*\*(\w+)\*\*", line):
            model = match.group(1).lower()
        elif model and re.match(r"\| \d+ \|", line):
            tables.setdefault(model, []).append(line)
    return tables


@pytest.mark.parametrize("model", ["mvae", "mmvae"])
def test_each_learning_table_row_is_computed_from_the_kept_records(model):
    script = precision_parity()
    rows = page_tables()[model]
    assert len(rows) >= 4
    histories = {precision: load_history(RECORDS / f"{model}-{precision}") for precision in script.PRECISIONS}
    computed = script.table(histories).splitlines()[2:]
    assert set(rows) <= set(computed), sorted(set(rows) - set(computed))


def test_every_figure_on_the_page_is_in_the_repository():
    figures = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", PAGE.read_text())
    assert figures
    for figure in figures:
        assert (PAGE.parent / figure).is_file(), figure
