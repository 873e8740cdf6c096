"""How many CPU threads torch uses while agents train and act (one is the fast path here).

The networks of these agents are small (two layers of 64 units; batches of a few hundred rows).
torch's intra-op threads then cost more in synchronisation than they save, and on a machine whose
cores are busy with other work they wait on each other: on this project's 2-core machine, with
other jobs running, MaskablePPO on ``gym.make("MMRRouting-v0")`` trained 4,096 steps in 7 to 12 s
with one thread and in 128 to 194 s with torch's default of two (one measurement, one process;
run ``python -m agents.rl.threads`` to measure yours).

The thread count also changes the results: two threads train other weights than one (float sums
in another order), so one thread everywhere is also what makes a seeded run repeat from one machine
to another (``tests/test_rl_repeat.py``).

Nothing here changes torch on import. :func:`torch_threads` sets the count for a block and puts the
caller's back afterwards; :func:`~agents.rl.train_agent`, ``train.py`` (``--torch-threads``) and the
benchmarks use one thread by default, and the environments warn once when built while torch runs on
several (:mod:`mmr_gym.threads`). For a script of your own::

    from agents.rl import torch_threads
    with torch_threads(1):
        model = MaskablePPO("MultiInputPolicy", env).learn(200_000)

or ``torch.set_num_threads(1)`` at its top, or ``OMP_NUM_THREADS=1`` in its environment.
"""

from __future__ import annotations

import argparse
import contextlib
import time
from collections.abc import Iterator

import torch


@contextlib.contextmanager
def torch_threads(n: int | None = 1) -> Iterator[int]:
    """Run the block with ``n`` torch CPU (intra-op) threads, then restore the caller's count.

    Args:
        n: threads for the block; ``None`` leaves torch as it is (for callers that pass a user's
            choice through).

    Yields:
        The thread count in force inside the block.
    """
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
        raise ValueError(f"torch_threads: n must be a positive int or None, got {n!r}")
    previous = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(previous)


def _measure(argv: list[str] | None = None) -> None:
    """Time MaskablePPO on gym.make("MMRRouting-v0") with one thread and with torch's default, alternately."""
    import gymnasium as gym
    from sb3_contrib import MaskablePPO

    import mmr_gym  # noqa: F401  (registers the environments)

    parser = argparse.ArgumentParser(prog="python -m agents.rl.threads", description=_measure.__doc__)
    parser.add_argument("--timesteps", type=int, default=4096, help="training steps per measurement")
    parser.add_argument("--rounds", type=int, default=2, help="measurements per thread count")
    args = parser.parse_args(argv)
    default = torch.get_num_threads()
    print(f"torch {torch.__version__}, default threads {default}; {args.timesteps:,} MaskablePPO steps each")
    for _ in range(args.rounds):
        for n in dict.fromkeys((default, 1)):
            env = gym.make("MMRRouting-v0", budget_ratio=(0.02, 1.5))
            with torch_threads(n):
                model = MaskablePPO("MultiInputPolicy", env, seed=0, policy_kwargs={"net_arch": [64, 64]})
                started = time.perf_counter()
                model.learn(args.timesteps)
            print(f"  {n} thread{'s' if n > 1 else ''}: {time.perf_counter() - started:.1f} s", flush=True)


if __name__ == "__main__":
    _measure()
