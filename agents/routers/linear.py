"""Linear routers: ridge heads on the query features (Linear) and matrix factorisation (LinearMF)."""

from __future__ import annotations

import numpy as np
from sklearn.decomposition import TruncatedSVD
from sklearn.linear_model import Ridge

from agents.routers.base import SEED_MAX, Router
from agents.routers.inputs import check_inputs
from mmr_gym.checks import check_float, check_int


class LinearRouter(Router):
    """Ridge regression per model on the query features, one for performance and one for cost.

    (The reference uses unpenalised least squares; a small ridge keeps it stable on few queries.)

    Args:
        alpha: ridge penalty (same for every model and both targets).
        inputs: the input form (:data:`~agents.routers.inputs.INPUTS`).
        seed: unused (the fit is deterministic); accepted so every router takes one.
    """

    name = "Linear"
    _fitted = ("perf_model_", "cost_model_")

    def __init__(self, alpha: float = 1.0, inputs: str = "standardised", seed: int = 0) -> None:
        self.alpha = check_float("alpha", alpha, low=0.0)
        self.inputs = check_inputs(inputs)
        self.seed = check_int("seed", seed, low=0, high=SEED_MAX)

    def _fit(self, X, correct, cost):
        # A multi-output Ridge solves each model's column independently: one ridge per model.
        self.perf_model_ = Ridge(alpha=self.alpha).fit(X, correct)
        self.cost_model_ = Ridge(alpha=self.alpha).fit(X, cost)

    def _predict(self, X):
        return self.perf_model_.predict(X), self.cost_model_.predict(X)


class LinearMFRouter(Router):
    """Matrix factorisation: a linear query embedding scored against a learned embedding per model.

    Per target (performance, and separately cost), the prediction for query ``x`` and model ``k`` is

        u(x) . v_k + b_k,    u(x) = svd(x) @ B @ V    (``latent`` numbers),

    where ``svd`` is the reference's TruncatedSVD of the inputs to ``rank`` factors, ``V``
    ``[K, latent]`` holds the model embeddings ``v_k`` and ``b_k`` is a bias per model. It is
    fitted in closed form as reduced-rank ridge regression: ``B`` ``[rank, K]`` are the ridge
    coefficients of every model, ``V`` the top ``latent`` right singular vectors of the centred
    fitted values ``svd(X) @ B``; so the ``K`` models share ``latent`` directions of the query
    space, and what one model's outcomes teach about a query informs the others (models agree on
    which queries are hard). With ``latent=None`` (or ``>= K``) nothing is shared and it is the
    reference's LinearMF (SVD + ridge heads), which equals :class:`LinearRouter` whenever the SVD
    keeps every dimension (``min(n, d) <= rank``).

    Args:
        rank: number of SVD factors of the query (128 in the paper; capped at ``min(n, d)``).
        latent: size of the query and model embeddings (capped at ``K``; None: ``K``).
        alpha: ridge penalty of both targets.
        inputs: the input form (:data:`~agents.routers.inputs.INPUTS`); ``"balanced"`` keeps
            L2-normalised embeddings as the reference sees them.
        seed: the SVD's random state.
    """

    name = "LinearMF"
    _fitted = (
        "svd_",
        "perf_coef_",
        "perf_model_embedding_",
        "perf_bias_",
        "cost_coef_",
        "cost_model_embedding_",
        "cost_bias_",
    )

    def __init__(
        self,
        rank: int = 128,
        latent: int | None = 3,
        alpha: float = 1.0,
        inputs: str = "balanced",
        seed: int = 0,
    ) -> None:
        self.rank = check_int("rank", rank, low=1)
        self.latent = None if latent is None else check_int("latent", latent, low=1)
        self.alpha = check_float("alpha", alpha, low=0.0)
        self.inputs = check_inputs(inputs)
        self.seed = check_int("seed", seed, low=0, high=SEED_MAX)

    def _fit(self, X, correct, cost):
        rank = max(1, min(self.rank, X.shape[0], X.shape[1]))
        self.svd_ = TruncatedSVD(n_components=rank, random_state=self.seed)
        Z = self.svd_.fit_transform(X)
        self.perf_coef_, self.perf_model_embedding_, self.perf_bias_ = self._factorise(Z, correct)
        self.cost_coef_, self.cost_model_embedding_, self.cost_bias_ = self._factorise(Z, cost)

    def _factorise(self, Z: np.ndarray, Y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Reduced-rank ridge: coefficients ``[rank, K]``, model embeddings ``[latent, K]``, biases ``[K]``."""
        ridge = Ridge(alpha=self.alpha).fit(Z, Y)
        coef = ridge.coef_.T  # [rank, K]
        n_models = Y.shape[1]
        if self.latent is None or self.latent >= n_models:
            return coef, np.eye(n_models), ridge.intercept_  # nothing shared: model k's embedding is e_k
        latent = self.latent
        fitted = (Z - Z.mean(axis=0)) @ coef
        # Right singular vectors of the fitted values: the directions of model space the data supports.
        _, _, vt = np.linalg.svd(fitted, full_matrices=False)
        embedding = np.zeros((latent, n_models))
        embedding[: vt.shape[0]] = vt[:latent]
        return coef, embedding, ridge.intercept_

    def query_embedding(self, X: np.ndarray, target: str = "perf") -> np.ndarray:
        """``u(x)`` for observation rows ``X`` ``[n, d]``: ``[n, latent]`` (``target``: "perf" or "cost")."""
        self._check_fitted()
        coef, embedding = (
            (self.perf_coef_, self.perf_model_embedding_)
            if target == "perf"
            else (self.cost_coef_, self.cost_model_embedding_)
        )
        return self.svd_.transform(self.inputs_(np.asarray(X, dtype=np.float32))) @ coef @ embedding.T

    def _predict(self, X):
        Z = self.svd_.transform(X)
        out = []
        for coef, embedding, bias in (
            (self.perf_coef_, self.perf_model_embedding_, self.perf_bias_),
            (self.cost_coef_, self.cost_model_embedding_, self.cost_bias_),
        ):
            out.append((Z @ coef @ embedding.T) @ embedding + bias)
        return out[0], out[1]
