"""A Griffe extension for the docs build: the docstrings' Sphinx markup, as Markdown.

The code's docstrings are Google style with Sphinx roles (``:class:`~mmr_gym.env.MMRRoutingEnv```)
and reST literal markers (``Typical use::``), which ``help()`` reads well and Markdown does not.
This rewrites them, for the rendered pages only: a role becomes inline code of its target (the last
component with ``~``, as Sphinx shows it), and a paragraph's closing ``::`` a single colon.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

ROLE = re.compile(r":(?:py:)?(?:class|func|meth|mod|data|attr|exc|obj|const):`(~?)([^`]+)`")
LITERAL_MARKER = re.compile(r"(\S)::$", flags=re.M)


def _role(match: re.Match[str]) -> str:
    short, target = match.group(1), match.group(2).strip()
    shown = target.rsplit(".", 1)[-1] if short else target
    return f"`{shown}`"


def markdown(text: str) -> str:
    """``text`` with its Sphinx roles and literal markers in Markdown."""
    return LITERAL_MARKER.sub(r"\1:", ROLE.sub(_role, text))


class SphinxRoles(griffe.Extension):
    """Rewrites every docstring of the loaded objects (see the module docstring)."""

    def on_object(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = markdown(obj.docstring.value)
