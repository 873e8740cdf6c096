"""MMRRoutingEnv: budgeted multimodal LLM routing as a sequential decision problem.

Each step presents one query of an offline outcome table; the action picks the model to call;
the table says whether that model answered correctly and what the call cost. An episode is a
stream of ``episode_length`` queries under one budget. ``DESIGN.md`` is the contract.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from mmr_gym.budget import BUDGET_FEATURES, BUDGET_SAMPLINGS, Budget, draw_budget_ratios
from mmr_gym.context import ContextFacts, RoutingContext, build_context
from mmr_gym.oracle import budgeted_oracle, per_query_oracle_accuracy
from mmr_gym.render import FrameRenderer, FrameState, cost_label
from mmr_gym.table import RoutingTable

SPLITS = ("train", "test", "all")
MODALITIES = ("mm", "text", "image")
FEEDBACKS = ("bandit", "full")
OBSERVATIONS = ("dict", "flat")
INVALID_ACTIONS = ("fallback", "error")


class MMRRoutingEnv(gym.Env, ContextFacts):
    """Route each query of a stream to one model, under a budget over the whole stream.

    Args:
        dataset: the outcome table: a bundled name (default ``"mmr-sim-default"``, simulated), a
            path (a saved RoutingTable directory or MMR-Bench CSV), a named loader (e.g.
            ``"math-v"``), or a :class:`RoutingTable`.
        dataset_kwargs: options for the loader, e.g. ``{"models": "all"}`` for MATH-V.
        split: which queries the episodes draw from: ``"train"``, ``"test"`` or ``"all"``. Cost
            estimates, ``c_ref`` and the feature projection always come from the training part.
        split_mode: ``"in"`` (random by query, seeded) or ``"out"`` (by dataset, see ``test_datasets``).
        train_fraction: training share of the queries for ``split_mode="in"`` (MMR-Bench uses 0.2).
        split_seed: seed of the ``"in"`` split (not of the episodes: those follow ``reset(seed=...)``).
        test_datasets: dataset names held out for ``split_mode="out"``.
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
        render_mode: ``None``, ``"ansi"`` (one line of text) or ``"rgb_array"`` (a frame of
            :data:`mmr_gym.render.FRAME_SHAPE`: the budget, the current query's cost estimates
            and mask, the last call; see :mod:`mmr_gym.render`).
    """

    metadata = {"render_modes": ["ansi", "rgb_array"], "render_fps": 4}
    # Set in __init__ once the arguments are checked; a class default for close() after a failed __init__.
    _renderer: FrameRenderer | None = None

    def __init__(
        self,
        dataset: str | RoutingTable | None = None,
        *,
        dataset_kwargs: dict[str, Any] | None = None,
        split: str = "train",
        split_mode: str = "in",
        train_fraction: float = 0.2,
        split_seed: int = 0,
        test_datasets: Sequence[str] | None = None,
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
    ) -> None:
        _check_choice("split", split, SPLITS)
        _check_choice("modality", modality, MODALITIES)
        _check_choice("feedback", feedback, FEEDBACKS)
        _check_choice("observation", observation, OBSERVATIONS)
        _check_choice("invalid_action", invalid_action, INVALID_ACTIONS)
        _check_choice("budget_sampling", budget_sampling, BUDGET_SAMPLINGS)
        if render_mode is not None:
            _check_choice("render_mode", render_mode, tuple(self.metadata["render_modes"]))
        if not np.isfinite(cost_weight) or cost_weight < 0:
            raise ValueError(f"cost_weight must be a finite number >= 0, got {cost_weight!r}")
        self.ctx: RoutingContext = build_context(
            dataset,
            dataset_kwargs=dataset_kwargs,
            split=split,
            split_mode=split_mode,
            train_fraction=train_fraction,
            split_seed=split_seed,
            test_datasets=test_datasets,
            modality=modality,
            cost_observed=cost_observed,
            obs_dim=obs_dim,
        )
        n_split = self.ctx.split_indices.size
        if int(episode_length) != episode_length or not 1 <= episode_length <= n_split:
            raise ValueError(
                f"episode_length must be an integer in [1, {n_split}] (the {split!r} split has "
                f"{n_split} queries), got {episode_length!r}"
            )
        self.episode_length = int(episode_length)
        self.budget_ratio = check_budget_ratio(budget_ratio, self.ctx.min_budget_ratio(self.episode_length))
        self.budget_sampling = budget_sampling
        self.cost_weight = float(cost_weight)
        self.feedback = feedback
        self.observation_mode = observation
        self.invalid_action = invalid_action
        self.render_mode = render_mode
        self._renderer = FrameRenderer(self.ctx.cost_estimate) if render_mode == "rgb_array" else None

        k = self.ctx.n_models
        self.action_space = spaces.Discrete(k)
        parts = {
            "query": spaces.Box(self.ctx.query_low, self.ctx.query_high, dtype=np.float32),
            "budget": spaces.Box(0.0, Budget.feature_high(), shape=(BUDGET_FEATURES,), dtype=np.float32),
            "model_costs": spaces.Box(0.0, self.ctx.model_costs_high, shape=(k,), dtype=np.float32),
        }
        if observation == "dict":
            self.observation_space = spaces.Dict(parts)
        else:
            self.observation_space = spaces.Box(
                np.concatenate([p.low for p in parts.values()]),
                np.concatenate([p.high for p in parts.values()]),
                dtype=np.float32,
            )

        self._n_models = self.ctx.n_models
        self._query_dim = self.ctx.query_obs.shape[1]

        # Episode state; set by reset().
        self._stream = np.zeros(0, dtype=np.int64)
        self._rows: list[int] = []
        self._t = 0
        self._budget = Budget(None, self.episode_length, self.ctx.c_ref)
        self._correct_sum = 0.0
        self._ended = True
        self._mask = np.zeros(self.ctx.n_models, dtype=bool)  # affordable models for the current query
        # (model called, correct, cost, model asked for) of the last step, for frames
        self._last_call: tuple[int, float, float, int] | None = None

    # ------------------------------------------------------------------ public read-only facts
    @property
    def episode_query_indices(self) -> np.ndarray:
        """Table rows of this episode's stream (a copy). For oracles and logging, not for agents."""
        return self._stream.copy()

    @property
    def budget(self) -> float | None:
        """This episode's total budget in ``cost_unit`` (None: no budget)."""
        return self._budget.total

    # ------------------------------------------------------------------ Gymnasium API
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        options = options or {}
        unknown = sorted(set(options) - {"query_ids", "budget_ratio"})
        if unknown:
            raise ValueError(f"unknown reset option(s) {unknown}; allowed: ['budget_ratio', 'query_ids']")
        if "query_ids" in options:
            self._stream = self.ctx.stream_from_ids(options["query_ids"])
        else:
            self._stream = self.np_random.choice(self.ctx.split_indices, self.episode_length, replace=False)
        self._rows = self._stream.tolist()  # the step reads Python ints: cheaper than numpy scalars
        length = len(self._rows)
        ratio = options.get("budget_ratio", self.budget_ratio)
        if "budget_ratio" in options:
            ratio = check_budget_ratio(ratio, self.ctx.min_budget_ratio(length))
        if isinstance(ratio, tuple):
            ratio = float(draw_budget_ratios(self.np_random, ratio, self.budget_sampling))
        self._budget = Budget(ratio, length, self.ctx.c_ref)
        self._t = 0
        self._correct_sum = 0.0
        self._ended = False
        self._last_call = None
        self._mask = self._affordable(self._rows[0])
        return self._observation(), {"action_mask": self._mask.astype(np.int8)}

    def step(self, action):
        if self._ended:
            raise RuntimeError("step() called after the episode ended; call reset() first")
        requested = _as_action(action, self._n_models)
        q = self._rows[self._t]
        mask = self._mask  # computed once, when this query became current
        chosen = requested
        if not mask[requested]:
            if self.invalid_action == "error":
                raise ValueError(
                    f"action {requested} ({self.model_names[requested]!r}) is masked: its estimated cost "
                    f"{self.ctx.cost_estimate[q, requested]:.6g} {self.cost_unit} exceeds the remaining budget "
                    f"{self._budget.remaining:.6g}; affordable actions: {np.flatnonzero(mask).tolist()}"
                )
            chosen = self._cheapest(q, mask)

        table = self.ctx.table
        correct = float(table.correct[q, chosen])
        cost = float(table.cost[q, chosen])
        self._budget.charge(cost)
        self._correct_sum += correct
        self._t += 1
        self._last_call = (chosen, correct, cost, requested)
        rewards = {"correct": correct, "cost_penalty": -self.cost_weight * cost / self.ctx.c_ref}

        if self._t < len(self._rows):
            self._mask = self._affordable(self._rows[self._t])
            # Nothing fits the rest of the budget: the remaining queries go unanswered.
            terminated = self._budget.overrun > 0.0 or not np.count_nonzero(self._mask)  # any(): slower
        else:
            self._mask = np.zeros(self.ctx.n_models, dtype=bool)
            terminated = True
        self._ended = terminated

        info: dict[str, Any] = {
            "action_mask": self._mask.astype(np.int8),
            "model": self.model_names[chosen],
            "model_index": chosen,
            "action_replaced": chosen != requested,
            "correct": correct,
            "cost": cost,
            "query_id": str(table.query_ids[q]),
            "dataset": str(table.datasets[q]),
            "rewards": rewards,
            "budget_remaining": self._budget.remaining,
        }
        if self.feedback == "full":
            info["outcomes"] = {"correct": table.correct[q].copy(), "cost": table.cost[q].copy()}
        if terminated:
            info["episode_metrics"] = self._episode_metrics()
        return self._observation(), rewards["correct"] + rewards["cost_penalty"], terminated, False, info

    def action_masks(self) -> np.ndarray:
        """The affordable models for the current query, as booleans (sb3-contrib's MaskablePPO)."""
        return self._mask.copy()

    def render(self) -> str | np.ndarray | None:
        if self.render_mode is None:
            return None
        if self._stream.size == 0:
            raise RuntimeError("render() called before reset()")
        if self.render_mode == "rgb_array":
            return self._renderer(self._frame_state())
        length = self._stream.size
        head = f"query {min(self._t + 1, length)}/{length}"
        if self._budget.total is not None:
            head += f", spent {self._budget.spend:.4g} of {self._budget.total:.4g} {self.cost_unit}"
        return f"{head}, correct so far {self._correct_sum:g}"

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
        super().close()

    # ------------------------------------------------------------------ internals
    def _frame_state(self) -> FrameState:
        budget, last = self._budget, self._last_call
        return FrameState(
            model_names=self.model_names,
            estimates=self.ctx.cost_estimate[self._current_row()],
            mask=self._mask,
            cost_label=cost_label(self.ctx.cost_observed),
            cost_unit=self.cost_unit,
            answered=self._t,
            length=self._stream.size,
            correct_sum=self._correct_sum,
            spend=budget.spend,
            total=budget.total,
            remaining=None if budget.total is None else budget.remaining,
            last_call=None if last is None else (self.model_names[last[0]], last[1], last[2]),
            ended=self._ended,
            replaced=None if last is None or last[3] == last[0] else self.model_names[last[3]],
        )

    def _current_row(self) -> int:
        return self._rows[min(self._t, len(self._rows) - 1)]

    def _affordable(self, q: int) -> np.ndarray:
        return self._budget.affordable(self.ctx.cost_estimate[q])

    def _cheapest(self, q: int, mask: np.ndarray) -> int:
        estimates = np.where(mask, self.ctx.cost_estimate[q], np.inf)
        return int(np.argmin(estimates))

    def _observation(self):
        q = self._current_row()
        remaining_steps = len(self._rows) - self._t
        budget = self._budget.features(remaining_steps)
        flat = np.concatenate((self.ctx.query_obs[q], budget, self.ctx.model_costs_obs[q]))
        if self.observation_mode == "flat":
            return flat
        # Views of the one fresh array: one allocation instead of three (the keys never overlap).
        d = self._query_dim
        return {
            "query": flat[:d],
            "budget": flat[d : d + BUDGET_FEATURES],
            "model_costs": flat[d + BUDGET_FEATURES :],
        }

    def _episode_metrics(self) -> dict[str, Any]:
        rows = self._stream
        length = rows.size
        correct = self.ctx.table.correct[rows]
        cost = self.ctx.table.cost[rows]
        budget = self._budget
        if budget.total is None:
            oracle_accuracy = per_query_oracle_accuracy(correct)
        else:
            oracle_accuracy = budgeted_oracle(correct, cost, budget.total, allow_skip=True).accuracy
        accuracy = self._correct_sum / length
        return {
            "accuracy": accuracy,
            "answered": self._t,
            "unanswered": length - self._t,
            "length": length,
            "spend": budget.spend,
            "budget": budget.total,
            "budget_ratio": budget.ratio,
            "overrun": budget.overrun,
            "oracle_accuracy": float(oracle_accuracy),
            "regret": float(oracle_accuracy) - accuracy,
            "c_ref": self.ctx.c_ref,
            "cost_unit": self.cost_unit,
        }


def _check_choice(name: str, value: Any, allowed: Sequence[str]) -> None:
    if value not in allowed:
        raise ValueError(f"unknown {name} {value!r}; allowed: {list(allowed)}")


def check_budget_ratio(ratio, minimum: float):
    """Validate a budget ratio (float, (low, high) or None); return it normalised."""
    if ratio is None:
        return None
    if isinstance(ratio, (tuple, list)):
        if len(ratio) != 2:
            raise ValueError(f"budget_ratio range must be (low, high), got {ratio!r}")
        low, high = (float(r) for r in ratio)
        if not (np.isfinite(low) and np.isfinite(high) and 0 < low <= high):
            raise ValueError(f"budget_ratio range must satisfy 0 < low <= high (finite), got {ratio!r}")
        _check_affordable_start(low, minimum)
        return (low, high)
    value = float(ratio)
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"budget_ratio must be > 0 (or None for no budget), got {ratio!r}")
    _check_affordable_start(value, minimum)
    return value


def _check_affordable_start(ratio: float, minimum: float) -> None:
    # Below this ratio some query's cheapest model would not fit an empty budget, leaving an
    # all-zero action mask at reset, which no agent can act on.
    if ratio < minimum:
        raise ValueError(
            f"budget_ratio {ratio:g} is too small: the cheapest model of some query would not fit the "
            f"whole budget; use budget_ratio >= {minimum:.6g} for this table and episode_length"
        )


def _as_action(action, n: int) -> int:
    if isinstance(action, (int, np.integer)) and 0 <= action < n:
        return int(action)  # the common case, without numpy conversions
    try:
        value = int(np.asarray(action).item())
    except (TypeError, ValueError):
        raise ValueError(f"action must be an integer in [0, {n}), got {action!r}") from None
    if not 0 <= value < n or value != np.asarray(action).item():
        raise ValueError(f"action must be an integer in [0, {n}), got {action!r}")
    return value
