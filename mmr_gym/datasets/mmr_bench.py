"""Load MMR-Bench outcome CSVs into a :class:`~mmr_gym.table.RoutingTable`.

The layout is the reference code's (``Hunter-Wrynn/MMR-Bench``, ``src/mmrbench/data/mllm_data.py``):
per-dataset files ``<data-root>/<name>.csv`` or the merged ``<data-root>/MMR_Bench.csv``, with columns

- ``question`` (required): the query text;
- ``img_path`` (optional): the image, relative paths resolved against ``<data-root>/<name>/`` when
  that folder exists, else against the data root;
- ``dataset_idx`` (required in the merged file): ids such as ``MathVista_17``; the prefix names the
  dataset and the image ``<folder>/<id>.jpg`` (``SEEDBench2_Plus_0`` -> ``SEEDBenchv2Plus/0.jpg``);
- ``answer`` (optional);
- for every model M the pair ``M_correct`` (in [0, 1]) and ``M_cost`` (finite, >= 0);
- optionally precomputed features ``feature_<channel>_<i>`` (e.g. ``feature_text_0`` ...).

Error messages name the file, the column and the **file line number** of the bad cell, counting the
header as line 1 (``line 7``). A quoted cell may span several lines; a row is then reported by the
line it starts on.
"""

from __future__ import annotations

import csv
import re
import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from mmr_gym.datasets.columns import (
    allow_large_csv_fields,
    fill_outcomes,
    located_error,
    model_columns,
    outcome_values,
)
from mmr_gym.datasets.csv_features import FeatureMode, Features, mmr_bench_features  # noqa: F401
from mmr_gym.datasets.encoded import MissingImages
from mmr_gym.errors import TableError
from mmr_gym.features import CachePath
from mmr_gym.fitted_features import FITTED_FEATURES_KEY
from mmr_gym.table import RoutingTable

MERGED_FILE = "MMR_Bench.csv"

# dataset_idx prefix -> (dataset name, image folder under the data root). Dataset names are the
# paper's Table 2 names; the image folders are the reference code's.
IDX_PREFIXES: dict[str, tuple[str, str]] = {
    "MathVerse": ("MathVerse", "MathVerse"),
    "MathVision": ("MathVision", "MathVision"),
    "MathVista": ("MathVista", "MathVista"),
    "OCRBench": ("OCRBench", "OCRBench"),
    "RealWorldQA": ("RealWorldQA", "RealWorldQA"),
    "MMStar": ("MMStar", "MMStar"),
    "SEEDBench2_Plus": ("SEEDBench2Plus", "SEEDBenchv2Plus"),
}
_IMAGE_EXTENSIONS = (".jpg", ".png", ".jpeg", ".webp")
_COST_SOURCES = ("measured", "estimated", "simulated")
# Separators people export by mistake (spreadsheets in many locales write ';'), by their name.
_OTHER_SEPARATORS = {";": "semicolon", "\t": "tab", "|": "vertical bar"}


def _canon(name: str) -> str:
    """Case- and punctuation-insensitive key, as the reference's ``_canon``."""
    return re.sub(r"[^a-z0-9]+", "", str(name).lower())


_ALIASES: dict[str, str] = {"seedbench": "SEEDBench2Plus"}
for _prefix, (_name, _folder) in IDX_PREFIXES.items():
    for _alias in (_prefix, _name, _folder):
        _ALIASES[_canon(_alias)] = _name


def canonical_dataset_name(name: str) -> str:
    """The MMR-Bench name of ``name`` (``"seedbench2_plus"`` -> ``"SEEDBench2Plus"``), else ``name``."""
    return _ALIASES.get(_canon(name), name)


# ---------------------------------------------------------------------------------------- reading
@dataclass(frozen=True)
class _Part:
    """The rows of one CSV file, with what the loader derived for each row."""

    path: Path
    frame: pd.DataFrame  # every cell as str, columns as in the header
    lines: np.ndarray  # int64, the file line each row starts on (header = line 1)
    query_ids: np.ndarray
    datasets: np.ndarray
    img_paths: np.ndarray
    ids_from_column: bool  # query ids are the file's dataset_idx values

    def take(self, mask: np.ndarray) -> _Part:
        return _Part(
            self.path,
            self.frame[mask].reset_index(drop=True),
            self.lines[mask],
            self.query_ids[mask],
            self.datasets[mask],
            self.img_paths[mask],
            self.ids_from_column,
        )


def _read_csv(path: Path) -> tuple[list[str], pd.DataFrame, np.ndarray]:
    """Header, cells (str) and the start line of each row; blank lines are skipped but counted."""
    source = str(path)
    header: list[str] | None = None
    header_line = 0
    rows: list[list[str]] = []
    lines: list[int] = []
    allow_large_csv_fields()
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            end = 0
            for record in reader:
                start, end = end + 1, reader.line_num
                if not record:
                    continue
                if header is None:
                    header, header_line = [c.strip() for c in record], start
                    _check_separator(source, header, start)
                    continue
                if len(record) != len(header):
                    raise TableError(
                        source,
                        None,
                        None,
                        f"line {start}: {len(record)} fields, but the header has {len(header)}",
                    )
                rows.append(record)
                lines.append(start)
    except UnicodeDecodeError as exc:
        raise TableError(source, None, None, f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except csv.Error as exc:
        raise TableError(source, None, None, f"line {reader.line_num}: malformed CSV ({exc})") from None
    if header is None:
        raise TableError(source, None, None, "empty file: no header and no rows")
    # An unnamed column (a pandas index written to CSV) gets pandas' name, so it is not a duplicate.
    header = [name or f"Unnamed: {i}" for i, name in enumerate(header)]
    first_field: dict[str, int] = {}
    for i, name in enumerate(header):
        if name in first_field:
            what = (
                "model columns must be unique"
                if name.endswith(("_correct", "_cost"))
                else "columns must be unique"
            )
            raise TableError(
                source,
                name,
                None,
                f"line {header_line}: the header names this column twice (fields {first_field[name] + 1} "
                f"and {i + 1}); {what}",
            )
        first_field[name] = i
    if not rows:
        raise TableError(source, None, None, "no rows: the file has a header but no data")
    return header, pd.DataFrame(rows, columns=header, dtype=object), np.asarray(lines, dtype=np.int64)


def _check_separator(source: str, header: list[str], line: int) -> None:
    """A header that names ``question`` only when split on ``;``, tab or ``|``: say so, not "missing column"."""
    if "question" in header:
        return
    text = ",".join(header)
    for separator, name in _OTHER_SEPARATORS.items():
        names = [c.strip().strip('"').strip() for c in text.split(separator)]
        if "question" in names:
            raise TableError(
                source,
                None,
                None,
                f"line {line}: the header is separated by {name}s ({separator!r}), not commas; MMR-Bench "
                f"CSVs are comma-separated: convert the file, e.g. pandas.read_csv(path, sep={separator!r})"
                ".to_csv(path, index=False)",
            )


def _parse_dataset_idx(value: str) -> tuple[str, str, str] | None:
    """``(dataset, image folder, image id)`` of an id like ``SEEDBench2_Plus_0``; None if it has no ``_``.

    The longest known prefix wins; an unknown prefix names both the dataset and the image folder.
    """
    known = [p for p in IDX_PREFIXES if value.startswith(p + "_") and len(value) > len(p) + 1]
    if known:
        prefix = max(known, key=len)
        dataset, folder = IDX_PREFIXES[prefix]
        return dataset, folder, value[len(prefix) + 1 :]
    head, _, tail = value.rpartition("_")
    if not head or not tail:
        return None
    return head, head, tail


def _image_file(root: Path, folder: str, image_id: str) -> str:
    """``<root>/<folder>/<image_id>.<ext>`` for the first extension that exists, else ``.jpg``."""
    base = root / folder
    for ext in _IMAGE_EXTENSIONS:
        candidate = base / f"{image_id}{ext}"
        if candidate.exists():
            return str(candidate)
    return str(base / f"{image_id}.jpg")


def _is_merged(path: Path) -> bool:
    return _canon(path.stem) == _canon(Path(MERGED_FILE).stem)


def _column(frame: pd.DataFrame, name: str) -> np.ndarray | None:
    """Stripped cells of ``name``, or None when the column is absent or every cell is empty."""
    if name not in frame.columns:
        return None
    values = frame[name].astype(str).str.strip().to_numpy(dtype=object)
    return values if (values != "").any() else None


def _parse_file(path: Path) -> _Part:
    source = str(path)
    header, frame, lines = _read_csv(path)
    if "question" not in header:
        similar = [name for name in header if name.strip().lower() == "question"]
        hint = f"; found {similar[0]!r}: column names are case-sensitive" if similar else ""
        raise TableError(source, "question", None, f"missing column (the query text is required){hint}")
    root = path.parent.resolve()
    n = len(frame)
    merged = _is_merged(path)
    idx = _column(frame, "dataset_idx")
    if merged and idx is None:
        raise TableError(
            source,
            "dataset_idx",
            None,
            f"missing column: {MERGED_FILE} names each query's dataset and image by it",
        )
    if idx is not None:
        empty = np.flatnonzero(idx == "")
        if empty.size:
            raise located_error(
                source, "dataset_idx", int(empty[0]), "empty; every row needs an id", lines=lines
            )
    parsed = [_parse_dataset_idx(v) for v in idx] if idx is not None else [None] * n

    if merged:
        for i, p in enumerate(parsed):
            if p is None:
                raise located_error(
                    source,
                    "dataset_idx",
                    i,
                    f"{idx[i]!r} does not name a dataset: expected '<dataset>_<id>' such as 'MathVista_17'",
                    lines=lines,
                )
        datasets = np.asarray([canonical_dataset_name(p[0]) for p in parsed], dtype=object)
        image_base = root
    else:
        datasets = np.full(n, canonical_dataset_name(path.stem), dtype=object)
        image_base = root / path.stem if (root / path.stem).is_dir() else root

    img = _column(frame, "img_path")
    if img is not None:
        img_paths = np.asarray([str(image_base / p) if p else "" for p in img], dtype=object)
    else:
        img_paths = np.asarray([_image_file(root, p[1], p[2]) if p else "" for p in parsed], dtype=object)

    generated = np.asarray([f"{datasets[i]}_{i}" for i in range(n)], dtype=object)
    query_ids = idx if idx is not None else generated
    return _Part(path, frame, lines, query_ids, datasets, img_paths, idx is not None)


def _files_to_read(path: Path, datasets: list[str] | None) -> list[Path]:
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise TableError(str(path), None, None, "file not found")
    csvs = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() == ".csv")
    if not csvs:
        raise TableError(
            str(path),
            None,
            None,
            f"no CSV files: expected {MERGED_FILE} or <dataset>.csv files (or a table saved by "
            "RoutingTable.save, with meta.json)",
        )
    merged = [p for p in csvs if _is_merged(p)]
    per_dataset = [p for p in csvs if not _is_merged(p)]
    if datasets is None:
        return merged or per_dataset
    # As the reference: the merged file serves a selection of MMR-Bench datasets only.
    if merged and all(_canon(d) in _ALIASES for d in datasets):
        return merged
    chosen = []
    for name in datasets:
        key = _canon(canonical_dataset_name(name))
        matches = [p for p in per_dataset if _canon(canonical_dataset_name(p.stem)) == key]
        if not matches:
            raise TableError(
                str(path), None, None, f"no CSV file for dataset {name!r}; found {[p.name for p in csvs]}"
            )
        chosen.extend(m for m in matches if m not in chosen)
    return chosen


def _check_unique_ids(parts: Sequence[_Part]) -> None:
    first: dict[str, tuple[_Part, int]] = {}
    for part in parts:
        for i, qid in enumerate(part.query_ids.tolist()):
            if qid in first:
                other, j = first[qid]
                where = f"line {other.lines[j]}" if other is part else f"{other.path} line {other.lines[j]}"
                column = "dataset_idx" if part.ids_from_column else None
                raise located_error(
                    str(part.path),
                    column,
                    i,
                    f"duplicate query id {qid!r} (first at {where})",
                    lines=part.lines,
                )
            first[qid] = (part, i)


def _read_parts(path: str | Path, datasets: str | Sequence[str] | None) -> list[_Part]:
    """The validated rows of every file ``path`` stands for, filtered to ``datasets``."""
    if datasets is not None and not isinstance(datasets, str | Sequence):
        raise TypeError(f"datasets must be a dataset name or a list of names, got {datasets!r}")
    wanted = [datasets] if isinstance(datasets, str) else (list(datasets) if datasets is not None else None)
    if wanted is not None and not all(isinstance(name, str) for name in wanted):
        raise TypeError(f"datasets must be a dataset name or a list of names, got {datasets!r}")
    if wanted == []:
        raise ValueError("datasets=[] selects nothing; pass None to keep every dataset")
    path = Path(path)
    parts = [_parse_file(f) for f in _files_to_read(path, wanted)]
    _check_unique_ids(parts)
    if wanted is None:
        return parts
    keys = {_canon(canonical_dataset_name(w)): w for w in wanted}
    available = list(dict.fromkeys(d for part in parts for d in part.datasets.tolist()))
    missing = [w for key, w in keys.items() if key not in {_canon(d) for d in available}]
    if missing:
        raise TableError(str(path), None, None, f"no rows of dataset(s) {missing}; the data has {available}")
    parts = [part.take(np.isin([_canon(d) for d in part.datasets], list(keys))) for part in parts]
    return [part for part in parts if len(part.frame)]


def read_mmr_bench_frame(path: str | Path, datasets: str | Sequence[str] | None = None) -> pd.DataFrame:
    """The queries of an MMR-Bench CSV source, row ``i`` being query ``i`` of :func:`load_mmr_bench`.

    For feature encoders that need the texts and images. Columns: ``query_id``, ``dataset``,
    ``question``, ``img_path`` (absolute, ``""`` when none), ``answer`` (``""`` when the file has
    none), ``file`` and ``line`` (where the row starts, header = line 1). The file structure, ids
    and datasets are validated; the outcome columns are validated by :func:`load_mmr_bench`.
    """
    frames = []
    for part in _read_parts(path, datasets):
        answers = part.frame["answer"] if "answer" in part.frame.columns else ""
        frames.append(
            pd.DataFrame(
                {
                    "query_id": part.query_ids,
                    "dataset": part.datasets,
                    "question": part.frame["question"].to_numpy(dtype=object),
                    "img_path": part.img_paths,
                    "answer": answers,
                    "file": str(part.path),
                    "line": part.lines,
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


# ---------------------------------------------------------------------------------------- loading
def _common_models(parts: Sequence[_Part]) -> list[str]:
    """The model names of the first file; every other file must have the same set."""
    names = model_columns(list(parts[0].frame.columns), str(parts[0].path))
    for part in parts[1:]:
        other = model_columns(list(part.frame.columns), str(part.path))
        if set(other) != set(names):
            raise TableError(
                str(part.path),
                None,
                None,
                f"models differ from {parts[0].path}: missing {sorted(set(names) - set(other))}, "
                f"extra {sorted(set(other) - set(names))}; every file needs the same model columns",
            )
    return names


def load_mmr_bench(
    path: str | Path,
    *,
    datasets: str | Sequence[str] | None = None,
    features: Features = "auto",
    cost_unit: str = "unspecified (as in the CSV)",
    cost_source: str = "measured",
    missing_images: MissingImages = "error",
    cache_dir: CachePath = None,
    progress: bool = True,
) -> RoutingTable:
    """Load MMR-Bench outcome CSVs (see the module docstring for the format) as a RoutingTable.

    Args:
        path: a CSV file, or a directory holding ``MMR_Bench.csv`` and/or ``<name>.csv`` files. A
            directory with ``MMR_Bench.csv`` is read from that file alone, unless ``datasets``
            asks for a dataset that is not an MMR-Bench one; otherwise every ``*.csv`` in it (or the
            ones ``datasets`` names) is read, in file-name order.
        datasets: dataset names to keep (a name or a list), matched ignoring case and punctuation:
            per-dataset file names, or the MMR-Bench names for the merged file (``"MathVista"``,
            ``"SEEDBench2Plus"``, ...). A name with no rows is an error. None keeps everything.
        features: a list of encoder names (:mod:`mmr_gym.datasets.encoded`): ``"minilm"``
            (channel ``"text"``), ``"image-stats"`` (``"image"``), ``"clip:<dir>"``
            (``"text_clip"``, ``"image_clip"``), ``"tfidf"`` (``"text_tfidf"``, fitted on the
            training split's questions when an environment builds its split), and ``"csv"`` (the
            CSV's ``feature_<channel>_<i>`` columns); computed features are cached by content.
            Or a mode: ``"auto"``: the CSV's feature columns if it has any, else the TF-IDF
            fallback (as ``["tfidf"]``); ``"csv"``: the CSV's columns, an error if there are
            none; ``"tfidf"``: as ``["tfidf"]``; None: no features.
        cost_unit: the unit of the ``M_cost`` columns, recorded in ``meta["cost_unit"]``.
        cost_source: ``"measured"``, ``"estimated"`` or ``"simulated"``.
        missing_images: when an encoder reads images and a query's image file does not exist:
            ``"error"`` (naming the file, column and line), or ``"zero"``: a zero image row,
            counted in ``meta["missing_images"]`` and warned about.
        cache_dir: the feature cache root (None: :func:`mmr_gym.features.default_cache_dir`).
        progress: show progress bars while encoding.

    Query ids are the ``dataset_idx`` values when the file has them (duplicates are an error),
    else ``<dataset>_<i>`` with ``i`` the 0-based data row of that file. Dataset names are the
    MMR-Bench names (``SEEDBench2Plus``) for known datasets, else the file name (per-dataset files)
    or the ``dataset_idx`` prefix (merged file). Missing numbers are filled with the column mean
    over all loaded rows (as the reference code), counted in ``meta["nan_filled"]`` and warned about.
    The questions are kept as the table's ``texts``; image paths are not stored
    (:func:`read_mmr_bench_frame` gives them). ``meta["features"]`` says how each channel was made
    and ``meta["fitted_features"]`` lists the channels still to fit on a training split.

    Raises:
        TableError: bad input, naming the file, the column and the line (header = line 1).
    """
    if cost_source not in _COST_SOURCES:
        raise ValueError(f"cost_source must be one of {_COST_SOURCES}, got {cost_source!r}")
    if not isinstance(cost_unit, str):
        raise TypeError(f"cost_unit must be a string (the unit of the cost columns), got {cost_unit!r}")
    parts = _read_parts(path, datasets)
    model_names = _common_models(parts)
    values = [outcome_values(part.frame, model_names, str(part.path), lines=part.lines) for part in parts]
    nan_filled: dict[str, int] = {}
    correct, cost = fill_outcomes(
        np.concatenate([v[0] for v in values]),
        np.concatenate([v[1] for v in values]),
        model_names,
        str(path),
        nan_counts=nan_filled,
    )
    if nan_filled:
        warnings.warn(
            f"{path}: filled {sum(nan_filled.values())} missing value(s) with the column mean "
            f"(as MMR-Bench does): {nan_filled}",
            stacklevel=2,
        )
    encoded = mmr_bench_features(
        parts, features, missing_images=missing_images, cache_dir=cache_dir, progress=progress
    )
    if encoded.missing_images:
        warnings.warn(
            f"{path}: {encoded.missing_images} image file(s) are missing; their image features are zeros",
            stacklevel=2,
        )
    query_datasets = np.concatenate([part.datasets for part in parts])
    meta = {
        "source": "MMR-Bench CSV",
        "files": [str(part.path) for part in parts],
        "n_rows": int(correct.shape[0]),
        "datasets": dict(Counter(query_datasets.tolist())),
        "model_names": list(model_names),
        "cost_unit": cost_unit,
        "cost_source": cost_source,
        "nan_filled": nan_filled,
        "features": encoded.notes,
    }
    if encoded.fitted:
        meta[FITTED_FEATURES_KEY] = encoded.fitted
    if encoded.missing_images:
        meta["missing_images"] = encoded.missing_images
    return RoutingTable(
        correct=correct,
        cost=cost,
        query_ids=np.concatenate([part.query_ids for part in parts]),
        datasets=query_datasets,
        model_names=tuple(model_names),
        features=encoded.channels,
        meta=meta,
        source=str(path),
        texts=np.asarray([q for part in parts for q in part.frame["question"].tolist()], dtype=object),
    )
