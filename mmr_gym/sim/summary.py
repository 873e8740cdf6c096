"""Summaries of a table as the bundled table's README shows them: per-dataset statistics, calibration."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from mmr_gym.table import RoutingTable


def dataset_summary(table: RoutingTable) -> list[dict[str, Any]]:
    """Measured per-dataset statistics of a table, plus a final ``"All (mean of datasets)"`` row.

    Each row: ``dataset``, ``queries``, ``best_model`` and ``best_acc`` (the most accurate single
    model), ``mean_acc`` (mean over models, the paper's Random Ps), ``oracle_acc`` (some model
    correct), and the cheapest and dearest model by mean cost with that cost [``table.cost_unit``].
    """
    rows: list[dict[str, Any]] = []
    for name in table.dataset_names:
        part = table.subset(table.datasets == name)
        acc = part.model_accuracy()
        mean_cost = part.model_mean_cost()
        best = part.best_single_model()
        cheap, dear = int(np.argmin(mean_cost)), int(np.argmax(mean_cost))
        rows.append(
            {
                "dataset": name,
                "queries": part.n_queries,
                "best_model": part.model_names[best],
                "best_acc": float(acc[best]),
                "mean_acc": float(acc.mean()),
                "oracle_acc": float((part.correct > 0.5).any(axis=1).mean()),
                "cheapest_model": part.model_names[cheap],
                "cheapest_cost": float(mean_cost[cheap]),
                "dearest_model": part.model_names[dear],
                "dearest_cost": float(mean_cost[dear]),
            }
        )
    rows.append(
        {
            "dataset": "All (mean of datasets)",
            "queries": table.n_queries,
            "best_model": "",
            **{key: float(np.mean([r[key] for r in rows])) for key in ("best_acc", "mean_acc", "oracle_acc")},
            "cheapest_model": "",
            "cheapest_cost": float(table.model_mean_cost().min()),
            "dearest_model": "",
            "dearest_cost": float(table.model_mean_cost().max()),
        }
    )
    return rows


def format_summary(rows: Sequence[dict[str, Any]]) -> str:
    """The rows of :func:`dataset_summary` as a markdown table."""
    lines = [
        "| dataset | queries | best single model | best acc | mean acc | oracle acc "
        "| cheapest model: mean cost | dearest model: mean cost |",
        "|---|---:|---|---:|---:|---:|---|---|",
    ]
    for r in rows:
        best = f"{r['best_model']}" if r["best_model"] else "-"
        cheap = (
            f"{r['cheapest_model']}: {r['cheapest_cost']:.4f}"
            if r["cheapest_model"]
            else f"{r['cheapest_cost']:.4f}"
        )
        dear = (
            f"{r['dearest_model']}: {r['dearest_cost']:.3f}"
            if r["dearest_model"]
            else f"{r['dearest_cost']:.3f}"
        )
        lines.append(
            f"| {r['dataset']} | {r['queries']} | {best} | {r['best_acc']:.4f} | {r['mean_acc']:.4f} "
            f"| {r['oracle_acc']:.4f} | {cheap} | {dear} |"
        )
    return "\n".join(lines)


def format_calibration(table: RoutingTable) -> str:
    """Targets, expected values after calibration, and measured values per dataset (markdown)."""
    measured = {r["dataset"]: r for r in dataset_summary(table)}
    lines = [
        "| dataset | offset | model_scale | hardness_scale | random: target / expected / measured "
        "| best: target / expected / measured | oracle: target / expected / measured |",
        "|---|---:|---:|---:|---|---|---|",
    ]

    def cell(target: float | None, expected: float, got: float) -> str:
        return f"{'-' if target is None else f'{target:.4f}'} / {expected:.4f} / {got:.4f}"

    for c in table.meta.get("calibration", []):
        m = measured[c["dataset"]]
        lines.append(
            f"| {c['dataset']} | {c['offset']:.3f} | {c['model_scale']:.3f} | {c['hardness_scale']:.3f} "
            f"| {cell(c['target_random'], c['expected_random'], m['mean_acc'])} "
            f"| {cell(c['target_best'], c['expected_best'], m['best_acc'])} "
            f"| {cell(c['target_oracle'], c['expected_oracle'], m['oracle_acc'])} |"
        )
    return "\n".join(lines)
