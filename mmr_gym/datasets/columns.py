"""Reading the ``<model>_correct`` / ``<model>_cost`` column pairs of an outcome frame.

Every error names the source, the column and where the bad value is. Positions are reported in one
of two ways, chosen by the caller:

- ``lines`` given (text files such as CSV): the file's line number of each frame row, the header
  being line 1; the message says ``line N`` (a quoted cell may span lines, so this is not simply
  ``row + 2``);
- otherwise: ``TableError.row`` is the frame position plus ``row_offset``.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from mmr_gym.errors import TableError

CORRECT_SUFFIX = "_correct"
COST_SUFFIX = "_cost"

# Cells that mean "no value" (pandas' default NA strings), compared after strip() and lower().
MISSING_MARKERS = frozenset(
    {"", "nan", "-nan", "na", "n/a", "#n/a", "#na", "<na>", "null", "none", "-1.#ind", "1.#ind"}
)


# The csv module refuses a field over 128 KiB by default; a question (e.g. a pasted document) or a
# note may be longer. The limit is process-wide: it is only ever raised here, never lowered.
_CSV_FIELD_LIMIT = 2**31 - 1


def allow_large_csv_fields() -> None:
    """Let the ``csv`` module read fields of any size (up to 2 GiB), for every CSV loader here."""
    if csv.field_size_limit() < _CSV_FIELD_LIMIT:
        csv.field_size_limit(_CSV_FIELD_LIMIT)


def located_error(
    source: str,
    column: str | None,
    position: int,
    problem: str,
    *,
    row_offset: int = 0,
    lines: Sequence[int] | None = None,
) -> TableError:
    """A TableError for frame row ``position``: ``line N`` when ``lines`` is given, else ``row``."""
    if lines is not None:
        return TableError(source, column, None, f"line {int(lines[position])}: {problem}")
    return TableError(source, column, position + row_offset, problem)


def infer_model_names(columns: Iterable[str]) -> list[str]:
    """Model names M that have both ``M_correct`` and ``M_cost`` columns, in column order."""
    columns = [str(c) for c in columns]
    costs = {c[: -len(COST_SUFFIX)] for c in columns if c.endswith(COST_SUFFIX)}
    return [
        c[: -len(CORRECT_SUFFIX)]
        for c in columns
        if c.endswith(CORRECT_SUFFIX) and c[: -len(CORRECT_SUFFIX)] in costs
    ]


def model_columns(columns: Sequence[str], source: str) -> list[str]:
    """Like :func:`infer_model_names`, but strict: an unpaired ``M_correct`` or ``M_cost`` is an error.

    The reference code ignores a column without its partner; here that would silently drop a model.
    """
    columns = [str(c) for c in columns]
    names = infer_model_names(columns)
    paired = {f"{m}{CORRECT_SUFFIX}" for m in names} | {f"{m}{COST_SUFFIX}" for m in names}
    for column in columns:
        if column in paired:
            continue
        if column.endswith(CORRECT_SUFFIX):
            model = column[: -len(CORRECT_SUFFIX)]
            raise TableError(
                source, column, None, f"model {model!r} has no cost column '{model}{COST_SUFFIX}'"
            )
        if column.endswith(COST_SUFFIX):
            model = column[: -len(COST_SUFFIX)]
            raise TableError(
                source, column, None, f"model {model!r} has no correctness column '{model}{CORRECT_SUFFIX}'"
            )
    if not names:
        raise TableError(
            source, None, None, "no model columns: expected pairs '<model>_correct' and '<model>_cost'"
        )
    for model in names:
        if not model.strip():
            raise TableError(
                source,
                f"{model}{CORRECT_SUFFIX}",
                None,
                "no model name before the suffix: expected '<model>_correct'",
            )
    return names


def numeric_column(
    frame: pd.DataFrame,
    column: str,
    source: str,
    row_offset: int = 0,
    *,
    lines: Sequence[int] | None = None,
) -> np.ndarray:
    """``frame[column]`` as float64; a value that is not a number raises a TableError naming its row.

    Empty cells and NA markers such as ``"NaN"`` or ``"null"`` become NaN (they are filled later, and
    counted); text such as ``"abc"`` is an error. ``row_offset`` turns frame positions into the row
    numbers a person sees; ``lines`` (one per frame row) reports file line numbers instead.
    """
    if column not in frame.columns:
        raise TableError(source, column, None, "missing column")
    raw = frame[column]
    values = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=np.float64)
    coerced = np.flatnonzero(np.isnan(values) & raw.notna().to_numpy())
    if coerced.size:
        text = raw.iloc[coerced].astype(str).str.strip().str.lower()
        not_numeric = coerced[~text.isin(MISSING_MARKERS).to_numpy()]
        if not_numeric.size:
            row = int(not_numeric[0])
            raise located_error(
                source, column, row, f"not a number: {raw.iloc[row]!r}", row_offset=row_offset, lines=lines
            )
    return values


def fill_missing(values: np.ndarray) -> tuple[np.ndarray, int]:
    """Fill NaNs with the column mean, as MMR-Bench does. Returns ``(filled, how_many_filled)``."""
    missing = np.isnan(values)
    count = int(missing.sum())
    if count == 0:
        return values, 0
    if count == values.size:
        return values, count  # left NaN: the caller reports the column
    filled = values.copy()
    filled[missing] = float(np.nanmean(values))
    return filled, count


def outcome_values(
    frame: pd.DataFrame,
    model_names: Sequence[str],
    source: str,
    *,
    row_offset: int = 0,
    lines: Sequence[int] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The raw ``[n, K]`` correct and cost values of ``model_names``, NaN where a cell is missing.

    Non-numeric cells, negative or infinite costs and correctness outside [0, 1] are errors that
    name the column and the row (or line, see the module docstring).
    """
    if not model_names:
        raise TableError(
            source, None, None, "no model columns: expected pairs '<model>_correct' and '<model>_cost'"
        )
    n = len(frame)
    correct = np.empty((n, len(model_names)), dtype=np.float64)
    cost = np.empty((n, len(model_names)), dtype=np.float64)
    for j, model in enumerate(model_names):
        for target, column, low, high in (
            (correct, f"{model}{CORRECT_SUFFIX}", 0.0, 1.0),
            (cost, f"{model}{COST_SUFFIX}", 0.0, np.inf),
        ):
            values = numeric_column(frame, column, source, row_offset, lines=lines)
            bad = np.flatnonzero(
                ~np.isnan(values) & ((values < low) | (values > high) | ~np.isfinite(values))
            )
            if bad.size:
                row = int(bad[0])
                expected = "in [0, 1]" if np.isfinite(high) else "a finite number >= 0"
                raise located_error(
                    source,
                    column,
                    row,
                    f"value {float(values[row])!r} is not {expected} ({bad.size} such row(s) in this column)",
                    row_offset=row_offset,
                    lines=lines,
                )
            target[:, j] = values
    return correct, cost


def fill_outcomes(
    correct: np.ndarray,
    cost: np.ndarray,
    model_names: Sequence[str],
    source: str,
    *,
    nan_counts: dict[str, int] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Fill the NaNs of :func:`outcome_values` with column means; count them per column in ``nan_counts``.

    A column with no value at all has no mean: that is an error, not a silent fill.
    """
    correct, cost = correct.copy(), cost.copy()
    for j, model in enumerate(model_names):
        for array, column in ((correct, f"{model}{CORRECT_SUFFIX}"), (cost, f"{model}{COST_SUFFIX}")):
            values, filled = fill_missing(array[:, j])
            if filled and filled == values.size:
                raise TableError(source, column, None, "every value is missing: no column mean to fill with")
            if filled and nan_counts is not None:
                nan_counts[column] = nan_counts.get(column, 0) + filled
            array[:, j] = values
    return correct, cost


def outcome_arrays(
    frame: pd.DataFrame,
    model_names: Sequence[str],
    source: str,
    *,
    row_offset: int = 0,
    lines: Sequence[int] | None = None,
    nan_counts: dict[str, int] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The ``[n, K]`` correct and cost arrays of ``model_names`` from ``frame``, validated and filled.

    :func:`outcome_values` then :func:`fill_outcomes`: missing cells get the column mean and their
    number per column is written to ``nan_counts`` (when given).
    """
    correct, cost = outcome_values(frame, model_names, source, row_offset=row_offset, lines=lines)
    return fill_outcomes(correct, cost, model_names, source, nan_counts=nan_counts)
