"""Registration of the environment ids with Gymnasium (idempotent; runs on ``import mmr_gym``)."""

from __future__ import annotations

import gymnasium as gym

# id -> keyword presets. Every id shares one entry point (and one native vectorized entry point,
# used by ``gym.make_vec``); presets only fix the observation form.
ENV_IDS: dict[str, dict] = {
    "MMRRouting-v0": {},
    "MMRRoutingFlat-v0": {"observation": "flat"},
}


def register_envs() -> None:
    """Register every id in :data:`ENV_IDS` that Gymnasium does not know yet."""
    for env_id, kwargs in ENV_IDS.items():
        if env_id in gym.registry:
            continue
        gym.register(
            id=env_id,
            entry_point="mmr_gym.env:MMRRoutingEnv",
            vector_entry_point="mmr_gym.vector:MMRRoutingVectorEnv",
            kwargs=dict(kwargs),
        )
