"""Bandits that forget, and the adaptive policies built on them, for worlds that change (scenarios).

The learners are LinUCB and linear Thompson sampling (:mod:`agents.bandits`) on
:class:`~agents.forgetting.ForgettingRidge` statistics: per model, a ridge regression of
performance and cost anchored to a prior and fitted on recent observations only, with discounting
(``"discount"``: D-LinUCB, D-LinTS) or a sliding window (``"window"``: SW-LinUCB, SW-LinTS).

Warm start (:meth:`ForgettingLinUCB.warm_start`): the prior is what a router learns before the
deployment, a ridge fit on the training split with full information (every model's outcome on every
training query), so a learner starts from what the static router knows and moves away from it only
as bandit feedback (the called model's correctness and cost) contradicts it. A model the learner did
not know at warm start (one that arrives later: ``known``) gets the prior of the most accurate known
model, optimism that makes it worth a try once it can be called.

:func:`adaptive_bandit` puts a learner inside :class:`~agents.adaptive_pacing.AdaptivePacedPolicy`
(prices, availability and the traffic mix learned online), which is what the scenario benchmark
runs; :data:`ADAPTIVE_BANDITS` names the four learners.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from agents.adaptive_pacing import AdaptivePacedPolicy
from agents.bandits import LinearTSBandit, LinUCBBandit
from agents.forgetting import ForgettingRidge
from agents.pacing import _all_predictions
from agents.ridge import RidgeStatistics
from mmr_gym.env import MMRRoutingEnv

__all__ = [
    "ADAPTIVE_BANDITS",
    "BasePredictions",
    "ForgettingLinTS",
    "ForgettingLinUCB",
    "adaptive_bandit",
    "make_adaptive_bandit",
]


class BasePredictions:
    """A fitted router's predictions for every query of a context, looked up by the query's bytes.

    The anchor of a learner that learns the router's residual (:meth:`ForgettingLinUCB.anchor`):
    one batched prediction of every row instead of one call per step. Models not ``known`` get the
    predictions of the most accurate known model (``prior``: accuracy per model on the training split).
    """

    def __init__(self, router: Any, ctx: Any, known: np.ndarray) -> None:
        self.router = router
        perf, cost, self._rows = _all_predictions(router, ctx)
        accuracy = np.where(known, ctx.table.correct[ctx.train_indices].mean(axis=0), -np.inf)
        self.columns = np.where(known, np.arange(known.size), int(np.argmax(accuracy)))
        self._perf, self._cost = perf[:, self.columns], cost[:, self.columns]

    def predict(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(perf, cost)`` float64 ``[n, K]`` for query features ``X`` ``[n, d]`` (float32 rows of the context)."""
        X = np.ascontiguousarray(X, dtype=np.float32)
        rows = self._rows.find_batch(X)
        perf, cost = self._perf[rows], self._cost[rows]
        missing = np.flatnonzero(rows < 0)
        if missing.size:  # not a row of the context: ask the router
            p, c = self.router.predict(X[missing])
            perf[missing] = np.asarray(p, dtype=np.float64)[:, self.columns]
            cost[missing] = np.asarray(c, dtype=np.float64)[:, self.columns]
        return perf, cost


class _Forgetting:
    """What the forgetting learners share: the statistics, the warm start as a prior, their names."""

    stats: ForgettingRidge
    base: BasePredictions | None = None
    #: ``(x, base perf, base cost)`` of the last query scored: the update that follows reuses them.
    _last_base: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    def anchor(self, base: BasePredictions) -> None:
        """Learn the residual of ``base`` (a router's predictions): every estimate is ``base``'s plus
        the learned correction, which starts at 0 and forgets toward 0."""
        self.base = base
        self.stats.set_prior(np.zeros_like(self.stats.prior_perf), np.zeros_like(self.stats.prior_cost))
        self._last_base = None

    def _base(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.base is None:
            zeros = np.zeros((X.shape[0], self.n_models))
            return zeros, zeros
        return self.base.predict(X)

    def predict(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Point estimates ``(perf, cost)``: float64 ``[n, K]`` each (cost in the table's unit)."""
        perf, cost = self.stats.means(RidgeStatistics.augment(X))
        base_perf, base_cost = self._base(X)
        return perf + base_perf, cost + base_cost

    def _scores(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(perf, cost, width)`` for one query: point estimates and confidence widths, ``[K]`` each."""
        z = RidgeStatistics.augment(x)
        perf, cost = self.stats.means(z[None, :])
        base_perf, base_cost = self._base(x[None, :])
        self._last_base = (x, base_perf[0], base_cost[0])
        return perf[0] + base_perf[0], cost[0] + base_cost[0], self.stats.widths(z)

    def update(self, x: np.ndarray, action: int, correct: float, cost: float) -> None:
        """Learn from calling model ``action`` on ``x``: its correctness and cost (table unit)."""
        if self.base is None:
            self.stats.update(RidgeStatistics.augment(x), action, correct, cost)
            return
        cached = self._last_base
        if cached is not None and np.array_equal(cached[0], x):
            base_perf, base_cost = cached[1], cached[2]
        else:
            base_perf, base_cost = (a[0] for a in self._base(np.asarray(x)[None, :]))
        residual_perf, residual_cost = correct - base_perf[action], cost - base_cost[action]
        self.stats.update(RidgeStatistics.augment(x), action, residual_perf, residual_cost)

    def _set_forgetting(
        self,
        forgetting: str,
        gamma: float,
        window: int,
        slope_precision: float,
        level_precision: float,
    ) -> None:
        """Keep the forgetting arguments and name the learner; called before the base learner's
        constructor, whose :meth:`_make_stats` builds the statistics from them."""
        self.forgetting, self.gamma, self.window = forgetting, gamma, window
        self.slope_precision, self.level_precision = slope_precision, level_precision
        self.name = ("D-" if forgetting == "discount" else "SW-") + type(self).name

    def _make_stats(self) -> ForgettingRidge:
        return ForgettingRidge(
            self.n_models,
            self.dim,
            forgetting=self.forgetting,
            gamma=self.gamma,
            window=self.window,
            slope_precision=self.slope_precision,
            level_precision=self.level_precision,
        )

    def warm_start(
        self, X: np.ndarray, correct: np.ndarray, cost: np.ndarray, known: Sequence[bool] | None = None
    ) -> None:
        """Set the prior to a ridge fit (penalty ``ridge``) on labelled queries with full information.

        Args:
            X: float ``[n, dim]`` query features.
            correct, cost: float ``[n, K]``: every model's correctness and cost (table unit) on them.
            known: bool ``[K]``, the models whose columns the warm start may use (None: all); every
                other model gets the prior of the most accurate known one.
        """
        Z = RidgeStatistics.augment(X)
        correct = np.asarray(correct, dtype=np.float64)
        cost = np.asarray(cost, dtype=np.float64)
        if correct.shape != (Z.shape[0], self.n_models) or cost.shape != correct.shape:
            raise ValueError(
                f"warm_start: correct and cost must be [{Z.shape[0]}, {self.n_models}], "
                f"got {correct.shape} and {cost.shape}"
            )
        gram = self.ridge * np.eye(Z.shape[1]) + Z.T @ Z
        theta_perf = np.linalg.solve(gram, Z.T @ correct).T  # [K, p]
        theta_cost = np.linalg.solve(gram, Z.T @ cost).T
        if known is not None:
            known = np.asarray(known, dtype=bool)
            if known.shape != (self.n_models,) or not known.any():
                raise ValueError(
                    f"warm_start: known must be {self.n_models} booleans, some True, got {known}"
                )
            accuracy = np.where(known, correct.mean(axis=0), -np.inf)
            best = int(np.argmax(accuracy))
            theta_perf[~known] = theta_perf[best]
            theta_cost[~known] = theta_cost[best]
        self.stats.set_prior(theta_perf, theta_cost)


class ForgettingLinUCB(_Forgetting, LinUCBBandit):
    """LinUCB on forgetting statistics: D-LinUCB (``forgetting="discount"``) or SW-LinUCB (``"window"``).

    Args:
        n_models, dim: number of models and of query features.
        alpha: width of the optimism bonus (accuracy units per unit of confidence width).
        forgetting, gamma, window, slope_precision, level_precision: see
            :class:`~agents.forgetting.ForgettingRidge`.
        ridge: the penalty of the warm start's ridge fit.
        seed: unused (LinUCB is deterministic); accepted so every learner takes one.
    """

    name = "LinUCB"

    def __init__(
        self,
        n_models: int,
        dim: int,
        *,
        alpha: float = 0.1,
        forgetting: str = "discount",
        gamma: float = 0.995,
        window: int = 200,
        slope_precision: float = 1000.0,
        level_precision: float = 10.0,
        ridge: float = 10.0,
        seed: int = 0,
    ) -> None:
        self._set_forgetting(forgetting, gamma, window, slope_precision, level_precision)
        LinUCBBandit.__init__(self, n_models, dim, alpha=alpha, ridge=ridge, seed=seed)

    def act_scores(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        perf, cost, width = self._scores(x)
        return perf + self.alpha * width, cost


class ForgettingLinTS(_Forgetting, LinearTSBandit):
    """Linear Thompson sampling on forgetting statistics: D-LinTS or SW-LinTS.

    Args:
        n_models, dim: number of models and of query features.
        v: posterior scale (accuracy units).
        forgetting, gamma, window, slope_precision, level_precision: see
            :class:`~agents.forgetting.ForgettingRidge`.
        ridge: the penalty of the warm start's ridge fit.
        seed: seed of the posterior draws.
    """

    name = "LinTS"

    def __init__(
        self,
        n_models: int,
        dim: int,
        *,
        v: float = 0.1,
        forgetting: str = "discount",
        gamma: float = 0.995,
        window: int = 200,
        slope_precision: float = 1000.0,
        level_precision: float = 10.0,
        ridge: float = 10.0,
        seed: int = 0,
    ) -> None:
        self._set_forgetting(forgetting, gamma, window, slope_precision, level_precision)
        LinearTSBandit.__init__(self, n_models, dim, v=v, ridge=ridge, seed=seed)

    def act_scores(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        perf, cost, width = self._scores(x)
        return perf + self.v * width * self.rng.standard_normal(perf.size), cost


#: Learner name -> (class, the keyword arguments that make it that learner).
ADAPTIVE_BANDITS: dict[str, tuple[type, dict[str, Any]]] = {
    "linucb-discounted": (ForgettingLinUCB, {"forgetting": "discount"}),
    "linucb-window": (ForgettingLinUCB, {"forgetting": "window"}),
    "lin-ts-discounted": (ForgettingLinTS, {"forgetting": "discount"}),
    "lin-ts-window": (ForgettingLinTS, {"forgetting": "window"}),
}


def make_adaptive_bandit(
    name: str,
    env: MMRRoutingEnv,
    *,
    warm_start: bool = True,
    models: Sequence[str] | None = None,
    base: Any = None,
    **kwargs: Any,
) -> ForgettingLinUCB | ForgettingLinTS:
    """A learner of :data:`ADAPTIVE_BANDITS` sized for ``env``, warm-started on its training split.

    Args:
        name: a key of :data:`ADAPTIVE_BANDITS`.
        env: any environment over the table (its context's training split is used).
        warm_start: set the prior from the training split with full information (else it is 0).
        models: the models known at warm start (None: all); the others start from the optimistic
            prior (see :meth:`ForgettingLinUCB.warm_start`).
        base: a router fitted on the training split: the learner learns its residual instead
            (:meth:`ForgettingLinUCB.anchor`; ``warm_start`` is then ignored).
        **kwargs: the learner's arguments (``gamma``, ``window``, ``alpha``, ``v``, ``seed``...).
    """
    if name not in ADAPTIVE_BANDITS:
        raise ValueError(f"unknown adaptive bandit {name!r}; choose from {sorted(ADAPTIVE_BANDITS)}")
    cls, preset = ADAPTIVE_BANDITS[name]
    ctx = env.unwrapped.ctx
    learner = cls(ctx.n_models, ctx.query_obs.shape[1], **{**preset, **kwargs})
    names = ctx.table.model_names
    if models is not None and (isinstance(models, str) or not set(models) <= set(names)):
        raise ValueError(f"models must be model names of {ctx.table.source}: {names}; got {models!r}")
    known = None if models is None else [m in models for m in names]
    if base is not None:
        learner.anchor(
            BasePredictions(base, ctx, np.ones(len(names), bool) if known is None else np.array(known))
        )
        learner.name = f"{learner.name}({getattr(base, 'name', type(base).__name__)})"
    elif warm_start:
        rows = ctx.train_indices
        learner.warm_start(ctx.query_obs[rows], ctx.table.correct[rows], ctx.table.cost[rows], known=known)
    return learner


def adaptive_bandit(
    name: str,
    env: MMRRoutingEnv,
    *,
    models: Sequence[str] | None = None,
    pacing: dict[str, Any] | None = None,
    **kwargs: Any,
) -> AdaptivePacedPolicy:
    """A warm-started learner of :data:`ADAPTIVE_BANDITS` inside :class:`AdaptivePacedPolicy`.

    ``models``: the models known at warm start (the learner may still call, and learn, the others);
    ``pacing``: :class:`AdaptivePacedPolicy` arguments; ``kwargs``: the learner's.
    """
    learner = make_adaptive_bandit(name, env, models=models, **kwargs)
    label = f"Adaptive-{learner.name}" + ("" if learner.base is not None else "-warm")
    return AdaptivePacedPolicy(learner, **{"name": label, **(pacing or {})})
