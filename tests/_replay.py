"""The replay step of the leak tests: what an agent saw before acting, seen again in a rewritten world."""

from __future__ import annotations

from typing import Any

import numpy as np


def assert_sees_the_same(other: Any, actions: list[int], obs: dict, info: dict, **reset: Any) -> int:
    """Reset ``other`` (``reset``: its arguments), replay ``actions``, and assert that it shows the
    observation ``obs`` and the mask of ``info`` the original environment showed after them; return
    the next action, the cheapest affordable model as the original shows it."""
    obs_b, info_b = other.reset(**reset)
    for action in actions:
        obs_b, _, _, _, info_b = other.step(action)
    for key in obs:
        np.testing.assert_array_equal(obs[key], obs_b[key])
    np.testing.assert_array_equal(info["action_mask"], info_b["action_mask"])
    return int(np.argmin(np.where(info["action_mask"], obs["model_costs"], np.inf)))
