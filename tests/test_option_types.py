"""Typed options: values of another type than their field's are one-line errors naming the field."""

import re
from dataclasses import dataclass, field
from typing import Literal

import pytest

from memevae.options import build


@dataclass
class Options:
    points: int = 10
    scale: float = 1.0
    name: str | None = None
    kind: Literal["a", "b"] = "a"
    sizes: list[int] = field(default_factory=list)
    betas: tuple[float, float] = (0.9, 0.999)


@pytest.mark.parametrize("values,message", [
    ({"points": "many"}, "points must be an integer, got 'many'"),
    ({"points": 1e3}, "points must be an integer, got 1000.0"),
    ({"points": True}, "points must be an integer, got True"),
    ({"scale": "1"}, "scale must be a number, got '1'"),
    ({"name": 3}, "name must be text or None, got 3"),
    ({"sizes": [1, 2.5]}, "sizes must be a list of integers, got [1, 2.5]"),
    ({"betas": [0.9]}, "betas must be a list of 2 values, got [0.9]"),
])
def test_a_value_of_another_type_is_a_one_line_error(values, message):
    with pytest.raises(ValueError, match=f"^options: {re.escape(message)}$"):
        build(Options, values, "options")


def test_values_of_the_right_type_build():
    from memevae.options import fits

    built = build(Options, {"points": 3, "scale": 2, "name": None, "sizes": (1, 2), "betas": [0.5, 0.6]}, "options")
    assert built.points == 3 and built.scale == 2 and built.sizes == (1, 2)
    with pytest.raises(ValueError, match="unknown kind 'c'; choose one of a, b"):  # a choice is still check_choices's to name
        build(Options, {"kind": "c"}, "options")
    assert fits(None, int | None) and not fits(1.5, int | None) and fits(1, float) and not fits(True, float)
