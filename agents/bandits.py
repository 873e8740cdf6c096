"""Contextual bandit learners for routing: they learn online from the chosen model's outcome only.

Every learner keeps, per model, an estimate of performance and of cost as functions of the query
features, and exposes the :class:`~agents.pacing.OnlineScorer` interface:

- ``predict(X) -> (perf, cost)``: point estimates, float64 ``[n, K]`` (cost in the table's unit);
- ``act_scores(x) -> (perf, cost)``: what a decision uses for one query ``x`` ``[d]``: optimistic
  (LinUCB, neural), sampled (Thompson) or, with probability epsilon, random (epsilon-greedy);
- ``update(x, action, correct, cost)``: learn from calling model ``action`` on ``x``.

They are policies only inside :class:`~agents.pacing.PacedPolicy`, which chooses under the budget
and forwards each step's feedback (``info["correct"]`` and ``info["cost"]`` of the called model;
never ``info["outcomes"]``): see :func:`paced_bandit`. A learner keeps learning across the episodes
it is used for (the online setting: the evaluator builds one per budget and seed and runs the whole
test split through it). ``warm_start(X, correct, cost)`` optionally fits it first on labelled
queries with full information (every model's outcome), e.g. the training split; by default the
learners start from nothing (a cold start).

The linear learners share :class:`~agents.ridge.RidgeStatistics`: per model ``k`` the ridge design matrix
``A_k = ridge * I + sum x x^T`` over the queries where ``k`` was called (features plus a constant
1), kept as its inverse by Sherman-Morrison rank-1 updates (in low-rank form while a model has few
observations), and the response sums ``b_k``.

Saving (:mod:`agents.persistence`): every learner has ``get_params()`` (its constructor arguments,
each kept as the attribute of its name) and ``state_dict()`` / ``load_state_dict()``: everything that
changes as it learns, including its random generator's state, so that a reloaded learner continues
exactly as the original would.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from agents.learner_checks import check_feedback, check_width, checked_labels
from agents.pacing import PacedPolicy
from agents.ridge import RidgeStatistics
from mmr_gym.checks import check_float, check_int
from mmr_gym.env import MMRRoutingEnv

_SEED_MAX = 2**32 - 1  # numpy's and torch's seeds


def _init_params(learner: Any) -> dict[str, Any]:
    """A learner's constructor arguments, each kept as the attribute of its name."""
    names = [name for name in inspect.signature(type(learner).__init__).parameters if name != "self"]
    return {name: getattr(learner, name) for name in names}


def _prefixed(state: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    """The entries of ``state`` whose key starts with ``prefix``, with the prefix removed."""
    return {key[len(prefix) :]: value for key, value in state.items() if key.startswith(prefix)}


class _LinearBandit:
    """Shared parts of the linear learners: ridge statistics on the raw query features."""

    name = "linear-bandit"

    def __init__(self, n_models: int, dim: int, *, ridge: float = 10.0, seed: int = 0) -> None:
        self.n_models = check_int("n_models", n_models, low=1)
        self.dim = check_int("dim", dim, low=1)
        self.ridge = check_float("ridge", ridge, low=0.0, low_open=True)
        self.seed = check_int("seed", seed, low=0, high=_SEED_MAX)
        self.stats = self._make_stats()
        self.rng = np.random.default_rng(self.seed)

    def _make_stats(self) -> RidgeStatistics:
        """The learner's statistics, built once by the constructor (after ``n_models``, ``dim`` and
        ``ridge`` are set): a subclass that learns on other statistics builds those instead."""
        return RidgeStatistics(self.n_models, self.dim, self.ridge)

    @classmethod
    def saved_shapes(
        cls, params: Mapping[str, Any], state: Mapping[str, Any], *, max_layers: int
    ) -> dict[str, tuple[int, ...]]:
        """The array shapes a saved state must have for ``params``, computed without allocating.

        For :mod:`agents.persistence`: checked against the files before the learner is built (the
        constructor allocates ``n_models x (dim + 1)^2`` numbers). ``state`` and ``max_layers`` are
        unused (the linear learners have no layers).
        """
        n_models = check_int("n_models", params.get("n_models"), low=1)
        dim = check_int("dim", params.get("dim"), low=1)
        return {f"stats.{key}": shape for key, shape in RidgeStatistics.shapes(n_models, dim).items()}

    def get_params(self) -> dict[str, Any]:
        """The constructor arguments: ``type(self)(**learner.get_params())`` is this learner unlearned."""
        return _init_params(self)

    def state_dict(self) -> dict[str, Any]:
        """What changed since construction: ``"stats.<array>"`` (numpy) and ``"rng"`` (the
        generator's state, a JSON-able dict)."""
        return {
            **{f"stats.{key}": value for key, value in self.stats.state_dict().items()},
            "rng": self.rng.bit_generator.state,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continue from ``state`` (as :meth:`state_dict` returns it, for the same constructor arguments)."""
        self.stats.load_state_dict(_prefixed(state, "stats."))
        self.rng.bit_generator.state = state["rng"]

    def predict(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Point estimates ``(perf, cost)``: float64 ``[n, K]`` each (cost in the table's unit)."""
        check_width(self.dim, X)
        return self.stats.means(RidgeStatistics.augment(X))

    def update(self, x: np.ndarray, action: int, correct: float, cost: float) -> None:
        """Learn from calling model ``action`` on query ``x``: its correctness and cost (table unit)."""
        check_width(self.dim, x)
        check_feedback(self.n_models, action, correct, cost)
        self.stats.update(RidgeStatistics.augment(x), action, correct, cost)

    def warm_start(self, X: np.ndarray, correct: np.ndarray, cost: np.ndarray) -> None:
        """Fit on labelled queries with full information (``correct``/``cost`` ``[n, K]``)."""
        correct, cost = checked_labels(self.n_models, X, correct, cost)
        self.stats.fit(RidgeStatistics.augment(X), correct, cost)

    def act_scores(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError


class EpsilonGreedyBandit(_LinearBandit):
    """Per-model ridge estimates; with probability ``epsilon`` a random preference over the models.

    Exploring by random scores rather than a random model keeps exploration inside the pacing rule:
    under a tight budget the random preference still pays the price of cost, so it explores among
    the models the budget can carry instead of burning it on the dearest one.

    Args:
        n_models, dim: number of models and of query features.
        epsilon: exploration probability per query.
        ridge: ridge penalty of the per-model regressions.
        seed: seed of the exploration draws.
    """

    name = "EpsGreedy"

    def __init__(
        self, n_models: int, dim: int, *, epsilon: float = 0.05, ridge: float = 10.0, seed: int = 0
    ) -> None:
        super().__init__(n_models, dim, ridge=ridge, seed=seed)
        self.epsilon = check_float("epsilon", epsilon, low=0.0, high=1.0)

    def act_scores(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        check_width(self.dim, x)
        perf, cost = self.predict(x[None, :])
        if self.rng.random() < self.epsilon:
            return self.rng.random(perf.shape[1]), cost[0]
        return perf[0], cost[0]


class LinUCBBandit(_LinearBandit):
    """Disjoint LinUCB: act on ``theta_k . z + alpha * sqrt(z^T A_k^-1 z)`` (Li et al., 2010).

    Args:
        n_models, dim: number of models and of query features.
        alpha: width of the optimism bonus (in accuracy units per unit of confidence width).
        ridge: ridge penalty of the per-model regressions.
        seed: unused (LinUCB is deterministic); accepted so every learner takes one.
    """

    name = "LinUCB"

    def __init__(
        self, n_models: int, dim: int, *, alpha: float = 0.1, ridge: float = 10.0, seed: int = 0
    ) -> None:
        super().__init__(n_models, dim, ridge=ridge, seed=seed)
        self.alpha = check_float("alpha", alpha, low=0.0)

    def act_scores(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        check_width(self.dim, x)
        z = RidgeStatistics.augment(x)
        perf, cost = self.stats.means(z[None, :])
        return perf[0] + self.alpha * self.stats.widths(z), cost[0]


class LinearTSBandit(_LinearBandit):
    """Linear Thompson sampling: act on a draw from each model's posterior ``N(theta_k, v^2 A_k^-1)``.

    For one query the score ``theta_k . z`` under that posterior is ``N(mean_k, v^2 z^T A_k^-1 z)``,
    independent across models, so the draw is taken on the score directly (exact, no matrix root).

    Args:
        n_models, dim: number of models and of query features.
        v: posterior scale (accuracy units).
        ridge: ridge penalty (the prior precision).
        seed: seed of the posterior draws.
    """

    name = "LinTS"

    def __init__(
        self, n_models: int, dim: int, *, v: float = 0.1, ridge: float = 10.0, seed: int = 0
    ) -> None:
        super().__init__(n_models, dim, ridge=ridge, seed=seed)
        self.v = check_float("v", v, low=0.0)

    def act_scores(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        check_width(self.dim, x)
        z = RidgeStatistics.augment(x)
        perf, cost = self.stats.means(z[None, :])
        noise = self.rng.standard_normal(perf.shape[1])
        return perf[0] + self.v * self.stats.widths(z) * noise, cost[0]


class _FeatureNet(nn.Module):
    """Query encoder with per-model performance and cost heads; the encoder's output is the feature."""

    def __init__(self, dim: int, n_models: int, hidden: int, features: int) -> None:
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, features), nn.ReLU()
        )
        self.perf_head = nn.Linear(features, n_models)
        self.cost_head = nn.Linear(features, n_models)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        phi = self.encoder(x)
        return phi, self.perf_head(phi), self.cost_head(phi)


class NeuralUCBBandit:
    """Neural-linear UCB: a small MLP learns query features; LinUCB runs on its last hidden layer.

    The network is trained on the observed (query, called model) pairs to predict that model's
    correctness and cost (masked MSE on the called model only). Every ``train_every`` updates it
    takes ``train_steps`` Adam steps on mini-batches from the replay of all observations so far,
    and the per-model ridge statistics are rebuilt on the new features; between retrainings they
    are updated by Sherman-Morrison, like LinUCB. Costs are learned divided by ``cost_scale``.

    Args:
        n_models, dim: number of models and of query features.
        alpha: width of the optimism bonus on the learned features.
        hidden, features: widths of the hidden and feature layers.
        train_every: updates between retrainings.
        train_steps, batch_size, lr: each retraining's Adam steps, mini-batch size and step size.
        ridge: ridge penalty of the per-model heads.
        cost_scale: cost unit for training (e.g. ``c_ref``) so cost targets are O(1).
        seed: torch seed of initialisation and numpy seed of the mini-batches.
    """

    name = "NeuralUCB"

    def __init__(
        self,
        n_models: int,
        dim: int,
        *,
        alpha: float = 0.2,
        hidden: int = 64,
        features: int = 16,
        train_every: int = 100,
        train_steps: int = 30,
        batch_size: int = 128,
        lr: float = 3e-3,
        ridge: float = 1.0,
        cost_scale: float = 1.0,
        seed: int = 0,
    ) -> None:
        self.n_models = check_int("n_models", n_models, low=1)
        self.dim = check_int("dim", dim, low=1)
        self.alpha = check_float("alpha", alpha, low=0.0)
        self.hidden = check_int("hidden", hidden, low=1)
        self.features = check_int("features", features, low=1)
        self.train_every = check_int("train_every", train_every, low=1)
        self.train_steps = check_int("train_steps", train_steps, low=0)
        self.batch_size = check_int("batch_size", batch_size, low=1)
        self.lr = check_float("lr", lr, low=0.0, low_open=True)
        self.ridge = check_float("ridge", ridge, low=0.0, low_open=True)
        self.cost_scale = check_float("cost_scale", cost_scale, low=0.0, low_open=True)
        self.seed = check_int("seed", seed, low=0, high=_SEED_MAX)
        torch.manual_seed(self.seed)
        self.net = _FeatureNet(self.dim, self.n_models, self.hidden, self.features)
        self.optimiser = torch.optim.Adam(self.net.parameters(), lr=self.lr)
        self.rng = np.random.default_rng(self.seed)
        self.stats = RidgeStatistics(self.n_models, self.features, self.ridge)
        self._X = np.zeros((0, self.dim), dtype=np.float32)
        self._models = np.zeros(0, dtype=np.int64)
        self._correct = np.zeros(0)
        self._cost = np.zeros(0)
        self._n = 0
        self._since_training = 0
        self._last: tuple[np.ndarray, np.ndarray] = (np.zeros(0), np.zeros(0))

    def get_params(self) -> dict[str, Any]:
        """The constructor arguments: ``type(self)(**learner.get_params())`` is this learner unlearned."""
        return _init_params(self)

    @classmethod
    def saved_shapes(
        cls, params: Mapping[str, Any], state: Mapping[str, Any], *, max_layers: int
    ) -> dict[str, tuple[int, ...]]:
        """The shapes a saved state must have for ``params`` (the statistics and the network's
        tensors), found without allocating: the network is built on torch's ``meta`` device. For
        :mod:`agents.persistence`, before the learner is built. ``state`` and ``max_layers`` are unused
        (the network has a fixed number of layers)."""
        n_models = check_int("n_models", params.get("n_models"), low=1)
        dim = check_int("dim", params.get("dim"), low=1)
        hidden = check_int("hidden", params.get("hidden", 64), low=1)
        features = check_int("features", params.get("features", 16), low=1)
        shapes = {f"stats.{key}": shape for key, shape in RidgeStatistics.shapes(n_models, features).items()}
        with torch.device("meta"):
            net = _FeatureNet(dim, n_models, hidden, features)
        shapes.update({f"net.{key}": tuple(t.shape) for key, t in net.state_dict().items()})
        return shapes

    def state_dict(self) -> dict[str, Any]:
        """What changed since construction (references, not copies).

        ``"stats.<array>"``, the replay ``"replay.X"`` / ``"replay.models"`` / ``"replay.correct"`` /
        ``"replay.cost"`` (numpy, one row per observation), ``"net.<parameter>"`` and
        ``"optimiser.state.<i>.<name>"`` (torch tensors), and the JSON-able ``"rng"`` (the
        generator's state), ``"optimiser.param_groups"`` and ``"since_training"``.
        """
        optimiser = self.optimiser.state_dict()
        n = self._n
        return {
            **{f"stats.{key}": value for key, value in self.stats.state_dict().items()},
            "replay.X": self._X[:n],
            "replay.models": self._models[:n],
            "replay.correct": self._correct[:n],
            "replay.cost": self._cost[:n],
            **{f"net.{key}": tensor for key, tensor in self.net.state_dict().items()},
            **{
                f"optimiser.state.{index}.{key}": tensor
                for index, moments in optimiser["state"].items()
                for key, tensor in moments.items()
            },
            "optimiser.param_groups": optimiser["param_groups"],
            "rng": self.rng.bit_generator.state,
            "since_training": self._since_training,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continue from ``state`` (as :meth:`state_dict` returns it, for the same constructor arguments)."""
        self.stats.load_state_dict(_prefixed(state, "stats."))
        X = np.array(state["replay.X"], dtype=np.float32)
        n = X.shape[0]
        if X.shape != (n, self.dim):
            raise ValueError(f"replay.X: expected shape [n, {self.dim}], got {X.shape}")
        for key in ("replay.models", "replay.correct", "replay.cost"):
            if np.shape(state[key]) != (n,):
                raise ValueError(
                    f"{key}: expected shape ({n},) like replay.X's rows, got {np.shape(state[key])}"
                )
        self._X, self._n = X, n
        self._models = np.array(state["replay.models"], dtype=np.int64)
        self._correct = np.array(state["replay.correct"], dtype=np.float64)
        self._cost = np.array(state["replay.cost"], dtype=np.float64)
        net = _prefixed(state, "net.")
        expected = self.net.state_dict()
        if set(net) != set(expected) or any(net[k].shape != expected[k].shape for k in expected):
            shapes = {k: tuple(v.shape) for k, v in expected.items()}
            got = {k: tuple(v.shape) for k, v in net.items()}
            raise ValueError(f"net: expected tensors {shapes}, got {got}")
        self.net.load_state_dict(net)
        params = list(self.net.parameters())
        moments: dict[int, dict[str, Any]] = {}
        for key, tensor in _prefixed(state, "optimiser.state.").items():
            index, name = key.split(".", 1)
            if not 0 <= int(index) < len(params) or tensor.ndim and tensor.shape != params[int(index)].shape:
                raise ValueError(f"optimiser.state.{key}: no parameter {index} of that shape in the net")
            moments.setdefault(int(index), {})[name] = tensor
        groups = [
            {k: tuple(v) if isinstance(v, list) and k != "params" else v for k, v in group.items()}
            for group in state["optimiser.param_groups"]
        ]  # JSON turned tuples (Adam's betas) into lists
        self.optimiser.load_state_dict({"state": moments, "param_groups": groups})
        self.rng.bit_generator.state = state["rng"]
        self._since_training = int(state["since_training"])
        # The features cached by act_scores for the next update: recomputed from the same net.
        self._last = (np.zeros(0), np.zeros(0))

    def _features(self, X: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            phi, _, _ = self.net(torch.tensor(X, dtype=torch.float32))
        return RidgeStatistics.augment(phi.numpy())

    def predict(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Point estimates ``(perf, cost)``: float64 ``[n, K]`` each (cost in the table's unit)."""
        check_width(self.dim, X)
        return self.stats.means(self._features(X))

    def act_scores(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        check_width(self.dim, x)
        z = self._features(x[None, :])[0]
        self._last = (x, z)  # the update that follows reuses the features
        perf, cost = self.stats.means(z[None, :])
        return perf[0] + self.alpha * self.stats.widths(z), cost[0]

    def update(self, x: np.ndarray, action: int, correct: float, cost: float) -> None:
        """Learn from calling model ``action`` on query ``x``: its correctness and cost (table unit)."""
        check_width(self.dim, x)
        check_feedback(self.n_models, action, correct, cost)
        self._remember(np.asarray(x, dtype=np.float32)[None, :], np.array([action]), [correct], [cost])
        last_x, z = self._last
        if not np.array_equal(last_x, x):
            z = self._features(x[None, :])[0]
        self.stats.update(z, action, correct, cost)
        self._since_training += 1
        if self._since_training >= self.train_every:
            self._retrain()

    def warm_start(self, X: np.ndarray, correct: np.ndarray, cost: np.ndarray) -> None:
        """Fit on labelled queries with full information (``correct``/``cost`` ``[n, K]``): each
        (query, model) pair becomes one observation in the replay."""
        correct, cost = checked_labels(self.n_models, X, correct, cost)
        n, k = correct.shape
        rows = np.repeat(np.arange(n), k)
        models = np.tile(np.arange(k), n)
        X = np.asarray(X, dtype=np.float32)
        self._remember(X[rows], models, np.asarray(correct).ravel(), np.asarray(cost).ravel())
        self._retrain(steps=max(self.train_steps, 10 * n * k // self.batch_size))

    def _remember(self, X: np.ndarray, models: np.ndarray, correct: Any, cost: Any) -> None:
        # Geometric growth keeps appending amortised O(1) per observation.
        need = self._n + len(models)
        if need > len(self._models):
            size = max(need, 2 * len(self._models), 256)
            self._X = np.resize(self._X, (size, self.dim))
            self._models, self._correct, self._cost = (
                np.resize(a, size) for a in (self._models, self._correct, self._cost)
            )
        self._X[self._n : need] = X
        self._models[self._n : need] = models
        self._correct[self._n : need] = correct
        self._cost[self._n : need] = cost
        self._n = need

    def _retrain(self, steps: int | None = None) -> None:
        n = self._n
        X = torch.as_tensor(self._X[:n])
        models = torch.as_tensor(self._models[:n])
        correct = torch.as_tensor(self._correct[:n], dtype=torch.float32)
        cost = torch.as_tensor(self._cost[:n] / self.cost_scale, dtype=torch.float32)
        self.net.train()
        for _ in range(self.train_steps if steps is None else steps):
            batch = torch.as_tensor(self.rng.integers(0, n, size=min(self.batch_size, n)))
            _, perf_pred, cost_pred = self.net(X[batch])
            chosen = models[batch][:, None]
            loss = nn.functional.mse_loss(
                perf_pred.gather(1, chosen)[:, 0], correct[batch]
            ) + nn.functional.mse_loss(cost_pred.gather(1, chosen)[:, 0], cost[batch])
            self.optimiser.zero_grad()
            loss.backward()
            self.optimiser.step()
        self.net.eval()
        # The features moved: rebuild the per-model statistics on them from the whole replay.
        self.stats.fit(
            self._features(self._X[:n]), self._correct[:n], self._cost[:n], models=self._models[:n]
        )
        self._since_training = 0


BANDITS: dict[str, type] = {
    "epsilon-greedy": EpsilonGreedyBandit,
    "linucb": LinUCBBandit,
    "lin-ts": LinearTSBandit,
    "neural-ucb": NeuralUCBBandit,
}


def make_bandit(name: str, env: MMRRoutingEnv, *, warm_start: bool = False, **kwargs: Any) -> Any:
    """A learner ``BANDITS[name]`` sized for ``env`` (models, query features); ``kwargs`` go to it.

    With ``warm_start`` it is first fitted with full information on ``env``'s training split
    (the same data the supervised routers see); otherwise it starts from nothing.
    """
    if name not in BANDITS:
        raise ValueError(f"unknown bandit {name!r}; choose from {sorted(BANDITS)}")
    ctx = env.unwrapped.ctx
    cls = BANDITS[name]
    if cls is NeuralUCBBandit:
        kwargs.setdefault("cost_scale", ctx.c_ref)
    learner = cls(ctx.n_models, ctx.query_obs.shape[1], **kwargs)
    if warm_start:
        rows = ctx.train_indices
        learner.warm_start(ctx.query_obs[rows], ctx.table.correct[rows], ctx.table.cost[rows])
    return learner


def paced_bandit(
    name: str,
    env: MMRRoutingEnv,
    *,
    warm_start: bool = False,
    pacing: dict[str, Any] | None = None,
    **kwargs: Any,
) -> PacedPolicy:
    """A fresh learner ``BANDITS[name]`` (see :func:`make_bandit`) inside a :class:`PacedPolicy`.

    ``pacing`` holds :class:`PacedPolicy` arguments (e.g. ``{"reserve": 1.0}``); ``kwargs`` the learner's.
    """
    learner = make_bandit(name, env, warm_start=warm_start, **kwargs)
    label = f"Paced-{learner.name}" + ("-warm" if warm_start else "")
    return PacedPolicy(learner, **{"name": label, **(pacing or {})})
