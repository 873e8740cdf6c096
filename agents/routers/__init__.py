"""Supervised routers: MMR-Bench's families, each predicting every model's performance and cost per query.

A router is fitted with full information (every model's outcome on every training query) and then
predicts, for new queries, ``perf`` (expected correctness, in [0, 1] up to the model's fit) and
``cost`` (expected cost per call, in the table's cost unit) for all ``K`` models. Two ways to use one:

- the paper's per-query threshold protocol:
  ``threshold_result(name, env, *router.predict(X_eval))`` (:mod:`mmr_gym.evaluate`);
- as a sequential policy under a budget: ``PacedPolicy(router)`` (:mod:`agents.pacing`).

The families follow the reference implementation (``Hunter-Wrynn/MMR-Bench``,
``src/mmrbench/routers``), on the environment's query features (``env.ctx.query_obs``: per channel
standardised with training statistics and concatenated, where the reference averages CLIP text and
image embeddings). :func:`fit_router` fits one on an environment's training split.

Modules: :mod:`~agents.routers.base` (the interface), :mod:`~agents.routers.inputs` (what each
family fits on), :mod:`~agents.routers.linear`, :mod:`~agents.routers.neighbours`,
:mod:`~agents.routers.neural` (the families), :mod:`~agents.routers.selection` (``"auto"``).
"""

from __future__ import annotations

from typing import Any

from agents.routers.base import Router, channel_dims
from agents.routers.linear import LinearMFRouter, LinearRouter
from agents.routers.neighbours import KMeansRouter, KNNRouter
from agents.routers.neural import CMRRouter, MLPMFRouter, MLPRouter
from agents.routers.selection import FAMILIES, AutoRouter
from mmr_gym.env import MMRRoutingEnv

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

ROUTERS: dict[str, type[Router]] = {**FAMILIES, "auto": AutoRouter}
"""Routers by name: the paper's families (:data:`FAMILIES`) and ``"auto"``, the family and settings
chosen by cross-validation on the training split (:class:`~agents.routers.selection.AutoRouter`)."""


def fit_router(name: str, env: MMRRoutingEnv, **kwargs: Any) -> Router:
    """Fit the router ``ROUTERS[name]`` on ``env``'s training split, with full information.

    ``X = env.ctx.query_obs[env.ctx.train_indices]`` (exactly what the environment shows as
    ``obs["query"]``), targets the table's ``correct`` and ``cost`` for those rows, so the fitted
    router scores the environment's observations; the environment's feature scaling goes with them,
    so a family that wants other inputs (:mod:`agents.routers.inputs`) can map them back. ``kwargs`` go to the router's constructor (e.g.
    ``seed``) and override what is derived from the environment (CMR's ``channel_dims``).
    """
    if name not in ROUTERS:
        raise ValueError(f"unknown router {name!r}; choose from {sorted(ROUTERS)}")
    ctx = env.unwrapped.ctx
    cls = ROUTERS[name]
    rows = ctx.train_indices
    router = cls(**{**cls.env_kwargs(ctx), **kwargs})
    return router.fit(
        ctx.query_obs[rows], ctx.table.correct[rows], ctx.table.cost[rows], scaling=ctx.feature_scaling
    )
