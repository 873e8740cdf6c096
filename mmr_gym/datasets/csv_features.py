"""The feature channels of MMR-Bench CSV rows: the files' own ``feature_*`` columns, or encoders.

``feature_<channel>_<i>`` columns (every file the same layout) become channel ``<channel>``; the
query encoders of :mod:`mmr_gym.datasets.encoded` run on the ``question`` and image of each row.
Errors name the file, the column and the line.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

import numpy as np

from mmr_gym.datasets.columns import located_error, numeric_column
from mmr_gym.datasets.encoded import EncodedQueries, MissingImages, encode_table_queries, encoder_names
from mmr_gym.errors import TableError
from mmr_gym.features import CachePath

if TYPE_CHECKING:
    from mmr_gym.datasets.mmr_bench import _Part

__all__ = ["FeatureMode", "Features", "mmr_bench_features"]

FeatureMode = Literal["auto", "csv", "tfidf"]
#: ``features=`` of the CSV loaders: a mode, a list of encoder names (and ``"csv"``), or None.
Features = FeatureMode | Sequence[str] | None
_FEATURE_COLUMN = re.compile(r"^feature_(?P<channel>.+)_(?P<index>\d+)$")


def _feature_layout(columns: Sequence[str], source: str) -> dict[str, list[str]]:
    """Channel -> its ``feature_<channel>_<i>`` columns in index order; gaps and repeats are errors."""
    indexed: dict[str, dict[int, str]] = {}
    for column in columns:
        if not column.startswith("feature_"):
            continue
        match = _FEATURE_COLUMN.match(column)
        if match is None:
            raise TableError(
                source, column, None, "a feature column must be named 'feature_<channel>_<index>'"
            )
        channel, index = match["channel"], int(match["index"])
        by_index = indexed.setdefault(channel, {})
        if index in by_index:
            raise TableError(
                source, column, None, f"feature index {index} of channel {channel!r} appears twice"
            )
        by_index[index] = column
    layout = {}
    for channel, by_index in indexed.items():
        gaps = sorted(set(range(max(by_index) + 1)) - set(by_index))
        if gaps:
            raise TableError(
                source,
                f"feature_{channel}_{gaps[0]}",
                None,
                f"missing: channel {channel!r} has columns up to index {max(by_index)} but not index "
                f"{gaps[0]} ({len(gaps)} index(es) missing)",
            )
        layout[channel] = [by_index[i] for i in range(len(by_index))]
    return layout


def _feature_block(part: _Part, columns: list[str]) -> np.ndarray:
    source = str(part.path)
    try:
        values = part.frame[columns].to_numpy(dtype=np.float64)
    except ValueError:  # some cell is not a plain number: find it column by column
        values = np.column_stack([numeric_column(part.frame, c, source, lines=part.lines) for c in columns])
    finite = np.isfinite(values)
    if not finite.all():
        row, col = (int(v[0]) for v in np.nonzero(~finite))
        cell = part.frame[columns[col]].iloc[row]
        raise located_error(
            source, columns[col], row, f"feature value {cell!r} is missing or not finite", lines=part.lines
        )
    return values


def _csv_features(parts: Sequence[_Part]) -> tuple[dict[str, np.ndarray], dict[str, str]] | None:
    """Features from ``feature_*`` columns (every file must have the same layout), or None if none."""
    layouts = [_feature_layout(list(part.frame.columns), str(part.path)) for part in parts]
    if not layouts[0]:
        if any(layouts):
            other = next(part for part, layout in zip(parts, layouts, strict=True) if layout)
            raise TableError(str(parts[0].path), None, None, f"no feature columns, but {other.path} has some")
        return None
    shape = {c: len(cols) for c, cols in layouts[0].items()}
    for part, layout in zip(parts[1:], layouts[1:], strict=True):
        if {c: len(cols) for c, cols in layout.items()} != shape:
            raise TableError(
                str(part.path),
                None,
                None,
                f"feature channels { ({c: len(v) for c, v in layout.items()}) } differ from {parts[0].path}'s {shape}",
            )
    features = {
        channel: np.concatenate(
            [_feature_block(part, layout[channel]) for part, layout in zip(parts, layouts, strict=True)]
        )
        for channel in shape
    }
    notes = {c: f"CSV columns feature_{c}_0..feature_{c}_{d - 1} ({d} dims)" for c, d in shape.items()}
    return features, notes


def mmr_bench_features(
    parts: Sequence[_Part],
    features: Features,
    *,
    missing_images: MissingImages,
    cache_dir: CachePath,
    progress: bool,
) -> EncodedQueries:
    """The channels ``features`` asks for (see :func:`load_mmr_bench`), with their notes and fitted specs."""
    if features is None:
        return EncodedQueries()
    if isinstance(features, str) and features in ("auto", "csv"):
        from_csv = _csv_features(parts)
        if from_csv is not None:
            return EncodedQueries(channels=from_csv[0], notes=from_csv[1])
        if features == "csv":
            raise TableError(
                str(parts[0].path),
                None,
                None,
                "no feature columns: expected 'feature_<channel>_<index>' columns",
            )
        names = ["tfidf"]  # the text-only fallback, fitted on the training split's questions
    else:
        requested = [features] if isinstance(features, str) else [str(f) for f in features]
        names = encoder_names([f for f in requested if f != "csv"])
        if "csv" in requested:
            from_csv = _csv_features(parts)
            if from_csv is None:
                raise TableError(
                    str(parts[0].path),
                    None,
                    None,
                    "features asks for 'csv' but there are no 'feature_<channel>_<index>' columns",
                )
    if "tfidf" in names:
        for part in parts:
            if not part.frame["question"].astype(str).str.strip().astype(bool).any():
                warnings.warn(
                    f"{part.path}: column 'question' is empty in every row, so the TF-IDF text features of its "
                    f"{len(part.frame)} queries are all zeros (the router sees no query text); fill the column, "
                    "give feature_<channel>_<i> columns, or pass features=None",
                    stacklevel=4,
                )
    offsets = np.cumsum([0] + [len(part.frame) for part in parts])

    def image_error(row: int, problem: str) -> TableError:
        k = int(np.searchsorted(offsets, row, side="right") - 1)
        part = parts[k]
        column = "img_path" if "img_path" in part.frame.columns else "dataset_idx"
        return located_error(str(part.path), column, row - int(offsets[k]), problem, lines=part.lines)

    encoded = encode_table_queries(
        [q for part in parts for q in part.frame["question"].tolist()],
        [p for part in parts for p in part.img_paths.tolist()],
        names,
        image_error=image_error,
        missing_images=missing_images,
        cache_dir=cache_dir,
        progress=progress,
    )
    if not isinstance(features, str) and "csv" in features:
        clash = sorted(set(from_csv[0]) & (set(encoded.channels) | set(encoded.fitted)))
        if clash:
            raise TableError(
                str(parts[0].path), None, None, f"CSV feature channel(s) {clash} clash with encoder channels"
            )
        encoded.channels = {**from_csv[0], **encoded.channels}
        encoded.notes = {**from_csv[1], **encoded.notes}
    return encoded
