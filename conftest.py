"""Collection settings for the doctests of src/ (the default run adds ``--doctest-modules``)."""

# Its examples change process-wide settings; tests/training/test_cpu.py runs them in a fresh process.
collect_ignore = ["src/memevae/training/cpu.py"]


def pytest_ignore_collect(collection_path, config):
    """The tests' conftest.py files load as plugins; collected again for doctests, two of the same
    name clash. They hold no doctests."""
    if collection_path.name == "conftest.py" and "tests" in collection_path.parts:
        return True
    return None
