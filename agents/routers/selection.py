"""``fit_router("auto", env)``: the router family and its few hyperparameters, chosen by cross-validation.

:class:`AutoRouter` splits the training queries into ``folds`` (seeded), fits every candidate of a
small grid (:data:`DEFAULT_CANDIDATES`: each family of :data:`FAMILIES` with a few settings) on all
folds but one and predicts the held-out one, so that every training query gets an out-of-fold
prediction from every candidate. A candidate's score is the paper's figure of merit on those
predictions: the nAUC of the per-query threshold protocol (:func:`mmr_gym.metrics.threshold_curve`
and :func:`~mmr_gym.metrics.curve_summary`, best single model measured on the training queries),
computed once over all training queries pooled (per-fold nAUCs are noisier on small tables; their
spread is recorded as the noise of the score). Only the training split is used.

Calibration of predicted performance: ridge and neighbour averages are fitted to 0/1 outcomes, so
their per-query predictions spread more than the truth when the features say little (on MATH-V a
router that trusts them picks worse models than the best single one at ample budgets). With
``calibrate="cv"`` every candidate is also scored with its performance predictions recalibrated per
model, ``perf_k -> a_k + b_k * perf_k`` (``b_k >= 0``, least squares of the true outcomes on the
out-of-fold predictions; cross-fitted over the same folds when scoring), which shrinks uninformative
predictions toward the model's mean accuracy; the calibrated form competes as a candidate of its own.

The choice follows the one-standard-error rule (Hastie, Tibshirani and Friedman, *Elements of
Statistical Learning*, 7.10): among the candidates whose score is within one standard error of the
best score (the sample std of the best candidate's per-fold nAUCs over sqrt(folds)), the first in
the candidate order, uncalibrated before calibrated. The order puts the candidates that did best on
average first (LinearMF at its defaults leads), so on small, noisy tables the choice falls back on
them instead of on the luckiest fold split. On the bundled table, each of its seven datasets alone
and MATH-V (three splits each, test nAUC), this rule was 0.0012 above the best family at its
defaults chosen per table in hindsight on average (worst table -0.004), where taking the highest
score was 0.003 below (worst -0.028). The chosen candidate is refitted on all training queries (with
its calibration, fitted on its out-of-fold predictions). Every candidate's scores, the choice and the time taken are
in :attr:`AutoRouter.selection_`, which :mod:`agents.persistence` saves (``scorer.json``, under
``state.selection``).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from sklearn.model_selection import KFold

from agents.routers.base import Router, channel_dims
from agents.routers.linear import LinearMFRouter, LinearRouter
from agents.routers.neighbours import KMeansRouter, KNNRouter
from agents.routers.neural import CMRRouter, MLPMFRouter, MLPRouter
from mmr_gym.context import FeatureScaling, RoutingContext
from mmr_gym.evaluate import json_safe
from mmr_gym.metrics import best_single, curve_summary, threshold_curve

FAMILIES: dict[str, type[Router]] = {
    "linear": LinearRouter,
    "linear-mf": LinearMFRouter,
    "mlp": MLPRouter,
    "mlp-mf": MLPMFRouter,
    "knn": KNNRouter,
    "kmeans": KMeansRouter,
    "cmr": CMRRouter,
}
"""The paper's router families by registry name (what :class:`AutoRouter` chooses among)."""

DEFAULT_CANDIDATES: tuple[tuple[str, dict[str, Any]], ...] = (
    ("linear-mf", {}),
    ("linear-mf", {"latent": 2}),
    ("linear-mf", {"latent": 5}),
    ("linear-mf", {"latent": None}),
    ("linear-mf", {"alpha": 10.0}),
    ("linear", {}),
    ("linear", {"alpha": 100.0}),
    ("knn", {"k": 25}),
    ("knn", {}),
    ("knn", {"k": 100}),
    ("kmeans", {}),
    ("mlp-mf", {}),
)
"""``(family, constructor arguments)``: the cheap families with the few settings that moved held-out
nAUC on the bundled table, its seven datasets alone and MATH-V (LinearMF's latent size and ridge
penalty, Linear's penalty, KNN's k), and MLP-MF at its defaults. MLP and CMR are left out: on those
27 tables x splits their mean test nAUC (0.648 and 0.629) was below LinearMF's (0.666) and MLP-MF's
(0.649), and their cross-validation costs 10-30 s per table on two cores; pass ``candidates`` to
include them."""

CALIBRATE = ("cv", "always", "never")


class AutoRouter(Router):
    """The candidate router with the best cross-validated nAUC on the training split (see the module).

    Args:
        candidates: ``(family, constructor arguments)`` pairs (families of :data:`FAMILIES`); None:
            :data:`DEFAULT_CANDIDATES`.
        folds: cross-validation folds over the training queries (>= 2).
        calibrate: ``"cv"`` (each candidate with and without performance calibration, whichever
            scores higher), ``"always"`` or ``"never"``.
        channel_dims: the channel layout given to CMR candidates (from the environment).
        seed: seeds the folds and every candidate.

    Attributes (after ``fit``):
        chosen_: the fitted router of the chosen candidate (fitted on all training queries).
        calibration_: float64 ``[2, K]``, rows ``a`` and ``b`` of ``perf -> a + b * perf``; None
            when the chosen candidate is not calibrated.
        selection_: a JSON-able dict: the metric, the rule, the folds, and per candidate its family,
            arguments, calibration, pooled nAUC / Ps / QNC, the per-fold nAUCs (their mean and
            spread), and seconds taken; ``best`` and ``chosen`` index ``candidates`` (the highest
            score, and the one-standard-error choice).
    """

    name = "Auto"

    def __init__(
        self,
        candidates: Sequence[tuple[str, Mapping[str, Any]]] | None = None,
        folds: int = 5,
        calibrate: str = "cv",
        channel_dims: Sequence[int] | None = None,
        seed: int = 0,
    ) -> None:
        if candidates is not None:
            candidates = tuple((str(family), dict(params)) for family, params in candidates)
            unknown = sorted({family for family, _ in candidates} - set(FAMILIES))
            if unknown or not candidates:
                raise ValueError(f"candidates must be families of {sorted(FAMILIES)}; got unknown {unknown}")
        if int(folds) < 2:
            raise ValueError(f"folds must be >= 2, got {folds!r}")
        if calibrate not in CALIBRATE:
            raise ValueError(f"unknown calibrate {calibrate!r}; choose from {list(CALIBRATE)}")
        self.candidates = candidates
        self.folds = int(folds)
        self.calibrate = calibrate
        self.channel_dims = None if channel_dims is None else tuple(int(d) for d in channel_dims)
        self.seed = seed

    @classmethod
    def env_kwargs(cls, ctx: RoutingContext) -> dict[str, Any]:
        return {"channel_dims": channel_dims(ctx)}

    # ------------------------------------------------------------------ fitting
    def _fit_observations(self, X, correct, cost, scaling: FeatureScaling | None) -> None:
        started = time.perf_counter()
        self.n_features_, self.n_models_ = X.shape[1], correct.shape[1]
        candidates = self.candidates if self.candidates is not None else DEFAULT_CANDIDATES
        n = X.shape[0]
        n_folds = min(self.folds, n)
        if n_folds < 2:
            raise ValueError(f"AutoRouter needs at least 2 training queries for cross-validation, got {n}")
        fold_of = np.empty(n, dtype=np.int64)
        for f, (_, held) in enumerate(KFold(n_folds, shuffle=True, random_state=self.seed).split(X)):
            fold_of[held] = f
        _, best_accuracy, best_cost = best_single(correct, cost)

        records, out_of_fold = [], []
        for family, params in candidates:
            t0 = time.perf_counter()
            perf, pred_cost = np.empty_like(correct), np.empty_like(cost)
            for f in range(n_folds):
                fit_rows, held = fold_of != f, fold_of == f
                router = self._candidate(family, params).fit(
                    X[fit_rows], correct[fit_rows], cost[fit_rows], scaling=scaling
                )
                perf[held], pred_cost[held] = router.predict(X[held])
            out_of_fold.append((perf, pred_cost))
            seconds = time.perf_counter() - t0
            forms = {"never": (False,), "always": (True,), "cv": (False, True)}[self.calibrate]
            for calibrated in forms:
                scored = _cross_calibrated(perf, correct, fold_of) if calibrated else perf
                scores = _scores(scored, pred_cost, correct, cost, fold_of, best_accuracy, best_cost)
                records.append(
                    {
                        "family": family,
                        "params": params,
                        "calibrated": calibrated,
                        **scores,
                        "seconds": seconds,
                    }
                )
        chosen, best, standard_error = _one_standard_error_choice(records)
        winner = records[chosen]
        candidate_index = next(
            i for i, (f, p) in enumerate(candidates) if (f, p) == (winner["family"], winner["params"])
        )
        self.chosen_ = self._candidate(winner["family"], winner["params"]).fit(
            X, correct, cost, scaling=scaling
        )
        self.calibration_ = None
        if winner["calibrated"]:
            self.calibration_ = np.stack(_affine(out_of_fold[candidate_index][0], correct))
        self.n_inputs_ = self.chosen_.n_inputs_
        self.selection_ = json_safe(
            {
                "metric": "nAUC of the per-query threshold protocol on pooled out-of-fold predictions "
                "of the training queries",
                "folds": n_folds,
                "training_queries": n,
                "best_single_on_training": {"accuracy": best_accuracy, "mean_cost": best_cost},
                "rule": "the first candidate (in order, uncalibrated before calibrated) whose nAUC is "
                "within one standard error of the best one's (its per-fold nAUCs' std / sqrt(folds))",
                "candidates": records,
                "best": best,
                "best_standard_error": standard_error,
                "chosen": chosen,
                "chosen_family": winner["family"],
                "chosen_params": winner["params"],
                "chosen_calibrated": winner["calibrated"],
                "seconds": time.perf_counter() - started,
            }
        )

    def _candidate(self, family: str, params: Mapping[str, Any]) -> Router:
        cls = FAMILIES[family]
        defaults = {"channel_dims": self.channel_dims} if cls is CMRRouter else {}
        return cls(**{**defaults, "seed": self.seed, **params})

    # ------------------------------------------------------------------ predicting
    def predict(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The chosen router's ``(perf, cost)``, performance calibrated if the choice says so."""
        self._check_fitted()
        perf, cost = self.chosen_.predict(X)
        if self.calibration_ is not None:
            perf = self.calibration_[0] + self.calibration_[1] * perf
        return perf, cost

    @property
    def chosen_name(self) -> str:
        """The chosen family's display name, e.g. ``"LinearMF"`` (``"+cal"`` when calibrated)."""
        self._check_fitted()
        return self.chosen_.name + ("+cal" if self.calibration_ is not None else "")

    # ------------------------------------------------------------------ saving
    @classmethod
    def saved_shapes(
        cls, params: Mapping[str, Any], state: Mapping[str, Any], *, max_layers: int
    ) -> dict[str, tuple[int, ...]]:
        """The chosen router's (:meth:`Router.saved_shapes`), under ``"chosen."``."""
        selection = state.get("selection")
        if not isinstance(selection, Mapping) or selection.get("chosen_family") not in FAMILIES:
            raise ValueError("state.selection must name the chosen family (one of the router families)")
        chosen = {key[len("chosen.") :]: value for key, value in state.items() if key.startswith("chosen.")}
        family = FAMILIES[selection["chosen_family"]]
        shapes = family.saved_shapes(selection.get("chosen_params", {}), chosen, max_layers=max_layers)
        return {f"chosen.{key}": shape for key, shape in shapes.items()}

    def state_dict(self) -> dict[str, Any]:
        """``n_features_``, ``n_models_``, ``selection`` (JSON), ``calibration`` (an array, or absent)
        and the chosen router's state under ``"chosen.<key>"``."""
        self._check_fitted()
        state: dict[str, Any] = {
            "n_features_": self.n_features_,
            "n_models_": self.n_models_,
            "selection": self.selection_,
            **{f"chosen.{key}": value for key, value in self.chosen_.state_dict().items()},
        }
        if self.calibration_ is not None:
            state["calibration"] = self.calibration_
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.n_features_, self.n_models_ = int(state["n_features_"]), int(state["n_models_"])
        selection = dict(state["selection"])
        family, params = selection["chosen_family"], selection["chosen_params"]
        if family not in FAMILIES:
            raise ValueError(f"selection: unknown family {family!r}; expected one of {sorted(FAMILIES)}")
        chosen = self._candidate(family, params)
        chosen.load_state_dict({k[len("chosen.") :]: v for k, v in state.items() if k.startswith("chosen.")})
        calibration = state.get("calibration")
        if selection["chosen_calibrated"] != (calibration is not None):
            raise ValueError(
                "selection says the choice is calibrated, but the calibration is missing (or the reverse)"
            )
        if calibration is not None and np.shape(calibration) != (2, self.n_models_):
            raise ValueError(
                f"calibration: expected shape (2, {self.n_models_}), got {np.shape(calibration)}"
            )
        self.chosen_, self.selection_ = chosen, selection
        self.calibration_ = None if calibration is None else np.asarray(calibration, dtype=np.float64)
        self.n_inputs_ = chosen.n_inputs_


# ---------------------------------------------------------------------------------------- scoring
def _one_standard_error_choice(records: Sequence[Mapping[str, Any]]) -> tuple[int, int, float]:
    """``(chosen, best, standard error)``: the one-standard-error rule over the scored candidates.

    ``best`` has the highest pooled nAUC; its standard error is the sample std of its per-fold nAUCs
    over sqrt(folds). ``chosen`` is the first record whose nAUC is at least best's minus that error.
    """
    scores = np.array([r["nAUC"] for r in records], dtype=np.float64)
    scores = np.where(np.isfinite(scores), scores, -np.inf)
    best = int(np.argmax(scores))
    folds = np.asarray(records[best]["nAUC_folds"], dtype=np.float64)
    folds = folds[np.isfinite(folds)]
    error = float(folds.std(ddof=1) / np.sqrt(folds.size)) if folds.size >= 2 else 0.0
    chosen = int(np.flatnonzero(scores >= scores[best] - error)[0])
    return chosen, best, error


def _scores(
    perf: np.ndarray,
    pred_cost: np.ndarray,
    correct: np.ndarray,
    cost: np.ndarray,
    fold_of: np.ndarray,
    best_accuracy: float,
    best_cost: float,
) -> dict[str, float]:
    """Pooled nAUC / Ps / QNC of the threshold protocol, and the mean and spread of per-fold nAUCs."""
    curve = threshold_curve(perf, pred_cost, correct, cost)
    pooled = curve_summary(curve[:, 0], curve[:, 1], best_accuracy, best_cost)
    per_fold = []
    for f in np.unique(fold_of):
        rows = fold_of == f
        _, acc, mean_cost = best_single(correct[rows], cost[rows])
        c = threshold_curve(perf[rows], pred_cost[rows], correct[rows], cost[rows])
        per_fold.append(curve_summary(c[:, 0], c[:, 1], acc, mean_cost)["nAUC"])
    per_fold = np.asarray(per_fold, dtype=np.float64)
    finite = per_fold[np.isfinite(per_fold)]
    return {
        **pooled,
        "nAUC_folds": per_fold.tolist(),
        "nAUC_fold_mean": float(finite.mean()) if finite.size else float("nan"),
        "nAUC_fold_std": float(finite.std()) if finite.size else float("nan"),
    }


def _affine(perf: np.ndarray, correct: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per model, ``(a, b)`` of the least-squares fit ``correct ~ a + b * perf`` with ``b >= 0``."""
    mean_p, mean_y = perf.mean(axis=0), correct.mean(axis=0)
    centred = perf - mean_p
    var = (centred**2).mean(axis=0)
    cov = (centred * (correct - mean_y)).mean(axis=0)
    slope = np.where(var > 0, np.maximum(cov, 0.0) / np.where(var > 0, var, 1.0), 0.0)
    return mean_y - slope * mean_p, slope


def _cross_calibrated(perf: np.ndarray, correct: np.ndarray, fold_of: np.ndarray) -> np.ndarray:
    """``perf`` calibrated fold by fold, each fold with the map fitted on the other folds."""
    out = np.empty_like(perf)
    for f in np.unique(fold_of):
        rows = fold_of == f
        offset, slope = _affine(perf[~rows], correct[~rows])
        out[rows] = offset + slope * perf[rows]
    return out
