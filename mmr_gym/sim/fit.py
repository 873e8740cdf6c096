"""Fit a generative model to a real outcome table, to sample unlimited fresh queries from it.

:func:`fit_simulator` estimates, per dataset of a :class:`~mmr_gym.table.RoutingTable`, the
Gaussian-copula factor model of :mod:`mmr_gym.sim.copula`.

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
"""

from __future__ import annotations

import math
import warnings

import numpy as np
from scipy.optimize import brentq
from scipy.special import ndtr, ndtri
from threadpoolctl import threadpool_limits

from mmr_gym.sim.copula import DatasetModel, FittedSimulator
from mmr_gym.sim.correlation import latent_correlation, tetrachoric_from_shares
from mmr_gym.table import RoutingTable


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
            c[:k, :k] = tetrachoric_from_shares(accuracy / (1 - pi), both / (1 - pi), n)
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
    """Fit the Gaussian-copula factor model (:mod:`mmr_gym.sim.copula`) to ``table``.

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
