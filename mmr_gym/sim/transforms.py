"""Scenario transforms: what a real table cannot give and RL research wants.

More queries than the table has and a dataset mix that differs between training and test
(:func:`with_queries`, :func:`shifted_split`), and price changes (:func:`with_prices`,
:func:`reprice`). Config-level knobs change what :func:`~mmr_gym.sim.simulate` draws; table-level
ones transform any table (real, preset or fitted sample).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence

import numpy as np

from mmr_gym.sim.config import SimConfig
from mmr_gym.sim.generator import token_prices
from mmr_gym.table import RoutingTable


def allocate_counts(n: int, weights: Sequence[float] | np.ndarray) -> np.ndarray:
    """Integer counts summing to ``n``, proportional to ``weights`` (largest-remainder rounding).

    Args:
        n: the total, >= 0.
        weights: relative weights, >= 0, not all 0.

    Returns:
        int64 ``[len(weights)]``; each count is within 1 of ``n * w / sum(w)``.
    """
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim != 1 or not np.isfinite(w).all() or (w < 0).any() or not w.sum() > 0:
        raise ValueError(f"weights must be finite, >= 0 and not all 0, got {w.tolist()}")
    exact = n * w / w.sum()
    counts = np.floor(exact).astype(np.int64)
    order = np.argsort(-(exact - counts), kind="stable")
    counts[order[: n - int(counts.sum())]] += 1
    return counts


def _dataset_weights(names: Sequence[str], weights: Mapping[str, float]) -> np.ndarray:
    unknown = sorted(set(weights) - set(names))
    if unknown:
        raise ValueError(f"unknown dataset(s) {unknown}; known: {list(names)}")
    return np.array([float(weights.get(name, 0.0)) for name in names])


def with_queries(
    config: SimConfig, n_queries: int | None = None, *, dataset_weights: Mapping[str, float] | None = None
) -> SimConfig:
    """The config with ``n_queries`` queries split over its datasets by ``dataset_weights``.

    For more queries than the bundled table has (``with_queries(default_config(), 1_000_000)``),
    or a different dataset mix (``dataset_weights={"MathVision": 3, "OCRBench": 1}``: relative
    weights, datasets left out are dropped). Sizes are the largest-remainder rounding of
    ``n_queries * share``. The per-dataset accuracy calibration is redone on the new latents (the
    targets do not depend on the size). The per-token prices are frozen at the source config's,
    so a changed mix changes the models' mean costs, as a change of workload would.

    Args:
        config: the source config.
        n_queries: total queries, >= 1; None keeps the source's total.
        dataset_weights: dataset name -> relative weight >= 0; None keeps the source's shares.
    """
    names = [d.name for d in config.datasets]
    n = config.n_queries if n_queries is None else int(n_queries)
    if n < 1:
        raise ValueError(f"n_queries must be >= 1, got {n}")
    sizes = np.array([d.size for d in config.datasets], dtype=np.float64)
    weights = sizes if dataset_weights is None else _dataset_weights(names, dataset_weights)
    counts = allocate_counts(n, weights)
    datasets = tuple(
        dataclasses.replace(
            d, size=int(c), size_source=f"{d.size_source}; resized to {int(c)} by with_queries"
        )
        for d, c in zip(config.datasets, counts, strict=True)
        if c > 0
    )
    price_in, price_out = token_prices(config)
    prices = tuple((float(a), float(b)) for a, b in zip(price_in, price_out, strict=True))
    return dataclasses.replace(config, datasets=datasets, prices=prices)


def with_prices(config: SimConfig, factors: Mapping[str, float]) -> SimConfig:
    """The config with the named models' prices multiplied by ``factors`` (e.g. ``{"GPT-5": 0.5}``).

    Prices enter only the costs, and no random draw depends on them, so
    ``simulate(with_prices(c, f), seed)`` has the same correctness and features as
    ``simulate(c, seed)`` and model ``m``'s costs times ``f[m]`` (up to float32 rounding).

    Args:
        config: the source config.
        factors: model name -> price multiplier, finite and > 0 [dimensionless].
    """
    names = [m.name for m in config.models]
    _check_factors(names, factors)
    models = tuple(
        dataclasses.replace(m, mean_cost=m.mean_cost * factors.get(m.name, 1.0)) for m in config.models
    )
    prices = config.prices
    if prices is not None:
        prices = tuple(
            (a * factors.get(name, 1.0), b * factors.get(name, 1.0))
            for name, (a, b) in zip(names, prices, strict=True)
        )
    return dataclasses.replace(config, models=models, prices=prices)


def _check_factors(names: Sequence[str], factors: Mapping[str, float]) -> None:
    unknown = sorted(set(factors) - set(names))
    if unknown:
        raise ValueError(f"unknown model(s) {unknown}; known: {list(names)}")
    bad = {m: f for m, f in factors.items() if not (math.isfinite(f) and f > 0)}
    if bad:
        raise ValueError(f"price factors must be finite and > 0, got {bad}")


def reprice(
    table: RoutingTable, factors: Mapping[str, float], rows: Sequence[int] | np.ndarray | None = None
) -> RoutingTable:
    """A copy of ``table`` with the named models' costs multiplied by ``factors`` on ``rows``.

    A price change that the training data did not see: e.g. ``reprice(table, {"GPT-5": 0.5},
    rows=test_idx)`` halves GPT-5's price on the test queries only, so cost estimates learned on
    the training split are stale. Correctness, ids and features are unchanged.
    ``meta["price_changes"]`` lists every change applied (model, factor, number of queries).

    Args:
        table: any table.
        factors: model name -> cost multiplier, finite and > 0 [dimensionless].
        rows: the queries affected: integer positions or a boolean mask; None: all.
    """
    _check_factors(table.model_names, factors)
    mask = np.ones(table.n_queries, dtype=bool)
    if rows is not None:
        rows = np.asarray(rows)
        mask = rows.astype(bool) if rows.dtype == bool else np.isin(np.arange(table.n_queries), rows)
        if mask.shape != (table.n_queries,):
            raise ValueError(f"a boolean rows mask needs {table.n_queries} entries, got {rows.shape}")
    cost = table.cost.astype(np.float64)
    changes = list(table.meta.get("price_changes", []))
    for model, factor in factors.items():
        j = table.model_names.index(model)
        cost[mask, j] *= factor
        changes.append({"model": model, "factor": float(factor), "queries": int(mask.sum())})
    return dataclasses.replace(table, cost=cost, meta={**table.meta, "price_changes": changes})


def shifted_split(
    table: RoutingTable,
    test_weights: Mapping[str, float],
    *,
    train_fraction: float = 0.2,
    seed: int = 0,
) -> tuple[RoutingTable, RoutingTable]:
    """The in-split of ``table``, with the test part subsampled to the dataset mix ``test_weights``.

    The training part keeps the table's own mix; the test part is the largest subset of the
    in-split's test queries whose dataset shares equal ``test_weights`` (relative weights; a
    dataset left out gets no test queries), drawn without replacement (seeded). For more test
    queries than the table holds, sample the mix from a simulator instead
    (:func:`with_queries`, :meth:`mmr_gym.sim_fit.FittedSimulator.sample`).

    Returns:
        ``(train, test)`` tables.
    """
    train_idx, test_idx = table.split_indices("in", train_fraction=train_fraction, seed=seed)
    names = table.dataset_names
    weights = _dataset_weights(names, test_weights)
    if (weights < 0).any() or not np.isfinite(weights).all() or not weights.sum() > 0:
        raise ValueError(f"test_weights must be finite, >= 0 and not all 0, got {dict(test_weights)}")
    pools = [test_idx[table.datasets[test_idx] == name] for name in names]
    available = np.array([pool.size for pool in pools], dtype=np.float64)
    share = weights / weights.sum()
    total = int(np.floor(np.min(available[share > 0] / share[share > 0])))
    counts = np.minimum(allocate_counts(total, share), available.astype(np.int64))
    rng = np.random.default_rng([seed, 1])  # independent of the split's own permutation stream
    picked = [rng.choice(pool, int(c), replace=False) for pool, c in zip(pools, counts, strict=True) if c]
    return table.subset(train_idx), table.subset(np.sort(np.concatenate(picked)))
