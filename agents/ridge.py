"""Per-model ridge statistics updated one observation at a time: what the linear bandit learners share."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from scipy.linalg import blas

from mmr_gym.checks import check_float

__all__ = ["RidgeStatistics"]

# Below this many columns (features + 1) every model starts in dense form.
_LOW_RANK_MIN_DIM = 64


class RidgeStatistics:
    """Per-model ridge regression of performance and cost on ``[x, 1]``, updated one observation at a time.

    Each model's design matrix ``A_k = A_0 + sum z z^T`` (``A_0 = ridge * I``, or after a
    full-information :meth:`fit` the design matrix of its queries, the same for every model) is kept
    as its inverse, updated by Sherman-Morrison (``A^-1 <- A^-1 - u u^T / (1 + z.u)``, ``u = A^-1
    z``), in one of two forms:

    - low rank, while a model has few observations since ``A_0`` (and ``p >= 64``): ``A_k^-1 = B -
      G_k^T G_k``, with ``B = A_0^-1`` shared by every model and the rows of ``G_k`` the ``u /
      sqrt(1 + z.u)`` of its updates; a query's width takes one product with ``B`` for all models
      (none when ``B = I / ridge``) and one with each ``G_k`` (``n_k * p``), instead of a ``p * p``
      product per model, so a learner on wide features (MiniLM's 384 dimensions) decides many times
      faster;
    - dense, ``A_inv[k]`` ``[p, p]``, once a model has ``p`` observations (where the low-rank form
      would cost more), or after a :meth:`fit` on each model's own queries (``models``). The switch
      materialises the inverse once.

    The ridge solutions are updated with the same vector, ``theta <- theta + u (y - z.theta) / (1 +
    z.u)``, in ``O(p)``; :meth:`widths` keeps the products of the query it was asked about, so the
    update of the model then called reuses them. Results equal the textbook dense inverse and
    ``A^-1 b`` up to float rounding (about 1e-12 relative after thousands of updates).

    Attributes:
        A_inv: float64 ``[K, p, p]``, every model's inverse design matrix (materialised on access).
        b_perf, b_cost: float64 ``[K, p]``, sums of ``correct * z`` and ``cost * z``.
        theta_perf, theta_cost: float64 ``[K, p]``, the ridge solutions ``A_inv @ b``.
    """

    _ARRAYS = (
        "shared_inverse",
        "shared_is_identity",
        "dense_inverse",
        "dense",
        "factors",
        "n_factors",
        "b_perf",
        "b_cost",
        "theta_perf",
        "theta_cost",
    )

    def __init__(self, n_models: int, dim: int, ridge: float = 1.0) -> None:
        ridge = check_float("ridge", ridge, low=0.0, low_open=True)
        p = dim + 1
        self.ridge = float(ridge)
        # B of the low-rank form: I / ridge (not stored: shared_is_identity) or A_0^-1 after a fit.
        self.shared_inverse = np.zeros((p, p))
        self.shared_is_identity = np.array(True)
        self.dense_inverse = np.tile(np.eye(p) / ridge, (n_models, 1, 1))  # A_k^-1 of dense models
        # Narrow features: one batched product over dense inverses beats per-model low-rank products.
        self.dense = np.full(n_models, p < _LOW_RANK_MIN_DIM)
        self.factors = np.zeros((n_models, p, p))  # G_k of the models in low-rank form (up to p rows)
        self.n_factors = np.zeros(n_models, dtype=np.int64)
        self.b_perf = np.zeros((n_models, p))
        self.b_cost = np.zeros((n_models, p))
        self.theta_perf = np.zeros((n_models, p))
        self.theta_cost = np.zeros((n_models, p))
        # (z, B z, per model: A^-1 z if dense, else G z) of the last widths(z), for the update after it
        self._cached: tuple[np.ndarray, np.ndarray, list[np.ndarray]] | None = None

    @classmethod
    def shapes(cls, n_models: int, dim: int) -> dict[str, tuple[int, ...]]:
        """The shapes of the per-model arrays every saved form has (``b`` and ``theta``), for
        ``n_models`` models and ``dim`` features, without allocating: enough to check a saved
        learner's sizes before building it."""
        return {name: (n_models, dim + 1) for name in ("b_perf", "b_cost", "theta_perf", "theta_cost")}

    @property
    def A_inv(self) -> np.ndarray:
        """float64 ``[K, p, p]``: every model's inverse design matrix (a fresh array)."""
        n_models, p = self.b_perf.shape
        out = np.empty((n_models, p, p))
        for k in range(n_models):
            out[k] = self.dense_inverse[k] if self.dense[k] else self._low_rank_inverse(k)
        return out

    @staticmethod
    def augment(X: np.ndarray) -> np.ndarray:
        """``[X, 1]``: the features with a constant for the intercept (float64)."""
        X = np.asarray(X, dtype=np.float64)
        return np.concatenate([X, np.ones(X.shape[:-1] + (1,))], axis=-1)

    def update(self, z: np.ndarray, model: int, correct: float, cost: float) -> None:
        """Add one observation ``z`` (augmented, ``[p]``) of ``model``: Sherman-Morrison on its inverse."""
        z = np.asarray(z, dtype=np.float64)
        if self._cached is not None and np.array_equal(self._cached[0], z):
            _, shared, vectors = self._cached
            u = vectors[model] if self.dense[model] else self._low_rank_apply(model, shared, vectors[model])
        else:
            u = self._apply_inverse(model, z)
        self._cached = None  # the statistics change
        denominator = 1.0 + z @ u
        if not self.dense[model] and self.n_factors[model] == self.factors.shape[1]:
            self.dense_inverse[model] = self._low_rank_inverse(model)  # the low-rank form is full
            self.dense[model], self.n_factors[model] = True, 0
            self.factors[model] = 0.0
        if self.dense[model]:
            # In place: the transposed view is Fortran-ordered, and the update is symmetric.
            inverse = self.dense_inverse[model]
            updated = blas.dger(-1.0 / denominator, u, u, a=inverse.T, overwrite_a=1)
            if not np.shares_memory(updated, inverse):
                inverse[...] = updated.T
        else:
            self.factors[model, self.n_factors[model]] = u / np.sqrt(denominator)
            self.n_factors[model] += 1
        self.b_perf[model] += correct * z
        self.b_cost[model] += cost * z
        self.theta_perf[model] += u * ((correct - z @ self.theta_perf[model]) / denominator)
        self.theta_cost[model] += u * ((cost - z @ self.theta_cost[model]) / denominator)

    def fit(
        self, Z: np.ndarray, correct: np.ndarray, cost: np.ndarray, models: np.ndarray | None = None
    ) -> None:
        """Replace the statistics by a batch fit: ``Z`` ``[n, p]``; ``correct``/``cost`` ``[n, K]``
        (full information) or ``[n]`` with ``models`` ``[n]`` saying which model each row observed."""
        n_models, p = self.b_perf.shape
        eye = self.ridge * np.eye(p)
        self.factors[:] = 0.0
        self.n_factors[:] = 0
        self._cached = None
        if models is None:
            # Every model saw every query: one inverse, shared as the base of the low-rank form.
            shared = np.linalg.inv(eye + Z.T @ Z)
            self.b_perf, self.b_cost = correct.T @ Z, cost.T @ Z
            self.theta_perf, self.theta_cost = self.b_perf @ shared, self.b_cost @ shared  # B symmetric
            if p < _LOW_RANK_MIN_DIM:
                self.dense_inverse = np.tile(shared, (n_models, 1, 1))
                self.dense = np.ones(n_models, dtype=bool)
            else:
                self.shared_inverse, self.shared_is_identity = shared, np.array(False)
                self.dense = np.zeros(n_models, dtype=bool)
            return
        A = np.empty((n_models, p, p))
        self.b_perf, self.b_cost = np.zeros((n_models, p)), np.zeros((n_models, p))
        for k in range(n_models):
            Zk = Z[models == k]
            A[k] = eye + Zk.T @ Zk
            self.b_perf[k] = correct[models == k] @ Zk
            self.b_cost[k] = cost[models == k] @ Zk
        self.dense_inverse = np.linalg.inv(A)
        self.dense = np.ones(n_models, dtype=bool)
        self.theta_perf = np.einsum("kij,kj->ki", self.dense_inverse, self.b_perf)
        self.theta_cost = np.einsum("kij,kj->ki", self.dense_inverse, self.b_cost)

    def means(self, Z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Point estimates ``(perf, cost)`` for augmented rows ``Z`` ``[n, p]``: ``[n, K]`` each."""
        return Z @ self.theta_perf.T, Z @ self.theta_cost.T

    def widths(self, z: np.ndarray) -> np.ndarray:
        """``sqrt(z^T A_k^-1 z)`` for every model ``k``: ``[K]`` for one query ``z`` ``[p]``, ``[n, K]``
        for rows ``[n, p]`` (the confidence width of each estimate)."""
        z = np.asarray(z, dtype=np.float64)
        n_models = self.dense.size
        if z.ndim == 2:
            squared = [(self._apply_inverse(k, z.T).T * z).sum(axis=1) for k in range(n_models)]
            return np.sqrt(np.maximum(np.stack(squared, axis=1), 0.0))
        if self.dense.all():
            u = np.matmul(self.dense_inverse, z)  # one batched product over the models
            self._cached = (z.copy(), z, list(u))
            return np.sqrt(np.maximum(u @ z, 0.0))
        # Low rank: z^T A^-1 z = z^T B z - |G z|^2, with B z shared (u is made for the update).
        shared = self._shared_apply(z)
        base = z @ shared
        squared, vectors = np.empty(n_models), []
        for k in range(n_models):
            if self.dense[k]:
                vectors.append(self.dense_inverse[k] @ z)
                squared[k] = vectors[-1] @ z
            else:
                vectors.append(self.factors[k, : self.n_factors[k]] @ z)
                squared[k] = base - vectors[-1] @ vectors[-1]
        self._cached = (z.copy(), shared, vectors)
        return np.sqrt(np.maximum(squared, 0.0))

    def _shared_apply(self, z: np.ndarray) -> np.ndarray:
        """``B @ z`` for ``z`` ``[p]`` or ``[p, n]``."""
        return z / self.ridge if self.shared_is_identity else self.shared_inverse @ z

    def _apply_inverse(self, model: int, z: np.ndarray) -> np.ndarray:
        """``A_model^-1 @ z`` for ``z`` ``[p]`` or ``[p, n]``."""
        if self.dense[model]:
            return self.dense_inverse[model] @ z
        return self._low_rank_apply(
            model, self._shared_apply(z), self.factors[model, : self.n_factors[model]] @ z
        )

    def _low_rank_apply(self, model: int, shared: np.ndarray, projected: np.ndarray) -> np.ndarray:
        """``A^-1 z = B z - G^T (G z)`` of a low-rank model, given ``shared = B z`` and ``projected = G z``."""
        return shared - self.factors[model, : self.n_factors[model]].T @ projected

    def _low_rank_inverse(self, model: int) -> np.ndarray:
        factors = self.factors[model, : self.n_factors[model]]
        p = self.b_perf.shape[1]
        shared = np.eye(p) / self.ridge if self.shared_is_identity else self.shared_inverse
        return shared - factors.T @ factors

    def state_dict(self) -> dict[str, np.ndarray]:
        """The statistics arrays by attribute name (references, not copies): the shared base of the
        low-rank form, the dense inverses and which models use them, the low-rank factors and their
        counts, ``b`` and ``theta``."""
        return {name: getattr(self, name) for name in self._ARRAYS}

    def load_state_dict(self, state: Mapping[str, np.ndarray]) -> None:
        """Replace the statistics by ``state`` (as :meth:`state_dict` returns it); shapes must match.

        A state saved before the low-rank form (``"A_inv"`` instead of ``"dense_inverse"``) loads
        with every model in dense form.
        """
        state = dict(state)
        if "A_inv" in state and "dense_inverse" not in state:
            n_models = np.shape(state["A_inv"])[0]
            state.update(
                dense_inverse=state.pop("A_inv"),
                dense=np.ones(n_models, dtype=bool),
                factors=np.zeros_like(self.factors),
                n_factors=np.zeros(n_models, dtype=np.int64),
                shared_inverse=np.zeros_like(self.shared_inverse),
                shared_is_identity=np.array(True),
            )
        for name in self._ARRAYS:
            value = np.asarray(state[name])
            expected = getattr(self, name)
            if value.shape != expected.shape:
                raise ValueError(
                    f"RidgeStatistics.{name}: expected shape {expected.shape}, got {value.shape}"
                )
            setattr(self, name, np.array(value, dtype=expected.dtype))  # a copy: updates write in place
        if (self.n_factors < 0).any() or (self.n_factors > self.factors.shape[1]).any():
            raise ValueError(f"RidgeStatistics.n_factors: counts must be in [0, {self.factors.shape[1]}]")
        self._cached = None
