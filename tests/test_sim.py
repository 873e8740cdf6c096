"""The simulator: reproducibility of the bundled table, structure, costs, and the value of fusion."""

from __future__ import annotations

import dataclasses
import hashlib
import math
import re
from pathlib import Path

import numpy as np
import pytest

from mmr_gym import sim
from mmr_gym.sim import calibration
from mmr_gym.table import RoutingTable

ENVS_DATA = Path(__file__).resolve().parents[1] / "envs_data"  # the checkout's bundled tables
BUNDLED = ENVS_DATA / "mmr-sim-default"
PAPER_CSV = Path(__file__).resolve().parents[1] / ".." / "shared" / "reference" / "mmr_bench_table2.csv"
# MMR-Bench Table 2, per dataset: (Random Ps, BestSingle Ps, Oracle Ps); checked against PAPER_CSV.
TABLE2 = {
    "OCRBench": (0.8075, 0.9050, 0.9825),
    "SEEDBench2Plus": (0.7102, 0.7502, 0.8913),
    "MMStar": (0.6942, 0.7716, 0.9650),
    "RealWorldQA": (0.7108, 0.8235, 0.9853),
    "MathVista": (0.6688, 0.8037, 0.9475),
    "MathVerse": (0.4800, 0.7194, 0.8954),
    "MathVision": (0.3927, 0.6932, 0.8741),
}
ISSUE_TOLERANCE = 0.02  # issue 3: every per-dataset figure within 0.02 of Table 2
PAPER_MODELS = {
    "GPT-5",
    "Gemini-2.5-Pro",
    "Gemini-2.5-Flash",
    "Claude-3.7-Sonnet",
    "Qwen2.5-VL-3B",
    "Qwen2.5-VL-7B",
    "Qwen2.5-VL-72B",
    "InternVL3-78B",
}
SCENARIOS = {
    "OCRBench": "OCR",
    "SEEDBench2Plus": "OCR",
    "MMStar": "VQA",
    "RealWorldQA": "VQA",
    "MathVista": "Math",
    "MathVerse": "Math",
    "MathVision": "Math",
}


@pytest.fixture(scope="module")
def table() -> RoutingTable:
    return sim.simulate(sim.default_config(), seed=0)


def readme_fingerprint() -> str:
    text = (ENVS_DATA / "README.md").read_text(encoding="utf-8")
    match = re.search(r"^Content fingerprint: `([0-9a-f]{64})`", text, flags=re.MULTILINE)
    assert match, "envs_data/README.md states no fingerprint in backticks"
    return match.group(1)


# ---------------------------------------------------------------------------------------------- reproducibility
def test_default_config_regenerates_the_bundled_table(table: RoutingTable) -> None:
    bundled = RoutingTable.load(BUNDLED)
    assert table.fingerprint() == bundled.fingerprint() == readme_fingerprint()
    assert bundled.meta["generator"] == "mmr_gym.sim"
    assert bundled.meta["config"] == "mmr-sim-default"
    assert bundled.meta["seed"] == 0
    assert bundled.meta["simulated"] is True
    assert bundled.meta["cost_source"] == "simulated"
    assert bundled.meta["cost_unit"] == sim.COST_UNIT


def test_same_seed_is_bit_identical(table: RoutingTable) -> None:
    again = sim.simulate(sim.default_config(), seed=0)
    assert again.fingerprint() == table.fingerprint()
    assert dict(again.meta) == dict(table.meta)


def test_different_seed_gives_a_different_table(table: RoutingTable) -> None:
    other = sim.simulate(sim.default_config(), seed=1)
    assert other.fingerprint() != table.fingerprint()
    assert not np.array_equal(other.correct, table.correct)


def test_cli_writes_a_loadable_table(
    tmp_path: Path, table: RoutingTable, capsys: pytest.CaptureFixture[str]
) -> None:
    assert sim.main(["--out", str(tmp_path / "t"), "--seed", "0"]) == 0
    assert RoutingTable.load(tmp_path / "t").fingerprint() == table.fingerprint()
    out = capsys.readouterr().out
    assert table.fingerprint() in out and "MathVision" in out


def test_bundled_file_checksums_match_the_readme() -> None:
    text = (ENVS_DATA / "README.md").read_text(encoding="utf-8")
    listed = dict(re.findall(r"^\| `([\w.]+)` \| [\d,]+ \| `([0-9a-f]{64})` \|$", text, flags=re.MULTILINE))
    assert set(listed) == {"outcomes.parquet", "features.npz", "meta.json"}
    for name, digest in listed.items():
        assert hashlib.sha256((BUNDLED / name).read_bytes()).hexdigest() == digest, name


def test_bundled_files_are_small() -> None:
    files = [p for p in ENVS_DATA.rglob("*") if p.is_file()]
    assert {p.name for p in BUNDLED.iterdir()} >= {"outcomes.parquet", "features.npz", "meta.json"}
    for path in files:
        assert path.stat().st_size < 1.5e6, f"{path} is {path.stat().st_size} bytes"


# ---------------------------------------------------------------------------------------------- structure
def test_models_datasets_and_scenarios(table: RoutingTable) -> None:
    config = sim.default_config()
    assert table.n_models == 10 and set(table.model_names) >= PAPER_MODELS
    assert table.dataset_names == tuple(SCENARIOS)
    assert dict(table.meta["scenarios"]) == SCENARIOS
    assert len(set(SCENARIOS.values())) == 3
    assert 10_000 <= table.n_queries <= 12_000
    for spec in config.datasets:
        rows = table.query_ids[table.datasets == spec.name]
        assert len(rows) == spec.size
        assert rows[17] == f"{spec.name}_17"


def test_features_are_two_float32_channels(table: RoutingTable) -> None:
    assert set(table.features) == {"text", "image"}
    for values in table.features.values():
        assert values.dtype == np.float32 and values.shape == (table.n_queries, 16)
        assert np.isfinite(values).all() and values.std() > 0.1


def test_correctness_is_binary(table: RoutingTable) -> None:
    assert set(np.unique(table.correct).tolist()) == {0.0, 1.0}


def test_costs_follow_the_reference_anchors(table: RoutingTable) -> None:
    mean_cost = dict(zip(table.model_names, table.model_mean_cost(), strict=True))
    anchors = {"Qwen2.5-VL-3B": 0.03, "Qwen2.5-VL-7B": 0.07, "InternVL3-78B": 0.70, "GPT-5": 10.0}
    for model, anchor in anchors.items():
        assert mean_cost[model] == pytest.approx(anchor, rel=0.05)
    assert max(mean_cost.values()) / min(mean_cost.values()) > 300
    assert (table.cost > 0).all()


def test_costs_vary_per_query_within_a_model(table: RoutingTable) -> None:
    for j, model in enumerate(table.model_names):
        column = table.cost[:, j]
        assert column.std() / column.mean() > 0.2, model
        assert len(np.unique(column)) > table.n_queries // 10, model


def test_quality_tracks_price_but_cheap_models_win_sometimes(table: RoutingTable) -> None:
    acc, cost = table.model_accuracy(), table.model_mean_cost()
    rank_corr = np.corrcoef(np.argsort(np.argsort(acc)), np.argsort(np.argsort(cost)))[0, 1]
    assert 0.5 < rank_corr < 1.0
    cheapest, dearest = int(np.argmin(cost)), int(np.argmax(cost))
    wins = (table.correct[:, cheapest] == 1) & (table.correct[:, dearest] == 0)
    assert wins.mean() > 0.01
    # On some dataset the best single model is not the dearest one.
    best_per_dataset = {r["best_model"] for r in sim.dataset_summary(table)[:-1]}
    assert best_per_dataset - {table.model_names[dearest]}


def test_calibration_hits_table2_targets(table: RoutingTable) -> None:
    measured = {r["dataset"]: r for r in sim.dataset_summary(table)}
    for cal in table.meta["calibration"]:
        m = measured[cal["dataset"]]
        for stat, got in (("random", m["mean_acc"]), ("best", m["best_acc"]), ("oracle", m["oracle_acc"])):
            target = cal[f"target_{stat}"]
            assert cal[f"expected_{stat}"] == pytest.approx(target, abs=1e-6)
            assert got == pytest.approx(target, abs=0.03), (cal["dataset"], stat)


def test_regenerated_preset_matches_table2_within_the_issue_tolerance(table: RoutingTable) -> None:
    if PAPER_CSV.is_file():
        import pandas as pd

        paper = pd.read_csv(PAPER_CSV).set_index(["dataset", "method"])["Ps"]
        for name, (random, best, oracle) in TABLE2.items():
            assert (paper[name, "Random"], paper[name, "BestSingle"], paper[name, "Oracle"]) == (
                random,
                best,
                oracle,
            )
    measured = {r["dataset"]: r for r in sim.dataset_summary(table)}
    for name, (random, best, oracle) in TABLE2.items():
        m = measured[name]
        assert m["mean_acc"] == pytest.approx(random, abs=ISSUE_TOLERANCE), name
        assert m["best_acc"] == pytest.approx(best, abs=ISSUE_TOLERANCE), name
        assert m["oracle_acc"] == pytest.approx(oracle, abs=ISSUE_TOLERANCE), name


def _linear_mf(train: RoutingTable, test: RoutingTable) -> tuple[np.ndarray, np.ndarray]:
    """The paper's LinearMF on standardised fused features: TruncatedSVD + Ridge(alpha=1) heads."""
    from sklearn.decomposition import TruncatedSVD
    from sklearn.linear_model import Ridge

    def fused(t: RoutingTable) -> np.ndarray:
        return np.concatenate([t.features["text"], t.features["image"]], axis=1).astype(np.float64)

    mean, std = fused(train).mean(axis=0), fused(train).std(axis=0)
    x_train, x_test = ((fused(t) - mean) / std for t in (train, test))
    svd = TruncatedSVD(n_components=min(128, x_train.shape[1]), random_state=0).fit(x_train)
    z_train, z_test = svd.transform(x_train), svd.transform(x_test)
    perf = Ridge(alpha=1.0).fit(z_train, train.correct).predict(z_test)
    cost = Ridge(alpha=1.0).fit(z_train, train.cost).predict(z_test)
    return perf, np.maximum(cost, 0.0)


def test_linear_mf_on_the_preset_lands_near_the_paper(table: RoutingTable) -> None:
    from mmr_gym.metrics import best_single, curve_summary, threshold_curve

    # The paper's protocol on the merged table: in-split, 20% train, per-query thresholds.
    train, test = table.split("in", train_fraction=0.2, seed=0)
    curve = threshold_curve(*_linear_mf(train, test), test.correct, test.cost)
    _, best_acc, best_cost = best_single(test.correct, test.cost)
    summary = curve_summary(curve[:, 0], curve[:, 1], best_acc, best_cost)
    # Paper: Ps 0.7533 against the best single model's 0.7412 (gain 0.012), QNC < 1, nAUC 0.7042.
    # The feature noise was calibrated on split seeds 0-4 (benchmarks/bench_sim.py --search).
    assert 0.0 < summary["Ps"] - best_acc < 0.03
    assert summary["QNC"] < 1.0
    assert summary["nAUC"] == pytest.approx(0.7042, abs=0.03)


def test_uncalibrated_config_uses_defaults() -> None:
    config = dataclasses.replace(sim.default_config(), calibrate=False)
    small = dataclasses.replace(
        config, datasets=tuple(dataclasses.replace(d, size=50) for d in config.datasets)
    )
    t = sim.simulate(small, seed=3)
    assert t.n_queries == 350
    assert {c["solver"] for c in t.meta["calibration"]} == {"defaults"}


def test_invalid_config_is_rejected() -> None:
    config = sim.default_config()
    bad_model = dataclasses.replace(config.models[0], skills=(0.1,))
    with pytest.raises(ValueError, match="skill abilities"):
        dataclasses.replace(config, models=(bad_model, *config.models[1:]))
    with pytest.raises(ValueError, match="random < best < oracle"):
        dataclasses.replace(config, datasets=(dataclasses.replace(config.datasets[0], target_best=0.99),))


# ---------------------------------------------------------------------------------------------- fusion
def _ridge_r2(features: np.ndarray, target: np.ndarray, train: np.ndarray, test: np.ndarray) -> float:
    """Held-out R^2 (mean over models) of a ridge probe predicting every model's correctness."""
    x = np.c_[features.astype(np.float64), np.ones(len(features))]
    a = x[train]
    weights = np.linalg.solve(a.T @ a + 1.0 * np.eye(a.shape[1]), a.T @ target[train])
    residual = ((target[test] - x[test] @ weights) ** 2).mean(axis=0)
    total = ((target[test] - target[train].mean(axis=0)) ** 2).mean(axis=0)
    return float((1.0 - residual / total).mean())


def test_fusing_text_and_image_beats_either_alone(table: RoutingTable) -> None:
    # The paper's in-distribution split: 20% of the queries train the probe, the rest test it.
    train, test = table.split_indices("in", train_fraction=0.2, seed=0)
    text, image = table.features["text"], table.features["image"]
    r2_text = _ridge_r2(text, table.correct, train, test)
    r2_image = _ridge_r2(image, table.correct, train, test)
    r2_fused = _ridge_r2(np.c_[text, image], table.correct, train, test)
    # Measured: text 0.085, image 0.127, fused 0.161 (seed 0); over seeds 1-5 fused leads the better
    # single channel by 0.038-0.071, so 0.02 is a margin that holds, not a tuned threshold. (One
    # pooled linear probe: the skill loadings are dataset-specific, which caps the pooled R^2.)
    assert min(r2_text, r2_image) > 0.05
    assert r2_fused > max(r2_text, r2_image) + 0.02


def test_gauss_seidel_fallback_agrees_with_hybr(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(0)
    standing, base, hardness = (
        rng.standard_normal(10),
        rng.standard_normal((400, 10)),
        rng.standard_normal(400),
    )
    spec = sim.default_config().datasets[4]
    off, ms, hs, solver = sim.calibrate_dataset(spec, standing, base, hardness)
    assert solver == "hybr"

    class Failed:
        success = False

    monkeypatch.setattr(calibration, "root", lambda *args, **kwargs: Failed())
    off2, ms2, hs2, solver2 = sim.calibrate_dataset(spec, standing, base, hardness)
    assert solver2 == "gauss-seidel"
    assert (off2, ms2, hs2) == pytest.approx((off, ms, hs), abs=1e-6)
    stats = sim.expected_stats(off2, ms2, hs2, standing, base, hardness)
    assert stats == pytest.approx((spec.target_random, spec.target_best, spec.target_oracle), abs=1e-7)


# ---------------------------------------------------------------------------------------------- scenario knobs
def _small(n: int = 700) -> sim.SimConfig:
    return sim.with_queries(sim.default_config(), n)


def test_with_prices_moves_only_the_chosen_models_costs() -> None:
    for config in (sim.default_config(), _small()):  # solved prices, and prices frozen by with_queries
        base = sim.simulate(config, seed=4)
        cheaper = sim.simulate(sim.with_prices(config, {"GPT-5": 0.5}), seed=4)
        j = base.model_names.index("GPT-5")
        np.testing.assert_array_equal(cheaper.correct, base.correct)
        for channel in base.features:
            np.testing.assert_array_equal(cheaper.features[channel], base.features[channel])
        np.testing.assert_allclose(cheaper.cost[:, j], 0.5 * base.cost[:, j], rtol=1e-6)
        others = [i for i in range(base.n_models) if i != j]
        np.testing.assert_array_equal(cheaper.cost[:, others], base.cost[:, others])
    with pytest.raises(ValueError, match="unknown model"):
        sim.with_prices(sim.default_config(), {"GPT-6": 2.0})
    with pytest.raises(ValueError, match="finite and > 0"):
        sim.with_prices(sim.default_config(), {"GPT-5": 0.0})


def test_reprice_changes_the_chosen_model_on_the_chosen_rows(table: RoutingTable) -> None:
    _, test_idx = table.split_indices("in", train_fraction=0.2, seed=0)
    changed = sim.reprice(table, {"Gemini-2.5-Pro": 3.0}, rows=test_idx)
    j = table.model_names.index("Gemini-2.5-Pro")
    in_test = np.isin(np.arange(table.n_queries), test_idx)
    np.testing.assert_allclose(changed.cost[in_test, j], 3.0 * table.cost[in_test, j], rtol=1e-6)
    np.testing.assert_array_equal(changed.cost[~in_test, j], table.cost[~in_test, j])
    others = [i for i in range(table.n_models) if i != j]
    np.testing.assert_array_equal(changed.cost[:, others], table.cost[:, others])
    np.testing.assert_array_equal(changed.correct, table.correct)
    assert changed.meta["price_changes"] == [
        {"model": "Gemini-2.5-Pro", "factor": 3.0, "queries": int(in_test.sum())}
    ]
    mask = sim.reprice(table, {"GPT-5": 2.0}, rows=in_test)
    np.testing.assert_array_equal(
        mask.cost[in_test], sim.reprice(table, {"GPT-5": 2.0}, rows=test_idx).cost[in_test]
    )


def test_with_queries_gives_more_queries_than_the_bundled_table() -> None:
    config = sim.with_queries(sim.default_config(), 25_000)
    big = sim.simulate(config, seed=0)
    assert big.n_queries == 25_000 > 10_370
    shares = {r["dataset"]: r["queries"] / big.n_queries for r in sim.dataset_summary(big)[:-1]}
    default = sim.default_config()
    for spec in default.datasets:
        assert shares[spec.name] == pytest.approx(spec.size / default.n_queries, abs=1e-4)
    # The accuracy calibration is redone on the new latents: Table 2 still holds, more tightly.
    measured = {r["dataset"]: r for r in sim.dataset_summary(big)}
    for name, (random, best, oracle) in TABLE2.items():
        m = measured[name]
        assert (m["mean_acc"], m["best_acc"], m["oracle_acc"]) == pytest.approx(
            (random, best, oracle), abs=0.015
        )
    # Prices are frozen, so the mean costs keep their anchors over the same mix.
    assert big.meta["prices"] == sim.simulate(sim.default_config(), seed=0).meta["prices"]


def test_with_queries_shifts_the_dataset_mix_and_keeps_prices() -> None:
    config = sim.with_queries(sim.default_config(), 4001, dataset_weights={"MathVision": 3, "OCRBench": 1})
    shifted = sim.simulate(config, seed=2)
    names, counts = np.unique(shifted.datasets, return_counts=True)
    assert dict(zip(names.tolist(), counts.tolist(), strict=True)) == {"MathVision": 3001, "OCRBench": 1000}
    assert config.prices is not None
    assert sim.token_prices(config)[0] == pytest.approx(sim.token_prices(sim.default_config())[0])
    with pytest.raises(ValueError, match="unknown dataset"):
        sim.with_queries(sim.default_config(), 10, dataset_weights={"GSM8K": 1})


def test_shifted_split_over_represents_the_chosen_datasets(table: RoutingTable) -> None:
    weights = {"MathVision": 2.0, "MathVerse": 1.0, "OCRBench": 1.0}
    train, test = sim.shifted_split(table, weights, train_fraction=0.2, seed=0)
    train_idx, _ = table.split_indices("in", train_fraction=0.2, seed=0)
    assert train.query_ids.tolist() == table.query_ids[train_idx].tolist()
    names, counts = np.unique(test.datasets, return_counts=True)
    got = dict(zip(names.tolist(), counts.tolist(), strict=True))
    assert set(got) == set(weights)
    total = sum(got.values())
    for name, weight in weights.items():
        assert abs(got[name] - total * weight / 4.0) <= 1, (name, got)
    # The test part is a subset of the in-split's test queries: nothing leaks from training.
    assert not set(test.query_ids.tolist()) & set(train.query_ids.tolist())
    # MathVerse limits the size: all its 630-odd test queries are used.
    assert got["MathVerse"] == int(
        np.sum(table.datasets[np.setdiff1d(np.arange(table.n_queries), train_idx)] == "MathVerse")
    )


def test_feature_knobs_change_only_the_features() -> None:
    config = _small()
    base = sim.simulate(config, seed=5)
    for knob in ({"feature_noise_sd": 0.7}, {"feature_domain_share": 0.3}):
        other = sim.simulate(dataclasses.replace(config, **knob), seed=5)
        np.testing.assert_array_equal(other.correct, base.correct)
        np.testing.assert_array_equal(other.cost, base.cost)
        assert not np.array_equal(other.features["text"], base.features["text"])


def test_allocate_counts() -> None:
    assert sim.allocate_counts(10, [1, 1, 1]).tolist() == [4, 3, 3]
    assert sim.allocate_counts(7, [0, 2, 5]).tolist() == [0, 2, 5]
    assert math.isclose(sim.allocate_counts(1001, [0.25, 0.75]).sum(), 1001)
    with pytest.raises(ValueError, match="not all 0"):
        sim.allocate_counts(5, [0, 0])
