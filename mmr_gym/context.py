"""RoutingContext: everything an environment precomputes from a table, shared by all its copies.

The split, the reference cost ``c_ref``, the per-query cost estimates and the query observations
are computed once, from the training split only, and held read-only so that any number of
environments (single or vectorized) replay the same table without copying it.
:class:`SplitLookups` holds what a step looks up per query of the split, gathered together
(``ctx.lookups``, made once per context).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from sklearn.decomposition import PCA

from mmr_gym.arrays import read_only_contiguous
from mmr_gym.budget import min_budget_ratio
from mmr_gym.datasets import DATASET_LOADERS, bundled_table_names, load_table, source_digest
from mmr_gym.fitted_features import FITTED_FEATURES_KEY, fit_query_features
from mmr_gym.observation import ObservationLayout
from mmr_gym.oracle import cheapest_correct_cost
from mmr_gym.table import RoutingTable

if TYPE_CHECKING:
    from mmr_gym.config import EnvConfig

# Features are standardised with training statistics; a dimension that is constant there keeps
# its scale instead of blowing up.
_MIN_STD = 1e-6
#: Folds of the training split whose cost means give training queries their cost estimates.
COST_FOLDS = 5
# How many replayed streams a context remembers the slots of (an evaluation replays each stream
# once per budget).
_SLOTS_MEMO_SIZE = 4096


@dataclass(frozen=True, eq=False)
class RoutingContext:
    """Read-only arrays derived from a table and a split (see :func:`build_context`)."""

    table: RoutingTable
    train_indices: np.ndarray  # table rows of the training split
    split_indices: np.ndarray  # table rows episodes draw from
    reference_model: int  # most accurate model on the training split (ties: cheaper)
    c_ref: float  # its mean per-query cost on the training split, in the table's cost unit
    cost_estimate: np.ndarray  # float64 [n, K]: what the agent and the mask know of each call's cost
    cost_observed: bool  # cost_estimate is the true per-query cost, not a training-split mean
    query_obs: np.ndarray  # float32 [n, d]: the query part of the observation, per table row
    query_low: np.ndarray
    query_high: np.ndarray
    model_costs_obs: np.ndarray  # float32 [n, K]: cost_estimate / c_ref
    model_costs_high: float
    channels: tuple[str, ...]  # feature channels behind query_obs, in order
    feature_scaling: FeatureScaling | None = None  # how query_obs was made from the features

    @property
    def n_models(self) -> int:
        return self.table.n_models

    @functools.cached_property
    def lookups(self) -> SplitLookups:
        """What a step looks up per query of the split (made on first use, then shared read-only)."""
        return _split_lookups(self)

    def min_budget_ratio(self, length: int, slots: np.ndarray | None = None, world: Any = None) -> float:
        """Smallest budget ratio at which every query of the split (or of ``slots``) has an
        affordable model at reset (:func:`mmr_gym.budget.min_budget_ratio`); under a scenario's
        ``world``, at every time (its price factors and availability as the agent knows them)."""
        if world is None:
            cheapest = self.lookups.cheapest_estimate
            cheapest = cheapest if slots is None else cheapest.take(slots)
        else:  # the stream's rows only: known prices scale whole columns
            estimates = self.lookups.cost_estimate
            cheapest = world.cheapest_known(estimates if slots is None else estimates.take(slots, axis=0))
        return min_budget_ratio(cheapest, length, self.c_ref)

    def slots_from_ids(self, query_ids: Sequence[str], name: str = "options['query_ids']") -> np.ndarray:
        """Slots (positions in the split) of ``query_ids``: a stream to replay.

        The ids must be distinct queries of the split, given as a sequence of strings (a single
        string is refused: it would be read as a stream of its characters).
        """
        if isinstance(query_ids, (str, bytes)):
            raise ValueError(f"{name} must be a sequence of query ids, got the single string {query_ids!r}")
        try:
            key = tuple(query_ids)
            hash(key)
        except TypeError:  # ids that do not hash: convert without the memo
            return self.lookups.slot_of_row.take(self.stream_from_ids(query_ids, name))
        # Evaluations replay each stream once per budget: remember the last streams' slots.
        memo = self._slots_memo
        slots = memo.get(key)
        if slots is None:
            slots = read_only_contiguous(self.lookups.slot_of_row.take(self.stream_from_ids(query_ids, name)))
            if len(memo) >= _SLOTS_MEMO_SIZE:
                del memo[next(iter(memo))]  # the oldest
            memo[key] = slots
        return slots

    @functools.cached_property
    def _slots_memo(self) -> dict[tuple, np.ndarray]:
        return {}

    def stream_from_ids(self, query_ids: Sequence[str], name: str = "options['query_ids']") -> np.ndarray:
        """Table rows of ``query_ids``, which must be distinct queries of the split."""
        if isinstance(query_ids, (str, bytes)):
            raise ValueError(f"{name} must be a sequence of query ids, got the single string {query_ids!r}")
        try:
            ids = [str(q) for q in query_ids]
        except TypeError:
            raise ValueError(f"{name} must be a sequence of query ids, got {query_ids!r}") from None
        if not ids:
            raise ValueError(f"{name} is empty")
        if len(set(ids)) != len(ids):
            raise ValueError(f"{name} repeats a query; a stream has each query at most once")
        position = _row_of_id(self.table)
        rows = np.array([position.get(qid, -1) for qid in ids], dtype=np.int64)
        outside = (rows < 0) | (self.lookups.slot_of_row.take(rows) < 0)  # take(-1): a real row, then masked
        if np.count_nonzero(outside):
            first = int(np.flatnonzero(outside)[0])
            where = "not in the table" if rows[first] < 0 else "not in this environment's split"
            raise ValueError(f"{name}: query {ids[first]!r} is {where}")
        return rows


@dataclass(frozen=True, eq=False)
class FeatureScaling:
    """How the query observation was made from the table's feature channels, so it can be mapped back.

    ``query_obs = project(mask(standardise(concat(channels))))``: every column is standardised with
    its training-split ``mean`` and ``std``; the columns of channels the modality hides are then set to
    zero (``shown`` False); with ``obs_dim``, the result is projected on the ``components`` of a PCA
    fitted on the training rows (``(x - center) @ components.T``). A table without features
    observes the one-hot of each query's dataset (mean 0, std 1, nothing hidden).

    Attributes:
        channels: the feature channels, in order (``("dataset_onehot",)`` without features).
        widths: the number of columns of each channel (they sum to ``D``).
        mean, std: float64 ``[D]``, the training-split statistics of each column.
        shown: bool ``[D]``, False for the columns of a channel the modality hides.
        components: float64 ``[obs_dim, D]``, the projection's directions; None without ``obs_dim``.
        center: float64 ``[D]``, the projection's training mean; None without ``obs_dim``.
    """

    channels: tuple[str, ...]
    widths: tuple[int, ...]
    mean: np.ndarray
    std: np.ndarray
    shown: np.ndarray
    components: np.ndarray | None = None
    center: np.ndarray | None = None

    def raw(self, query_obs: np.ndarray) -> np.ndarray:
        """The table's features behind query observations ``query_obs`` ``[n, d]``: float64 ``[n, D]``.

        Undoes the standardisation. Columns the modality hides are 0 (the paper's cross-modality
        transfer zeroes the raw channel). With a projection (``obs_dim``) the standardised features
        are first reconstructed from the kept components (``z @ components + center``), the best the
        observation allows: exact only in the span of those components.
        """
        z = np.asarray(query_obs, dtype=np.float64)
        width = self.mean.size if self.components is None else self.components.shape[0]
        if z.ndim != 2 or z.shape[1] != width:
            raise ValueError(f"query_obs must be [queries, {width}] (the observation's query), got {z.shape}")
        if self.components is not None:
            z = z @ self.components + self.center
        return np.where(self.shown, z * self.std + self.mean, 0.0)


def raw_query_features(ctx: RoutingContext, query_obs: np.ndarray) -> np.ndarray:
    """The raw features behind ``query_obs`` (rows of ``ctx.query_obs`` or observations' ``query``).

    See :meth:`FeatureScaling.raw`: float64 ``[n, D]``, hidden channels zero.
    """
    if ctx.feature_scaling is None:
        raise ValueError("this RoutingContext records no feature scaling")
    return ctx.feature_scaling.raw(query_obs)


@functools.lru_cache(maxsize=4)
def _row_of_id(table: RoutingTable) -> dict[str, int]:
    return {qid: row for row, qid in enumerate(table.query_ids.tolist())}


def build_context(
    dataset: str | Path | RoutingTable | None,
    *,
    dataset_kwargs: dict | None = None,
    split: str = "train",
    split_mode: str = "in",
    train_fraction: float = 0.2,
    split_seed: int = 0,
    test_datasets: Sequence[str] | None = None,
    train_ids: Sequence[str] | None = None,
    test_ids: Sequence[str] | None = None,
    modality: str = "mm",
    cost_observed: bool = False,
    obs_dim: int | None = None,
) -> RoutingContext:
    """Load ``dataset`` and precompute a :class:`RoutingContext` (cached: equal arguments share one).

    ``dataset_kwargs`` go to the loader (:func:`mmr_gym.datasets.load_table`), e.g.
    ``{"models": "all"}`` for MATH-V or ``{"features": ["minilm"]}`` for a CSV. ``train_ids`` and
    ``test_ids`` give the split explicitly (``split_mode="ids"``, :meth:`RoutingTable.split_indices`).
    """
    if isinstance(dataset, RoutingTable):
        if dataset_kwargs:
            raise ValueError("dataset_kwargs apply to a loader; a ready RoutingTable takes none")
        table = dataset
    else:
        options = json.dumps(dataset_kwargs or {}, sort_keys=True, default=str)
        table = _load_cached(_dataset_key(dataset), options)
    return _build(
        table,
        split,
        split_mode,
        float(train_fraction),
        int(split_seed),
        tuple(test_datasets) if test_datasets is not None else None,
        tuple(train_ids) if train_ids is not None else None,
        tuple(test_ids) if test_ids is not None else None,
        modality,
        bool(cost_observed),
        None if obs_dim is None else int(obs_dim),
    )


def _dataset_key(dataset: str | Path | None) -> tuple[str | None, str]:
    # Names (bundled tables, named loaders) win over paths, as in load_table. A path is keyed by
    # where it is and by its content (source_digest): a table saved again into the same directory,
    # or a CSV rewritten within the same second, is read again.
    if dataset is None or (isinstance(dataset, str) and _is_table_name(dataset)):
        return dataset, ""
    path = Path(dataset)
    return (str(path.resolve()), source_digest(path)) if path.exists() else (str(dataset), "")


def _is_table_name(name: str) -> bool:
    return name in DATASET_LOADERS or name in bundled_table_names()


@functools.lru_cache(maxsize=4)
def _load_cached(key: tuple[str | None, str], options: str) -> RoutingTable:
    return load_table(key[0], **json.loads(options))


@functools.lru_cache(maxsize=16)
def _build(
    table: RoutingTable,
    split: str,
    split_mode: str,
    train_fraction: float,
    split_seed: int,
    test_datasets: tuple[str, ...] | None,
    train_ids: tuple[str, ...] | None,
    test_ids: tuple[str, ...] | None,
    modality: str,
    cost_observed: bool,
    obs_dim: int | None,
) -> RoutingContext:
    train_idx, test_idx = table.split_indices(
        split_mode,
        train_fraction=train_fraction,
        seed=split_seed,
        test_datasets=test_datasets,
        train_ids=train_ids,
        test_ids=test_ids,
    )
    split_indices = {"train": train_idx, "test": test_idx, "all": np.arange(table.n_queries)}[split]
    # Channels fitted on data (TF-IDF of the query texts) are fitted here, on the training rows
    # only, and the context holds the table with them added (see mmr_gym.fitted_features). A
    # table that already holds them (a part of another context's table) has them fitted again.
    stale = [c for c in table.meta.get(FITTED_FEATURES_KEY) or {} if c in table.features]
    if stale:
        table = table.without_features(stale)
    fitted = fit_query_features(table, train_idx)
    if fitted:
        table = table.with_features(fitted)
    train = table.subset(train_idx)
    reference = train.best_single_model()
    c_ref = float(train.model_mean_cost()[reference])
    if not c_ref > 0:
        raise ValueError(
            f"{table.source}: the reference model {table.model_names[reference]!r} has mean cost {c_ref} "
            "on the training split; budgets are multiples of it, so it must be > 0"
        )

    cost_estimate = (
        table.cost.astype(np.float64) if cost_observed else _cost_estimates(table, train_idx, split_seed)
    )
    query_obs, channels, scaling = _query_observations(table, train_idx, modality, obs_dim)
    low = np.minimum(query_obs.min(axis=0), 0.0)
    high = np.maximum(query_obs.max(axis=0), 0.0)
    high = np.where(high > low, high, low + 1.0)
    model_costs = (cost_estimate / c_ref).astype(np.float32)
    return RoutingContext(
        table=table,
        train_indices=read_only_contiguous(train_idx),
        split_indices=read_only_contiguous(np.asarray(split_indices, dtype=np.int64)),
        reference_model=reference,
        c_ref=c_ref,
        cost_estimate=read_only_contiguous(cost_estimate),
        cost_observed=cost_observed,
        query_obs=read_only_contiguous(query_obs),
        query_low=low.astype(np.float32),
        query_high=high.astype(np.float32),
        model_costs_obs=read_only_contiguous(model_costs),
        model_costs_high=float(max(model_costs.max(), 1.0)),
        channels=channels,
        feature_scaling=scaling,
    )


def _cost_estimates(table: RoutingTable, train_idx: np.ndarray, seed: int) -> np.ndarray:
    """Per query and model: the training-split mean cost of that model on the query's dataset.

    The dataset of a query is known before any call (it is part of the request), its realized
    cost is not. Datasets absent from training (the "out" split) get the overall training mean.

    A training query's own cost never enters its estimate (that would leak its outcome into the
    observation before the action, on the ``"train"`` and ``"all"`` splits): training queries are
    cross-fitted, each one's estimate made from the :data:`COST_FOLDS` - 1 folds of the training
    split (seeded by ``seed``) that do not hold it. A training split of one query has nothing
    else to learn from and keeps its own mean.
    """
    train_cost = table.cost[train_idx].astype(np.float64)
    train_datasets = table.datasets[train_idx]
    estimate = _dataset_means(train_cost, train_datasets, table.datasets)
    folds = min(COST_FOLDS, train_idx.size)
    if folds < 2:
        return estimate
    fold = np.random.default_rng(seed).permutation(train_idx.size) % folds
    for f in range(folds):
        held = fold == f
        estimate[train_idx[held]] = _dataset_means(
            train_cost[~held], train_datasets[~held], train_datasets[held]
        )
    return estimate


def _dataset_means(cost: np.ndarray, datasets: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """For each entry of ``targets`` (dataset names): the mean of ``cost``'s rows of that dataset,
    or of all of them when the dataset has none (float64 ``[len(targets), K]``)."""
    estimate = np.broadcast_to(cost.mean(axis=0), (targets.size, cost.shape[1])).copy()
    for name in np.unique(datasets):
        estimate[targets == name] = cost[datasets == name].mean(axis=0)
    return estimate


def _channel_modality(channel: str) -> str | None:
    for modality in ("text", "image"):
        if channel.startswith(modality):
            return modality
    return None


def _query_observations(
    table: RoutingTable, train_idx: np.ndarray, modality: str, obs_dim: int | None
) -> tuple[np.ndarray, tuple[str, ...], FeatureScaling]:
    """Standardise each channel (training stats), zero the masked modality, optionally project."""
    channels = tuple(table.features)
    present = {_channel_modality(c) for c in channels}
    if modality != "mm" and modality not in present:
        raise ValueError(
            f"modality {modality!r} needs a feature channel named '{modality}...'; "
            f"{table.source} has channels {list(channels)}"
        )
    if not channels:
        # A table without features still identifies each query's dataset, which a router may use.
        names = sorted(set(table.datasets.tolist()))
        blocks = [(table.datasets[:, None] == np.asarray(names)[None, :]).astype(np.float64)]
        keep = [True]
        channels = ("dataset_onehot",)
        means, stds = [np.zeros(len(names))], [np.ones(len(names))]
    else:
        blocks, keep, means, stds = [], [], [], []
        for channel in channels:
            values = table.features[channel].astype(np.float64)
            mean = values[train_idx].mean(axis=0)
            std = np.maximum(values[train_idx].std(axis=0), _MIN_STD)
            blocks.append((values - mean) / std)
            means.append(mean)
            stds.append(std)
            kind = _channel_modality(channel)
            keep.append(modality == "mm" or kind is None or kind == modality)
    full = np.concatenate(blocks, axis=1)
    masked = np.concatenate([b if k else np.zeros_like(b) for b, k in zip(blocks, keep, strict=True)], axis=1)
    if obs_dim is not None:
        if not 1 <= obs_dim <= full.shape[1]:
            raise ValueError(
                f"obs_dim must be in [1, {full.shape[1]}] (the feature dimension), got {obs_dim}"
            )
        # Fitted on unmasked training features so every modality shares one projection.
        pca = PCA(n_components=obs_dim, svd_solver="full", random_state=0).fit(full[train_idx])
        masked = pca.transform(masked)
    scaling = FeatureScaling(
        channels=channels,
        widths=tuple(b.shape[1] for b in blocks),
        mean=read_only_contiguous(np.concatenate(means)),
        std=read_only_contiguous(np.concatenate(stds)),
        shown=read_only_contiguous(
            np.concatenate([np.full(b.shape[1], k) for b, k in zip(blocks, keep, strict=True)])
        ),
        components=None if obs_dim is None else read_only_contiguous(pca.components_.astype(np.float64)),
        center=None if obs_dim is None else read_only_contiguous(pca.mean_.astype(np.float64)),
    )
    return masked.astype(np.float32), channels, scaling


@dataclass(frozen=True)
class SplitLookups:
    """What the step and the oracle look up per query, indexed by slot (read-only, one per context).

    A slot is a position in the split (``ctx.split_indices``): an episode visits only the split's
    queries, so these tables hold those rows alone, contiguous (a fraction of the table for a
    test split: fewer cache lines and pages per random gather).
    """

    table_rows: np.ndarray  # int64 [m]: the table row of each slot (ctx.split_indices)
    slot_of_row: np.ndarray  # int64 [n]: the slot of each table row (-1: not in the split)
    observations: np.ndarray  # float32 [m, d + 3 + K]: flat observation, zeros for the budget part
    cost_estimate: np.ndarray  # float64 [m, K]
    cheapest_estimate: np.ndarray  # float64 [m]: the lowest cost estimate of any model
    dearest_estimate: np.ndarray  # float64 [m]: the highest (NaN if any is NaN)
    # float64 [m * K + 1, 2]: (correct, cost) of slot * K + model, then (0, 0) at index ``nothing``
    outcomes: np.ndarray
    nothing: int  # m * K: the entry of sub-environments that are reset instead of stepped
    query_ids: np.ndarray  # object [m + 1]: the table's, then None (index ``no_query``)
    datasets: np.ndarray  # object [m + 1]: the table's, then None
    no_query: int  # m
    cheapest_correct_cost: np.ndarray  # float64 [m]: the oracle's price of each query
    best_correct: np.ndarray  # float64 [m]: the best correctness of any model
    binary: np.ndarray  # bool [m]: the query's correctness is all 0/1
    all_binary: bool  # every query's is


def _split_lookups(ctx: RoutingContext) -> SplitLookups:
    # float64 as the step charges and as the oracle computes (check_outcomes casts to float64).
    table, rows = ctx.table, ctx.split_indices
    slot_of_row = np.full(table.n_queries, -1, dtype=np.int64)
    slot_of_row[rows] = np.arange(rows.size)
    correct = table.correct.take(rows, axis=0).astype(np.float64)
    cost = table.cost.take(rows, axis=0).astype(np.float64)
    estimates = ctx.cost_estimate.take(rows, axis=0)
    observations = ObservationLayout.base_rows(
        ctx.query_obs.take(rows, axis=0), ctx.model_costs_obs.take(rows, axis=0)
    )
    binary = ((correct == 0.0) | (correct == 1.0)).all(axis=1)
    return SplitLookups(
        table_rows=read_only_contiguous(np.asarray(rows, dtype=np.int64)),
        slot_of_row=read_only_contiguous(slot_of_row),
        observations=read_only_contiguous(observations),
        cost_estimate=read_only_contiguous(estimates),
        cheapest_estimate=read_only_contiguous(estimates.min(axis=1)),
        dearest_estimate=read_only_contiguous(estimates.max(axis=1)),
        outcomes=read_only_contiguous(
            np.stack((np.append(correct.reshape(-1), 0.0), np.append(cost.reshape(-1), 0.0)), axis=1)
        ),
        nothing=correct.size,
        query_ids=read_only_contiguous(np.append(table.query_ids.take(rows).astype(object), None)),
        datasets=read_only_contiguous(np.append(_shared_strings(table.datasets.take(rows)), None)),
        no_query=rows.size,
        cheapest_correct_cost=read_only_contiguous(cheapest_correct_cost(correct, cost)),
        best_correct=read_only_contiguous(correct.max(axis=1)),
        binary=read_only_contiguous(binary),
        all_binary=bool(binary.all()),
    )


def _shared_strings(values: np.ndarray) -> np.ndarray:
    """``values`` (object array of str) with one str object per distinct value.

    Taking from an object array increments each taken object's reference count: over a few
    shared objects that touches a few cache lines, over one object per row a line per row.
    """
    unique: dict[str, str] = {}
    return np.array([unique.setdefault(v, v) for v in values.tolist()], dtype=object)


def _argument(field: str, doc: str, name: str | None = None) -> Any:
    """A read-only attribute of an environment that shows its resolved argument ``config.field``."""
    name = name or field

    def get(self: ContextFacts) -> Any:
        return getattr(self.config, field)

    def refuse(self: ContextFacts, value: Any) -> None:
        # Setting it would change nothing the episodes use: say so rather than accept it silently.
        raise AttributeError(
            f"{name} is an argument of the environment, fixed when it is made: make a new environment "
            f"with {field}={value!r}"
        )

    return property(get, refuse, doc=doc)


class ContextFacts:
    """Read-only facts every environment over a :class:`RoutingContext` (``self.ctx``) and a
    resolved :class:`~mmr_gym.config.EnvConfig` (``self.config``) exposes."""

    ctx: RoutingContext
    config: EnvConfig

    episode_length: int = _argument(
        "episode_length", "Queries per episode (a replayed stream may be shorter)."
    )
    budget_ratio: float | tuple[float, float] | None = _argument(
        "budget_ratio", "The configured budget ratio: a float, a ``(low, high)`` range, or None (no budget)."
    )
    budget_sampling: str = _argument("budget_sampling", "How a ``(low, high)`` budget ratio is drawn.")
    cost_weight: float = _argument(
        "cost_weight", "The reward's cost penalty: ``reward = correct - cost_weight * cost / c_ref``."
    )
    feedback: str = _argument(
        "feedback", "``'bandit'`` (the chosen model's outcome) or ``'full'`` (every model's, after the step)."
    )
    observation_mode: str = _argument("observation", "``'dict'`` or ``'flat'``.", name="observation_mode")
    invalid_action: str = _argument(
        "invalid_action", "What a masked action does: ``'error'`` or ``'fallback'``."
    )

    @property
    def model_names(self) -> tuple[str, ...]:
        return self.ctx.table.model_names

    @property
    def c_ref(self) -> float:
        """Mean per-query cost of the reference model on the training split, in ``cost_unit``."""
        return self.ctx.c_ref

    @property
    def cost_unit(self) -> str:
        return self.ctx.table.cost_unit
