"""Ray RLlib: PPO on MMRRouting across the cores of one machine or the machines of a Ray cluster.

stable-baselines3 (:mod:`agents.rl`) trains in one process. For more, this module hands the
sampling to RLlib's env runners, which Ray places on the cores of this machine or, after
``ray start`` on each machine (``--address auto``), across a cluster: a distributed engine that
exists, not a home-made one.

RLlib masks actions only through the observation, so the environment is ``MMRRouting-v0`` with
the SB3 agents' log features (:func:`agents.rl.add_log_features`), flattened (RLlib's default
network takes one vector), in :class:`~mmr_gym.wrappers.ActionMaskObservation`
(``{"observations": features, "action_mask": mask}``), and the policy is RLlib's own
``ActionMaskingTorchRLModule`` (its masking example, shipped in the ray wheel): masked models get
a logit of ``FLOAT_MIN``, so PPO samples only affordable ones. Episodes draw their budget ratio
from :data:`agents.rl.TRAIN_BUDGET_RATIOS` on the training split, as the SB3 agents do; the
trained module is scored by :func:`mmr_gym.evaluate.evaluate_policy` like every other policy.

Needs ``pip install 'mmr-gym[rllib]'`` (``ray[rllib]`` 2.60 pins gymnasium 1.2.2, which mmr-gym
supports). Typical use::

    python -m agents.rllib --iterations 50 --env-runners 2 --out runs/rllib
    python -m agents.rllib --address auto --env-runners 32 ...   # on a running Ray cluster
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from tqdm.auto import tqdm

import mmr_gym  # noqa: F401  (registers the environments)
from agents.rl import TRAIN_BUDGET_RATIOS, add_log_features, log_feature_space
from mmr_gym.evaluate import DEFAULT_BUDGET_RATIOS, PolicyResult, evaluate_policy
from mmr_gym.policy import Policy
from mmr_gym.wrappers import ActionMaskObservation

#: The name under which :func:`register` makes the environment known to RLlib (``env_config``:
#: keyword arguments of ``gym.make("MMRRouting-v0", ...)``).
ENV_NAME = "MMRRouting-rllib"


def network_input(obs: Mapping[str, np.ndarray], space: gym.spaces.Dict) -> np.ndarray:
    """What the network reads: the ``Dict`` observation with its log features, flattened in ``space``'s order."""
    return gym.spaces.flatten(space, add_log_features(obs))


def make_env(env_config: Mapping[str, Any]) -> gym.Env:
    """The environment RLlib's env runners build: :func:`network_input` observations, the mask beside them."""
    env = gym.make("MMRRouting-v0", **dict(env_config))
    space = log_feature_space(env.observation_space)
    flat = gym.spaces.flatten_space(space)
    env = gym.wrappers.TransformObservation(env, lambda obs: network_input(obs, space), flat)
    return ActionMaskObservation(env)


def training_env_config(env_kwargs: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """``env_kwargs`` completed for training (the training split, the budget range); never the test split."""
    config: dict[str, Any] = {"split": "train", "budget_ratio": TRAIN_BUDGET_RATIOS}
    config.update(env_kwargs or {})
    if config["split"] == "test":
        raise ValueError("RLlib agents train on the 'train' (or 'all') split; got split='test'")
    if "observation" in config:
        raise ValueError(
            "the RLlib environment flattens the Dict observation itself; do not pass 'observation'"
        )
    return config


def register() -> None:
    """Register :data:`ENV_NAME` with Ray Tune's registry (each process that builds configs calls it)."""
    from ray.tune.registry import register_env

    register_env(ENV_NAME, make_env)


def ppo_config(
    env_kwargs: Mapping[str, Any] | None = None,
    *,
    env_runners: int = 0,
    envs_per_runner: int = 8,
    train_batch_size: int = 4000,
    minibatch_size: int = 500,
    num_epochs: int = 10,
    lr: float = 3e-4,
    lambda_: float = 0.95,
    entropy_coeff: float = 0.01,
    hidden: Sequence[int] = (64, 64),
    seed: int = 0,
) -> Any:
    """An RLlib ``PPOConfig`` for masked routing (``env_runners=0``: sample in the driver process).

    Defaults follow :data:`agents.rl.HYPERPARAMS` ``["maskable-ppo"]`` where the two libraries
    share a knob (learning rate, GAE lambda, epochs, entropy bonus, network); they were not
    searched again for RLlib.
    """
    from ray.rllib.algorithms.ppo import PPOConfig
    from ray.rllib.core.rl_module.rl_module import RLModuleSpec
    from ray.rllib.examples.rl_modules.classes.action_masking_rlm import ActionMaskingTorchRLModule

    register()
    return (
        PPOConfig()
        .environment(ENV_NAME, env_config=training_env_config(env_kwargs))
        .env_runners(num_env_runners=env_runners, num_envs_per_env_runner=envs_per_runner)
        .training(
            train_batch_size_per_learner=train_batch_size,
            minibatch_size=minibatch_size,
            num_epochs=num_epochs,
            lr=lr,
            lambda_=lambda_,
            entropy_coeff=entropy_coeff,
        )
        .rl_module(
            rl_module_spec=RLModuleSpec(
                module_class=ActionMaskingTorchRLModule,
                # SB3's net_arch [64, 64]: that MLP for the policy and one for the value, linear heads
                model_config={"fcnet_hiddens": list(hidden), "head_fcnet_hiddens": []},
            )
        )
        .debugging(seed=seed)
    )


class RLlibPolicy(Policy):
    """A trained RLlib module (``algo.get_module()``) as a :class:`~mmr_gym.policy.Policy`.

    Acts deterministically: the most probable affordable model. Reads the ``Dict`` observation
    of ``MMRRouting-v0`` and computes the :func:`network_input` the module was trained on.
    """

    name = "RLlib-PPO"

    def __init__(self, module: Any, observation_space: gym.spaces.Dict, name: str | None = None) -> None:
        from ray.rllib.core.columns import Columns

        self.module = module
        self._space = log_feature_space(observation_space)
        self._obs, self._logits = Columns.OBS, Columns.ACTION_DIST_INPUTS
        if name is not None:
            self.name = name

    def act(self, obs: Any, info: dict[str, Any]) -> int:
        obs = network_input(obs, self._space)
        mask = np.asarray(info["action_mask"], dtype=np.float32)
        batch = {
            self._obs: {
                "observations": torch.as_tensor(obs, dtype=torch.float32)[None],
                "action_mask": torch.as_tensor(mask)[None],
            }
        }
        with torch.no_grad():
            logits = self.module.forward_inference(batch)[self._logits][0].numpy()
        # The module already pushed masked logits to FLOAT_MIN; -inf makes it exact.
        return int(np.argmax(np.where(mask > 0, logits, -np.inf)))


def train(config: Any, iterations: int, progress: bool = True) -> tuple[Any, list[dict[str, Any]]]:
    """Build the algorithm and run ``iterations`` training iterations; returns it and one row per iteration."""
    algo = config.build_algo()
    history = []
    bar = tqdm(range(iterations), desc="RLlib PPO", disable=not progress)
    for i in bar:
        result = algo.train()
        runners = result.get("env_runners", {})
        row = {
            "iteration": i + 1,
            "env_steps": int(runners.get("num_env_steps_sampled_lifetime", 0)),
            "episode_return_mean": float(runners.get("episode_return_mean", float("nan"))),
            "episode_len_mean": float(runners.get("episode_len_mean", float("nan"))),
        }
        history.append(row)
        bar.set_postfix(steps=row["env_steps"], ret=f"{row['episode_return_mean']:.2f}")
    return algo, history


def evaluate(module: Any, env_kwargs: Mapping[str, Any] | None = None, **kwargs: Any) -> PolicyResult:
    """Score a trained module over the budget sweep on the test split (``kwargs``: :func:`evaluate_policy`'s)."""
    test = {k: v for k, v in (env_kwargs or {}).items() if k != "budget_ratio"}
    env = gym.make("MMRRouting-v0", **{**test, "split": "test"}).unwrapped
    return evaluate_policy(RLlibPolicy(module, env.observation_space), env, **kwargs)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m agents.rllib",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--iterations", type=int, default=20, help="PPO training iterations")
    parser.add_argument("--env-runners", type=int, default=0, help="sampling workers (0: the driver samples)")
    parser.add_argument("--envs-per-runner", type=int, default=8)
    parser.add_argument("--train-batch-size", type=int, default=4000, help="env steps per iteration")
    parser.add_argument(
        "--address", default=None, help="a Ray cluster to join ('auto'); default: a local Ray"
    )
    parser.add_argument("--dataset", default=None, help="outcome table (default: the bundled one)")
    parser.add_argument("--episode-length", type=int, default=100, help="queries per episode")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--eval-seeds", default="0", help="comma-separated stream seeds of the evaluation")
    parser.add_argument("--max-queries", type=int, default=None, help="evaluate on this many test queries")
    parser.add_argument("--out", default="runs/rllib", help="directory for history.json and results.*")
    args = parser.parse_args(argv)
    try:
        import ray
    except ImportError:
        parser.error("Ray RLlib is not installed: pip install 'mmr-gym[rllib]'")

    from mmr_gym.report import markdown_table, write_report

    env_kwargs: dict[str, Any] = {"episode_length": args.episode_length}
    if args.dataset is not None:
        env_kwargs["dataset"] = args.dataset
    ray.init(address=args.address, include_dashboard=False, log_to_driver=False)
    try:
        config = ppo_config(
            env_kwargs,
            env_runners=args.env_runners,
            envs_per_runner=args.envs_per_runner,
            train_batch_size=args.train_batch_size,
            minibatch_size=min(500, args.train_batch_size),
            seed=args.seed,
        )
        algo, history = train(config, args.iterations)
        result = evaluate(
            algo.get_module(),
            env_kwargs,
            budget_ratios=DEFAULT_BUDGET_RATIOS,
            seeds=[int(s) for s in args.eval_seeds.split(",")],
            max_queries=args.max_queries,
        )
        algo.stop()
    finally:
        ray.shutdown()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "history.json").write_text(json.dumps(history, indent=2) + "\n", encoding="utf-8")
    context = {"iterations": args.iterations, "env_steps": history[-1]["env_steps"] if history else 0}
    files = write_report([result], out, title="RLlib PPO on MMRRouting", context=context)
    print(markdown_table([result]))
    print(f"wrote {out / 'history.json'} and {', '.join(str(p) for p in files.values())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
