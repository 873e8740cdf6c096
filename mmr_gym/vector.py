"""MMRRoutingVectorEnv: ``num_envs`` routing environments stepped as one set of numpy arrays.

The sub-environments have exactly the semantics of :class:`~mmr_gym.env.MMRRoutingEnv` (same
constructor arguments, budgets, masks, rewards, termination rules, infos and episode metrics):
both are shells over the episode core (:mod:`mmr_gym.episodes`). Here the episodes live in one
:class:`~mmr_gym.episodes.EpisodeBatch`, whose step is a fixed number of numpy expressions,
whatever ``num_envs`` is. They replay one shared :class:`~mmr_gym.context.RoutingContext`: the
table and every array derived from it exist once. This module adds what makes them a Gymnasium
``VectorEnv``: seeding, autoreset, and infos batched as ``SyncVectorEnv`` batches them.

Where the randomness comes from (the only randomness is at the start of an episode: its query
stream and, for a ``(low, high)`` budget range, its budget ratio) is chosen by ``stream_sampling``:

- ``"batched"`` (default, fast): one generator for the whole vector environment, as in
  Gymnasium's own ``CartPoleVectorEnv``, draws the streams of many episodes in one batched
  operation (:func:`draw_distinct_rows`, ahead of need) and the budget ratios of all
  sub-environments starting together in one call. Every stream is a uniform draw without
  replacement from the split (uniform over ordered sequences of distinct queries, independent
  across episodes), as a single environment's is, and the environment is reproducible: same
  seed and actions, same rollout; but sub-environment ``i`` does not replay the streams of a
  single environment seeded ``s + i``. Reseeding drops the streams drawn ahead.
- ``"per-env"`` (exact): sub-environment ``i`` owns one ``np.random.Generator`` and makes the
  calls of ``MMRRoutingEnv.reset``, in the same order. After ``reset(seed=s)`` sub-environment
  ``i`` behaves step for step like an ``MMRRoutingEnv`` reset with ``seed=s + i`` and auto-reset
  with ``seed=None``, i.e. like ``gymnasium.vector.SyncVectorEnv`` of single environments given
  the same seed. Each episode start costs one ``Generator.choice`` call (a Python-level loop
  over the sub-environments that start), which bounds the speed at many sub-environments.

Autoreset follows ``autoreset_mode``, with ``SyncVectorEnv``'s semantics for each of Gymnasium's
three modes:

- ``AutoresetMode.NEXT_STEP`` (default, like Gymnasium's ``CartPoleVectorEnv``): a sub-environment
  that terminated is reset by the *next* ``step``, which ignores its action and returns its first
  observation, reward 0 and only ``action_mask`` in its part of the info.
- ``AutoresetMode.SAME_STEP``: it is reset within the step that terminated it. That step returns its
  first observation, its step's reward and termination; its step's observation and info go to
  ``info["final_obs"]`` (an object array of single observations) and ``info["final_info"]``
  (batched, ``episode_metrics`` included), and its part of the info is the reset's
  ``action_mask``.
- ``AutoresetMode.DISABLED``: nothing is reset by ``step``; the caller resets the terminated
  sub-environments with ``reset(options={"reset_mask": mask})`` before stepping them again.

``reset(options={"reset_mask": mask})`` starts new episodes in the masked sub-environments only, in
every mode, as ``SyncVectorEnv`` does.

Returned arrays: every array returned by ``reset``/``step`` is either fresh (allocated for that
call, never written by the environment afterwards, so it is safe to keep and to modify) or, when
its content is the same every step (the ``_key`` masks, ``action_replaced`` when nothing was
replaced, ``rewards["cost_penalty"]`` when ``cost_weight`` is 0), one shared read-only array.
Internal state is never handed out; nothing the caller keeps changes under it.

Copies (``pickle``, ``copy.deepcopy``), before or during a run, continue exactly as the original
would: the state, the generators and the streams drawn ahead are all copied.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode
from gymnasium.vector.utils import batch_space

from mmr_gym.arrays import read_only
from mmr_gym.checks import MAX_TIME, check_int
from mmr_gym.config import DEFAULT_RATIO, EnvConfig
from mmr_gym.context import ContextFacts, RoutingContext
from mmr_gym.episodes import EpisodeBatch
from mmr_gym.records import INFO_KEYS, METRIC_FLOAT_KEYS, METRIC_INT_KEYS, METRIC_KEYS
from mmr_gym.render import FrameRenderer
from mmr_gym.scenarios import drifting_world
from mmr_gym.streams import STREAM_SAMPLINGS, BatchedSampler, PerEnvSampler, StreamPool
from mmr_gym.table import RoutingTable
from mmr_gym.threads import warn_if_torch_threads

#: Options of ``reset``: those of ``MMRRoutingEnv.reset``, per-sub-environment streams and budgets,
#: and ``reset_mask``.
RESET_OPTIONS = ("budget_ratio", "query_ids", "budget_ratios", "streams", "reset_mask", "time", "times")
# Streams drawn ahead in "batched" mode: num_envs clipped to [_MIN_BATCH, _MAX_BATCH], and at most
# _MAX_BATCH_ENTRIES queries. Larger batches save nothing per stream, and their temporaries (a few
# MB) come fresh from the OS on every refill: page faults cost more than the draws at 4096 envs.
_MIN_BATCH = 64
_MAX_BATCH = 1024
_MAX_BATCH_ENTRIES = 1 << 17


#: More sub-environments than this would not fit in memory (each holds per-step arrays of ``K`` models).
MAX_NUM_ENVS = 2**20


class MMRRoutingVectorEnv(gym.vector.VectorEnv, ContextFacts):
    """``num_envs`` copies of :class:`~mmr_gym.env.MMRRoutingEnv`, vectorized with numpy.

    Args:
        dataset: as for :class:`~mmr_gym.env.MMRRoutingEnv` (a bundled name, a path or a table).
        num_envs: number of sub-environments (>= 1).
        stream_sampling: ``"batched"`` (default): one generator draws the streams and budget
            ratios of all sub-environments in batches; each stream is uniform without replacement
            from the split, as a single environment's, but not a given single environment's.
            ``"per-env"``: one generator per sub-environment, which then replays
            ``MMRRoutingEnv`` (and ``SyncVectorEnv``) exactly, at several times the cost of an
            episode start (module docstring).
        info_keys: which keys of :data:`~mmr_gym.records.INFO_KEYS` the infos hold (``action_mask`` is always
            there). ``None`` (default): all of them, exactly as ``SyncVectorEnv`` gives.
            A training loop that reads only the episode statistics passes
            ``("episode_metrics",)``: the per-step string arrays (``model``, ``query_id``,
            ``dataset``) are then never built, which is most of what a step costs beyond the
            observation. ``outcomes`` is reported only with ``feedback="full"``.
        autoreset_mode: Gymnasium's ``AutoresetMode`` (or its value): ``NEXT_STEP`` (default),
            ``SAME_STEP`` or ``DISABLED``, each as ``SyncVectorEnv`` does it (module docstring).
        **kwargs: every keyword argument of :class:`~mmr_gym.env.MMRRoutingEnv` (``split``,
            ``episode_length``, ``budget_ratio``, ``cost_weight``, ``feedback``, ``observation``,
            ``invalid_action``, ...), with the same meaning and the same validation.

    Observations are the single environment's, batched with ``batch_space``: a ``Dict`` of
    ``[num_envs, ...]`` float32 arrays, or one ``[num_envs, D]`` array for ``observation="flat"``.
    Rewards are float64 ``[num_envs]``, terminations and truncations bool ``[num_envs]``
    (truncations are always False: episodes end only by the single environment's rules).
    Infos follow Gymnasium's vector convention, exactly as ``SyncVectorEnv`` merges the single
    environments' infos: ``info[key]`` is an array over sub-environments, ``info["_" + key]`` a
    read-only bool mask of the sub-environments that report ``key`` (nested for ``rewards``,
    ``outcomes`` and ``episode_metrics``); unreported entries are 0 (None for strings).
    ``info["action_mask"]`` is int8 ``[num_envs, K]``; :meth:`action_masks` gives it as bool.
    :meth:`render` gives a tuple of what each sub-environment's ``MMRRoutingEnv.render`` gives
    (``render_mode="ansi"``: lines, ``"rgb_array"``: frames, the same pixels).
    Arrays whose content never changes are shared and read-only (module docstring).

    A masked action in a sub-environment that is not being reset raises ``ValueError`` before any
    state changes with ``invalid_action="error"``; with ``"fallback"`` that sub-environment calls
    its cheapest affordable model instead (``info["action_replaced"]``).
    """

    metadata = {
        "render_modes": ["ansi", "rgb_array"],
        "render_fps": 4,
        "autoreset_mode": AutoresetMode.NEXT_STEP,
    }

    # Set in __init__ once the arguments are checked; a class default for close() after a failed __init__.
    _renderer: FrameRenderer | None = None

    #: Attributes and methods whose value has one entry per sub-environment (the SB3 adapter
    #: hands entry ``i`` to sub-environment ``i``; every other attribute is shared).
    per_env_attributes = ("budget", "budget_remaining", "episode_query_indices", "action_masks", "render")

    def __init__(
        self,
        dataset: str | RoutingTable | None = None,
        *,
        num_envs: int = 1,
        stream_sampling: str = "batched",
        info_keys: Sequence[str] | None = None,
        autoreset_mode: AutoresetMode | str = AutoresetMode.NEXT_STEP,
        **kwargs: Any,
    ) -> None:
        try:
            mode = AutoresetMode(autoreset_mode)
        except ValueError:
            allowed = [m.value for m in AutoresetMode]
            raise ValueError(f"unknown autoreset_mode {autoreset_mode!r}; allowed: {allowed}") from None
        if (
            isinstance(num_envs, (bool, np.bool_))
            or not isinstance(num_envs, (int, np.integer))
            or not 1 <= num_envs <= MAX_NUM_ENVS
        ):
            raise ValueError(f"num_envs must be an integer in [1, {MAX_NUM_ENVS}], got {num_envs!r}")
        if isinstance(info_keys, str):
            raise ValueError(f"info_keys must be a sequence of key names, got the string {info_keys!r}")
        keys = set(INFO_KEYS if info_keys is None else info_keys)
        unknown = sorted(keys - set(INFO_KEYS))
        if unknown:
            raise ValueError(f"unknown info_keys {unknown}; allowed: {list(INFO_KEYS)}")
        if stream_sampling not in STREAM_SAMPLINGS:
            raise ValueError(
                f"unknown stream_sampling {stream_sampling!r}; allowed: {list(STREAM_SAMPLINGS)}"
            )
        config = EnvConfig(dataset, **kwargs)
        self.ctx: RoutingContext = config.context()
        self.config = config = config.resolve(self.ctx)
        warn_if_torch_threads()  # once per process, if torch runs on several threads (mmr_gym.threads)
        self.num_envs = n = int(num_envs)
        self.stream_sampling = stream_sampling
        # An attribute beside the metadata, as SyncVectorEnv has it (TorchRL's GymWrapper reads it).
        self.autoreset_mode = mode
        self.metadata = {**type(self).metadata, "autoreset_mode": mode}
        self.info_keys = tuple(key for key in INFO_KEYS if key in keys)
        self._step_keys = frozenset(keys - {"episode_metrics"})
        self._report_episodes = "episode_metrics" in keys
        self.render_mode = config.render_mode  # gymnasium's attribute (the other arguments: ContextFacts)

        self._episodes = EpisodeBatch(self.ctx, config, n, track_calls=self.render_mode == "rgb_array")
        world = config.world(self.ctx)
        self._drift = drifting_world(world)
        self.layout = self._episodes.layout
        self.single_observation_space = self.layout.observation_space()
        self.single_action_space = gym.spaces.Discrete(self.ctx.n_models)
        self.observation_space = batch_space(self.single_observation_space, n)
        self.action_space = batch_space(self.single_action_space, n)
        self._everyone = read_only(np.ones(n, dtype=bool))
        self._prev_done = np.zeros(n, dtype=bool)
        self._prev_any_done = False
        self._started = False
        self._renderer = FrameRenderer(self.ctx.cost_estimate) if self.render_mode == "rgb_array" else None

        # Randomness (module docstring): one generator per sub-environment, or one for all of
        # them plus the streams it drew ahead.
        if stream_sampling == "batched":
            length = self.episode_length
            batch = max(1, min(max(_MIN_BATCH, n), _MAX_BATCH, _MAX_BATCH_ENTRIES // (length + 1)))
            # The oracle of a default episode depends on its stream only when its budget is fixed
            # (and, under a scenario, not on its time).
            fixed = self.budget_ratio is not None and not isinstance(self.budget_ratio, tuple)
            fixed = fixed and self._episodes.world is None
            oracle_budget = (
                float(self._episodes.total_of(self.budget_ratio))
                if fixed and self.ctx.lookups.all_binary
                else None
            )
            pool = StreamPool(
                self.ctx.split_indices.size,
                self.ctx.lookups.cheapest_correct_cost,
                length,
                batch,
                oracle_budget,
            )
            self._sampler: PerEnvSampler | BatchedSampler = BatchedSampler(n, pool)
        else:
            self._sampler = PerEnvSampler(n)

    # ------------------------------------------------------------------ public read-only facts
    @property
    def budget(self) -> np.ndarray:
        """float64 ``[num_envs]``: each sub-environment's total budget, in ``cost_unit`` (NaN: none)."""
        total = self._episodes.total
        return np.where(np.isfinite(total), total, np.nan)

    @property
    def budget_remaining(self) -> np.ndarray:
        """float64 ``[num_envs]``: each sub-environment's budget left (inf: no budget), >= 0."""
        return self._episodes.remaining()

    @property
    def episode_query_indices(self) -> list[np.ndarray]:
        """Table rows of each sub-environment's stream (copies). For oracles and logging, not agents."""
        return [self._episodes.stream_rows(i) for i in range(self.num_envs)]

    @property
    def np_random_seeds(self) -> tuple[int | None, ...]:
        """Per sub-environment, the seed its generator was last created from.

        With ``stream_sampling="batched"`` all sub-environments share one generator, so every
        entry is that generator's seed.
        """
        return tuple(self._sampler.seeds)

    def action_masks(self) -> np.ndarray:
        """bool ``[num_envs, K]``: the affordable models for each sub-environment's current query."""
        return self._episodes.mask.copy()

    def sub_env(self, i: int) -> SubEnvView:
        """Sub-environment ``i`` with the read-only facts a single environment offers (for policies)."""
        return SubEnvView(self, i)

    # ------------------------------------------------------------------ Gymnasium API
    def reset(
        self,
        *,
        seed: int | Sequence[int | None] | None = None,
        options: dict[str, Any] | None = None,
    ) -> tuple[Any, dict[str, Any]]:
        """Start a new episode in every sub-environment (or in those of ``options["reset_mask"]``).

        Args:
            seed: ``None`` (keep the generators; the first time, seed them from entropy), an int
                ``s`` (sub-environment ``i`` gets ``s + i``, as in ``SyncVectorEnv``) or a
                sequence of ``num_envs`` seeds (int or None). With ``stream_sampling="batched"``
                the one generator is seeded with ``s``; a sequence must then be ``SyncVectorEnv``'s
                ``[s, s + 1, ...]`` (what SB3's ``VecEnv.seed(s)`` makes) or all None.
            options: for every sub-environment reset and this episode only:

                - ``budget_ratio`` and ``query_ids`` as in ``MMRRoutingEnv.reset`` (one ratio, or
                  one stream all of them replay);
                - ``budget_ratios``: one ratio per sub-environment reset (a float, or None for no
                  budget), and ``streams``: one stream (a sequence of query ids) per
                  sub-environment reset; they replace ``budget_ratio`` and ``query_ids``;
                - ``reset_mask``: bool ``[num_envs]``, reset only these (after a first full reset),
                  as ``SyncVectorEnv`` does. The others keep their episodes, and the info holds
                  ``action_mask`` for the reset ones only (``info["_action_mask"]``);
                - ``time``: where on the timeline the new episodes start (``mmr_gym.scenarios``).
                  Without it a seeded sub-environment starts at 0 and the others continue their
                  timelines. ``times``: one such time per sub-environment reset instead.
        """
        n = self.num_envs
        options = dict(options or {})
        unknown = sorted(set(options) - set(RESET_OPTIONS))
        if unknown:
            raise ValueError(f"unknown reset option(s) {unknown}; allowed: {sorted(RESET_OPTIONS)}")
        reset_mask = options.pop("reset_mask", None)
        if reset_mask is not None:
            self._check_reset_mask(reset_mask)
        seeds = self._seeds(seed)
        envs = np.arange(n) if reset_mask is None else np.flatnonzero(reset_mask)
        start_times = self._start_times(options.pop("time", None), options.pop("times", None), envs)
        starts = self._requested_starts(options, envs)

        # Every argument is checked: only now does anything change.
        self._sampler.seed(envs.tolist(), seeds)
        super().reset(seed=seeds[0])
        episodes = self._episodes
        if reset_mask is None:
            episodes.forget_stream_ends()
        for group, stream, ratio in starts:
            # A seeded sub-environment starts its timeline anew; the others continue theirs.
            if start_times is None:
                times = self._episodes.next_times(group)
                seeded = np.array([seeds[i] is not None for i in group.tolist()], dtype=bool)
                times = np.where(seeded, 0, times)
            else:
                times = start_times[group]
            if stream is not None and stream.ndim == 2:  # replayed streams, one per row, and their ratios
                self._episodes.start(group, stream, ratio, None, times)
            else:
                self._start(group, stream=stream, ratio=ratio, times=times)
        self._prev_done = np.zeros(n, dtype=bool) if reset_mask is None else self._prev_done & ~reset_mask
        self._prev_any_done = np.count_nonzero(self._prev_done) > 0
        self._started = True
        remaining = episodes.remaining()
        if reset_mask is None:
            episodes.set_masks(remaining)
            obs = episodes.observation(remaining)
            return obs, {"action_mask": episodes.mask.view(np.int8).copy(), "_action_mask": self._everyone}
        episodes.first_masks(envs, remaining[envs])
        action_mask = np.zeros((n, self.ctx.n_models), dtype=np.int8)  # SyncVectorEnv's fill: 0
        action_mask[envs] = episodes.mask[envs]
        obs = episodes.observation(remaining)
        return obs, {"action_mask": action_mask, "_action_mask": reset_mask.copy()}

    def step(self, actions: Any) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Step every sub-environment. Those that terminated start a new episode as ``autoreset_mode`` says."""
        if not self._started:
            raise RuntimeError("step() called before reset()")
        if self._prev_any_done and self.autoreset_mode is AutoresetMode.DISABLED:
            envs = np.flatnonzero(self._prev_done).tolist()
            raise RuntimeError(
                f"sub-environments {envs} terminated and autoreset_mode is DISABLED: reset them first, "
                "with reset(options={'reset_mask': mask})"
            )
        episodes = self._episodes
        requested = episodes.check_actions(actions)
        done, any_done = self._prev_done, self._prev_any_done
        # Masked actions are judged against the mask the agent saw; sub-environments being reset
        # ignore their action (as SyncVectorEnv's do).
        chosen, replaced = episodes.judge_actions(requested, done, any_done)
        episodes.step_count += 1  # only now: an invalid action may have raised, changing nothing
        if any_done:
            self._start(np.flatnonzero(done))  # writes their first query into the slots
        result = episodes.step(requested, chosen, replaced, done, any_done)
        terminated = result.terminated
        self._prev_done = terminated
        self._prev_any_done = finished = np.count_nonzero(terminated) > 0

        info: dict[str, Any] = {
            "action_mask": episodes.mask.view(np.int8).copy(),
            "_action_mask": self._everyone,
        }
        if self._step_keys and not (any_done and np.count_nonzero(result.stepping) == 0):
            info.update(episodes.step_info(result, self._step_keys, self._everyone))
        if finished and self._report_episodes:
            mask = read_only(terminated.copy())
            info["episode_metrics"] = self._metrics_info(np.flatnonzero(terminated), mask)
            info["_episode_metrics"] = mask
        obs = episodes.observation(result.remaining)
        if finished and self.autoreset_mode is AutoresetMode.SAME_STEP:
            obs, info = self._reset_same_step(obs, info)
        return obs, result.reward, terminated.copy(), np.zeros(self.num_envs, dtype=bool), info

    def reset_finished(self) -> tuple[np.ndarray, Any, dict[str, Any]]:
        """Start the next episode *now* in the sub-environments that terminated on the last step.

        For same-step autoreset (stable-baselines3's convention, see :mod:`mmr_gym.sb3`); the
        draws are the ones the next ``step`` would have made. Returns the indices of the reset
        sub-environments, their first observations (batched over those indices only) and their
        reset info (``action_mask``, int8 ``[len(indices), K]``).
        """
        envs = np.flatnonzero(self._prev_done)
        remaining = np.zeros(0)
        if envs.size:
            self._start(envs)
            self._prev_done = np.zeros(self.num_envs, dtype=bool)
            self._prev_any_done = False
            remaining = np.maximum(self._episodes.total[envs] - self._episodes.spend[envs], 0.0)
            self._episodes.first_masks(envs, remaining)
        mask = self._episodes.mask[envs].view(np.int8)  # fancy indexing made a fresh array
        return envs, self._episodes.observation(remaining, envs), {"action_mask": mask}

    def render(self) -> tuple[str, ...] | tuple[np.ndarray, ...] | None:
        """One line (``"ansi"``) or one frame (``"rgb_array"``) per sub-environment, as ``MMRRoutingEnv.render``."""
        if self.render_mode is None:
            return None
        if not self._started:
            raise RuntimeError("render() called before reset()")
        episodes = self._episodes
        if self.render_mode == "rgb_array":
            ended = self._prev_done.tolist()
            return tuple(self._renderer(episodes.frame_state(i, ended[i])) for i in range(self.num_envs))
        return tuple(episodes.ansi_line(i) for i in range(self.num_envs))

    def close_extras(self, **kwargs: Any) -> None:
        if self._renderer is not None:
            self._renderer.close()

    # ------------------------------------------------------------------ internals
    def _seeds(self, seed: int | Sequence[int | None] | None) -> list[int | None]:
        n = self.num_envs
        if seed is None:
            return [None] * n
        if isinstance(seed, (int, np.integer)) and not isinstance(seed, (bool, np.bool_)):
            return [check_int("seed", seed, low=0) + i for i in range(n)]
        if isinstance(seed, (str, bytes, bool, np.bool_)) or not isinstance(seed, Sequence | np.ndarray):
            raise ValueError(
                f"seed must be None, an int or {n} seeds (one per sub-environment), got {seed!r}"
            )
        seeds = [None if s is None else check_int(f"seed[{i}]", s, low=0) for i, s in enumerate(seed)]
        if len(seeds) != n:
            raise ValueError(
                f"seed must be None, an int or {n} seeds (one per sub-environment), got {len(seeds)}"
            )
        return seeds

    def _start_times(self, time: Any, times: Any, envs: np.ndarray) -> np.ndarray | None:
        """``[num_envs]`` start times from the ``time``/``times`` options (filled at ``envs``), or
        None if neither was given."""
        if time is None and times is None:
            return None
        if time is not None and times is not None:
            raise ValueError("reset options 'time' and 'times' exclude each other: give one")
        start_times = np.zeros(self.num_envs, dtype=np.int64)
        if time is not None:
            start_times[envs] = check_int("options['time']", time, low=0, high=MAX_TIME)
            return start_times
        if isinstance(times, str | bytes) or not isinstance(times, Sequence | np.ndarray):
            raise ValueError(
                f"options['times'] must hold one time per sub-environment reset ({envs.size}), got {times!r}"
            )
        if len(times) != envs.size:
            raise ValueError(f"options['times'] must hold one time per sub-environment reset ({envs.size})")
        for j, (i, value) in enumerate(zip(envs.tolist(), times, strict=True)):
            start_times[i] = check_int(f"options['times'][{j}]", value, low=0, high=MAX_TIME)
        return start_times

    def _requested_starts(
        self, options: dict[str, Any], envs: np.ndarray
    ) -> list[tuple[np.ndarray, Any, Any]]:
        """The episodes ``reset`` starts in ``envs``, as groups ``(envs, replayed slots or None, ratio)``,
        every option checked (nothing has changed yet)."""
        if "streams" in options or "budget_ratios" in options:
            if "query_ids" in options or "budget_ratio" in options:
                raise ValueError(
                    "reset options 'streams'/'budget_ratios' replace 'query_ids'/'budget_ratio': give one kind"
                )
            return self._per_env_starts(
                options.get("streams"), options.get("budget_ratios", DEFAULT_RATIO), envs
            )
        stream, ratio = self.config.reset_request(
            self.ctx, options.get("query_ids"), options.get("budget_ratio", DEFAULT_RATIO)
        )
        return [(envs, stream, ratio)]

    def _per_env_starts(
        self, streams: Any, ratios: Any, envs: np.ndarray
    ) -> list[tuple[np.ndarray, Any, Any]]:
        m = envs.size
        for name, values in (("streams", streams), ("budget_ratios", ratios)):
            if values is None or (name == "budget_ratios" and isinstance(values, str)):
                continue
            if isinstance(values, str | bytes) or not isinstance(values, Sequence | np.ndarray):
                raise ValueError(
                    f"options[{name!r}] must hold one entry per sub-environment reset, got {values!r}"
                )
            if len(values) != m:
                raise ValueError(f"options[{name!r}] must hold one entry per sub-environment reset ({m})")
        starts = []
        replays: dict[int, list[tuple[int, np.ndarray, float]]] = {}  # by length: rows that need no draw
        for j, i in enumerate(envs.tolist()):
            stream_ids = None if streams is None else streams[j]
            ratio = ratios if isinstance(ratios, str) else ratios[j]
            if not isinstance(ratio, str) and isinstance(ratio, (tuple, list)):
                raise ValueError(f"options['budget_ratios'][{j}] must be one ratio (or None), got {ratio!r}")
            name = f"options['streams'][{j}]"
            stream, ratio = self.config.reset_request(self.ctx, stream_ids, ratio, name=name)
            if stream is not None and not isinstance(ratio, str):
                replays.setdefault(stream.size, []).append((i, stream, np.nan if ratio is None else ratio))
            else:
                starts.append((np.array([i]), stream, ratio))
        for rows in replays.values():  # one start per length: streams and ratios as arrays
            group = np.array([i for i, _, _ in rows])
            slots = np.stack([stream for _, stream, _ in rows])
            slots = np.concatenate((slots, slots[:, -1:]), axis=1)
            starts.append((group, slots, np.array([ratio for _, _, ratio in rows])))
        return starts

    def _start(
        self,
        envs: np.ndarray,
        *,
        stream: np.ndarray | None = None,
        ratio: Any = DEFAULT_RATIO,
        times: np.ndarray | None = None,
    ) -> None:
        """Draw the streams and budgets of new episodes in ``envs`` (or replay ``stream``) and start
        them at ``times`` on the timeline (default: where their previous episodes' streams end)."""
        length = self.episode_length if stream is None else stream.size
        wanted = self.budget_ratio if isinstance(ratio, str) else ratio
        if times is None:
            times = self._episodes.next_times(envs)
        drift = (self._drift, times) if self._drift is not None else None
        streams, ratios, oracle = self._sampler.draw(
            envs, self.ctx.split_indices.size, length, wanted, self.budget_sampling, stream, drift
        )
        if stream is not None:
            streams = np.append(stream, stream[-1])  # the same stream (and end column) for all
        self._episodes.start(envs, streams, ratio if ratios is None else ratios, oracle, times)

    def _metrics_info(self, envs: np.ndarray, mask: np.ndarray) -> dict[str, Any]:
        """The finished sub-environments' episode metrics batched as ``SyncVectorEnv`` batches them:
        arrays over all sub-environments (fills 0, None for strings), each ``_key`` the read-only
        ``mask`` of ``envs``. The numbers go into two fresh blocks (float64, int64), one
        assignment each."""
        n = self.num_envs
        metrics = self._episodes.episode_metrics(envs)
        # SyncVectorEnv types a key by its first value: float64 with budgets, objects (None) without.
        budgeted = np.isfinite(metrics["budget"])
        all_budget = np.count_nonzero(budgeted) == envs.size
        float_keys = list(METRIC_FLOAT_KEYS)
        if not all_budget:
            float_keys = [k for k in float_keys if k not in ("budget", "budget_ratio")]
        floats = np.zeros((len(float_keys), n))
        for j, key in enumerate(float_keys):
            floats[j, envs] = metrics[key]  # c_ref is one number for all
        ints = np.zeros((len(METRIC_INT_KEYS), n), dtype=np.int64)
        for j, key in enumerate(METRIC_INT_KEYS):
            ints[j, envs] = metrics[key]
        columns = {
            **dict(zip(float_keys, floats, strict=True)),
            **dict(zip(METRIC_INT_KEYS, ints, strict=True)),
        }
        cost_unit = np.empty(n, dtype=object)  # all None
        cost_unit[envs] = metrics["cost_unit"]
        columns["cost_unit"] = cost_unit
        if not all_budget:
            for key in ("budget", "budget_ratio"):
                column = np.full(n, None, dtype=object)
                column[envs] = [float(v) if b else None for v, b in zip(metrics[key], budgeted, strict=True)]
                columns[key] = column
        out = {key: columns[key] for key in METRIC_KEYS}
        for key in METRIC_KEYS:
            out["_" + key] = mask
        return out

    def _reset_same_step(self, obs: Any, info: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        """``AutoresetMode.SAME_STEP``: the sub-environments that terminated start their next episode now.

        As ``SyncVectorEnv`` does it: their step's observations go to ``info["final_obs"]`` (one
        single-environment observation each, None elsewhere) and their step's info to
        ``info["final_info"]``; in the returned observation and info their part is the reset's.
        """
        ended = read_only(self._prev_done)  # the step's terminations; reset_finished replaces them
        final_info = _reported_by(info, ended)
        envs, first_obs, reset_info = self.reset_finished()
        final_obs = np.full(self.num_envs, None, dtype=object)
        for i, last in zip(envs.tolist(), swap_first_observations(obs, envs, first_obs), strict=True):
            final_obs[i] = last
        info = _reported_by({k: v for k, v in info.items() if k != "action_mask"}, ~ended)
        action_mask = self._episodes.mask.view(
            np.int8
        ).copy()  # the steppers' next masks, the reset ones' first
        info.update(
            action_mask=action_mask,
            _action_mask=self._everyone,
            final_obs=final_obs,
            _final_obs=ended,
            final_info=final_info,
            _final_info=ended,
        )
        return obs, info

    def _check_reset_mask(self, reset_mask: Any) -> None:
        """``options["reset_mask"]`` as ``SyncVectorEnv`` accepts it: bool ``[num_envs]``, some True."""
        if not isinstance(reset_mask, np.ndarray):
            raise TypeError(f"options['reset_mask'] must be a numpy array, got {type(reset_mask)}")
        if reset_mask.shape != (self.num_envs,):
            raise ValueError(
                f"options['reset_mask'] must have shape ({self.num_envs},), got {reset_mask.shape}"
            )
        if reset_mask.dtype != np.bool_:
            raise TypeError(f"options['reset_mask'] must have dtype bool, got {reset_mask.dtype}")
        if not reset_mask.any():
            raise ValueError("options['reset_mask'] must mark at least one sub-environment")
        if not self._started:
            raise RuntimeError(
                "reset(options={'reset_mask': ...}) before a first reset() of every sub-environment"
            )


class SubEnvView(ContextFacts):
    """Sub-environment ``i`` of a vector env, seen as :class:`~mmr_gym.env.MMRRoutingEnv`'s read-only
    facts: what :meth:`mmr_gym.policy.Policy.begin_episode` may read (the context, ``c_ref``, the
    layout, the episode's budget and stream). It follows the vector env: read it when needed."""

    def __init__(self, venv: MMRRoutingVectorEnv, index: int) -> None:
        self.venv = venv
        self.index = index
        self.ctx = venv.ctx
        self.config = venv.config
        self.layout = venv.layout
        self.observation_space = venv.single_observation_space
        self.action_space = venv.single_action_space

    @property
    def unwrapped(self) -> SubEnvView:
        return self

    @property
    def budget(self) -> float | None:
        """This episode's total budget in ``cost_unit`` (None: no budget)."""
        total = float(self.venv._episodes.total[self.index])
        return total if np.isfinite(total) else None

    @property
    def budget_remaining(self) -> float:
        return float(self.venv._episodes.remaining()[self.index])

    @property
    def episode_query_indices(self) -> np.ndarray:
        """Table rows of this episode's stream (a copy). For oracles and logging, not for agents."""
        return self.venv._episodes.stream_rows(self.index)


def swap_first_observations(obs: Any, envs: np.ndarray, first_obs: Any) -> list[Any]:
    """Same-step autoreset (Gymnasium's ``SAME_STEP``, stable-baselines3's convention): write the
    first observations of the episodes just started in ``envs`` (``first_obs``, batched over
    ``envs``) into the step's fresh batched ``obs``, in place; return the observations they replace,
    one per sub-environment of ``envs`` (copies): the last of each finished episode."""
    if isinstance(obs, dict):
        last = [{key: value[i].copy() for key, value in obs.items()} for i in envs.tolist()]
        for key, value in obs.items():
            value[envs] = first_obs[key]
    else:
        last = [obs[i].copy() for i in envs.tolist()]
        obs[envs] = first_obs
    return last


def _reported_by(info: dict[str, Any], envs: np.ndarray) -> dict[str, Any]:
    """The part of a batched info that the sub-environments ``envs`` (bool) report, as SyncVectorEnv
    would batch it had only they reported: the others' entries are the fills (0, None for objects,
    False), their ``_key`` masks False, and a key that none of ``envs`` reports is left out.
    """
    part: dict[str, Any] = {}
    for key, value in info.items():
        if key.startswith("_"):
            continue
        reported = info["_" + key] & envs
        if not reported.any():
            continue
        if isinstance(value, dict):
            part[key] = _reported_by(value, envs)
        else:
            value = value.copy()
            value[~reported] = None if value.dtype == object else 0
            part[key] = value
        part["_" + key] = reported
    return part
