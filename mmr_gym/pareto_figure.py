"""The cost-accuracy figure of a comparison (``pareto.png``, ``.pdf`` and ``.svg``), ready for a paper."""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display on servers and CI
import matplotlib.pyplot as plt  # noqa: E402

from mmr_gym.results import PolicyResult  # noqa: E402

#: Line styles and markers cycled with the colours so that curves stay apart where they overlap and
#: in black and white: 10 colours x 4 styles x 10 markers before a combination repeats.
LINE_STYLES = ("-", (0, (5, 2)), "-.", (0, (1, 1.5)))
MARKERS = "osD^vPX<>h"


def plot_pareto(results: Sequence[PolicyResult], path: str | Path, title: str = "", note: str = "") -> Path:
    """The cost-accuracy figure: every policy's budget points and Pareto frontier, the best single
    model as a star; written as PNG (``path``) and, beside it, PDF and SVG.

    Each policy has its own colour, line style and marker; privileged references (oracles) are thin
    grey dotted lines. Error bars give the spread over seeds (one standard deviation of cost and of
    accuracy) where there are several. The legend sits outside the axes, and a caption under them
    says what the points, bars and lines are, in which cost unit, and ``note`` (e.g. that the table
    is simulated).

    Args:
        results: the policies' results (their ``points``, ``frontier`` and ``best_single``).
        path: the PNG file; the PDF and SVG take its name with their suffix.
        title: the figure's title.
        note: a sentence added to the caption.

    Returns:
        ``path``.
    """
    path = Path(path)
    fig, ax = plt.subplots(figsize=(9, 5.5), dpi=150)
    # tab10 without its grey, which marks the privileged references
    colours = [c for i, c in enumerate(plt.get_cmap("tab10").colors) if i != 7]
    seeds = max((_seed_count(r) for r in results), default=1)
    policy_index = privileged_index = 0
    for r in results:
        costs = [p.cost for p in r.points]
        accs = [p.accuracy for p in r.points]
        if r.privileged:
            j = privileged_index
            privileged_index += 1
            style = {
                "color": ("0.3", "0.6")[j % 2],
                "linestyle": ((0, (1, 1)), (0, (2, 3)))[j % 2],
                "linewidth": 1.0,
                "marker": "x+1"[j % 3],
                "zorder": 2,
            }
            label = f"{r.name} (privileged)"
        else:
            i = policy_index
            policy_index += 1
            style = {
                "color": colours[i % len(colours)],
                "linestyle": LINE_STYLES[i % len(LINE_STYLES)],
                "linewidth": 1.6,
                "marker": MARKERS[i % len(MARKERS)],
                "zorder": 3,
            }
            label = r.name
        ax.plot(
            [c for c, _ in r.frontier],
            [a for _, a in r.frontier],
            markersize=2.5 if len(r.frontier) > 30 else 5,
            label=label,
            **style,
        )
        x_err = [_finite_or_zero(p.cost_std) for p in r.points]
        y_err = [_finite_or_zero(p.accuracy_std) for p in r.points]
        spread = any(x_err) or any(y_err)
        ax.errorbar(
            costs,
            accs,
            xerr=x_err if spread else None,
            yerr=y_err if spread else None,
            fmt=style["marker"],
            markersize=3,
            color=style["color"],
            alpha=0.45,
            elinewidth=0.8,
            capsize=1.5,
            zorder=style["zorder"],
        )
    if results:
        best = results[0].best_single
        ax.scatter(
            [best["mean_cost"]],
            [best["accuracy"]],
            marker="*",
            s=180,
            color="black",
            zorder=5,
            label=f"best single model: {best['model']}",
        )
    positive = [p.cost for r in results for p in r.points if p.cost > 0]
    if positive and max(positive) / min(positive) > 20:
        ax.set_xscale("log")  # MMR-Bench prices span more than 300x
    unit = results[0].cost_unit if results else ""
    ax.set_xlabel(f"mean cost per query, in {unit}" if unit else "mean cost per query")
    ax.set_ylabel("accuracy (share of test queries answered correctly)")
    ax.set_title(title or "cost-accuracy frontiers")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, frameon=False)
    spread_text = (
        f"bars: one standard deviation over {seeds} seeds" if seeds > 1 else "one seed: no spread shown"
    )
    caption = (
        f"Faint markers: one budget ratio each, mean over seeds ({spread_text}); lines: each policy's "
        "Pareto frontier; dotted grey: privileged references that see the outcomes."
    )
    fig.text(0.01, 0.01, textwrap.fill(f"{caption} {note}".strip(), 150), fontsize=7, va="bottom")
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    # Text stays text in the SVG and PDF (editable, searchable); no creation date: the files repeat.
    with plt.rc_context({"svg.fonttype": "none", "svg.hashsalt": "mmr-gym", "pdf.fonttype": 42}):
        fig.savefig(path, bbox_inches="tight")
        fig.savefig(path.with_suffix(".pdf"), bbox_inches="tight", metadata={"CreationDate": None})
        fig.savefig(path.with_suffix(".svg"), bbox_inches="tight", metadata={"Date": None})
    plt.close(fig)
    return path


def _seed_count(result: PolicyResult) -> int:
    return max(len(result.QNC_per_seed), len(result.regret_per_seed), 1)


def _finite_or_zero(value: float) -> float:
    return value if math.isfinite(value) else 0.0
