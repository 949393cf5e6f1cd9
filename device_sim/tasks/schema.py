"""How a pipeline file's keys are described: key -> (type, check, meaning), where `meaning` (a string, or a
function returning one) completes "x = value is not ..." in the error. The stage's own keys
(device_sim.pipelines) and every task's sections (device_sim.tasks) are written with these."""

from __future__ import annotations

import math

__all__ = ["num", "whole", "ints", "floats", "BOOL", "OUTPUT", "ANGLE", "ANY_NUMBER"]


def num(check, meaning):
    """A finite number (an integer is accepted) for which check(value) holds."""
    return (float, lambda v: math.isfinite(v) and check(v), meaning)


def whole(lo: int, hi: int):
    return (int, lambda v: lo <= v <= hi, f"{lo}..{hi}")


def ints(n: int):
    return (list, lambda v: len(v) == n and all(isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in v),
            f"{n} whole numbers >= 0")


def floats(n: int, check=lambda v: True, each: str = ""):
    return (list, lambda v: len(v) == n and all(isinstance(x, (int, float)) and not isinstance(x, bool)
                                                and math.isfinite(x) and check(x) for x in v),
            f"{n} numbers" + (f", each {each}" if each else ""))


BOOL = (bool, lambda v: True, "true or false")
OUTPUT = whole(0, 63)                                  # an output tensor's index
ANGLE = num(lambda v: abs(v) <= 360, "degrees, -360..360")
ANY_NUMBER = num(lambda v: True, "a number")
