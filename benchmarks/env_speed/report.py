"""The benchmark's results as markdown or JSON: one run's report, and the summary of several runs."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mmr_gym.provenance import provenance_line


def _si(x: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(x) >= scale:
            return f"{x / scale:.2f} {unit}"
    return f"{x:.0f}"


def _bytes(x: float) -> str:
    for unit, scale in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if abs(x) >= scale:
            return f"{x / scale:.1f} {unit}"
    return f"{x:.0f} B"


def format_markdown(results: dict[str, Any], title: str = "# MMRRouting benchmark") -> str:
    """One run's results as a markdown report: setting, throughput table with ratios and bars, memory."""
    s, m, b = results["setting"], results["memory"], results["bounds"]
    parts = s["observation_parts"]
    lines = [
        title,
        "",
        f"Table `{s['table']}`: {s['queries']:,} queries ({s['split_queries']:,} in the episode split), "
        f"K = {s['models']} models. Observation dim {s['observation_dim']} (query {parts['query']} + budget "
        f"{parts['budget']} + model_costs {parts['model_costs']}, `{s['observation']}`), episode_length "
        f"{s['episode_length']}, budget_ratio {s['budget_ratio']}. {s['cpus']} CPUs, Python {s['python']}, "
        f"numpy {s['numpy']}.",
        "",
        f"Provenance: {provenance_line(s['provenance'])}.",
        "",
        f"Timed: `step` (and the resets it triggers) only; best of {results['timing']['repeats']} interleaved "
        f"runs of >= {results['timing']['seconds']:g} s. Actions: uniform among the affordable models (rejection "
        "from a precomputed pool; CartPole: uniform), drawn outside the timed region. SB3 rows fetch masks "
        "with sb3-contrib's `get_action_masks`, untimed. `vector`: the native vector env as `gym.make_vec` "
        "builds it (one generator draws the streams of many episodes at once, full SyncVectorEnv-style infos); "
        "`vector-lean`: the same with infos holding only `action_mask` and `episode_metrics` (what a training "
        "loop reads; CartPole's infos are empty); `vector-per-env`: one generator per sub-env, which replays "
        "single environments' streams exactly (and pays one `Generator.choice` call per episode). The variants "
        "run interleaved with the default and against the same peer as the `vector` row of that size.",
        "",
        "| comparison | num_envs | ours | peer | ours env-steps/s | peer env-steps/s | ratio | bar | "
        "ours: time in episode starts |",
        "|---|---:|---|---|---:|---:|---:|---|---:|",
    ]
    for r in results["rows"]:
        bar = "" if r["bar"] is None else f">= {r['bar']:g}x: {'met' if r['meets_bar'] else 'NOT met'}"
        share = f"{r['episode_start_share']:.0%}" if "episode_start_share" in r else ""
        lines.append(
            f"| {r['section']} | {r['num_envs']} | {r['ours']} | {r['peer']} | {_si(r['ours_steps_per_s'])} | "
            f"{_si(r['peer_steps_per_s'])} | {r['ratio']:.2f}x | {bar} | {share} |"
        )
    lines += [
        "",
        "Bounds (what no implementation of this step can beat on this machine):",
        "",
        f"- copying the observations: {b['observation_bytes_per_env_step']} B per env-step at memcpy "
        f"{_si(b['memcpy_bytes_per_s'])}B/s -> {_si(b['memcpy_bound_env_steps_per_s'])} env-steps/s; "
        f"gathering them from the shared table for {b['gather_num_envs']} envs -> "
        f"{_si(b['gather_bound_env_steps_per_s'])} env-steps/s.",
        f"- drawing each episode's stream exactly as `MMRRoutingEnv.reset` does (one `Generator.choice` per "
        f"episode): {_si(b['episode_start_draws_per_s'])} draws/s -> at most "
        f"{_si(b['episode_start_bound_env_steps_per_s'])} env-steps/s from the draws alone (`vector-per-env`); "
        f"batched (the default, 1024 streams per call): {_si(b['batched_draws_per_s'])} streams/s -> "
        f"{_si(b['batched_bound_env_steps_per_s'])} env-steps/s.",
        "",
        "| SB3 masks (`get_action_masks`) | adapter calls/s | DummyVecEnv calls/s |",
        "|---:|---:|---:|",
        *[
            f"| {n} envs | {_si(v['adapter_calls_per_s'])} | {_si(v['dummy_calls_per_s'])} |"
            for n, v in results["mask_fetch"].items()
        ],
        "",
        "Memory (tracemalloc):",
        "",
        f"- first single env (loads the table, builds the shared context): {_bytes(m['first_single_env_bytes'])}",
        f"- each further single env ({m['copies']} made): {_bytes(m['per_additional_single_env_bytes'])}",
        f"- a native vector env of {m['copies']} sub-envs: {_bytes(m['vector_env_bytes'])} "
        f"({_bytes(m['vector_env_bytes_per_sub_env'])} per sub-env; the first one also builds the per-split "
        f"lookups shared by all: {_bytes(m['first_vector_env_bytes'])})",
        f"- shared read-only arrays, held once: {_bytes(m['shared_total_bytes'])} ("
        + ", ".join(f"{k} {_bytes(v)}" for k, v in m["shared_array_bytes"].items())
        + f"); every env shares them: {m['all_envs_share_the_table']}",
    ]
    return "\n".join(lines) + "\n"


def summarize_runs(runs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per comparison (section, num_envs) of several runs' results: its ratio in each run, and bar.

    Each entry holds ``ratios`` (in run order), their ``median``, ``min`` and ``max``, the ``bar``
    and ``runs_meeting_bar`` (None without a bar), in the order of the first run's rows.
    """
    summary: dict[tuple[str, int], dict[str, Any]] = {}
    for results in runs:
        for row in results["rows"]:
            entry = summary.setdefault(
                (row["section"], row["num_envs"]),
                {key: row[key] for key in ("section", "num_envs", "ours", "peer", "bar")} | {"ratios": []},
            )
            entry["ratios"].append(row["ratio"])
    for entry in summary.values():
        ratios, bar = entry["ratios"], entry["bar"]
        entry["median"] = float(np.median(ratios))
        entry["min"], entry["max"] = min(ratios), max(ratios)
        entry["runs_meeting_bar"] = None if bar is None else sum(ratio >= bar for ratio in ratios)
    return list(summary.values())


def format_summary_markdown(summary: Sequence[dict[str, Any]]) -> str:
    """The table of :func:`summarize_runs`: every comparison's ratio per run and how many runs met its bar."""
    runs = len(summary[0]["ratios"]) if summary else 0
    lines = [
        f"## Across {runs} runs (each a fresh process, one after another)",
        "",
        "| comparison | num_envs | ours | ratio per run | median | bar | met in |",
        "|---|---:|---|---|---:|---|---|",
    ]
    for entry in summary:
        per_run = ", ".join(f"{ratio:.2f}x" for ratio in entry["ratios"])
        bar = "" if entry["bar"] is None else f">= {entry['bar']:g}x"
        met = "" if entry["bar"] is None else f"{entry['runs_meeting_bar']} of {len(entry['ratios'])} runs"
        lines.append(
            f"| {entry['section']} | {entry['num_envs']} | {entry['ours']} | {per_run} | "
            f"{entry['median']:.2f}x | {bar} | {met} |"
        )
    return "\n".join(lines) + "\n"


def format_report(results: dict[str, Any]) -> str:
    """Markdown for one run's results, or for several (``{"runs": [...], "summary": [...]}``)."""
    if "runs" not in results:
        return format_markdown(results)
    n = len(results["runs"])
    parts = ["# MMRRouting benchmark\n", format_summary_markdown(results["summary"])]
    parts += [format_markdown(run, f"## Run {i} of {n}") for i, run in enumerate(results["runs"], 1)]
    return "\n".join(parts)


def write_results(results: dict[str, Any], path: str | Path) -> None:
    """Write ``results`` (one run's or several) to ``path``: JSON if it ends in ``.json``, else markdown."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".json":
        path.write_text(json.dumps(results, indent=2, default=str) + "\n", encoding="utf-8")
    else:
        path.write_text(format_report(results), encoding="utf-8")
