"""Fit a generative model to a real outcome table and sample unlimited fresh queries from it.

:func:`fit_simulator` estimates, per dataset of a :class:`~mmr_gym.table.RoutingTable`, a
**Gaussian-copula factor model** of one query's outcomes over the ``K`` models, and
:meth:`FittedSimulator.sample` draws new queries from it (SIMULATED data with the source's
statistics). :func:`fit_report` compares a real and a simulated table statistic by statistic.

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

Estimation is classical and deterministic (no sampling of queries, no likelihood iterations):

1. marginals: accuracy per model; per model the share of zero costs and a lognormal for the
   positive costs whose mean equals the observed mean and whose log-sd equals the observed one;
2. pairwise latent correlations: tetrachoric for correctness pairs (bivariate-normal orthant
   probabilities, by Owen's T function, solved by bisection), biserial for correctness-cost pairs,
   Pearson on normal scores for cost pairs (the copula's own scale);
3. principal-axis factoring of that ``2K x 2K`` matrix, with the smallest rank whose largest
   off-diagonal residual is within sampling noise (``max(0.05, 3 / sqrt(n))``); the implied
   correlation is positive definite by construction;
4. the unsolvable share ``pi``: pairwise statistics fix the copula's two-way structure but not the
   share of queries that *every* model fails, which sets the oracle accuracy. Real benchmarks have
   more such queries than a Gaussian copula implies (items that are wrong, ambiguous or far too
   hard), so ``pi`` is solved (Brent) so that the model's expected share of "no model correct"
   equals the observed one, with steps 2-3 redone on the solvable part (``accuracy / (1 - pi)``,
   both-correct shares ``/ (1 - pi)``). ``pi`` is 0 when the copula alone already has enough.

Binary correctness is modelled exactly; graded scores are binarised at 0.5 (with a warning).

Features. A real table's embeddings cannot be resampled without a model of the encoder, so sampled
tables carry one synthetic channel ``"latent"``: a fixed random linear view of the query's latent
factors, its unsolvable flag and its dataset, plus noise. It predicts outcomes the way the fitted
factors do, so routers can learn from it; it is not the source's embedding.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy.optimize import brentq
from scipy.special import ndtr, ndtri, owens_t
from scipy.stats import rankdata
from threadpoolctl import threadpool_limits

from mmr_gym.sim import allocate_counts
from mmr_gym.table import RoutingTable

GENERATOR = "mmr_gym.sim_fit"
FEATURE_CHANNEL = "latent"

__all__ = [
    "DatasetModel",
    "FittedSimulator",
    "fit_report",
    "fit_simulator",
    "latent_correlation",
    "tetrachoric",
]


# ---------------------------------------------------------------------------------------------- model
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


# ---------------------------------------------------------------------------------------------- estimation
def _bivariate_normal_cdf(h: np.ndarray, k: np.ndarray, rho: np.ndarray) -> np.ndarray:
    """``P(X <= h, Y <= k)`` for standard normals with correlation ``rho`` (Owen's T formula, vectorised)."""
    h = np.where(np.abs(h) < 1e-10, 1e-10, h)  # the formula divides by h and k; the limit is continuous
    k = np.where(np.abs(k) < 1e-10, 1e-10, k)
    s = np.sqrt(1.0 - rho * rho)
    beta = np.where(h * k > 0, 0.0, 0.5)
    t_h = owens_t(h, (k - rho * h) / (h * s))
    t_k = owens_t(k, (h - rho * k) / (k * s))
    return 0.5 * (ndtr(h) + ndtr(k)) - t_h - t_k - beta


def _tetrachoric_from_shares(share: np.ndarray, both: np.ndarray, n: int) -> np.ndarray:
    """Tetrachoric correlations from success shares ``[p]`` and both-success shares ``[p, p]``.

    For each pair, the correlation of a bivariate normal whose orthant probability
    ``P(z_i > tau_i, z_j > tau_j)`` equals ``both`` (thresholds from the margins), by bisection
    (the probability increases with the correlation). Four-fold tables with an empty cell get 0.5
    added to every cell (of ``n`` queries). Constant columns get correlation 0.
    """
    p = share.size
    constant = (share <= 0) | (share >= 1)
    one_only = share[:, None] - both
    neither = 1.0 - share[:, None] - share[None, :] + both
    empty = np.minimum.reduce([both, one_only, one_only.T, neither]) <= 0
    both = np.where(empty, (both * n + 0.5) / (n + 2.0), both)
    tau = -ndtri(np.clip(share, 0.5 / n, 1.0 - 0.5 / n))
    h, k = np.meshgrid(-tau, -tau, indexing="ij")  # P(z_i > tau_i, z_j > tau_j) = Phi2(-tau_i, -tau_j)
    low, high = np.full((p, p), -0.999), np.full((p, p), 0.999)
    for _ in range(40):  # 40 halvings: below 2e-12
        mid = 0.5 * (low + high)
        above = _bivariate_normal_cdf(h, k, mid) > both
        high = np.where(above, mid, high)
        low = np.where(above, low, mid)
    rho = 0.5 * (low + high)
    rho[constant, :] = 0.0
    rho[:, constant] = 0.0
    np.fill_diagonal(rho, 1.0)
    return 0.5 * (rho + rho.T)


def tetrachoric(binary: np.ndarray) -> np.ndarray:
    """Tetrachoric correlation matrix of 0/1 columns ``[n, p]``, float64 ``[p, p]``.

    The latent-normal correlation behind each pair of binary columns (see
    :func:`_tetrachoric_from_shares`); the estimator of the copula's correctness block.
    """
    x = np.asarray(binary, dtype=np.float64) > 0.5
    n = x.shape[0]
    xf = x.astype(np.float64)
    return _tetrachoric_from_shares(xf.mean(axis=0), (xf.T @ xf) / n, n)


def _normal_scores(values: np.ndarray) -> np.ndarray:
    """Van der Waerden scores ``Phi^-1(rank / (n + 1))`` per column (ties: mid-ranks); float64 ``[n, p]``."""
    return ndtri(rankdata(values, axis=0, method="average") / (values.shape[0] + 1.0))


def latent_correlation(correct: np.ndarray, cost: np.ndarray) -> np.ndarray:
    """The ``2K x 2K`` latent correlation of (correctness, cost) columns of one dataset.

    Correctness pairs: tetrachoric. Cost pairs: Pearson of normal scores. Correctness-cost pairs:
    biserial, ``r_pb * sqrt(p (1 - p)) / phi(tau)`` from the point-biserial ``r_pb`` of the 0/1
    column with the cost's normal scores. Undefined entries (constant columns) are 0.
    """
    correct = np.asarray(correct, dtype=np.float64) > 0.5
    k = correct.shape[1]
    scores = _normal_scores(np.asarray(cost, dtype=np.float64))
    corr = np.eye(2 * k)
    corr[:k, :k] = tetrachoric(correct)
    corr[k:, k:] = _safe_corr(scores, scores)
    p = correct.mean(axis=0)
    point_biserial = _safe_corr(correct.astype(np.float64), scores)
    tau = -ndtri(np.clip(p, 1e-12, 1 - 1e-12))
    density = np.exp(-0.5 * tau**2) / math.sqrt(2 * math.pi)
    biserial = np.clip(
        point_biserial * (np.sqrt(p * (1 - p)) / np.maximum(density, 1e-12))[:, None], -0.99, 0.99
    )
    corr[:k, k:] = biserial
    corr[k:, :k] = biserial.T
    np.fill_diagonal(corr, 1.0)
    return corr


def _safe_corr(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson correlation between the columns of ``a`` and of ``b``; 0 where a column is constant."""
    a = a - a.mean(axis=0)
    b = b - b.mean(axis=0)
    sa, sb = np.sqrt((a * a).sum(axis=0)), np.sqrt((b * b).sum(axis=0))
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = (a.T @ b) / np.outer(sa, sb)
    return np.nan_to_num(np.clip(corr, -1.0, 1.0), nan=0.0)


def _principal_axis(corr: np.ndarray, rank: int, iterations: int = 300) -> tuple[np.ndarray, np.ndarray]:
    """Principal-axis factoring: loadings ``[p, rank]`` and uniqueness ``[p]`` with ``LL^T + psi ~ corr``.

    Communalities start at the squared multiple correlations of a positive definite repair of
    ``corr`` and are iterated to a fixed point; each is kept in [0, 0.995] so that every variable
    keeps some unique noise (the implied matrix is then positive definite).
    """
    vals, vecs = np.linalg.eigh(corr)
    repaired = (vecs * np.maximum(vals, 1e-3)) @ vecs.T
    scale = np.sqrt(np.diag(repaired))
    repaired = repaired / np.outer(scale, scale)
    communality = np.clip(1.0 - 1.0 / np.diag(np.linalg.inv(repaired)), 0.0, 0.995)
    off_diagonal = corr - np.diag(np.diag(corr))
    for _ in range(iterations):
        vals, vecs = np.linalg.eigh(off_diagonal + np.diag(communality))
        top = np.argsort(vals)[::-1][:rank]
        loadings = vecs[:, top] * np.sqrt(np.maximum(vals[top], 0.0))
        updated = np.clip((loadings**2).sum(axis=1), 0.0, 0.995)
        converged = np.max(np.abs(updated - communality)) < 1e-6
        communality = updated
        if converged:
            break
    # Rescale rows so that the communalities are exactly the clipped ones.
    norms = np.sqrt((loadings**2).sum(axis=1))
    loadings = loadings * (np.sqrt(communality) / np.where(norms > 0, norms, 1.0))[:, None]
    # A sign convention so that fits are reproducible: each factor's largest loading is positive.
    signs = np.sign(loadings[np.argmax(np.abs(loadings), axis=0), np.arange(rank)])
    return loadings * np.where(signs == 0, 1.0, signs), 1.0 - communality


def _choose_rank(corr: np.ndarray, n: int, max_rank: int) -> int:
    """The smallest rank whose largest off-diagonal residual is within sampling noise."""
    tol = max(0.05, 3.0 / math.sqrt(n))  # ~3 standard errors of a correlation near 0
    off = ~np.eye(corr.shape[0], dtype=bool)
    for rank in range(1, max_rank + 1):
        loadings, uniqueness = _principal_axis(corr, rank)
        residual = corr - loadings @ loadings.T - np.diag(uniqueness)
        if np.abs(residual[off]).max() <= tol:
            return rank
    return max_rank


def _none_correct(accuracy: np.ndarray, loadings: np.ndarray, uniqueness: np.ndarray) -> float:
    """The copula's ``P(no model correct)``: given ``f`` the latents are independent, so the orthant
    probability is ``E_f[prod_m Phi((tau_m - L_m f) / sqrt(psi_m))]``, averaged over 20,000 fixed
    (seed 0) draws of ``f``: deterministic, and accurate to about 1e-3."""
    k = accuracy.size
    tau = -ndtri(accuracy)
    f = np.random.default_rng(0).standard_normal((20_000, loadings.shape[1]))
    z = (tau[None, :] - f @ loadings[:k].T) / np.sqrt(uniqueness[:k])[None, :]
    return float(np.exp(np.log(np.maximum(ndtr(z), 1e-300)).sum(axis=1)).mean())


def _fit_dataset(
    name: str, part: RoutingTable, weight: float, rank: int | None, max_rank: int
) -> DatasetModel:
    correct = (part.correct > 0.5).astype(np.float64)
    cost = part.cost.astype(np.float64)
    n, k = correct.shape
    zero = (cost <= 0).mean(axis=0)
    mu, sigma = np.zeros(k), np.zeros(k)
    for m in range(k):
        positive = cost[cost[:, m] > 0, m]
        if positive.size:
            logs = np.log(positive)
            sigma[m] = logs.std(ddof=1) if positive.size > 1 else 0.0
            # Mean-matched: exp(mu + sigma^2 / 2) is the observed mean of the positive costs.
            mu[m] = math.log(positive.mean()) - 0.5 * sigma[m] ** 2
    accuracy = np.clip(correct.mean(axis=0), 0.5 / n, 1.0 - 0.5 / n)
    both = (correct.T @ correct) / n
    none_observed = float((correct.sum(axis=1) == 0).mean())
    corr = latent_correlation(correct, cost)
    rank = _choose_rank(corr, n, min(max_rank, 2 * k - 1)) if rank is None else rank

    def fit_at(pi: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Correlation, loadings, uniqueness of the solvable part when a share ``pi`` is unsolvable."""
        c = corr.copy()
        if pi > 0:
            c[:k, :k] = _tetrachoric_from_shares(accuracy / (1 - pi), both / (1 - pi), n)
        loadings, uniqueness = _principal_axis(c, rank)
        return c, loadings, uniqueness

    def gap(pi: float) -> float:
        """Model minus observed share of queries no model answers."""
        _, loadings, uniqueness = fit_at(pi)
        return pi + (1 - pi) * _none_correct(accuracy / (1 - pi), loadings, uniqueness) - none_observed

    pi = 0.0
    # Every model must stay below accuracy 1 on the solvable part, and pi cannot exceed "none correct".
    pi_max = min(none_observed, 1.0 - float(accuracy.max())) * (1 - 1e-6)
    if pi_max > 0 and gap(0.0) < 0:
        pi = pi_max if gap(pi_max) <= 0 else float(brentq(gap, 0.0, pi_max, xtol=1e-6))
    c, loadings, uniqueness = fit_at(pi)
    return DatasetModel(name, weight, n, accuracy, pi, zero, mu, sigma, loadings, uniqueness, c)


def fit_simulator(
    table: RoutingTable,
    *,
    rank: int | None = None,
    max_rank: int = 10,
    by_dataset: bool = True,
    feature_dim: int = 16,
    feature_noise_sd: float = 0.5,
    feature_seed: int = 0,
) -> FittedSimulator:
    """Fit the Gaussian-copula factor model (module docstring) to ``table``.

    Args:
        table: the source (real or simulated); correctness 0/1 (graded scores are binarised at 0.5
            with a warning), costs >= 0.
        rank: number of latent factors per dataset; None chooses the smallest rank whose largest
            off-diagonal residual correlation is within ``max(0.05, 3 / sqrt(n))``.
        max_rank: the largest rank tried when ``rank`` is None.
        by_dataset: fit each dataset separately (its own margins and dependence); False pools all
            queries into one model named ``"all"``.
        feature_dim: width of the sampled tables' synthetic ``"latent"`` channel [features] (0: none).
        feature_noise_sd: its per-feature noise sd [feature units].
        feature_seed: seed of its fixed random projection.

    Deterministic: the same table gives the same fit. Takes about a second for 10 models.
    """
    if not np.isin(np.unique(table.correct), (0.0, 1.0)).all():
        warnings.warn(f"{table.source}: graded correctness is binarised at 0.5 for the fit", stacklevel=2)
    if rank is not None and not 1 <= rank <= 2 * table.n_models - 1:
        raise ValueError(f"rank must be in [1, {2 * table.n_models - 1}], got {rank}")
    groups = table.dataset_names if by_dataset else ("all",)
    datasets = []
    # Hundreds of tiny eigendecompositions: BLAS threads only add contention (10x slower on 2 cores).
    with threadpool_limits(1):
        for name in groups:
            part = table.subset(table.datasets == name) if by_dataset else table
            datasets.append(_fit_dataset(name, part, part.n_queries / table.n_queries, rank, max_rank))
    return FittedSimulator(
        models=table.model_names,
        datasets=tuple(datasets),
        cost_unit=table.cost_unit,
        source={"source": table.source, "fingerprint": table.fingerprint()},
        feature_dim=int(feature_dim),
        feature_noise_sd=float(feature_noise_sd),
        feature_seed=int(feature_seed),
    )


# ---------------------------------------------------------------------------------------------- fidelity
def _stats(table: RoutingTable) -> dict[str, Any]:
    correct = table.correct > 0.5
    cost = table.cost.astype(np.float64)
    logs = np.log(np.maximum(cost, 1e-300))
    # Rank correlations for costs: invariant to the marginal, so they test the dependence alone.
    cost_ranks = rankdata(cost, axis=0)
    pairs = np.triu_indices(table.n_models, 1)
    accuracy = correct.mean(axis=0)
    return {
        "accuracy": accuracy,
        "mean_cost": cost.mean(axis=0),
        "log_cost_sd": logs.std(axis=0),
        "phi": _safe_corr(correct.astype(np.float64), correct.astype(np.float64))[pairs],
        "cost_corr": _safe_corr(cost_ranks, cost_ranks)[pairs],
        "cross": np.diag(_safe_corr(correct.astype(np.float64), cost_ranks)),
        "oracle": float(correct.any(axis=1).mean()),
        "best": float(accuracy.max()),
        "random": float(accuracy.mean()),
        "none_correct": float((~correct).all(axis=1).mean()),
        "shares": {d: float(np.mean(table.datasets == d)) for d in table.dataset_names},
    }


def fit_report(real: RoutingTable, simulated: RoutingTable) -> pd.DataFrame:
    """Statistic by statistic, the real table against a simulated one (e.g. a fitted sample).

    Returns:
        A DataFrame with columns ``statistic``, ``model`` ("" for table-level rows), ``real``,
        ``simulated``, ``difference`` (simulated - real) and ``unit``. Rows: per model its accuracy
        [fraction], mean cost [cost unit] and log-cost sd [log units]; then the oracle accuracy
        (some model correct), the best single and mean-over-models accuracy, the share of queries no
        model answers, the mean and the RMS difference (pair by pair; in ``difference`` only) of the
        pairwise correctness correlations (phi) and of the pairwise cost rank (Spearman)
        correlations, the mean correlation between a model's correctness and its cost rank, and
        each dataset's share of queries.
    """
    if tuple(real.model_names) != tuple(simulated.model_names):
        raise ValueError("real and simulated tables must have the same models in the same order")
    a, b = _stats(real), _stats(simulated)
    unit = real.cost_unit
    rows: list[tuple[str, str, float, float, str]] = []
    for j, model in enumerate(real.model_names):
        rows.append(("accuracy", model, a["accuracy"][j], b["accuracy"][j], "fraction"))
        rows.append(("mean cost", model, a["mean_cost"][j], b["mean_cost"][j], unit))
        rows.append(("log-cost sd", model, a["log_cost_sd"][j], b["log_cost_sd"][j], "log units"))
    rows += [
        ("oracle accuracy", "", a["oracle"], b["oracle"], "fraction"),
        ("best single accuracy", "", a["best"], b["best"], "fraction"),
        ("mean-over-models accuracy", "", a["random"], b["random"], "fraction"),
        ("no model correct", "", a["none_correct"], b["none_correct"], "fraction"),
        ("pairwise correctness corr (mean)", "", _mean(a["phi"]), _mean(b["phi"]), "correlation"),
        ("pairwise correctness corr (RMS diff)", "", math.nan, math.nan, "correlation"),
        ("pairwise cost rank corr (mean)", "", _mean(a["cost_corr"]), _mean(b["cost_corr"]), "correlation"),
        ("pairwise cost rank corr (RMS diff)", "", math.nan, math.nan, "correlation"),
        ("corr(correct, cost rank) (mean)", "", _mean(a["cross"]), _mean(b["cross"]), "correlation"),
    ]
    for name, share in a["shares"].items():
        rows.append(("dataset share", name, share, b["shares"].get(name, 0.0), "fraction"))
    frame = pd.DataFrame(rows, columns=["statistic", "model", "real", "simulated", "unit"])
    frame.insert(4, "difference", frame["simulated"] - frame["real"])
    # Pair-by-pair agreement has no real/simulated value of its own: only the RMS difference.
    rms = {
        "pairwise correctness corr (RMS diff)": _rms(a["phi"] - b["phi"]),
        "pairwise cost rank corr (RMS diff)": _rms(a["cost_corr"] - b["cost_corr"]),
    }
    for statistic, value in rms.items():
        frame.loc[frame["statistic"] == statistic, "difference"] = value
    return frame


def _mean(values: np.ndarray) -> float:
    return float(np.mean(values)) if values.size else math.nan


def _rms(values: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(values)))) if values.size else math.nan
