"""Budget pacing that reacts when the world changes: realized prices, availability, the traffic mix.

:class:`~agents.pacing.PacedPolicy` paces with what it learned before the deployment: the cost
estimates of the price table, a spend curve calibrated on the training queries with every model
callable. Under a scenario (:mod:`mmr_gym.scenarios`) each of those can go stale, and
:class:`AdaptivePacedPolicy` learns online, from what the environment shows and the feedback of
each call (never an unchosen model's outcome), what has changed:

- **prices**: a :class:`CostRatioTracker` learns, per model, the ratio of the realized cost of its
  calls (``info["cost"]``) to the cost the observation showed for them (``obs["model_costs"]``),
  with a memory of a few dozen calls; every cost the policy paces with is the shown estimate times
  that ratio. A stale price table (a cut the table does not show) is so corrected after a few
  calls. When the table itself changes a model's price (an announcement), that model's ratio
  starts over.
- **availability**: a model that cannot be called shows cost 0 and is masked; the spend curve is
  re-solved over the models that can be called now, as soon as that set changes (an outage, a
  new model), instead of planning with calls that cannot be made.
- **traffic**: the spend curve is calibrated on the last ``calibration_window`` queries the
  policy was shown (their features and price-table estimates, never their outcomes) rather than
  on the training queries, so it follows a drifting mix.

The environment's action mask still uses the shown (possibly stale) estimates: this policy only
chooses differently among the models it allows. The choice rule is the paced one (see
:mod:`agents.pacing`): the highest ``perf - lambda * cost`` among the allowed models, with
``cost`` the corrected estimate, the reserve and its fallback checked on it too.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from typing import Any

import numpy as np

from agents.pacing import PacedPolicy, Scorer, _RowIndex, spend_curve
from mmr_gym.checks import check_float, check_int
from mmr_gym.context import RoutingContext
from mmr_gym.env import MMRRoutingEnv
from mmr_gym.policy import Policy

__all__ = ["AdaptivePacedPolicy", "CostRatioTracker"]

#: Below this many queries seen, the spend curve is calibrated on the training queries instead.
MIN_CALIBRATION = 100
_RESCALED = 0.01  # a relative change of a shown price larger than this is a new price table entry


class CostRatioTracker:
    """Per model: realized cost over shown cost, from the calls made, with exponential forgetting.

    ``ratio_k = R_k / S_k``, the sums of the realized and of the shown costs of model ``k``'s calls,
    each weighted by ``gamma ** age`` (``age``: how many calls of ``k`` came after it; ``gamma = 1 -
    1 / memory``), beginning with ``prior_calls`` pseudo-calls of ``typical_cost[k]`` at ratio 1
    that are forgotten like the rest: before any call the ratio is 1, after a few memories of
    calls it is the recent calls' alone.

    Args:
        typical_cost: float ``[K]``, each model's typical shown cost (any unit the updates use).
        memory: calls over which the ratio is learned (the forgetting time), >= 1.
        prior_calls: the weight of the prior ratio 1, in calls of typical cost.
    """

    def __init__(
        self, typical_cost: Sequence[float], *, memory: float = 20.0, prior_calls: float = 1.0
    ) -> None:
        typical = np.asarray(typical_cost, dtype=np.float64)
        if typical.ndim != 1 or not typical.size or not np.isfinite(typical).all() or (typical < 0).any():
            raise ValueError(f"typical_cost must be a 1-d array of finite costs >= 0, got {typical_cost!r}")
        self.memory = check_float("memory", memory, low=1.0)
        self.prior_calls = check_float("prior_calls", prior_calls, low=0.0, low_open=True)
        self.gamma = 1.0 - 1.0 / self.memory
        # A model that is free on the training split still gets a prior (else 0 / 0).
        self.prior = self.prior_calls * np.where(typical > 0, typical, 1.0)
        self.realized = self.prior.copy()
        self.shown = self.prior.copy()

    @property
    def ratios(self) -> np.ndarray:
        """float64 ``[K]``: each model's realized / shown cost ratio as learned so far."""
        return self.realized / self.shown

    def update(self, model: int, realized: float, shown: float) -> None:
        """One call of ``model``: it was shown at ``shown`` and cost ``realized`` (same unit)."""
        if not (np.isfinite(realized) and np.isfinite(shown)) or shown <= 0 or realized < 0:
            return  # nothing to learn: a call shown as free (no price known) or a bad number
        self.realized[model] = self.gamma * self.realized[model] + realized
        self.shown[model] = self.gamma * self.shown[model] + shown

    def forget(self, model: int) -> None:
        """Start model ``model`` over from the prior (its price table entry changed)."""
        self.realized[model] = self.shown[model] = self.prior[model]


class AdaptivePacedPolicy(PacedPolicy):
    """:class:`~agents.pacing.PacedPolicy` whose costs, spend curve and availability follow the world.

    Args:
        scorer: as :class:`~agents.pacing.PacedPolicy` (a fitted router, a learner, or a router name).
        cost_memory: calls of a model over which its realized/shown cost ratio is learned.
        calibration_window: the spend curve is calibrated on this many of the last queries shown.
        **paced: the other :class:`~agents.pacing.PacedPolicy` arguments (``name``, ``reserve``,
            ``models``, ``price``, ``cost_source``).
    """

    def __init__(
        self,
        scorer: Scorer | str = "auto",
        *,
        cost_memory: float = 20.0,
        calibration_window: int = 300,
        name: str | None = None,
        **paced: Any,
    ) -> None:
        super().__init__(scorer, name=name, **paced)
        if name is None:
            self.name = "Adaptive-" + self.name
        self.cost_memory = check_float("cost_memory", cost_memory, low=1.0)
        self.calibration_window = check_int("calibration_window", calibration_window, low=1)
        self.info_keys = ("model_index", "correct", "cost")  # it learns from every call's cost
        self.episodic = False  # what it learns of prices and traffic carries over between episodes
        self._tracker: CostRatioTracker | None = None

    # ------------------------------------------------------------------ Policy API
    def begin_episode(self, env: MMRRoutingEnv) -> None:
        if self._tracker is None or self._facts_ctx is not env.ctx:
            self._start_deployment(env.ctx)
        super().begin_episode(env)
        if self._budgeted and self.price is None and not self.learns:
            self._spend = self._spend_curve()  # a learner's was just computed by the parent

    def observe(self, action: int, reward: float, info: dict[str, Any]) -> None:
        super().observe(action, reward, info)
        called = int(info["model_index"])  # the environment may have replaced a masked action
        self._tracker.update(called, float(info["cost"]) / self._c_ref, float(self._shown[called]))

    # One copy per lane (each lane is its own deployment, with its own memory of the world).
    def reset_lanes(self, n: int, make: Any = None) -> None:
        Policy.reset_lanes(self, n, make)

    def begin_episodes(self, env: Any, rows: np.ndarray) -> None:
        Policy.begin_episodes(self, env, rows)

    def act_batch(self, obs: Any, info: dict[str, Any], active: np.ndarray) -> np.ndarray:
        return Policy.act_batch(self, obs, info, active)

    def observe_batch(
        self, actions: np.ndarray, rewards: np.ndarray, info: dict[str, Any], active: np.ndarray
    ) -> None:
        Policy.observe_batch(self, actions, rewards, info, active)

    # ------------------------------------------------------------------ what it learns of the world
    def _start_deployment(self, ctx: RoutingContext) -> None:
        train = ctx.train_indices
        k = ctx.n_models
        self._tracker = CostRatioTracker(ctx.model_costs_obs[train].mean(axis=0), memory=self.cost_memory)
        self._known_scale = np.ones(k)  # the price table's factor on each model's training estimate
        self._available: np.ndarray | None = None  # which models can be called now (None: not seen yet)
        self._window = np.zeros(self.calibration_window, dtype=np.int64)  # table rows of recent queries
        self._seen = 0
        self._rows = _row_index(ctx)

    def _pacing_costs(self, query: np.ndarray, shown: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Takes in what the observation shows (:meth:`_see`); paces with the shown estimates times
        each model's learned realized/shown ratio."""
        self._see(query, shown, mask)
        self._shown = shown  # what observe compares the call's realized cost with
        return shown * self._tracker.ratios

    def _see(self, query: np.ndarray, shown: np.ndarray, mask: np.ndarray) -> None:
        """Take in what the observation shows: the query (for calibration), prices and availability."""
        ctx = self._ctx
        available = mask | (shown > 0)  # unavailable: masked and shown as free
        row = self._rows.find(query)
        if row is not None:
            self._window[self._seen % self.calibration_window] = row
            self._seen += 1
            base = ctx.model_costs_obs[row].astype(np.float64)
            readable = available & (base > 0)
            scale = np.divide(shown, base, out=np.ones_like(shown), where=readable)
            changed = readable & (np.abs(scale - self._known_scale) > _RESCALED * self._known_scale)
            for model in np.flatnonzero(changed).tolist():
                self._tracker.forget(model)  # a new price in the table: the old ratio no longer holds
            self._known_scale = np.where(readable, scale, self._known_scale)
        if self._available is None or not np.array_equal(available, self._available):
            self._available = available
            if self._budgeted and self.price is None:
                self._spend = self._spend_curve()  # plan with the models that can be called now

    def _spend_curve(self) -> np.ndarray:
        """``S`` (see :mod:`agents.pacing`) over the recent queries (the training queries until
        :data:`MIN_CALIBRATION` were seen), with corrected costs and the models available now."""
        ctx = self._ctx
        if self._seen >= MIN_CALIBRATION:
            rows = self._window[: min(self._seen, self.calibration_window)]
        else:  # too few queries seen yet: the training queries, as PacedPolicy calibrates
            rows = self._calibration_rows()
        perf, predicted = self._calibration_scores(rows)
        if self.cost_source == "env":
            cost = ctx.model_costs_obs[rows].astype(np.float64) * (self._known_scale * self._tracker.ratios)
        else:
            cost = predicted / self._c_ref
        callable_now = self._known if self._available is None else self._known & self._available
        return spend_curve(perf, cost, callable_now, self._prior)


_ROW_INDEXES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _row_index(ctx: RoutingContext) -> _RowIndex:
    """Which table row an observed query is (shared by every policy on ``ctx``)."""
    index = _ROW_INDEXES.get(ctx)
    if index is None:
        index = _ROW_INDEXES[ctx] = _RowIndex(ctx.query_obs)
    return index
