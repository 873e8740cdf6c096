"""RoutingContext: everything an environment precomputes from a table, shared by all its copies.

The split, the reference cost ``c_ref``, the per-query cost estimates and the query observations
are computed once, from the training split only, and held read-only so that any number of
environments (single or vectorized) replay the same table without copying it.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.decomposition import PCA

from mmr_gym.datasets import DATASET_LOADERS, bundled_table_names, load_table
from mmr_gym.table import RoutingTable

# Features are standardised with training statistics; a dimension that is constant there keeps
# its scale instead of blowing up.
_MIN_STD = 1e-6


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
    def cheapest_correct_cost(self) -> np.ndarray:
        """float64 ``[n]``: per table row, the cost of its cheapest fully correct model (``inf``: none).

        The price at which the hindsight oracle answers the query when correctness is 0/1 (see
        :func:`mmr_gym.oracle.budgeted_oracle`); computed on first use, then shared read-only.
        """
        correct = self.table.correct
        cost = self.table.cost.astype(np.float64)  # as the oracle's check_outcomes casts it
        return _frozen(np.where(correct == 1.0, cost, np.inf).min(axis=1))

    def min_budget_ratio(self, length: int) -> float:
        """Smallest budget ratio at which every query of the split has an affordable model at reset."""
        cheapest = self.cost_estimate[self.split_indices].min(axis=1).max()
        return float(cheapest / (length * self.c_ref))

    def stream_from_ids(self, query_ids: Sequence[str]) -> np.ndarray:
        """Table rows of ``query_ids``, which must be distinct queries of the split."""
        ids = [str(q) for q in query_ids]
        if not ids:
            raise ValueError("options['query_ids'] is empty")
        if len(set(ids)) != len(ids):
            raise ValueError("options['query_ids'] repeats a query; a stream has each query at most once")
        position = _row_of_id(self.table)
        in_split = np.zeros(self.table.n_queries, dtype=bool)
        in_split[self.split_indices] = True
        rows = []
        for qid in ids:
            row = position.get(qid)
            if row is None or not in_split[row]:
                where = "not in the table" if row is None else "not in this environment's split"
                raise ValueError(f"options['query_ids']: query {qid!r} is {where}")
            rows.append(row)
        return np.asarray(rows, dtype=np.int64)


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
    modality: str = "mm",
    cost_observed: bool = False,
    obs_dim: int | None = None,
) -> RoutingContext:
    """Load ``dataset`` and precompute a :class:`RoutingContext` (cached: equal arguments share one).

    ``dataset_kwargs`` go to the loader (:func:`mmr_gym.datasets.load_table`), e.g.
    ``{"models": "all"}`` for MATH-V.
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
        modality,
        bool(cost_observed),
        None if obs_dim is None else int(obs_dim),
    )


def _dataset_key(dataset: str | Path | None) -> tuple[str | None, float]:
    # Names (bundled tables, named loaders) win over paths, as in load_table; paths are keyed
    # with their modification time so an edited file is read again.
    if dataset is None or (isinstance(dataset, str) and _is_table_name(dataset)):
        return dataset, 0.0
    path = Path(dataset)
    return (str(path.resolve()), path.stat().st_mtime) if path.exists() else (str(dataset), 0.0)


def _is_table_name(name: str) -> bool:
    return name in DATASET_LOADERS or name in bundled_table_names()


@functools.lru_cache(maxsize=4)
def _load_cached(key: tuple[str | None, float], options: str) -> RoutingTable:
    return load_table(key[0], **json.loads(options))


@functools.lru_cache(maxsize=16)
def _build(
    table: RoutingTable,
    split: str,
    split_mode: str,
    train_fraction: float,
    split_seed: int,
    test_datasets: tuple[str, ...] | None,
    modality: str,
    cost_observed: bool,
    obs_dim: int | None,
) -> RoutingContext:
    train_idx, test_idx = table.split_indices(
        split_mode, train_fraction=train_fraction, seed=split_seed, test_datasets=test_datasets
    )
    split_indices = {"train": train_idx, "test": test_idx, "all": np.arange(table.n_queries)}[split]
    train = table.subset(train_idx)
    reference = train.best_single_model()
    c_ref = float(train.model_mean_cost()[reference])
    if not c_ref > 0:
        raise ValueError(
            f"{table.source}: the reference model {table.model_names[reference]!r} has mean cost {c_ref} "
            "on the training split; budgets are multiples of it, so it must be > 0"
        )

    cost_estimate = table.cost.astype(np.float64) if cost_observed else _cost_estimates(table, train_idx)
    query_obs, channels, scaling = _query_observations(table, train_idx, modality, obs_dim)
    low = np.minimum(query_obs.min(axis=0), 0.0)
    high = np.maximum(query_obs.max(axis=0), 0.0)
    high = np.where(high > low, high, low + 1.0)
    model_costs = (cost_estimate / c_ref).astype(np.float32)
    return RoutingContext(
        table=table,
        train_indices=_frozen(train_idx),
        split_indices=_frozen(np.asarray(split_indices, dtype=np.int64)),
        reference_model=reference,
        c_ref=c_ref,
        cost_estimate=_frozen(cost_estimate),
        cost_observed=cost_observed,
        query_obs=_frozen(query_obs),
        query_low=low.astype(np.float32),
        query_high=high.astype(np.float32),
        model_costs_obs=_frozen(model_costs),
        model_costs_high=float(max(model_costs.max(), 1.0)),
        channels=channels,
        feature_scaling=scaling,
    )


def _cost_estimates(table: RoutingTable, train_idx: np.ndarray) -> np.ndarray:
    """Per query and model: the training-split mean cost of that model on the query's dataset.

    The dataset of a query is known before any call (it is part of the request), its realized
    cost is not. Datasets absent from training (the "out" split) get the overall training mean.
    """
    train_cost = table.cost[train_idx].astype(np.float64)
    overall = train_cost.mean(axis=0)
    estimate = np.broadcast_to(overall, table.cost.shape).copy()
    train_datasets = table.datasets[train_idx]
    for name in np.unique(train_datasets):
        estimate[table.datasets == name] = train_cost[train_datasets == name].mean(axis=0)
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
        mean=_frozen(np.concatenate(means)),
        std=_frozen(np.concatenate(stds)),
        shown=_frozen(np.concatenate([np.full(b.shape[1], k) for b, k in zip(blocks, keep, strict=True)])),
        components=None if obs_dim is None else _frozen(pca.components_.astype(np.float64)),
        center=None if obs_dim is None else _frozen(pca.mean_.astype(np.float64)),
    )
    return masked.astype(np.float32), channels, scaling


def _frozen(array: np.ndarray) -> np.ndarray:
    array = np.ascontiguousarray(array)
    array.setflags(write=False)
    return array


class ContextFacts:
    """Read-only facts every environment over a :class:`RoutingContext` (``self.ctx``) exposes."""

    ctx: RoutingContext

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
