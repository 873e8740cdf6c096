"""Reading the ``<model>_correct`` / ``<model>_cost`` column pairs of an outcome frame."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from mmr_gym.errors import TableError

CORRECT_SUFFIX = "_correct"
COST_SUFFIX = "_cost"


def infer_model_names(columns: Iterable[str]) -> list[str]:
    """Model names M that have both ``M_correct`` and ``M_cost`` columns, in column order."""
    columns = [str(c) for c in columns]
    costs = {c[: -len(COST_SUFFIX)] for c in columns if c.endswith(COST_SUFFIX)}
    return [c[: -len(CORRECT_SUFFIX)] for c in columns if c.endswith(CORRECT_SUFFIX) and c[: -len(CORRECT_SUFFIX)] in costs]


def numeric_column(frame: pd.DataFrame, column: str, source: str, row_offset: int = 0) -> np.ndarray:
    """``frame[column]`` as float64; a value that is not a number raises a TableError naming its row.

    Empty cells become NaN (they are filled later, and counted); text such as ``"abc"`` is an error.
    ``row_offset`` turns frame positions into the row numbers a person sees in the file.
    """
    if column not in frame.columns:
        raise TableError(source, column, None, "missing column")
    raw = frame[column]
    values = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=np.float64)
    not_numeric = np.isnan(values) & raw.notna().to_numpy() & (raw.astype(str).str.strip() != "").to_numpy()
    if not_numeric.any():
        row = int(np.flatnonzero(not_numeric)[0])
        raise TableError(source, column, row + row_offset, f"not a number: {raw.iloc[row]!r}")
    return values


def fill_missing(values: np.ndarray) -> tuple[np.ndarray, int]:
    """Fill NaNs with the column mean, as MMR-Bench does. Returns ``(filled, how_many_filled)``."""
    missing = np.isnan(values)
    count = int(missing.sum())
    if count == 0:
        return values, 0
    if count == values.size:
        return values, count  # left NaN: the range check then reports the column
    filled = values.copy()
    filled[missing] = float(np.nanmean(values))
    return filled, count


def outcome_arrays(
    frame: pd.DataFrame,
    model_names: Sequence[str],
    source: str,
    *,
    row_offset: int = 0,
    nan_counts: dict[str, int] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The ``[n, K]`` correct and cost arrays of ``model_names`` from ``frame``.

    Missing cells are filled with the column mean and their number per column is written to
    ``nan_counts`` (when given); values are range-checked later by RoutingTable itself, but
    negative costs and correctness outside [0, 1] are reported here already with the file's rows.
    """
    if not model_names:
        raise TableError(source, None, None, "no model columns: expected pairs '<model>_correct' and '<model>_cost'")
    n = len(frame)
    correct = np.empty((n, len(model_names)), dtype=np.float64)
    cost = np.empty((n, len(model_names)), dtype=np.float64)
    for j, model in enumerate(model_names):
        for target, column, low, high in (
            (correct, f"{model}{CORRECT_SUFFIX}", 0.0, 1.0),
            (cost, f"{model}{COST_SUFFIX}", 0.0, np.inf),
        ):
            values = numeric_column(frame, column, source, row_offset)
            bad = np.flatnonzero(~np.isnan(values) & ((values < low) | (values > high) | ~np.isfinite(values)))
            if bad.size:
                row = int(bad[0])
                expected = "in [0, 1]" if np.isfinite(high) else "a finite number >= 0"
                raise TableError(
                    source, column, row + row_offset,
                    f"value {values[row]!r} is not {expected} ({bad.size} such row(s))",
                )
            values, filled = fill_missing(values)
            if filled and nan_counts is not None:
                nan_counts[column] = filled
            target[:, j] = values
    return correct, cost
