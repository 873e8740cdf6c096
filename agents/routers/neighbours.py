"""Neighbourhood routers: the outcomes of similar training queries (KNN, k-means clusters)."""

from __future__ import annotations

import numpy as np
from sklearn.cluster import KMeans
from sklearn.neighbors import VALID_METRICS, NearestNeighbors

from agents.routers.base import SEED_MAX, Router
from agents.routers.inputs import check_inputs
from mmr_gym.checks import check_int

# Metrics NearestNeighbors accepts with its default algorithm choice (brute force covers them all).
_KNN_METRICS = frozenset(VALID_METRICS["brute"]) - {"precomputed"}  # the router passes features


class KNNRouter(Router):
    """Means of the ``k`` nearest training queries' outcomes (cosine distance), as the reference.

    Args:
        k: neighbours (50 in the paper; capped at the number of training queries).
        metric: a :class:`sklearn.neighbors.NearestNeighbors` metric.
        inputs: the input form (:data:`~agents.routers.inputs.INPUTS`).
        seed: unused (the fit is deterministic); accepted so every router takes one.
    """

    name = "KNN"
    _fitted = ("neighbours_", "correct_", "cost_")

    def __init__(self, k: int = 50, metric: str = "cosine", inputs: str = "balanced", seed: int = 0) -> None:
        self.k = check_int("k", k, low=1)
        if not isinstance(metric, str) or metric not in _KNN_METRICS:
            raise ValueError(f"metric must be one of {sorted(_KNN_METRICS)}, got {metric!r}")
        self.metric = metric
        self.inputs = check_inputs(inputs)
        self.seed = check_int("seed", seed, low=0, high=SEED_MAX)

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
        inputs: the input form (:data:`~agents.routers.inputs.INPUTS`).
        seed: k-means' random state.
    """

    name = "KMeans"
    _fitted = ("kmeans_", "cluster_correct_", "cluster_cost_")

    def __init__(self, n_clusters: int = 20, inputs: str = "balanced", seed: int = 0) -> None:
        self.n_clusters = check_int("n_clusters", n_clusters, low=1)
        self.inputs = check_inputs(inputs)
        self.seed = check_int("seed", seed, low=0, high=SEED_MAX)

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
