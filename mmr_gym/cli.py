"""The ``mmr-gym`` command. Each subcommand lives in its own module; this file only dispatches."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

from mmr_gym import prepare

BENCH_SCRIPT = Path("benchmarks") / "bench_env.py"


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` (default: the command line) and run the chosen subcommand; return its exit code."""
    parser = argparse.ArgumentParser(
        prog="mmr-gym", description="Budgeted multimodal LLM routing environments."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    # Each has its own parser and gets every word after its name.
    commands.add_parser(
        "bench",
        help=f"steps per second and memory, against CartPole ({BENCH_SCRIPT} of a source checkout)",
    )
    commands.add_parser(
        "prepare",
        help="build a real outcome table (MATH-V, the MMR-Bench hub data, any CSV or call log) once, with features",
    )
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["prepare"]:
        return prepare.main(argv[1:])
    if argv[:1] == ["bench"]:
        return bench_module().main(argv[1:], prog="mmr-gym bench")

    parser.parse_args(argv)  # --help, or no or an unknown subcommand: argparse exits with the message
    parser.error(f"unexpected arguments {argv}")


def source_checkout() -> Path:
    """The directory this ``mmr_gym`` package sits in: a source checkout when run from one or installed
    editable (``pip install -e .``), ``site-packages`` when installed from a wheel."""
    return Path(__file__).resolve().parents[1]


def bench_module() -> ModuleType:
    """The environment benchmark, ``benchmarks/bench_env.py`` of the source checkout.

    Benchmarks are not part of the library, so a wheel does not ship them: without a checkout this
    exits with a message that says where to run the benchmark from.
    """
    root = source_checkout()
    script = root / BENCH_SCRIPT
    if not script.is_file():
        raise SystemExit(
            f"mmr-gym bench runs {BENCH_SCRIPT.as_posix()} of a source checkout of mmr-gym, and this "
            f"installation has none (mmr_gym is installed in {root}): clone the repository and run "
            f"`python {BENCH_SCRIPT.as_posix()}` there, or `pip install -e .` from it"
        )
    if sys.path[:1] != [str(root)]:
        sys.path.insert(0, str(root))  # the checkout's `benchmarks` package, before any other of that name
    module = importlib.import_module("benchmarks.bench_env")
    if Path(module.__file__ or "").resolve() != script:
        raise SystemExit(f"mmr-gym bench: imported {module.__file__} instead of {script}")
    return module


if __name__ == "__main__":
    raise SystemExit(main())
