"""The ``mmr-gym`` command. Each subcommand lives in its own module; this file only dispatches."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from mmr_gym import bench


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

    args = parser.parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    raise SystemExit(main())
