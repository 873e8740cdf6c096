"""The README and the docs pages: their shape, their links, and the shell commands they show.

Every command of a shell block is checked without running it: ``python train.py ...``,
``python benchmarks/...``, ``python -m ...`` and ``mmr-gym ...`` must parse with the real argument
parser (stopped right after parsing), ``make X`` must be a target of the Makefile, and
``pip install -e ".[extra]"`` must name extras of pyproject.toml.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import re
import shlex
from collections.abc import Callable
from typing import Any

import pytest
from _docs import DOCS, README, ROOT, all_blocks, env_docstring, pages

# Gymnasium's environment pages, in their order (CartPole's docstring and the others).
GYMNASIUM_SECTIONS = (
    "Description",
    "Action Space",
    "Observation Space",
    "Rewards",
    "Starting State",
    "Episode End",
    "Arguments",
)
# Commands a page may show that are not ours to check.
UNCHECKED = ("tensorboard",)
SHELL = ("bash", "sh", "shell")


def readme_lines() -> list[str]:
    return README.read_text(encoding="utf-8").splitlines()


def test_the_readme_opens_with_the_two_setup_commands():
    lines = readme_lines()
    assert lines[0].startswith("# ")
    body = [line for line in lines[1:] if line.strip()]
    assert body[0] == "```bash", "the README's first content must be the set-up commands"
    commands = body[1 : body.index("```", 1)]
    assert [shlex.split(c, comments=True) for c in commands] == [["make", "run"], ["make", "test"]]


def test_the_readme_is_short_and_has_what_a_user_needs():
    text = README.read_text(encoding="utf-8")
    assert len(readme_lines()) <= 200
    for heading in ("## Quickstart", "## Works with", "## Documentation", "## Development"):
        assert heading in text
    sb3 = next(b.code for b in all_blocks() if b.source == "README.md" and "MaskablePPO(" in b.code)
    for name in ("SB3Policy(", "evaluate_policy(", "write_report(", "sb3_contrib"):
        assert name in sb3, f"the README's SB3 example lacks {name}"
    for diary in ("evening", "slow day", "quiet day", "earlier session"):  # figures live in docs/results.md
        assert diary not in text.lower()


def test_the_development_section_holds_the_one_home_per_concept_table():
    text = README.read_text(encoding="utf-8")
    development = text[text.index("## Development") :]
    table = re.search(r"\[start:concepts\] -->\n(.*?)<!-- --8<-- \[end:concepts\]", development, flags=re.S)
    assert table, "the concepts table (between its snippet markers) must be in the Development section"
    rows = [line for line in table.group(1).splitlines() if line.startswith("| ") and "`" in line]
    assert len(rows) >= 10
    for row in rows:
        for path in re.findall(r"`((?:mmr_gym|agents)/[\w/.]*)`", row.split("|")[2]):
            assert (ROOT / path).exists(), f"the concepts table names {path}, which does not exist"
    assert '--8<-- "README.md:concepts"' in (DOCS / "development.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("page", pages(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_relative_links_point_to_files_that_exist(page):
    text = page.read_text(encoding="utf-8")
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+://", target) or target.startswith("#"):
            continue
        path = (page.parent / target.split("#", 1)[0]).resolve()
        assert path.exists(), f"{page.name} links to {target}, which does not exist"


def test_the_environment_page_renders_the_docstring_in_gymnasiums_sections():
    page = (DOCS / "environment.md").read_text(encoding="utf-8")
    assert "::: mmr_gym.env.MMRRoutingEnv" in page  # mkdocstrings renders the docstring itself
    doc = env_docstring()
    headings = re.findall(r"^## (.+)$", doc, flags=re.M)
    found = [h for h in headings if h in GYMNASIUM_SECTIONS]
    assert found == list(GYMNASIUM_SECTIONS), headings
    from mmr_gym.env import MMRRoutingEnv

    arguments = doc[doc.index("## Arguments") :]
    for name in inspect.signature(MMRRoutingEnv.__init__).parameters:
        if name != "self":
            assert re.search(rf"^    {name}:", arguments, flags=re.M), f"argument {name} is not documented"


# ----------------------------------------------------------------------------- shell commands
class _Parsed(Exception):
    """Raised by the patched parse_args once the arguments parsed: nothing after it runs."""


def _entry_point(words: list[str]) -> tuple[Callable[[list[str]], Any], list[str]]:
    """The ``main`` a command line runs, and its arguments."""
    if words[0] == "mmr-gym":
        return importlib.import_module("mmr_gym.cli").main, words[1:]
    if words[:2] == ["python", "-m"]:
        return importlib.import_module(words[2]).main, words[3:]
    if words[0] == "python" and words[1].endswith(".py"):
        module = words[1].removesuffix(".py").replace("/", ".")
        return importlib.import_module(module).main, words[2:]
    raise AssertionError(f"no check for the command {' '.join(words)!r}: add one")


def _makefile_targets() -> set[str]:
    text = (ROOT / "Makefile").read_text(encoding="utf-8")
    return set(re.findall(r"^([\w-]+):", text, flags=re.M))


def _extras() -> set[str]:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+; the package supports 3.10
    with open(ROOT / "pyproject.toml", "rb") as f:
        return set(tomllib.load(f)["project"]["optional-dependencies"])


COMMANDS = [
    (block.where, line)
    for block in all_blocks()
    if block.language in SHELL
    for line in block.code.splitlines()
    if shlex.split(line, comments=True)
]


def test_the_pages_show_commands():
    assert len(COMMANDS) >= 20


@pytest.mark.parametrize("where, line", COMMANDS, ids=[f"{w} {c.split('#')[0].strip()}" for w, c in COMMANDS])
def test_shell_command_is_valid(where: str, line: str, monkeypatch: pytest.MonkeyPatch) -> None:
    words = shlex.split(line, comments=True)
    if words[0] in UNCHECKED:
        return
    if words[0] == "make":
        targets = [w for w in words[1:] if "=" not in w]
        assert set(targets) <= _makefile_targets(), f"{where}: no Makefile target {targets}"
        return
    if words[:2] == ["pip", "install"]:
        for spec in words[2:]:
            extras = re.fullmatch(r"\.(?:\[([\w,-]+)\])?", spec)
            if extras and extras.group(1):
                assert set(extras.group(1).split(",")) <= _extras(), f"{where}: unknown extra in {spec}"
        return
    main, argv = _entry_point(words)
    original = argparse.ArgumentParser.parse_args

    def parse_then_stop(self, args=None, namespace=None):
        raise _Parsed(original(self, args, namespace))

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", parse_then_stop)
    try:
        main(argv)
    except _Parsed:
        return
    except SystemExit as exc:
        pytest.fail(f"{where}: {line.strip()!r} does not parse (exit {exc.code})")
    pytest.fail(f"{where}: {line.strip()!r} ran without parsing its arguments")
