"""RoutingTable: the one in-memory form of an offline routing outcome table.

For every query and every candidate model the table holds whether the model answered correctly
(``correct``, in [0, 1]) and what the call cost (``cost``, >= 0, one unit stated in ``meta``).
Every loader, the simulator and the environment speak this type.
"""

from __future__ import annotations

import hashlib
import json
import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

import numpy as np
import pandas as pd

from mmr_gym.arrays import read_only_contiguous
from mmr_gym.checks import check_float, check_int
from mmr_gym.errors import TableError
from mmr_gym.table_files import FORMAT_VERSION, load_table_dir, save_table

__all__ = ["FORMAT_VERSION", "TEXT_COLUMN", "RoutingTable"]

TEXT_COLUMN = "question"  # the query texts of a saved table, when it has them, in MMR-Bench's column name

TrainRounding = Literal["sklearn", "round"]


@dataclass(frozen=True, eq=False)
class RoutingTable:
    """An immutable, numpy-backed outcome table of ``n`` queries and ``K`` models.

    Attributes:
        correct: float32 ``[n, K]`` in [0, 1]: 0/1 for exact-match benchmarks, graded scores allowed.
        cost: float32 ``[n, K]`` >= 0, in the unit ``meta["cost_unit"]``.
        query_ids: ``[n]`` unique query identifiers (str).
        datasets: ``[n]`` the dataset each query comes from (str).
        model_names: the ``K`` unique model names, in column order.
        features: channel name (e.g. ``"text"``, ``"image"``) -> float32 ``[n, d]``; may be empty.
        meta: provenance, ``cost_unit``, ``cost_source`` ("measured" | "estimated" | "simulated"),
            prices, and anything a loader wants to record (JSON-serialisable).
        source: a name for error messages (the file or generator the table came from).
        texts: ``[n]`` the query texts (str), or None. Kept for encoders that are fitted on a
            training split (TF-IDF: :func:`mmr_gym.fitted_features.fit_query_features`), which a
            loader cannot run because it does not know the split.
    """

    correct: np.ndarray
    cost: np.ndarray
    query_ids: np.ndarray
    datasets: np.ndarray
    model_names: tuple[str, ...]
    features: Mapping[str, np.ndarray] = field(default_factory=dict)
    meta: Mapping[str, Any] = field(default_factory=dict)
    source: str = "<memory>"
    texts: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.source is None:  # no name given: messages say where the table lives
            object.__setattr__(self, "source", "<memory>")
        elif not isinstance(self.source, str):
            raise TypeError(f"source must be a str (a name for messages), got {type(self.source).__name__}")
        src = self.source
        for name in ("query_ids", "datasets", "model_names"):
            if isinstance(getattr(self, name), str | bytes):
                raise TableError(src, name, None, "expected one name per entry, got a single string")
        for name in ("features", "meta"):
            if not isinstance(getattr(self, name), Mapping):
                raise TableError(
                    src, name, None, f"expected a mapping, got {type(getattr(self, name)).__name__}"
                )
        for name in ("query_ids", "datasets"):
            missing = [
                i
                for i, v in enumerate(np.asarray(getattr(self, name), dtype=object).tolist())
                if _is_missing(v)
            ]
            if missing:
                raise TableError(
                    src, name, missing[0], f"missing value (None, NaN or empty); {len(missing)} such row(s)"
                )
        correct = _numbers(src, "correct", self.correct)
        cost = _numbers(src, "cost", self.cost)
        query_ids = np.asarray([str(q) for q in np.asarray(self.query_ids).tolist()], dtype=object)
        datasets = np.asarray([str(d) for d in np.asarray(self.datasets).tolist()], dtype=object)
        model_names = tuple(str(m) for m in self.model_names)

        if correct.ndim != 2:
            raise TableError(
                src, "correct", None, f"expected a 2-D [queries, models] array, got shape {correct.shape}"
            )
        n, k = correct.shape
        if n == 0:
            raise TableError(src, None, None, "the table has no queries")
        if k == 0:
            raise TableError(src, None, None, "the table has no models")
        if cost.shape != (n, k):
            raise TableError(src, "cost", None, f"expected shape {(n, k)} like `correct`, got {cost.shape}")
        if len(model_names) != k:
            raise TableError(src, "model_names", None, f"expected {k} names, got {len(model_names)}")
        _check_unique(src, "model_names", model_names)
        for name, values in (("query_ids", query_ids), ("datasets", datasets)):
            if values.shape != (n,):
                raise TableError(src, name, None, f"expected {n} entries, got {values.shape[0]}")
        _check_unique(src, "query_ids", query_ids.tolist())
        for j, model in enumerate(model_names):
            _check_range(src, f"{model}_correct", correct[:, j], query_ids, low=0.0, high=1.0)
            _check_range(src, f"{model}_cost", cost[:, j], query_ids, low=0.0, high=np.inf)

        features = {}
        for channel, values in dict(self.features).items():
            if not isinstance(channel, str) or not channel.strip():
                raise TableError(
                    src, "features", None, f"a channel name must be a non-empty string, got {channel!r}"
                )
            values = _numbers(src, f"features[{channel!r}]", values)
            if values.ndim != 2 or values.shape[0] != n:
                raise TableError(
                    src,
                    f"features[{channel!r}]",
                    None,
                    f"expected {n} rows (one per query) of a 2-D array, got shape {values.shape}",
                )
            bad = np.flatnonzero(~np.isfinite(values).all(axis=1))
            if bad.size:
                raise TableError(src, f"features[{channel!r}]", int(bad[0]), "non-finite feature value")
            features[str(channel)] = read_only_contiguous(values)

        texts = None
        if self.texts is not None:
            texts = np.asarray(
                ["" if _is_missing(t) else str(t) for t in np.asarray(self.texts, dtype=object).tolist()],
                dtype=object,
            )
            if texts.shape != (n,):
                raise TableError(
                    src, "texts", None, f"expected {n} entries (one per query), got {texts.shape}"
                )

        object.__setattr__(self, "correct", read_only_contiguous(correct))
        object.__setattr__(self, "cost", read_only_contiguous(cost))
        object.__setattr__(self, "query_ids", read_only_contiguous(query_ids))
        object.__setattr__(self, "datasets", read_only_contiguous(datasets))
        object.__setattr__(self, "model_names", model_names)
        object.__setattr__(self, "features", MappingProxyType(features))
        object.__setattr__(self, "meta", MappingProxyType(dict(self.meta)))
        object.__setattr__(self, "texts", None if texts is None else read_only_contiguous(texts))

    def __reduce__(self):
        # The mapping proxies that keep features/meta read-only do not pickle; rebuild from plain dicts.
        fields = (
            self.correct,
            self.cost,
            self.query_ids,
            self.datasets,
            self.model_names,
            dict(self.features),
            dict(self.meta),
            self.source,
            self.texts,
        )
        return (type(self), fields)

    # ------------------------------------------------------------------ shape and summaries
    @property
    def n_queries(self) -> int:
        return int(self.correct.shape[0])

    @property
    def n_models(self) -> int:
        return int(self.correct.shape[1])

    def __len__(self) -> int:
        return self.n_queries

    @property
    def dataset_names(self) -> tuple[str, ...]:
        """The distinct dataset names, in order of first appearance."""
        return tuple(dict.fromkeys(self.datasets.tolist()))

    @property
    def cost_unit(self) -> str:
        return str(self.meta.get("cost_unit", "unspecified"))

    def model_accuracy(self) -> np.ndarray:
        """Mean correctness per model, float64 ``[K]``."""
        return self.correct.mean(axis=0, dtype=np.float64)

    def model_mean_cost(self) -> np.ndarray:
        """Mean cost per query per model, float64 ``[K]``, in ``cost_unit``."""
        return self.cost.mean(axis=0, dtype=np.float64)

    def best_single_model(self) -> int:
        """Index of the most accurate model; ties go to the cheaper one (as QNC's reference)."""
        acc = self.model_accuracy()
        mean_cost = self.model_mean_cost()
        return int(np.lexsort((mean_cost, -acc))[0])

    def __repr__(self) -> str:
        channels = ", ".join(f"{c}:{v.shape[1]}" for c, v in self.features.items()) or "none"
        return (
            f"RoutingTable(source={self.source!r}, queries={self.n_queries}, models={self.n_models}, "
            f"datasets={len(self.dataset_names)}, features={{{channels}}}, cost_unit={self.cost_unit!r})"
        )

    # ------------------------------------------------------------------ selection
    def subset(self, idx: Sequence[int] | np.ndarray) -> RoutingTable:
        """A new table with the queries at ``idx`` (integer positions or a boolean mask), in that order."""
        idx = np.asarray(idx)
        if idx.dtype == bool:
            if idx.shape != (self.n_queries,):
                raise ValueError(f"subset: a boolean mask needs shape ({self.n_queries},), got {idx.shape}")
            idx = np.flatnonzero(idx)
        if idx.size == 0:
            raise TableError(self.source, None, None, "subset selects no queries")
        # Positions only: a float would be truncated, a negative one counted from the end.
        if idx.ndim != 1 or idx.dtype.kind not in "iu":
            raise TypeError(
                f"subset: idx must be integer positions or a boolean mask, got {idx.dtype} {idx.shape}"
            )
        if idx.min() < 0 or idx.max() >= self.n_queries:
            raise IndexError(
                f"subset: positions must be in [0, {self.n_queries}), got {idx.min()}..{idx.max()}"
            )
        idx = idx.astype(np.int64)
        return RoutingTable(
            correct=self.correct[idx],
            cost=self.cost[idx],
            query_ids=self.query_ids[idx],
            datasets=self.datasets[idx],
            model_names=self.model_names,
            features={c: v[idx] for c, v in self.features.items()},
            meta=self.meta,
            source=self.source,
            texts=None if self.texts is None else self.texts[idx],
        )

    def select_models(self, names: Sequence[str]) -> RoutingTable:
        """A new table restricted to the models ``names`` (in that order)."""
        if isinstance(names, str):
            raise TypeError(f"select_models: names must be a list of model names, got the string {names!r}")
        unknown = [m for m in names if m not in self.model_names]
        if unknown:
            raise ValueError(f"unknown model(s) {unknown}; the table has {list(self.model_names)}")
        cols = [self.model_names.index(m) for m in names]
        return RoutingTable(
            correct=self.correct[:, cols],
            cost=self.cost[:, cols],
            query_ids=self.query_ids,
            datasets=self.datasets,
            model_names=tuple(names),
            features=dict(self.features),
            meta=self.meta,
            source=self.source,
            texts=self.texts,
        )

    def with_features(self, channels: Mapping[str, np.ndarray]) -> RoutingTable:
        """A new table with the feature ``channels`` added (channel -> float32 ``[n, d]``).

        A channel the table already has is an error: a fitted channel never silently replaces one.
        """
        clash = sorted(set(channels) & set(self.features))
        if clash:
            raise ValueError(f"{self.source}: the table already has feature channel(s) {clash}")
        return RoutingTable(
            correct=self.correct,
            cost=self.cost,
            query_ids=self.query_ids,
            datasets=self.datasets,
            model_names=self.model_names,
            features={**dict(self.features), **dict(channels)},
            meta=self.meta,
            source=self.source,
            texts=self.texts,
        )

    def without_features(self, channels: Sequence[str]) -> RoutingTable:
        """A new table without the feature ``channels`` (those it does not have are ignored)."""
        if isinstance(channels, str):
            raise TypeError(
                f"without_features: channels must be a list of names, got the string {channels!r}"
            )
        keep = {name: values for name, values in self.features.items() if name not in set(channels)}
        return RoutingTable(
            correct=self.correct,
            cost=self.cost,
            query_ids=self.query_ids,
            datasets=self.datasets,
            model_names=self.model_names,
            features=keep,
            meta=self.meta,
            source=self.source,
            texts=self.texts,
        )

    def split_indices(
        self,
        mode: str | None = None,
        *,
        train_fraction: float = 0.2,
        seed: int = 0,
        test_datasets: Sequence[str] | None = None,
        train_ids: Sequence[str] | None = None,
        test_ids: Sequence[str] | None = None,
        train_rounding: TrainRounding = "round",
    ) -> tuple[np.ndarray, np.ndarray]:
        """Row positions (sorted int64) of the train and test parts; see :meth:`split`."""
        if mode is None:
            mode = "ids" if train_ids is not None or test_ids is not None else "in"
        if mode != "ids" and (train_ids is not None or test_ids is not None):
            raise ValueError(
                f"split mode {mode!r} draws its own parts; explicit train_ids/test_ids need mode 'ids' "
                "(or leave mode unset)"
            )
        if mode != "in" and train_rounding != "round":
            raise ValueError(
                f"train_rounding is for split mode 'in' only; split mode {mode!r} would ignore it"
            )
        if mode != "out" and test_datasets is not None:
            raise ValueError(
                f"test_datasets is for split mode 'out' only; split mode {mode!r} would ignore it"
            )
        if mode == "in":
            train_fraction = check_float(
                "train_fraction", train_fraction, low=0.0, high=1.0, low_open=True, high_open=True
            )
            seed = check_int("seed", seed, low=0)
            n_train = in_split_train_size(self.n_queries, train_fraction, train_rounding)
            order = np.random.default_rng(seed).permutation(self.n_queries)
            return np.sort(order[:n_train]), np.sort(order[n_train:])
        if mode == "out":
            names = self.dataset_names
            if isinstance(test_datasets, str):
                raise TypeError(
                    f"test_datasets must be a list of dataset names, got the string {test_datasets!r}"
                )
            if not test_datasets:
                raise ValueError(f"split mode 'out' needs test_datasets, a subset of {list(names)}")
            unknown = sorted(set(test_datasets) - set(names))
            if unknown:
                raise ValueError(f"unknown test dataset(s) {unknown}; the table has {list(names)}")
            is_test = np.isin(self.datasets, list(test_datasets))
            if is_test.all():
                raise ValueError("split mode 'out': every dataset is a test dataset; nothing to train on")
            return np.flatnonzero(~is_test), np.flatnonzero(is_test)
        if mode == "ids":
            return self._explicit_split(train_ids, test_ids)
        raise ValueError(
            f"unknown split mode {mode!r}; expected 'in' or 'out' (or 'ids' with train_ids/test_ids)"
        )

    def _explicit_split(
        self, train_ids: Sequence[str] | None, test_ids: Sequence[str] | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Rows of the given query ids; a part not given is every other query."""
        if train_ids is None and test_ids is None:
            raise ValueError("split mode 'ids' needs train_ids, test_ids or both (query ids of the table)")
        position = {qid: row for row, qid in enumerate(self.query_ids.tolist())}
        parts = {}
        for name, ids in (("train_ids", train_ids), ("test_ids", test_ids)):
            if ids is not None:
                parts[name] = _rows_of_ids(self.source, name, ids, position)
        if "train_ids" in parts and "test_ids" in parts:
            overlap = np.intersect1d(parts["train_ids"], parts["test_ids"])
            if overlap.size:
                shown = [str(q) for q in self.query_ids[overlap[:5]]]
                raise ValueError(
                    f"{self.source}: {overlap.size} query id(s) are in both train_ids and test_ids, "
                    f"e.g. {shown}; the parts must not overlap"
                )
        everything = np.arange(self.n_queries)
        train = parts.get("train_ids", np.setdiff1d(everything, parts.get("test_ids", everything)))
        test = parts.get("test_ids", np.setdiff1d(everything, train))
        for name, rows in (("train", train), ("test", test)):
            if rows.size == 0:
                raise ValueError(f"{self.source}: train_ids/test_ids leave the {name} part empty")
        return np.sort(train).astype(np.int64), np.sort(test).astype(np.int64)

    def split(
        self,
        mode: str | None = None,
        *,
        train_fraction: float = 0.2,
        seed: int = 0,
        test_datasets: Sequence[str] | None = None,
        train_ids: Sequence[str] | None = None,
        test_ids: Sequence[str] | None = None,
        train_rounding: TrainRounding = "round",
    ) -> tuple[RoutingTable, RoutingTable]:
        """Split into ``(train, test)`` as MMR-Bench does, or by explicit query ids.

        Args:
            mode: ``"in"`` (the default without ids): a seeded random split of queries,
                ``train_fraction`` of them for training (the paper uses 0.2). ``"out"``: by
                dataset, ``test_datasets`` for testing and every other dataset for training.
                ``"ids"`` (the default when ids are given): the queries of ``train_ids`` and
                ``test_ids``, e.g. to reproduce another tool's split.
            train_fraction: the training share for ``"in"``.
            seed: seed of the ``"in"`` permutation (numpy's ``default_rng(seed).permutation``).
            test_datasets: dataset names held out for ``"out"``.
            train_ids: query ids of the training part (``"ids"``); None: every query not in
                ``test_ids``.
            test_ids: query ids of the test part (``"ids"``); None: every query not in
                ``train_ids``. When both are given, queries in neither are left out.
            train_rounding: how ``"in"`` turns ``train_fraction * n`` into a count (see
                :func:`in_split_train_size`): ``"round"`` (default) rounds to the nearest integer;
                ``"sklearn"`` rounds down, as scikit-learn's ``train_test_split(train_size=...)``.
                They differ only when ``train_fraction * n`` has a fractional part of at least
                0.5; for the bundled table (10,370 queries: 2,074) and MATH-V (3,040: 608) at 0.2
                both give the same split. The permutation is numpy's, not scikit-learn's: to
                reproduce another tool's split exactly, pass its ids (``train_ids``/``test_ids``).

        Raises:
            ValueError: an empty part; unknown, repeated or overlapping ids (the message names them).
        """
        train_idx, test_idx = self.split_indices(
            mode,
            train_fraction=train_fraction,
            seed=seed,
            test_datasets=test_datasets,
            train_ids=train_ids,
            test_ids=test_ids,
            train_rounding=train_rounding,
        )
        return self.subset(train_idx), self.subset(test_idx)

    def fingerprint(self) -> str:
        """SHA-256 of the table's content (outcomes, ids, names, features, texts), independent of file format.

        A table without texts hashes as before texts existed, so older fingerprints stay valid.
        """
        digest = hashlib.sha256()
        for array in (self.correct, self.cost):
            digest.update(np.ascontiguousarray(array, dtype="<f4").tobytes())
        for strings in (self.query_ids.tolist(), self.datasets.tolist(), list(self.model_names)):
            digest.update(json.dumps(strings).encode("utf-8"))
        for channel in sorted(self.features):
            digest.update(channel.encode("utf-8"))
            digest.update(np.ascontiguousarray(self.features[channel], dtype="<f4").tobytes())
        if self.texts is not None:
            digest.update(b"texts")
            digest.update(json.dumps(self.texts.tolist()).encode("utf-8"))
        return digest.hexdigest()

    # ------------------------------------------------------------------ persistence
    def to_frame(self) -> pd.DataFrame:
        """Outcomes in the MMR-Bench column layout: ``query_id, dataset, [question,] <M>_correct, <M>_cost``.

        ``question`` (the query texts) only when the table has texts.
        """
        columns: dict[str, Any] = {
            "query_id": self.query_ids.astype(str),
            "dataset": self.datasets.astype(str),
        }
        if self.texts is not None:
            columns[TEXT_COLUMN] = self.texts.astype(str)
        for j, model in enumerate(self.model_names):
            columns[f"{model}_correct"] = self.correct[:, j]
            columns[f"{model}_cost"] = self.cost[:, j]
        return pd.DataFrame(columns)

    def save(self, directory: str | Path) -> Path:
        """Write the table to ``directory`` (parquet + npz + json, and a SHA-256 per file; no pickle).

        See :mod:`mmr_gym.table_files` for the layout. Returns the directory.
        """
        return save_table(self, directory)

    @classmethod
    def load(cls, directory: str | Path) -> RoutingTable:
        """Read a table written by :meth:`save`, every file checked against its SHA-256 first.

        Raises:
            TableError: a missing, damaged or malformed file; the message names the file (and the
                column and row) and what to do.
        """
        return load_table_dir(cls, directory)


def _is_missing(value: Any) -> bool:
    return (
        value is None
        or (isinstance(value, float) and value != value)
        or (isinstance(value, str) and not value.strip())
    )


def _numbers(source: str, column: str, values: Any) -> np.ndarray:
    """``values`` as float32; strings, complex numbers and other objects are errors naming the column
    (numpy would parse ``"1"`` and drop an imaginary part without a word)."""
    array = np.asarray(values)
    if array.dtype.kind not in "biuf":
        flat = array.reshape(-1).tolist() if array.dtype.kind == "O" else None
        bad = (
            next(
                (i for i, v in enumerate(flat) if isinstance(v, bool) or not isinstance(v, numbers.Real)),
                None,
            )
            if flat is not None
            else 0
        )
        if bad is not None:
            row = bad // array.shape[1] if array.ndim == 2 and array.shape[1] else bad
            example = flat[bad] if flat is not None else array.reshape(-1)[0].item()
            raise TableError(source, column, row, f"not a real number: {example!r} (dtype {array.dtype})")
    with np.errstate(over="ignore"):  # an overflow becomes inf, which the range checks report
        return np.asarray(array, dtype=np.float32)


def _check_unique(source: str, column: str, values: Sequence[str]) -> None:
    seen: dict[str, int] = {}
    for row, value in enumerate(values):
        if value in seen:
            raise TableError(source, column, row, f"duplicate value {value!r} (first at row {seen[value]})")
        seen[value] = row


def _check_range(
    source: str, column: str, values: np.ndarray, query_ids: np.ndarray, *, low: float, high: float
) -> None:
    bad = np.flatnonzero(~np.isfinite(values) | (values < low) | (values > high))
    if bad.size:
        row = int(bad[0])
        bound = f"[{low:g}, {high:g}]" if np.isfinite(high) else f">= {low:g}"
        raise TableError(
            source,
            column,
            row,
            f"value {float(values[row])!r} (query {query_ids[row]!r}) is not a finite number {bound}; "
            f"{bad.size} bad row(s) in this column",
        )


def in_split_train_size(n_queries: int, train_fraction: float, rounding: TrainRounding = "round") -> int:
    """The number of training queries of an ``"in"`` split of ``n_queries``.

    ``"round"`` (the default, mmr-gym's rule since its first release): Python's ``round`` (to the
    nearest integer, ties to even). ``"sklearn"``: ``floor(train_fraction * n)``, what
    scikit-learn's ``train_test_split`` gives for ``train_size=train_fraction`` (its
    ``_validate_shuffle_split`` rounds the train size down and leaves the rest to the test part;
    given ``test_size`` instead it rounds the test size up). Either way both parts must be non-empty,
    so a 4-query table at 0.2 splits 1/3 with ``"round"`` and is an error with ``"sklearn"``, as in
    scikit-learn.
    """
    if not 0.0 < train_fraction < 1.0:
        raise ValueError(f"train_fraction must be in (0, 1), got {train_fraction}")
    if rounding == "sklearn":
        n_train = math.floor(train_fraction * n_queries)
    elif rounding == "round":
        n_train = int(round(train_fraction * n_queries))
    else:
        raise ValueError(f"train_rounding must be 'sklearn' or 'round', got {rounding!r}")
    if not 0 < n_train < n_queries:
        raise ValueError(f"train_fraction={train_fraction} of {n_queries} queries leaves an empty part")
    return n_train


def _rows_of_ids(source: str, name: str, ids: Sequence[str], position: Mapping[str, int]) -> np.ndarray:
    """Table rows of ``ids``; unknown or repeated ids are errors naming the argument."""
    if isinstance(ids, str):
        raise TypeError(f"{name} must be a sequence of query ids, got the single string {ids!r}")
    ids = [str(q) for q in np.asarray(ids, dtype=object).tolist()]
    unknown = [q for q in ids if q not in position]
    if unknown:
        raise ValueError(
            f"{source}: {name} has {len(unknown)} id(s) that are not query ids of the table, e.g. "
            f"{unknown[:5]}"
        )
    seen: dict[str, int] = {}
    for i, qid in enumerate(ids):
        if qid in seen:
            raise ValueError(f"{source}: {name} repeats query id {qid!r} (positions {seen[qid]} and {i})")
        seen[qid] = i
    return np.asarray([position[q] for q in ids], dtype=np.int64)
