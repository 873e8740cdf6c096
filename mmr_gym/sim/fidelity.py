"""Fidelity of a simulated table: :func:`fit_report` compares it with a real one, statistic by statistic."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from mmr_gym.sim.correlation import safe_corr
from mmr_gym.table import RoutingTable


def _stats(table: RoutingTable) -> dict[str, Any]:
    correct = table.correct > 0.5
    cost = table.cost.astype(np.float64)
    logs = np.log(np.maximum(cost, 1e-300))
    # Rank correlations for costs: invariant to the marginal, so they test the dependence alone.
    cost_ranks = rankdata(cost, axis=0)
    pairs = np.triu_indices(table.n_models, 1)
    accuracy = correct.mean(axis=0)
    return {
        "accuracy": accuracy,
        "mean_cost": cost.mean(axis=0),
        "log_cost_sd": logs.std(axis=0),
        "phi": safe_corr(correct.astype(np.float64), correct.astype(np.float64))[pairs],
        "cost_corr": safe_corr(cost_ranks, cost_ranks)[pairs],
        "cross": np.diag(safe_corr(correct.astype(np.float64), cost_ranks)),
        "oracle": float(correct.any(axis=1).mean()),
        "best": float(accuracy.max()),
        "random": float(accuracy.mean()),
        "none_correct": float((~correct).all(axis=1).mean()),
        "shares": {d: float(np.mean(table.datasets == d)) for d in table.dataset_names},
    }


def fit_report(real: RoutingTable, simulated: RoutingTable) -> pd.DataFrame:
    """Statistic by statistic, the real table against a simulated one (e.g. a fitted sample).

    Returns:
        A DataFrame with columns ``statistic``, ``model`` ("" for table-level rows), ``real``,
        ``simulated``, ``difference`` (simulated - real) and ``unit``. Rows: per model its accuracy
        [fraction], mean cost [cost unit] and log-cost sd [log units]; then the oracle accuracy
        (some model correct), the best single and mean-over-models accuracy, the share of queries no
        model answers, the mean and the RMS difference (pair by pair; in ``difference`` only) of the
        pairwise correctness correlations (phi) and of the pairwise cost rank (Spearman)
        correlations, the mean correlation between a model's correctness and its cost rank, and
        each dataset's share of queries.
    """
    if tuple(real.model_names) != tuple(simulated.model_names):
        raise ValueError("real and simulated tables must have the same models in the same order")
    a, b = _stats(real), _stats(simulated)
    unit = real.cost_unit
    rows: list[tuple[str, str, float, float, str]] = []
    for j, model in enumerate(real.model_names):
        rows.append(("accuracy", model, a["accuracy"][j], b["accuracy"][j], "fraction"))
        rows.append(("mean cost", model, a["mean_cost"][j], b["mean_cost"][j], unit))
        rows.append(("log-cost sd", model, a["log_cost_sd"][j], b["log_cost_sd"][j], "log units"))
    rows += [
        ("oracle accuracy", "", a["oracle"], b["oracle"], "fraction"),
        ("best single accuracy", "", a["best"], b["best"], "fraction"),
        ("mean-over-models accuracy", "", a["random"], b["random"], "fraction"),
        ("no model correct", "", a["none_correct"], b["none_correct"], "fraction"),
        ("pairwise correctness corr (mean)", "", _mean(a["phi"]), _mean(b["phi"]), "correlation"),
        ("pairwise correctness corr (RMS diff)", "", math.nan, math.nan, "correlation"),
        ("pairwise cost rank corr (mean)", "", _mean(a["cost_corr"]), _mean(b["cost_corr"]), "correlation"),
        ("pairwise cost rank corr (RMS diff)", "", math.nan, math.nan, "correlation"),
        ("corr(correct, cost rank) (mean)", "", _mean(a["cross"]), _mean(b["cross"]), "correlation"),
    ]
    for name, share in a["shares"].items():
        rows.append(("dataset share", name, share, b["shares"].get(name, 0.0), "fraction"))
    frame = pd.DataFrame(rows, columns=["statistic", "model", "real", "simulated", "unit"])
    frame.insert(4, "difference", frame["simulated"] - frame["real"])
    # Pair-by-pair agreement has no real/simulated value of its own: only the RMS difference.
    rms = {
        "pairwise correctness corr (RMS diff)": _rms(a["phi"] - b["phi"]),
        "pairwise cost rank corr (RMS diff)": _rms(a["cost_corr"] - b["cost_corr"]),
    }
    for statistic, value in rms.items():
        frame.loc[frame["statistic"] == statistic, "difference"] = value
    return frame


def _mean(values: np.ndarray) -> float:
    return float(np.mean(values)) if values.size else math.nan


def _rms(values: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(values)))) if values.size else math.nan
