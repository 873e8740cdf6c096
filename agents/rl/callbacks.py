"""Callbacks for SB3 training: routing figures to TensorBoard, evaluation on fixed streams, a progress bar."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sb3_contrib.common.maskable.callbacks import MaskableEvalCallback
from stable_baselines3.common.callbacks import BaseCallback, EvalCallback
from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm
from stable_baselines3.common.vec_env import VecEnv

from mmr_gym.progress import progress


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
    """Progress over training timesteps (:func:`mmr_gym.progress.progress`): a tqdm bar on a
    terminal, a few plain lines elsewhere. ``desc`` names the run (algorithm, seed).

    PPO-like algorithms collect a rollout quickly and then spend most of their time training on it:
    their steps are counted when the training on them is done (at the next rollout), so that the
    rate, and the time left, include the training. Off-policy algorithms (DQN) train as they step.
    """

    def __init__(self, total: int, desc: str) -> None:
        super().__init__()
        self._total, self._desc = total, desc
        self._bar: Any = None
        self._per_rollout = False

    def _on_training_start(self) -> None:
        self._bar = progress(total=self._total, desc=self._desc, unit="steps")
        self._per_rollout = isinstance(self.model, OnPolicyAlgorithm)

    def _on_rollout_start(self) -> None:
        if self._per_rollout:
            self._catch_up()

    def _on_step(self) -> bool:
        if not self._per_rollout:
            self._bar.update(self.training_env.num_envs)
        return True

    def _on_training_end(self) -> None:
        if self._bar is not None:
            self._catch_up()
            self._bar.close()

    def _catch_up(self) -> None:
        self._bar.update(self.num_timesteps - self._bar.n)
