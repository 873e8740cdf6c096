"""Training environments for the SB3 agents: the training split, the budget range, the VecEnv, a validation split."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import gymnasium as gym
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv, VecMonitor

import mmr_gym  # noqa: F401  (registers MMRRouting-v0)
from agents.rl.features import VecLogFeatures
from agents.rl.hyperparams import TRAIN_BUDGET_RATIOS
from mmr_gym.budget import BUDGET_SAMPLINGS
from mmr_gym.env import MMRRoutingEnv

ENV_ID = "MMRRouting-v0"
VEC_ENV_BACKENDS = ("dummy", "native")


def training_env_kwargs(env_kwargs: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """``env_kwargs`` completed for training: the training split and the budget range by default.

    Raises ``ValueError`` for ``split="test"``: agents are never fitted on the test split.
    """
    kwargs: dict[str, Any] = {"split": "train", "budget_ratio": TRAIN_BUDGET_RATIOS}
    kwargs.update(env_kwargs or {})
    if kwargs["split"] == "test":
        raise ValueError("RL agents train on the 'train' (or 'all') split; got split='test'")
    if kwargs.get("observation", "dict") != "dict":
        raise ValueError(
            f"the agents use MultiInputPolicy on the Dict observation; got observation={kwargs['observation']!r}"
        )
    return kwargs


def make_vec_env(
    env_kwargs: Mapping[str, Any],
    n_envs: int,
    seed: int,
    backend: str = "native",
    budget_sampling: str = "uniform",
    log_features: bool = False,
) -> VecEnv:
    """``n_envs`` copies of ``MMRRouting-v0(**env_kwargs)`` as an SB3 ``VecEnv`` with episode statistics.

    Args:
        env_kwargs: keyword arguments of :class:`~mmr_gym.env.MMRRoutingEnv` (used as given).
        n_envs: number of sub-environments.
        seed: seeds the first reset (``VecEnv.seed``): with ``"dummy"`` sub-environment ``i``
            gets ``seed + i``; with ``"native"`` it seeds the vector env's one stream generator.
        backend: ``"native"`` (default: the numpy-vectorized
            :class:`mmr_gym.vector.MMRRoutingVectorEnv` behind :class:`mmr_gym.sb3.SB3VecEnvAdapter`,
            with a ``VecMonitor``; its infos hold only ``episode_metrics``, what the callbacks read)
            or ``"dummy"`` (SB3's ``DummyVecEnv`` of single environments, each in a ``Monitor``).
        budget_sampling: how a ``(low, high)`` budget ratio range is drawn per episode:
            ``"uniform"`` or ``"log-uniform"`` (the environment's ``budget_sampling``; it
            overrides one in ``env_kwargs``).
        log_features: add :func:`add_log_features` to the observations (:class:`VecLogFeatures`).
    """
    if budget_sampling not in BUDGET_SAMPLINGS:
        raise ValueError(f"unknown budget_sampling {budget_sampling!r}; allowed: {list(BUDGET_SAMPLINGS)}")
    env_kwargs = {**env_kwargs, "budget_sampling": budget_sampling}
    if backend == "dummy":

        def make() -> gym.Env:
            env = gym.make(ENV_ID, disable_env_checker=True, **env_kwargs)
            # The Monitor gives SB3 its ep_rew_mean/ep_len_mean and EvalCallback its episode
            # rewards; the environment's routing figures travel in info["episode_metrics"].
            return Monitor(env)

        vec: VecEnv = DummyVecEnv([make] * n_envs)
    elif backend == "native":
        from mmr_gym.sb3 import SB3VecEnvAdapter
        from mmr_gym.vector import MMRRoutingVectorEnv

        # Only the keys the callbacks read: building every info would undo part of the speed-up.
        keys = ("episode_metrics",)
        adapter = SB3VecEnvAdapter(MMRRoutingVectorEnv(num_envs=n_envs, info_keys=keys, **env_kwargs), keys)
        vec = VecMonitor(adapter)
    else:
        raise ValueError(f"unknown vec env backend {backend!r}; allowed: {list(VEC_ENV_BACKENDS)}")
    if log_features:
        vec = VecLogFeatures(vec)
    vec.seed(seed)
    return vec


def validation_split(
    env_kwargs: Mapping[str, Any] | None = None, fraction: float = 0.25, seed: int = 0
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Carve a validation part out of the training split, for model and hyperparameter selection.

    Returns ``(fit_kwargs, validation_kwargs)``: environment kwargs over a table made of the
    training queries only, whose ``"train"`` split (``1 - fraction`` of them, random by query,
    seeded) is for fitting and whose ``"test"`` split is the validation set. Cost estimates,
    ``c_ref`` and feature standardisation come from the fitting part alone, so nothing of the
    validation queries (and nothing of the real test split) leaks into training.
    """
    kwargs = training_env_kwargs(env_kwargs)
    env = MMRRoutingEnv(**{k: v for k, v in kwargs.items() if k != "budget_ratio"}, budget_ratio=None)
    train_table = env.ctx.table.subset(env.ctx.train_indices)
    # The table (its features already computed) replaces the loader and its split arguments.
    dropped = (
        "dataset",
        "dataset_kwargs",
        "features",
        "split_mode",
        "test_datasets",
        "train_ids",
        "test_ids",
    )
    base = {k: v for k, v in kwargs.items() if k not in dropped}
    base.update(dataset=train_table, split_mode="in", train_fraction=1.0 - fraction, split_seed=seed)
    return {**base, "split": "train"}, {**base, "split": "test"}
