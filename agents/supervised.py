"""Supervised routers (the paper's families and the cross-validated choice among them).

The code lives in the package :mod:`agents.routers`, one module per concept; this module keeps the
names importable from ``agents.supervised``.
"""

from __future__ import annotations

from agents.routers import (
    FAMILIES,
    ROUTERS,
    AutoRouter,
    CMRRouter,
    KMeansRouter,
    KNNRouter,
    LinearMFRouter,
    LinearRouter,
    MLPMFRouter,
    MLPRouter,
    Router,
    channel_dims,
    fit_router,
)

__all__ = [
    "FAMILIES",
    "ROUTERS",
    "AutoRouter",
    "CMRRouter",
    "KMeansRouter",
    "KNNRouter",
    "LinearMFRouter",
    "LinearRouter",
    "MLPMFRouter",
    "MLPRouter",
    "Router",
    "channel_dims",
    "fit_router",
]
