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
    Returns float32 of shape ``(..., 3)``.
    """
    spend = np.asarray(spend, dtype=np.float64)
    total = np.asarray(total, dtype=np.float64)
    remaining = np.maximum(total - spend, 0.0)
    bounded = np.isfinite(total)
    with np.errstate(invalid="ignore", divide="ignore"):
        fraction = np.where(bounded, remaining / np.where(bounded, total, 1.0), 1.0)
        per_query = np.where(
            bounded, remaining / (np.maximum(remaining_steps, 1) * c_ref), SPEND_PER_QUERY_CLIP
        )
    steps = np.asarray(remaining_steps, dtype=np.float64) / np.asarray(length, dtype=np.float64)
    out = np.stack(
        [np.clip(fraction, 0.0, 1.0), steps, np.clip(per_query, 0.0, SPEND_PER_QUERY_CLIP)], axis=-1
    )
    return out.astype(np.float32)


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
        return affordable(estimates, self.remaining)

    def charge(self, cost: float) -> None:
        self.spend += cost

    def features(self, remaining_steps: int) -> np.ndarray:
        total = np.inf if self.total is None else self.total
        return budget_features(self.spend, total, remaining_steps, self.length, self.c_ref)
