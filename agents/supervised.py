"""Supervised routers (the paper's families and the cross-validated choice among them).

The code lives in the package :mod:`agents.routers`, one module per concept; this module keeps the
names importable from ``agents.supervised``.
"""

from __future__ import annotations

from agents.routers import *  # noqa: F403  (the same names, from their home)
from agents.routers import __all__  # noqa: F401
