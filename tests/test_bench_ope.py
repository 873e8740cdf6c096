"""benchmarks/bench_ope.py on a small table: the truths are the table's, and ope.json holds one
record per logger, target and method with what the issue asks for."""

from __future__ import annotations

import json

import numpy as np
from _tables import make_table

from benchmarks.bench_ope import (
    aggregate,
    bar_verdict,
    build_settings,
    compute_truths,
    replicate,
    write_outputs,
)


def test_the_benchmark_pipeline_on_a_small_table(tmp_path):
    table = make_table(n=300, k=4, seed=8)
    settings = build_settings("default", table, n_logged=400)
    assert [s.regime for s in settings] == ["no budget", "budget 0.5"]
    unbudgeted = settings[0]
    compute_truths(unbudgeted)
    # Without a budget BestSingle and Cheapest are fixed choices per query: their truth is the
    # table's mean over the test split, computed here from the table alone.
    ctx = unbudgeted.env.unwrapped.ctx
    train = table.subset(ctx.train_indices)
    best = np.lexsort((train.model_mean_cost(), -train.model_accuracy()))[0]
    split = ctx.split_indices
    assert np.isclose(
        unbudgeted.truths["BestSingle"]["accuracy"], table.correct[split, best].mean(), rtol=1e-6
    )
    cheapest = ctx.cost_estimate[split].argmin(axis=1)
    assert np.isclose(unbudgeted.truths["Cheapest"]["accuracy"], table.correct[split, cheapest].mean())
    assert np.isclose(unbudgeted.truths["Cheapest"]["cost"], table.cost[split, cheapest].mean())

    runs = [replicate(unbudgeted, "uniform", seed, 400, 200) for seed in (0, 1)]
    records = aggregate(unbudgeted, "uniform", runs, 400)
    assert {(r["target"], r["method"]) for r in records} >= {
        ("BestSingle", "dr"),
        ("Cheapest", "snips"),
        ("Paced-LinearMF", "replay"),
        ("LinUCB-learning", "replay"),
    }
    for r in records:
        assert {"table", "regime", "logger", "target", "method", "n_logged", "truth"} <= set(r)
        if "estimate" in r:
            assert r["ci_low"] <= r["ci_high"] and r["replications"] + r["failed"] == 2
            assert np.isclose(r["bias"], r["estimate"] - r["truth"])
    bar = bar_verdict(records)
    assert {c["method"] for c in bar["checks"]} == {"dr", "snips"} and len(bar["checks"]) == 8
    # A mean interval that misses the mean estimate (NaN bounds of some replications) still plots.
    odd = {**next(r for r in records if "estimate" in r), "ci_low": float("nan"), "ci_high": 0.0}
    write_outputs(tmp_path, [*records, odd], bar, {"replications": 2})
    payload = json.loads((tmp_path / "ope.json").read_text())
    assert payload["provenance"]["mmr_gym"] and len(payload["records"]) == len(records) + 1
    assert (tmp_path / "ope.png").stat().st_size > 0 and "| uniform |" in (tmp_path / "ope.md").read_text()
