"""Linear routers: ridge heads on the query features (Linear) and matrix factorisation (LinearMF)."""

from __future__ import annotations

from sklearn.decomposition import TruncatedSVD
from sklearn.linear_model import Ridge

from agents.routers.base import Router


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
        self.alpha = alpha
        self.seed = seed

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
        self.rank = rank
        self.alpha = alpha
        self.seed = seed

    def _fit(self, X, correct, cost):
        rank = max(1, min(self.rank, X.shape[0], X.shape[1]))
        self.svd_ = TruncatedSVD(n_components=rank, random_state=self.seed)
        Z = self.svd_.fit_transform(X)
        self.perf_model_ = Ridge(alpha=self.alpha).fit(Z, correct)
        self.cost_model_ = Ridge(alpha=self.alpha).fit(Z, cost)

    def _predict(self, X):
        Z = self.svd_.transform(X)
        return self.perf_model_.predict(Z), self.cost_model_.predict(Z)
