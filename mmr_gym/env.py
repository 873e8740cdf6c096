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
from mmr_gym.scenarios import drifting_world
from mmr_gym.streams import draw_episode
from mmr_gym.table import RoutingTable
from mmr_gym.threads import warn_if_torch_threads

#: The options of :meth:`MMRRoutingEnv.reset`.
RESET_OPTIONS = ("budget_ratio", "query_ids", "time")


class MMRRoutingEnv(gym.Env, ContextFacts):
    """Route each query of a stream to one model, under a budget over the whole stream.

    ## Description

    A router answers a stream of queries, text with images, by calling one multimodal LLM per
    query; the models differ by orders of magnitude in price, and in what they answer well. The
    environment replays an offline outcome table (for every query and every model: was the answer correct, and
    what did the call cost) of the [MMR-Bench](https://arxiv.org/abs/2601.17814) kind, so an agent
    learns to route without calling a model. An episode is a stream of `episode_length` queries
    drawn without replacement from one split of the table, answered under one budget

        B = budget_ratio * episode_length * c_ref

    where `c_ref` is the mean per-query cost of the *reference model*, the most accurate single
    model on the training split (as in MMR-Bench's QNC). The bundled default table
    (`"mmr-sim-default"`) is simulated: do not report its figures as the named models'.

    ## Action Space

    `Discrete(K)`: the index of the model to call for the current query, `K` the table's models
    (`env.unwrapped.model_names`; 10 for the default table). Only the *affordable* models may be
    called: `info["action_mask"]` (int8) and `env.unwrapped.action_masks()` (booleans, for
    sb3-contrib's `MaskablePPO`, which finds it by itself; Gymnasium's wrappers forward no method,
    so through `gym.make` call it on `env.unwrapped` or as `env.get_wrapper_attr("action_masks")()`)
    list them. A masked action calls the cheapest affordable model instead and
    sets `info["action_replaced"]` (`invalid_action="fallback"`, the default), or raises
    `ValueError` (`invalid_action="error"`).

    ## Observation Space

    A `Dict` of float32 `Box`es with finite bounds (`observation="flat"`, id `MMRRoutingFlat-v0`:
    one `Box` of the three parts concatenated in this order, for SB3's `MlpPolicy`):

    | key | shape | min | max | what it holds |
    |---|---|---|---|---|
    | `query` | `(d,)` | the table's lowest value, at most 0 | the table's highest value, at least 0 | the query's feature channels concatenated (e.g. `text`, `image`), standardised with training-split statistics; a channel that `modality` masks is zeros; a table without features shows a one-hot of the query's dataset |
    | `budget` | `(3,)` | 0 | 1, 1, 10 | remaining budget fraction, remaining steps fraction, affordable spend per remaining query relative to `c_ref` (clipped to 10) |
    | `model_costs` | `(K,)` | 0 | the largest estimate, at least 1 | each model's cost *estimate* for this query relative to `c_ref` (the training-split mean of that model on the query's dataset; the true cost with `cost_observed=True`) |

    `d` is 32 on the default table (16 text + 16 image features). Agents read observations by
    name through `env.unwrapped.layout.decode(obs)`, never by position. Nothing in the
    observation or the info reveals the current query's outcome before the action.

    ## Rewards

    `correct[q, a] - cost_weight * cost[q, a] / c_ref` for the query `q` and the model `a` called,
    a Python `float` (components in `info["rewards"]`). With a budget and the default
    `cost_weight=0` the reward is plain correctness: 1 for a right answer, 0 for a wrong one
    (graded scores in [0, 1] on tables that have them).

    ## Starting State

    `reset(seed=...)` draws the stream (without replacement from the split) and, for a
    `(low, high)` `budget_ratio`, the episode's ratio; the first observation shows the first
    query, the full budget and, in the budget features, the ratio itself. Options, for this
    episode only: `query_ids` (a stream of the split to replay), `budget_ratio` (another ratio,
    range or None), `time` (where on a scenario's timeline the episode starts).

    ## Episode End

    The episode terminates when

    1. every query of the stream has been answered;
    2. a call's realized cost overran the remaining budget (it is charged, the overrun recorded:
       an API call cannot be undone); or
    3. no model is affordable for the next query: the queries left count as unanswered (wrong).

    It is never truncated (the remaining steps are in the observation). The last step's
    `info["episode_metrics"]` holds `accuracy` (over all the stream's queries, unanswered ones
    wrong), `answered`, `unanswered`, `length`, `spend`, `budget`, `budget_ratio`, `overrun`,
    `oracle_accuracy` (the budgeted hindsight oracle on the same stream and budget), `regret`
    (`oracle_accuracy - accuracy`), `c_ref`, `cost_unit` and `time`.

    ## Information

    The reset's info holds `action_mask`. A step's info also holds `model`, `model_index`,
    `action_replaced`, `correct`, `cost` (the table's cost unit) of the call, `query_id` and
    `dataset` of the query just answered, `rewards`, `budget_remaining` and, with
    `feedback="full"`, `outcomes` (every model's `correct` and `cost` for that query).

    ## Arguments

    Every argument is a keyword of `gym.make`:

    ```python
    import gymnasium as gym
    import mmr_gym  # registers MMRRouting-v0 and MMRRoutingFlat-v0

    env = gym.make("MMRRouting-v0", split="test", budget_ratio=(0.05, 1.5), episode_length=50)
    obs, info = env.reset(seed=0)
    obs, reward, terminated, truncated, info = env.step(env.action_space.sample(mask=info["action_mask"]))
    print(env.unwrapped.model_names[info["model_index"]], reward, info["budget_remaining"])
    ```

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
        train_ids: an explicit split: the query ids of the training part (alone: the test part is
            every other query). Unknown, repeated or overlapping ids raise ``ValueError``.
        test_ids: the query ids of the test part of an explicit split (alone: the training part is
            every other query).
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

    ## Vectorized environment

    `gym.make_vec("MMRRouting-v0", num_envs=64, vectorization_mode="vector_entry_point")` gives
    the native :class:`~mmr_gym.vector.MMRRoutingVectorEnv` (numpy over all sub-environments, the
    same episodes); :class:`~mmr_gym.sb3.SB3VecEnvAdapter` presents it to stable-baselines3.

    ## Version History

    - v0: the first version.
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
        warn_if_torch_threads()  # once per process, if torch runs on several threads (mmr_gym.threads)
        self.render_mode = config.render_mode  # gymnasium's attribute (the other arguments: ContextFacts)
        self._renderer = FrameRenderer(self.ctx.cost_estimate) if render_mode == "rgb_array" else None
        self._episode = Episode(self.ctx, config)
        world = config.world(self.ctx)
        self._drift = drifting_world(world)
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
        """The affordable models for the current query, as booleans (sb3-contrib's MaskablePPO).

        Gymnasium 1.x wrappers forward no attributes, so through ``gym.make`` (or any wrapper) call
        ``env.get_wrapper_attr("action_masks")()`` or ``env.unwrapped.action_masks()``; the same
        mask is in every ``info["action_mask"]`` (int8). MaskablePPO finds it by itself.
        """
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
