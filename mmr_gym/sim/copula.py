"""The fitted simulator: a Gaussian-copula factor model of one query's outcomes, and its sampling.

:class:`DatasetModel` is the model of one dataset, :class:`FittedSimulator` one per dataset of a
source table; :meth:`FittedSimulator.sample` draws any number of fresh queries (SIMULATED data with
the source's statistics). :func:`~mmr_gym.sim.fit.fit_simulator` estimates it from a table.

The model. A query is *unsolvable* with probability ``pi`` (no model answers it); otherwise it has
a latent normal vector ``z`` of length ``2K``, one coordinate per model's correctness and one per
model's cost, with a low-rank-plus-diagonal correlation::

    z = L f + sqrt(psi) * e,   f ~ N(0, I_r),  e ~ N(0, I_2K),  diag(L L^T) + psi = 1
    correct_m = 1[z_m > tau_m]  (0 for an unsolvable query)    (a multidimensional probit / IRT model)
    cost_m    = F_m^-1(Phi(z_{K+m}))                           (F_m: zero-inflated lognormal)

``f`` are the query's latent factors (skills, hardness, length: whatever the data share), ``L`` the
loadings of every model's correctness and cost on them, ``tau_m = Phi^-1(1 - accuracy_m / (1 - pi))``.
So each model's accuracy and cost distribution are matched exactly in expectation, and the
dependence between models (which queries are hard for whom, which are long for everyone, whether
hard queries cost more) is that of the correlation matrix ``L L^T + diag(psi)``.

Features. A real table's embeddings cannot be resampled without a model of the encoder, so sampled
tables carry one synthetic channel ``"latent"``: a fixed random linear view of the query's latent
factors, its unsolvable flag and its dataset, plus noise. It predicts outcomes the way the fitted
factors do, so routers can learn from it; it is not the source's embedding.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
from scipy.special import ndtr, ndtri

from mmr_gym.sim.transforms import allocate_counts
from mmr_gym.table import RoutingTable

# The fitted simulator's name in a sampled table's meta (its module's name before mmr_gym.sim was a
# package; kept so that sampled tables stay bit for bit what they were).
GENERATOR = "mmr_gym.sim_fit"
FEATURE_CHANNEL = "latent"


@dataclass(frozen=True, eq=False)
class DatasetModel:
    """The fitted copula factor model of one dataset (arrays over the ``K`` models).

    Attributes:
        name: the dataset name.
        weight: its share of the source table's queries [fraction].
        n_queries: queries it was fitted on.
        accuracy: float64 ``[K]`` accuracy per model over all queries [fraction].
        unsolvable_share: ``pi``, the share of queries no model answers [fraction].
        zero_cost_share: float64 ``[K]`` share of calls that cost exactly 0 [fraction].
        log_cost_mu: float64 ``[K]`` log-mean of the positive costs [log cost unit].
        log_cost_sigma: float64 ``[K]`` log-sd of the positive costs [log cost unit].
        loadings: float64 ``[2K, r]``: rows ``0..K-1`` correctness, ``K..2K-1`` cost [correlation].
        uniqueness: float64 ``[2K]``, ``1 - row sums of loadings^2`` [correlation].
        correlation: float64 ``[2K, 2K]`` the estimated pairwise latent correlation (solvable part).
    """

    name: str
    weight: float
    n_queries: int
    accuracy: np.ndarray
    unsolvable_share: float
    zero_cost_share: np.ndarray
    log_cost_mu: np.ndarray
    log_cost_sigma: np.ndarray
    loadings: np.ndarray
    uniqueness: np.ndarray
    correlation: np.ndarray = field(repr=False)

    @property
    def rank(self) -> int:
        """Number of latent factors ``r``."""
        return int(self.loadings.shape[1])

    @property
    def thresholds(self) -> np.ndarray:
        """``tau_m`` [latent sd]: on a solvable query model ``m`` is correct when its latent exceeds it."""
        return -ndtri(self.accuracy / (1.0 - self.unsolvable_share))

    @property
    def mean_cost(self) -> np.ndarray:
        """Expected cost per call per model [the table's cost unit]."""
        positive = np.exp(self.log_cost_mu + 0.5 * self.log_cost_sigma**2)
        return (1.0 - self.zero_cost_share) * positive

    def implied_correlation(self) -> np.ndarray:
        """The model's latent correlation ``L L^T + diag(psi)``, float64 ``[2K, 2K]``."""
        return self.loadings @ self.loadings.T + np.diag(self.uniqueness)

    def draw(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``n`` queries: ``(correct [n, K] in {0, 1}, cost [n, K] >= 0, latents [n, r + 1])``.

        ``latents`` are the factors ``f`` and the unsolvable flag (what the synthetic features show).
        """
        k = self.accuracy.size
        factors = rng.standard_normal((n, self.rank))
        latent = factors @ self.loadings.T + np.sqrt(self.uniqueness) * rng.standard_normal((n, 2 * k))
        unsolvable = rng.random(n) < self.unsolvable_share
        correct = ((latent[:, :k] > self.thresholds) & ~unsolvable[:, None]).astype(np.float32)
        # Probability integral transform: the cost latent's quantile picks the cost's quantile.
        u = ndtr(latent[:, k:])
        pi = self.zero_cost_share
        positive_u = np.clip((u - pi) / np.maximum(1.0 - pi, 1e-12), 1e-12, 1.0 - 1e-12)
        cost = np.where(u < pi, 0.0, np.exp(self.log_cost_mu + self.log_cost_sigma * ndtri(positive_u)))
        return correct, cost, np.c_[factors, unsolvable]


@dataclass(frozen=True, eq=False)
class FittedSimulator:
    """A generative model fitted to a real table; :meth:`sample` draws fresh SIMULATED tables.

    Attributes:
        models: the candidate model names, in column order.
        datasets: one :class:`DatasetModel` per dataset of the source, in order of appearance.
        cost_unit: the source's cost unit (sampled costs are in it).
        source: the source table's ``source`` and ``fingerprint`` (provenance).
        feature_dim: width of the synthetic ``"latent"`` feature channel [features]; 0 for none.
        feature_noise_sd: sd of its per-feature observation noise [feature units].
        feature_seed: seed of its fixed random projection (the same for every sample).
    """

    models: tuple[str, ...]
    datasets: tuple[DatasetModel, ...]
    cost_unit: str
    source: Mapping[str, str]
    feature_dim: int = 16
    feature_noise_sd: float = 0.5
    feature_seed: int = 0

    def __repr__(self) -> str:
        parts = ", ".join(f"{d.name}: r={d.rank} pi={d.unsolvable_share:.3f}" for d in self.datasets)
        return f"FittedSimulator(models={len(self.models)}, datasets=[{parts}], source={self.source['source']!r})"

    @property
    def dataset_names(self) -> tuple[str, ...]:
        return tuple(d.name for d in self.datasets)

    def sample(
        self, n: int, seed: int, *, dataset_weights: Mapping[str, float] | None = None
    ) -> RoutingTable:
        """Draw ``n`` fresh queries (any number, independent of the source's size).

        Args:
            n: number of queries, >= 1.
            seed: seed of ``np.random.default_rng``; the same seed gives the same table.
            dataset_weights: share of each dataset [relative weights, normalised here]; datasets
                left out get none. Default: the source's shares. Counts are the largest-remainder
                rounding of ``n * share``, so the mix is exact up to one query.

        Returns:
            A SIMULATED :class:`RoutingTable` (``meta["simulated"]`` True, ``cost_source``
            "simulated", the source's cost unit), query ids ``"<dataset>_sim<i>"``.
        """
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        counts = allocate_counts(n, self._weights(dataset_weights))
        rng = np.random.default_rng(seed)
        projection = self._projection()
        width = projection.shape[0] - len(self.datasets)  # padded latent width
        corrects, costs, features, names, ids = [], [], [], [], []
        for j, (model, count) in enumerate(zip(self.datasets, counts, strict=True)):
            if count == 0:
                continue
            correct, cost, latents = model.draw(int(count), rng)
            corrects.append(correct)
            costs.append(cost)
            if self.feature_dim:
                # Factors padded to a common width, the unsolvable flag last, then the dataset one-hot.
                view = np.zeros((count, projection.shape[0]))
                view[:, : model.rank] = latents[:, :-1]
                view[:, width - 1] = latents[:, -1]
                view[:, width + j] = 1.0
                noise = self.feature_noise_sd * rng.standard_normal((count, self.feature_dim))
                features.append(view @ projection + noise)
            names.extend([model.name] * int(count))
            ids.extend(f"{model.name}_sim{i}" for i in range(int(count)))
        return RoutingTable(
            correct=np.concatenate(corrects),
            cost=np.concatenate(costs),
            query_ids=ids,
            datasets=names,
            model_names=self.models,
            features={FEATURE_CHANNEL: np.concatenate(features)} if self.feature_dim else {},
            meta={
                "generator": GENERATOR,
                "simulated": True,
                "description": "SIMULATED queries from a Gaussian-copula factor model fitted to "
                f"{self.source['source']}; not measured model outputs",
                "cost_unit": self.cost_unit,
                "cost_source": "simulated",
                "fitted_to": dict(self.source),
                "seed": int(seed),
                "dataset_counts": {d.name: int(c) for d, c in zip(self.datasets, counts, strict=True)},
                "ranks": {d.name: d.rank for d in self.datasets},
                "unsolvable_share": {d.name: d.unsolvable_share for d in self.datasets},
            },
            source=f"{GENERATOR}:{self.source['source']}:seed={seed}",
        )

    def _weights(self, dataset_weights: Mapping[str, float] | None) -> np.ndarray:
        if dataset_weights is None:
            return np.array([d.weight for d in self.datasets])
        unknown = sorted(set(dataset_weights) - set(self.dataset_names))
        if unknown:
            raise ValueError(f"unknown dataset(s) {unknown}; the fit has {list(self.dataset_names)}")
        weights = np.array([float(dataset_weights.get(d, 0.0)) for d in self.dataset_names])
        if (weights < 0).any() or not np.isfinite(weights).all() or weights.sum() <= 0:
            raise ValueError(
                f"dataset_weights must be finite, >= 0 and not all 0, got {dict(dataset_weights)}"
            )
        return weights / weights.sum()

    def _projection(self) -> np.ndarray:
        """The fixed ``[r_max + 1 + D, feature_dim]`` map from (factors, unsolvable, dataset) to features.

        Factor rows have sd ``1 / sqrt(r_max + 1)`` and dataset rows sd 1, so every feature has about
        unit variance from the latents, and the dataset is as visible as in the preset.
        """
        width = max(d.rank for d in self.datasets) + 1
        rng = np.random.default_rng(self.feature_seed)
        latent_rows = rng.standard_normal((width, self.feature_dim)) / math.sqrt(width)
        dataset_rows = rng.standard_normal((len(self.datasets), self.feature_dim))
        return np.concatenate([latent_rows, dataset_rows])
