"""Ridge statistics that forget: per-model regressions anchored to a prior, over recent observations only.

What the adaptive bandit learners (:mod:`agents.adaptive`) share. Per model ``k``, on augmented
features ``z = [x, 1]`` (``p`` columns), the regressions of performance and of cost are

    A_k = P + sum_i w_i z_i z_i^T,     b_k = P theta0_k + sum_i w_i y_i z_i,     theta_k = A_k^-1 b_k

over the observations ``i`` of model ``k`` (bandit feedback: the queries where it was called), with

- the **prior** ``theta0_k`` (a warm start's solution, e.g. ridge on the training split with full
  information; 0 by default) and its precision ``P = diag(slope_precision, ..., level_precision)``,
  in observations: the prior counts as that many observations along each feature (with
  standardised features) and along the intercept. A weak level and strong slopes let the
  estimates move their level (a model that got worse everywhere) from a few observations while the
  shape the warm start learned from thousands stays;
- **forgetting** by weights ``w_i``: ``"discount"`` gives ``w_i = gamma ** age_i`` (``age_i``: how many
  observations of the same model came after ``i``; a memory of about ``1 / (1 - gamma)``
  observations), ``"window"`` gives ``w_i = 1`` for the last ``window`` observations of the model and
  0 before. Either way the statistics are exactly those of a weighted ridge fit recomputed from
  scratch (the tests check it), and they forget toward the prior, never toward 0.

A model forgets only as it is observed again (the weights count its own observations): a model
nobody calls keeps what it knew. Every update stores ``A_k`` and refreshes its inverse (one
``p x p`` inversion, tens of microseconds for ``p`` ~ 33); the window's sums are recomputed from the
window itself every ``window`` updates, so subtractions never accumulate rounding.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from mmr_gym.checks import check_float, check_int

__all__ = ["FORGETTING", "ForgettingRidge"]

FORGETTING = ("discount", "window")


class ForgettingRidge:
    """Per-model ridge regressions of performance and cost on ``[x, 1]``, anchored to a prior, forgetting.

    Args:
        n_models: ``K``.
        dim: query features (``p = dim + 1`` with the intercept).
        forgetting: ``"discount"`` or ``"window"`` (see the module docstring).
        gamma: the discount per observation of the same model, in (0, 1] (``"discount"``; 1 never forgets).
        window: observations of each model kept (``"window"``).
        slope_precision: the prior's weight along each feature, in observations.
        level_precision: the prior's weight along the intercept, in observations.

    Attributes:
        design: float64 ``[K, p, p]``, ``A_k``.
        A_inv: float64 ``[K, p, p]``, its inverse.
        b_perf, b_cost, theta_perf, theta_cost, prior_perf, prior_cost: float64 ``[K, p]``.
    """

    _ARRAYS = (
        "design",
        "A_inv",
        "b_perf",
        "b_cost",
        "theta_perf",
        "theta_cost",
        "prior_perf",
        "prior_cost",
        "window_z",
        "window_perf",
        "window_cost",
        "window_count",
        "window_next",
        "since_refresh",
    )

    def __init__(
        self,
        n_models: int,
        dim: int,
        *,
        forgetting: str = "discount",
        gamma: float = 0.995,
        window: int = 200,
        slope_precision: float = 1000.0,
        level_precision: float = 10.0,
    ) -> None:
        n_models = check_int("n_models", n_models, low=1)
        p = check_int("dim", dim, low=1) + 1
        if forgetting not in FORGETTING:
            raise ValueError(f"unknown forgetting {forgetting!r}; allowed: {list(FORGETTING)}")
        self.forgetting = forgetting
        self.gamma = check_float("gamma", gamma, low=0.0, high=1.0, low_open=True)
        self.window = check_int("window", window, low=1)
        self.slope_precision = check_float("slope_precision", slope_precision, low=0.0, low_open=True)
        self.level_precision = check_float("level_precision", level_precision, low=0.0, low_open=True)
        self.precision = np.full(p, self.slope_precision)  # the diagonal of P
        self.precision[-1] = self.level_precision
        self.design = np.tile(np.diag(self.precision), (n_models, 1, 1))
        self.A_inv = np.tile(np.diag(1.0 / self.precision), (n_models, 1, 1))
        self.prior_perf = np.zeros((n_models, p))
        self.prior_cost = np.zeros((n_models, p))
        self.b_perf = np.zeros((n_models, p))
        self.b_cost = np.zeros((n_models, p))
        self.theta_perf = np.zeros((n_models, p))
        self.theta_cost = np.zeros((n_models, p))
        size = self.window if forgetting == "window" else 0  # a ring of each model's last observations
        self.window_z = np.zeros((n_models, size, p))
        self.window_perf = np.zeros((n_models, size))
        self.window_cost = np.zeros((n_models, size))
        self.window_count = np.zeros(n_models, dtype=np.int64)
        self.window_next = np.zeros(n_models, dtype=np.int64)
        self.since_refresh = np.zeros(n_models, dtype=np.int64)

    @property
    def n_models(self) -> int:
        return self.design.shape[0]

    def set_prior(self, theta_perf: np.ndarray, theta_cost: np.ndarray) -> None:
        """Anchor every model to ``theta_perf`` / ``theta_cost`` (float ``[K, p]``) and forget all
        observations: the statistics become the prior's."""
        shape = self.prior_perf.shape
        for name, value in (("theta_perf", theta_perf), ("theta_cost", theta_cost)):
            if np.shape(value) != shape:
                raise ValueError(f"set_prior: {name} must have shape {shape}, got {np.shape(value)}")
            if not np.isfinite(value).all():
                raise ValueError(f"set_prior: {name} has non-finite values")
        self.prior_perf = np.array(theta_perf, dtype=np.float64)
        self.prior_cost = np.array(theta_cost, dtype=np.float64)
        self.design = np.tile(np.diag(self.precision), (self.n_models, 1, 1))
        self.A_inv = np.tile(np.diag(1.0 / self.precision), (self.n_models, 1, 1))
        self.b_perf = self.prior_perf * self.precision
        self.b_cost = self.prior_cost * self.precision
        self.theta_perf, self.theta_cost = self.prior_perf.copy(), self.prior_cost.copy()
        self.window_count[:] = 0
        self.window_next[:] = 0
        self.since_refresh[:] = 0

    def update(self, z: np.ndarray, model: int, correct: float, cost: float) -> None:
        """Add one observation ``z`` (augmented, ``[p]``) of ``model`` and forget as configured."""
        z = np.asarray(z, dtype=np.float64)
        k = model
        if self.forgetting == "discount":
            # A <- gamma A + (1 - gamma) P + z z^T keeps A = P + sum gamma^age z z^T (and b alike).
            g = self.gamma
            self.design[k] *= g
            self.design[k] += np.diag((1.0 - g) * self.precision) + np.outer(z, z)
            self.b_perf[k] = (
                g * self.b_perf[k] + (1.0 - g) * self.precision * self.prior_perf[k] + correct * z
            )
            self.b_cost[k] = g * self.b_cost[k] + (1.0 - g) * self.precision * self.prior_cost[k] + cost * z
        else:
            slot = self.window_next[k]
            if self.window_count[k] == self.window:  # the oldest observation leaves the window
                old = self.window_z[k, slot]
                self.design[k] -= np.outer(old, old)
                self.b_perf[k] -= self.window_perf[k, slot] * old
                self.b_cost[k] -= self.window_cost[k, slot] * old
            else:
                self.window_count[k] += 1
            self.window_z[k, slot], self.window_perf[k, slot], self.window_cost[k, slot] = z, correct, cost
            self.window_next[k] = (slot + 1) % self.window
            self.design[k] += np.outer(z, z)
            self.b_perf[k] += correct * z
            self.b_cost[k] += cost * z
            self.since_refresh[k] += 1
            if self.since_refresh[k] >= self.window:
                self._recompute_window(k)
        self.A_inv[k] = np.linalg.inv(self.design[k])
        self.theta_perf[k] = self.A_inv[k] @ self.b_perf[k]
        self.theta_cost[k] = self.A_inv[k] @ self.b_cost[k]

    def _recompute_window(self, k: int) -> None:
        """The window's sums from the window itself (no rounding carried over from subtractions)."""
        n = self.window_count[k]
        Z = self.window_z[k, :n]
        self.design[k] = np.diag(self.precision) + Z.T @ Z
        self.b_perf[k] = self.precision * self.prior_perf[k] + self.window_perf[k, :n] @ Z
        self.b_cost[k] = self.precision * self.prior_cost[k] + self.window_cost[k, :n] @ Z
        self.since_refresh[k] = 0

    def means(self, Z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Point estimates ``(perf, cost)`` for augmented rows ``Z`` ``[n, p]``: ``[n, K]`` each."""
        return Z @ self.theta_perf.T, Z @ self.theta_cost.T

    def widths(self, z: np.ndarray) -> np.ndarray:
        """``sqrt(z^T A_k^-1 z)`` for every model: ``[K]`` for one query ``z`` ``[p]``, ``[n, K]`` for rows."""
        z = np.asarray(z, dtype=np.float64)
        if z.ndim == 2:
            squared = np.einsum("ni,kij,nj->nk", z, self.A_inv, z)
        else:
            squared = np.matmul(self.A_inv, z) @ z
        return np.sqrt(np.maximum(squared, 0.0))

    def state_dict(self) -> dict[str, np.ndarray]:
        """The statistics arrays by attribute name (references, not copies)."""
        return {name: getattr(self, name) for name in self._ARRAYS}

    def load_state_dict(self, state: Mapping[str, np.ndarray]) -> None:
        """Replace the statistics by ``state`` (as :meth:`state_dict` returns it); shapes must match."""
        for name in self._ARRAYS:
            value = np.asarray(state[name])
            expected = getattr(self, name)
            if value.shape != expected.shape:
                raise ValueError(
                    f"ForgettingRidge.{name}: expected shape {expected.shape}, got {value.shape}"
                )
            setattr(self, name, np.array(value, dtype=expected.dtype))
