"""Stream sampling: which queries an episode visits, in which order.

An episode's stream is ``length`` distinct queries of the split, uniform over ordered sequences.
Streams are drawn as *slots* (positions in the split, ``ctx.split_indices``), which index the
per-split lookups (:class:`~mmr_gym.context.SplitLookups`).

- :func:`draw_stream`: one stream from one generator, as ``MMRRoutingEnv.reset`` draws it (and
  each sub-environment of the vector env with ``stream_sampling="per-env"``).
- :func:`draw_distinct_rows` and :class:`StreamPool`: many streams from one generator in one
  batched operation, drawn ahead (the vector env's default ``stream_sampling="batched"``).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import numpy as np
from gymnasium.utils import seeding

from mmr_gym.budget import draw_budget_ratios
from mmr_gym.oracle import greedy_accuracy

#: How the vector env draws streams: one generator per sub-environment, or one for all of them.
STREAM_SAMPLINGS = ("per-env", "batched")


def draw_stream(rng: np.random.Generator, n_split: int, length: int) -> np.ndarray:
    """One stream: ``length`` distinct slots in ``[0, n_split)``, by ``rng.choice`` without replacement.

    ``choice`` over positions, then indexing the split, draws exactly what ``choice`` over the
    split's rows draws: the same generator calls, the same queries.
    """
    return rng.choice(n_split, length, replace=False)


def draw_drift_stream(rng: np.random.Generator, world: Any, start: int, length: int) -> np.ndarray:
    """A stream under a scenario's traffic drift: the dataset of the query at time ``t`` is drawn
    with the world's weights at ``t``, the query uniformly among that dataset's queries of the split
    (distinct within the stream; a dataset that runs out passes its positions to the others)."""
    weights = world.dataset_weights(start + np.arange(length))
    cumulative = np.cumsum(weights, axis=1)
    datasets = (rng.random(length)[:, None] > cumulative / cumulative[:, -1:]).sum(axis=1)
    datasets = np.minimum(datasets, weights.shape[1] - 1)
    supply = np.bincount(world.dataset_of_slot, minlength=weights.shape[1])
    counts = np.bincount(datasets, minlength=weights.shape[1])
    for d in np.flatnonzero(counts > supply).tolist():  # rare: more positions than queries
        extra = np.flatnonzero(datasets == d)[supply[d] :]
        for position in extra.tolist():
            spare = supply - np.bincount(datasets, minlength=supply.size)
            datasets[position] = int(np.argmax(spare))
    slots = np.empty(length, dtype=np.int64)
    for d in np.unique(datasets).tolist():
        positions = np.flatnonzero(datasets == d)
        candidates = np.flatnonzero(world.dataset_of_slot == d)
        slots[positions] = rng.choice(candidates, positions.size, replace=False)
    return slots


def drift_order(world: Any, slots: np.ndarray, seed: int) -> np.ndarray:
    """``slots`` (each once) in an order whose dataset mix follows the world's traffic drift: each
    dataset's queries are spread over the timeline ``0 .. len(slots) - 1`` by its weight curve
    (uniformly where it never weighs), then all are sorted by time (seeded)."""
    rng = np.random.default_rng(seed)
    times = np.arange(slots.size)
    weights = world.dataset_weights(times)
    keys = np.empty(slots.size)
    of_slot = world.dataset_of_slot[slots]
    for d in np.unique(of_slot).tolist():
        members = np.flatnonzero(of_slot == d)
        density = weights[:, d] if weights[:, d].sum() > 0 else np.ones(slots.size)
        cdf = np.cumsum(density) / density.sum()
        keys[members] = np.searchsorted(cdf, rng.random(members.size)) + rng.random(members.size)
    return slots[np.argsort(keys, kind="stable")]


def draw_episode(
    rng: np.random.Generator,
    n_split: int,
    length: int,
    ratio: float | tuple[float, float] | None,
    sampling: str,
    stream: np.ndarray | None = None,
    drift: tuple[Any, int] | None = None,
) -> tuple[np.ndarray, float | None]:
    """One episode's randomness, in its order: the stream (unless ``stream`` replays one; under a
    scenario's traffic drift ``(world, start time)`` by :func:`draw_drift_stream`), then, for a
    ``(low, high)`` budget ratio range, the ratio. Returns ``(slots, ratio)``."""
    if stream is not None:
        slots = stream
    elif drift is not None:
        slots = draw_drift_stream(rng, drift[0], drift[1], length)
    else:
        slots = draw_stream(rng, n_split, length)
    if isinstance(ratio, tuple):
        ratio = float(draw_budget_ratios(rng, ratio, sampling))
    return slots, ratio


class PerEnvSampler:
    """``stream_sampling="per-env"``: one generator per sub-environment, each drawing as a single
    environment does (:func:`draw_episode`), so sub-environment ``i`` seeded ``s + i`` replays an
    ``MMRRoutingEnv`` seeded ``s + i`` (``SyncVectorEnv``'s seeding)."""

    def __init__(self, num_envs: int) -> None:
        self.rngs: list[np.random.Generator | None] = [None] * num_envs
        self.seeds: list[int | None] = [None] * num_envs

    def seed(self, envs: Sequence[int], seeds: Sequence[int | None]) -> None:
        """Reseed the sub-environments ``envs`` from ``seeds`` (one per sub-environment of the vector
        env); as in ``SyncVectorEnv``, a None seed keeps a generator that exists."""
        for i in envs:
            if seeds[i] is not None or self.rngs[i] is None:
                self.rngs[i], self.seeds[i] = seeding.np_random(seeds[i])

    def draw(
        self,
        envs: np.ndarray,
        n_split: int,
        length: int,
        ratio: float | tuple[float, float] | None,
        sampling: str,
        stream: np.ndarray | None,
        drift: tuple[Any, np.ndarray] | None = None,
    ) -> tuple[np.ndarray | None, np.ndarray | None, None]:
        """Streams ``[m, length + 1]`` (the last slot repeated; None when ``stream`` is replayed), ratios
        ``[m]`` (None: not a range) and no precomputed oracle, for the sub-environments ``envs``;
        ``drift``: ``(world, start times [m])`` under a scenario's traffic drift."""
        # The one loop over sub-environments: each generator makes a single environment's calls.
        rngs = [self.rngs[i] for i in envs.tolist()]
        draws = [
            draw_episode(
                rng,
                n_split,
                length,
                ratio,
                sampling,
                stream,
                None if drift is None else (drift[0], int(drift[1][j])),
            )
            for j, rng in enumerate(rngs)
        ]
        ratios = np.array([d[1] for d in draws]) if isinstance(ratio, tuple) else None
        if stream is not None:
            return None, ratios, None
        positions = np.array([d[0] for d in draws], dtype=np.int64).reshape(envs.size, length)
        return np.concatenate((positions, positions[:, -1:]), axis=1), ratios, None


class BatchedSampler:
    """``stream_sampling="batched"``: one generator for all sub-environments (as in Gymnasium's
    ``CartPoleVectorEnv``), with streams drawn ahead by a :class:`StreamPool` and the ratios of the
    sub-environments that start together drawn in one call."""

    def __init__(self, num_envs: int, pool: StreamPool) -> None:
        self.num_envs = num_envs
        self.pool = pool
        self.rng: np.random.Generator | None = None
        self.seeds: list[int | None] = [None] * num_envs

    def seed(self, envs: Sequence[int], seeds: Sequence[int | None]) -> None:
        """(Re)seed the one generator with ``seeds[0]`` and drop the streams drawn ahead. ``seeds``
        must be all None or ``SyncVectorEnv``'s ``[s, s + 1, ...]`` (what SB3's ``VecEnv.seed(s)`` makes)."""
        base = seeds[0]
        consecutive = base is not None and list(seeds) == [base + i for i in range(len(seeds))]
        if not (consecutive or all(s is None for s in seeds)):
            raise ValueError(
                "stream_sampling='batched' has one generator for all sub-environments: seed must be "
                f"None, an int s, or [s, s + 1, ...] (SyncVectorEnv's convention), got {list(seeds)}"
            )
        if base is not None or self.rng is None:
            self.rng, seed = seeding.np_random(base)
            self.seeds = [seed] * self.num_envs
            self.pool.restart(self.rng)

    def draw(
        self,
        envs: np.ndarray,
        n_split: int,
        length: int,
        ratio: float | tuple[float, float] | None,
        sampling: str,
        stream: np.ndarray | None,
        drift: tuple[Any, np.ndarray] | None = None,
    ) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None]:
        """Streams ``[m, length + 1]`` from the pool with their oracle accuracies (or None when
        ``stream`` is replayed) and ratios ``[m]`` (None: not a range). Under a scenario's traffic
        drift (``(world, start times [m])``) the streams are drawn one by one, as their times say."""
        streams = oracle = None
        if stream is None and drift is not None:
            rows = [draw_drift_stream(self.rng, drift[0], int(t), length) for t in drift[1].tolist()]
            positions = np.array(rows, dtype=np.int64).reshape(envs.size, length)
            streams = np.concatenate((positions, positions[:, -1:]), axis=1)
        elif stream is None:
            streams, oracle = self.pool.take(envs.size)
        ratios = (
            draw_budget_ratios(self.rng, ratio, sampling, envs.size) if isinstance(ratio, tuple) else None
        )
        return streams, ratios, oracle


def draw_distinct_rows(rng: np.random.Generator, n: int, length: int, count: int) -> np.ndarray:
    """``count`` independent rows of ``length`` distinct integers in ``[0, n)``, each uniform.

    Each row is uniformly distributed over the ordered sequences of ``length`` distinct values
    (the distribution of ``rng.choice(n, length, replace=False)``, not its draws), and the rows
    are independent; all rows are drawn together.

    For ``length <= n / 4``: rejection of repeats, batched. Every entry is drawn uniformly; then,
    round after round, entries that repeat a value of their row are drawn again. Which entries are
    drawn again depends only on positions and on which entries are equal, never on the values, so
    the result is invariant under any relabeling of the values, row by row; the only such
    distribution over rows of distinct values is the uniform one (relabelings act transitively).
    Round 1 sorts ``(row * n + value) * 2**b + position`` per row, which orders the whole batch:
    the later occurrences of a value are redrawn. Round 2 looks the new values up in that sorted
    array (and among themselves); later rounds, with few entries left, compare them with their
    rows. Longer rows, where repeats would need many rounds, are the first ``length`` entries of
    ``rng.permuted`` rows (a Fisher-Yates shuffle per row).

    Returns ``[count, length]`` integers: int32 when ``count * n`` is small enough, else int64.
    """
    if not 1 <= length <= n:
        raise ValueError(f"length must be in [1, n={n}], got {length}")
    if count == 0:
        return np.zeros((0, length), dtype=np.int64)
    if 4 * length > n:
        return _permuted_rows(rng, n, length, count)
    bits = max(int(length - 1).bit_length(), 1)
    low_bits = (1 << bits) - 1
    dtype = np.int32 if ((count * n) << bits) < 2**31 else np.int64  # int32 keys sort faster
    values = rng.integers(0, n, (count, length), dtype=dtype)
    flat = values.reshape(-1)
    keys = values << bits
    keys += _key_offsets(count, length, n, bits, dtype)  # + (row * n) * 2**bits + position
    keys.sort(axis=1)  # rows are in ascending key ranges: the flat array is sorted too
    keys = keys.reshape(-1)
    # Equal (row, value) differ only in the position bits; the earliest position comes first.
    later = np.flatnonzero((keys[1:] ^ keys[:-1]) <= low_bits) + 1
    if later.size == 0:
        return values
    row = later // length
    target = row * length + (keys[later] & low_bits)  # flat index of each later occurrence

    # Round 2: each new value against its row's values of round 1 (all still present: a redrawn
    # entry repeated one that stays) and against the other new values of its row. The probes are
    # sorted first: searchsorted is much faster on ascending needles, and repeats are neighbours.
    new = rng.integers(0, n, target.size, dtype=dtype)
    flat[target] = new
    probe = (row * n).astype(dtype) + new  # keys' dtype: searchsorted would cast all keys otherwise
    order = np.argsort(probe)
    probe = probe[order]
    at = np.minimum(np.searchsorted(keys, probe << bits), keys.size - 1)
    hit = (keys[at] >> bits) == probe
    repeat = probe[1:] == probe[:-1]
    hit[1:] |= repeat
    hit[:-1] |= repeat
    again = np.zeros(target.size, dtype=bool)
    again[order[hit]] = True  # back in position order: what is redrawn depends on positions only
    target = target[again]

    while target.size:  # later rounds: few entries, each compared with its row
        new = rng.integers(0, n, target.size, dtype=dtype)
        flat[target] = new
        if target.size * length <= flat.size:
            equal = values[target // length] == new[:, None]
            target = target[np.count_nonzero(equal, axis=1) > 1]  # it equals itself once
        else:
            rows = np.unique(target // length)
            keys = (values[rows] << bits) | np.arange(length, dtype=dtype)
            keys.sort(axis=1)
            r, c = np.nonzero((keys[:, 1:] ^ keys[:, :-1]) <= low_bits)
            target = rows[r] * length + (keys[r, c + 1] & low_bits)
    return values


@functools.lru_cache(maxsize=8)
def _key_offsets(count: int, length: int, n: int, bits: int, dtype: type) -> np.ndarray:
    """``(row * n) * 2**bits + position`` for ``draw_distinct_rows`` (read-only, reused by the pool)."""
    rows = np.arange(count, dtype=dtype)[:, None] * n
    offsets = (rows << bits) | np.arange(length, dtype=dtype)
    offsets.flags.writeable = False
    return offsets


def _permuted_rows(rng: np.random.Generator, n: int, length: int, count: int) -> np.ndarray:
    out = np.empty((count, length), dtype=np.int64)
    chunk = max(1, (1 << 22) // n)  # bounds the [chunk, n] working array
    for start in range(0, count, chunk):
        rows = np.tile(np.arange(n, dtype=np.int64), (min(chunk, count - start), 1))
        out[start : start + chunk] = rng.permuted(rows, axis=1, out=rows)[:, :length]
    return out


class StreamPool:
    """Streams of slots drawn ahead, ``batch`` at a time, from one generator (``"batched"`` sampling).

    Drawing many streams in one :func:`draw_distinct_rows` call costs a fraction of a
    microsecond per stream; the pool hands them out in order as episodes start, so a rollout
    depends only on the seed and the actions. Each stream has one extra column repeating its
    last slot (the layout of :class:`~mmr_gym.episodes.EpisodeBatch`'s streams). With a fixed
    budget ``oracle_budget`` and 0/1 correctness the hindsight oracle's accuracy of each stream
    is computed here too, for the whole batch at once (else NaN: computed when the episode ends).

    Args:
        n_split: the number of slots (queries of the split) streams are drawn from.
        prices: float64 ``[n_split]``, each slot's cheapest correct cost (the oracle's price).
        length: queries per stream.
        batch: streams drawn per refill.
        oracle_budget: the budget every pooled stream is played under, or None (not fixed).
    """

    def __init__(
        self, n_split: int, prices: np.ndarray, length: int, batch: int, oracle_budget: float | None
    ) -> None:
        self.n_split = n_split
        self.prices = prices
        self.length = length
        self.batch = batch
        self.oracle_budget = oracle_budget
        self.rng: np.random.Generator | None = None
        self._streams = np.zeros((0, length + 1), dtype=np.int64)
        self._oracle = np.zeros(0)
        self._next = 0

    def restart(self, rng: np.random.Generator) -> None:
        """Draw from ``rng`` from now on; streams drawn ahead from the previous generator are dropped."""
        self.rng = rng
        self._streams = self._streams[:0]
        self._oracle = self._oracle[:0]
        self._next = 0

    def take(self, m: int) -> tuple[np.ndarray, np.ndarray]:
        """The next ``m`` streams (slots, int ``[m, length + 1]``: int32 when the split allows) and their
        oracle accuracies (float64 ``[m]``)."""
        start = self._next
        if start + m <= self._streams.shape[0]:
            self._next = start + m
            return self._streams[start : start + m], self._oracle[start : start + m]
        streams, oracle = [self._streams[start:]], [self._oracle[start:]]
        need = m - streams[0].shape[0]
        while need > 0:
            self._refill()
            self._next = min(need, self.batch)
            streams.append(self._streams[: self._next])
            oracle.append(self._oracle[: self._next])
            need -= self._next
        return np.concatenate(streams), np.concatenate(oracle)

    def _refill(self) -> None:
        length = self.length
        rows = draw_distinct_rows(self.rng, self.n_split, length, self.batch)
        streams = np.empty((self.batch, length + 1), dtype=rows.dtype)
        streams[:, :length] = rows
        streams[:, length] = streams[:, length - 1]
        self._streams = streams
        if self.oracle_budget is None:
            self._oracle = np.full(self.batch, np.nan)
        else:
            total = np.full(self.batch, self.oracle_budget)
            self._oracle = greedy_accuracy(self.prices.take(streams[:, :length]), total, length)
        self._next = 0
