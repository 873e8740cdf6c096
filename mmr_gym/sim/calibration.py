"""Calibration: the per-dataset scales that make a table's expected accuracies hit their targets.

For each dataset, :func:`calibrate_dataset` solves ``offset_d``, ``model_scale_d`` and
``hardness_scale_d`` so that the expected mean-over-models accuracy, best single model accuracy and
per-query oracle accuracy (:func:`expected_stats`, exact given the latents) equal the targets of
MMR-Bench Table 2. Root finding on expected values, no sampling: a deterministic function of the
latents. :class:`DatasetCalibration` records the result in a table's meta.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.optimize import brentq, root
from scipy.special import expit, log_expit

from mmr_gym.sim.config import DatasetSpec


@dataclass(frozen=True)
class DatasetCalibration:
    """The solved per-dataset scales and the expected statistics they give.

    ``offset`` [logit], ``model_scale`` [dimensionless], ``hardness_scale`` [logit per sd];
    ``expected_*`` and ``target_*`` are accuracies [fraction] (targets None when not calibrated);
    ``solver`` says how they were found (``"hybr"``, ``"gauss-seidel"`` or ``"defaults"``).
    """

    dataset: str
    offset: float
    model_scale: float
    hardness_scale: float
    expected_random: float
    expected_best: float
    expected_oracle: float
    target_random: float | None
    target_best: float | None
    target_oracle: float | None
    solver: str


def expected_stats(
    offset: float,
    model_scale: float,
    hardness_scale: float,
    standing: np.ndarray,
    base: np.ndarray,
    hardness: np.ndarray,
) -> tuple[float, float, float]:
    """Expected (mean-over-models, best-single, oracle) accuracy [fractions] given the latents.

    Args:
        offset: ``offset_d`` [logit].
        model_scale: ``model_scale_d`` [dimensionless].
        hardness_scale: ``hardness_scale_d`` [logit per sd].
        standing: ``c_md``, float64 ``[K]`` [logit].
        base: interaction plus idiosyncratic logit, float64 ``[n, K]`` [logit].
        hardness: ``h_q``, float64 ``[n]`` [sd].

    The expectation is over the Bernoulli draws only (the latents are fixed), so it is exact and
    deterministic; the oracle uses that outcomes are independent given the probabilities.
    """
    logits = offset + model_scale * standing[None, :] + base - hardness_scale * hardness[:, None]
    acc = expit(logits).mean(axis=0)
    # P(some model correct) = 1 - prod_m (1 - p_m), with log(1 - p) = log_expit(-logit) for accuracy.
    oracle = float(np.mean(-np.expm1(log_expit(-logits).sum(axis=1))))
    return float(acc.mean()), float(acc.max()), oracle


def _offset_for(target: float, pre: np.ndarray) -> float:
    """The ``offset`` [logit] with ``mean(expit(offset + pre)) == target``: safeguarded Newton.

    The mean is strictly increasing in the offset with derivative ``mean(p (1 - p))``, so Newton
    steps converge fast; a step that leaves the bracket is replaced by bisection.
    """
    low, high = -40.0, 40.0
    offset = float(np.log(target / (1.0 - target)) - pre.mean())
    for _ in range(200):
        p = expit(offset + pre)
        gap = float(p.mean()) - target
        if abs(gap) < 1e-14:
            break
        if gap > 0:
            high = offset
        else:
            low = offset
        slope = float((p * (1.0 - p)).mean())
        step = offset - gap / slope if slope > 0 else np.nan
        offset = step if low < step < high else 0.5 * (low + high)
        if high - low < 1e-13:
            break
    return offset


def _root(fn: Callable[[float], float], low: float, high: float, what: str) -> float:
    """Root of a monotone ``fn`` on ``[low, high]``; the nearer end (with a warning) if none inside."""
    f_low, f_high = fn(low), fn(high)
    if f_low == 0.0:
        return low
    if f_high == 0.0:
        return high
    if np.sign(f_low) == np.sign(f_high):
        warnings.warn(
            f"calibration: {what} cannot reach its target in [{low}, {high}]; clamped", stacklevel=3
        )
        return low if abs(f_low) < abs(f_high) else high
    return float(brentq(fn, low, high, xtol=1e-12, maxiter=200))


def calibrate_dataset(
    spec: DatasetSpec,
    standing: np.ndarray,
    base: np.ndarray,
    hardness: np.ndarray,
    *,
    tol: float = 1e-9,
) -> tuple[float, float, float, str]:
    """Solve ``(offset, model_scale, hardness_scale)`` so the expected stats hit ``spec``'s targets.

    The offset is solved exactly inside every evaluation (the mean-over-models accuracy is
    increasing in it), leaving two equations: the best single model's accuracy grows with
    ``model_scale`` (models spread apart) and the oracle's falls with ``hardness_scale`` (failures
    shared by all models). They are solved in log-parameters by Powell's hybrid method; should that
    fail, by Gauss-Seidel sweeps of one-dimensional Brent root finding. No sampling is involved, so
    the result is a deterministic function of the latents.

    Returns ``(offset, model_scale, hardness_scale, solver)``.
    """
    t_random, t_best, t_oracle = spec.target_random, spec.target_best, spec.target_oracle
    assert t_random is not None and t_best is not None and t_oracle is not None

    def solve(ms: float, hs: float) -> tuple[float, float, float]:
        """(offset, best gap, oracle gap) at the given scales, with the mean matched exactly."""
        pre = ms * standing[None, :] + base - hs * hardness[:, None]
        offset = _offset_for(t_random, pre)
        _, best, oracle = expected_stats(offset, ms, hs, standing, base, hardness)
        return offset, best - t_best, oracle - t_oracle

    def gaps(x: np.ndarray) -> np.ndarray:
        _, best_gap, oracle_gap = solve(math.exp(x[0]), math.exp(x[1]))
        return np.array([best_gap, oracle_gap])

    result = root(gaps, x0=np.array([0.0, math.log(1.5)]), method="hybr", options={"xtol": 1e-12})
    if result.success and np.max(np.abs(result.fun)) < tol:
        ms, hs = math.exp(result.x[0]), math.exp(result.x[1])
        return solve(ms, hs)[0], ms, hs, "hybr"

    ms, hs = 1.0, 1.5
    for _ in range(100):
        ms_new = _root(lambda x, hs=hs: solve(x, hs)[1], 0.0, 20.0, f"{spec.name} model_scale")
        hs_new = _root(lambda x, ms=ms_new: -solve(ms, x)[2], 0.0, 30.0, f"{spec.name} hardness_scale")
        done = abs(ms_new - ms) < tol and abs(hs_new - hs) < tol
        ms, hs = ms_new, hs_new
        if done:
            break
    return solve(ms, hs)[0], ms, hs, "gauss-seidel"
