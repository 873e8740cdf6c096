"""The ``mmr-gym`` command. Each subcommand lives in its own module; this file only dispatches."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from mmr_gym import bench, prepare


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` (default: the command line) and run the chosen subcommand; return its exit code."""
    parser = argparse.ArgumentParser(
        prog="mmr-gym", description="Budgeted multimodal LLM routing environments."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    bench_parser = commands.add_parser(
        "bench", help="steps per second and memory, against CartPole", description=bench.__doc__
    )
    bench.add_arguments(bench_parser)
    bench_parser.set_defaults(handler=bench.run_from_args)

    # prepare has its own parser (a subcommand per dataset): it gets every word after "prepare".
    commands.add_parser(
        "prepare",
        help="build a real outcome table (MATH-V, the MMR-Bench hub data, any CSV or call log) once, with features",
    )
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["prepare"]:
        return prepare.main(argv[1:])

    args = parser.parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    raise SystemExit(main())
