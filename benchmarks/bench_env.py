"""Steps per second and memory of the MMRRouting environments, against CartPole in the same run.

Same as ``mmr-gym bench``; see :mod:`mmr_gym.bench` for what is measured and how.
Usage: ``python benchmarks/bench_env.py [--out results.md|results.json] [--seconds 1] ...``
"""

from __future__ import annotations

from mmr_gym.bench import main

if __name__ == "__main__":
    raise SystemExit(main())
