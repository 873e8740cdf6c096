"""The router interface: predicts every model's performance and cost per query; saving and loading.

A router is fitted with full information (every model's outcome on every training query) and then
predicts, for new queries, ``perf`` (expected correctness, in [0, 1] up to the model's fit) and
``cost`` (expected cost per call, in the table's cost unit) for all ``K`` models.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from agents.routers.inputs import InputTransform
from mmr_gym.checks import check_int
from mmr_gym.context import FeatureScaling, RoutingContext

# Seeds go to numpy, scikit-learn (random_state < 2**32) and torch.
SEED_MAX = 2**32 - 1


class Router:
    """Predicts, per query, every model's performance and cost. Subclasses implement ``_fit``/``_predict``.

    ``fit(X, correct, cost)`` takes query features ``X`` float ``[n, d]``, correctness ``[n, K]`` in
    [0, 1] and cost ``[n, K]`` >= 0 (the table's cost unit); ``predict(X)`` returns
    ``(perf, cost)``, float64 ``[m, K]`` each, cost in the same unit (clipped at 0).

    ``X`` are observation rows (``obs["query"]``); each family maps them to the inputs it needs, as
    its ``inputs`` argument says (:mod:`agents.routers.inputs`), both when fitting and predicting,
    so a fitted router always takes observations.

    Saving (:mod:`agents.persistence`): ``get_params()`` gives the constructor arguments, each kept
    as the attribute of its name (the scikit-learn convention); ``state_dict()`` /
    ``load_state_dict()`` what ``fit`` learned, the attributes listed in ``_fitted``, and the
    input transform's arrays.
    """

    name: str = "router"
    #: the family's input form (one of agents.routers.inputs.INPUTS); families take it as an argument
    inputs: str = "standardised"
    # What fit() sets besides n_features_, n_inputs_, n_models_ and inputs_: numpy arrays (each per
    # model, last axis K), scikit-learn estimators, or torch modules (those built fresh by
    # _new_modules() on loading).
    _fitted: tuple[str, ...] = ()
    # Constructor arguments that set how many layers _new_modules builds (an int, or a sequence's length).
    _layer_params: tuple[str, ...] = ()

    def fit(
        self, X: np.ndarray, correct: np.ndarray, cost: np.ndarray, *, scaling: FeatureScaling | None = None
    ) -> Router:
        """Fit on ``n`` labelled queries; returns ``self``.

        ``scaling`` says how the observation rows ``X`` were made from the table's features (the
        environment's ``ctx.feature_scaling``; :func:`~agents.routers.fit_router` passes it); None
        when ``X`` are the features themselves.
        """
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
            check_finite(f"{type(self).__name__}.fit: {what}", values)
        self._fit_observations(X, correct, cost, scaling)
        return self

    def _fit_observations(
        self, X: np.ndarray, correct: np.ndarray, cost: np.ndarray, scaling: FeatureScaling | None
    ) -> None:
        """Map the observation rows to the family's inputs and fit on them (checked arguments)."""
        self.inputs_ = InputTransform.fit(self.inputs, X, scaling)
        inputs = self.inputs_(X)
        self.n_features_, self.n_inputs_, self.n_models_ = X.shape[1], inputs.shape[1], correct.shape[1]
        self._fit(inputs, correct, cost)

    def predict(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(perf, cost)`` for queries ``X`` ``[m, d]``: float64 ``[m, K]`` each (cost in the table's unit)."""
        self._check_fitted()
        if np.asarray(X).dtype.kind not in "biuf":  # numpy would parse "1.5" and fail on "a" in its own words
            raise TypeError(f"X must hold numbers (query features), got dtype {np.asarray(X).dtype}")
        X = np.asarray(X, dtype=np.float32)
        if X.ndim != 2 or X.shape[1] != self.n_features_:
            raise ValueError(f"X must be [queries, {self.n_features_}], got shape {X.shape}")
        check_finite(f"{type(self).__name__}.predict: X", X)
        perf, cost = (np.asarray(values, dtype=np.float64) for values in self._predict(self.inputs_(X)))
        for what, values in (("performance", perf), ("cost", cost)):
            check_finite(
                f"{type(self).__name__}.predict: the predicted {what}",
                values,
                why="the router's fitted state is damaged (e.g. a loaded file)",
            )
        return perf, np.maximum(cost, 0.0)

    @classmethod
    def saved_shapes(
        cls, params: Mapping[str, Any], state: Mapping[str, Any], *, max_layers: int
    ) -> dict[str, tuple[int, ...]]:
        """The tensor shapes a saved state must have for ``params``, found without allocating memory.

        For :mod:`agents.persistence`, before anything is built from a file: the modules are built
        on torch's ``meta`` device (shapes only). ``state`` gives ``n_features_``, ``n_inputs_`` and
        ``n_models_``; ``max_layers`` bounds the layer counts the parameters ask for (each layer has
        at least one tensor, so the number of saved tensors bounds them), so that no parameter makes
        even the shapes expensive to build.

        Raises:
            TypeError, ValueError: a parameter or a size is invalid, or a layer count exceeds
                ``max_layers``.
        """
        router = cls(**params)
        router.n_features_ = check_int("n_features_", state.get("n_features_"), low=1)
        router.n_inputs_ = check_int("n_inputs_", state.get("n_inputs_", router.n_features_), low=1)
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

        Values: ``n_features_``, ``n_inputs_`` and ``n_models_`` (ints), the input transform's arrays
        as ``"inputs.<name>"``, numpy arrays, scikit-learn estimators, and the tensors of each torch
        module ``m`` as ``"m.<parameter>"`` (its ``state_dict()``).
        """
        self._check_fitted()
        state: dict[str, Any] = {
            "n_features_": self.n_features_,
            "n_inputs_": self.n_inputs_,
            "n_models_": self.n_models_,
            **{f"inputs.{key}": value for key, value in self.inputs_.state_dict().items()},
        }
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
        inputs = {key[len("inputs.") :]: value for key, value in state.items() if key.startswith("inputs.")}
        if inputs:
            self.inputs_ = InputTransform.from_state(inputs)
            self.n_inputs_ = int(state["n_inputs_"])
        else:  # saved before routers had input forms: they all took the observation as it is
            self.inputs_ = InputTransform.fit("standardised", np.zeros((1, 1)))
            self.n_inputs_ = self.n_features_
        if self.inputs_.width(self.n_features_) != self.n_inputs_:
            raise ValueError(
                f"inputs: the transform gives {self.inputs_.width(self.n_features_)} inputs, not {self.n_inputs_}"
            )
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
        """Fresh torch modules for the fitted shape (``n_inputs_``, ``n_models_``), by attribute name."""
        return {}

    def _check_fitted(self) -> None:
        if not hasattr(self, "n_features_"):
            raise RuntimeError(f"{type(self).__name__} is not fitted; call fit() first")

    def _fit(self, X: np.ndarray, correct: np.ndarray, cost: np.ndarray) -> None:
        raise NotImplementedError

    def _predict(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError


def check_finite(what: str, values: np.ndarray, why: str = "") -> None:
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


def cost_scale(cost: np.ndarray) -> np.ndarray:
    """Per-model mean training cost (``[K]``, > 0): neural routers learn cost / scale, all O(1)."""
    scale = cost.mean(axis=0)
    return np.where(scale > 0, scale, 1.0)


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
