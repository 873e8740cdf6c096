"""The files of ``benchmarks/bench_ope.py``: ``ope.json``, ``ope.md`` and ``ope.png``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from mmr_gym.ope import METHODS
from mmr_gym.provenance import provenance, provenance_line
from mmr_gym.results import json_safe


def write_outputs(
    out: Path, records: list[dict], bar: dict, config: dict, record: dict[str, Any] | None = None
) -> None:
    """``ope.json``, ``ope.md`` and ``ope.png``; ``record`` is the provenance taken when the run started."""
    out.mkdir(parents=True, exist_ok=True)
    record = provenance() if record is None else record
    payload = {"provenance": record, "config": config, "bar": bar, "records": records}
    setting = bar["setting"]
    (out / "ope.json").write_text(json.dumps(json_safe(payload), indent=2) + "\n", encoding="utf-8")
    lines = [
        "# Off-policy evaluation against the truth",
        "",
        provenance_line(record),
        "",
        f"Bar ({setting['logger']} logger, {setting['table']} table, {setting['regime']}): "
        f"{' and '.join(m.upper() for m in setting['methods'])} within {bar['tolerance']} of each target's "
        f"accuracy, 95% intervals covering it in >= {bar['coverage_required']:.0%} of replications: "
        f"**{'met' if bar['met'] else 'NOT met'}**.",
        "",
        "| table | regime | logger | target | method | n | reps | estimate | 95% CI (mean) | truth | bias | RMSE "
        "| coverage | truth (logged) | coverage (logged) | ESS |",
        "|---|---|---|---|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in records:
        if "estimate" not in r:
            lines.append(
                f"| {r['table']} | {r['regime']} | {r['logger']} | {r['target']} | {r['method']} | "
                f"{r['n_logged']} | 0 | failed: {r.get('error', '')[:80]} | | {r['truth']:.4f} | | | | | | |"
            )
            continue
        logged = f"{r['truth_logged']:.4f} | {r['coverage_logged']:.2f}" if "truth_logged" in r else "| "
        lines.append(
            f"| {r['table']} | {r['regime']} | {r['logger']} | {r['target']} | {r['method']} | {r['n_logged']} | "
            f"{r['replications']} | {r['estimate']:.4f} | {r['ci_low']:.4f}-{r['ci_high']:.4f} | {r['truth']:.4f} | "
            f"{r['bias']:+.4f} | {r['rmse']:.4f} | {r['coverage']:.2f} | {logged} | {r['ess']:.0f} |"
        )
    (out / "ope.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    plot(records, out / "ope.png")


def plot(records: list[dict], path: Path) -> None:
    """Estimate (mean over replications) against truth, one panel per table and regime; bars: the
    mean 95% interval (an interval's bounds average over the replications that had one)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tables = list(dict.fromkeys(r["table"] for r in records))
    regimes = list(dict.fromkeys(r["regime"] for r in records))
    fig, axes = plt.subplots(
        len(tables), len(regimes), figsize=(5.2 * len(regimes), 5.0 * len(tables)), squeeze=False
    )
    colours = dict(zip(METHODS, plt.rcParams["axes.prop_cycle"].by_key()["color"], strict=False))
    markers = dict(zip(("uniform", "eps-greedy", "softmax", "thompson"), "os^D", strict=False))
    for row, table in enumerate(tables):
        for col, regime in enumerate(regimes):
            ax = axes[row][col]
            rows = [r for r in records if (r["table"], r["regime"]) == (table, regime) and "estimate" in r]
            for r in rows:
                low, high = (_number(r[key]) for key in ("ci_low", "ci_high"))
                below = np.nan_to_num(max(r["estimate"] - low, 0.0))
                above = np.nan_to_num(max(high - r["estimate"], 0.0))
                ax.errorbar(
                    r["truth"],
                    r["estimate"],
                    yerr=[[below], [above]],
                    fmt=markers.get(r["logger"], "o"),
                    color=colours[r["method"]],
                    ms=4,
                    alpha=0.7,
                    elinewidth=0.8,
                )
            values = [v for r in rows for v in (r["truth"], r["estimate"])] or [0.0, 1.0]
            lo, hi = min(values) - 0.05, max(values) + 0.05
            ax.plot([lo, hi], [lo, hi], color="grey", lw=0.8, ls="--")
            ax.set(xlim=(lo, hi), ylim=(lo, hi), title=f"{table}, {regime}")
            ax.set(xlabel="truth (online accuracy)", ylabel="estimate (mean over replications)")
    handles = [plt.Line2D([], [], color=c, marker="o", ls="", label=m) for m, c in colours.items()]
    handles += [plt.Line2D([], [], color="black", marker=m, ls="", label=lg) for lg, m in markers.items()]
    axes[0][-1].legend(handles=handles, fontsize=7, loc="lower right")
    fig.suptitle("Off-policy estimates of accuracy against the truth (bars: mean 95% interval)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _number(value: Any) -> float:
    """A float from a record (JSON keeps NaN as the string "nan")."""
    return float(value)
