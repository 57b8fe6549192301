import pytest


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """Every fault test runs torch on one thread (see the one_thread fixture)."""
    yield
