"""Latent correlations of (correctness, cost) columns: the copula's dependence, estimated pair by pair.

Tetrachoric correlations for pairs of 0/1 columns (bivariate-normal orthant probabilities by Owen's
T function, solved by bisection), Pearson correlations of normal scores for cost pairs, biserial
correlations for correctness-cost pairs (:func:`latent_correlation`).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import ndtr, ndtri, owens_t
from scipy.stats import rankdata


def _bivariate_normal_cdf(h: np.ndarray, k: np.ndarray, rho: np.ndarray) -> np.ndarray:
    """``P(X <= h, Y <= k)`` for standard normals with correlation ``rho`` (Owen's T formula, vectorised)."""
    h = np.where(np.abs(h) < 1e-10, 1e-10, h)  # the formula divides by h and k; the limit is continuous
    k = np.where(np.abs(k) < 1e-10, 1e-10, k)
    s = np.sqrt(1.0 - rho * rho)
    beta = np.where(h * k > 0, 0.0, 0.5)
    t_h = owens_t(h, (k - rho * h) / (h * s))
    t_k = owens_t(k, (h - rho * k) / (k * s))
    return 0.5 * (ndtr(h) + ndtr(k)) - t_h - t_k - beta


def tetrachoric_from_shares(share: np.ndarray, both: np.ndarray, n: int) -> np.ndarray:
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
    :func:`tetrachoric_from_shares`); the estimator of the copula's correctness block.
    """
    x = np.asarray(binary, dtype=np.float64) > 0.5
    n = x.shape[0]
    xf = x.astype(np.float64)
    return tetrachoric_from_shares(xf.mean(axis=0), (xf.T @ xf) / n, n)


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
    corr[k:, k:] = safe_corr(scores, scores)
    p = correct.mean(axis=0)
    point_biserial = safe_corr(correct.astype(np.float64), scores)
    tau = -ndtri(np.clip(p, 1e-12, 1 - 1e-12))
    density = np.exp(-0.5 * tau**2) / math.sqrt(2 * math.pi)
    biserial = np.clip(
        point_biserial * (np.sqrt(p * (1 - p)) / np.maximum(density, 1e-12))[:, None], -0.99, 0.99
    )
    corr[:k, k:] = biserial
    corr[k:, :k] = biserial.T
    np.fill_diagonal(corr, 1.0)
    return corr


def safe_corr(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson correlation between the columns of ``a`` and of ``b``; 0 where a column is constant."""
    a = a - a.mean(axis=0)
    b = b - b.mean(axis=0)
    sa, sb = np.sqrt((a * a).sum(axis=0)), np.sqrt((b * b).sum(axis=0))
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = (a.T @ b) / np.outer(sa, sb)
    return np.nan_to_num(np.clip(corr, -1.0, 1.0), nan=0.0)
