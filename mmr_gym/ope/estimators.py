"""The estimators: DM, IPS, SNIPS, DR (per decision) and replay (online), with bootstrap intervals.

For a target ``pi`` and logged decisions ``i`` (context ``x_i``, called model ``a_i`` with
propensity ``mu_i``, outcome ``y_i``: correctness or cost), with ``w_i = pi(a_i | x_i) / mu_i`` and a
reward model's predictions ``yhat(x, a)``:

- ``"dm"`` (direct method): ``mean_i sum_a pi(a|x_i) yhat(x_i, a)``: no weights, as good as the model;
- ``"ips"`` (inverse propensity scoring): ``mean_i w_i y_i``: unbiased when the propensities are right
  and the logger could call whatever the target calls;
- ``"snips"`` (self-normalised IPS): ``sum_i w_i y_i / sum_i w_i``: a ratio, slightly biased, much less
  variable when weights are large;
- ``"dr"`` (doubly robust): ``mean_i [sum_a pi(a|x_i) yhat(x_i, a) + w_i (y_i - yhat(x_i, a_i))]``:
  unbiased if either the propensities or the model are right, and less variable than IPS when the
  model is good;
- ``"replay"`` (Li et al., 2011): see :mod:`mmr_gym.ope.replay`.

Each returns the target's accuracy and its mean cost per query (the same formula with the call's
cost as outcome), a percentile bootstrap interval for each (``scipy.stats.bootstrap``; the unit
resampled is the logged *episode* by default, because a budget or a learning logger ties the
decisions of an episode together), and the effective sample size (Kish: ``(sum w)^2 / sum w^2``).

What the per-decision estimates mean: the target's expected outcome on the *logged contexts*, each
judged as the logger met it, budget state included (:mod:`mmr_gym.ope.targets`). For a target whose
choice does not depend on the budget state, and a log whose queries are drawn as the deployment
draws them, that is its online value. For a target that paces a budget, it is not: its own spending
would have led it to other budget states. Only replay estimates that online value without bias.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from scipy import stats

from mmr_gym.checks import check_float, check_int
from mmr_gym.ope.log import DecisionLog
from mmr_gym.ope.targets import target_probabilities

METHODS = ("dm", "ips", "snips", "dr", "replay")
BOOTSTRAP_UNITS = ("episode", "decision")
# Resampled units per scipy batch x resamples: keeps the bootstrap's index array near 8 MB.
_BATCH_ELEMENTS = 1_000_000


class OPEWarning(UserWarning):
    """An off-policy estimate that may not mean what it seems."""


class PropensityWarning(OPEWarning):
    """Some decisions the target agrees with were logged with a propensity near zero: huge weights."""


class SupportWarning(OPEWarning):
    """The target calls models the logger could not (or never did) call in the same contexts."""


class SmallSampleWarning(OPEWarning):
    """Too few effective decisions or resampling units for a reliable figure or interval."""


@dataclass(frozen=True)
class Estimate:
    """An off-policy estimate of a target's accuracy and mean cost per query, with intervals.

    Attributes:
        method: ``"dm"``, ``"ips"``, ``"snips"``, ``"dr"`` or ``"replay"``.
        estimand: ``"logged contexts"`` (the per-decision value on the logged contexts) or
            ``"online"`` (replay: the value of running the target, its own budget included).
        accuracy, accuracy_ci: the estimated mean correctness per query, and its bootstrap interval.
        cost, cost_ci: the estimated mean cost per query in ``cost_unit``, and its interval.
        ess: effective sample size: Kish's ``(sum w)^2 / sum w^2`` for IPS, SNIPS and DR (the
            decisions that carry the estimate); the number of decisions for DM; the accepted
            decisions for replay.
        n_logged: decisions in the log; n_used: decisions with a non-zero weight (replay: accepted).
        n_units: episodes (or decisions) the bootstrap resampled; bootstrap_unit says which.
        confidence_level: of the intervals (e.g. 0.95).
        warnings: the messages of the warnings raised while estimating.
    """

    method: str
    estimand: str
    accuracy: float
    accuracy_ci: tuple[float, float]
    cost: float
    cost_ci: tuple[float, float]
    cost_unit: str
    ess: float
    n_logged: int
    n_used: int
    n_units: int
    bootstrap_unit: str
    confidence_level: float
    warnings: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        record = asdict(self)
        record["accuracy_ci"], record["cost_ci"] = list(self.accuracy_ci), list(self.cost_ci)
        record["warnings"] = list(self.warnings)
        return record

    def __str__(self) -> str:
        level = f"{self.confidence_level:.0%}"
        return (
            f"{self.method.upper()}: accuracy {self.accuracy:.4f} ({level} CI {self.accuracy_ci[0]:.4f}-"
            f"{self.accuracy_ci[1]:.4f}), cost {self.cost:.4g} {self.cost_unit} per query "
            f"({self.cost_ci[0]:.4g}-{self.cost_ci[1]:.4g}); ESS {self.ess:.0f} of {self.n_logged} decisions"
        )


def estimate(
    log: DecisionLog,
    target: Any,
    method: str,
    *,
    env: Any = None,
    reward_model: Any = None,
    confidence_level: float = 0.95,
    n_resamples: int = 2000,
    bootstrap_unit: str = "episode",
    seed: int = 0,
    min_propensity: float = 1e-3,
    min_ess: float = 30.0,
) -> Estimate:
    """Estimate ``target``'s accuracy and mean cost per query from ``log``.

    Args:
        log: the logged decisions (:func:`~mmr_gym.ope.collect_log`, :func:`~mmr_gym.ope.read_log`,
            :func:`~mmr_gym.ope.read_minari`).
        target: for ``"dm"``, ``"ips"``, ``"snips"``, ``"dr"``: a policy (stochastic or not) or its
            probabilities ``[n, K]`` on the log (:func:`~mmr_gym.ope.target_probabilities`); for
            ``"replay"``: a :class:`~mmr_gym.policy.Policy`, which then acts and learns online.
        method: one of :data:`METHODS`.
        env: the environment the target would be deployed in (same table, models and episode
            length as the log), for ``begin_episode``; replay also takes its budget ratio and
            episode length from it. See :func:`~mmr_gym.ope.target_probabilities`.
        reward_model: for ``"dm"`` and ``"dr"``: anything with ``predict(X) -> (perf, cost)`` (the
            routers of ``agents.supervised``; ``X`` is the logged ``obs["query"]``), or the two
            arrays ``(perf, cost)`` ``[n, K]`` already predicted. Fit it on other data than the log.
        confidence_level: of the bootstrap intervals.
        n_resamples: bootstrap resamples.
        bootstrap_unit: ``"episode"`` (resample the logged episodes: right when the decisions of an
            episode depend on each other) or ``"decision"``.
        seed: seeds the bootstrap (and replay's rejection draws).
        min_propensity: warn (:class:`PropensityWarning`) when a decision the target agrees with was
            logged with a smaller propensity.
        min_ess: warn (:class:`SmallSampleWarning`) below this effective sample size.

    Raises:
        ValueError: unknown method or unit, a missing or misshapen reward model, a log too small for
            an interval (fewer than 2 units), or a target that never agrees with the logger (IPS,
            SNIPS, replay: no decision to estimate from).
    """
    confidence_level, n_resamples, seed, min_propensity, min_ess = check_arguments(
        log, method, bootstrap_unit, confidence_level, n_resamples, seed, min_propensity, min_ess
    )
    # The warnings point to this function's caller: their stacklevels count the frames in between.
    with _relayed_warnings() as caught:
        if method == "replay":
            from mmr_gym.ope.replay import replay_terms  # replay imports this module's warnings

            terms = replay_terms(log, target, env=env, seed=seed, bootstrap_unit=bootstrap_unit)
        else:
            probs = target_probabilities(log, target, env)
            terms = per_decision_terms(log, probs, method, reward_model, min_propensity)
            terms.unit, terms.unit_ids = bootstrap_unit, decision_units(log, bootstrap_unit)
        result = _summarise(log, method, terms, confidence_level, n_resamples, seed, min_ess)
    return Estimate(**result, warnings=_messages(caught))


def estimate_with_terms(
    log: DecisionLog,
    probs: np.ndarray,
    method: str,
    reward_model: Any,
    min_propensity: float,
    bootstrap_unit: str,
    confidence_level: float,
    n_resamples: int,
    seed: int,
    min_ess: float,
) -> tuple[Estimate, Terms]:
    """:func:`estimate` of the target probabilities ``probs`` by ``"dm"``, ``"ips"``, ``"snips"`` or
    ``"dr"`` (arguments already checked by :func:`check_arguments`), and the terms it summed, which
    :func:`~mmr_gym.ope.compare` pairs. Its warnings, like ``estimate``'s, point to its caller."""
    with _relayed_warnings() as caught:
        terms = per_decision_terms(log, probs, method, reward_model, min_propensity)
        terms.unit, terms.unit_ids = bootstrap_unit, decision_units(log, bootstrap_unit)
        result = _summarise(log, method, terms, confidence_level, n_resamples, seed, min_ess)
    return Estimate(**result, warnings=_messages(caught)), terms


def check_arguments(
    log: DecisionLog,
    method: str,
    bootstrap_unit: str,
    confidence_level: float,
    n_resamples: int,
    seed: int,
    min_propensity: float,
    min_ess: float,
) -> tuple[float, int, int, float, float]:
    """:func:`estimate`'s arguments checked (each error names its argument) and normalised:
    ``(confidence_level, n_resamples, seed, min_propensity, min_ess)``."""
    if not isinstance(log, DecisionLog):
        raise TypeError(
            f"log must be a DecisionLog (collect_log, read_log, read_minari), got {type(log).__name__}"
        )
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose from {list(METHODS)}")
    if bootstrap_unit not in BOOTSTRAP_UNITS:
        raise ValueError(f"unknown bootstrap_unit {bootstrap_unit!r}; choose from {list(BOOTSTRAP_UNITS)}")
    confidence_level = check_float(
        "confidence_level", confidence_level, low=0.0, high=1.0, low_open=True, high_open=True
    )
    n_resamples = check_int("n_resamples", n_resamples, low=1)
    seed = check_int("seed", seed, low=0)
    min_propensity = check_float("min_propensity", min_propensity, low=0.0, high=1.0)
    min_ess = check_float("min_ess", min_ess, low=0.0)
    return confidence_level, n_resamples, seed, min_propensity, min_ess


@contextlib.contextmanager
def _relayed_warnings() -> Iterator[list[warnings.WarningMessage]]:
    """Record the warnings raised inside (every OPE warning, even one shown before: an estimate keeps
    their messages), then raise them again under the caller's filters, also when an error follows."""
    caught: list[warnings.WarningMessage] = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", OPEWarning)
            yield caught
    finally:
        for caught_warning in caught:
            warnings.warn_explicit(
                caught_warning.message,
                caught_warning.category,
                caught_warning.filename,
                caught_warning.lineno,
            )


def _messages(caught: list[warnings.WarningMessage]) -> tuple[str, ...]:
    return tuple(str(w.message) for w in caught if issubclass(w.category, OPEWarning))


@dataclass
class Terms:
    """What an estimator sums, term by term: numerators of accuracy and cost and a common denominator.

    The estimate is ``sum(numerator) / sum(denominator)``; the bootstrap resamples the units
    (``unit_ids[i]`` is the unit of term ``i``, numbered from 0; ``unit`` names what a unit is).
    """

    unit: str
    unit_ids: np.ndarray
    correct_num: np.ndarray
    cost_num: np.ndarray
    denominator: np.ndarray
    ess: float
    n_used: int
    estimand: str = "logged contexts"


def per_decision_terms(
    log: DecisionLog, probs: np.ndarray, method: str, reward_model: Any, min_propensity: float
) -> Terms:
    """The terms of ``"dm"``, ``"ips"``, ``"snips"`` or ``"dr"`` for target probabilities ``probs``
    ``[n, K]``, one per logged decision (warns on support and propensities; see :func:`estimate`)."""
    n = len(log)
    rows = np.arange(n)
    weights = probs[rows, log.action] / log.propensity
    if method != "dm":
        _check_support(log, probs)
        _check_propensities(log, probs, weights, min_propensity)
        if not weights.any() and method in ("ips", "snips"):
            raise ValueError(
                f"{log.source}: the target never calls the model the logger called (every weight is 0): "
                f"{method.upper()} has nothing to estimate from; use DM or a log with overlap"
            )
    if method in ("dm", "dr"):
        perf, cost = _predictions(log, reward_model, method)
        model_correct = (probs * perf).sum(axis=1)
        model_cost = (probs * cost).sum(axis=1)
    if method == "dm":
        correct_terms, cost_terms, denominator = model_correct, model_cost, np.ones(n)
        ess, n_used = float(n), n
    else:
        ess = float(weights.sum() ** 2 / (weights**2).sum()) if weights.any() else 0.0
        n_used = int(np.count_nonzero(weights))
        if method == "ips":
            correct_terms, cost_terms, denominator = weights * log.correct, weights * log.cost, np.ones(n)
        elif method == "snips":
            correct_terms, cost_terms, denominator = weights * log.correct, weights * log.cost, weights
        else:  # dr
            residual_correct = log.correct - perf[rows, log.action]
            residual_cost = log.cost - cost[rows, log.action]
            correct_terms = model_correct + weights * residual_correct
            cost_terms = model_cost + weights * residual_cost
            denominator = np.ones(n)
    return Terms("decision", np.arange(n), correct_terms, cost_terms, denominator, ess, n_used)


def _predictions(log: DecisionLog, reward_model: Any, method: str) -> tuple[np.ndarray, np.ndarray]:
    if reward_model is None:
        raise ValueError(
            f"method {method!r} needs a reward_model: a fitted router (predict(X) -> (perf, cost)) "
            "or its predictions (perf, cost) on the logged queries"
        )
    if hasattr(reward_model, "predict"):
        predictions = reward_model.predict(log.observations["query"])
    else:
        predictions = reward_model
    if isinstance(predictions, str | bytes | np.ndarray) or not (
        isinstance(predictions, tuple | list) and len(predictions) == 2
    ):
        raise TypeError(
            "reward_model must be a fitted router (predict(X) -> (perf, cost)) or its two predicted arrays "
            f"(perf, cost), got {type(predictions).__name__}"
        )
    perf, cost = predictions
    perf, cost = np.asarray(perf, dtype=np.float64), np.asarray(cost, dtype=np.float64)
    shape = (len(log), log.n_models)
    if perf.shape != shape or cost.shape != shape:
        raise ValueError(
            f"reward_model predictions must be two arrays {shape}, got {perf.shape} and {cost.shape}"
        )
    if not (np.isfinite(perf).all() and np.isfinite(cost).all()):
        raise ValueError("reward_model predictions hold non-finite values")
    return perf, cost


def _check_support(log: DecisionLog, probs: np.ndarray) -> None:
    names = np.asarray(log.model_names)
    if log.behaviour_probs is not None:
        unsupported = probs * (log.behaviour_probs == 0)
        share = float(unsupported.sum(axis=1).mean())
        if share > 0:
            models = names[unsupported.sum(axis=0) > 0].tolist()
            warnings.warn(
                f"{log.source}: the target puts {share:.2%} of its probability (mean over the logged "
                f"decisions) on models the logger could not call in those contexts ({models}): "
                "IPS, SNIPS and DR never see those outcomes and are biased by up to that share",
                SupportWarning,
                stacklevel=4,
            )
        return
    never = np.bincount(log.action, minlength=log.n_models) == 0
    share = float(probs[:, never].sum(axis=1).mean())
    if share > 0:
        warnings.warn(
            f"{log.source}: the target puts {share:.2%} of its probability on models the logger never "
            f"called ({names[never & (probs.sum(axis=0) > 0)].tolist()}): IPS, SNIPS and DR are blind to them",
            SupportWarning,
            stacklevel=4,
        )


def _check_propensities(log: DecisionLog, probs: np.ndarray, weights: np.ndarray, minimum: float) -> None:
    small = (log.propensity < minimum) & (weights > 0)
    if small.any():
        row = int(np.flatnonzero(small)[np.argmax(weights[small])])
        warnings.warn(
            f"{log.source}: {int(small.sum())} decision(s) the target agrees with were logged with a propensity "
            f"below {minimum:g} (smallest {log.propensity[small].min():.3g}, at row {row}: episode "
            f"{log.episode[row]}, step {log.step[row]}); their weights, up to {weights[small].max():.4g}, "
            f"carry {weights[small].sum() / weights.sum():.1%} of the total weight",
            PropensityWarning,
            stacklevel=4,
        )


def _summarise(
    log: DecisionLog,
    method: str,
    terms: Terms,
    confidence_level: float,
    n_resamples: int,
    seed: int,
    min_ess: float,
) -> dict[str, Any]:
    unit_ids = terms.unit_ids
    n_units = int(unit_ids.max()) + 1 if unit_ids.size else 0
    if n_units < 2:
        raise ValueError(
            f"{log.source}: {n_units} {terms.unit}(s) to resample: an interval needs at least 2 "
            + ("(with one long episode, try bootstrap_unit='decision')" if terms.unit == "episode" else "")
        )
    sums = [np.bincount(unit_ids, weights=v, minlength=n_units) for v in (terms.correct_num, terms.cost_num)]
    denominator = np.bincount(unit_ids, weights=terms.denominator, minlength=n_units)
    if terms.ess < min_ess:
        warnings.warn(
            f"{log.source}: {method.upper()} rests on an effective sample of {terms.ess:.1f} decisions "
            f"(fewer than {min_ess:g}): the figure and its interval are unreliable; log more decisions",
            SmallSampleWarning,
            stacklevel=3,
        )
    if n_units < 10:
        warnings.warn(
            f"{log.source}: the bootstrap resamples only {n_units} {terms.unit}s: the interval is unreliable",
            SmallSampleWarning,
            stacklevel=3,
        )
    values, intervals = [], []
    for numerator in sums:
        values.append(float(numerator.sum() / denominator.sum()))
        intervals.append(ratio_interval(numerator, denominator, confidence_level, n_resamples, seed))
    if any(math.isnan(bound) for interval in intervals for bound in interval):
        warnings.warn(
            f"{log.source}: some bootstrap resamples hold no decision the target agrees with, so "
            f"{method.upper()} is undefined there and its interval is NaN: the log is too small",
            SmallSampleWarning,
            stacklevel=3,
        )
    return {
        "method": method,
        "estimand": terms.estimand,
        "accuracy": values[0],
        "accuracy_ci": intervals[0],
        "cost": values[1],
        "cost_ci": intervals[1],
        "cost_unit": log.cost_unit,
        "ess": terms.ess,
        "n_logged": len(log),
        "n_used": terms.n_used,
        "n_units": n_units,
        "bootstrap_unit": terms.unit,
        "confidence_level": confidence_level,
    }


def decision_units(log: DecisionLog, unit: str) -> np.ndarray:
    """Per logged decision, the index of its resampling unit: its episode (numbered from 0), or itself."""
    if unit == "episode":
        return np.unique(log.episode, return_inverse=True)[1]
    return np.arange(len(log))


def ratio_interval(
    numerator: np.ndarray,
    denominator: np.ndarray,
    level: float,
    n_resamples: int,
    seed: int,
    baseline: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[float, float]:
    """Percentile bootstrap interval of ``sum(numerator) / sum(denominator)`` over the units.

    With ``baseline = (numerator_b, denominator_b)`` (the same units): of the difference
    ``sum(numerator) / sum(denominator) - sum(numerator_b) / sum(denominator_b)``, both resampled
    together (a paired bootstrap). The same seed resamples the same units.
    """

    def statistic(*arrays: np.ndarray, axis: int = -1) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            value = arrays[0].sum(axis=axis) / arrays[1].sum(axis=axis)
            if len(arrays) == 4:
                value = value - arrays[2].sum(axis=axis) / arrays[3].sum(axis=axis)
        return value

    data = (numerator, denominator) if baseline is None else (numerator, denominator, *baseline)
    with warnings.catch_warnings():
        # NaN resamples (SNIPS without a matching decision) are reported by the caller, in its words.
        warnings.simplefilter("ignore", stats.DegenerateDataWarning)
        result = stats.bootstrap(
            data,
            statistic,
            paired=True,
            vectorized=True,
            n_resamples=n_resamples,
            batch=max(1, _BATCH_ELEMENTS // numerator.size),
            confidence_level=level,
            method="percentile",
            rng=np.random.default_rng(seed),
        )
    low, high = result.confidence_interval
    return float(low), float(high)
