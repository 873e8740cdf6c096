"""Speed and memory of the MMRRouting environments, against CartPole measured in the same run.

What is timed is ``step`` (with the resets it triggers) and nothing else: actions are drawn
outside the timed region, uniformly among the affordable models by rejection from a
precomputed pool of uniform model indices (exact for uniform-over-affordable, a few array
operations per batch). Each figure is the best of ``repeats`` interleaved runs of at least
``seconds`` each, so a busy machine slows both sides of a ratio alike.

Run it from a source checkout as ``python benchmarks/bench_env.py`` or ``mmr-gym bench``. ``--runs N``
repeats the whole benchmark in N fresh processes, one after another, and reports each comparison's
ratio in every run and in how many runs it met its bar: on a shared machine one run's verdict is at
the mercy of the noise (the same code's ratio moved by a third between runs on the project's machine).
Its parts are in :mod:`benchmarks.env_speed`.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

if not __package__:  # run as a script: the checkout's root, so that the package `benchmarks` imports
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.env_speed.measure import (
    SB3_SIZES,
    VARIANT_SIZES,
    VECTOR_SIZES,
    VECTOR_VARIANTS,
    run_benchmark,
)
from benchmarks.env_speed.report import (
    format_markdown,
    format_summary_markdown,
    summarize_runs,
    write_results,
)


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
    """``args.runs`` single runs, each in a fresh process (this script), one after another.

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
                [sys.executable, str(Path(__file__).resolve()), *argv, "--out", str(out)], check=True
            )
            runs.append(json.loads(out.read_text(encoding="utf-8")))
    return {"runs": runs, "summary": summarize_runs(runs)}


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    """Entry point of ``python benchmarks/bench_env.py`` and of ``mmr-gym bench`` (``prog``: its name in help)."""
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run_from_args(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
