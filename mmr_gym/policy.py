"""The Policy protocol: what every router (baseline, supervised, bandit, RL) offers the evaluator.

The environment library defines the interface; the implementations live in ``agents/``.

A policy acts one episode at a time (:meth:`Policy.begin_episode`, :meth:`Policy.act`,
:meth:`Policy.observe`, on :class:`~mmr_gym.env.MMRRoutingEnv`), or for many *lanes* at once on
the rows of a :class:`~mmr_gym.vector.MMRRoutingVectorEnv` (:meth:`Policy.reset_lanes`,
:meth:`Policy.begin_episodes`, :meth:`Policy.act_batch`, :meth:`Policy.observe_batch`). A lane is
an independent copy of the policy with its own sequence of episodes (the evaluator runs one lane
per budget and seed). The batched methods' defaults keep one copy of the policy per lane and call
the one-episode methods row by row, so every policy works batched; a policy that can act for all
rows in a few array operations overrides them.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from mmr_gym.env import MMRRoutingEnv
    from mmr_gym.vector import MMRRoutingVectorEnv


_ONE_EPISODE = ("begin_episode", "act", "observe")
_BATCHED = ("reset_lanes", "begin_episodes", "act_batch", "observe_batch")


class Policy:
    """A routing policy acting in :class:`~mmr_gym.env.MMRRoutingEnv`.

    The evaluator calls, per episode: ``begin_episode(env)`` once, then for every step
    ``act(obs, info)`` and, after the environment answered, ``observe(action, reward, info)``
    (``info`` is the step's info: the chosen model's outcome, and every model's with
    ``feedback="full"``). Override what you need; the defaults do nothing.

    Batched (see the module docstring): ``reset_lanes(n)`` once, then ``begin_episodes(env, rows)``
    whenever episodes start in some rows of the vector env, ``act_batch(obs, info, active)`` and
    ``observe_batch(actions, rewards, info, active)`` every step. Rows not in ``active`` are idle:
    their actions are ignored and they must not learn.
    """

    name: str = "policy"
    #: True if the policy reads outcomes it could not know (oracles). Reported as such.
    privileged: bool = False
    #: The keys of the step info (:data:`~mmr_gym.records.INFO_KEYS`) the policy reads in ``act``
    #: and ``observe``, beside ``action_mask``; None: any. A batched evaluation builds only these.
    info_keys: tuple[str, ...] | None = None
    #: True if what the policy does in an episode depends on that episode alone (it learns nothing
    #: across episodes and draws no random numbers): a batched evaluation then runs a lane's
    #: episodes side by side instead of one after another (the same decisions, faster).
    episodic: bool = False
    _lanes: list[Policy] | None = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        own = vars(cls)
        # It answers a query its own way but inherits a parent's batched rule (a PacedPolicy with
        # another act, say): that rule is not its own, so it runs row by row with the defaults,
        # and one episode after another unless it says it is episodic itself.
        answers_its_own_way = any(name in own for name in _ONE_EPISODE)
        batches_its_own_way = any(name in own for name in _BATCHED)
        inherited = any(getattr(cls, name) is not getattr(Policy, name) for name in _BATCHED)
        if answers_its_own_way and not batches_its_own_way and inherited:
            for name in _BATCHED:
                setattr(cls, name, getattr(Policy, name))
            if "episodic" not in own:
                cls.episodic = property(lambda self: False, lambda self, value: None)  # type: ignore[assignment]

    def begin_episode(self, env: MMRRoutingEnv) -> None:
        """Called after ``env.reset``; ``env`` is the unwrapped environment (model names, ``c_ref``...)."""

    def act(self, obs: Any, info: dict[str, Any]) -> int:
        """The model index to call for the current query; ``info["action_mask"]`` lists the affordable ones."""
        raise NotImplementedError

    def observe(self, action: int, reward: float, info: dict[str, Any]) -> None:
        """Feedback after a step (bandit learners update here)."""

    # ------------------------------------------------------------------ batched
    def reset_lanes(self, n: int, make: Callable[[], Policy] | None = None) -> None:
        """Act for ``n`` independent lanes from now on: this policy for lane 0 and, for each other
        lane, a fresh one: a call of ``make`` (the factory this policy came from), or else a copy
        of this policy as it stands."""
        self._lanes = None  # not copied into the copies
        self._lanes = [self] + [make() if make is not None else copy.deepcopy(self) for _ in range(n - 1)]

    def lane(self, i: int) -> Policy:
        """The policy acting for lane ``i`` (``self`` when it acts for all rows itself)."""
        return self if self._lanes is None else self._lanes[i]

    def begin_episodes(self, env: MMRRoutingVectorEnv, rows: np.ndarray) -> None:
        """Called after ``env.reset`` started episodes in the sub-environments ``rows`` (int indices)."""
        for i in rows.tolist():
            self.lane(i).begin_episode(env.sub_env(i))

    def act_batch(self, obs: Any, info: dict[str, Any], active: np.ndarray) -> np.ndarray:
        """One model index per row (int64 ``[n]``); idle rows get the first affordable model."""
        mask = np.asarray(info["action_mask"], dtype=bool)
        actions = mask.argmax(axis=1)
        rows = np.flatnonzero(active).tolist()
        for i, row_info in zip(rows, info_rows(info, rows), strict=True):
            actions[i] = self.lane(i).act(obs_row(obs, i), row_info)
        return actions

    def observe_batch(
        self, actions: np.ndarray, rewards: np.ndarray, info: dict[str, Any], active: np.ndarray
    ) -> None:
        """Feedback after a step of the vector env, for the ``active`` rows."""
        rows = np.flatnonzero(active).tolist()
        for i, row_info in zip(rows, info_rows(info, rows), strict=True):
            self.lane(i).observe(int(actions[i]), float(rewards[i]), row_info)


def affordable_indices(info: dict[str, Any]) -> np.ndarray:
    """Indices of the affordable models in a step's or reset's ``info``."""
    return np.flatnonzero(info["action_mask"])


def obs_row(obs: Any, i: int) -> Any:
    """Row ``i`` of a batched observation, as the single environment gives it."""
    if isinstance(obs, dict):
        return {key: value[i] for key, value in obs.items()}
    return obs[i]


def info_rows(info: dict[str, Any], rows: list[int]) -> list[dict[str, Any]]:
    """Each sub-environment of ``rows``'s part of a batched info, as the single environment gives it.

    A key is kept where its ``_key`` mask holds for the row; numbers become Python scalars, as the
    single environment's are (arrays such as ``action_mask`` stay arrays). Each column is converted
    once (``tolist``) for all rows.
    """
    out: list[dict[str, Any]] = [{} for _ in rows]
    for key, value in info.items():
        if key.startswith("_"):
            continue
        reported = info.get("_" + key)
        keep = rows if reported is None else [i for i in rows if reported[i]]
        targets = out if reported is None else [row for row, i in zip(out, rows, strict=True) if reported[i]]
        if isinstance(value, dict):
            parts = info_rows(value, keep)
        elif isinstance(value, np.ndarray) and value.ndim > 1:
            parts = [value[i] for i in keep]
        elif isinstance(value, np.ndarray) and value.dtype != object:
            parts = value[keep].tolist()  # Python scalars, as item() makes them
        else:
            parts = [value[i] for i in keep]
            parts = [p.item() if isinstance(p, np.generic) else p for p in parts]
        for row, part in zip(targets, parts, strict=True):
            row[key] = part
    return out
