"""The package's layers: no import runs up them, and evaluation never names a concrete model.

Layers, lowest first: the core (``io``, ``tensorfile``, ``options``, ``distributions``, ``objectives``), ``data``,
``modalities``, ``models``, ``training``, then ``runs`` and ``evaluation`` (one level: a run
measures itself while training, and evaluation loads runs), then ``cli``. Every import counts,
including those inside functions.
"""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "memevae"
LEVELS = {"io": 0, "tensorfile": 0, "options": 0, "distributions": 0, "objectives": 0, "data": 1, "modalities": 2, "models": 3, "training": 4,
          "runs": 5, "evaluation": 5, "sweeps": 5, "cli": 6}
CONCRETE_MODELS = {"MEME", "MVAE", "MMVAE", "MEMEConfig", "MVAEConfig", "MMVAEConfig"}


def modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if len(parts) > 1:  # the package's own __init__ re-exports the public API
            yield path, parts, path.name == "__init__.py"


def imports(path: Path, parts: tuple, is_package: bool):
    """(absolute module, imported names) of every import in the file."""
    package = parts if is_package else parts[:-1]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, ()
        elif isinstance(node, ast.ImportFrom):
            base = list(package[: len(package) - node.level + 1]) if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            yield module, tuple(alias.name for alias in node.names)


def level(module: str, names=()) -> int | None:
    parts = module.split(".")
    if parts[0] != "memevae":
        return None
    if len(parts) == 1:  # `from memevae import x`: the name decides
        return max((LEVELS.get(name, 0) for name in names), default=0)
    return LEVELS[parts[1]]


@pytest.mark.parametrize("path,parts,is_package", list(modules()), ids=lambda v: "/".join(v) if isinstance(v, tuple) else None)
def test_no_import_runs_up_the_layers(path, parts, is_package):
    own = LEVELS[parts[1]]
    upward = [module for module, names in imports(path, parts, is_package) if (lvl := level(module, names)) is not None and lvl > own]
    assert not upward, f"{'/'.join(parts)} (layer {own}) imports {upward} from a higher layer"


def test_evaluation_never_names_a_concrete_model():
    for path, parts, is_package in modules():
        if parts[1] != "evaluation":
            continue
        named = {name for module, names in imports(path, parts, is_package) if module.startswith("memevae.models") for name in names}
        assert not named & CONCRETE_MODELS, f"{'/'.join(parts)} imports {sorted(named & CONCRETE_MODELS)}"


def test_the_check_sees_an_upward_import(tmp_path):
    """The checker itself: a data module importing the models is caught."""
    source = tmp_path / "bad.py"
    source.write_text("def f():\n    from ..models import MEME\n")
    found = list(imports(source, ("memevae", "data", "bad"), False))
    assert found == [("memevae.models", ("MEME",))] and level(*found[0]) > LEVELS["data"]
