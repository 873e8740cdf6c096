"""fit_router("auto"): cross-validated choice of family and settings, on the training split only."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from test_supervised import signal_table

from agents.persistence import load_scorer, read_manifest, save_scorer
from agents.routers.selection import AutoRouter, _affine, _cross_calibrated
from agents.supervised import fit_router
from mmr_gym.env import MMRRoutingEnv

CHEAP = [("linear", {}), ("knn", {"k": 10}), ("kmeans", {"n_clusters": 1})]


@pytest.fixture(scope="module")
def env() -> MMRRoutingEnv:
    return MMRRoutingEnv(
        signal_table(n=600, k=4, seed=1), split="test", train_fraction=0.5, episode_length=50
    )


@pytest.fixture(scope="module")
def auto(env) -> AutoRouter:
    return fit_router("auto", env, candidates=CHEAP, seed=0)


def test_every_candidate_is_scored_and_the_best_is_chosen(auto):
    selection = auto.selection_
    records = selection["candidates"]
    assert [(r["family"], r["params"], r["calibrated"]) for r in records] == [
        (family, params, calibrated) for family, params in CHEAP for calibrated in (False, True)
    ]
    assert selection["folds"] == 5 and selection["training_queries"] == 300
    assert all(len(r["nAUC_folds"]) == 5 and r["seconds"] >= 0 for r in records)
    # One k-means cluster predicts the training means for every query: a single point, no area
    # (nAUC NaN, saved as "nan"), never chosen.
    assert [r["nAUC"] for r in records[4:]] == ["nan", "nan"]
    scores = np.array([r["nAUC"] for r in records[:4]])
    assert np.isfinite(scores).all()
    # The one-standard-error rule: the first candidate within one error of the best score.
    best = int(np.argmax(scores))
    folds = np.array(records[best]["nAUC_folds"])
    error = folds.std(ddof=1) / np.sqrt(5)
    assert selection["best"] == best and selection["best_standard_error"] == pytest.approx(error)
    assert selection["chosen"] == int(np.flatnonzero(scores >= scores[best] - error)[0])


def test_the_choice_is_refitted_on_the_whole_training_split(env, auto):
    X = env.ctx.query_obs[env.ctx.split_indices]
    winner = auto.selection_
    again = fit_router(winner["chosen_family"], env, **winner["chosen_params"], seed=0)
    perf, cost = again.predict(X)
    if winner["chosen_calibrated"]:
        perf = auto.calibration_[0] + auto.calibration_[1] * perf
    for a, b in zip(auto.predict(X), (perf, cost), strict=True):
        np.testing.assert_array_equal(a, b)


def test_only_the_training_split_is_used(env, auto):
    # Flip every test outcome: the choice and the fitted router must not change.
    table = env.ctx.table
    test_rows = env.ctx.split_indices
    correct = table.correct.copy()
    correct[test_rows] = 1.0 - correct[test_rows]
    flipped = dataclasses.replace(table, correct=correct)
    other = MMRRoutingEnv(flipped, split="test", train_fraction=0.5, episode_length=50)
    assert np.array_equal(other.ctx.train_indices, env.ctx.train_indices)
    refit = fit_router("auto", other, candidates=CHEAP, seed=0)

    def scores(router):  # every score, not the seconds taken
        return [{k: v for k, v in r.items() if k != "seconds"} for r in router.selection_["candidates"]]

    assert scores(refit) == scores(auto)
    X = env.ctx.query_obs
    for a, b in zip(refit.predict(X), auto.predict(X), strict=True):
        np.testing.assert_array_equal(a, b)


def test_the_one_standard_error_rule_prefers_earlier_candidates():
    from agents.routers.selection import _one_standard_error_choice

    def record(score, folds):
        return {"nAUC": score, "nAUC_folds": folds}

    noisy = [0.60, 0.70, 0.80, 0.90, 1.00]  # std 0.158, error 0.0707
    records = [
        record(0.70, [0.7] * 5),
        record(0.74, [0.74] * 5),
        record(0.80, noisy),
        record(float("nan"), []),
    ]
    assert _one_standard_error_choice(records) == (1, 2, pytest.approx(0.0707, abs=1e-4))
    steady = [0.79, 0.80, 0.80, 0.80, 0.81]
    records[2] = record(0.80, steady)  # a sure best: chosen
    assert _one_standard_error_choice(records)[0] == 2


def test_calibrated_forms_are_scored_and_applied(env, auto):
    records = auto.selection_["candidates"]
    # Calibration moves the linear and KNN predictions, hence their held-out scores.
    assert records[0]["nAUC"] != records[1]["nAUC"] and records[2]["nAUC"] != records[3]["nAUC"]
    always = fit_router("auto", env, candidates=CHEAP[:1], calibrate="always")
    assert [r["calibrated"] for r in always.selection_["candidates"]] == [True]
    X = env.ctx.query_obs[:20]
    offset, slope = always.calibration_
    np.testing.assert_array_equal(always.predict(X)[0], offset + slope * always.chosen_.predict(X)[0])
    assert (slope >= 0).all() and not np.allclose(slope, 1.0)
    assert always.chosen_name == "Linear+cal"


def test_calibration_fits_an_affine_map_per_model_with_a_non_negative_slope():
    rng = np.random.default_rng(0)
    perf = rng.random((4000, 3))
    truth = np.stack([0.1 + 0.5 * perf[:, 0], 0.3 - 0.4 * perf[:, 1], np.full(4000, 0.2)], axis=1)
    correct = (rng.random((4000, 3)) < truth).astype(float)
    offset, slope = _affine(perf, correct)
    np.testing.assert_allclose(slope[0], 0.5, atol=0.06)
    np.testing.assert_allclose(offset[0], 0.1, atol=0.04)
    assert slope[1] == 0.0 and offset[1] == pytest.approx(correct[:, 1].mean())  # anti-informative
    assert slope[2] == pytest.approx(0.0, abs=0.05)  # uninformative: back to the model's mean
    # Cross-fitted: each fold is calibrated with the map of the other folds.
    folds = np.arange(4000) % 4
    cross = _cross_calibrated(perf, correct, folds)
    off0, slope0 = _affine(perf[folds != 0], correct[folds != 0])
    np.testing.assert_allclose(cross[folds == 0], off0 + slope0 * perf[folds == 0])


def test_a_saved_auto_router_keeps_its_choice_and_scores(env, auto, tmp_path):
    loaded = load_scorer(save_scorer(auto, tmp_path / "auto"))
    X = env.ctx.query_obs
    for a, b in zip(auto.predict(X), loaded.predict(X), strict=True):
        np.testing.assert_array_equal(a, b)
    saved = read_manifest(tmp_path / "auto")["state"]["selection"]
    assert [r["nAUC"] for r in saved["candidates"]] == [r["nAUC"] for r in auto.selection_["candidates"]]
    assert loaded.chosen_name == auto.chosen_name


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="families of"):
        AutoRouter(candidates=[("forest", {})])
    with pytest.raises(ValueError, match="folds must be >= 2"):
        AutoRouter(folds=1)
    with pytest.raises(ValueError, match="unknown calibrate"):
        AutoRouter(calibrate="sometimes")
