"""SB3VecEnvAdapter: the native vectorized environment as a stable-baselines3 ``VecEnv``.

stable-baselines3 trains only on its own ``VecEnv`` API, which differs from Gymnasium's
``VectorEnv``: a finished sub-environment is reset within the same ``step`` (its last observation
goes to ``info["terminal_observation"]``), ``done`` merges termination and truncation (the latter
reported as ``info["TimeLimit.truncated"]``), infos are a list of one dict per sub-environment,
rewards are float32, and seeds and options are set ahead of ``reset()``. This adapter gives
:class:`~mmr_gym.vector.MMRRoutingVectorEnv` that API without giving up its batched step: it
returns what a ``DummyVecEnv`` of :class:`~mmr_gym.env.MMRRoutingEnv` returns (seeded alike, the
same, step for step, when the vector env replays single environments: ``stream_sampling="per-env"``).

Building an adapter (or an environment) while torch uses several CPU threads warns once per
process (:class:`~mmr_gym.threads.TorchThreadsWarning`): the small networks trained on it run much
faster on one.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from itertools import repeat
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.vec_env import VecEnv
from stable_baselines3.common.vec_env.base_vec_env import VecEnvIndices, VecEnvObs, VecEnvStepReturn

from mmr_gym.records import INFO_KEYS
from mmr_gym.threads import TorchThreadsWarning, warn_if_torch_threads
from mmr_gym.vector import MMRRoutingVectorEnv, swap_first_observations

__all__ = ["SB3VecEnvAdapter", "TorchThreadsWarning", "warn_if_torch_threads"]

#: The vector environment's arguments that set_attr refuses: the episodes keep the values they were
#: built with.
CONFIG_ATTRIBUTES = (
    "episode_length",
    "budget_ratio",
    "budget_sampling",
    "cost_weight",
    "feedback",
    "observation_mode",
    "invalid_action",
    "render_mode",
    "stream_sampling",
    "autoreset_mode",
    "info_keys",
    "config",
    "ctx",
    "num_envs",
)


class SB3VecEnvAdapter(VecEnv):
    """A stable-baselines3 ``VecEnv`` over one :class:`~mmr_gym.vector.MMRRoutingVectorEnv`.

    Args:
        venv: the native vectorized environment; its sub-environments are this ``VecEnv``'s.
        info_keys: which keys of the single environment's info go into each sub-environment's
            info dict. ``None`` (default): all of them, as a ``DummyVecEnv`` of single environments
            gives. A tuple (e.g. ``("episode_metrics",)``) builds only those, which is cheaper for
            training loops that read nothing else. ``terminal_observation`` and
            ``TimeLimit.truncated`` are always there.

    ``action_masks()`` returns bool ``[num_envs, K]``; sb3-contrib's ``MaskablePPO`` reads the
    masks through ``env_method("action_masks")``, which this adapter answers in one batched call.
    ``get_attr``/``env_method`` return, for the names in ``venv.per_env_attributes``, each
    sub-environment's own entry, and for any other name the vectorized environment's value (or
    the result of one call of its method) once per requested index. ``set_attr`` sets an
    attribute of the vectorized environment, so only for all sub-environments at once.

    Episode streams follow the wrapped environment's ``stream_sampling``: with ``"batched"`` (its
    default, faster for many sub-environments) :meth:`seed` ``(s)`` seeds its one generator; with
    ``"per-env"`` the adapter matches a ``DummyVecEnv`` seeded alike, step for step.
    """

    def __init__(self, venv: MMRRoutingVectorEnv, info_keys: Sequence[str] | None = None) -> None:
        if not isinstance(venv, MMRRoutingVectorEnv):
            raise TypeError(
                f"SB3VecEnvAdapter wraps an MMRRoutingVectorEnv (gym.make_vec('MMRRouting-v0', num_envs=n)), "
                f"got {type(venv).__name__}"
            )
        if info_keys is not None:
            if isinstance(info_keys, str | bytes):
                raise TypeError(f"info_keys must be a list of info keys, got the string {info_keys!r}")
            unknown = sorted(set(info_keys) - set(INFO_KEYS) - {"action_mask"})
            if unknown:
                raise ValueError(f"unknown info_keys {unknown}; allowed: {list(INFO_KEYS)}")
        if venv.autoreset_mode is not gym.vector.AutoresetMode.NEXT_STEP:
            # The adapter makes SB3's same-step reset itself, from the native env's next-step one.
            raise ValueError(
                f"SB3VecEnvAdapter needs a vector env with autoreset_mode NEXT_STEP, got {venv.autoreset_mode}"
            )
        warn_if_torch_threads()
        self.venv = venv
        self.info_keys = None if info_keys is None else frozenset(info_keys)
        super().__init__(venv.num_envs, venv.single_observation_space, venv.single_action_space)
        self._actions: np.ndarray | None = None

    # ------------------------------------------------------------------ VecEnv API
    def reset(self) -> VecEnvObs:
        """Reset every sub-environment with the seeds of :meth:`seed` and the options of ``set_options``."""
        seeds = self._seeds if any(s is not None for s in self._seeds) else None
        options = self._options[0]
        if any(o != options for o in self._options):
            raise ValueError(
                "SB3VecEnvAdapter: the sub-environments share one reset; set_options must give every "
                f"sub-environment the same options, got {self._options}"
            )
        obs, info = self.venv.reset(seed=seeds, options=options or None)
        self._reset_seeds()
        self._reset_options()
        self.reset_infos = [{"action_mask": mask} for mask in info["action_mask"]]
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = actions

    def step_wait(self) -> VecEnvStepReturn:
        if self._actions is None:
            raise RuntimeError("step_wait() called without step_async()")
        obs, reward, terminated, truncated, info = self.venv.step(self._actions)
        self._actions = None
        dones = terminated | truncated
        infos = self._per_env_infos(info, truncated & ~terminated)
        if dones.any():
            # Same-step autoreset: the finished sub-environments start their next episode now (the
            # draws the native env's next step would make), their last observation goes to the info.
            envs, first_obs, reset_info = self.venv.reset_finished()
            terminal = swap_first_observations(obs, envs, first_obs)
            for j, i in enumerate(envs.tolist()):
                infos[i]["terminal_observation"] = terminal[j]
                self.reset_infos[i] = {"action_mask": reset_info["action_mask"][j]}
        return obs, reward.astype(np.float32), dones, infos

    def close(self) -> None:
        self.venv.close()

    def seed(self, seed: int | None = None) -> Sequence[int | None]:
        """Seeds for the next :meth:`reset`: sub-environment ``i`` gets ``seed + i`` (as in SB3's ``VecEnv``)."""
        return super().seed(seed)

    def action_masks(self) -> np.ndarray:
        """bool ``[num_envs, K]``: the affordable models of each sub-environment's current query."""
        return self.venv.action_masks()

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        value = getattr(self.venv, attr_name)
        indices = self._checked_indices(indices)
        if attr_name in self.venv.per_env_attributes and not callable(value):
            return [value[i] for i in indices]
        return [value for _ in indices]

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        if attr_name in CONFIG_ATTRIBUTES:
            # The episodes read the configuration they were built with: a new value would be shown by
            # get_attr and ignored by every step.
            raise AttributeError(
                f"set_attr({attr_name!r}): an argument of the environment, fixed at construction; make a "
                f"new one (gym.make_vec('MMRRouting-v0', {attr_name}=...)), or pass a per-episode "
                "budget with set_options({'budget_ratio': r})"
            )
        if not hasattr(self.venv, attr_name):
            raise AttributeError(f"set_attr: {type(self.venv).__name__} has no attribute {attr_name!r}")
        indices = list(self._get_indices(indices))
        if sorted(indices) != list(range(self.num_envs)):
            raise ValueError(
                f"set_attr({attr_name!r}) for sub-environments {indices}: the sub-environments of "
                "SB3VecEnvAdapter share one vectorized environment, so attributes can be set only for all"
            )
        setattr(self.venv, attr_name, value)

    def env_method(
        self, method_name: str, *method_args, indices: VecEnvIndices = None, **method_kwargs
    ) -> list[Any]:
        indices = self._checked_indices(indices)
        result = getattr(self.venv, method_name)(*method_args, **method_kwargs)
        if method_name in self.venv.per_env_attributes and result is not None:
            return [result[i] for i in indices]
        return [result for _ in indices]

    def env_is_wrapped(self, wrapper_class: type[gym.Wrapper], indices: VecEnvIndices = None) -> list[bool]:
        # Sub-environments of a native vectorized environment are not gym.Env objects to wrap.
        return [False for _ in self._get_indices(indices)]

    def get_images(self) -> Sequence[np.ndarray | None]:
        """One frame per sub-environment (``render_mode="rgb_array"``), for ``render()`` and ``VecVideoRecorder``."""
        if self.render_mode != "rgb_array":
            # DummyVecEnv's answer, for the same call
            warnings.warn(
                f"The render mode is {self.render_mode}, but this method assumes it is `rgb_array` to obtain images.",
                stacklevel=2,
            )
            return [None] * self.num_envs
        return list(self.venv.render())

    # ------------------------------------------------------------------ internals
    def _checked_indices(self, indices: VecEnvIndices) -> list[int]:
        indices = list(self._get_indices(indices))
        bad = [i for i in indices if not 0 <= i < self.num_envs]
        if bad:
            raise IndexError(
                f"sub-environment indices {bad} out of range for {self.num_envs} sub-environments"
            )
        return indices

    def _per_env_infos(self, info: dict[str, Any], time_limit: np.ndarray) -> list[dict[str, Any]]:
        """Split Gymnasium's batched info into SB3's list of per-sub-environment dicts."""
        if self.info_keys is not None:
            info = {key: value for key, value in info.items() if key.lstrip("_") in self.info_keys}
        # "TimeLimit.truncated" is in every info, as DummyVecEnv puts it.
        info = {**info, "TimeLimit.truncated": time_limit, "_TimeLimit.truncated": _ALL}
        return _unbatch(info, self.num_envs)


_ALL = np.ones(0, dtype=bool)  # marks a key every sub-environment reports


def _unbatch(info: dict[str, Any], n: int) -> list[dict[str, Any]]:
    """``[{key: info[key][i] for the keys sub-environment i reports} for i in range(n)]``.

    Values become what the single environment puts in its info: Python scalars and strings
    (via ``tolist``), array rows for array-valued keys, and dicts for nested keys. This runs
    every step for every sub-environment, so the per-sub-environment work is one ``dict(zip())``
    per (nested) dict; keys that only some report (``episode_metrics``) are built for those only.
    """
    keys: list[str] = []
    columns: list[list[Any]] = []
    partial: list[tuple[str, np.ndarray]] = []
    everyone: dict[int, bool] = {}  # the vectorized env shares one mask between keys: test it once
    for key, value in info.items():
        if key[:1] == "_":
            continue
        present = info["_" + key]
        full = everyone.get(id(present))
        if full is None:
            full = everyone[id(present)] = present is _ALL or bool(present.all())
        if full:
            keys.append(key)
            columns.append(_column(value, n))
        else:
            partial.append((key, present))
    # One dict per sub-environment, built by C-level iteration (map), not a Python loop.
    infos = (
        list(map(dict, map(zip, repeat(keys), zip(*columns, strict=True))))
        if keys
        else [{} for _ in range(n)]
    )
    for key, present in partial:
        envs = np.flatnonzero(present)
        for i, item in zip(envs.tolist(), _column(info[key], n, envs), strict=True):
            infos[i][key] = item
    return infos


def _column(value: Any, n: int, envs: np.ndarray | None = None) -> list[Any]:
    """One key's per-sub-environment values (of the sub-environments ``envs``; None: all)."""
    if envs is not None:
        value, n = _restrict(value, envs), envs.size
    if isinstance(value, dict):
        return _unbatch(value, n)
    return value.tolist() if value.ndim == 1 else list(value)  # rows of a batch made for this step


def _restrict(value: Any, envs: np.ndarray) -> Any:
    """The entries of a batched value (array, or dict of them and their masks) for ``envs`` only."""
    if isinstance(value, dict):
        return {key: _restrict(v, envs) for key, v in value.items()}
    return value[envs]
