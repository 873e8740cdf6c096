"""MMRRoutingEnv: budgeted multimodal LLM routing as a sequential decision problem.

Each step presents one query of an offline outcome table; the action picks the model to call;
the table says whether that model answered correctly and what the call cost. An episode is a
stream of ``episode_length`` queries under one budget. ``DESIGN.md`` is the contract.

This module is the Gymnasium shell: the arguments are :class:`~mmr_gym.config.EnvConfig`'s, the
episode's rules are :class:`~mmr_gym.episode.Episode`'s (the scalar twin of the vector env's
:class:`~mmr_gym.episodes.EpisodeBatch`), the observation is
:class:`~mmr_gym.observation.ObservationLayout`'s.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from mmr_gym.actions import check_action
from mmr_gym.checks import MAX_TIME, check_int
from mmr_gym.config import DEFAULT_RATIO, EnvConfig
from mmr_gym.context import ContextFacts, RoutingContext
from mmr_gym.episode import Episode
from mmr_gym.observation import ObservationLayout
from mmr_gym.render import FrameRenderer
from mmr_gym.streams import draw_episode
from mmr_gym.table import RoutingTable

#: The options of :meth:`MMRRoutingEnv.reset`.
RESET_OPTIONS = ("budget_ratio", "query_ids", "time")


class MMRRoutingEnv(gym.Env, ContextFacts):
    """Route each query of a stream to one model, under a budget over the whole stream.

    Args:
        dataset: the outcome table: a bundled name (default ``"mmr-sim-default"``, simulated), a
            path (a saved RoutingTable directory or MMR-Bench CSV), a named loader (e.g.
            ``"math-v"``), or a :class:`RoutingTable`.
        dataset_kwargs: options for the loader, e.g. ``{"models": "all"}`` for MATH-V.
        split: which queries the episodes draw from: ``"train"``, ``"test"`` or ``"all"``. Cost
            estimates, ``c_ref`` and the feature projection always come from the training part.
        split_mode: ``"in"`` (random by query, seeded) or ``"out"`` (by dataset, see ``test_datasets``);
            ``"ids"`` when ``train_ids``/``test_ids`` give the split.
        train_fraction: training share of the queries for ``split_mode="in"`` (MMR-Bench uses 0.2).
        split_seed: seed of the ``"in"`` split (not of the episodes: those follow ``reset(seed=...)``).
        test_datasets: dataset names held out for ``split_mode="out"``.
        train_ids, test_ids: an explicit split: the query ids of the training part, of the test
            part, or both (one alone: the other part is every other query). Unknown, repeated or
            overlapping ids raise ``ValueError``.
        features: the encoders a loader computes the query features with, e.g. ``["minilm"]``,
            ``["minilm", "image-stats"]``, ``["clip:<model dir>"]`` or ``["tfidf"]`` (fitted on the
            training rows only), for a CSV, a call log or MATH-V (:func:`mmr_gym.datasets.load_table`);
            cached by content.
        episode_length: queries per episode, drawn without replacement from the split.
        budget_ratio: budget per episode as a multiple of ``episode_length * c_ref``, where ``c_ref``
            is the mean per-query cost of the reference model (the most accurate single model on the
            training split). A float, a ``(low, high)`` range drawn per episode (by ``budget_sampling``),
            or ``None`` for no budget.
        budget_sampling: how a ``(low, high)`` range is drawn: ``"uniform"`` or ``"log-uniform"``
            (uniform in log space: as many episodes per decade of budget, so tight budgets are
            not rare; see :func:`mmr_gym.budget.draw_budget_ratios`).
        cost_weight: reward penalty per unit of ``cost / c_ref`` (0 by default: with a budget the
            reward is plain correctness).
        modality: ``"mm"`` (every feature channel), ``"text"`` or ``"image"`` (the other channel is
            zeros, as in MMR-Bench's cross-modality transfer).
        feedback: ``"bandit"`` reveals only the chosen model's outcome; ``"full"`` adds every model's
            correctness and cost for the query just answered (``info["outcomes"]``).
        cost_observed: if True the agent sees each model's true cost for the current query (and the
            mask uses it); by default it sees estimates (training-split mean per dataset and model).
        obs_dim: if given, the query features are reduced to this many dimensions by a PCA fitted
            on the training split only.
        observation: ``"dict"`` (``Dict`` of ``query``, ``budget``, ``model_costs``) or ``"flat"``
            (their concatenation in that order, for ``MlpPolicy``).
        invalid_action: what a masked (unaffordable) action does: ``"fallback"`` calls the cheapest
            affordable model instead (``info["action_replaced"]`` is True), ``"error"`` raises.
        scenario: a world that changes along the timeline of queries served (prices, outages, new
            models, silent regressions, traffic drift): a preset name
            (:func:`mmr_gym.scenarios.available`) or a :class:`mmr_gym.scenarios.Scenario`. None
            (default): a world that never changes.
        render_mode: ``None``, ``"ansi"`` (one line of text) or ``"rgb_array"`` (a frame of
            :data:`mmr_gym.render.FRAME_SHAPE`: the budget, the current query's cost estimates
            and mask, the last call; see :mod:`mmr_gym.render`).
    """

    metadata = {"render_modes": ["ansi", "rgb_array"], "render_fps": 4}
    # Set in __init__ once the arguments are checked; a class default for close() after a failed __init__.
    _renderer: FrameRenderer | None = None

    def __init__(
        self,
        dataset: str | Path | RoutingTable | None = None,
        *,
        dataset_kwargs: dict[str, Any] | None = None,
        split: str = "train",
        split_mode: str = "in",
        train_fraction: float = 0.2,
        split_seed: int = 0,
        test_datasets: Sequence[str] | None = None,
        train_ids: Sequence[str] | None = None,
        test_ids: Sequence[str] | None = None,
        features: str | Sequence[str] | None = None,
        episode_length: int = 100,
        budget_ratio: float | tuple[float, float] | None = 0.5,
        budget_sampling: str = "uniform",
        cost_weight: float = 0.0,
        modality: str = "mm",
        feedback: str = "bandit",
        cost_observed: bool = False,
        obs_dim: int | None = None,
        observation: str = "dict",
        invalid_action: str = "fallback",
        render_mode: str | None = None,
        scenario: str | Any | None = None,
    ) -> None:
        config = EnvConfig(
            dataset,
            dataset_kwargs=dataset_kwargs,
            split=split,
            split_mode=split_mode,
            train_fraction=train_fraction,
            split_seed=split_seed,
            test_datasets=test_datasets,
            train_ids=train_ids,
            test_ids=test_ids,
            features=features,
            episode_length=episode_length,
            budget_ratio=budget_ratio,
            budget_sampling=budget_sampling,
            cost_weight=cost_weight,
            modality=modality,
            feedback=feedback,
            cost_observed=cost_observed,
            obs_dim=obs_dim,
            observation=observation,
            invalid_action=invalid_action,
            render_mode=render_mode,
            scenario=scenario,
        )
        self.ctx: RoutingContext = config.context()
        self.config = config = config.resolve(self.ctx)
        self.episode_length = config.episode_length
        self.budget_ratio = config.budget_ratio
        self.budget_sampling = config.budget_sampling
        self.cost_weight = config.cost_weight
        self.feedback = config.feedback
        self.observation_mode = config.observation
        self.invalid_action = config.invalid_action
        self.render_mode = config.render_mode
        self._renderer = FrameRenderer(self.ctx.cost_estimate) if render_mode == "rgb_array" else None
        self._episode = Episode(self.ctx, config)
        world = config.world(self.ctx)
        self._drift = world if world is not None and world.scenario.has_drift else None
        self.layout: ObservationLayout = self._episode.layout
        self.action_space = spaces.Discrete(self.ctx.n_models)
        self.observation_space = self.layout.observation_space()
        self._n_models = self.ctx.n_models

    # ------------------------------------------------------------------ public read-only facts
    @property
    def episode_query_indices(self) -> np.ndarray:
        """Table rows of this episode's stream (a copy). For oracles and logging, not for agents."""
        return self.ctx.lookups.table_rows.take(np.asarray(self._episode.slots, dtype=np.int64))

    @property
    def budget(self) -> float | None:
        """This episode's total budget in ``cost_unit`` (None: no budget)."""
        return self._episode.budget.total

    @property
    def budget_remaining(self) -> float:
        """This episode's budget left in ``cost_unit`` (``inf``: no budget), never negative."""
        return self._episode.budget.remaining

    # ------------------------------------------------------------------ Gymnasium API
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        """Start an episode: a stream of ``episode_length`` queries drawn without replacement from the
        split, under the configured budget.

        Options (this episode only): ``query_ids``, a stream to replay (distinct query ids of the
        split, a sequence of strings); ``budget_ratio``, a budget ratio (or None, or a
        ``(low, high)`` range) instead of the configured one; ``time``, where on the timeline the
        episode starts (:mod:`mmr_gym.scenarios`). Without it a seeded reset starts the timeline at
        0 and a reset without a seed continues it where the last episode's stream ended.
        """
        super().reset(seed=seed)
        options = options or {}
        unknown = sorted(set(options) - set(RESET_OPTIONS))
        if unknown:
            raise ValueError(f"unknown reset option(s) {unknown}; allowed: {list(RESET_OPTIONS)}")
        time = options.get("time")
        if time is not None:
            time = check_int("options['time']", time, low=0, high=MAX_TIME)
        stream, ratio = self.config.reset_request(
            self.ctx, options.get("query_ids"), options.get("budget_ratio", DEFAULT_RATIO)
        )
        if isinstance(ratio, str):
            ratio = self.budget_ratio
        episode = self._episode
        if time is None:
            time = 0 if seed is not None or not episode.started else episode.time0 + len(episode.slots)
        length = self.episode_length if stream is None else stream.size
        drift = (self._drift, time) if self._drift is not None else None
        slots, ratio = draw_episode(
            self.np_random, self.ctx.split_indices.size, length, ratio, self.budget_sampling, stream, drift
        )
        episode.start(slots, ratio, time)
        return self._episode.observation(), {"action_mask": self._episode.mask.astype(np.int8)}

    def step(self, action):
        episode = self._episode
        if episode.ended:
            if not episode.started:
                raise RuntimeError("step() called before reset()")
            raise RuntimeError("step() called after the episode ended; call reset() first")
        requested = check_action(action, self._n_models)
        chosen, correct, cost, cost_penalty, terminated = episode.step(requested)
        info = episode.step_info(chosen, requested, correct, cost, cost_penalty)
        if terminated:
            info["episode_metrics"] = episode.metrics()
        return episode.observation(), correct + cost_penalty, terminated, False, info

    def action_masks(self) -> np.ndarray:
        """The affordable models for the current query, as booleans (sb3-contrib's MaskablePPO)."""
        return self._episode.mask.copy()

    def render(self) -> str | np.ndarray | None:
        if self.render_mode is None:
            return None
        if not self._episode.started:
            raise RuntimeError("render() called before reset()")
        if self.render_mode == "rgb_array":
            return self._renderer(self._episode.frame_state())
        return self._episode.ansi_line()

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
        super().close()
