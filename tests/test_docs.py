"""Every Python block of the README, of the docs pages and of MMRRoutingEnv's docstring runs as it stands.

Each distinct block runs once, alone: in a fresh namespace and a fresh working directory, so a
block that leans on an earlier one fails. A block that reads MATH-V runs where the real copy is
beside the checkout (``../shared/data/math-v``) and is skipped elsewhere.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from _docs import ROOT, Block, python_blocks

MATH_V = ROOT.parent / "shared" / "data" / "math-v"
NEEDS_MATH_V = ("load_math_v(", 'dataset="math-v"')


def _check_sb3_example(namespace: dict[str, Any], cwd: Path) -> None:
    names = [r.name for r in namespace["results"]]
    assert names == ["MaskablePPO", "Random", "BestSingle"]
    assert (cwd / "runs" / "sb3-example" / "results.md").is_file()
    assert (cwd / "runs" / "sb3-example" / "pareto.png").is_file()


def _check_production_log(namespace: dict[str, Any], cwd: Path) -> None:
    assert (cwd / "production-log.parquet").is_file()
    assert len(namespace["log"]) == 10_000


def _check_verdict(namespace: dict[str, Any], cwd: Path) -> None:
    assert namespace["result"].verdict() in {"better", "worse", "undecided"}


# What some blocks must leave behind, beyond running: found by a line of their code.
EXPECTATIONS: dict[str, Callable[[dict[str, Any], Path], None]] = {
    'write_report(results, "runs/sb3-example")': _check_sb3_example,
    'log.to_parquet("production-log.parquet")': _check_production_log,
    'result = compare(log, candidate, PacedPolicy(incumbent), "dr"': _check_verdict,
}

BLOCKS = python_blocks()


@pytest.fixture(autouse=True)
def _torch_threads_restored():
    """A block may set torch's thread count (as the SB3 example does): the tests after it keep theirs."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def test_the_pages_have_python_blocks_and_the_checks_find_theirs():
    places = [b.source for blocks in BLOCKS.values() for b in blocks]
    for source in ("README.md", "docs/getting-started.md", "docs/ope.md", "mmr_gym/env.py:MMRRoutingEnv"):
        assert source in places, f"no Python block found in {source}"
    assert len(BLOCKS) >= 30
    for marker in EXPECTATIONS:  # a check whose block was edited away would check nothing
        assert any(marker in code for code in BLOCKS), f"no block holds {marker!r}"


@pytest.mark.parametrize(
    "code", list(BLOCKS), ids=[" = ".join(b.where for b in blocks) for blocks in BLOCKS.values()]
)
def test_python_block_runs_alone(code: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocks: list[Block] = BLOCKS[code]
    if any(marker in code for marker in NEEDS_MATH_V):
        if not (MATH_V / "data" / "test.jsonl").is_file():
            pytest.skip(f"needs the real MATH-V copy at {MATH_V}")
        monkeypatch.setenv("MMR_GYM_MATH_V", str(MATH_V))
    monkeypatch.chdir(tmp_path)  # blocks write runs/..., logs, tables
    namespace: dict[str, Any] = {"__name__": "__main__"}
    with warnings.catch_warnings():
        warnings.simplefilter(
            "ignore"
        )  # e.g. off-policy evaluation's small-sample warnings, part of its story
        # Padded so that a traceback gives the line of the page.
        exec(compile("\n" * blocks[0].line + code, blocks[0].source, "exec"), namespace)
    for marker, check in EXPECTATIONS.items():
        if marker in code:
            check(namespace, tmp_path)
