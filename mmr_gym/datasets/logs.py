"""Long-format call logs: one row per (query, model) call, turned into a :class:`RoutingTable`.

A production router logs calls, not tables: each row says which model answered which query, whether
the answer was correct and what the call cost. :func:`load_call_log` reads such a log from CSV,
Parquet or JSONL (one JSON object a line) with the columns

- ``query_id`` (required): the query; every (query, model) pair appears at most once;
- ``model`` (required): the model called;
- ``correct`` (required): in [0, 1] (``true``/``false`` count as 1/0; graded scores allowed);
- ``cost`` (required): finite, >= 0, in one unit (``cost_unit``);
- ``question`` (optional): the query text; ``img_path`` (optional): its image, a relative path
  resolved against the log's folder; ``dataset`` (optional): the dataset the query belongs to.

The query-level columns (``question``, ``img_path``, ``dataset``) must agree across a query's rows
(empty cells are ignored). Other column names are mapped with ``columns={"query_id": "qid", ...}``.

Every query needs a row for every model: a query that lacks some is reported (``incomplete="error"``,
the default) or dropped with a warning and a count in ``meta["incomplete"]`` (``"drop"``). Errors
name the file, the column and the position: the **file line** for CSV (header = line 1) and JSONL,
the 0-based **row** for Parquet.
"""

from __future__ import annotations

import csv
import os
import warnings
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from mmr_gym.datasets.columns import fill_outcomes, located_error, numeric_column
from mmr_gym.datasets.encoded import EncodedQueries, MissingImages, encode_table_queries, encoder_names
from mmr_gym.datasets.math_v import _jsonl_records  # the JSONL reader with line-precise errors
from mmr_gym.datasets.mmr_bench import _read_csv  # the CSV reader with line-precise errors
from mmr_gym.errors import TableError
from mmr_gym.features import CachePath
from mmr_gym.fitted_features import FITTED_FEATURES_KEY
from mmr_gym.table import RoutingTable

__all__ = ["LOG_COLUMNS", "LOG_SUFFIXES", "is_call_log", "load_call_log"]

#: Role -> default column name.
LOG_COLUMNS: dict[str, str] = {
    "query_id": "query_id",
    "model": "model",
    "correct": "correct",
    "cost": "cost",
    "question": "question",
    "img_path": "img_path",
    "dataset": "dataset",
}
_REQUIRED = ("query_id", "model", "correct", "cost")
_QUERY_LEVEL = ("dataset", "question", "img_path")
#: File suffixes read as call logs (``.csv`` is a call log when its header says so, see :func:`is_call_log`).
LOG_SUFFIXES = {".parquet": "parquet", ".pq": "parquet", ".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv"}
_COST_SOURCES = ("measured", "estimated", "simulated")
_TRUE_FALSE = {"true": 1.0, "false": 0.0}
_SHOWN = 5  # examples listed in an error message

Incomplete = Literal["error", "drop"]


@dataclass(frozen=True)
class _Log:
    """A log file's rows and where each row is, for error messages."""

    source: str
    frame: pd.DataFrame
    lines: np.ndarray | None  # file line of each row (CSV, JSONL); None: report 0-based rows (Parquet)

    def error(self, column: str | None, position: int, problem: str) -> TableError:
        return located_error(self.source, column, position, problem, lines=self.lines)

    def where(self, position: int) -> str:
        return f"line {int(self.lines[position])}" if self.lines is not None else f"row {position}"


def _column_names(columns: Mapping[str, str] | None) -> dict[str, str]:
    names = dict(LOG_COLUMNS)
    for role, name in (columns or {}).items():
        if role not in LOG_COLUMNS:
            raise ValueError(f"columns: unknown role {role!r}; the roles are {sorted(LOG_COLUMNS)}")
        names[role] = str(name)
    if len(set(names.values())) != len(names):
        raise ValueError(f"columns: two roles share one column name: {names}")
    return names


def _csv_header(path: Path) -> list[str]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            for record in csv.reader(fh):
                if record:
                    return [c.strip() for c in record]
    except (UnicodeDecodeError, csv.Error):
        return []
    return []


def is_call_log(path: str | os.PathLike[str], columns: Mapping[str, str] | None = None) -> bool:
    """Whether ``path`` is read as a call log: a Parquet or JSONL file, or a CSV file whose header
    has the ``model``, ``correct`` and ``cost`` columns (named by ``columns``) and no
    ``<model>_correct`` column of the MMR-Bench layout."""
    path = Path(path)
    kind = LOG_SUFFIXES.get(path.suffix.lower())
    if kind is None or not path.is_file():
        return False
    if kind != "csv":
        return True
    names = _column_names(columns)
    header = _csv_header(path)
    wide = any(c.endswith("_correct") for c in header)
    return not wide and all(names[role] in header for role in ("model", "correct", "cost"))


def _read_log(path: Path) -> _Log:
    source = str(path)
    kind = LOG_SUFFIXES.get(path.suffix.lower())
    if kind == "csv":
        _, frame, lines = _read_csv(path)
        return _Log(source, frame, lines)
    if kind == "jsonl":
        records = _jsonl_records(path)
        # dtype=object: each cell as JSON gave it (ids 1 and 1.0 stay two queries, not one float column)
        frame = pd.DataFrame([r for _, r in records], dtype=object)
        return _Log(source, frame, np.asarray([line for line, _ in records], dtype=np.int64))
    if kind == "parquet":
        try:
            frame = pd.read_parquet(path)
        except Exception as exc:  # pyarrow raises several types for a damaged or foreign file
            raise TableError(
                source, None, None, f"cannot read as Parquet ({type(exc).__name__}: {exc})"
            ) from None
        if frame.empty:
            raise TableError(source, None, None, "no rows: the file has no calls")
        return _Log(source, frame.reset_index(drop=True), None)
    raise TableError(
        source, None, None, f"unknown log format {path.suffix!r}: expected one of {sorted(LOG_SUFFIXES)}"
    )


def _strings(log: _Log, column: str, *, required: bool) -> np.ndarray:
    """The column as stripped strings, ``""`` for an empty cell; an empty cell of a required column is an error."""
    raw = log.frame[column]
    nested = [i for i, v in enumerate(raw.tolist()) if isinstance(v, dict | list | tuple | np.ndarray)]
    if nested:  # a JSON object or list as a name would become its repr
        raise log.error(column, nested[0], f"not a single value: {raw.iloc[nested[0]]!r}")
    values = np.asarray(
        ["" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v).strip() for v in raw.tolist()],
        dtype=object,
    )
    if required:
        empty = np.flatnonzero(values == "")
        if empty.size:
            raise log.error(column, int(empty[0]), f"empty; every call needs one ({empty.size} such row(s))")
    return values


def _numbers(log: _Log, column: str, *, low: float, high: float, truth: bool = True) -> np.ndarray:
    """The column as float64 (``true``/``false`` as 1/0 where ``truth``); NaN for an empty cell; bad
    values are errors."""
    raw = log.frame[column]
    if not truth:  # a cost of True is no amount
        flags = [i for i, v in enumerate(raw.tolist()) if isinstance(v, bool | np.bool_)]
        if flags:
            raise log.error(column, flags[0], f"not a number: {bool(raw.iloc[flags[0]])!r}")

    def as_number(value: Any) -> Any:
        if isinstance(value, (bool, np.bool_)):
            return float(value)
        if isinstance(value, str) and value.strip().lower() in _TRUE_FALSE:
            return _TRUE_FALSE[value.strip().lower()]
        return value

    converted = pd.DataFrame({column: raw.map(as_number)})
    values = numeric_column(converted, column, log.source, lines=log.lines)
    bad = np.flatnonzero(~np.isnan(values) & ((values < low) | (values > high) | ~np.isfinite(values)))
    if bad.size:
        row = int(bad[0])
        expected = "in [0, 1]" if np.isfinite(high) else "a finite number >= 0"
        raise log.error(column, row, f"value {raw.iloc[row]!r} is not {expected} ({bad.size} such row(s))")
    return values


def _query_attribute(
    log: _Log, column: str, query_codes: np.ndarray, n_queries: int
) -> tuple[np.ndarray, np.ndarray]:
    """One value per query from a query-level column: the first non-empty one (and its row, -1 when
    none); a different non-empty value for the same query is an error."""
    values = _strings(log, column, required=False)
    out = np.full(n_queries, "", dtype=object)
    first = np.full(n_queries, -1, dtype=np.int64)
    for row in np.flatnonzero(values != ""):
        q = query_codes[row]
        if first[q] < 0:
            out[q], first[q] = values[row], row
        elif values[row] != out[q]:
            raise log.error(
                column,
                int(row),
                f"{values[row]!r} differs from {out[q]!r} given for the same query at {log.where(int(first[q]))}; "
                "a query's rows must agree",
            )
    return out, first


def load_call_log(
    path: str | os.PathLike[str],
    *,
    columns: Mapping[str, str] | None = None,
    incomplete: Incomplete = "error",
    models: Sequence[str] | None = None,
    dataset: str | None = None,
    features: str | Sequence[str] | None = "auto",
    cost_unit: str = "unspecified (as in the log)",
    cost_source: str = "measured",
    missing_images: MissingImages = "error",
    cache_dir: CachePath = None,
    progress: bool = True,
) -> RoutingTable:
    """A RoutingTable from a long-format call log (see the module docstring for the format).

    Args:
        path: a ``.csv``, ``.parquet``/``.pq`` or ``.jsonl``/``.ndjson`` file.
        columns: role -> column name, for logs whose columns are named otherwise (roles:
            :data:`LOG_COLUMNS`).
        incomplete: a query without a row for every model: ``"error"`` (default; the message lists
            such queries and their missing models) or ``"drop"`` (keep only complete queries; warned
            about and counted in ``meta["incomplete"]``).
        models: the models to keep, in this column order (rows of other models are ignored and
            counted in ``meta["ignored_rows"]``); None: every model, in order of first appearance.
        dataset: the dataset name of every query when the log has no dataset column (default: the
            file name without its suffix).
        features: ``"auto"``: the TF-IDF text channel (fitted on the training split) when the log has
            questions, else none; a list of encoder names (``"minilm"``, ``"tfidf"``,
            ``"image-stats"``, ``"clip:<dir>"``; see :mod:`mmr_gym.datasets.encoded`); None: none.
        cost_unit: the unit of the cost column, recorded in ``meta["cost_unit"]``.
        cost_source: ``"measured"``, ``"estimated"`` or ``"simulated"``.
        missing_images: an image path naming no file, when an encoder reads images: ``"error"`` or
            ``"zero"`` (a zero image row, counted).
        cache_dir: the feature cache root; progress: show progress bars while encoding.

    Queries are in order of first appearance. Empty ``correct`` or ``cost`` cells are filled with
    that model's mean, as MMR-Bench does, counted in ``meta["nan_filled"]`` and warned about.

    Raises:
        TableError: a missing column, an empty id, a bad value, a duplicate (query, model) pair,
            conflicting query attributes, or (``incomplete="error"``) an incomplete query; each
            names the file, the column and the line (row for Parquet).
    """
    if dataset is not None and (not isinstance(dataset, str) or not dataset.strip()):
        raise TypeError(f"dataset must be a dataset name (a non-empty string), got {dataset!r}")
    if incomplete not in ("error", "drop"):
        raise ValueError(f"incomplete must be 'error' or 'drop', got {incomplete!r}")
    if cost_source not in _COST_SOURCES:
        raise ValueError(f"cost_source must be one of {_COST_SOURCES}, got {cost_source!r}")
    path = Path(path)
    if not path.is_file():
        raise TableError(str(path), None, None, "file not found")
    names = _column_names(columns)
    log = _read_log(path)
    for role in _REQUIRED:
        if names[role] not in log.frame.columns:
            raise TableError(log.source, names[role], None, f"missing column (the call's {role} is required)")

    query_ids = _strings(log, names["query_id"], required=True)
    model_of_row = _strings(log, names["model"], required=True)
    correct_of_row = _numbers(log, names["correct"], low=0.0, high=1.0)
    cost_of_row = _numbers(log, names["cost"], low=0.0, high=np.inf, truth=False)

    model_names = _model_order(log, model_of_row, models)
    kept = np.isin(model_of_row, model_names)
    ignored = int((~kept).sum())
    query_codes, query_order = pd.factorize(pd.Series(query_ids), sort=False)
    model_index = {m: j for j, m in enumerate(model_names)}
    n, k = len(query_order), len(model_names)
    cell = np.full((n, k), -1, dtype=np.int64)  # the log row of each (query, model) pair
    for row in np.flatnonzero(kept):
        q, j = query_codes[row], model_index[model_of_row[row]]
        if cell[q, j] >= 0:
            raise log.error(
                names["query_id"],
                int(row),
                f"duplicate call: query {query_ids[row]!r} and model {model_of_row[row]!r} also at "
                f"{log.where(int(cell[q, j]))}; each (query, model) pair must appear once",
            )
        cell[q, j] = row

    attributes: dict[str, np.ndarray | None] = {}
    attribute_rows: dict[str, np.ndarray] = {}
    for role in _QUERY_LEVEL:
        attributes[role] = None
        if names[role] in log.frame.columns:
            attributes[role], attribute_rows[role] = _query_attribute(log, names[role], query_codes, n)
    complete = (cell >= 0).all(axis=1)
    incomplete_record = _incomplete_queries(log, cell, complete, query_order, model_names, query_codes)
    if not complete.all():
        if incomplete == "error":
            raise TableError(
                log.source,
                names["model"],
                None,
                f"{incomplete_record['queries']} of {n} queries lack a call of some model: "
                f"{incomplete_record['shown']}; pass incomplete='drop' to keep only the complete queries",
            )
        if not complete.any():
            raise TableError(log.source, names["model"], None, "no query has a call of every model")
        warnings.warn(
            f"{log.source}: dropped {incomplete_record['queries']} of {n} queries that lack a call of some model "
            f"({incomplete_record['shown']})",
            stacklevel=2,
        )

    rows = cell[complete]
    nan_filled: dict[str, int] = {}
    correct, cost = fill_outcomes(
        correct_of_row[rows], cost_of_row[rows], model_names, log.source, nan_counts=nan_filled
    )
    if nan_filled:
        warnings.warn(
            f"{log.source}: filled {sum(nan_filled.values())} empty value(s) with the model's mean "
            f"(as MMR-Bench does): {nan_filled}",
            stacklevel=2,
        )
    kept_ids = np.asarray(query_order, dtype=object)[complete]
    datasets = attributes["dataset"]
    default_dataset = dataset if dataset is not None else path.stem
    query_datasets = (
        np.where(datasets[complete] == "", default_dataset, datasets[complete]).astype(object)
        if datasets is not None
        else np.full(len(kept_ids), default_dataset, dtype=object)
    )
    texts = attributes["question"][complete] if attributes["question"] is not None else None
    images = _image_paths(attributes["img_path"], complete, path.parent)

    image_rows = attribute_rows["img_path"][complete] if "img_path" in attribute_rows else None
    encoded = _encode(
        log,
        names,
        features,
        texts,
        images,
        image_rows,
        missing_images=missing_images,
        cache_dir=cache_dir,
        progress=progress,
    )
    meta: dict[str, Any] = {
        "source": "call log",
        "files": [log.source],
        "layout": "long (one row per query and model)",
        "columns": names,
        "n_rows": int(len(log.frame)),
        "datasets": dict(Counter(query_datasets.tolist())),
        "model_names": list(model_names),
        "cost_unit": cost_unit,
        "cost_source": cost_source,
        "nan_filled": nan_filled,
        "features": encoded.notes,
        "incomplete": {
            "policy": incomplete,
            "queries": incomplete_record["queries"],
            "examples": incomplete_record["examples"],
        },
        "ignored_rows": ignored,
    }
    if encoded.fitted:
        meta[FITTED_FEATURES_KEY] = encoded.fitted
    if encoded.missing_images:
        meta["missing_images"] = encoded.missing_images
        warnings.warn(
            f"{log.source}: {encoded.missing_images} image file(s) are missing; their image features are zeros",
            stacklevel=2,
        )
    return RoutingTable(
        correct=correct,
        cost=cost,
        query_ids=kept_ids,
        datasets=query_datasets,
        model_names=tuple(model_names),
        features=encoded.channels,
        meta=meta,
        source=log.source,
        texts=texts,
    )


def _model_order(log: _Log, model_of_row: np.ndarray, models: Sequence[str] | None) -> list[str]:
    seen = list(dict.fromkeys(model_of_row.tolist()))
    if models is None:
        return seen
    if isinstance(models, str):
        raise TypeError(f"models must be a list of model names, got the single string {models!r}")
    chosen = [str(m) for m in models]
    if len(set(chosen)) != len(chosen):
        raise ValueError(f"models {chosen} names a model twice")
    unknown = [m for m in chosen if m not in seen]
    if unknown:
        raise ValueError(f"{log.source}: model(s) {unknown} have no call in the log; its models are {seen}")
    if not chosen:
        raise ValueError("models=[] selects nothing; pass None to keep every model")
    return chosen


def _incomplete_queries(
    log: _Log,
    cell: np.ndarray,
    complete: np.ndarray,
    query_order: Any,
    model_names: Sequence[str],
    query_codes: np.ndarray,
) -> dict[str, Any]:
    """The count of incomplete queries, a few examples (query -> missing models) and a message part."""
    missing = np.flatnonzero(~complete)
    examples: dict[str, list[str]] = {}
    parts = []
    for q in missing[:_SHOWN]:
        lacking = [m for j, m in enumerate(model_names) if cell[q, j] < 0]
        first_row = int(np.flatnonzero(query_codes == q)[0])
        examples[str(query_order[q])] = lacking
        parts.append(
            f"query {str(query_order[q])!r} ({log.where(first_row)}) has no row for model(s) {lacking}"
        )
    more = f" and {missing.size - _SHOWN} more" if missing.size > _SHOWN else ""
    return {"queries": int(missing.size), "examples": examples, "shown": "; ".join(parts) + more}


def _image_paths(values: np.ndarray | None, complete: np.ndarray, base: Path) -> list[str]:
    if values is None:
        return [""] * int(complete.sum())
    return [str(base / p) if p else "" for p in values[complete].tolist()]


def _encode(
    log: _Log,
    names: Mapping[str, str],
    features: str | Sequence[str] | None,
    texts: np.ndarray | None,
    images: list[str],
    image_rows: np.ndarray | None,
    *,
    missing_images: MissingImages,
    cache_dir: CachePath,
    progress: bool,
) -> EncodedQueries:
    if features is None:
        return EncodedQueries()
    if isinstance(features, str) and features == "auto":
        encoders = ["tfidf"] if texts is not None else []
    elif isinstance(features, str) and features == "csv":
        raise ValueError("features='csv' reads feature columns of the MMR-Bench layout; a call log has none")
    else:
        encoders = encoder_names(features)
    if encoders and texts is None:
        raise TableError(
            log.source,
            names["question"],
            None,
            f"missing column: the encoders {encoders} need the query texts",
        )
    if not encoders:
        return EncodedQueries()
    return encode_table_queries(
        texts.tolist(),
        images,
        encoders,
        # Only a query with an image path can miss its image, so image_rows[q] is a real row.
        image_error=lambda q, problem: log.error(names["img_path"], int(image_rows[q]), problem),
        missing_images=missing_images,
        cache_dir=cache_dir,
        progress=progress,
    )
