"""The parts of the environment speed benchmark (``benchmarks/bench_env.py``, ``mmr-gym bench``).

:mod:`~benchmarks.env_speed.timing` times ``step`` calls and draws the actions outside the timed
region, :mod:`~benchmarks.env_speed.measure` measures every section against CartPole in the same run
(and holds the project's speed bars), :mod:`~benchmarks.env_speed.report` writes the results.
"""
