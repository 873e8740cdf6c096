"""Checks of constructor arguments: a wrong type or value is an error that names the argument.

Python's numbers are lenient in ways that hide mistakes: ``True`` is an ``int``, ``"0.5"`` compares
with nothing, ``float("nan")`` passes every ``<`` check. These helpers accept exactly the numbers a
parameter means (numpy scalars included, ``bool`` and strings never) and return them as plain
Python values.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

__all__ = ["MAX_TIME", "check_bool", "check_float", "check_int", "check_int_sequence"]

#: The largest time on a scenario's timeline (in queries): far beyond any deployment, and small
#: enough that timeline arithmetic stays in int64.
MAX_TIME = 2**53


def _describe(value: Any) -> str:
    return f"{value!r} ({type(value).__name__})"


def check_int(name: str, value: Any, *, low: int | None = None, high: int | None = None) -> int:
    """``value`` as an ``int`` in ``[low, high]``; a bool, a float or a string raises.

    Raises:
        TypeError: not an integer.
        ValueError: outside the range.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {_describe(value)}")
    value = int(value)
    if (low is not None and value < low) or (high is not None and value > high):
        bounds = f">= {low}" if high is None else (f"<= {high}" if low is None else f"in [{low}, {high}]")
        raise ValueError(f"{name} must be an integer {bounds}, got {value}")
    return value


def check_float(
    name: str,
    value: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """``value`` as a finite ``float`` within the bounds (open or closed); a bool or string raises.

    Raises:
        TypeError: not a real number.
        ValueError: NaN, infinite, or outside the bounds.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {_describe(value)}")
    value = float(value)
    too_low = low is not None and (value <= low if low_open else value < low)
    too_high = high is not None and (value >= high if high_open else value > high)
    if not math.isfinite(value) or too_low or too_high:
        parts = []
        if low is not None:
            parts.append(f"{'>' if low_open else '>='} {low:g}")
        if high is not None:
            parts.append(f"{'<' if high_open else '<='} {high:g}")
        bounds = f" {' and '.join(parts)}" if parts else ""
        raise ValueError(f"{name} must be a finite number{bounds}, got {value!r}")
    return value


def check_bool(name: str, value: Any) -> bool:
    """``value`` if it is a bool (numpy's included); ``0``, ``1`` or ``"yes"`` raise TypeError."""
    if not isinstance(value, bool) and type(value).__name__ != "bool_":
        raise TypeError(f"{name} must be True or False, got {_describe(value)}")
    return bool(value)


def check_int_sequence(name: str, value: Any, *, low: int = 1, allow_empty: bool = True) -> tuple[int, ...]:
    """``value`` as a tuple of ints each ``>= low`` (a list or tuple; a string or a lone int raises)."""
    if isinstance(value, str | bytes) or not isinstance(value, Sequence):
        raise TypeError(f"{name} must be a sequence of integers, got {_describe(value)}")
    if not value and not allow_empty:
        raise ValueError(f"{name} must not be empty")
    return tuple(check_int(f"{name}[{i}]", v, low=low) for i, v in enumerate(value))
