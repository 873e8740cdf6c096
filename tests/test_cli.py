"""The ``mmr-gym`` console script dispatches to its subcommands."""

from __future__ import annotations

import types

import pytest

from mmr_gym import cli


def test_help_lists_the_subcommands(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "bench" in out and "prepare" in out


def test_prepare_gets_every_word_after_it(monkeypatch):
    seen = []
    monkeypatch.setattr(cli.prepare, "main", lambda argv: seen.append(argv) or 0)
    assert cli.main(["prepare", "math-v", "--root", "somewhere", "--help"]) == 0
    assert seen == [["math-v", "--root", "somewhere", "--help"]]


def test_unknown_subcommand_is_an_error():
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["train-everything"])
    assert exit_info.value.code == 2


def test_bench_runs_the_benchmark_of_the_source_checkout(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["bench", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: mmr-gym bench") and "--runs" in out and "against CartPole" in out


def test_bench_gets_every_word_after_it(monkeypatch):
    seen = []
    benchmark = types.SimpleNamespace(main=lambda argv, prog: seen.append((argv, prog)) or 0)
    monkeypatch.setattr(cli, "bench_module", lambda: benchmark)
    assert cli.main(["bench", "--runs", "3", "--out", "bench.md"]) == 0
    assert seen == [(["--runs", "3", "--out", "bench.md"], "mmr-gym bench")]


def test_bench_without_a_source_checkout_says_where_to_run_it(monkeypatch, tmp_path):
    # As installed from a wheel: the package sits in site-packages, with no benchmarks beside it.
    monkeypatch.setattr(cli, "source_checkout", lambda: tmp_path / "site-packages")
    with pytest.raises(SystemExit, match="of a source checkout of mmr-gym") as exit_info:
        cli.main(["bench"])
    assert "python benchmarks/bench_env.py" in str(exit_info.value.code)


@pytest.mark.parametrize("dataset", ["math-v", "mmr-bench", "csv"])
def test_each_prepare_subcommand_describes_itself(capsys, dataset):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["prepare", dataset, "--help"])
    assert exit_info.value.code == 0
    usage, _, rest = capsys.readouterr().out.partition("\n\n")
    assert usage.startswith(f"usage: mmr-gym prepare {dataset}")
    description = rest.split("\n\n")[0]
    assert len(description.split()) >= 10 and not description.startswith(("positional", "options")), rest
