"""Training, saving and loading one budget-conditioned SB3 agent; the validation score of a candidate."""

from __future__ import annotations

import json
import math
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback, CallbackList

from agents.rl.callbacks import (
    FixedStreamsEvalCallback,
    FixedStreamsMaskableEvalCallback,
    RoutingMetricsCallback,
    TqdmCallback,
)
from agents.rl.envs import make_vec_env, training_env_kwargs, validation_split
from agents.rl.hyperparams import ALGOS, DISPLAY_NAMES, HYPERPARAMS, N_ENVS
from agents.rl.policy import SB3Policy
from agents.rl.threads import torch_threads as set_torch_threads
from mmr_gym.env import MMRRoutingEnv
from mmr_gym.evaluate import PolicyResult, evaluate_policy
from mmr_gym.table import RoutingTable


def train_agent(
    algo: str,
    env_kwargs: Mapping[str, Any] | None = None,
    total_timesteps: int = 200_000,
    seed: int = 0,
    log_dir: str | Path | None = None,
    n_envs: int | None = None,
    *,
    hyperparams: Mapping[str, Any] | None = None,
    eval_env_kwargs: Mapping[str, Any] | None = None,
    eval_freq: int = 20_000,
    n_eval_episodes: int = 30,
    select_best: bool = True,
    budget_sampling: str = "log-uniform",
    log_features: bool = True,
    vec_env: str = "native",
    progress: bool = False,
    torch_threads: int | None = 1,
    verbose: int = 0,
) -> BaseAlgorithm:
    """Train one budget-conditioned agent on ``MMRRouting-v0`` and return it.

    Args:
        algo: one of :data:`ALGOS` (``"ppo"``, ``"a2c"``, ``"dqn"``, ``"maskable-ppo"``).
        env_kwargs: environment kwargs; completed by :func:`training_env_kwargs` (training split,
            budget ratio drawn per episode from :data:`TRAIN_BUDGET_RATIOS`).
        total_timesteps: environment steps (queries routed) over all training environments.
        seed: seeds the model (torch, action sampling) and the training environments.
        log_dir: if given: TensorBoard logs in ``log_dir/tb``, the returned model in
            ``log_dir/model.zip``, the last one in ``log_dir/last_model.zip``, the best by validation
            reward in ``log_dir/best_model.zip``, the evaluation history in ``log_dir/evaluations.npz`` and a record of the run
            (algorithm, kwargs, timesteps, seed) in ``log_dir/agent.json``.
        n_envs: parallel training environments (default :data:`N_ENVS`).
        hyperparams: overrides of :data:`HYPERPARAMS` for this algorithm (constructor kwargs).
        eval_env_kwargs: the held-out environment of the evaluation callback. Default: the training
            kwargs with other seeds (streams and budgets the agent did not train on, but the
            training queries); pass ``validation_split(...)[1]`` for queries it never saw. Never the
            test split: that would select the model on the data it is scored on.
        eval_freq: evaluate every this many timesteps (0 disables the evaluation callback).
        n_eval_episodes: episodes per evaluation (same streams and budgets every time).
        select_best: with ``log_dir`` and the evaluation callback, return (and save as
            ``log_dir/model.zip``) the checkpoint with the best mean validation reward rather than
            the last one.
        budget_sampling: ``"log-uniform"`` or ``"uniform"`` draws of the budget ratio range, for
            training and validation episodes (see :func:`make_vec_env`).
        log_features: give the agent the logarithms of its budget and cost features too
            (:func:`add_log_features`; :class:`SB3Policy` adds them when the model expects them).
        vec_env: ``"dummy"`` or ``"native"`` (see :func:`make_vec_env`).
        progress: show progress over timesteps (a bar on a terminal, a few lines elsewhere).
        torch_threads: torch CPU threads while training, the caller's count restored afterwards
            (default 1, the fast path for these small networks: :mod:`agents.rl.threads`; None: leave
            torch as it is).
        verbose: SB3 verbosity.

    Returns:
        The trained SB3 model (``MaskablePPO``, ``PPO``, ``A2C`` or ``DQN``).
    """
    if algo not in ALGOS:
        raise ValueError(f"unknown algorithm {algo!r}; allowed: {sorted(ALGOS)}")
    kwargs = training_env_kwargs(env_kwargs)
    n_envs = N_ENVS[algo] if n_envs is None else int(n_envs)
    params = {**HYPERPARAMS[algo], **(hyperparams or {})}
    log_path = Path(log_dir) if log_dir is not None else None
    if log_path is not None:
        log_path.mkdir(parents=True, exist_ok=True)

    with set_torch_threads(torch_threads):
        env = make_vec_env(
            kwargs, n_envs, seed, backend=vec_env, budget_sampling=budget_sampling, log_features=log_features
        )
        model = ALGOS[algo](
            "MultiInputPolicy",
            env,
            seed=seed,
            device="cpu",
            verbose=verbose,
            tensorboard_log=str(log_path / "tb") if log_path is not None else None,
            **params,
        )
        callbacks: list[BaseCallback] = [RoutingMetricsCallback()]
        eval_callback = None
        if eval_freq > 0:
            eval_kwargs = dict(eval_env_kwargs) if eval_env_kwargs is not None else dict(kwargs)
            # One env: SB3's evaluate_policy then plays exactly n_eval_episodes consecutive episodes.
            eval_env = make_vec_env(
                eval_kwargs,
                1,
                seed + 10_000,
                backend=vec_env,
                budget_sampling=budget_sampling,
                log_features=log_features,
            )
            callback_class = (
                FixedStreamsMaskableEvalCallback if algo == "maskable-ppo" else FixedStreamsEvalCallback
            )
            eval_callback = callback_class(
                eval_env,
                n_eval_episodes=n_eval_episodes,
                eval_freq=max(eval_freq // n_envs, 1),
                best_model_save_path=str(log_path) if log_path is not None else None,
                log_path=str(log_path) if log_path is not None else None,
                deterministic=True,
                verbose=0,
                eval_seed=seed + 10_000,
            )
            callbacks.append(eval_callback)
        if progress:
            callbacks.append(TqdmCallback(total_timesteps, f"train {DISPLAY_NAMES[algo]} (seed {seed})"))
        model.learn(total_timesteps=total_timesteps, callback=CallbackList(callbacks), tb_log_name=algo)

        env.close()
        if eval_callback is not None:
            eval_callback.eval_env.close()

        selected = "last"
        if log_path is not None:
            model.save(log_path / "last_model.zip")
            best_path = log_path / "best_model.zip"
            if select_best and best_path.exists():
                model = ALGOS[algo].load(best_path, device="cpu")
                selected = "best validation reward"
            model.save(log_path / "model.zip")
            best_reward = eval_callback.best_mean_reward if eval_callback is not None else float("nan")
            record = {
                "algo": algo,
                "env_kwargs": _json_safe_kwargs(kwargs),
                "total_timesteps": int(total_timesteps),
                "seed": int(seed),
                "n_envs": n_envs,
                "budget_sampling": budget_sampling,
                "log_features": log_features,
                "hyperparams": _json_safe_kwargs(params),
                "selected": selected,
                # Mean validation episode reward (= correct answers per episode) of that checkpoint.
                "best_mean_reward": float(best_reward) if math.isfinite(best_reward) else None,
            }
            (log_path / "agent.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return model


def load_agent(path: str | Path, algo: str | None = None) -> BaseAlgorithm:
    """Load a model saved by :func:`train_agent` (or ``model.save``) onto the CPU.

    ``algo`` names the class; by default it is read from ``agent.json`` beside the file, or
    inferred from the saved policy class and parameters.
    """
    path = Path(path)
    if not path.exists() and path.with_suffix(".zip").exists():
        path = path.with_suffix(".zip")
    if algo is None:
        sidecar = path.parent / "agent.json"
        if sidecar.exists():
            algo = json.loads(sidecar.read_text(encoding="utf-8"))["algo"]
        else:
            algo = _infer_algo(path)
    if algo not in ALGOS:
        raise ValueError(f"unknown algorithm {algo!r}; allowed: {sorted(ALGOS)}")
    return ALGOS[algo].load(path, device="cpu")


def _infer_algo(path: Path) -> str:
    with zipfile.ZipFile(path) as archive:
        data = json.loads(archive.read("data"))
    module = data.get("policy_class", {}).get("__module__", "")
    if module.startswith("sb3_contrib.common.maskable"):
        return "maskable-ppo"
    if module.startswith("stable_baselines3.dqn"):
        return "dqn"
    return "ppo" if "clip_range" in data else "a2c"  # PPO and A2C share their policy classes


def _json_safe_kwargs(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in kwargs.items():
        if isinstance(value, RoutingTable):
            value = repr(value)
        elif isinstance(value, Mapping):
            value = _json_safe_kwargs(value)
        elif isinstance(value, tuple):
            value = list(value)
        elif not isinstance(value, (str, int, float, bool, list, type(None))):
            value = repr(value)
        out[key] = value
    return out


def validation_score(
    algo: str,
    hyperparams: Mapping[str, Any] | None = None,
    total_timesteps: int = 150_000,
    seed: int = 0,
    *,
    env_kwargs: Mapping[str, Any] | None = None,
    budget_sampling: str = "log-uniform",
    log_features: bool = True,
    eval_seeds: tuple[int, ...] = (0, 1),
) -> PolicyResult:
    """One candidate of the hyperparameter search: train on the fitting part of
    :func:`validation_split` and evaluate over the budget sweep on its validation part.

    Returns the evaluator's result (``nAUC``, ``Ps``, ``regret``, points); the test split is untouched.
    """
    fit_kwargs, val_kwargs = validation_split(env_kwargs, fraction=0.25, seed=seed)
    model = train_agent(
        algo,
        fit_kwargs,
        total_timesteps,
        seed,
        hyperparams=hyperparams,
        eval_freq=0,
        budget_sampling=budget_sampling,
        log_features=log_features,
    )
    return evaluate_policy(SB3Policy(model), MMRRoutingEnv(**val_kwargs), seeds=eval_seeds, progress=False)
