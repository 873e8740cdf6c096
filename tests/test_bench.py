"""The speed benchmark runs end to end on a tiny setting and reports every section (no timing is asserted)."""

from __future__ import annotations

import json

from _tables import make_table

from mmr_gym.bench import BARS, VECTOR_VARIANTS, format_markdown, run_benchmark, write_results


def test_benchmark_reports_every_section(tmp_path):
    table = make_table(n=200, k=4, seed=0)
    results = run_benchmark(
        seconds=0.01,
        repeats=1,
        vector_sizes=(1, 4),
        variant_sizes=(4,),
        sb3_sizes=(2,),
        env_kwargs={"dataset": table, "episode_length": 10},
        progress=lambda _: None,
    )
    sections = {(r["section"], r["num_envs"]) for r in results["rows"]}
    assert sections == {
        ("single", 1),
        ("vector", 1),
        ("vector", 4),
        *((variant, 4) for variant in VECTOR_VARIANTS),
        ("sb3", 2),
    }
    for row in results["rows"]:
        assert row["ours_steps_per_s"] > 0 and row["peer_steps_per_s"] > 0
        assert row["ratio"] == row["ours_steps_per_s"] / row["peer_steps_per_s"]
        assert row["bar"] == BARS.get((row["section"], row["num_envs"]))
    assert results["memory"]["all_envs_share_the_table"]
    assert results["setting"]["models"] == 4 and results["setting"]["episode_length"] == 10

    markdown = format_markdown(results)
    assert markdown.count("\n| vector") == 4 and "| single | 1 |" in markdown
    write_results(results, tmp_path / "bench.json")
    assert json.loads((tmp_path / "bench.json").read_text())["rows"] == json.loads(
        json.dumps(results["rows"])
    )
