"""compare: a candidate against the router in place, on the same logged decisions (paired).

Two separate estimates each carry the whole noise of the log. Their difference, taken decision by
decision on the same log and resampled together, does not: wherever the two routers would call
the same model, their terms are equal and cancel. That is what a decision to switch needs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from mmr_gym.ope.estimators import (
    Estimate,
    check_arguments,
    estimate_with_terms,
    ratio_interval,
)
from mmr_gym.ope.log import DecisionLog
from mmr_gym.ope.targets import target_probabilities


@dataclass(frozen=True)
class Comparison:
    """A candidate's estimate, a baseline's, and their paired difference (candidate minus baseline).

    Attributes:
        method: the per-decision method used for both.
        candidate, baseline: each policy's own :class:`~mmr_gym.ope.Estimate`.
        accuracy_difference, accuracy_difference_ci: candidate minus baseline accuracy, and the
            paired bootstrap interval of that difference.
        cost_difference, cost_difference_ci: the same for the mean cost per query (``cost_unit``).
    """

    method: str
    candidate: Estimate
    baseline: Estimate
    accuracy_difference: float
    accuracy_difference_ci: tuple[float, float]
    cost_difference: float
    cost_difference_ci: tuple[float, float]

    def verdict(self) -> str:
        """``"better"`` / ``"worse"`` when the accuracy difference's interval excludes 0, else ``"undecided"``."""
        low, high = self.accuracy_difference_ci
        return "better" if low > 0 else "worse" if high < 0 else "undecided"

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "candidate": self.candidate.to_dict(),
            "baseline": self.baseline.to_dict(),
            "accuracy_difference": self.accuracy_difference,
            "accuracy_difference_ci": list(self.accuracy_difference_ci),
            "cost_difference": self.cost_difference,
            "cost_difference_ci": list(self.cost_difference_ci),
            "verdict": self.verdict(),
        }

    def __str__(self) -> str:
        level = f"{self.candidate.confidence_level:.0%}"
        acc_low, acc_high = self.accuracy_difference_ci
        cost_low, cost_high = self.cost_difference_ci
        return (
            f"{self.method.upper()} candidate - baseline: accuracy {self.accuracy_difference:+.4f} ({level} CI "
            f"{acc_low:+.4f} to {acc_high:+.4f}), cost {self.cost_difference:+.4g} {self.candidate.cost_unit} "
            f"per query ({cost_low:+.4g} to {cost_high:+.4g}): {self.verdict()}"
        )


def compare(
    log: DecisionLog,
    candidate: Any,
    baseline: Any,
    method: str = "dr",
    *,
    env: Any = None,
    reward_model: Any = None,
    confidence_level: float = 0.95,
    n_resamples: int = 2000,
    bootstrap_unit: str = "episode",
    seed: int = 0,
    min_propensity: float = 1e-3,
    min_ess: float = 30.0,
) -> Comparison:
    """Estimate ``candidate`` and ``baseline`` on ``log`` and their difference, with a paired interval.

    Arguments as :func:`~mmr_gym.ope.estimate` (both policies are judged the same way; ``method``
    is ``"dm"``, ``"ips"``, ``"snips"`` or ``"dr"``). Replay is not offered: it accepts different
    decisions for each policy, so there is nothing to pair (estimate each separately).
    """
    if method == "replay":
        raise ValueError(
            "compare pairs per-decision estimates on the same logged decisions; replay accepts different "
            "decisions for each policy: estimate each with estimate(..., 'replay')"
        )
    probs = [target_probabilities(log, policy, env) for policy in (candidate, baseline)]
    confidence_level, n_resamples, seed, min_propensity, min_ess = check_arguments(
        log, method, bootstrap_unit, confidence_level, n_resamples, seed, min_propensity, min_ess
    )
    if hasattr(reward_model, "predict"):  # both are judged on the same logged queries: predict once
        reward_model = _PredictOnce(reward_model)
    estimates, terms = [], []
    for p in probs:  # each warns for itself; the terms are paired below
        judged = estimate_with_terms(
            log,
            p,
            method,
            reward_model,
            min_propensity,
            bootstrap_unit,
            confidence_level,
            n_resamples,
            seed,
            min_ess,
        )
        estimates.append(judged[0])
        terms.append(judged[1])
    units = terms[0].unit_ids  # the same units for both
    n_units = int(units.max()) + 1
    differences, intervals = [], []
    for metric in ("correct_num", "cost_num"):
        sums = [
            (
                np.bincount(units, weights=getattr(t, metric), minlength=n_units),
                np.bincount(units, weights=t.denominator, minlength=n_units),
            )
            for t in terms
        ]
        (num_c, den_c), (num_b, den_b) = sums
        differences.append(float(num_c.sum() / den_c.sum() - num_b.sum() / den_b.sum()))
        intervals.append(
            ratio_interval(num_c, den_c, confidence_level, n_resamples, seed, baseline=(num_b, den_b))
        )
    return Comparison(
        method, estimates[0], estimates[1], differences[0], intervals[0], differences[1], intervals[1]
    )


class _PredictOnce:
    """A reward model whose first prediction is kept: compare asks for it once per router, on the same
    logged queries (asked when the first router's estimate needs it, so errors come where they did)."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.predictions: Any = None

    def predict(self, queries: np.ndarray) -> Any:
        if self.predictions is None:
            self.predictions = self.model.predict(queries)
        return self.predictions
