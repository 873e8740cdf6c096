"""Timing ``step``: steps per second of a runner, interleaved runs, and actions drawn outside the timing.

What is timed is ``step`` (with the resets it triggers) and nothing else: actions are drawn outside
the timed region, uniformly among the affordable models by rejection from a precomputed pool of
uniform model indices (exact for uniform-over-affordable, a few array operations per batch). Each
figure is the best of ``repeats`` interleaved runs of at least ``seconds`` each, so a busy machine
slows both sides of a ratio alike.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

_POOL = 1 << 16  # precomputed uniform actions, reused cyclically


def steps_per_second(
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


def interleaved(runs: dict[str, Callable[[int], float]], seconds: float, repeats: int) -> dict[str, float]:
    """Best steps/s of each run; the runs alternate so that machine load hits them alike."""
    best = dict.fromkeys(runs, 0.0)
    for _ in range(repeats):
        for name, run in runs.items():
            best[name] = max(best[name], max(steps_per_second(run, seconds, 1)))
    return best


def single_runner(env: Any, n_actions: int, masked: bool, seed: int = 0) -> Callable[[int], float]:
    """A runner that steps one environment (``masked``: uniform over its ``action_mask``), resetting at ends."""
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


def masked_batch_sampler(
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


def vector_runner(
    env: Any, n_actions: int, masked: bool, seed: int = 0, starts: list[float] | None = None
) -> Callable[[int], float]:
    """A runner that steps a Gymnasium vector env (it resets finished sub-environments itself).

    ``starts``, when given, accumulates ``[seconds in episode starts, seconds stepping]``.
    """
    sample = masked_batch_sampler(env.num_envs, n_actions, seed)
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


def sb3_runner(env: Any, n_actions: int, seed: int = 0) -> Callable[[int], float]:
    """A runner that steps an SB3 ``VecEnv`` with masked actions, the masks fetched as MaskablePPO does."""
    from sb3_contrib.common.maskable.utils import get_action_masks

    sample = masked_batch_sampler(env.num_envs, n_actions, seed)
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


def calls_per_second(call: Callable[[], Any], seconds: float) -> float:
    """How often ``call()`` runs per second, over at least ``seconds`` after one warm-up call."""
    call()
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        call()
        n += 1
    return n / (time.perf_counter() - start)
