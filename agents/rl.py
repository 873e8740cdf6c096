"""Reinforcement-learning routers: stable-baselines3 PPO, A2C, DQN and sb3-contrib's MaskablePPO.

One agent is trained *budget-conditioned*: every training episode draws its budget ratio from a
range (``budget_ratio=(low, high)`` on the training split), and the ratio is visible in the
observation's ``budget`` features (remaining budget fraction, remaining steps fraction, affordable
spend per remaining query relative to ``c_ref``). So a single trained agent is evaluated across a
whole budget sweep, like any other policy (:func:`mmr_gym.evaluate.evaluate_policy`).

All four use ``MultiInputPolicy`` on the environment's ``Dict`` observation (DQN supports ``Dict``
observations through it). Only MaskablePPO reads the action mask. PPO, A2C and DQN may pick an
unaffordable model; they rely on the environment's documented fallback (``invalid_action=
"fallback"``: the cheapest affordable model is called instead and ``info["action_replaced"]`` is
set), so they never spend beyond what the mask allows, but they do not learn from the mask itself
(the replaced call is what the environment executes and rewards).

Typical use::

    from agents.rl import SB3Policy, load_agent, train_agent
    model = train_agent("maskable-ppo", {}, total_timesteps=200_000, seed=0, log_dir="runs/x/ppo")
    policy = SB3Policy(load_agent("runs/x/ppo/model.zip"))
    result = evaluate_policy(policy, gym.make("MMRRouting-v0", split="test").unwrapped)

Hyperparameters (:data:`HYPERPARAMS`) come from a small search on a validation split carved out of
the training split (:func:`validation_split`; the test split is never used to choose anything).
See the comment above :data:`HYPERPARAMS` for what was searched and what it found.
"""

from __future__ import annotations

import contextlib
import json
import math
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from sb3_contrib import MaskablePPO
from sb3_contrib.common.maskable.callbacks import MaskableEvalCallback
from stable_baselines3 import A2C, DQN, PPO
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback, CallbackList, EvalCallback
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv, VecEnvWrapper, VecMonitor
from tqdm.auto import tqdm

import mmr_gym  # noqa: F401  (registers MMRRouting-v0)
from mmr_gym.budget import BUDGET_SAMPLINGS
from mmr_gym.env import MMRRoutingEnv
from mmr_gym.evaluate import PolicyResult, evaluate_policy
from mmr_gym.observation import BUDGET_COLUMNS
from mmr_gym.policy import Policy
from mmr_gym.table import RoutingTable

ENV_ID = "MMRRouting-v0"

ALGOS: dict[str, type[BaseAlgorithm]] = {
    "ppo": PPO,
    "a2c": A2C,
    "dqn": DQN,
    "maskable-ppo": MaskablePPO,
}
"""Algorithm name -> SB3 class. Names are the ones ``train.py`` accepts (``rl-<name>``)."""

DISPLAY_NAMES: dict[str, str] = {"ppo": "PPO", "a2c": "A2C", "dqn": "DQN", "maskable-ppo": "MaskablePPO"}

TRAIN_BUDGET_RATIOS: tuple[float, float] = (0.02, 1.5)
"""Per-episode budget ratio range for training: it covers the evaluation sweep (0.02 ... 1.5)."""

# Hyperparameters from a small search, one factor at a time around SB3's defaults: each candidate
# trained once for 150k steps (seed 0 unless noted) on 75% of the training split, scored by nAUC over
# the 9-point budget sweep (2 stream seeds) on the other 25% (validation_split, validation_score);
# the test split played no part. Episodes are 100 steps, reward = correctness (0/1), K = 10 actions.
# Validation nAUC (same 519 held-out queries): Random 0.358, BestSingle 0.419, Paced-LinearMF 0.730,
# hindsight Oracle 0.876.
# Round 1, raw observation (no log features):
#   MaskablePPO  gamma 1.0: 0.612 (uniform budget draws: 0.616) | gamma 0.99: 0.676 (seed 1: 0.648)
#                | gamma 0.95: 0.638 | gamma 0.99 + uniform draws: 0.599 | gamma 0.99 + ent_coef 0:
#                0.648 (seed 1: 0.650) | gamma 0.99 + net 128x128: 0.659 | gamma 0.99, 300k steps:
#                0.680 | at gamma 1.0: ent_coef 0 0.647, 0.03 0.631, lr 1e-3 0.649, net 128x128
#                0.630, n_epochs 4 0.585
#   PPO          gamma 0.99: 0.584 | gamma 0.99 + ent_coef 0: 0.616
#   A2C          gamma 0.99, n_steps 32: 0.418 | n_steps 8: 0.521 | n_steps 8, lr 3e-4: 0.439 |
#                n_steps 16, ent_coef 0: 0.612
#   DQN          lr 5e-4, 20% exploring, target every 2k: 0.629 | lr 1e-4: 0.434 | lr 1e-3: 0.466 |
#                10% exploring, target every 1k: 0.453
# Round 2, the chosen settings below plus log features (add_log_features):
#   MaskablePPO 0.690 (seed 1: 0.682; 300k steps: 0.683; ent_coef 0: 0.668) | PPO 0.632 |
#   A2C 0.653 | DQN 0.702 (seed 1: 0.704; 300k steps: 0.656)
# What it says: gamma 0.99 (an effective horizon of ~100 steps, the episode) pays for pacing, where
# gamma 1.0 gives noisy returns and 0.95 stops seeing the end of the budget; log-uniform budget draws
# (budget_sampling="log-uniform") are needed for the agent to learn the tight budgets at all;
# log-scaled budget and cost features help every algorithm (+0.02 to +0.07); the action mask is worth ~0.05 nAUC
# (MaskablePPO vs PPO); returns flatten after ~150k steps (DQN degrades when trained twice as long,
# which checkpoint selection on the validation split guards against). One seed per candidate:
# differences under ~0.03 are within the noise (compare the seeds above); nothing is tuned finer.
HYPERPARAMS: dict[str, dict[str, Any]] = {
    "maskable-ppo": {
        "n_steps": 256,  # per env: 8 x 256 = 2048 steps (about 20 episodes) per update
        "batch_size": 256,
        "n_epochs": 10,
        "learning_rate": 3e-4,
        "gamma": 0.99,
        "gae_lambda": 0.95,
        "ent_coef": 0.01,  # keeps it from collapsing onto one model before it reads the budget
        "policy_kwargs": {"net_arch": [64, 64]},
    },
    "ppo": {
        "n_steps": 256,
        "batch_size": 256,
        "n_epochs": 10,
        "learning_rate": 3e-4,
        "gamma": 0.99,
        "gae_lambda": 0.95,
        "ent_coef": 0.0,
        "policy_kwargs": {"net_arch": [64, 64]},
    },
    "a2c": {
        "n_steps": 16,  # longer than SB3's 5: less variance from the 0/1 rewards
        "learning_rate": 7e-4,
        "gamma": 0.99,
        "gae_lambda": 0.95,
        "ent_coef": 0.0,
        "policy_kwargs": {"net_arch": [64, 64]},
    },
    "dqn": {
        "buffer_size": 100_000,
        "learning_starts": 5_000,
        "batch_size": 128,
        "learning_rate": 5e-4,
        "gamma": 0.99,
        "train_freq": 4,
        "gradient_steps": 1,
        "target_update_interval": 2_000,
        "exploration_fraction": 0.2,
        "exploration_final_eps": 0.02,
        "policy_kwargs": {"net_arch": [64, 64]},
    },
}
"""Constructor kwargs per algorithm (see the comment above for how they were chosen)."""

N_ENVS: dict[str, int] = {"ppo": 8, "maskable-ppo": 8, "a2c": 8, "dqn": 4}
"""Default number of parallel training environments per algorithm."""

VEC_ENV_BACKENDS = ("dummy", "native")


# ---------------------------------------------------------------------------------- environments
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


# Costs and budgets span three decades (a 3B model costs ~0.003 c_ref per call, GPT-5 ~1; budgets run
# from 0.02 to 1.5 c_ref per query). On the observation's linear scale the network can hardly tell the
# cheap models, or the tight budgets, apart; their logarithms spread them out. Floor of the log:
LOG_FLOOR = 1e-3


def add_log_features(obs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The observation plus ``log_budget`` (log of the spend per remaining query / ``c_ref``) and
    ``log_model_costs`` (log of each model's cost estimate / ``c_ref``), floored at :data:`LOG_FLOOR`.

    Works on one observation or a batch (the last axis holds the features).
    """
    out = dict(obs)
    spend_per_query = obs["budget"][..., BUDGET_COLUMNS["spend_per_query"], None]
    out["log_budget"] = np.log(np.maximum(spend_per_query, LOG_FLOOR)).astype(np.float32)
    out["log_model_costs"] = np.log(np.maximum(obs["model_costs"], LOG_FLOOR)).astype(np.float32)
    return out


def log_feature_space(space: spaces.Dict) -> spaces.Dict:
    """The observation space of :func:`add_log_features` (finite bounds, as the environment's)."""
    low = math.log(LOG_FLOOR)
    budget_high = max(float(space["budget"].high[BUDGET_COLUMNS["spend_per_query"]]), LOG_FLOOR)
    costs_high = np.log(np.maximum(space["model_costs"].high, LOG_FLOOR)).astype(np.float32)
    return spaces.Dict(
        {
            **space.spaces,
            "log_budget": spaces.Box(low, math.log(budget_high), shape=(1,), dtype=np.float32),
            "log_model_costs": spaces.Box(np.float32(low), costs_high, dtype=np.float32),
        }
    )


class VecLogFeatures(VecEnvWrapper):
    """Adds :func:`add_log_features` to a ``VecEnv``'s observations (also the terminal ones)."""

    def __init__(self, venv: VecEnv) -> None:
        super().__init__(venv, observation_space=log_feature_space(venv.observation_space))

    def reset(self) -> dict[str, np.ndarray]:
        return add_log_features(self.venv.reset())

    def step_wait(self):
        obs, rewards, dones, infos = self.venv.step_wait()
        for info in infos:
            if "terminal_observation" in info:
                info["terminal_observation"] = add_log_features(info["terminal_observation"])
        return add_log_features(obs), rewards, dones, infos


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
    base = {k: v for k, v in kwargs.items() if k not in ("dataset", "split_mode", "test_datasets")}
    base.update(dataset=train_table, split_mode="in", train_fraction=1.0 - fraction, split_seed=seed)
    return {**base, "split": "train"}, {**base, "split": "test"}


# ---------------------------------------------------------------------------------- callbacks
class RoutingMetricsCallback(BaseCallback):
    """Logs the routing figures of every finished training episode to SB3's logger (TensorBoard).

    Read from ``info["episode_metrics"]`` (the environment's end-of-episode record; SB3's own
    ``info["episode"]`` belongs to ``Monitor``) and averaged between two log dumps, under
    ``routing/``: ``accuracy`` (over all the episode's queries, unanswered ones wrong),
    ``spend_over_budget``, ``overrun_rate`` (share of episodes whose last call overshot),
    ``overrun_over_budget``, ``regret`` (hindsight oracle accuracy under the same budget minus the
    agent's), ``oracle_accuracy``, ``unanswered_rate`` and ``budget_ratio``; plus the running count
    ``routing/episodes``.
    """

    def __init__(self, verbose: int = 0) -> None:
        super().__init__(verbose)
        self.episodes = 0

    def _on_step(self) -> bool:
        for info in self.locals.get("infos", ()):
            metrics = info.get("episode_metrics")
            if metrics is not None:
                self._record(metrics)
        return True

    def _record(self, m: Mapping[str, Any]) -> None:
        self.episodes += 1
        log = self.logger.record_mean
        log("routing/accuracy", float(m["accuracy"]))
        log("routing/regret", float(m["regret"]))
        log("routing/oracle_accuracy", float(m["oracle_accuracy"]))
        log("routing/unanswered_rate", float(m["unanswered"]) / float(m["length"]))
        log("routing/overrun_rate", float(float(m["overrun"]) > 0.0))
        budget = m.get("budget")
        if budget is not None and budget > 0:  # None: an unbudgeted episode has no spend ratio
            log("routing/spend_over_budget", float(m["spend"]) / float(budget))
            log("routing/overrun_over_budget", float(m["overrun"]) / float(budget))
            log("routing/budget_ratio", float(m["budget_ratio"]))
        self.logger.record("routing/episodes", self.episodes)


class _FixedStreamsMixin:
    """Re-seed the evaluation env before each evaluation, so that every checkpoint is scored on the
    same streams and budget draws (common random numbers: the comparison between checkpoints is
    not drowned in the noise of which queries and budgets each evaluation happened to draw)."""

    eval_env: VecEnv
    eval_freq: int
    n_calls: int

    def __init__(self, *args: Any, eval_seed: int = 0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.eval_seed = eval_seed

    def _on_step(self) -> bool:
        if self.eval_freq > 0 and self.n_calls % self.eval_freq == 0:
            self.eval_env.seed(self.eval_seed)
        return super()._on_step()  # type: ignore[misc]


class FixedStreamsEvalCallback(_FixedStreamsMixin, EvalCallback):
    """SB3's ``EvalCallback`` on fixed evaluation streams (PPO, A2C, DQN: no action mask)."""


class FixedStreamsMaskableEvalCallback(_FixedStreamsMixin, MaskableEvalCallback):
    """sb3-contrib's ``MaskableEvalCallback`` (predicts with the action mask) on fixed streams."""


class TqdmCallback(BaseCallback):
    """A tqdm bar over training timesteps (SB3's own bar needs ``rich``, not a dependency here)."""

    def __init__(self, total: int, desc: str) -> None:
        super().__init__()
        self._total, self._desc = total, desc
        self._bar: tqdm | None = None

    def _on_training_start(self) -> None:
        self._bar = tqdm(total=self._total, desc=self._desc, unit="step", leave=False)

    def _on_step(self) -> bool:
        assert self._bar is not None
        self._bar.update(self.training_env.num_envs)
        return True

    def _on_training_end(self) -> None:
        if self._bar is not None:
            self._bar.close()


# ---------------------------------------------------------------------------------- training
@contextlib.contextmanager
def _torch_threads(n: int | None) -> Iterator[None]:
    # Networks of 64x64 units are faster on one thread (no inter-op overhead), and the machines
    # this runs on are shared; restore the caller's setting afterwards.
    previous = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


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
        progress: show a tqdm bar over timesteps.
        torch_threads: torch CPU threads while training (None: leave as is).
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

    with _torch_threads(torch_threads):
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
            callbacks.append(TqdmCallback(total_timesteps, f"train {DISPLAY_NAMES[algo]}"))
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


def algo_name(model: BaseAlgorithm) -> str:
    """The :data:`ALGOS` key of a model."""
    for name, cls in ALGOS.items():
        if type(model) is cls:
            return name
    raise ValueError(f"not one of the supported algorithms: {type(model).__name__}")


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


# ---------------------------------------------------------------------------------- evaluation
class SB3Policy(Policy):
    """A trained SB3 model as a :class:`~mmr_gym.policy.Policy` for :func:`mmr_gym.evaluate.evaluate_policy`.

    Acts deterministically (the most probable model; DQN: the highest Q-value). MaskablePPO
    chooses among the affordable models only (``info["action_mask"]``); the other algorithms
    choose among all, and a masked choice is replaced by the environment's fallback.

    It holds no state between steps, so one instance acts for every lane of a batched evaluation:
    :meth:`act_batch` runs the network once over all rows of the vector env (torch on the CPU),
    which is why no faster copy of the network is needed.

    Models trained with log features (:func:`add_log_features`, the default) get them added here,
    so the policy takes the environment's own observations.
    """

    def __init__(self, model: BaseAlgorithm, name: str | None = None) -> None:
        self.model = model
        self.algo = algo_name(model)
        self.name = name or f"RL-{DISPLAY_NAMES[self.algo]}"
        self.use_masks = self.algo == "maskable-ppo"
        space = model.observation_space
        self.log_features = isinstance(space, spaces.Dict) and "log_budget" in space.spaces

    def scores(self, obs: Any) -> np.ndarray:
        """The network's action scores for an observation (``[K]``) or a batch (``[n, K]``): logits
        (policy gradient) or Q-values (DQN)."""
        policy = self.model.policy
        with torch.no_grad():
            tensor, vectorized = policy.obs_to_tensor(add_log_features(obs) if self.log_features else obs)
            if isinstance(self.model, DQN):
                scores = policy.q_net(tensor)
            else:
                features = policy.extract_features(tensor, policy.pi_features_extractor)
                scores = policy.action_net(policy.mlp_extractor.forward_actor(features))
        scores = scores.numpy()
        return scores if vectorized else scores[0]

    def act(self, obs: Any, info: dict[str, Any]) -> int:
        return int(self.act_batch(obs, info, np.ones((), dtype=bool)))

    # ------------------------------------------------------------------ batched
    def reset_lanes(self, n: int, make: Any = None) -> None:
        self._lanes = None  # stateless: this one instance acts for every lane

    def begin_episodes(self, env: Any, rows: np.ndarray) -> None:
        pass

    def act_batch(self, obs: Any, info: dict[str, Any], active: np.ndarray) -> np.ndarray:
        scores = self.scores(obs)
        if self.use_masks:
            scores = np.where(np.asarray(info["action_mask"], dtype=bool), scores, -np.inf)
        return np.argmax(scores, axis=-1)
