"""The agents that face a changing world (:mod:`mmr_gym.scenarios`), built alike wherever one is run.

``train.py --scenario`` and ``benchmarks/bench_scenarios.py`` compare a router that never adapts
with agents that learn the world as it changes. All start from LinearMF fitted on the training
split and are told only the models that exist when the world starts (:func:`models_at_start`): a
router fitted before the deployment never saw a model that arrives later. A :class:`Deployment`
holds what they are built from; :data:`SCENARIO_AGENTS` names each agent, says what it is, and
builds it; :func:`rl_router_policy` wraps a trained ``rl-router`` alike.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from agents.adaptive import ADAPTIVE_BANDITS, adaptive_bandit
from agents.adaptive_pacing import AdaptivePacedPolicy
from agents.bandits import paced_bandit
from agents.pacing import PacedPolicy
from mmr_gym.env import MMRRoutingEnv
from mmr_gym.policy import Policy


@dataclass(frozen=True)
class Deployment:
    """What every scenario agent is built from."""

    train_env: MMRRoutingEnv  # the training split: fits and warm starts
    router: Any  # LinearMF fitted on it
    known: list[str]  # the models that exist at time 0 (a static router never knew the others)
    seed: int  # the seed of the stream lanes it will answer (for learners that draw)


#: A deployment -> a maker of fresh policies (one per stream lane: each is one deployment).
Builder = Callable[[Deployment], Callable[[], Policy]]


def models_at_start(model_names: Sequence[str], world: Any) -> list[str]:
    """The models of ``model_names`` that can be called at time 0 of ``world`` (a compiled
    :class:`~mmr_gym.scenarios.World`; None, no scenario: all of them)."""
    if world is None:
        return list(model_names)
    return [m for m, a in zip(model_names, world.available[0], strict=True) if a]


def _forgetting(name: str, anchored: bool = True) -> Builder:
    """A forgetting learner in the adaptive pacing: on LinearMF's residual, or on its own ridge warm start."""

    def build(d: Deployment) -> Callable[[], Policy]:
        base = d.router if anchored else None
        return lambda: adaptive_bandit(name, d.train_env, models=d.known, base=base, seed=d.seed)

    return build


#: Agent name -> (what it is, its builder).
SCENARIO_AGENTS: dict[str, tuple[str, Builder]] = {
    "static": (
        "Paced-LinearMF told only the models known at time 0 (the static reference of a scenario)",
        lambda d: lambda: PacedPolicy(d.router, models=d.known),
    ),
    "adaptive-pacing": (
        "LinearMF in pacing that learns realized prices, availability and the recent traffic",
        lambda d: lambda: AdaptivePacedPolicy(d.router, models=d.known),
    ),
    **{
        name: (
            f"{name} bandit learning LinearMF's residual, forgetting, in the adaptive pacing",
            _forgetting(name),
        )
        for name in ADAPTIVE_BANDITS
    },
    "linucb-discounted-ridge": (
        "linucb-discounted on its own ridge warm start (not LinearMF's residual), in the adaptive pacing",
        _forgetting("linucb-discounted", anchored=False),
    ),
    "linucb-warm": (
        "LinUCB warm-started on the training split, never forgetting, in budget pacing",
        lambda d: (
            lambda: paced_bandit(
                "linucb", d.train_env, warm_start=True, seed=d.seed, pacing={"models": d.known}
            )
        ),
    ),
}


def rl_router_policy(model: Any, deployment: Deployment) -> Callable[[], Policy]:
    """A maker of ``rl-router`` policies: the trained ``model`` (:func:`agents.rl.adaptive.train_router_agent`)
    on the observation plus the deployment's router's predictions, told which models it knew."""
    from agents.rl.adaptive import RouterFeaturePolicy  # torch: only when an RL agent is asked for

    known = [m in deployment.known for m in deployment.train_env.model_names]
    return lambda: RouterFeaturePolicy(model, deployment.router, known=known)
