"""Benchmarks of mmr-gym: scripts that print figures (speed, and quality against the paper and baselines).

They run from a source checkout (``python benchmarks/<name>.py``) and are not part of the installed
library. A package, so that tests and ``mmr-gym bench`` import the environment benchmark
(:mod:`benchmarks.bench_env`) and its parts (:mod:`benchmarks.env_speed`).
"""
