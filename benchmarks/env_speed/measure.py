"""The benchmark's sections, each against CartPole measured in the same run, and the project's speed bars.

The single environment, the native vector environment at several sizes (and its variants), the SB3
adapter against ``DummyVecEnv``; then what bounds a step on this machine (copying the observations,
drawing the streams) and the memory environments take. :func:`run_benchmark` returns plain data.
"""

from __future__ import annotations

import os
import platform
import tracemalloc
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from benchmarks.env_speed.timing import (
    calls_per_second,
    interleaved,
    sb3_runner,
    single_runner,
    vector_runner,
)
from mmr_gym.provenance import provenance

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
# The project's speed bars: (section, num_envs) -> minimum ratio to the peer. The default and the
# per-env vector envs keep the first version's bar (1.0); the lean variant, what a training loop
# steps, has 0.9.
BARS = {
    ("single", 1): 0.5,
    ("vector", 1024): 1.0,
    **{(section, 1024): 1.0 for section in VECTOR_VARIANTS},
    ("vector-lean", 1024): 0.9,
    ("sb3", 64): 5.0,
}


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
    copy_rate = calls_per_second(lambda: np.copyto(target, big), seconds) * big.nbytes  # bytes/s
    rows = np.random.default_rng(0).choice(ctx.table.n_queries, num_envs)
    gathers = calls_per_second(
        lambda: (ctx.query_obs.take(rows, axis=0), ctx.model_costs_obs.take(rows, axis=0)), seconds
    )
    rng = np.random.default_rng(0)
    n_split, length = ctx.split_indices.size, env.episode_length
    draws = calls_per_second(lambda: rng.choice(n_split, length, replace=False), seconds)
    batch = 1024  # as the batched pool draws them
    batched = batch * calls_per_second(lambda: draw_distinct_rows(rng, n_split, length, batch), seconds)
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
    """Measure every section and return the results as plain data (see :func:`benchmarks.env_speed.report.format_markdown`)."""
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
    best = interleaved(
        {"ours": single_runner(ours, k, masked=True), "peer": single_runner(peer, 2, masked=False)},
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
            runs[section] = vector_runner(ours, k, masked=True, starts=starts[section])
        peer = gym.make_vec(PEER_ID, num_envs=n, vectorization_mode="vector_entry_point")
        runs["peer"] = vector_runner(peer, 2, masked=False)
        best = interleaved(runs, seconds, repeats)  # every variant against the same peer
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
        best = interleaved({"ours": sb3_runner(adapter, k), "peer": sb3_runner(dummy, k)}, seconds, repeats)
        record("sb3", n, best["ours"] * n, best["peer"] * n, "SB3VecEnvAdapter", "DummyVecEnv(gym.make)")
        from sb3_contrib.common.maskable.utils import get_action_masks

        mask_fetch[n] = {
            "adapter_calls_per_s": calls_per_second(lambda a=adapter: get_action_masks(a), seconds / 4),
            "dummy_calls_per_s": calls_per_second(lambda d=dummy: get_action_masks(d), seconds / 4),
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
