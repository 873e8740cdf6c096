"""Progress of long work: tqdm bars on a terminal, a few plain lines anywhere else.

A bar redrawn in place is right on a terminal and wrong in a file: redirected, tqdm writes every
redraw with carriage returns and escape codes (hundreds of kilobytes for one run of ``train.py``).
So :func:`progress` gives a tqdm bar only where someone watches one (a terminal, or a Jupyter
kernel, where ``tqdm.auto`` draws a widget) and otherwise a :class:`LineProgress`: a line when the
work starts, at most one per quarter done (no closer together than ``min_interval`` seconds), and
one when it ends, with no control characters. :class:`Stages` is the outer progress of a run of
unlike steps (policies whose costs differ a hundredfold): it says which step runs and what it is
doing, and gives no time left, which their count cannot tell.

Estimates of the time left come from the mean rate since the start (tqdm's ``smoothing=0``), which
is honest for work of uniform units (training steps, queries answered) and which a short burst
does not swing.
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

from tqdm import tqdm as plain_tqdm
from tqdm.auto import tqdm as auto_tqdm


def interactive(file: TextIO | None = None) -> bool:
    """Whether progress drawn on ``file`` (default ``sys.stderr``) is watched live: a terminal or a Jupyter kernel."""
    if "ipykernel" in sys.modules and file is None:
        return True
    stream = sys.stderr if file is None else file
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty is not None and isatty())
    except ValueError:  # a closed stream
        return False


class LineProgress:
    """tqdm's interface (``update``, ``set_postfix_str``, ``close``, context manager) as plain lines.

    Args:
        total: units of work in all, or None if unknown (then no share and no time left).
        desc: what runs, e.g. ``"train MaskablePPO, seed 1"``.
        unit: the units' name, plural (``"steps"``, ``"queries"``).
        file: where the lines go (default ``sys.stderr``).
        min_interval: seconds between two intermediate lines at least.
    """

    def __init__(
        self,
        total: float | None = None,
        desc: str = "",
        unit: str = "it",
        file: TextIO | None = None,
        min_interval: float = 30.0,
    ) -> None:
        self.total, self.desc, self.unit = total, desc, unit
        self.file = file
        self.min_interval = min_interval
        self.n = 0
        self.postfix = ""
        self._start = self._last = time.monotonic()
        self._quarter = 0
        self._closed = False
        self._write(f"{self._count(self.total)} {self.unit}" if self.total else "started")

    def update(self, n: float = 1) -> None:
        self.n += n
        if not self.total:
            return
        quarter = min(int(4 * self.n / self.total), 3)
        now = time.monotonic()
        if quarter > self._quarter and now - self._last >= self.min_interval:
            self._quarter = quarter
            elapsed = now - self._start
            left = elapsed * (self.total - self.n) / self.n
            self._write(
                f"{100 * self.n / self.total:.0f}% ({self._count(self.n)}/{self._count(self.total)} "
                f"{self.unit}) after {_duration(elapsed)}, about {_duration(left)} left"
            )

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None:
        self.postfix = s

    def set_description(self, desc: str = "", refresh: bool = True) -> None:
        self.desc = desc

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        elapsed = time.monotonic() - self._start
        rate = f", {self.n / elapsed:,.0f} {self.unit}/s" if elapsed > 0 and self.n else ""
        self._write(f"done, {self._count(self.n)} {self.unit} in {_duration(elapsed)}{rate}")

    def __enter__(self) -> LineProgress:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _write(self, text: str) -> None:
        self._last = time.monotonic()
        postfix = f" [{self.postfix}]" if self.postfix else ""
        file = sys.stderr if self.file is None else self.file
        print(f"{self.desc}{postfix}: {text}", file=file, flush=True)

    @staticmethod
    def _count(n: float | None) -> str:
        return f"{n:,.0f}" if n is not None else "?"


def progress(
    total: float | None = None,
    desc: str = "",
    unit: str = "it",
    *,
    enabled: bool = True,
    leave: bool = False,
    file: TextIO | None = None,
    min_interval: float = 30.0,
) -> Any:
    """A progress bar where someone watches one, plain lines elsewhere, nothing if not ``enabled``.

    Args:
        total: units of work in all (None: unknown).
        desc: what runs; name the policy, the seed and the phase.
        unit: the units' name, plural (``"steps"``, ``"queries"``).
        enabled: False gives a silent bar (tqdm's ``disable=True``).
        leave: keep the finished bar on the terminal.
        file: the stream (default ``sys.stderr``).
        min_interval: seconds between two intermediate plain lines at least.

    Returns:
        A ``tqdm`` bar or a :class:`LineProgress` (the same calls work on both).
    """
    if not enabled:
        return plain_tqdm(total=total, disable=True)
    if interactive(file):
        bar = auto_tqdm if file is None else plain_tqdm
        return bar(total=total, desc=desc, unit=unit, leave=leave, file=file, smoothing=0, dynamic_ncols=True)
    return LineProgress(total, desc, unit, file=file, min_interval=min_interval)


class Stages:
    """The outer progress of a run of ``total`` unlike steps: which one runs and what it does, no time left.

    On a terminal, a bar ``[elapsed] step 3/8: rl-dqn, seed 1 (2/3): training``; elsewhere a line
    per :meth:`phase`. Steps differ in cost by orders of magnitude (a baseline takes seconds, an RL
    agent minutes), so their count says nothing of the time left, and none is shown.
    """

    def __init__(self, total: int, unit: str = "step", *, enabled: bool = True, file: TextIO | None = None):
        self.total, self.unit, self.enabled, self.file = total, unit, enabled, file
        self.index, self.label = 0, ""
        self._started = time.monotonic()
        self._bar: Any = None

    def start(self, label: str) -> None:
        """The next step begins (``label`` names it, e.g. the policy)."""
        self.index += 1
        self.label = label
        if not self.enabled or not interactive(self.file):
            return
        desc = f"{self.unit} {self.index}/{self.total}: {label}"
        if self._bar is None:  # drawn from the first step on: what the run prints before stays clear of it
            self._bar = auto_tqdm(
                total=self.total,
                desc=desc,
                file=self.file,
                bar_format="[{elapsed}] {desc}{postfix}",
                dynamic_ncols=True,
            )
            return
        self._bar.set_description_str(desc, refresh=False)
        self._bar.set_postfix_str("", refresh=False)
        self._bar.update(self.index - 1 - self._bar.n)

    def phase(self, text: str) -> None:
        """What the current step does now, e.g. ``"seed 1 (2/3): training"``."""
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.set_postfix_str(text)
            return
        elapsed = _duration(time.monotonic() - self._started)
        file = sys.stderr if self.file is None else self.file
        print(
            f"[{self.unit} {self.index}/{self.total}, {elapsed}] {self.label}: {text}", file=file, flush=True
        )

    def close(self) -> None:
        """All steps are done (the bar says so and stays)."""
        if self._bar is not None:
            self._bar.set_description_str(f"{self.unit} {self.index}/{self.total}: finished", refresh=False)
            self._bar.set_postfix_str("", refresh=False)
            self._bar.update(self.total - self._bar.n)
            self._bar.close()
            self._bar = None


def _duration(seconds: float) -> str:
    """``"42 s"``, ``"3 min 05 s"``, ``"1 h 02 min"``."""
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.0f} s" if seconds >= 10 else f"{seconds:.1f} s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"
