"""The package's layers: no import runs up them, no import circle, and evaluation never names a
concrete model.

Layers, lowest first: the core (``io``, ``tensorfile``, ``options``, ``distributions``, ``objectives``,
``version``), ``data``, ``modalities``, ``models``, ``training``, then ``run`` (a run directory loaded),
``evaluation`` (which loads runs), the training entry ``runs`` with the callbacks a run measures
itself with while training (``monitor``) and ``sweeps``, then ``cli``. Every import counts,
including those inside functions.
"""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "memevae"
LEVELS = {"io": 0, "tensorfile": 0, "options": 0, "distributions": 0, "objectives": 0, "version": 0, "data": 1, "modalities": 2,
          "models": 3, "training": 4, "run": 5, "evaluation": 6, "runs": 7, "monitor": 7, "sweeps": 7, "cli": 8}
CONCRETE_MODELS = {"MEME", "MVAE", "MMVAE", "MEMEConfig", "MVAEConfig", "MMVAEConfig"}


def modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if len(parts) > 1:  # the package's own __init__ re-exports the public API
            yield path, parts, path.name == "__init__.py"


def import_graph(package: Path = PACKAGE) -> dict[str, set[str]]:
    """{module: the modules of the package it imports} of every module of ``package`` (its own
    ``__init__`` too), imports inside functions included; ``from X import name`` imports the
    module X.name where that is one, else X."""
    files = {}
    for path in sorted(package.rglob("*.py")):
        parts = path.relative_to(package.parent).with_suffix("").parts
        files[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = (path, parts)
    graph = {}
    for name, (path, parts) in files.items():
        is_package = path.name == "__init__.py"
        graph[name] = set()
        for module, names in imports(path, parts[:-1] if is_package else parts, is_package):
            targets = [f"{module}.{n}" for n in names if f"{module}.{n}" in files] or [module]
            graph[name] |= {target for target in targets if target in files and target != name}
    return graph


def find_circle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle of ``graph`` (its modules in order, the first repeated at the end), or None."""
    done, path = set(), []

    def visit(module):
        if module in path:
            return path[path.index(module):] + [module]
        if module in done:
            return None
        path.append(module)
        for target in sorted(graph[module]):
            if circle := visit(target):
                return circle
        path.pop()
        done.add(module)
        return None

    for module in sorted(graph):
        if circle := visit(module):
            return circle
    return None


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


def test_the_package_has_no_import_circle():
    circle = find_circle(import_graph())
    assert circle is None, "import circle: " + " -> ".join(circle)


def test_the_circle_check_finds_a_circle_through_a_function(tmp_path):
    """The checker itself: a import inside a function that closes a circle is found."""
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from .sub import b\n")
    (package / "sub" / "__init__.py").write_text("")
    (package / "sub" / "b.py").write_text("def f():\n    from ..a import g\n")
    graph = import_graph(package)
    assert graph["pkg.a"] == {"pkg.sub.b"} and graph["pkg.sub.b"] == {"pkg.a"}
    assert find_circle(graph) == ["pkg.a", "pkg.sub.b", "pkg.a"]
    (package / "sub" / "b.py").write_text("def f():\n    from .. import sub\n")
    assert find_circle(import_graph(package)) is None


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
