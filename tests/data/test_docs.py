import doctest
import importlib

import pytest

MODULES = ["memevae.data", "memevae.data.config", "memevae.data.dataset", "memevae.data.formats", "memevae.data.pairs",
           "memevae.data.sets.polymnist", "memevae.data.sets.polymnist_textured", "memevae.data.registry", "memevae.data.schemes",
           "memevae.data.textured"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
