"""Neural routers: MLP (scikit-learn), MLP-MF and the cross-modal CMR (torch).

They learn costs divided by each model's mean training cost, so that all targets are O(1) and one
loss weighs every model; predictions are scaled back.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from sklearn.neural_network import MLPRegressor
from torch import nn

from agents.routers.base import SEED_MAX, Router, channel_dims, cost_scale
from agents.routers.inputs import check_inputs
from mmr_gym.checks import check_bool, check_float, check_int, check_int_sequence
from mmr_gym.context import RoutingContext


class MLPRouter(Router):
    """Two multilayer perceptrons (scikit-learn), one for every model's performance, one for cost.

    Args:
        hidden: hidden layer sizes (the reference uses (256, 128); one small layer with a strong
            penalty did better on a validation part of the bundled table's training split).
        alpha: L2 penalty.
        max_iter: training epochs at most (Adam, scikit-learn's defaults otherwise).
        early_stopping: hold out 10% of the training queries and stop when their score stalls.
        inputs: the input form (:data:`~agents.routers.inputs.INPUTS`).
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
        inputs: str = "standardised",
        seed: int = 0,
    ) -> None:
        self.inputs = check_inputs(inputs)
        self.hidden = check_int_sequence("hidden", hidden, low=1, allow_empty=False)
        self.alpha = check_float("alpha", alpha, low=0.0)
        self.max_iter = check_int("max_iter", max_iter, low=1)
        self.early_stopping = check_bool("early_stopping", early_stopping)
        self.seed = check_int("seed", seed, low=0, high=SEED_MAX)

    def _regressor(self) -> MLPRegressor:
        return MLPRegressor(
            hidden_layer_sizes=self.hidden,
            alpha=self.alpha,
            max_iter=self.max_iter,
            early_stopping=self.early_stopping,
            random_state=self.seed,
        )

    def _fit(self, X, correct, cost):
        self.cost_scale_ = cost_scale(cost)
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
        self.seed = check_int("seed", seed, low=0, high=SEED_MAX)

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
        inputs: the input form (:data:`~agents.routers.inputs.INPUTS`).
        seed: torch seed of initialisation and shuffling.
    """

    name = "MLPMF"
    _layer_params = ("hidden",)
    _fitted = ("cost_scale_", "perf_net_", "cost_net_")

    def __init__(
        self,
        hidden: Sequence[int] = (128, 64),
        latent: int = 32,
        epochs: int = 50,
        batch_size: int = 64,
        lr: float = 1e-3,
        weight_decay: float = 1e-4,
        validation_fraction: float = 0.15,
        inputs: str = "standardised",
        seed: int = 0,
    ) -> None:
        super().__init__(epochs, batch_size, lr, weight_decay, validation_fraction, seed)
        self.inputs = check_inputs(inputs)
        self.hidden = check_int_sequence("hidden", hidden, low=1)
        self.latent = check_int("latent", latent, low=1)

    def _new_modules(self):
        # Performance first, then cost: the order in which the seeded initial weights are drawn.
        return {
            name: _FactorNet(self.n_inputs_, self.n_models_, self.hidden, self.latent)
            for name in ("perf_net_", "cost_net_")
        }

    def _fit(self, X, correct, cost):
        self.cost_scale_ = cost_scale(cost)
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
        inputs: the input form (:data:`~agents.routers.inputs.INPUTS`).
        seed: torch seed of initialisation, dropout and shuffling.
    """

    name = "CMR"
    _layer_params = ("n_layers", "channel_dims")
    _fitted = ("cost_scale_", "net_")

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
        inputs: str = "standardised",
        seed: int = 0,
    ) -> None:
        super().__init__(epochs, batch_size, lr, weight_decay, validation_fraction, seed)
        self.inputs = check_inputs(inputs)
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
        return (self.n_inputs_,) if dims is None or len(dims) < 2 else dims

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
        self.cost_scale_ = cost_scale(cost)
        torch.manual_seed(self.seed)
        self.net_ = self._new_modules()["net_"]
        self._train(self.net_, X, [correct, cost / self.cost_scale_])

    def _predict(self, X):
        perf, cost = self._evaluate(self.net_, X)
        return perf, cost * self.cost_scale_
