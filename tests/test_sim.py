"""The simulator: reproducibility of the bundled table, structure, costs, and the value of fusion."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy as np
import pytest

from mmr_gym import sim
from mmr_gym.table import RoutingTable

ENVS_DATA = Path(sim.__file__).resolve().parent / "envs_data"
BUNDLED = ENVS_DATA / "mmr-sim-default"
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
    # Measured: text 0.147, image 0.148, fused 0.204 (seed 0); over seeds 1-5 fused leads the better
    # single channel by 0.041-0.057, so 0.02 is a margin that holds, not a tuned threshold.
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

    monkeypatch.setattr(sim, "root", lambda *args, **kwargs: Failed())
    off2, ms2, hs2, solver2 = sim.calibrate_dataset(spec, standing, base, hardness)
    assert solver2 == "gauss-seidel"
    assert (off2, ms2, hs2) == pytest.approx((off, ms, hs), abs=1e-6)
    stats = sim.expected_stats(off2, ms2, hs2, standing, base, hardness)
    assert stats == pytest.approx((spec.target_random, spec.target_best, spec.target_oracle), abs=1e-7)
