"""mmr-gym: Gymnasium environments for budgeted multimodal LLM routing.

``import mmr_gym`` registers the environments (idempotently)::

    import gymnasium as gym
    import mmr_gym

    env = gym.make("MMRRouting-v0")  # the bundled simulated table, works offline
"""

from __future__ import annotations

from mmr_gym.datasets import load_table
from mmr_gym.registration import ENV_IDS, register_envs
from mmr_gym.table import RoutingTable

__all__ = ["ENV_IDS", "RoutingTable", "load_table", "register_envs"]
__version__ = "0.1.0"

register_envs()
