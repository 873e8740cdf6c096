"""Budget pacing: turn any performance-and-cost predictor into a policy that spends a budget evenly.

:class:`PacedPolicy` wraps a *scorer*, anything with ``predict(X) -> (perf, cost)`` (a fitted
:class:`~agents.supervised.Router`, or a bandit learner from :mod:`agents.bandits`). For each query
it calls, among the affordable models, the one that maximises

    pred_perf[k] - lambda * cost[k] / c_ref

(exact ties go to the cheaper model, then the lower index), where ``lambda`` is a price of budget in accuracy per reference-model call, adapted online by a
primal-dual rule in the style of bandits with knapsacks: after each call,

    lambda <- max(0, lambda + eta / rho**2 * (spent / c_ref - target))

``spent`` is the call's realized cost; ``target`` the budget left per query left, relative to
``c_ref``, as the observation showed it before the call (``obs["budget"][2]``); ``rho`` the
episode's per-query budget rate (``target`` at the first step, i.e. the budget ratio). Dividing by
``rho**2`` makes one ``eta`` work from tight to ample budgets: it is the plain dual step on the
price of one episode-rate of spending, ``rho * lambda``, with the overspend measured in rates.
Because ``target`` is recomputed from what is left, overspending early raises the price later.

The starting price is *calibrated* on the training split: the smallest ``lambda`` (on a log grid)
at which the scorer's choices over the training queries cost at most ``rho`` per query on average.
It uses only training query features and cost estimates, never outcomes. With ``carry_lambda``,
the price at the end of an episode starts the next one of the same budget rate instead (the
evaluator runs many episodes per budget, so it keeps adapting across them).

Costs: by default the environment's cost estimate ``obs["model_costs"]`` (already ``/ c_ref``),
the same numbers the action mask uses, so the price and the affordability rule agree; with
``cost_source="scorer"`` the scorer's predicted per-query cost instead.

A reserve keeps the episode alive to its end (queries left unanswered count as wrong): a model is
chosen only if its estimate, inflated to a high quantile of how far realized costs exceed estimates
on the training split, leaves enough budget to call a cheap model on every query still to come.

Without a budget (``budget_ratio=None``) the reward is ``correct - cost_weight * cost / c_ref``, so
the price is fixed at the environment's ``cost_weight``: the choice maximises the predicted reward.

A scorer that learns (it also has ``act_scores`` and ``update``, see :class:`OnlineScorer`) acts on
``act_scores`` (optimistic or sampled estimates) and is updated from each step's feedback: the
chosen model's ``correct`` and ``cost`` only, never other models' outcomes.
"""

from __future__ import annotations

import contextlib
import weakref
from typing import Any, Protocol, runtime_checkable

import numpy as np

from mmr_gym.budget import BUDGET_FEATURES
from mmr_gym.context import RoutingContext
from mmr_gym.env import MMRRoutingEnv
from mmr_gym.policy import Policy

COST_SOURCES = ("env", "scorer")
# Prices tried by the calibration, in accuracy per c_ref of cost: from "cost is irrelevant" to
# "any saving beats any accuracy" on MMR-Bench-like tables (costs span ~1e-3 to ~2 c_ref).
_CALIBRATION_GRID = np.concatenate(([0.0], np.geomspace(1e-3, 1e4, 71)))
# Two budget rates closer than this (relative) count as the same for carrying the price.
_SAME_RATE = 1e-3


class Scorer(Protocol):
    """Predicts every model's performance and cost for a batch of query features."""

    def predict(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(perf, cost)``: float ``[n, K]`` each, ``cost`` in the table's cost unit."""
        ...


@runtime_checkable
class OnlineScorer(Protocol):
    """A scorer that learns from bandit feedback (see :mod:`agents.bandits`)."""

    def predict(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Point estimates ``(perf, cost)``, float ``[n, K]`` each (used for calibration)."""
        ...

    def act_scores(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(perf, cost)`` for one query ``x`` ``[d]``, float ``[K]`` each, with exploration."""
        ...

    def update(self, x: np.ndarray, action: int, correct: float, cost: float) -> None:
        """Learn from calling model ``action`` on query ``x``: its correctness and cost (table unit)."""
        ...


class PacedPolicy(Policy):
    """Greedy on ``perf - lambda * cost / c_ref`` over the affordable models, ``lambda`` paced to the budget.

    Args:
        scorer: a fitted :class:`Scorer`; a learner if it is an :class:`OnlineScorer`. A scorer that
            does not learn must not change while a policy uses it (its predictions are cached,
            shared by every policy wrapping it).
        name: the policy's name in reports (default ``"Paced-<scorer name>"``).
        eta: dual step size (dimensionless, see the module docstring); 0 keeps ``lambda`` fixed.
        lambda_init: starting price (accuracy per ``c_ref`` of cost); None calibrates it on the
            training split at the episode's budget rate.
        carry_lambda: start an episode from the previous episode's final price when their budget
            rates agree (otherwise from ``lambda_init`` or the calibration).
        cost_source: ``"env"`` (the environment's estimate, as the mask) or ``"scorer"`` (the
            scorer's predicted cost).
        reserve: a safety margin against ending an episode early (the queries left would count as
            wrong): a model is chosen only if its estimate, times its 95th-percentile overshoot of
            realized over estimated cost on the training split, fits the budget left minus, for
            every query after this one, ``reserve`` times the largest cheapest-model estimate of a
            training query. When no model passes, the cheapest affordable one is called. 0 disables it.
    """

    privileged = False

    def __init__(
        self,
        scorer: Scorer,
        *,
        name: str | None = None,
        eta: float = 0.01,
        lambda_init: float | None = None,
        carry_lambda: bool = True,
        cost_source: str = "env",
        reserve: float = 1.5,
    ) -> None:
        if cost_source not in COST_SOURCES:
            raise ValueError(f"unknown cost_source {cost_source!r}; allowed: {list(COST_SOURCES)}")
        if not eta >= 0:
            raise ValueError(f"eta must be >= 0, got {eta!r}")
        if not reserve >= 0:
            raise ValueError(f"reserve must be >= 0, got {reserve!r}")
        if lambda_init is not None and not lambda_init >= 0:
            raise ValueError(f"lambda_init must be >= 0 or None, got {lambda_init!r}")
        self.scorer = scorer
        self.name = name or f"Paced-{getattr(scorer, 'name', type(scorer).__name__)}"
        self.eta = float(eta)
        self.lambda_init = lambda_init
        self.carry_lambda = carry_lambda
        self.cost_source = cost_source
        self.reserve = float(reserve)
        self.learns = isinstance(scorer, OnlineScorer)
        #: the current price of budget, in accuracy per c_ref of cost (None before the first step)
        self.lambda_: float | None = None
        self._rate: float | None = None  # the budget rate lambda_ was set for
        self._facts_ctx: RoutingContext | None = None

    # ------------------------------------------------------------------ Policy API
    def begin_episode(self, env: MMRRoutingEnv) -> None:
        self._ctx = env.ctx
        self._c_ref = env.c_ref
        self._budget = env.budget
        self._budgeted = env.budget is not None
        self._first_step = True
        if not self._budgeted:
            self.lambda_, self._rate = env.cost_weight, None
        if self._facts_ctx is not env.ctx:
            self._learn_context(env.ctx)

    def act(self, obs: Any, info: dict[str, Any]) -> int:
        query, budget, model_costs = self._split(obs)
        perf, cost = self._scores(query)
        cost = model_costs.astype(np.float64) if self.cost_source == "env" else cost / self._c_ref
        if self._budgeted:
            self._target = float(budget[2])
            if self._first_step:
                self._start_episode(rate=self._target)
        self._first_step = False
        self._query = query
        mask = info["action_mask"].astype(bool)
        allowed = mask
        if self._budgeted and self.reserve > 0:
            allowed = mask & (model_costs * self._overshoot <= self._spendable_now(budget))
            if not allowed.any():
                return int(np.argmin(np.where(mask, model_costs, np.inf)))
        return _best_value(perf - self.lambda_ * cost, cost, allowed)

    def observe(self, action: int, reward: float, info: dict[str, Any]) -> None:
        if self.learns:
            # The model actually called (the environment may have replaced a masked action).
            self.scorer.update(
                self._query, int(info["model_index"]), float(info["correct"]), float(info["cost"])
            )
        if self._budgeted and self.eta > 0:
            overspend = info["cost"] / self._c_ref - self._target
            self.lambda_ = max(0.0, self.lambda_ + self.eta / self._rate**2 * overspend)

    # ------------------------------------------------------------------ internals
    def _spendable_now(self, budget: np.ndarray) -> float:
        """Budget left minus the reserve for the queries after this one, in c_ref units."""
        left = float(budget[0]) * self._budget / self._c_ref  # remaining fraction x total
        per_query = float(budget[2])
        if per_query <= 0:
            return 0.0
        queries_left = round(left / per_query)  # exact unless the feature is clipped (then ample)
        return left - max(queries_left - 1, 0) * self.reserve * self._cheapest_max

    def _start_episode(self, rate: float) -> None:
        same_rate = self._rate is not None and abs(rate - self._rate) <= _SAME_RATE * self._rate
        if self.lambda_ is not None and self.carry_lambda and same_rate:
            return
        self._rate = max(rate, 1e-12)
        self.lambda_ = self.lambda_init if self.lambda_init is not None else self._calibrate(self._rate)

    def _calibrate(self, rate: float) -> float:
        """Smallest grid price whose choices over the training queries cost at most ``rate`` (x c_ref) each."""
        ctx = self._ctx
        rows = ctx.train_indices
        if self.learns:
            perf, cost = self.scorer.predict(ctx.query_obs[rows])
        else:
            perf, cost = self._perf[rows], self._cost[rows]
        cost = (
            ctx.model_costs_obs[rows].astype(np.float64) if self.cost_source == "env" else cost / self._c_ref
        )
        spend = np.empty(_CALIBRATION_GRID.size)
        for i, price in enumerate(_CALIBRATION_GRID):
            choice = np.argmax(perf - price * cost, axis=1)
            spend[i] = np.take_along_axis(cost, choice[:, None], axis=1).mean()
        within = np.flatnonzero(spend <= rate)
        return float(_CALIBRATION_GRID[within[0]] if within.size else _CALIBRATION_GRID[-1])

    def _learn_context(self, ctx: RoutingContext) -> None:
        """What the policy precomputes once per table and split (training split only, never test outcomes)."""
        train = ctx.train_indices
        estimate = ctx.cost_estimate[train]
        realized = ctx.table.cost[train].astype(np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(estimate > 0, realized / estimate, 1.0)
        self._overshoot = np.maximum(np.quantile(ratio, 0.95, axis=0), 1.0)  # [K]
        self._cheapest_max = float(ctx.model_costs_obs[train].min(axis=1).max())  # c_ref units
        if not self.learns:
            self._perf, self._cost, self._row_of = _all_predictions(self.scorer, ctx)
        self._facts_ctx = ctx

    def _scores(self, query: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.learns:
            perf, cost = self.scorer.act_scores(query)
            return np.asarray(perf, dtype=np.float64), np.asarray(cost, dtype=np.float64)
        row = self._row_of.get(query.tobytes())
        if row is None:
            perf, cost = self.scorer.predict(query[None, :])
            return np.asarray(perf[0], dtype=np.float64), np.asarray(cost[0], dtype=np.float64)
        return self._perf[row], self._cost[row]

    def _split(self, obs: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(query, budget features, model costs / c_ref)`` from a dict or flat observation."""
        if isinstance(obs, dict):
            return np.asarray(obs["query"], dtype=np.float32), obs["budget"], obs["model_costs"]
        obs = np.asarray(obs, dtype=np.float32)
        d, k = self._ctx.query_obs.shape[1], self._ctx.n_models
        return obs[:d], obs[d : d + BUDGET_FEATURES], obs[d + BUDGET_FEATURES : d + BUDGET_FEATURES + k]


def _best_value(value: np.ndarray, cost: np.ndarray, allowed: np.ndarray) -> int:
    """The allowed model of highest ``value``; among exact ties the cheapest, then the lowest index.

    Ties are common when predictions are averages of 0/1 outcomes (KNN, k-means) and the price is 0:
    ``argmax`` alone would call the tied model of lowest index, however dear.
    """
    value = np.where(allowed, value, -np.inf)
    tied = value == value.max()
    return int(np.argmin(np.where(tied, cost, np.inf)))


# Fixed scorer -> (context, perf, cost, row of query bytes): shared by every PacedPolicy wrapping
# the same scorer (an evaluation builds one policy per budget and seed).
_PREDICTIONS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _all_predictions(scorer: Scorer, ctx: RoutingContext) -> tuple[np.ndarray, np.ndarray, dict[bytes, int]]:
    """A fixed scorer's predictions for every query the environment can show, and a row lookup.

    A fixed scorer is a pure function of the query features, and every observation's query is a
    row of ``ctx.query_obs``: predict them all in one batch and look rows up by their bytes. Rows
    with equal features have equal predictions, so the lookup equals predicting ``obs["query"]``.
    """
    try:
        cached = _PREDICTIONS.get(scorer)
    except TypeError:  # not weakly referenceable: predict without sharing
        cached = None
    if cached is not None and cached[0] is ctx:
        return cached[1:]
    perf, cost = scorer.predict(ctx.query_obs)
    entry = (
        ctx,
        np.asarray(perf, dtype=np.float64),
        np.asarray(cost, dtype=np.float64),
        {row.tobytes(): i for i, row in enumerate(ctx.query_obs)},
    )
    with contextlib.suppress(TypeError):
        _PREDICTIONS[scorer] = entry
    return entry[1:]
