"""Actions: what an action is (a model index), and the error for one the mask forbids.

Both environments check actions here, so a bad action gets the same message from either.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["check_action", "masked_action_error"]


def check_action(action: Any, n_models: int) -> int:
    """One action as a model index in ``[0, n_models)``; anything else raises ``ValueError``.

    Integers (Python or numpy, any width) and 0-d or one-element integer arrays are actions;
    booleans, floats, strings and arrays of another shape are not.
    """
    if (type(action) is int or isinstance(action, np.integer)) and 0 <= action < n_models:
        return int(action)  # the common case, without numpy conversions
    array = np.asarray(action)
    if array.dtype.kind not in "iu" or array.size != 1 or array.ndim > 1 or isinstance(action, bool):
        raise ValueError(f"action must be an integer in [0, {n_models}), got {action!r}")
    value = int(array.reshape(-1)[0])  # Python int: a uint64 2**64-1 stays itself, never -1
    if not 0 <= value < n_models:
        raise ValueError(f"action must be an integer in [0, {n_models}), got {value}")
    return value


def masked_action_error(
    env: str, action: int, model: str, estimate: float, unit: str, remaining: float, allowed: list[int]
) -> ValueError:
    """The error of ``invalid_action="error"`` for a masked action (``env``: who took it)."""
    return ValueError(
        f"{env}action {action} ({model!r}) is masked: its estimated cost {estimate:.6g} {unit} exceeds "
        f"the remaining budget {remaining:.6g}; affordable actions: {allowed}"
    )
