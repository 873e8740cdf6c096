"""Logging policies that state their propensities, for off-policy evaluation (:mod:`mmr_gym.ope`).

Each is a :class:`~mmr_gym.policy.Policy` whose ``action_probabilities(obs, info)`` gives its
distribution over the ``K`` models for the current query (zero on the masked ones); ``act`` draws
from exactly that distribution with the policy's own seeded generator, and
:func:`mmr_gym.ope.collect_log` draws the logged action from it and records its probability:

- :class:`UniformPolicy`: uniform over the affordable models (the logger replay wants);
- :class:`EpsilonGreedyPolicy`: any router (any Policy: a paced supervised router, a bandit...)
  with probability ``1 - epsilon``, uniform over the affordable models otherwise;
- :class:`SoftmaxPolicy`: a softmax over a scorer's predicted ``perf - price * cost / c_ref``;
- :class:`ThompsonSamplingPolicy`: linear Thompson sampling, whose probabilities (the chance that
  each model's posterior draw wins) are estimated by Monte Carlo; the policy then draws its action
  from that estimate, so the stated probability is exactly the one the action was drawn with.

When a policy's distribution itself comes from a random draw (a learning router's sampled scores
inside epsilon-greedy, the Monte Carlo estimate of Thompson sampling), the stated probabilities are
those of the action *given* that draw: inverse propensity weights stay unbiased, because the draw
does not depend on the outcome.

The same classes serve as stochastic *targets*: the estimators read ``action_probabilities``.
"""

from __future__ import annotations

import hashlib
import weakref
from typing import Any

import numpy as np

from agents.bandits import RidgeStatistics
from mmr_gym.context import RoutingContext
from mmr_gym.env import MMRRoutingEnv
from mmr_gym.policy import Policy


class PropensityPolicy(Policy):
    """Base class: ``act`` draws from :meth:`action_probabilities` with the policy's generator.

    Args:
        seed: seeds the policy's generator (its action draws, and any Monte Carlo).
    """

    def __init__(self, seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed)

    def action_probabilities(self, obs: dict[str, np.ndarray], info: dict[str, Any]) -> np.ndarray:
        """float64 ``[K]``: the probability of calling each model for this query (0 where masked)."""
        raise NotImplementedError

    def act(self, obs: dict[str, np.ndarray], info: dict[str, Any]) -> int:
        probs = self.action_probabilities(obs, info)
        return int(self.rng.choice(probs.size, p=probs))


def _mask(info: dict[str, Any]) -> np.ndarray:
    mask = np.asarray(info["action_mask"], dtype=bool)
    if not mask.any():
        raise ValueError("no affordable model: the environment should have ended the episode")
    return mask


class UniformPolicy(PropensityPolicy):
    """Uniform over the affordable models: propensity ``1 / (number affordable)``."""

    name = "Uniform"

    def action_probabilities(self, obs: dict[str, np.ndarray], info: dict[str, Any]) -> np.ndarray:
        mask = _mask(info)
        return mask / mask.sum()


class EpsilonGreedyPolicy(PropensityPolicy):
    """``base``'s choice with probability ``1 - epsilon``, uniform over the affordable models otherwise.

    ``base`` is any policy (deterministic, or with its own randomness: then the probabilities are
    given its draw). A masked choice of ``base`` counts as the cheapest affordable model, which the
    environment's fallback would call. ``begin_episode`` and ``observe`` are passed on, so a
    learning ``base`` keeps learning from the actions actually taken. Call
    :meth:`action_probabilities` once per step: it asks ``base`` to act.

    Args:
        base: the router to explore around.
        epsilon: exploration probability in [0, 1].
        seed: seeds the policy's action draws.
    """

    def __init__(self, base: Policy, epsilon: float = 0.1, seed: int = 0) -> None:
        if not 0.0 <= epsilon <= 1.0:
            raise ValueError(f"epsilon must be in [0, 1], got {epsilon!r}")
        super().__init__(seed)
        self.base = base
        self.epsilon = float(epsilon)
        self.name = f"EpsGreedy({getattr(base, 'name', type(base).__name__)}, {epsilon:g})"

    def begin_episode(self, env: MMRRoutingEnv) -> None:
        self.base.begin_episode(env)

    def action_probabilities(self, obs: dict[str, np.ndarray], info: dict[str, Any]) -> np.ndarray:
        mask = _mask(info)
        greedy = int(self.base.act(obs, info))
        if not mask[greedy]:  # the environment's fallback
            greedy = int(np.argmin(np.where(mask, obs["model_costs"], np.inf)))
        probs = self.epsilon * mask / mask.sum()
        probs[greedy] += 1.0 - self.epsilon
        return probs

    def observe(self, action: int, reward: float, info: dict[str, Any]) -> None:
        self.base.observe(action, reward, info)


class _Predictions:
    """A fixed scorer's predictions for every query of a context, looked up by the query's bytes."""

    def __init__(self, scorer: Any) -> None:
        self.scorer = scorer
        self._ctx: RoutingContext | None = None

    def learn_context(self, ctx: RoutingContext) -> None:
        if self._ctx is ctx:
            return
        perf, cost = self.scorer.predict(ctx.query_obs)
        self._perf = np.asarray(perf, dtype=np.float64)
        self._row = {row.tobytes(): i for i, row in enumerate(ctx.query_obs)}
        self._ctx = ctx

    def perf(self, query: np.ndarray) -> np.ndarray:
        query = np.asarray(query, dtype=np.float32)
        row = self._row.get(query.tobytes()) if self._ctx is not None else None
        if row is None:
            return np.asarray(self.scorer.predict(query[None, :])[0][0], dtype=np.float64)
        return self._perf[row]


class SoftmaxPolicy(PropensityPolicy):
    """A softmax over predicted scores: ``p(k) ~ exp((perf[k] - price * model_costs[k]) / temperature)``.

    Over the affordable models; ``perf`` is a scorer's predicted correctness (a fitted router of
    :mod:`agents.supervised`: ``predict(X) -> (perf, cost)``), ``model_costs`` the observation's cost
    estimates relative to ``c_ref``.

    Args:
        scorer: the fitted scorer (it must not change while the policy uses it).
        temperature: in accuracy units (> 0): small is nearly greedy, large nearly uniform.
        price: accuracy given up per ``c_ref`` of estimated cost (0: accuracy only).
        seed: seeds the policy's action draws.
    """

    def __init__(self, scorer: Any, temperature: float = 0.1, price: float = 0.0, seed: int = 0) -> None:
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature!r}")
        super().__init__(seed)
        self.scorer = scorer
        self.temperature = float(temperature)
        self.price = float(price)
        self._predictions = _Predictions(scorer)
        self.name = f"Softmax({getattr(scorer, 'name', type(scorer).__name__)}, T={temperature:g})"

    def begin_episode(self, env: MMRRoutingEnv) -> None:
        self._predictions.learn_context(env.ctx)

    def action_probabilities(self, obs: dict[str, np.ndarray], info: dict[str, Any]) -> np.ndarray:
        mask = _mask(info)
        score = self._predictions.perf(obs["query"]) - self.price * obs["model_costs"]
        score = np.where(mask, score / self.temperature, -np.inf)
        weights = np.exp(score - score.max())
        return weights / weights.sum()


class ThompsonSamplingPolicy(PropensityPolicy):
    """Linear Thompson sampling with Monte Carlo propensities.

    Each model's score is a posterior draw of its correctness (a :class:`~agents.bandits.LinearTSBandit`:
    ``N(mean_k, v^2 z^T A_k^-1 z)`` for the query ``z``) minus ``price * model_costs[k]``; Thompson
    sampling calls the affordable model with the best draw. The chance that each model wins is
    estimated from ``n_draws`` draws, and the action is drawn from that estimate: the stated
    probability is exact for the action taken, and within ``1 / sqrt(n_draws)`` or so of Thompson
    sampling's own. A model that wins none of the draws gets probability 0 (the estimators' support
    checks then say so if a target calls it).

    Args:
        learner: a fitted or fresh :class:`~agents.bandits.LinearTSBandit` (``stats`` and ``v``).
        n_draws: Monte Carlo draws per decision.
        price: accuracy given up per ``c_ref`` of estimated cost.
        learn: update ``learner`` from each observed call (the chosen model's outcome only); False
            keeps it frozen (a fixed stochastic policy, e.g. as a target): every query's posterior is
            then read once per context, so ``learner`` must not change while the policy is used.
        seed: seeds the draws.
    """

    def __init__(
        self, learner: Any, n_draws: int = 256, price: float = 0.0, learn: bool = True, seed: int = 0
    ) -> None:
        if not (hasattr(learner, "stats") and hasattr(learner, "v")):
            raise TypeError(
                f"ThompsonSamplingPolicy needs a LinearTSBandit-like learner (stats, v), got {learner!r}"
            )
        if int(n_draws) != n_draws or n_draws < 1:
            raise ValueError(f"n_draws must be an integer >= 1, got {n_draws!r}")
        super().__init__(seed)
        self.learner = learner
        self.n_draws = int(n_draws)
        self.price = float(price)
        self.learn = learn
        self.name = f"TS-MC({getattr(learner, 'name', type(learner).__name__)})"
        self._query: np.ndarray | None = None
        self._posterior_ctx: RoutingContext | None = None

    def begin_episode(self, env: MMRRoutingEnv) -> None:
        if not self.learn and self._posterior_ctx is not env.ctx:
            self._posterior, self._row = _frozen_posterior(self.learner, env.ctx)
            self._posterior_ctx = env.ctx

    def _mean_width(self, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        stats = self.learner.stats
        return stats.means(z[None, :])[0][0], self.learner.v * stats.widths(z)

    def action_probabilities(self, obs: dict[str, np.ndarray], info: dict[str, Any]) -> np.ndarray:
        mask = _mask(info)
        query = np.asarray(obs["query"], dtype=np.float32)
        row = self._row.get(query.tobytes()) if self._posterior_ctx is not None else None
        if row is None:
            mean, width = self._mean_width(RidgeStatistics.augment(query))
        else:
            mean, width = self._posterior[0][row], self._posterior[1][row]
        self._query = query
        draws = mean + width * self.rng.standard_normal((self.n_draws, mean.size))
        scores = np.where(mask, draws - self.price * obs["model_costs"], -np.inf)
        wins = np.bincount(np.argmax(scores, axis=1), minlength=mean.size)
        return wins / self.n_draws

    def observe(self, action: int, reward: float, info: dict[str, Any]) -> None:
        if self.learn and self._query is not None:
            self.learner.update(
                self._query, int(info["model_index"]), float(info["correct"]), float(info["cost"])
            )


# Frozen learner -> (context, fingerprint of its statistics, (means, widths), row of query bytes):
# every policy around the same unchanged learner shares one computation per context.
_POSTERIORS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _frozen_posterior(
    learner: Any, ctx: RoutingContext
) -> tuple[tuple[np.ndarray, np.ndarray], dict[bytes, int]]:
    """Posterior means and widths (``v * sqrt(z^T A_k^-1 z)``), float64 ``[n, K]``, of every query of ``ctx``."""
    stats = learner.stats
    A_inv = stats.A_inv  # a property that builds [K, p, p] afresh: read once
    # Any update moves the diagonal of some A_k^-1 and a solution: they stand for the whole state.
    fingerprint = hashlib.sha256(
        np.einsum("kii->ki", A_inv).tobytes() + stats.theta_perf.tobytes() + bytes(str(learner.v), "ascii")
    ).digest()
    cached = _POSTERIORS.get(learner)
    if cached is not None and cached[0] is ctx and cached[1] == fingerprint:
        return cached[2], cached[3]
    Z = RidgeStatistics.augment(ctx.query_obs)
    means = stats.means(Z)[0]
    # One matrix product per model instead of one per query and model.
    widths = np.stack([np.einsum("ij,ij->i", Z @ A, Z) for A in A_inv], axis=1)
    posterior = (means, learner.v * np.sqrt(np.maximum(widths, 0.0)))
    rows = {row.tobytes(): i for i, row in enumerate(ctx.query_obs)}
    _POSTERIORS[learner] = (ctx, fingerprint, posterior, rows)
    return posterior, rows
