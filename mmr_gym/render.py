"""Frames of the routing environments for ``render_mode="rgb_array"``.

A frame shows what the agent faces at the current query and what its last call did:

- the title: the query's position in the stream, the correct answers so far and the last call
  (its model, whether it answered correctly, its cost, and the masked model the agent asked for
  when the environment's fallback called another);
- a gauge: the share of the budget spent and the share of the stream answered;
- one bar per model: its cost estimate for the current query (log scale, the cost unit of the
  table), blue where it is affordable and grey where it is masked, against a dashed line at the
  remaining budget.

It draws only what the agent may know before it acts: nothing of the current query's outcome.
Frames have a fixed size (:data:`FRAME_SHAPE`), so ``gymnasium.wrappers.RecordVideo`` and
stable-baselines3's ``VecVideoRecorder`` can stack them. They are drawn on a matplotlib Agg
canvas of their own (no pyplot state, so renderers in threads or processes never meet), created
at the first frame: environments that are never rendered never import matplotlib.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

#: Height, width and channels of every frame (uint8 RGB).
FRAME_SHAPE = (480, 640, 3)
_DPI = 100
_AFFORDABLE, _MASKED, _SPENT, _OVERRUN = "tab:blue", "lightgrey", "tab:orange", "tab:red"


@dataclass(frozen=True)
class FrameState:
    """What one frame shows, in the table's cost unit.

    ``estimates`` and ``mask`` are the current query's per-model cost estimates (``inf`` for a model
    a scenario makes unavailable) and the action mask the agent sees (after the last query: the last query's, all masked); ``remaining`` and
    ``total`` are None without a budget; ``last_call`` is ``(model name, correct, cost)`` of the
    call just made (None at the start of an episode) and ``replaced`` the model the agent asked
    for when that was masked and the environment called its fallback instead (else None).
    """

    model_names: Sequence[str]
    estimates: np.ndarray
    mask: np.ndarray
    cost_label: str
    cost_unit: str
    answered: int
    length: int
    correct_sum: float
    spend: float
    total: float | None
    remaining: float | None
    last_call: tuple[str, float, float] | None
    ended: bool
    replaced: str | None = None


def cost_label(cost_observed: bool) -> str:
    """What the frames call the per-model costs they show: true costs only with ``cost_observed``."""
    return "cost" if cost_observed else "cost estimate"


class FrameRenderer:
    """Draws :class:`FrameState` s as uint8 RGB arrays of :data:`FRAME_SHAPE`.

    ``estimates``: every cost estimate the frames may show (the context's table), which fixes the
    cost axis, so that frames of one episode share one scale (it widens to show a budget beyond).

    The figure and its artists are made at the first frame and then only updated. What never
    changes (axes, ticks, labels, legend) is drawn once into a background that each frame starts
    from (matplotlib's blitting); only the bars, the texts and the line are drawn per frame.
    """

    def __init__(self, estimates: np.ndarray) -> None:
        positive = estimates[estimates > 0]
        self._cost_range = (float(positive.min()), float(positive.max())) if positive.size else (1e-6, 1e-6)
        self._artists: _Artists | None = None

    def __call__(self, state: FrameState) -> np.ndarray:
        if self._artists is None:
            self._artists = _Artists(state.model_names, self._cost_range)
        return self._artists.draw(state)

    def close(self) -> None:
        self._artists = None

    def __getstate__(self) -> dict[str, Any]:
        # A pickled environment takes the scale, not the figure: the copy draws its own.
        return {**self.__dict__, "_artists": None}


class _Artists:
    def __init__(self, model_names: Sequence[str], cost_range: tuple[float, float]) -> None:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.lines import Line2D
        from matplotlib.patches import Patch
        from matplotlib.ticker import NullLocator

        height, width, _ = FRAME_SHAPE
        self.figure = figure = Figure(figsize=(width / _DPI, height / _DPI), dpi=_DPI)
        self.canvas = FigureCanvasAgg(figure)
        # Fixed margins, not tight_layout: the same layout in every frame.
        figure.subplots_adjust(left=0.27, right=0.97, top=0.83, bottom=0.16, hspace=0.35)
        gauge, bars = figure.subplots(2, 1, gridspec_kw={"height_ratios": [1, 5]})
        self.title = figure.text(0.02, 0.97, "", fontsize=10, ha="left", va="top", linespacing=1.6)

        # The gauge: a grey track and a coloured share per row, as fractions of 1.
        rows = np.arange(2)
        gauge.barh(rows, [1.0, 1.0], color=_MASKED, height=0.6)
        self.shares = gauge.barh(rows, [0.0, 0.0], color=_SPENT, height=0.6).patches
        self.share_texts = [gauge.text(0.99, row, "", ha="right", va="center", fontsize=8) for row in rows]
        gauge.set_yticks(rows, ["budget spent", "queries answered"], fontsize=8)
        gauge.set_xlim(0.0, 1.0)
        gauge.set_ylim(1.5, -0.5)
        gauge.set_xticks([])

        # One bar per model: the current query's cost estimate on a log axis.
        k = len(model_names)
        y = np.arange(k)
        self.bars = bars.barh(y, np.ones(k), left=1.0, height=0.7).patches
        self.values = [bars.text(1.0, row, "", va="center", fontsize=7) for row in y]
        self.remaining = bars.axvline(1.0, color="black", linestyle="--", linewidth=1)
        bars.set_xscale("log")
        bars.xaxis.set_minor_locator(NullLocator())
        bars.set_ylim(k - 0.5, -0.5)  # the first model on top
        bars.set_yticks(y, [str(name) for name in model_names], fontsize=8)
        bars.tick_params(axis="x", labelsize=7)
        bars.legend(
            handles=[
                Patch(color=_AFFORDABLE, label="affordable"),
                Patch(color=_MASKED, label="masked"),
                Line2D([], [], color="black", linestyle="--", linewidth=1, label="remaining budget"),
            ],
            loc="lower right",
            fontsize=7,
        )
        self.axes = bars
        self.cost_range = cost_range
        self.limits: tuple[float, float] | None = None
        self.label = ""
        self.changing = [
            self.title,
            *self.shares,
            *self.share_texts,
            *self.bars,
            *self.values,
            self.remaining,
        ]
        for artist in self.changing:
            artist.set_animated(True)  # left out of the background
        self.background: Any = None

    def draw(self, state: FrameState) -> np.ndarray:
        self.title.set_text(_title(state))
        self._draw_gauge(state)
        self._draw_bars(state)
        if self.background is None:
            self.canvas.draw()
            self.background = self.canvas.copy_from_bbox(self.figure.bbox)
        else:
            self.canvas.restore_region(self.background)
        for artist in self.changing:
            self.figure.draw_artist(artist)
        return np.asarray(self.canvas.buffer_rgba())[:, :, :3].copy()

    def _draw_gauge(self, state: FrameState) -> None:
        if state.total is None:
            spent, text = 0.0, f"no budget (spent {state.spend:.4g})"
        else:
            spent = state.spend / state.total if state.total > 0 else 0.0
            text = f"{state.spend:.4g} of {state.total:.4g}"
        self.shares[0].set_width(min(spent, 1.0))
        self.shares[0].set_color(_OVERRUN if spent > 1.0 else _SPENT)  # the last call overshot
        self.share_texts[0].set_text(text)
        self.shares[1].set_width(state.answered / state.length)
        self.share_texts[1].set_text(f"{state.answered} of {state.length}")

    def _draw_bars(self, state: FrameState) -> None:
        estimates = np.asarray(state.estimates, dtype=np.float64)
        # A log axis needs positive limits; a free model (estimate 0) gets no bar, only its label.
        # The budget total, not what remains of it, widens the axis: one scale per episode.
        cheapest, dearest = self.cost_range
        low, high = cheapest / 3, max(dearest, state.total or 0.0) * 3
        if self.limits != (low, high):
            self.axes.set_xlim(low, high)
            self.limits, self.background = (low, high), None  # new ticks: a new background
        for bar, text, value, affordable in zip(self.bars, self.values, estimates, state.mask, strict=True):
            callable_now = bool(np.isfinite(value))  # inf: a scenario makes the model unavailable
            bar.set_x(low)
            bar.set_width(max(value, low) - low if callable_now else 0.0)
            bar.set_color(_AFFORDABLE if affordable else _MASKED)
            text.set_position(((max(value, low) if callable_now else low) * 1.08, text.get_position()[1]))
            text.set_text(f"{value:.3g}" if callable_now else "not available")
        self.remaining.set_visible(state.remaining is not None)
        if state.remaining is not None:
            self.remaining.set_xdata([max(state.remaining, low)] * 2)
        label = f"{state.cost_label} for this query\n{state.cost_unit}"
        if label != self.label:
            self.axes.set_xlabel(label, fontsize=8)
            self.label, self.background = label, None


def _title(state: FrameState) -> str:
    position = "episode over" if state.ended else f"query {state.answered + 1} of {state.length}"
    head = f"{position}   correct so far: {state.correct_sum:g} of {state.answered} answered"
    if state.last_call is None:
        return f"{head}\nlast call: none yet in this episode"
    model, correct, cost = state.last_call
    if state.replaced is not None:
        model = f"{model} (fallback: {state.replaced} was masked)"
    verdict = "correct" if correct == 1 else "wrong" if correct == 0 else f"score {correct:.3g}"
    return f"{head}\nlast call: {model}, {verdict}, cost {cost:.4g}"
