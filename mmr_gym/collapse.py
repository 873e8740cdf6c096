"""Routing collapse: how much of a policy's spend goes to the dearest model as the budget grows.

Routers that send every query to the most expensive model as soon as money allows are a known
failure of budgeted routing: their accuracy then is the dearest model's at the dearest model's
price. Every report shows it per policy and budget ratio, from two fields of the evaluation results:
``BudgetPoint.spend_by_model`` (model -> share of the point's spend) and
``PolicyResult.model_mean_cost`` (model -> mean cost per query on the evaluated queries, which
names the dearest model). Results without them are left out.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display on servers and CI
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from mmr_gym.evaluate import PolicyResult  # noqa: E402

__all__ = ["collapse_frame", "collapse_markdown", "dearest_model", "plot_collapse"]

BUDGETED_STREAM = "budgeted stream"


def dearest_model(result: PolicyResult) -> str | None:
    """The model with the highest mean cost per query on the evaluated queries, or None if unrecorded."""
    costs = result.model_mean_cost
    return max(costs, key=lambda m: costs[m]) if costs else None


def collapse_frame(results: Sequence[PolicyResult]) -> pd.DataFrame:
    """Routing collapse: per budgeted-stream policy and budget ratio, the share of spend on the dearest model.

    Routers that send everything to the most expensive model as soon as money allows are a known
    failure; a share near 1 at large budgets is that failure. A policy is left out when its points
    do not record ``spend_by_model`` or its result does not record ``model_mean_cost``.
    Columns: ``name``, ``budget_ratio``, ``dearest_model``, ``dearest_share`` (in [0, 1]; NaN at a
    point where nothing was spent), ``cost`` (mean spend per query).
    """
    rows = []
    for r in results:
        dearest = dearest_model(r)
        if r.protocol != BUDGETED_STREAM or dearest is None:
            continue
        if not any(p.spend_by_model for p in r.points):
            continue
        for p in r.points:
            share = p.spend_by_model.get(dearest, 0.0) if p.spend_by_model else float("nan")
            rows.append(
                {
                    "name": r.name,
                    "budget_ratio": p.budget_ratio,
                    "dearest_model": dearest,
                    "dearest_share": share,
                    "cost": p.cost,
                }
            )
    return pd.DataFrame(rows, columns=["name", "budget_ratio", "dearest_model", "dearest_share", "cost"])


def collapse_markdown(results: Sequence[PolicyResult]) -> str:
    """The "Routing collapse" section of results.md: the dearest model's share of spend per budget ratio."""
    frame = collapse_frame(results)
    lines = ["## Routing collapse", ""]
    if frame.empty:
        lines.append(
            "No result records its spend per model (BudgetPoint.spend_by_model and "
            "PolicyResult.model_mean_cost): no routing-collapse figure."
        )
        return "\n".join(lines)
    dearest = frame["dearest_model"].iloc[0]
    lines += [
        f"Share of each policy's spend that goes to the dearest model ({dearest}, the highest mean cost per "
        "query on the evaluated queries), per budget ratio. A share near 100% at large budgets means the "
        "policy sends everything to the most expensive model once money allows (routing collapse).",
        "",
    ]
    ratios = list(dict.fromkeys(frame["budget_ratio"].tolist()))
    lines.append("| policy | " + " | ".join(f"{r:g}" for r in ratios) + " |")
    lines.append("|---|" + "---:|" * len(ratios))
    for name, group in frame.groupby("name", sort=False):
        by_ratio = dict(zip(group["budget_ratio"], group["dearest_share"], strict=True))
        cells = [_percent_cell(by_ratio.get(r, float("nan"))) for r in ratios]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_collapse(results: Sequence[PolicyResult], path: str | Path, title: str = "") -> Path | None:
    """The dearest model's share of spend against the budget ratio, one line per policy.

    Policies that do not record their spend per model are skipped; with none left no file is
    written and None is returned.
    """
    frame = collapse_frame(results)
    if frame.empty:
        return None
    path = Path(path)
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=120)
    markers = "osD^vP*X<>"
    for i, (name, group) in enumerate(frame.groupby("name", sort=False)):
        ax.plot(
            group["budget_ratio"],
            100 * group["dearest_share"],
            marker=markers[i % len(markers)],
            markersize=4,
            linewidth=1.4,
            label=name,
        )
    ratios = frame["budget_ratio"]
    if ratios.min() > 0 and ratios.max() / ratios.min() > 20:
        ax.set_xscale("log")
    ax.set_ylim(-3, 103)
    ax.set_xlabel("budget ratio (budget / (episode length x c_ref))")
    ax.set_ylabel(f"share of spend on {frame['dearest_model'].iloc[0]} (%)")
    ax.set_title(title or "routing collapse: spend on the dearest model as the budget grows")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def _percent_cell(value: float) -> str:
    return f"{100 * value:.1f}%" if math.isfinite(value) else "n/a"
