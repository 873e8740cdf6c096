"""The speed benchmark (benchmarks/bench_env.py) runs end to end on a tiny setting and reports every
section (no timing is asserted)."""

from __future__ import annotations

import argparse
import json

import gymnasium as gym
from _tables import make_table

from benchmarks.bench_env import add_arguments, run_from_args
from benchmarks.env_speed.measure import BARS, VECTOR_VARIANTS, run_benchmark
from benchmarks.env_speed.report import (
    format_markdown,
    format_report,
    format_summary_markdown,
    summarize_runs,
    write_results,
)


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
    assert results["setting"]["provenance"]["packages"]["gymnasium"] == gym.__version__

    markdown = format_markdown(results)
    assert markdown.count("\n| vector") == 4 and "| single | 1 |" in markdown
    assert f"Provenance: mmr-gym {results['setting']['provenance']['mmr_gym']}" in markdown
    write_results(results, tmp_path / "bench.json")
    assert json.loads((tmp_path / "bench.json").read_text())["rows"] == json.loads(
        json.dumps(results["rows"])
    )


def _run(*rows: tuple[str, int, float, float | None]) -> dict:
    """Hand-made results of one run: rows of (section, num_envs, ratio, bar)."""
    return {
        "rows": [
            {"section": s, "num_envs": n, "ours": f"ours-{s}", "peer": "peer", "ratio": r, "bar": b}
            for s, n, r, b in rows
        ]
    }


def test_summary_counts_the_runs_that_meet_each_bar():
    runs = [
        _run(("single", 1, 0.6, 0.5), ("vector", 1024, 0.9, 1.0), ("vector", 64, 1.2, None)),
        _run(("single", 1, 0.4, 0.5), ("vector", 1024, 1.1, 1.0), ("vector", 64, 1.0, None)),
        _run(("single", 1, 0.7, 0.5), ("vector", 1024, 1.0, 1.0), ("vector", 64, 1.4, None)),
    ]
    summary = summarize_runs(runs)
    assert [(e["section"], e["num_envs"]) for e in summary] == [
        ("single", 1),
        ("vector", 1024),
        ("vector", 64),
    ]
    single, vector, small = summary
    assert single["ratios"] == [0.6, 0.4, 0.7] and single["runs_meeting_bar"] == 2
    assert single["median"] == 0.6 and (single["min"], single["max"]) == (0.4, 0.7)
    assert vector["runs_meeting_bar"] == 2  # a ratio equal to the bar meets it
    assert small["bar"] is None and small["runs_meeting_bar"] is None and small["median"] == 1.2

    table = format_summary_markdown(summary)
    assert "| single | 1 | ours-single | 0.60x, 0.40x, 0.70x | 0.60x | >= 0.5x | 2 of 3 runs |" in table
    assert "| vector | 64 | ours-vector | 1.20x, 1.00x, 1.40x | 1.20x |  |  |" in table


def test_runs_in_fresh_processes_report_every_run(tmp_path, capsys):
    directory = make_table(n=600, k=4, seed=0).save(tmp_path / "table")
    out = tmp_path / "bench.json"
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(
        ["--runs", "2", "--seconds", "0.01", "--repeats", "1", "--num-envs", "1", "4", "--variant-num-envs"]
        + ["--sb3-num-envs", "2", "--dataset", str(directory), "--out", str(out)]
    )
    assert run_from_args(args) == 0
    results = json.loads(out.read_text())
    assert len(results["runs"]) == 2
    for run in results["runs"]:
        assert {(r["section"], r["num_envs"]) for r in run["rows"]} == {
            ("single", 1),
            ("vector", 1),
            ("vector", 4),
            ("sb3", 2),
        }
        assert run["setting"]["models"] == 4  # the children benchmarked the table passed on
    by_key = {(e["section"], e["num_envs"]): e for e in results["summary"]}
    assert by_key["single", 1]["ratios"] == [run["rows"][0]["ratio"] for run in results["runs"]]
    assert "Across 2 runs" in capsys.readouterr().out

    markdown = format_report(results)
    assert "## Run 1 of 2" in markdown and "## Run 2 of 2" in markdown and "| single | 1 |" in markdown
