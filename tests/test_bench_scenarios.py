"""benchmarks/bench_scenarios.py on a small table: the files it writes, the paired comparison with the
static policy, and the bar's verdict."""

from __future__ import annotations

import json

import numpy as np
import pytest
from _tables import make_table

from benchmarks.bench_scenarios import compare, counterfactuals, main, verdict
from mmr_gym.scenarios import NO_EVENTS, NewModel, Outage, PriceChange, Regression, Scenario


def test_the_benchmark_writes_the_table_the_json_and_stamped_plots(tmp_path):
    path = make_table(n=600, k=4, seed=3).save(tmp_path / "table")
    out = tmp_path / "out"
    argv = ["--out", str(out), "--dataset", str(path), "--seeds", "0,1", "--budgets", "0.3"]
    argv += [
        "--presets",
        "price-cut,regression",
        "--agents",
        "static,adaptive-pacing",
        "--episode-length",
        "20",
    ]
    assert main(argv) == 0
    payload = json.loads((out / "scenarios.json").read_text())
    assert set(payload["presets"]) == {"price-cut", "regression"}
    assert payload["provenance"]["created"] and payload["provenance"]["command"]
    for rows in payload["presets"].values():
        static = next(r for r in rows if r["agent"] == "static")
        other = next(r for r in rows if r["agent"] == "adaptive-pacing")
        assert len(static["regret_after_per_seed"]) == 2 and len(static["excess_regret_per_seed"]) == 2
        paired = np.subtract(other["regret_after_per_seed"], static["regret_after_per_seed"])
        assert other["difference"] == pytest.approx(paired.mean())
        assert other["difference_std"] == pytest.approx(paired.std())
    text = (out / "scenarios.md").read_text()
    assert "Teeth" in text and "| Paced-" in text and "Provenance:" in text and "**Bar**" in text
    assert "spend / budget after" in text
    for preset in ("price-cut", "regression"):
        assert (out / f"timeline-{preset}.png").stat().st_size > 0


def effect(agent, after, excess=0.01, time=100):
    return {
        "policy": agent.title(),
        "time": time,
        "event": "e",
        "regret_before": 0.2,
        "regret_after": float(np.mean(after)),
        "regret_after_std": float(np.std(after)),
        "regret_after_per_seed": list(after),
        "excess_regret": excess,
        "excess_regret_std": 0.0,
        "excess_regret_per_seed": [excess] * len(after),
        "recovery_queries": 0.0,
        "recovered_share": 1.0,
        "overrun_rate_after": 0.0,
        "spend_over_budget_after": 0.9,
    }


def test_an_agent_beats_static_only_lower_on_every_seed_by_more_than_two_spreads():
    static = [effect("static", [0.20, 0.21, 0.22])]
    clear = [effect("clear", [0.18, 0.19, 0.20])]  # -0.02 on every seed: spread 0
    noisy = [effect("noisy", [0.10, 0.205, 0.215])]  # lower on every seed, but the spread is wide
    mixed = [effect("mixed", [0.10, 0.22, 0.21])]  # better on average, worse on one seed
    rows = compare({"static": static, "clear": clear, "noisy": noisy, "mixed": mixed})
    beats = {r["agent"]: r["beats_static"] for r in rows}
    assert beats == {"static": False, "clear": True, "noisy": False, "mixed": False}
    seeds_better = {r["agent"]: r["seeds_better"] for r in rows}
    assert seeds_better == {"static": 0, "clear": 3, "noisy": 3, "mixed": 2}
    # Won, but the static policy lost nothing to the event (no teeth).
    toothless = compare(
        {"static": [effect("static", [0.2] * 3, excess=-0.01)], "clear": [effect("c", [0.1] * 3)]}
    )
    assert any(r["beats_static"] for r in toothless)
    bar = verdict({"a": rows, "b": rows, "c": rows})
    assert bar["met"] and bar["presets_won"] == ["a", "b", "c"]
    assert not verdict({"a": rows, "b": rows, "c": toothless})["met"]  # no teeth on c
    assert not verdict({"a": rows, "b": rows})["met"]  # two presets won


def test_the_counterfactual_of_each_event_is_the_world_without_it():
    down = Scenario("down", (Outage("a", start=10, end=20), Outage("b", start=10, end=30)))
    assert counterfactuals(down) == {10: NO_EVENTS}  # events that start together are one change
    cut, new, worse = (
        PriceChange("a", at=10, factor=0.5, lag=None),
        NewModel("b", at=20),
        Regression("c", at=30, replacement="a", probability=0.5),
    )
    mixed = Scenario("mixed", (cut, new, worse), seed=7)
    worlds = counterfactuals(mixed)
    assert {t: w.events for t, w in worlds.items()} == {10: (new, worse), 20: (cut, worse), 30: (cut, new)}
    assert all(w.seed == 7 for w in worlds.values())  # the same regressed queries
