"""Budget pacing: turn any performance-and-cost predictor into a policy that spends a budget evenly.

:class:`PacedPolicy` wraps a *scorer*, anything with ``predict(X) -> (perf, cost)`` (a fitted
:class:`~agents.supervised.Router`, or a bandit learner from :mod:`agents.bandits`); given a router
name instead (default ``"auto"``), it fits that router on the training split of the first
environment it meets. The rule, per step of a budgeted episode (every number float64):

1. Scores. ``perf[k]``: the scorer's predicted performance of model ``k`` for this query (a learner's
   ``act_scores``). ``cost[k]``: the environment's cost estimate ``obs["model_costs"][k]`` (already
   divided by ``c_ref``, the numbers the action mask uses), or with ``cost_source="scorer"`` the
   scorer's predicted cost divided by ``c_ref``.
2. Price (re-solved at every step). ``target``: the observation's ``spend_per_query`` budget
   feature (:class:`~mmr_gym.observation.ObservationLayout`), the budget left per query left,
   relative to ``c_ref``. The *spend curve* ``S[g]`` (below) says what the policy would spend per
   query at price ``PRICES[g]``; the price is ``lambda = PRICES[g*]``, ``g*`` the first ``g`` with
   ``S[g] <= target`` (the last one if none). So the price answers the budget that is actually left:
   overspending raises it at once, underspending lowers it, with no step size to tune.
3. Reserve (``reserve > 0``). ``allowed[k] = mask[k] and cost_env[k] * overshoot[k] <= spendable``,
   where ``cost_env = obs["model_costs"]``, ``overshoot[k] = max(1, q95 over training queries of
   realized / estimated cost of k)``, and ``spendable = left - max(n_left - 1, 0) * reserve *
   cheapest_max``, with ``left = budget_fraction * budget / c_ref`` (the observation's remaining
   budget fraction times the episode's budget: the budget left in ``c_ref`` units), ``n_left = round(left / target)`` (Python's ``round``, half to even: the queries left,
   this one included) and
   ``cheapest_max`` the largest cheapest-model estimate of a training query (``c_ref`` units); 0
   if ``target <= 0``. If no model is allowed, the cheapest affordable one the policy may call
   (``models=``; lowest ``cost_env``, then lowest index) is called and step 4 is skipped.
4. Choice. Among allowed models, the highest ``perf[k] - lambda * cost[k]``; among exact ties the
   highest ``prior[k]`` (model ``k``'s mean correctness on the training split, float64), then the
   lowest ``cost[k]``, then the lowest index.

The spend curve: ``PRICES = [0, 10**-4, ..., 10**4]`` (0, then 161 prices 20 per decade, in accuracy
per ``c_ref`` of cost). Over the calibration queries ``R`` (the rows ``ctx.train_indices``; for a
learner with more than :data:`CALIBRATION_QUERIES` of them, those at positions
``round(linspace(0, n - 1, CALIBRATION_QUERIES))``, numpy's rounding), with the scorer's
point predictions ``perf_R`` (``predict``) and the costs of step 1 for those rows, ``choice_R[g]`` is
step 4's choice at price ``PRICES[g]`` with every model allowed, ``S_raw[g]`` the mean over ``R`` of
the chosen cost, and ``S[g] = min(S_raw[0..g])`` (a running minimum, so ``S`` never increases with
the price). It uses training features and cost estimates only, never outcomes. A fixed scorer's curve
is computed once per context; a learner's at the start of every episode, from what it has learned.

Without a budget (``budget_ratio=None``) the reward is ``correct - cost_weight * cost / c_ref``, so
the price is the environment's ``cost_weight`` and there is no reserve: step 4 alone, over the
mask. With ``price=...`` a budgeted episode's price is that number at every step (no pacing; the
reserve still applies).

Why re-solving: the earlier rule moved ``lambda`` by a dual step after each call; on the bundled table
it swung from 0 to twice its calibrated value within an episode. Its stream points lay 0.0059
accuracy below the same router's offline price curve (every query routed alone at one price) at
equal spend, against 0.0038 for this rule: mean over the bundled table, each of its seven datasets
alone and MATH-V, LinearMF, three stream seeds; ``benchmarks/bench_routers.py`` measures both rules
on the bundled table and MATH-V.

Ties: exact ties in step 4 happen in practice only at price 0, with predictions that average 0/1
outcomes (KNN, k-means). ``argmax`` alone took the lowest index, which on the bundled table happens
to be its most accurate model; cheapest-first lowered Paced-KNN's peak accuracy there by 0.007 (nAUC
by 0.004; its QNC from 0.79 to 0.72); the training accuracy first matches argmax there (Ps 0.7590
vs 0.7596) without depending on the order of the models, and on MATH-V was within 0.002 of both.

A scorer that learns (it also has ``act_scores`` and ``update``, see :class:`OnlineScorer`) acts on
``act_scores`` (optimistic or sampled estimates) and is updated from each step's feedback: the
chosen model's ``correct`` and ``cost`` only, never other models' outcomes.

Batched (:meth:`PacedPolicy.act_batch`): with a scorer that does not learn, one policy acts for
every row of a vector env at once (each row a lane with its own budget), by the same float64
operations as :meth:`PacedPolicy.act`, so the same choices, bit for bit. A learning scorer keeps one
policy per lane (:class:`~mmr_gym.policy.Policy`'s defaults).
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

from mmr_gym.checks import check_float
from mmr_gym.context import RoutingContext
from mmr_gym.env import MMRRoutingEnv
from mmr_gym.observation import ObservationLayout, ObservationParts
from mmr_gym.policy import Policy

COST_SOURCES = ("env", "scorer")
#: The prices the rule chooses among, in accuracy per c_ref of cost: from "cost is irrelevant" to
#: "any saving beats any accuracy" on MMR-Bench-like tables (costs span ~1e-3 to ~2 c_ref).
PRICES = np.concatenate(([0.0], np.geomspace(1e-4, 1e4, 161)))
#: A learner's spend curve is recomputed every episode, over at most this many training queries.
CALIBRATION_QUERIES = 256


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
    """Greedy on ``perf - lambda * cost / c_ref`` over the affordable models, ``lambda`` re-solved for the budget left.

    Args:
        scorer: a fitted :class:`Scorer`; a learner if it is an :class:`OnlineScorer`; or the name of
            a router of :data:`agents.supervised.ROUTERS` (default ``"auto"``), fitted with its
            defaults on the training split of the first environment the policy meets (once per
            context, shared by every policy given that name). A scorer that does not learn must not
            change while a policy uses it (its predictions are cached, shared by every policy
            wrapping it).
        name: the policy's name in reports (default ``"Paced-<scorer name>"``).
        price: a fixed price of budget (accuracy per ``c_ref`` of cost) instead of pacing; None
            paces (see the module docstring).
        cost_source: ``"env"`` (the environment's estimate, as the mask) or ``"scorer"`` (the
            scorer's predicted cost).
        reserve: a safety margin against ending an episode early (the queries left would count as
            wrong): a model is chosen only if its estimate, times its 95th-percentile overshoot of
            realized over estimated cost on the training split, fits the budget left minus, for
            every query after this one, ``reserve`` times the largest cheapest-model estimate of a
            training query. When no model passes, the cheapest affordable one is called. 0 disables it.
        models: the names of the models the policy may call (None: all). A router fitted before a
            model existed does not know it: under a scenario where a model arrives later
            (:mod:`mmr_gym.scenarios`), a static policy is given the models it knew.
    """

    privileged = False

    def __init__(
        self,
        scorer: Scorer | str = "auto",
        *,
        name: str | None = None,
        price: float | None = None,
        cost_source: str = "env",
        reserve: float = 1.5,
        models: Sequence[str] | None = None,
    ) -> None:
        if isinstance(models, str):
            raise TypeError(f"models must be a sequence of model names, got the string {models!r}")
        self.models = None if models is None else tuple(str(m) for m in models)
        if self.models is not None and not self.models:
            raise ValueError("models must name at least one model (None: every model of the table)")
        if name is not None and not isinstance(name, str):
            raise TypeError(f"name must be a string, got {name!r}")
        if not isinstance(scorer, str) and not (hasattr(scorer, "predict") or hasattr(scorer, "act_scores")):
            raise TypeError(
                f"scorer must be a router name or have predict(X) -> (perf, cost), got {type(scorer).__name__}"
            )
        if cost_source not in COST_SOURCES:
            raise ValueError(f"unknown cost_source {cost_source!r}; allowed: {list(COST_SOURCES)}")
        reserve = check_float("reserve", reserve, low=0.0)
        if price is not None:
            price = check_float("price", price, low=0.0)
        self.router_name: str | None = None
        if isinstance(scorer, str):
            from agents.supervised import ROUTERS  # here: agents.supervised imports nothing of this module

            if scorer not in ROUTERS:
                raise ValueError(f"unknown router {scorer!r}; choose from {sorted(ROUTERS)}")
            self.router_name, default_name = scorer, ROUTERS[scorer].name
        else:
            default_name = getattr(scorer, "name", type(scorer).__name__)
        self.scorer = None if self.router_name else scorer
        self.name = name or f"Paced-{default_name}"
        self.price = price
        self.cost_source = cost_source
        self.reserve = float(reserve)
        self.learns = self.scorer is not None and isinstance(scorer, OnlineScorer)
        self.episodic = not self.learns  # a fixed scorer: each episode's pacing starts afresh
        # What observe reads: nothing for a fixed scorer; to learn, the model called and its outcome.
        self.info_keys = ("model_index", "correct", "cost") if self.learns else ()
        #: the current price of budget, in accuracy per c_ref of cost (None before the first step)
        self.lambda_: float | None = None
        self._facts_ctx: RoutingContext | None = None

    # ------------------------------------------------------------------ Policy API
    def begin_episode(self, env: MMRRoutingEnv) -> None:
        self._ctx = env.ctx
        self._layout: ObservationLayout = env.layout
        self._c_ref = env.c_ref
        self._budget = env.budget
        self._budgeted = env.budget is not None
        if self.router_name is not None and self._facts_ctx is not env.ctx:
            self.scorer = _fitted_router(self.router_name, env)
        if self._facts_ctx is not env.ctx:
            self._learn_context(env.ctx)
        if not self._budgeted:
            self.lambda_ = env.cost_weight
        elif self.price is not None:
            self.lambda_ = float(self.price)
        elif self.learns:
            self._spend = self._spend_curve()  # from what the learner knows now

    def act(self, obs: Any, info: dict[str, Any]) -> int:
        query, parts, shown = self._split(obs)
        mask = np.asarray(info["action_mask"], dtype=bool)
        estimate = self._pacing_costs(query, shown.astype(np.float64), mask)
        perf, predicted = self._scores(query)
        cost = estimate if self.cost_source == "env" else predicted / self._c_ref
        self._query = query
        mask = mask & self._known  # never a model the policy was told not to call (models=)
        allowed = mask
        if self._budgeted:
            if self.price is None:
                self.lambda_ = _price_for(self._spend, float(parts.spend_per_query))
            if self.reserve > 0:
                allowed = mask & (estimate * self._overshoot <= self._spendable_now(parts))
                if not allowed.any():  # the call that costs least, as far as the policy knows
                    return int(np.argmin(np.where(mask, estimate, np.inf)))
        return _best_value(perf - self.lambda_ * cost, cost, allowed, self._prior)

    def observe(self, action: int, reward: float, info: dict[str, Any]) -> None:
        if self.learns:
            # The model actually called (the environment may have replaced a masked action).
            self.scorer.update(
                self._query, int(info["model_index"]), float(info["correct"]), float(info["cost"])
            )

    # ------------------------------------------------------------------ internals
    def _spendable_now(self, parts: ObservationParts) -> float:
        """Budget left minus the reserve for the queries after this one, in c_ref units."""
        left = float(parts.budget_fraction) * self._budget / self._c_ref
        per_query = float(parts.spend_per_query)
        if per_query <= 0:
            return 0.0
        queries_left = round(left / per_query)  # exact unless the feature is clipped (then ample)
        return left - max(queries_left - 1, 0) * self.reserve * self._cheapest_max

    def _pacing_costs(self, query: np.ndarray, shown: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Each model's cost for this query as the policy paces with it: float64 ``[K]``, ``c_ref`` units.

        The one step of :meth:`act` a subclass changes. ``shown``: the observation's estimates
        (``obs["model_costs"]``, float64); ``mask``: the environment's action mask (bool ``[K]``). What
        it returns is the ``cost`` of step 1 (``cost_source="env"``) and the estimate that step 3's
        reserve and fallback compare; here ``shown`` itself.
        """
        return shown

    def _calibration_rows(self) -> np.ndarray:
        """The table rows of the calibration queries ``R`` (see the module docstring)."""
        rows = self._ctx.train_indices
        if self.learns and rows.size > CALIBRATION_QUERIES:
            rows = rows[np.round(np.linspace(0, rows.size - 1, CALIBRATION_QUERIES)).astype(np.int64)]
        return rows

    def _calibration_scores(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The scorer's point predictions ``(perf, cost)`` for table rows ``rows``: float64 ``[n, K]``
        each, ``cost`` in the table's unit (a learner is asked now; a fixed scorer's are cached)."""
        if self.learns:
            perf, cost = self.scorer.predict(self._ctx.query_obs[rows])
            return np.asarray(perf, dtype=np.float64), np.asarray(cost, dtype=np.float64)
        return self._perf[rows], self._cost[rows]

    def _spend_curve(self) -> np.ndarray:
        """``S``: per price of :data:`PRICES`, the mean cost per query (c_ref units) of the choices over
        the calibration queries, made non-increasing (see the module docstring)."""
        rows = self._calibration_rows()
        perf, cost = self._calibration_scores(rows)
        cost = (
            self._ctx.model_costs_obs[rows].astype(np.float64)
            if self.cost_source == "env"
            else cost / self._c_ref
        )
        return spend_curve(perf, cost, self._known, self._prior)

    def _learn_context(self, ctx: RoutingContext) -> None:
        """What the policy precomputes once per table and split (training split only, never test outcomes)."""
        train = ctx.train_indices
        estimate = ctx.cost_estimate[train]
        realized = ctx.table.cost[train].astype(np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(estimate > 0, realized / estimate, 1.0)
        self._overshoot = np.maximum(np.quantile(ratio, 0.95, axis=0), 1.0)  # [K]
        self._cheapest_max = float(ctx.model_costs_obs[train].min(axis=1).max())  # c_ref units
        self._prior = ctx.table.correct[train].astype(np.float64).mean(axis=0)  # tie rule: [K]
        names = ctx.table.model_names
        if self.models is not None and not set(self.models) <= set(names):
            raise ValueError(
                f"models {sorted(set(self.models) - set(names))} are not in {ctx.table.source}: {names}"
            )
        self._known = np.array([self.models is None or m in self.models for m in names], dtype=bool)
        if not self.learns:
            self._perf, self._cost, self._row_of = _all_predictions(self.scorer, ctx)
            self._spend = self._spend_curve()
        self._facts_ctx = ctx

    def _scores(self, query: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.learns:
            perf, cost = self.scorer.act_scores(query)
            return np.asarray(perf, dtype=np.float64), np.asarray(cost, dtype=np.float64)
        row = self._row_of.find(query)
        if row is None:
            perf, cost = self.scorer.predict(query[None, :])
            return np.asarray(perf[0], dtype=np.float64), np.asarray(cost[0], dtype=np.float64)
        return self._perf[row], self._cost[row]

    def _split(self, obs: Any) -> tuple[np.ndarray, ObservationParts, np.ndarray]:
        """``(query, the observation's named parts, model costs / c_ref)``, read through its layout."""
        parts = self._layout.decode(obs)
        return np.asarray(parts.query, dtype=np.float32), parts, parts.model_costs

    # ------------------------------------------------------------------ batched
    def reset_lanes(self, n: int, make: Any = None) -> None:
        if self.learns:  # one learner per lane: the defaults keep a policy per lane
            super().reset_lanes(n, make)
            return
        self._lanes = None
        self._lane_budget = np.full(n, np.nan)  # each lane's episode budget (NaN: none)

    def begin_episodes(self, env: Any, rows: np.ndarray) -> None:
        if self.learns:
            super().begin_episodes(env, rows)
            return
        self._ctx, self._layout, self._c_ref = env.ctx, env.layout, env.c_ref
        self._cost_weight = env.cost_weight
        if self.router_name is not None and self._facts_ctx is not env.ctx:
            self.scorer = _fitted_router(self.router_name, env)
        if self._facts_ctx is not env.ctx:
            self._learn_context(env.ctx)
        self._lane_budget[rows] = env.budget[rows]

    def act_batch(self, obs: Any, info: dict[str, Any], active: np.ndarray) -> np.ndarray:
        """:meth:`act` for every row at once (steps 1 to 4 of the module docstring, in arrays)."""
        if self.learns:
            return super().act_batch(obs, info, active)
        parts = self._layout.decode(obs)
        perf, cost = self._scores_batch(np.asarray(parts.query, dtype=np.float32))
        model_costs = parts.model_costs
        cost = model_costs.astype(np.float64) if self.cost_source == "env" else cost / self._c_ref
        budgeted = ~np.isnan(self._lane_budget)
        target = parts.spend_per_query.astype(np.float64)
        if self.price is not None:
            price = np.full(target.size, float(self.price))
        else:  # the first price whose spend fits the target: S never increases with the price
            first = np.searchsorted(-self._spend, -target, side="left")
            price = PRICES[np.minimum(first, PRICES.size - 1)]
        price = np.where(budgeted, price, self._cost_weight)
        action_mask = np.asarray(info["action_mask"])
        # 0/1 int8 masks read as bool without a copy
        mask = action_mask.view(bool) if action_mask.dtype == np.int8 else action_mask.astype(bool)
        mask = mask & self._known
        allowed = mask
        reserved = budgeted if self.reserve > 0 else np.zeros_like(budgeted)
        n_reserved = np.count_nonzero(reserved)
        if n_reserved:
            fits = (
                model_costs * self._overshoot <= self._spendable_batch(parts.budget_fraction, target)[:, None]
            )
            allowed = (
                mask & fits if n_reserved == reserved.size else np.where(reserved[:, None], mask & fits, mask)
            )
        value = np.where(allowed, perf - price[:, None] * cost, -np.inf)
        tied = value == value.max(axis=1, keepdims=True)
        if np.count_nonzero(tied) == tied.shape[0]:  # one best model per row: no tie to break
            actions = tied.argmax(axis=1)
        else:
            prior = np.where(tied, self._prior, -np.inf)
            tied &= prior == prior.max(axis=1, keepdims=True)
            actions = np.argmin(np.where(tied, cost, np.inf), axis=1)
        if n_reserved:
            stuck = reserved & ~allowed.any(axis=1)  # no model passes the reserve: the cheapest affordable
            if np.count_nonzero(stuck):
                actions[stuck] = np.argmin(np.where(mask[stuck], model_costs[stuck], np.inf), axis=1)
        return actions

    def observe_batch(
        self, actions: np.ndarray, rewards: np.ndarray, info: dict[str, Any], active: np.ndarray
    ) -> None:
        if self.learns:
            super().observe_batch(actions, rewards, info, active)

    def _spendable_batch(self, fraction: np.ndarray, per_query: np.ndarray) -> np.ndarray:
        """:meth:`_spendable_now` for every row (``per_query``: float64; NaN for rows without a budget)."""
        left = fraction.astype(np.float64)
        left *= self._lane_budget
        left /= self._c_ref  # (fraction x budget) / c_ref, in this order
        some = per_query > 0
        queries_left = np.divide(left, per_query, out=np.zeros_like(left), where=some)
        np.round(queries_left, out=queries_left)  # half to even, as Python's round()
        queries_left -= 1
        np.maximum(queries_left, 0, out=queries_left)
        queries_left *= self.reserve
        queries_left *= self._cheapest_max  # (max(n - 1, 0) x reserve) x cheapest_max, in this order
        left -= queries_left
        return np.where(some, left, 0.0)

    def _scores_batch(self, query: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        rows = self._row_of.find_batch(query)
        if np.count_nonzero(rows < 0) == 0:
            return self._perf[rows], self._cost[rows]
        scores = [self._scores(q) for q in query]
        return np.stack([p for p, _ in scores]), np.stack([c for _, c in scores])


def _price_for(spend: np.ndarray, target: float) -> float:
    """The first price of :data:`PRICES` whose spend ``spend[g]`` is at most ``target`` (else the last)."""
    within = np.flatnonzero(spend <= target)
    return float(PRICES[within[0]] if within.size else PRICES[-1])


def spend_curve(perf: np.ndarray, cost: np.ndarray, allowed: np.ndarray, prior: np.ndarray) -> np.ndarray:
    """The spend curve ``S`` of the module docstring: per price of :data:`PRICES`, the mean cost
    (``cost``'s unit) of step 4's choice over the rows of ``perf``/``cost`` (float64 ``[n, K]``)
    among the ``allowed`` models (bool ``[K]``), ties to the higher ``prior`` (``[K]``) then the lower
    cost; made non-increasing by a running minimum. With no model allowed, every spend is ``inf``."""
    # A running best over the models, each step one array operation over prices x rows (about twice
    # as fast as an argmax over a [prices, rows, models] block at 300 rows x 10 models). Strictly
    # greater wins; an exact tie goes to the higher prior, then the lower cost (the earlier index
    # when both tie too, which leaves the chosen cost, so the curve, unchanged).
    prices = PRICES[:, None]
    best_value = np.full((PRICES.size, cost.shape[0]), -np.inf)
    best_prior = np.full_like(best_value, -np.inf)
    best_cost = np.full_like(best_value, np.inf)
    for k in np.flatnonzero(allowed).tolist():
        value = perf[:, k] - prices * cost[:, k]
        wins = (value > best_value) | (
            (value == best_value)
            & ((prior[k] > best_prior) | ((prior[k] == best_prior) & (cost[:, k] < best_cost)))
        )
        best_value = np.where(wins, value, best_value)
        best_prior = np.where(wins, prior[k], best_prior)
        best_cost = np.where(wins, cost[:, k], best_cost)
    return np.minimum.accumulate(best_cost.mean(axis=1))


# Router name -> {context: the router fitted on its training split} for PacedPolicy("<name>").
_FITTED: dict[str, weakref.WeakKeyDictionary] = {}


def _fitted_router(name: str, env: MMRRoutingEnv) -> Scorer:
    """``fit_router(name, env)``, once per context (every policy built with that name shares it)."""
    from agents.supervised import fit_router

    by_context = _FITTED.setdefault(name, weakref.WeakKeyDictionary())
    router = by_context.get(env.ctx)
    if router is None:
        router = by_context[env.ctx] = fit_router(name, env)
    return router


def _best_value(value: np.ndarray, cost: np.ndarray, allowed: np.ndarray, prior: np.ndarray) -> int:
    """The allowed model of highest ``value``; among exact ties the highest ``prior``, then the
    lowest ``cost``, then the lowest index (step 4 of the module docstring)."""
    value = np.where(allowed, value, -np.inf)
    tied = value == value.max()
    prior = np.where(tied, prior, -np.inf)
    tied &= prior == prior.max()
    return int(np.argmin(np.where(tied, cost, np.inf)))


class _RowIndex:
    """Which row of ``ctx.query_obs`` an observed query is (by its bytes), for one query or many.

    One query: a dict lookup of its bytes. Many: a vectorised search on the first 8 bytes of each
    row (its first two values, as one integer), each hit then checked bit for bit against the
    whole row (a miss falls back to the dict). Rows with the same bytes resolve to the last of
    them, as the dict does.
    """

    def __init__(self, rows: np.ndarray) -> None:
        n = rows.shape[0]
        self._rows = np.ascontiguousarray(rows)
        keys = _leading_key(self._rows)
        self._order = np.lexsort((-np.arange(n), keys))  # by key, then the last occurrence first
        self._keys = keys[self._order]
        self._by_bytes = {row.tobytes(): i for i, row in enumerate(rows)}

    def find(self, query: np.ndarray) -> int | None:
        return self._by_bytes.get(query.tobytes())

    def find_batch(self, query: np.ndarray) -> np.ndarray:
        """int64 ``[m]``: the row of each query (``-1``: not a row)."""
        query = np.ascontiguousarray(query)
        position = np.minimum(np.searchsorted(self._keys, _leading_key(query)), self._keys.size - 1)
        rows = self._order[position]
        exact = (self._rows[rows].view(np.uint32) == query.view(np.uint32)).all(axis=1)
        for j in np.flatnonzero(~exact).tolist():
            found = self.find(query[j])
            rows[j] = -1 if found is None else found
        return rows


def _leading_key(rows: np.ndarray) -> np.ndarray:
    """The first 8 bytes of each float32 row (zero-padded for a row of one value) as one integer."""
    if rows.shape[1] >= 2:
        return rows[:, :2].copy().view(np.uint64)[:, 0]
    return rows[:, 0].view(np.uint32).astype(np.uint64)


# Fixed scorer -> (context, perf, cost, row index): shared by every PacedPolicy wrapping the same
# scorer (an evaluation builds one policy per budget and seed).
_PREDICTIONS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _all_predictions(scorer: Scorer, ctx: RoutingContext) -> tuple[np.ndarray, np.ndarray, _RowIndex]:
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
    expected = (ctx.query_obs.shape[0], ctx.n_models)
    for what, values in (("performance", perf), ("cost", cost)):
        if np.shape(values) != expected:
            raise ValueError(
                f"{type(scorer).__name__}.predict gave {what} of shape {np.shape(values)}, expected {expected} "
                f"(queries, models of {ctx.table.source}): was it fitted on another table?"
            )
    for what, values in (("performance", perf), ("cost", cost)):
        bad = ~np.isfinite(np.asarray(values, dtype=np.float64))
        if bad.any():
            row, column = (int(i[0]) for i in np.nonzero(bad))
            raise ValueError(
                f"{type(scorer).__name__}.predict gave {int(bad.sum())} non-finite {what} value(s) (first at "
                f"row {row}, model {column}): a paced policy needs finite predictions"
            )
    entry = (
        ctx,
        np.asarray(perf, dtype=np.float64),
        np.asarray(cost, dtype=np.float64),
        _RowIndex(ctx.query_obs),
    )
    with contextlib.suppress(TypeError):
        _PREDICTIONS[scorer] = entry
    return entry[1:]
