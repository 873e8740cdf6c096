"""Speed and memory of the MMRRouting environments, against CartPole measured in the same run.

What is timed is ``step`` (with the resets it triggers) and nothing else: actions are drawn
outside the timed region, uniformly among the affordable models by rejection from a
precomputed pool of uniform model indices (exact for uniform-over-affordable, a few array
operations per batch). Each figure is the best of ``repeats`` interleaved runs of at least
``seconds`` each, so a busy machine slows both sides of a ratio alike.

Run it as ``mmr-gym bench`` or ``python benchmarks/bench_env.py``. ``--runs N`` repeats the whole
benchmark in N fresh processes, one after another, and reports each comparison's ratio in every
run and in how many runs it met its bar: on a shared machine one run's verdict is at the mercy of
the noise (the same code's ratio moved by a third between runs on the project's machine).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mmr_gym.provenance import provenance, provenance_line

ENV_ID = "MMRRouting-v0"
PEER_ID = "CartPole-v1"
VECTOR_SIZES = (1, 64, 1024, 4096)
# The native vector env's variants, timed beside the default at VARIANT_SIZES: section ->
# (constructor kwargs, what the report calls it).
VECTOR_VARIANTS: dict[str, tuple[dict[str, Any], str]] = {
    "vector-lean": (
        {"info_keys": ("episode_metrics",)},
        'MMRRoutingVectorEnv(info_keys=("episode_metrics",))',
    ),
    "vector-per-env": ({"stream_sampling": "per-env"}, 'MMRRoutingVectorEnv(stream_sampling="per-env")'),
}
VARIANT_SIZES = (1024, 4096)
SB3_SIZES = (8, 64)
# The bars set by the project's issue 5: (section, num_envs) -> minimum ratio to the peer. The
# vector bar is shown for the default and for each variant.
BARS = {
    ("single", 1): 0.5,
    ("vector", 1024): 1.0,
    **{(section, 1024): 1.0 for section in VECTOR_VARIANTS},
    ("sb3", 64): 5.0,
}
_POOL = 1 << 16  # precomputed uniform actions, reused cyclically


# ---------------------------------------------------------------------------- timing
def _steps_per_second(
    run: Callable[[int], float], seconds: float, repeats: int, calls: int = 16
) -> list[float]:
    """``run(n)`` does ``n`` steps and returns the seconds they took; per repeat, steps per second."""
    run(max(1, calls // 4))  # warm-up: first-touch allocations, caches
    rates = []
    for _ in range(repeats):
        done, elapsed = 0, 0.0
        while elapsed < seconds:
            elapsed += run(calls)
            done += calls
            calls = min(calls * 2, 1 << 20) if elapsed < seconds / 4 else calls
        rates.append(done / elapsed)
    return rates


def _interleaved(runs: dict[str, Callable[[int], float]], seconds: float, repeats: int) -> dict[str, float]:
    """Best steps/s of each run; the runs alternate so that machine load hits them alike."""
    best = dict.fromkeys(runs, 0.0)
    for _ in range(repeats):
        for name, run in runs.items():
            best[name] = max(best[name], max(_steps_per_second(run, seconds, 1)))
    return best


def _single_runner(env: Any, n_actions: int, masked: bool, seed: int = 0) -> Callable[[int], float]:
    rng = np.random.default_rng(seed)
    pool = rng.integers(0, n_actions, _POOL).tolist()
    state = {"info": env.reset(seed=seed)[1], "j": 0}

    def run(n: int) -> float:
        info, j = state["info"], state["j"]
        elapsed = 0.0
        for _ in range(n):
            action = pool[j]
            j = (j + 1) & (_POOL - 1)
            if masked:
                mask = info["action_mask"]
                tries = 0
                while not mask[action] and tries < 64:  # rejection: uniform over the affordable models
                    action = pool[j]
                    j = (j + 1) & (_POOL - 1)
                    tries += 1
            start = time.perf_counter()
            _, _, terminated, truncated, info = env.step(action)
            if terminated or truncated:
                _, info = env.reset()
            elapsed += time.perf_counter() - start
        state["info"], state["j"] = info, j
        return elapsed

    return run


def _masked_batch_sampler(
    num_envs: int, n_actions: int, seed: int = 0
) -> Callable[[np.ndarray | None], np.ndarray]:
    """Uniform affordable actions for a batch of int8/bool masks ``[num_envs, K]`` (None: unmasked)."""
    rng = np.random.default_rng(seed)
    rounds = 16
    pool = rng.integers(0, n_actions, (rounds, 4, num_envs))
    offset = np.arange(num_envs) * n_actions
    counter = [0]

    def sample(mask: np.ndarray | None) -> np.ndarray:
        draws = pool[counter[0] % rounds]
        counter[0] += 1
        actions = draws[0].copy()
        if mask is None:
            return actions
        flat = mask.reshape(-1)
        for extra in draws[1:]:  # rejection, vectorised: redraw only where the model is masked
            masked = flat.take(offset + actions) == 0
            if not masked.any():
                return actions
            actions[masked] = extra[masked]
        masked = flat.take(offset + actions) == 0
        actions[masked] = mask[masked].argmax(axis=1)  # rare: the first affordable model
        return actions

    return sample


def _vector_runner(
    env: Any, n_actions: int, masked: bool, seed: int = 0, starts: list[float] | None = None
) -> Callable[[int], float]:
    sample = _masked_batch_sampler(env.num_envs, n_actions, seed)
    state = {"info": env.reset(seed=seed)[1]}
    if starts is not None:
        # Diagnostic: the seconds spent starting episodes (the exact per-sub-env stream draws).
        unwrapped = env.unwrapped
        start_episodes = unwrapped._start

        def timed(*args: Any, **kwargs: Any) -> None:
            begin = time.perf_counter()
            start_episodes(*args, **kwargs)
            starts[0] += time.perf_counter() - begin

        unwrapped._start = timed

    def run(n: int) -> float:
        info = state["info"]
        elapsed = 0.0
        for _ in range(n):
            actions = sample(info["action_mask"] if masked else None)
            start = time.perf_counter()
            _, _, _, _, info = env.step(actions)
            elapsed += time.perf_counter() - start
        state["info"] = info
        if starts is not None:
            starts[1] += elapsed
        return elapsed

    return run


def _sb3_runner(env: Any, n_actions: int, seed: int = 0) -> Callable[[int], float]:
    from sb3_contrib.common.maskable.utils import get_action_masks

    sample = _masked_batch_sampler(env.num_envs, n_actions, seed)
    env.seed(seed)
    env.reset()

    def run(n: int) -> float:
        elapsed = 0.0
        for _ in range(n):
            actions = sample(get_action_masks(env))  # as MaskablePPO gets them, outside the timing
            start = time.perf_counter()
            env.step(actions)
            elapsed += time.perf_counter() - start
        return elapsed

    return run


def _calls_per_second(call: Callable[[], Any], seconds: float) -> float:
    call()
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        call()
        n += 1
    return n / (time.perf_counter() - start)


# ---------------------------------------------------------------------------- the sections
def _setting(env_kwargs: dict[str, Any]) -> dict[str, Any]:
    import gymnasium as gym

    env = gym.make(ENV_ID, **env_kwargs).unwrapped
    ctx = env.ctx
    d = ctx.query_obs.shape[1]
    obs_dim = gym.spaces.flatdim(env.observation_space)
    return {
        "env_id": ENV_ID,
        "env_kwargs": {k: repr(v) for k, v in env_kwargs.items()},
        "table": ctx.table.source,
        "queries": ctx.table.n_queries,
        "split_queries": int(ctx.split_indices.size),
        "models": ctx.n_models,
        "observation_dim": obs_dim,
        "observation_parts": {"query": d, "budget": 3, "model_costs": ctx.n_models},
        "observation": env.observation_mode,
        "episode_length": env.episode_length,
        "budget_ratio": env.budget_ratio,
        "cpu": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "provenance": provenance(),
    }


def _memory(env_kwargs: dict[str, Any], copies: int = 64) -> dict[str, Any]:
    """Bytes allocated by environment instances (tracemalloc), and the bytes they share."""
    import gymnasium as gym

    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    first = gym.make(ENV_ID, **env_kwargs)
    first.reset(seed=0)
    first_bytes = tracemalloc.get_traced_memory()[0] - base
    base = tracemalloc.get_traced_memory()[0]
    more = [gym.make(ENV_ID, **env_kwargs) for _ in range(copies)]
    for i, env in enumerate(more):
        env.reset(seed=i)
    per_single = (tracemalloc.get_traced_memory()[0] - base) / copies
    vectors, vector_bytes = [], []
    for _ in range(2):  # the first also builds the per-split lookups; the second shows the marginal cost
        base = tracemalloc.get_traced_memory()[0]
        vectors.append(
            gym.make_vec(ENV_ID, num_envs=copies, vectorization_mode="vector_entry_point", **env_kwargs)
        )
        vectors[-1].reset(seed=0)
        vector_bytes.append(tracemalloc.get_traced_memory()[0] - base)
    tracemalloc.stop()

    ctx = first.unwrapped.ctx
    table = ctx.table
    shared = {
        "table.correct": table.correct,
        "table.cost": table.cost,
        **{f"table.features[{c!r}]": v for c, v in table.features.items()},
        "ctx.query_obs": ctx.query_obs,
        "ctx.model_costs_obs": ctx.model_costs_obs,
        "ctx.cost_estimate": ctx.cost_estimate,
        "ctx.split_indices": ctx.split_indices,
    }
    all_share = all(
        np.shares_memory(env.unwrapped.ctx.query_obs, ctx.query_obs)
        and np.shares_memory(env.unwrapped.ctx.table.correct, table.correct)
        for env in [*more, *vectors]
    )
    return {
        "first_single_env_bytes": first_bytes,
        "per_additional_single_env_bytes": per_single,
        "copies": copies,
        "first_vector_env_bytes": vector_bytes[0],
        "vector_env_bytes": vector_bytes[1],
        "vector_env_bytes_per_sub_env": vector_bytes[1] / copies,
        "shared_array_bytes": {name: int(a.nbytes) for name, a in shared.items()},
        "shared_total_bytes": int(sum(a.nbytes for a in shared.values())),
        "all_envs_share_the_table": bool(all_share),
    }


def _bounds(env_kwargs: dict[str, Any], num_envs: int, seconds: float) -> dict[str, Any]:
    """What limits a step: copying the observations, and drawing the streams (exact or batched)."""
    from mmr_gym.streams import draw_distinct_rows
    from mmr_gym.vector import MMRRoutingVectorEnv

    env = MMRRoutingVectorEnv(num_envs=num_envs, **env_kwargs)
    ctx = env.ctx
    obs_bytes = 4 * (ctx.query_obs.shape[1] + 3 + ctx.n_models)
    big = np.ones(64 << 20, dtype=np.uint8)
    target = np.empty_like(big)
    copy_rate = _calls_per_second(lambda: np.copyto(target, big), seconds) * big.nbytes  # bytes/s
    rows = np.random.default_rng(0).choice(ctx.table.n_queries, num_envs)
    gathers = _calls_per_second(
        lambda: (ctx.query_obs.take(rows, axis=0), ctx.model_costs_obs.take(rows, axis=0)), seconds
    )
    rng = np.random.default_rng(0)
    n_split, length = ctx.split_indices.size, env.episode_length
    draws = _calls_per_second(lambda: rng.choice(n_split, length, replace=False), seconds)
    batch = 1024  # as the batched pool draws them
    batched = batch * _calls_per_second(lambda: draw_distinct_rows(rng, n_split, length, batch), seconds)
    return {
        "observation_bytes_per_env_step": obs_bytes,
        "memcpy_bytes_per_s": copy_rate,
        "memcpy_bound_env_steps_per_s": copy_rate / obs_bytes,
        "gather_bound_env_steps_per_s": gathers * num_envs,
        "gather_num_envs": num_envs,
        "episode_start_draws_per_s": draws,
        "episode_start_bound_env_steps_per_s": draws * length,
        "batched_draws_per_s": batched,
        "batched_bound_env_steps_per_s": batched * length,
    }


def run_benchmark(
    *,
    seconds: float = 1.0,
    repeats: int = 3,
    vector_sizes: Sequence[int] = VECTOR_SIZES,
    variant_sizes: Sequence[int] = VARIANT_SIZES,
    sb3_sizes: Sequence[int] = SB3_SIZES,
    env_kwargs: dict[str, Any] | None = None,
    progress: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Measure every section and return the results as plain data (see :func:`format_markdown`)."""
    import gymnasium as gym
    from stable_baselines3.common.vec_env import DummyVecEnv

    import mmr_gym  # noqa: F401  (registers the ids)
    from mmr_gym.sb3 import SB3VecEnvAdapter

    env_kwargs = dict(env_kwargs or {})
    progress("memory ...")
    memory = _memory(env_kwargs)  # first, while the table is not loaded yet
    setting = _setting(env_kwargs)
    k = setting["models"]
    rows: list[dict[str, Any]] = []

    def record(section: str, num_envs: int, ours: float, peer: float, ours_name: str, peer_name: str) -> None:
        bar = BARS.get((section, num_envs))
        ratio = ours / peer
        rows.append(
            {
                "section": section,
                "num_envs": num_envs,
                "ours": ours_name,
                "peer": peer_name,
                "ours_steps_per_s": ours,
                "peer_steps_per_s": peer,
                "ratio": ratio,
                "bar": bar,
                "meets_bar": None if bar is None else bool(ratio >= bar),
            }
        )
        progress(
            f"  {section:14s} {num_envs:5d} envs: {ours:12,.0f} vs {peer:12,.0f} env-steps/s  ratio {ratio:.2f}"
        )

    progress("single environment (gym.make) ...")
    ours = gym.make(ENV_ID, **env_kwargs)
    peer = gym.make(PEER_ID)
    best = _interleaved(
        {"ours": _single_runner(ours, k, masked=True), "peer": _single_runner(peer, 2, masked=False)},
        seconds,
        repeats,
    )
    record("single", 1, best["ours"], best["peer"], f'gym.make("{ENV_ID}")', f'gym.make("{PEER_ID}")')

    progress("native vector environments (gym.make_vec, vector_entry_point) ...")
    for n in sorted(set(vector_sizes) | set(variant_sizes)):
        configs = {"vector": ({}, "MMRRoutingVectorEnv")} if n in vector_sizes else {}
        if n in variant_sizes:
            configs.update(VECTOR_VARIANTS)
        runs, starts = {}, {}  # starts: seconds in episode starts, seconds stepping
        for section, (kwargs, _) in configs.items():
            ours = gym.make_vec(
                ENV_ID, num_envs=n, vectorization_mode="vector_entry_point", **kwargs, **env_kwargs
            )
            starts[section] = [0.0, 0.0]
            runs[section] = _vector_runner(ours, k, masked=True, starts=starts[section])
        peer = gym.make_vec(PEER_ID, num_envs=n, vectorization_mode="vector_entry_point")
        runs["peer"] = _vector_runner(peer, 2, masked=False)
        best = _interleaved(runs, seconds, repeats)  # every variant against the same peer
        for section, (_, name) in configs.items():
            record(section, n, best[section] * n, best["peer"] * n, name, "CartPoleVectorEnv")
            rows[-1]["episode_start_share"] = starts[section][0] / starts[section][1]

    progress("stable-baselines3 VecEnv ...")
    mask_fetch = {}
    for n in sb3_sizes:
        dummy = DummyVecEnv([lambda: gym.make(ENV_ID, **env_kwargs) for _ in range(n)])
        adapter = SB3VecEnvAdapter(
            gym.make_vec(ENV_ID, num_envs=n, vectorization_mode="vector_entry_point", **env_kwargs)
        )
        best = _interleaved(
            {"ours": _sb3_runner(adapter, k), "peer": _sb3_runner(dummy, k)}, seconds, repeats
        )
        record("sb3", n, best["ours"] * n, best["peer"] * n, "SB3VecEnvAdapter", "DummyVecEnv(gym.make)")
        from sb3_contrib.common.maskable.utils import get_action_masks

        mask_fetch[n] = {
            "adapter_calls_per_s": _calls_per_second(lambda a=adapter: get_action_masks(a), seconds / 4),
            "dummy_calls_per_s": _calls_per_second(lambda d=dummy: get_action_masks(d), seconds / 4),
        }

    progress("bounds ...")
    bounds = _bounds(env_kwargs, 1024, seconds / 2)
    return {
        "setting": setting,
        "rows": rows,
        "memory": memory,
        "bounds": bounds,
        "mask_fetch": mask_fetch,
        "timing": {"seconds": seconds, "repeats": repeats},
    }


# ---------------------------------------------------------------------------- output
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


# ---------------------------------------------------------------------------- command line
def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``mmr-gym bench`` (and of ``benchmarks/bench_env.py``)."""
    parser.add_argument(
        "--out", type=Path, default=None, help="also write the results here (.json: JSON, else markdown)"
    )
    parser.add_argument(
        "--seconds", type=float, default=1.0, help="minimum seconds per timed run (default 1)"
    )
    parser.add_argument(
        "--repeats", type=int, default=3, help="interleaved runs per figure; the best counts (default 3)"
    )
    parser.add_argument(
        "--num-envs", type=int, nargs="+", default=list(VECTOR_SIZES), help="vector env sizes"
    )
    parser.add_argument(
        "--variant-num-envs",
        type=int,
        nargs="*",
        default=list(VARIANT_SIZES),
        help=f"vector env sizes also timed as {', '.join(VECTOR_VARIANTS)}",
    )
    parser.add_argument(
        "--sb3-num-envs", type=int, nargs="+", default=list(SB3_SIZES), help="SB3 VecEnv sizes"
    )
    parser.add_argument("--dataset", default=None, help="table to benchmark (default: the bundled default)")
    parser.add_argument(
        "--runs",
        type=int,
        default=1,
        help="repeat the whole benchmark in this many fresh processes and report every ratio (default 1)",
    )


def run_from_args(args: argparse.Namespace) -> int:
    """Run the benchmark with parsed arguments, print the report, write ``--out``; return the exit code."""
    if args.runs < 1:
        raise SystemExit(f"--runs must be >= 1, got {args.runs}")
    if args.runs > 1:
        results = _run_in_processes(args)
        print()
        print(format_summary_markdown(results["summary"]))  # each run has printed its own report
    else:
        env_kwargs = {} if args.dataset is None else {"dataset": args.dataset}
        results = run_benchmark(
            seconds=args.seconds,
            repeats=args.repeats,
            vector_sizes=args.num_envs,
            variant_sizes=args.variant_num_envs,
            sb3_sizes=args.sb3_num_envs,
            env_kwargs=env_kwargs,
        )
        print()
        print(format_markdown(results))
    if args.out is not None:
        write_results(results, args.out)
        print(f"written to {args.out}")
    return 0


def _run_in_processes(args: argparse.Namespace) -> dict[str, Any]:
    """``args.runs`` single runs, each in a fresh process (``mmr-gym bench``), one after another.

    Fresh processes, not repeats in this one: the memory section measures the first environment
    loading the table, which only a fresh process does.
    """
    argv = ["--seconds", str(args.seconds), "--repeats", str(args.repeats)]
    argv += ["--num-envs", *map(str, args.num_envs), "--variant-num-envs", *map(str, args.variant_num_envs)]
    argv += ["--sb3-num-envs", *map(str, args.sb3_num_envs)]
    if args.dataset is not None:
        argv += ["--dataset", str(args.dataset)]
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(1, args.runs + 1):
            print(f"run {i} of {args.runs} (a fresh process) ...", flush=True)
            out = Path(tmp) / f"run{i}.json"
            subprocess.run(
                [sys.executable, "-m", "mmr_gym.cli", "bench", *argv, "--out", str(out)], check=True
            )
            runs.append(json.loads(out.read_text(encoding="utf-8")))
    return {"runs": runs, "summary": summarize_runs(runs)}


def main(argv: Sequence[str] | None = None) -> int:
    """Stand-alone entry point (``python benchmarks/bench_env.py``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run_from_args(parser.parse_args(argv))
