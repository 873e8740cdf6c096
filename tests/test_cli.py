"""The ``mmr-gym`` console script dispatches to its subcommands."""

from __future__ import annotations

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
