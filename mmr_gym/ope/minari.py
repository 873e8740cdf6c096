"""Read a Minari dataset recorded with ``mmr_gym.wrappers.PaddedInfo`` as a :class:`DecisionLog`.

Recording (see docs/ope.md, "Logs recorded with Minari")::

    env = minari.DataCollector(PaddedInfo(gym.make("MMRRouting-v0")), record_infos=True)

Each Minari episode holds ``observations`` (``T + 1`` of each key: the reset's, then each step's),
``actions`` (``T``) and ``infos`` (``T + 1``: the reset's, padded by ``PaddedInfo`` so that
``model_index == -1`` marks it, then each step's). Decision ``t`` is: the observation and
``action_mask`` of info ``t`` (what the policy saw), the call reported by info ``t + 1``
(``model_index``, ``correct``, ``cost``, ``query_id``, ``dataset``), and the budget left before it
(``budget_remaining`` of info ``t``; at reset, the episode's budget). Minari's HDF5 format gives
strings back as bytes and nested dicts as dicts of arrays; its Arrow format nested dicts as arrays
of dicts: both are read (only top-level keys are needed).

Minari records what the policy did, not with what probability: the propensities come from the
caller (``propensities``): ``"uniform"`` (the logger chose uniformly among the affordable models),
an array with one propensity per decision, or the logging policy itself (anything with
``action_probabilities``), asked again on every recorded context. The last is right only for a
policy whose probabilities do not change as it learns (ask it in the state it logged in).

Minari itself is not needed here: anything that iterates such episodes works (``dataset`` may be a
``minari.MinariDataset`` or any iterable of objects with ``observations``, ``actions``, ``infos``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from mmr_gym.errors import LogError
from mmr_gym.ope.log import DecisionLog, environment_meta
from mmr_gym.ope.targets import target_probabilities

_STEP_KEYS = ("model_index", "correct", "cost", "query_id", "dataset", "budget_remaining", "action_replaced")


def read_minari(dataset: Any, *, env: Any = None, propensities: Any = "uniform") -> DecisionLog:
    """The decisions of every episode of ``dataset``, in order, as a :class:`DecisionLog`.

    Args:
        dataset: a ``minari.MinariDataset`` recorded with ``PaddedInfo`` and ``record_infos=True``,
            or an iterable of episodes with the same fields.
        env: the recorded environment (``MMRRouting-v0``, wrapped or not): the models, ``c_ref``,
            cost unit, episode length and budget ratio come from it. Default:
            ``dataset.recover_environment()``.
        propensities: ``"uniform"`` (uniform over each decision's affordable models), an array of
            one propensity per decision (episodes in order), or the logging policy (a
            :class:`~mmr_gym.ope.targets.StochasticPolicy`, asked on each recorded context with
            ``env`` for ``begin_episode``).

    Raises:
        LogError: a missing info key, an episode not recorded through ``PaddedInfo``, a recorded call
            that replaced a masked choice (its propensity is unknown) when propensities are not
            given as an array, or a propensity the policy gives as 0 to the model it called.
    """
    source = str(getattr(dataset, "id", None) or getattr(dataset, "spec", None) or type(dataset).__name__)
    if env is None:
        if not hasattr(dataset, "recover_environment"):
            raise ValueError("read_minari needs env=... (the recorded environment) for this dataset")
        env = dataset.recover_environment()
    unwrapped = env.unwrapped
    episodes = dataset.iterate_episodes() if hasattr(dataset, "iterate_episodes") else dataset
    columns = _decisions(episodes, source, given=isinstance(propensities, np.ndarray))
    n = columns["action"].size
    meta = {
        **environment_meta(unwrapped),
        "behaviour": str(
            getattr(propensities, "name", propensities if isinstance(propensities, str) else "given")
        ),
        "collected_by": "minari",
        "dataset": source,
    }
    log_source = f"minari:{source}"
    rows = np.arange(n)
    if isinstance(propensities, str):
        if propensities != "uniform":
            raise ValueError(f"propensities must be 'uniform', an array or a policy, got {propensities!r}")
        masks = columns["action_mask"]
        probs = masks / masks.sum(axis=1, keepdims=True)
        return DecisionLog(
            **columns,
            propensity=probs[rows, columns["action"]],
            behaviour_probs=probs,
            meta=meta,
            source=log_source,
        )
    if isinstance(propensities, np.ndarray):
        if propensities.shape != (n,):
            raise ValueError(
                f"propensities must have one value per decision ({n}), got shape {propensities.shape}"
            )
        return DecisionLog(**columns, propensity=propensities, meta=meta, source=log_source)
    # The logging policy, asked on the recorded contexts (the placeholder propensities are replaced).
    contexts = DecisionLog(**columns, propensity=np.ones(n), meta=meta, source=log_source)
    probs = target_probabilities(contexts, propensities, env)
    called = probs[rows, columns["action"]]
    if (called <= 0).any():
        row = int(np.flatnonzero(called <= 0)[0])
        raise LogError(
            log_source,
            "action",
            row,
            f"the logging policy gives the called model {columns['action'][row]} probability 0",
            f"episode {columns['episode'][row]}, step {columns['step'][row]}",
        )
    return DecisionLog(**columns, propensity=called, behaviour_probs=probs, meta=meta, source=log_source)


def _decisions(episodes: Iterable[Any], source: str, given: bool) -> dict[str, Any]:
    parts: dict[str, list[Any]] = {}
    observations: dict[str, list[np.ndarray]] = {}
    for number, episode in enumerate(episodes):
        name = f"{source}, episode {getattr(episode, 'id', number)}"
        obs, infos = episode.observations, episode.infos
        if not isinstance(obs, dict):
            raise LogError(name, "observations", None, "expected the Dict observation of MMRRouting-v0")
        steps = len(episode.actions)
        mask = _column(infos, "action_mask", name, steps + 1).astype(bool)
        step = {key: _column(infos, key, name, steps + 1) for key in _STEP_KEYS}
        if int(step["model_index"][0]) != -1:
            raise LogError(
                name,
                "infos.model_index",
                0,
                "the reset's info is not PaddedInfo's (model_index -1): record through PaddedInfo",
            )
        replaced = np.asarray(step["action_replaced"][1:], dtype=bool)
        if replaced.any() and not given:
            raise LogError(
                name,
                "infos.action_replaced",
                int(np.flatnonzero(replaced)[0]) + 1,
                "the policy chose a masked model and the environment called another: the propensity of the "
                "called model is unknown (give propensities as an array)",
            )
        for key, value in obs.items():
            values = np.asarray(value)
            if values.shape[0] != steps + 1:
                raise LogError(
                    name, f"observations.{key}", None, f"expected {steps + 1} rows, got {values.shape[0]}"
                )
            observations.setdefault(key, []).append(values[:steps])
        budget = np.asarray(step["budget_remaining"], dtype=np.float64)
        for key, value in (
            ("episode", np.full(steps, number)),
            ("step", np.arange(steps)),
            ("query_id", _strings(step["query_id"][1:])),
            ("dataset", _strings(step["dataset"][1:])),
            ("action_mask", mask[:steps]),
            ("budget_remaining", budget[:steps]),
            ("budget_total", np.full(steps, budget[0])),
            ("action", np.asarray(step["model_index"][1:], dtype=np.int64)),
            ("correct", np.asarray(step["correct"][1:], dtype=np.float64)),
            ("cost", np.asarray(step["cost"][1:], dtype=np.float64)),
        ):
            parts.setdefault(key, []).append(value)
    if not parts:
        raise LogError(source, None, None, "the dataset holds no episode")
    columns: dict[str, Any] = {key: np.concatenate(values) for key, values in parts.items()}
    columns["observations"] = {key: np.concatenate(values) for key, values in observations.items()}
    return columns


def _column(infos: Any, key: str, name: str, rows: int) -> np.ndarray:
    if not hasattr(infos, "__getitem__") or key not in infos:
        raise LogError(name, f"infos.{key}", None, "missing: record with PaddedInfo and record_infos=True")
    values = np.asarray(infos[key])
    if values.shape[0] != rows:
        raise LogError(
            name, f"infos.{key}", None, f"expected {rows} entries (reset + steps), got {values.shape[0]}"
        )
    return values


def _strings(values: np.ndarray) -> np.ndarray:
    """Minari's HDF5 format gives strings back as bytes."""
    return np.asarray([v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in values], dtype=str)
