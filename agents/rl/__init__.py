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

The package: :mod:`agents.rl.hyperparams` (algorithms and hyperparameters), :mod:`agents.rl.envs`
(training environments), :mod:`agents.rl.features` (log features), :mod:`agents.rl.callbacks`,
:mod:`agents.rl.training` (train, save, load), :mod:`agents.rl.policy` (:class:`SB3Policy`) and
:mod:`agents.rl.threads` (:func:`torch_threads`).

Torch threads: these networks are small, and one torch thread is the fast path (on a busy 2-core
machine, 10x faster than torch's default of two). :func:`train_agent` trains on one thread by
default and restores the caller's count; in a script of your own, wrap training in
``with torch_threads(1):`` (or call ``torch.set_num_threads(1)``). Importing this package changes
nothing in torch.

Hyperparameters (:data:`HYPERPARAMS`) come from a small search on a validation split carved out of
the training split (:func:`validation_split`; the test split is never used to choose anything).
See the comment above :data:`HYPERPARAMS` for what was searched and what it found.
"""

from agents.rl.callbacks import (
    FixedStreamsEvalCallback,
    FixedStreamsMaskableEvalCallback,
    RoutingMetricsCallback,
    TqdmCallback,
)
from agents.rl.envs import ENV_ID, VEC_ENV_BACKENDS, make_vec_env, training_env_kwargs, validation_split
from agents.rl.features import LOG_FLOOR, VecLogFeatures, add_log_features, log_feature_space
from agents.rl.hyperparams import ALGOS, DISPLAY_NAMES, HYPERPARAMS, N_ENVS, TRAIN_BUDGET_RATIOS, algo_name
from agents.rl.policy import SB3Policy
from agents.rl.threads import torch_threads
from agents.rl.training import load_agent, train_agent, validation_score

__all__ = [
    "ALGOS",
    "DISPLAY_NAMES",
    "ENV_ID",
    "HYPERPARAMS",
    "LOG_FLOOR",
    "N_ENVS",
    "TRAIN_BUDGET_RATIOS",
    "VEC_ENV_BACKENDS",
    "FixedStreamsEvalCallback",
    "FixedStreamsMaskableEvalCallback",
    "RoutingMetricsCallback",
    "SB3Policy",
    "TqdmCallback",
    "VecLogFeatures",
    "add_log_features",
    "algo_name",
    "load_agent",
    "log_feature_space",
    "make_vec_env",
    "torch_threads",
    "train_agent",
    "training_env_kwargs",
    "validation_score",
    "validation_split",
]
