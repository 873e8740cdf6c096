"""Off-policy evaluation: judge a new router from the decisions an old one logged.

A production router leaves a log, not an outcome table: per query, the model it called, with what
probability, whether the answer was right and what it cost. :mod:`mmr_gym.ope` estimates from such
a log how another router (the *target*) would have done, and, because mmr-gym's tables hold every
model's outcome, every estimate can be checked against the truth (``benchmarks/bench_ope.py``).

- :func:`collect_log` runs a logging policy that states its propensities and returns a
  :class:`DecisionLog`; :meth:`DecisionLog.to_parquet` / :func:`read_log` store it;
  :func:`read_minari` reads a Minari dataset recorded with ``mmr_gym.wrappers.PaddedInfo``.
- :func:`estimate` with ``method`` ``"dm"``, ``"ips"``, ``"snips"``, ``"dr"`` or ``"replay"`` gives
  the target's accuracy and mean cost per query, each with a bootstrap interval, and the effective
  sample size (:class:`Estimate`); warnings (:class:`PropensityWarning`, :class:`SupportWarning`,
  :class:`SmallSampleWarning`) and errors say when a figure cannot be trusted.
- :func:`compare` judges a candidate against the router in place on the same decisions: their
  difference with a paired interval (:class:`Comparison`), what a decision to switch rests on.

What an estimate means. DM, IPS, SNIPS and DR judge the target decision by decision on the logged
contexts, *budget state included*: a deterministic target (BestSingle, Cheapest, a paced router)
is a one-hot distribution given the context, and a target that paces a budget is judged on the
budget states the logger went through. That is the target's online value when its choices do not
depend on the budget state (or no budget binds). Replay (Li et al., 2011) runs the target online
on the logged stream with its own budget and learning: it is the estimator that is unbiased for
the online value of a budget-pacing or learning target (under a logger that gives every
affordable model a known probability, most simply a uniform one).

The logging policies live in :mod:`agents.stochastic` (the library does not depend on agents).
"""

from __future__ import annotations

from mmr_gym.ope.collect import collect_log
from mmr_gym.ope.compare import Comparison, compare
from mmr_gym.ope.estimators import (
    METHODS,
    Estimate,
    OPEWarning,
    PropensityWarning,
    SmallSampleWarning,
    SupportWarning,
    estimate,
)
from mmr_gym.ope.log import DecisionLog, read_log
from mmr_gym.ope.minari import read_minari
from mmr_gym.ope.targets import StochasticPolicy, target_probabilities

__all__ = [
    "METHODS",
    "Comparison",
    "DecisionLog",
    "Estimate",
    "OPEWarning",
    "PropensityWarning",
    "SmallSampleWarning",
    "StochasticPolicy",
    "SupportWarning",
    "collect_log",
    "compare",
    "estimate",
    "read_log",
    "read_minari",
    "target_probabilities",
]
