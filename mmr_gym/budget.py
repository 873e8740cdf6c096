"""The budget rule, in one place: what is affordable, what is charged, what the agent sees of it.

The functions work on scalars and on arrays (the vectorized environment broadcasts them).
"""

from __future__ import annotations

import numpy as np

BUDGET_FEATURES = 3
# Per-query affordable spend is shown relative to c_ref and clipped here: beyond ten reference
# calls per query every model is affordable on every MMR-Bench-like table, so larger values add nothing.
SPEND_PER_QUERY_CLIP = 10.0
# Relative slack for float32 costs summed in float64: a model whose estimate equals the remaining
# budget up to rounding is affordable.
_TOLERANCE = 1e-9


def affordable(estimates: np.ndarray, remaining: np.ndarray | float) -> np.ndarray:
    """Boolean mask of the models whose cost estimate fits the remaining budget (``inf``: no budget)."""
    remaining = np.asarray(remaining, dtype=np.float64)
    return estimates <= (remaining + _TOLERANCE * np.abs(remaining))[..., None]


def budget_features(
    spend: np.ndarray | float,
    total: np.ndarray | float,
    remaining_steps: np.ndarray | int,
    length: np.ndarray | int,
    c_ref: float,
) -> np.ndarray:
    """``[remaining budget fraction, remaining steps fraction, spend per remaining query / c_ref]``.

    ``total = inf`` means no budget: the features are then ``[1, steps fraction, clip]``.
    Returns float32 of shape ``(..., 3)``. (The vectorized environment's hot path: few numpy calls.)
    """
    total = np.asarray(total, dtype=np.float64)
    remaining = np.maximum(total - spend, 0.0)  # >= 0, inf without a budget
    with np.errstate(invalid="ignore"):
        fraction = np.fmin(remaining / total, 1.0)  # no budget: inf / inf = NaN, and fmin(NaN, 1) = 1
    # remaining >= 0, so clipping to [0, clip] is a minimum; no budget (inf) becomes the clip value.
    per_query = np.minimum(remaining / (np.maximum(remaining_steps, 1) * c_ref), SPEND_PER_QUERY_CLIP)
    steps = np.true_divide(remaining_steps, length)
    out = np.empty((*np.broadcast(fraction, steps).shape, BUDGET_FEATURES), dtype=np.float32)
    out[..., 0] = fraction
    out[..., 1] = steps
    out[..., 2] = per_query
    return out


class Budget:
    """One episode's budget: ``ratio * length * c_ref`` in the table's cost unit, or none.

    Spend is charged at the realized cost. An API call cannot be undone, so a call whose
    realized cost exceeds what was left is still charged and the excess recorded as ``overrun``.
    """

    def __init__(self, ratio: float | None, length: int, c_ref: float) -> None:
        self.ratio = ratio
        self.length = length
        self.c_ref = c_ref
        self.total: float | None = None if ratio is None else float(ratio) * length * c_ref
        self.spend = 0.0

    @staticmethod
    def feature_high() -> np.ndarray:
        return np.array([1.0, 1.0, SPEND_PER_QUERY_CLIP], dtype=np.float32)

    @property
    def remaining(self) -> float:
        """Budget left (``inf`` without a budget); never negative."""
        return np.inf if self.total is None else max(self.total - self.spend, 0.0)

    @property
    def overrun(self) -> float:
        """Spend beyond the budget (0 unless the last call overshot)."""
        if self.total is None:
            return 0.0
        excess = self.spend - self.total
        return excess if excess > _TOLERANCE * self.total else 0.0

    def affordable(self, estimates: np.ndarray) -> np.ndarray:
        # The scalar form of affordable(): a Python float threshold costs no extra numpy call.
        remaining = self.remaining
        return estimates <= remaining + _TOLERANCE * abs(remaining)

    def charge(self, cost: float) -> None:
        self.spend += cost

    def features(self, remaining_steps: int) -> np.ndarray:
        """The scalar form of :func:`budget_features` (Python floats are float64: the same bits)."""
        if self.total is None:
            fraction, per_query = 1.0, SPEND_PER_QUERY_CLIP
        else:
            remaining = max(self.total - self.spend, 0.0)
            fraction = min(remaining / self.total, 1.0)
            per_query = min(remaining / (max(remaining_steps, 1) * self.c_ref), SPEND_PER_QUERY_CLIP)
        return np.array((fraction, remaining_steps / self.length, per_query), dtype=np.float32)
