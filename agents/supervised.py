"""Supervised routers: MMR-Bench's families, each predicting every model's performance and cost per query.

A router is fitted with full information (every model's outcome on every training query) and then
predicts, for new queries, ``perf`` (expected correctness, in [0, 1] up to the model's fit) and
``cost`` (expected cost per call, in the table's cost unit) for all ``K`` models. Two ways to use one:

- the paper's per-query threshold protocol:
  ``threshold_result(name, env, *router.predict(X_eval))`` (:mod:`mmr_gym.evaluate`);
- as a sequential policy under a budget: ``PacedPolicy(router)`` (:mod:`agents.pacing`).

The families follow the reference implementation (``Hunter-Wrynn/MMR-Bench``,
``src/mmrbench/routers``), on the environment's query features (``env.ctx.query_obs``: per channel
standardised with training statistics and concatenated, where the reference averages CLIP text and
image embeddings). :func:`fit_router` fits one on an environment's training split.

Neural routers (MLP, MLP-MF, CMR) learn costs divided by each model's mean training cost, so that
all targets are O(1) and one loss weighs every model; predictions are scaled back. Predicted costs
are clipped at 0 (a call never pays back).
"""

from __future__ import annotations

import copy
import inspect
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from sklearn.cluster import KMeans
from sklearn.decomposition import TruncatedSVD
from sklearn.linear_model import Ridge
from sklearn.neighbors import VALID_METRICS, NearestNeighbors
from sklearn.neural_network import MLPRegressor
from torch import nn

from mmr_gym.checks import check_bool, check_float, check_int, check_int_sequence
from mmr_gym.context import RoutingContext
from mmr_gym.env import MMRRoutingEnv

# Metrics NearestNeighbors accepts with its default algorithm choice (brute force covers them all).
_KNN_METRICS = frozenset(VALID_METRICS["brute"]) - {"precomputed"}  # the router passes features
# Seeds go to numpy, scikit-learn (random_state < 2**32) and torch.
_SEED_MAX = 2**32 - 1


class Router:
    """Predicts, per query, every model's performance and cost. Subclasses implement ``_fit``/``_predict``.

    ``fit(X, correct, cost)`` takes query features ``X`` float ``[n, d]``, correctness ``[n, K]`` in
    [0, 1] and cost ``[n, K]`` >= 0 (the table's cost unit); ``predict(X)`` returns
    ``(perf, cost)``, float64 ``[m, K]`` each, cost in the same unit (clipped at 0).

    Saving (:mod:`agents.persistence`): ``get_params()`` gives the constructor arguments, each kept
    as the attribute of its name (the scikit-learn convention); ``state_dict()`` /
    ``load_state_dict()`` what ``fit`` learned, the attributes listed in ``_fitted``.
    """

    name: str = "router"
    # What fit() sets besides n_features_ and n_models_: numpy arrays (each per model, last axis K),
    # scikit-learn estimators, or torch modules (those built fresh by _new_modules() on loading).
    _fitted: tuple[str, ...] = ()

    def fit(self, X: np.ndarray, correct: np.ndarray, cost: np.ndarray) -> Router:
        """Fit on ``n`` labelled queries; returns ``self``."""
        X = np.asarray(X, dtype=np.float32)
        correct = np.asarray(correct, dtype=np.float64)
        cost = np.asarray(cost, dtype=np.float64)
        if X.ndim != 2 or X.shape[0] == 0:
            raise ValueError(f"X must be a non-empty [queries, features] array, got shape {X.shape}")
        if correct.ndim != 2 or correct.shape[0] != X.shape[0] or cost.shape != correct.shape:
            raise ValueError(
                f"correct and cost must both be [{X.shape[0]}, K] like X's rows, got {correct.shape} and {cost.shape}"
            )
        for what, values in (("X", X), ("correct", correct), ("cost", cost)):
            _check_finite(f"{type(self).__name__}.fit: {what}", values)
        self.n_features_, self.n_models_ = X.shape[1], correct.shape[1]
        self._fit(X, correct, cost)
        return self

    def predict(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(perf, cost)`` for queries ``X`` ``[m, d]``: float64 ``[m, K]`` each (cost in the table's unit)."""
        self._check_fitted()
        X = np.asarray(X, dtype=np.float32)
        if X.ndim != 2 or X.shape[1] != self.n_features_:
            raise ValueError(f"X must be [queries, {self.n_features_}], got shape {X.shape}")
        _check_finite(f"{type(self).__name__}.predict: X", X)
        perf, cost = (np.asarray(values, dtype=np.float64) for values in self._predict(X))
        for what, values in (("performance", perf), ("cost", cost)):
            _check_finite(
                f"{type(self).__name__}.predict: the predicted {what}",
                values,
                why="the router's fitted state is damaged (e.g. a loaded file)",
            )
        return perf, np.maximum(cost, 0.0)

    @classmethod
    def env_kwargs(cls, ctx: RoutingContext) -> dict[str, Any]:
        """Constructor arguments that :func:`fit_router` derives from the environment (none by default)."""
        return {}

    def get_params(self) -> dict[str, Any]:
        """The constructor arguments: ``type(self)(**router.get_params())`` is this router unfitted."""
        names = [name for name in inspect.signature(type(self).__init__).parameters if name != "self"]
        return {name: getattr(self, name) for name in names}

    def state_dict(self) -> dict[str, Any]:
        """What ``fit`` learned, by name (references, not copies).

        Values: ``n_features_`` and ``n_models_`` (ints), numpy arrays, scikit-learn estimators, and
        the tensors of each torch module ``m`` as ``"m.<parameter>"`` (its ``state_dict()``).
        """
        self._check_fitted()
        state: dict[str, Any] = {"n_features_": self.n_features_, "n_models_": self.n_models_}
        for name in self._fitted:
            value = getattr(self, name)
            if isinstance(value, nn.Module):
                state.update({f"{name}.{key}": tensor for key, tensor in value.state_dict().items()})
            else:
                state[name] = value
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Make this (unfitted) router the fitted one whose :meth:`state_dict` ``state`` is.

        Raises:
            KeyError: an entry is missing.
            ValueError: an array or tensor does not have the shape the constructor arguments and
                ``n_models_`` imply.
        """
        self.n_features_, self.n_models_ = int(state["n_features_"]), int(state["n_models_"])
        modules = self._new_modules()
        for name in self._fitted:
            if name in modules:
                prefix = f"{name}."
                tensors = {
                    key[len(prefix) :]: value for key, value in state.items() if key.startswith(prefix)
                }
                _load_module_state(modules[name], tensors, name)
                setattr(self, name, modules[name])
                continue
            value = state[name]
            if isinstance(value, np.ndarray) and (value.ndim == 0 or value.shape[-1] != self.n_models_):
                raise ValueError(
                    f"{name}: expected an array per model (last axis {self.n_models_}), got shape {value.shape}"
                )
            setattr(self, name, value)

    def _new_modules(self) -> dict[str, nn.Module]:
        """Fresh torch modules for the fitted shape (``n_features_``, ``n_models_``), by attribute name."""
        return {}

    # Constructor arguments that set how many layers _new_modules builds (an int, or a sequence's length).
    _layer_params: tuple[str, ...] = ()

    @classmethod
    def saved_shapes(
        cls, params: Mapping[str, Any], state: Mapping[str, Any], *, max_layers: int
    ) -> dict[str, tuple[int, ...]]:
        """The tensor shapes a saved state must have for ``params``, found without allocating memory.

        For :mod:`agents.persistence`, before anything is built from a file: the modules are built
        on torch's ``meta`` device (shapes only). ``state`` gives ``n_features_`` and ``n_models_``;
        ``max_layers`` bounds the layer counts the parameters ask for (each layer has at least one
        tensor, so the number of saved tensors bounds them), so that no parameter makes even the
        shapes expensive to build.

        Raises:
            TypeError, ValueError: a parameter or ``n_features_`` / ``n_models_`` is invalid, or a
                layer count exceeds ``max_layers``.
        """
        router = cls(**params)
        router.n_features_ = check_int("n_features_", state.get("n_features_"), low=1)
        router.n_models_ = check_int("n_models_", state.get("n_models_"), low=1)
        for name in cls._layer_params:
            value = getattr(router, name)
            count = value if isinstance(value, int) else len(value or ())
            if count > max_layers:
                raise ValueError(
                    f"{name}={value!r} asks for {count} layers, but the saved state has {max_layers} tensors"
                )
        with torch.device("meta"):
            modules = router._new_modules()
        return {
            f"{name}.{key}": tuple(tensor.shape)
            for name, module in modules.items()
            for key, tensor in module.state_dict().items()
        }

    def _check_fitted(self) -> None:
        if not hasattr(self, "n_features_"):
            raise RuntimeError(f"{type(self).__name__} is not fitted; call fit() first")

    def _fit(self, X: np.ndarray, correct: np.ndarray, cost: np.ndarray) -> None:
        raise NotImplementedError

    def _predict(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError


def _check_finite(what: str, values: np.ndarray, why: str = "") -> None:
    """Raise ValueError naming the first row and column of ``values`` that is NaN or infinite."""
    bad = ~np.isfinite(values)
    if bad.any():
        position = tuple(int(i) for i in np.argwhere(bad)[0])
        where = f"row {position[0]}" + (f", column {position[1]}" if len(position) > 1 else "")
        reason = f"; {why}" if why else ""
        raise ValueError(
            f"{what} has {int(bad.sum())} non-finite value(s) (first at {where}: {float(values[position])!r}){reason}"
        )


def _load_module_state(module: nn.Module, tensors: Mapping[str, Any], name: str) -> None:
    """Load ``tensors`` into ``module`` (strict: same names and shapes) and put it in evaluation mode."""
    expected = module.state_dict()
    if set(tensors) != set(expected):
        missing, unexpected = sorted(set(expected) - set(tensors)), sorted(set(tensors) - set(expected))
        raise ValueError(
            f"{name}: tensors do not match the module: missing {missing}, unexpected {unexpected}"
        )
    for key, tensor in tensors.items():
        if tuple(tensor.shape) != tuple(expected[key].shape):
            raise ValueError(
                f"{name}.{key}: expected shape {tuple(expected[key].shape)}, got {tuple(tensor.shape)}"
            )
    module.load_state_dict(dict(tensors))
    module.eval()  # as after training: dropout off


# ---------------------------------------------------------------------------------------------- linear
class LinearRouter(Router):
    """Ridge regression per model on the query features, one for performance and one for cost.

    (The reference uses unpenalised least squares; a small ridge keeps it stable on few queries.)

    Args:
        alpha: ridge penalty (same for every model and both targets).
        seed: unused (the fit is deterministic); accepted so every router takes one.
    """

    name = "Linear"
    _fitted = ("perf_model_", "cost_model_")

    def __init__(self, alpha: float = 1.0, seed: int = 0) -> None:
        self.alpha = check_float("alpha", alpha, low=0.0)
        self.seed = check_int("seed", seed, low=0, high=_SEED_MAX)

    def _fit(self, X, correct, cost):
        # A multi-output Ridge solves each model's column independently: one ridge per model.
        self.perf_model_ = Ridge(alpha=self.alpha).fit(X, correct)
        self.cost_model_ = Ridge(alpha=self.alpha).fit(X, cost)

    def _predict(self, X):
        return self.perf_model_.predict(X), self.cost_model_.predict(X)


class LinearMFRouter(Router):
    """TruncatedSVD of the features to ``rank`` factors, then ridge heads for performance and cost.

    As the reference's LinearMF. The rank is capped at the feature dimension, so on low-dimensional
    features (the bundled table has 32) it is a rotation and the router equals :class:`LinearRouter`
    up to the unpenalised directions.

    Args:
        rank: number of SVD factors (at most 128 in the paper; capped at ``min(n, d)``).
        alpha: ridge penalty of both heads.
        seed: the SVD's random state.
    """

    name = "LinearMF"
    _fitted = ("svd_", "perf_model_", "cost_model_")

    def __init__(self, rank: int = 128, alpha: float = 1.0, seed: int = 0) -> None:
        self.rank = check_int("rank", rank, low=1)
        self.alpha = check_float("alpha", alpha, low=0.0)
        self.seed = check_int("seed", seed, low=0, high=_SEED_MAX)

    def _fit(self, X, correct, cost):
        rank = max(1, min(self.rank, X.shape[0], X.shape[1]))
        self.svd_ = TruncatedSVD(n_components=rank, random_state=self.seed)
        Z = self.svd_.fit_transform(X)
        self.perf_model_ = Ridge(alpha=self.alpha).fit(Z, correct)
        self.cost_model_ = Ridge(alpha=self.alpha).fit(Z, cost)

    def _predict(self, X):
        Z = self.svd_.transform(X)
        return self.perf_model_.predict(Z), self.cost_model_.predict(Z)


# ------------------------------------------------------------------------------------------ neighbours
class KNNRouter(Router):
    """Means of the ``k`` nearest training queries' outcomes (cosine distance), as the reference.

    Args:
        k: neighbours (50 in the paper; capped at the number of training queries).
        metric: a :class:`sklearn.neighbors.NearestNeighbors` metric.
        seed: unused (the fit is deterministic); accepted so every router takes one.
    """

    name = "KNN"
    _fitted = ("neighbours_", "correct_", "cost_")

    def __init__(self, k: int = 50, metric: str = "cosine", seed: int = 0) -> None:
        self.k = check_int("k", k, low=1)
        if not isinstance(metric, str) or metric not in _KNN_METRICS:
            raise ValueError(f"metric must be one of {sorted(_KNN_METRICS)}, got {metric!r}")
        self.metric = metric
        self.seed = check_int("seed", seed, low=0, high=_SEED_MAX)

    def _fit(self, X, correct, cost):
        self.neighbours_ = NearestNeighbors(n_neighbors=min(self.k, X.shape[0]), metric=self.metric).fit(X)
        self.correct_, self.cost_ = correct, cost

    def _predict(self, X):
        index = self.neighbours_.kneighbors(X, return_distance=False)  # [m, k]
        return self.correct_[index].mean(axis=1), self.cost_[index].mean(axis=1)


class KMeansRouter(Router):
    """K-means clusters of the training queries; a query gets its cluster's mean outcomes.

    Args:
        n_clusters: clusters (20 in the paper; capped at the number of training queries).
        seed: k-means' random state.
    """

    name = "KMeans"
    _fitted = ("kmeans_", "cluster_correct_", "cluster_cost_")

    def __init__(self, n_clusters: int = 20, seed: int = 0) -> None:
        self.n_clusters = check_int("n_clusters", n_clusters, low=1)
        self.seed = check_int("seed", seed, low=0, high=_SEED_MAX)

    def _fit(self, X, correct, cost):
        clusters = min(self.n_clusters, X.shape[0])
        self.kmeans_ = KMeans(n_clusters=clusters, random_state=self.seed, n_init="auto")
        labels = self.kmeans_.fit_predict(X)
        counts = np.bincount(labels, minlength=clusters)[:, None]
        means = []
        for target in (correct, cost):
            sums = np.zeros((clusters, target.shape[1]))
            np.add.at(sums, labels, target)
            # A cluster left empty by the final assignment predicts the overall mean.
            means.append(np.where(counts > 0, sums / np.maximum(counts, 1), target.mean(axis=0)))
        self.cluster_correct_, self.cluster_cost_ = means

    def _predict(self, X):
        labels = self.kmeans_.predict(X)
        return self.cluster_correct_[labels], self.cluster_cost_[labels]


# -------------------------------------------------------------------------------------------- neural
class MLPRouter(Router):
    """Two multilayer perceptrons (scikit-learn), one for every model's performance, one for cost.

    Args:
        hidden: hidden layer sizes (the reference uses (256, 128); one small layer with a strong
            penalty did better on a validation part of the bundled table's training split).
        alpha: L2 penalty.
        max_iter: training epochs at most (Adam, scikit-learn's defaults otherwise).
        early_stopping: hold out 10% of the training queries and stop when their score stalls.
        seed: random state of initialisation, shuffling and the held-out part.
    """

    name = "MLP"
    _fitted = ("cost_scale_", "perf_model_", "cost_model_")

    def __init__(
        self,
        hidden: Sequence[int] = (64,),
        alpha: float = 10.0,
        max_iter: int = 200,
        early_stopping: bool = True,
        seed: int = 0,
    ) -> None:
        self.hidden = check_int_sequence("hidden", hidden, low=1, allow_empty=False)
        self.alpha = check_float("alpha", alpha, low=0.0)
        self.max_iter = check_int("max_iter", max_iter, low=1)
        self.early_stopping = check_bool("early_stopping", early_stopping)
        self.seed = check_int("seed", seed, low=0, high=_SEED_MAX)

    def _regressor(self) -> MLPRegressor:
        return MLPRegressor(
            hidden_layer_sizes=self.hidden,
            alpha=self.alpha,
            max_iter=self.max_iter,
            early_stopping=self.early_stopping,
            random_state=self.seed,
        )

    def _fit(self, X, correct, cost):
        self.cost_scale_ = _cost_scale(cost)
        self.perf_model_ = self._regressor().fit(X, correct)
        self.cost_model_ = self._regressor().fit(X, cost / self.cost_scale_)

    def _predict(self, X):
        perf = self.perf_model_.predict(X).reshape(X.shape[0], -1)
        cost = self.cost_model_.predict(X).reshape(X.shape[0], -1)
        return perf, cost * self.cost_scale_


# Epochs without a better held-out loss before a torch router stops training.
_PATIENCE = 8


class _TorchRouter(Router):
    """Shared training of the torch routers: mini-batch AdamW on the MSE of each target, seeded.

    Outcome tables are small and noisy (a few thousand queries, 0/1 targets), so a share of the
    training queries is held out and the weights of the epoch with the lowest held-out loss are kept
    (early stopping, as scikit-learn's MLP does).
    """

    def __init__(
        self,
        epochs: int,
        batch_size: int,
        lr: float,
        weight_decay: float,
        validation_fraction: float,
        seed: int,
    ) -> None:
        self.epochs = check_int("epochs", epochs, low=1)
        self.batch_size = check_int("batch_size", batch_size, low=1)
        self.lr = check_float("lr", lr, low=0.0, low_open=True)
        self.weight_decay = check_float("weight_decay", weight_decay, low=0.0)
        self.validation_fraction = check_float(
            "validation_fraction", validation_fraction, low=0.0, high=1.0, high_open=True
        )
        self.seed = check_int("seed", seed, low=0, high=_SEED_MAX)

    def _train(self, net: nn.Module, X: np.ndarray, targets: Sequence[np.ndarray]) -> nn.Module:
        """Minimise the sum over ``targets`` of the MSE of ``net(x)``'s matching outputs."""
        inputs = torch.tensor(X, dtype=torch.float32)
        ys = [torch.tensor(y, dtype=torch.float32) for y in targets]
        generator = torch.Generator().manual_seed(self.seed)
        rows = torch.randperm(inputs.shape[0], generator=generator)
        n_held = int(self.validation_fraction * rows.numel()) if rows.numel() >= 10 else 0
        held, fit = rows[:n_held], rows[n_held:]

        def loss_on(index: torch.Tensor) -> torch.Tensor:
            outputs = net(inputs[index])
            return sum(nn.functional.mse_loss(out, y[index]) for out, y in zip(outputs, ys, strict=True))

        optimiser = torch.optim.AdamW(net.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        best_loss, best_state, best_epoch = np.inf, None, 0
        for epoch in range(self.epochs):
            net.train()
            order = fit[torch.randperm(fit.numel(), generator=generator)]
            for start in range(0, order.numel(), self.batch_size):
                loss = loss_on(order[start : start + self.batch_size])
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
            if n_held:
                net.eval()
                with torch.no_grad():
                    held_loss = float(loss_on(held))
                if held_loss < best_loss:
                    best_loss, best_state, best_epoch = held_loss, copy.deepcopy(net.state_dict()), epoch
                elif epoch - best_epoch >= _PATIENCE:
                    break
        if best_state is not None:
            net.load_state_dict(best_state)
        net.eval()
        return net

    @staticmethod
    def _evaluate(net: nn.Module, X: np.ndarray) -> tuple[np.ndarray, ...]:
        with torch.no_grad():
            return tuple(out.numpy() for out in net(torch.tensor(X, dtype=torch.float32)))


class _FactorNet(nn.Module):
    """MLP query encoder to a latent vector, scored against a learned embedding per model."""

    def __init__(self, n_features: int, n_models: int, hidden: Sequence[int], latent: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = n_features
        for size in hidden:
            layers += [nn.Linear(width, size), nn.ReLU()]
            width = size
        layers.append(nn.Linear(width, latent))
        self.encoder = nn.Sequential(*layers)
        self.model_embedding = nn.Parameter(0.01 * torch.randn(n_models, latent))
        self.model_bias = nn.Parameter(torch.zeros(n_models))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor]:
        return (self.encoder(x) @ self.model_embedding.T + self.model_bias,)


class MLPMFRouter(_TorchRouter):
    """MLP query encoder times per-model embeddings (matrix factorisation); one net per target (torch).

    Args:
        hidden: encoder hidden sizes (the reference uses (256, 128)).
        latent: size of the query latent and of each model embedding (the reference uses 64).
        epochs, batch_size, lr, weight_decay: AdamW training (the reference: 50 epochs, 32, 1e-3, 0).
        validation_fraction: share of the training queries held out for early stopping.
        seed: torch seed of initialisation and shuffling.
    """

    name = "MLPMF"
    _fitted = ("cost_scale_", "perf_net_", "cost_net_")
    _layer_params = ("hidden",)

    def __init__(
        self,
        hidden: Sequence[int] = (128, 64),
        latent: int = 32,
        epochs: int = 50,
        batch_size: int = 64,
        lr: float = 1e-3,
        weight_decay: float = 1e-4,
        validation_fraction: float = 0.15,
        seed: int = 0,
    ) -> None:
        super().__init__(epochs, batch_size, lr, weight_decay, validation_fraction, seed)
        self.hidden = check_int_sequence("hidden", hidden, low=1)
        self.latent = check_int("latent", latent, low=1)

    def _new_modules(self):
        # Performance first, then cost: the order in which the seeded initial weights are drawn.
        return {
            name: _FactorNet(self.n_features_, self.n_models_, self.hidden, self.latent)
            for name in ("perf_net_", "cost_net_")
        }

    def _fit(self, X, correct, cost):
        self.cost_scale_ = _cost_scale(cost)
        torch.manual_seed(self.seed)
        nets = self._new_modules()
        self.perf_net_, self.cost_net_ = nets["perf_net_"], nets["cost_net_"]
        self._train(self.perf_net_, X, [correct])
        self._train(self.cost_net_, X, [cost / self.cost_scale_])

    def _predict(self, X):
        (perf,) = self._evaluate(self.perf_net_, X)
        (cost,) = self._evaluate(self.cost_net_, X)
        return perf, cost * self.cost_scale_


class _CrossModalNet(nn.Module):
    """Channels -> tokens -> transformer encoder (attention across modalities) -> mean -> two heads."""

    def __init__(
        self,
        channel_dims: Sequence[int],
        n_models: int,
        tokens_per_channel: int,
        d_model: int,
        n_heads: int,
        n_layers: int,
        dropout: float,
    ) -> None:
        super().__init__()
        self.channel_dims = list(channel_dims)
        self.tokens_per_channel = tokens_per_channel
        self.d_model = d_model
        # Each token is a learned linear view of its channel; the token embedding says which one it is.
        self.to_tokens = nn.ModuleList(nn.Linear(d, tokens_per_channel * d_model) for d in channel_dims)
        self.token_embedding = nn.Parameter(
            0.02 * torch.randn(len(channel_dims) * tokens_per_channel, d_model)
        )
        layer = nn.TransformerEncoderLayer(
            d_model, n_heads, dim_feedforward=2 * d_model, dropout=dropout, batch_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, n_layers, enable_nested_tensor=False)
        self.perf_head = nn.Sequential(nn.Linear(d_model, d_model), nn.GELU(), nn.Linear(d_model, n_models))
        self.cost_head = nn.Sequential(nn.Linear(d_model, d_model), nn.GELU(), nn.Linear(d_model, n_models))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        channels = torch.split(x, self.channel_dims, dim=1)
        tokens = torch.cat(
            [
                project(channel).view(-1, self.tokens_per_channel, self.d_model)
                for project, channel in zip(self.to_tokens, channels, strict=True)
            ],
            dim=1,
        )
        pooled = self.encoder(tokens + self.token_embedding).mean(dim=1)
        return self.perf_head(pooled), self.cost_head(pooled)


class CMRRouter(_TorchRouter):
    """Cross-modal router: attention over text and image tokens, with performance and cost heads (torch).

    The query vector is cut into its feature channels (``channel_dims``, e.g. text 16 + image 16);
    each channel becomes ``tokens_per_channel`` tokens, a small transformer encoder attends across
    them, and the mean token feeds a performance head and a cost head trained jointly. The
    reference projects one token per channel to 512 dimensions with two layers; this one defaults to
    one 32-dimensional layer for CPUs (more tokens or layers did no better on validation).
    Without a channel layout (``channel_dims=None``: an ``obs_dim`` projection mixed the channels,
    or the table has a single channel) the whole vector is one token, which makes it an MLP.

    Args:
        channel_dims: widths of the consecutive channels in the query vector (summing to its size).
        tokens_per_channel: tokens per channel.
        d_model, n_heads, n_layers, dropout: the encoder's size.
        epochs, batch_size, lr, weight_decay: AdamW training (at most ``epochs``).
        validation_fraction: share of the training queries held out for early stopping.
        seed: torch seed of initialisation, dropout and shuffling.
    """

    name = "CMR"
    _fitted = ("cost_scale_", "net_")
    _layer_params = ("n_layers", "channel_dims")

    def __init__(
        self,
        channel_dims: Sequence[int] | None = None,
        tokens_per_channel: int = 1,
        d_model: int = 32,
        n_heads: int = 4,
        n_layers: int = 1,
        dropout: float = 0.1,
        epochs: int = 30,
        batch_size: int = 128,
        lr: float = 1e-3,
        weight_decay: float = 1e-4,
        validation_fraction: float = 0.15,
        seed: int = 0,
    ) -> None:
        super().__init__(epochs, batch_size, lr, weight_decay, validation_fraction, seed)
        self.channel_dims = (
            None if channel_dims is None else check_int_sequence("channel_dims", channel_dims, low=1)
        )
        self.tokens_per_channel = check_int("tokens_per_channel", tokens_per_channel, low=1)
        self.d_model = check_int("d_model", d_model, low=1)
        self.n_heads = check_int("n_heads", n_heads, low=1)
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model ({d_model}) must be a multiple of n_heads ({n_heads})")
        self.n_layers = check_int("n_layers", n_layers, low=1)
        self.dropout = check_float("dropout", dropout, low=0.0, high=1.0, high_open=True)

    @classmethod
    def env_kwargs(cls, ctx: RoutingContext) -> dict[str, Any]:
        return {"channel_dims": channel_dims(ctx)}

    def _token_dims(self) -> tuple[int, ...]:
        """The channel widths the network cuts the query into: the whole vector without a layout."""
        dims = self.channel_dims
        return (self.n_features_,) if dims is None or len(dims) < 2 else dims

    def _new_modules(self):
        return {
            "net_": _CrossModalNet(
                self._token_dims(),
                self.n_models_,
                self.tokens_per_channel,
                self.d_model,
                self.n_heads,
                self.n_layers,
                self.dropout,
            )
        }

    def _fit(self, X, correct, cost):
        if self.channel_dims is None or len(self.channel_dims) < 2:
            warnings.warn(
                "CMRRouter: no text/image channel layout for the query vector (an obs_dim projection mixes "
                "the channels, or the table has fewer than two feature channels); the whole vector is one "
                "token, so this router is a single-token MLP, not a cross-modal one",
                stacklevel=3,
            )
        dims = self._token_dims()
        if sum(dims) != X.shape[1]:
            raise ValueError(f"channel_dims {dims} sum to {sum(dims)}, but X has {X.shape[1]} features")
        self.cost_scale_ = _cost_scale(cost)
        torch.manual_seed(self.seed)
        self.net_ = self._new_modules()["net_"]
        self._train(self.net_, X, [correct, cost / self.cost_scale_])

    def _predict(self, X):
        perf, cost = self._evaluate(self.net_, X)
        return perf, cost * self.cost_scale_


def _cost_scale(cost: np.ndarray) -> np.ndarray:
    """Per-model mean training cost (``[K]``, > 0): neural routers learn cost / scale, all O(1)."""
    scale = cost.mean(axis=0)
    return np.where(scale > 0, scale, 1.0)


# ---------------------------------------------------------------------------------------- registry
ROUTERS: dict[str, type[Router]] = {
    "linear": LinearRouter,
    "linear-mf": LinearMFRouter,
    "mlp": MLPRouter,
    "mlp-mf": MLPMFRouter,
    "knn": KNNRouter,
    "kmeans": KMeansRouter,
    "cmr": CMRRouter,
}


def channel_dims(ctx: RoutingContext) -> tuple[int, ...] | None:
    """Widths of the feature channels in ``ctx.query_obs``, in order; None if the columns are not channels.

    None when an ``obs_dim`` projection mixed the channels or the table has no features (the query
    is then the dataset one-hot).
    """
    features = ctx.table.features
    if not all(channel in features for channel in ctx.channels):
        return None
    dims = tuple(int(features[channel].shape[1]) for channel in ctx.channels)
    return dims if sum(dims) == ctx.query_obs.shape[1] else None


def fit_router(name: str, env: MMRRoutingEnv, **kwargs: Any) -> Router:
    """Fit the router ``ROUTERS[name]`` on ``env``'s training split, with full information.

    ``X = env.ctx.query_obs[env.ctx.train_indices]`` (exactly what the environment shows as
    ``obs["query"]``), targets the table's ``correct`` and ``cost`` for those rows, so the fitted
    router scores the environment's observations. ``kwargs`` go to the router's constructor (e.g.
    ``seed``) and override what is derived from the environment (CMR's ``channel_dims``).
    """
    if name not in ROUTERS:
        raise ValueError(f"unknown router {name!r}; choose from {sorted(ROUTERS)}")
    ctx = env.unwrapped.ctx
    cls = ROUTERS[name]
    rows = ctx.train_indices
    router = cls(**{**cls.env_kwargs(ctx), **kwargs})
    return router.fit(ctx.query_obs[rows], ctx.table.correct[rows], ctx.table.cost[rows])
