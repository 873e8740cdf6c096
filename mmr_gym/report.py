"""Reports: the comparison table (markdown, CSV, JSON) and the cost-accuracy plot (PNG)."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only; no display on servers and CI
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from mmr_gym.evaluate import PolicyResult  # noqa: E402

SUMMARY_COLUMNS = ("name", "nAUC", "nAUC_std", "Ps", "Ps_std", "QNC", "regret", "overrun_rate", "protocol")


def summary_frame(results: Sequence[PolicyResult]) -> pd.DataFrame:
    """One row per policy: nAUC, Ps, QNC (with spread over seeds), regret, overrun rate."""
    rows = []
    for r in results:
        row = {c: getattr(r, c) for c in SUMMARY_COLUMNS}
        row["QNC_std"] = _std_finite(r.QNC_per_seed)
        row["privileged"] = r.privileged
        rows.append(row)
    return pd.DataFrame(rows)


def points_frame(results: Sequence[PolicyResult]) -> pd.DataFrame:
    """One row per policy and budget point (the curves behind the summary)."""
    rows = []
    for r in results:
        for p in r.points:
            rows.append({"name": r.name, **vars(p)})
    return pd.DataFrame(rows)


def markdown_table(results: Sequence[PolicyResult]) -> str:
    """The comparison as a markdown table, mean ± standard deviation over seeds."""
    header = "| policy | nAUC | Ps | QNC | regret | overrun rate | protocol |"
    lines = [header, "|---|---:|---:|---:|---:|---:|---|"]
    for r in results:
        name = f"{r.name} (privileged)" if r.privileged else r.name
        lines.append(
            f"| {name} | {_pm(r.nAUC, r.nAUC_std)} | {_pm(r.Ps, r.Ps_std)} | "
            f"{_pm(r.QNC, _std_finite(r.QNC_per_seed))} | {_fmt(r.regret)} | {_fmt(r.overrun_rate)} | {r.protocol} |"
        )
    return "\n".join(lines)


def plot_pareto(results: Sequence[PolicyResult], path: str | Path, title: str = "") -> Path:
    """Cost-accuracy points and Pareto frontiers of every policy; the best single model as a star."""
    path = Path(path)
    fig, ax = plt.subplots(figsize=(8, 5.5), dpi=120)
    markers = "osD^vP*X<>"
    for i, r in enumerate(results):
        costs = [p.cost for p in r.points]
        accs = [p.accuracy for p in r.points]
        # Oracles are references, not competitors: dashed, so the policies stay visible beneath them.
        (line,) = ax.plot(
            [c for c, _ in r.frontier],
            [a for _, a in r.frontier],
            marker=markers[i % len(markers)],
            markersize=2 if len(r.frontier) > 30 else 5,
            linestyle="--" if r.privileged else "-",
            linewidth=1.0 if r.privileged else 1.6,
            label=f"{r.name} (privileged)" if r.privileged else r.name,
            zorder=2 if r.privileged else 3,
        )
        ax.scatter(costs, accs, s=10, color=line.get_color(), alpha=0.35)
    if results:
        best = results[0].best_single
        ax.scatter(
            [best["mean_cost"]],
            [best["accuracy"]],
            marker="*",
            s=180,
            color="black",
            zorder=5,
            label=f"best single: {best['model']}",
        )
    positive = [p.cost for r in results for p in r.points if p.cost > 0]
    if positive and max(positive) / min(positive) > 20:
        ax.set_xscale("log")  # MMR-Bench prices span more than 300x
    unit = results[0].cost_unit if results else ""
    ax.set_xlabel(f"mean cost per query ({unit})")
    ax.set_ylabel("accuracy")
    ax.set_title(title or "cost-accuracy frontiers")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def write_report(
    results: Sequence[PolicyResult],
    out_dir: str | Path,
    *,
    title: str = "",
    context: dict[str, Any] | None = None,
) -> dict[str, Path]:
    """Write ``results.json``, ``results.csv``, ``points.csv``, ``results.md`` and ``pareto.png``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    context = context or {}
    files = {
        "json": out / "results.json",
        "csv": out / "results.csv",
        "points": out / "points.csv",
        "markdown": out / "results.md",
        "plot": out / "pareto.png",
    }
    payload = {"context": context, "results": [r.to_dict() for r in results]}
    files["json"].write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    summary_frame(results).to_csv(files["csv"], index=False)
    points_frame(results).to_csv(files["points"], index=False)
    lines = [f"# {title or 'mmr-gym comparison'}", ""]
    lines += [f"- {k}: {v}" for k, v in context.items()]
    lines += ["", markdown_table(results), "", "![cost-accuracy frontiers](pareto.png)", ""]
    files["markdown"].write_text("\n".join(lines), encoding="utf-8")
    plot_pareto(results, files["plot"], title)
    return files


def _fmt(value: float) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if math.isinf(value):
        return "inf"
    return f"{value:.4f}"


def _pm(value: float, spread: float) -> str:
    if not math.isfinite(value) or not math.isfinite(spread) or spread == 0:
        return _fmt(value)
    return f"{value:.4f} ± {spread:.4f}"


def _std_finite(values: Sequence[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    if len(finite) < 2:
        return float("nan")
    mean = sum(finite) / len(finite)
    return math.sqrt(sum((v - mean) ** 2 for v in finite) / len(finite))
