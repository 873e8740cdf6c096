"""The code blocks of the README, of the docs pages and of the environment's docstring (for the docs tests)."""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
ENV_DOCSTRING = "mmr_gym/env.py:MMRRoutingEnv"  # how blocks of the class docstring are named
FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```[ \t]*$", flags=re.M | re.S)


@dataclass(frozen=True)
class Block:
    """One fenced code block: where it is (file and line of its opening fence), its language, its code."""

    source: str
    line: int
    language: str
    code: str

    @property
    def where(self) -> str:
        return f"{self.source}:{self.line}"


def blocks_of(text: str, source: str) -> list[Block]:
    """Every fenced code block of a Markdown text."""
    return [
        Block(source, text.count("\n", 0, m.start()) + 1, m.group(1), m.group(2))
        for m in FENCE.finditer(text)
    ]


def pages() -> list[Path]:
    """The README and every page of the docs site."""
    return [README, *sorted(DOCS.rglob("*.md"))]


def env_docstring() -> str:
    """``MMRRoutingEnv``'s class docstring, dedented (what the environment page renders)."""
    from mmr_gym.env import MMRRoutingEnv

    return inspect.cleandoc(MMRRoutingEnv.__doc__ or "")


def all_blocks() -> list[Block]:
    """The code blocks of every page and of the environment's docstring."""
    found = []
    for page in pages():
        found += blocks_of(page.read_text(encoding="utf-8"), page.relative_to(ROOT).as_posix())
    return found + blocks_of(env_docstring(), ENV_DOCSTRING)


def python_blocks() -> dict[str, list[Block]]:
    """The Python blocks, each distinct code once (keyed by it), with every place it appears."""
    grouped: dict[str, list[Block]] = {}
    for block in all_blocks():
        if block.language == "python":
            grouped.setdefault(block.code, []).append(block)
    return grouped
