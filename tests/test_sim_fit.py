"""fit_simulator: recovery on simulator-made tables, determinism, the fidelity report, and MATH-V."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest

from mmr_gym import sim
from mmr_gym.sim import FittedSimulator, fit_report, fit_simulator, tetrachoric
from mmr_gym.table import RoutingTable

MATH_V_ROOT = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "math-v"


@pytest.fixture(scope="module")
def source() -> RoutingTable:
    """A 4,000-query table of the preset's item-response simulator (not the copula being fitted)."""
    return sim.simulate(sim.with_queries(sim.default_config(), 4000), seed=0)


@pytest.fixture(scope="module")
def fitted(source: RoutingTable) -> FittedSimulator:
    return fit_simulator(source)


@pytest.fixture(scope="module")
def sample(fitted: FittedSimulator) -> RoutingTable:
    # Ten times the source: the sample's own noise is small next to the tolerances below.
    return fitted.sample(40_000, seed=1)


# ---------------------------------------------------------------------------------------------- recovery
def test_sample_recovers_the_source_statistics(source: RoutingTable, sample: RoutingTable) -> None:
    report = fit_report(source, sample).set_index(["statistic", "model"])
    # Accuracies and costs are matched in expectation: what is left is sampling noise of the
    # source (about 0.007 for one model on 4,000 queries) and of the sample.
    accuracy = report.loc["accuracy"]
    assert (accuracy["difference"].abs() < 0.015).all(), accuracy
    mean_cost = report.loc["mean cost"]
    assert ((mean_cost["difference"] / mean_cost["real"]).abs() < 0.05).all(), mean_cost
    assert (report.loc["log-cost sd"]["difference"].abs() < 0.03).all()
    # Dependence: pairwise correlations, and the oracle that depends on all models at once.
    assert abs(report.loc[("oracle accuracy", ""), "difference"]) < 0.02
    assert abs(report.loc[("best single accuracy", ""), "difference"]) < 0.015
    assert report.loc[("pairwise correctness corr (RMS diff)", ""), "difference"] < 0.04
    assert report.loc[("pairwise cost rank corr (RMS diff)", ""), "difference"] < 0.04
    assert abs(report.loc[("corr(correct, cost rank) (mean)", ""), "difference"]) < 0.03
    shares = report.loc["dataset share"]
    assert (shares["difference"].abs() < 1e-3).all()


def test_per_dataset_oracle_is_recovered(source: RoutingTable, sample: RoutingTable) -> None:
    for name in source.dataset_names:
        real = (source.correct[source.datasets == name] > 0.5).any(axis=1).mean()
        simulated = (sample.correct[sample.datasets == name] > 0.5).any(axis=1).mean()
        # A dataset has 200-1,200 source queries here: 0.035 is about 3 standard errors.
        assert simulated == pytest.approx(real, abs=0.035), name


def test_parameters_are_recovered_from_the_models_own_samples(fitted: FittedSimulator) -> None:
    # Round trip: a table drawn from a fitted model, refitted, gives back that model's parameters.
    one = FittedSimulator(
        models=fitted.models,
        datasets=(fitted.datasets[-1],),  # MathVision: the largest, with an unsolvable share
        cost_unit=fitted.cost_unit,
        source=fitted.source,
    )
    truth = one.datasets[0]
    refit = fit_simulator(one.sample(60_000, seed=2)).datasets[0]
    k = truth.accuracy.size
    assert np.abs(refit.accuracy - truth.accuracy).max() < 0.01
    assert refit.unsolvable_share == pytest.approx(truth.unsolvable_share, abs=0.02)
    assert np.abs(refit.log_cost_mu - truth.log_cost_mu).max() < 0.02
    assert np.abs(refit.log_cost_sigma - truth.log_cost_sigma).max() < 0.02
    implied_truth, implied_refit = truth.implied_correlation(), refit.implied_correlation()
    assert np.abs(implied_refit[:k, :k] - implied_truth[:k, :k]).max() < 0.08
    assert np.abs(implied_refit[k:, k:] - implied_truth[k:, k:]).max() < 0.05


def test_tetrachoric_recovers_a_latent_correlation() -> None:
    rng = np.random.default_rng(0)
    rho = 0.6
    z = rng.multivariate_normal([0.0, 0.0], [[1.0, rho], [rho, 1.0]], size=200_000)
    binary = np.c_[z[:, 0] > 0.8, z[:, 1] > -0.3]
    estimate = tetrachoric(binary)
    assert estimate[0, 1] == pytest.approx(rho, abs=0.01)
    assert np.allclose(np.diag(estimate), 1.0)


# ---------------------------------------------------------------------------------------------- behaviour
def test_fit_and_sample_are_deterministic(source: RoutingTable, fitted: FittedSimulator) -> None:
    again = fit_simulator(source)
    for a, b in zip(fitted.datasets, again.datasets, strict=True):
        assert a.rank == b.rank and np.array_equal(a.loadings, b.loadings)
        assert a.unsolvable_share == b.unsolvable_share
    assert fitted.sample(500, seed=3).fingerprint() == again.sample(500, seed=3).fingerprint()
    assert fitted.sample(500, seed=3).fingerprint() != fitted.sample(500, seed=4).fingerprint()


def test_sample_is_a_valid_simulated_table(source: RoutingTable, fitted: FittedSimulator) -> None:
    table = fitted.sample(3 * source.n_queries, seed=5)  # more queries than the source has
    assert table.n_queries == 3 * source.n_queries
    assert table.model_names == source.model_names
    assert set(np.unique(table.correct).tolist()) <= {0.0, 1.0}
    assert (table.cost >= 0).all()
    assert table.meta["simulated"] is True and table.meta["cost_source"] == "simulated"
    assert table.meta["cost_unit"] == source.cost_unit
    assert table.meta["fitted_to"]["fingerprint"] == source.fingerprint()
    assert table.features["latent"].shape == (table.n_queries, 16)
    assert table.query_ids[0] == f"{table.datasets[0]}_sim0"


def test_sampled_features_predict_outcomes(fitted: FittedSimulator) -> None:
    table = fitted.sample(6000, seed=6)
    x = np.c_[table.features["latent"].astype(np.float64), np.ones(table.n_queries)]
    train, test = np.arange(1500), np.arange(1500, 6000)
    w = np.linalg.lstsq(x[train], table.correct[train], rcond=None)[0]
    residual = ((table.correct[test] - x[test] @ w) ** 2).mean()
    total = ((table.correct[test] - table.correct[train].mean(axis=0)) ** 2).mean()
    assert 1.0 - residual / total > 0.1  # the latent factors are visible, as embeddings would be


def test_dataset_weights_shift_the_mix(fitted: FittedSimulator) -> None:
    table = fitted.sample(10_001, seed=7, dataset_weights={"MathVision": 3.0, "OCRBench": 1.0})
    names, counts = np.unique(table.datasets, return_counts=True)
    assert dict(zip(names.tolist(), counts.tolist(), strict=True)) == {"MathVision": 7501, "OCRBench": 2500}
    with pytest.raises(ValueError, match="unknown dataset"):
        fitted.sample(10, seed=0, dataset_weights={"nope": 1.0})
    with pytest.raises(ValueError, match="n must be >= 1"):
        fitted.sample(0, seed=0)


def test_fit_report_columns(source: RoutingTable, sample: RoutingTable) -> None:
    report = fit_report(source, sample)
    assert list(report.columns) == ["statistic", "model", "real", "simulated", "difference", "unit"]
    per_model = report[report["model"].isin(source.model_names)]
    assert set(per_model["statistic"]) == {"accuracy", "mean cost", "log-cost sd"}
    assert len(per_model) == 3 * source.n_models
    assert {"oracle accuracy", "pairwise correctness corr (RMS diff)", "dataset share"} <= set(
        report["statistic"]
    )
    with pytest.raises(ValueError, match="same models"):
        fit_report(source, source.select_models(list(source.model_names[:2])))


def test_former_module_still_imports_and_sampled_tables_keep_their_generator_name(
    sample: RoutingTable,
) -> None:
    from mmr_gym import sim_fit  # the fitted simulator's module before mmr_gym.sim became a package

    assert sim_fit.fit_simulator is fit_simulator and sim_fit.FittedSimulator is FittedSimulator
    assert sim_fit.fit_report is fit_report and sim_fit.tetrachoric is tetrachoric
    assert sample.meta["generator"] == "mmr_gym.sim_fit" and sample.source.startswith("mmr_gym.sim_fit:")


def test_graded_scores_are_binarised_with_a_warning(source: RoutingTable) -> None:
    part = source.subset(np.arange(300))
    graded = RoutingTable(
        correct=np.clip(part.correct * 0.9 + 0.05, 0, 1),
        cost=part.cost,
        query_ids=part.query_ids,
        datasets=part.datasets,
        model_names=part.model_names,
        meta=part.meta,
    )
    with pytest.warns(UserWarning, match="binarised"):
        fit_simulator(graded, by_dataset=False, rank=2)


# ---------------------------------------------------------------------------------------------- MATH-V
def _math_v_table() -> RoutingTable:
    if not MATH_V_ROOT.is_dir():
        pytest.skip(f"MATH-V data not found at {MATH_V_ROOT.resolve()}")
    if importlib.util.find_spec("mmr_gym.datasets.math_v") is None:
        pytest.skip("mmr_gym.datasets.math_v (load_math_v) is not available yet")
    from mmr_gym.datasets.math_v import load_math_v

    return load_math_v(MATH_V_ROOT, features=None, progress=False, cache=False)


def test_math_v_fit_fidelity() -> None:
    real = _math_v_table()
    sample = fit_simulator(real).sample(30_000, seed=0)
    report = fit_report(real, sample).set_index(["statistic", "model"])
    assert (report.loc["accuracy"]["difference"].abs() < 0.01).all()
    mean_cost = report.loc["mean cost"]
    assert ((mean_cost["difference"] / mean_cost["real"]).abs() < 0.03).all()
    # The unsolvable share is solved to match the oracle (59.3% on the 13 multimodal models).
    assert report.loc[("oracle accuracy", ""), "real"] == pytest.approx(0.593, abs=0.005)
    assert abs(report.loc[("oracle accuracy", ""), "difference"]) < 0.01
    assert report.loc[("pairwise correctness corr (RMS diff)", ""), "difference"] < 0.03
    assert report.loc[("pairwise cost rank corr (RMS diff)", ""), "difference"] < 0.05
    assert math.isfinite(report.loc[("corr(correct, cost rank) (mean)", ""), "simulated"])
