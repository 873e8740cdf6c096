"""Loaders and converters that turn outcome tables into :class:`~mmr_gym.table.RoutingTable`.

:func:`load_table` is the one entry point: the bundled default, a bundled table by name, a saved
table directory, MMR-Bench CSVs, or a named loader from :data:`DATASET_LOADERS`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from importlib.resources import as_file, files
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmr_gym.datasets.digest import source_digest
from mmr_gym.datasets.hub import load_mmr_bench_hub
from mmr_gym.datasets.logs import is_call_log, load_call_log
from mmr_gym.datasets.math_v import load_math_v
from mmr_gym.datasets.mmr_bench import load_mmr_bench, read_mmr_bench_frame
from mmr_gym.errors import TableError
from mmr_gym.files import CHECKSUM_FILE
from mmr_gym.table import RoutingTable
from mmr_gym.table_files import TABLE_FILES

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

__all__ = [
    "BUNDLED_DEFAULT",
    "DATASET_LOADERS",
    "bundled_table_names",
    "load_call_log",
    "load_math_v",
    "load_mmr_bench",
    "load_mmr_bench_hub",
    "load_table",
    "read_mmr_bench_frame",
    "source_digest",
]

BUNDLED_DEFAULT = "mmr-sim-default"
_META_FILE = "meta.json"  # the marker of a directory written by RoutingTable.save
_SAVED_TABLE_FILES = (*TABLE_FILES, CHECKSUM_FILE)

# Named loaders: ``load_table(name, **kwargs)`` calls ``DATASET_LOADERS[name](**kwargs)``.
# "math-v": MATH-V with estimated costs (data found as load_math_v documents, table cached);
# "mmr-bench-hub": the Hub's MMR-Bench once `mmr-gym prepare mmr-bench` has saved it.
DATASET_LOADERS: dict[str, Callable[..., RoutingTable]] = {
    "mmr-bench": load_mmr_bench,
    "math-v": load_math_v,
    "mmr-bench-hub": load_mmr_bench_hub,
    "call-log": load_call_log,
}


def _bundled_root() -> Traversable:
    """Where the bundled tables are: ``envs_data/`` of the source checkout this package sits in (run
    from it or installed editable), else ``mmr_gym/envs_data`` of the installed package (pyproject's
    ``package-dir`` puts the checkout's ``envs_data/`` there in a wheel)."""
    checkout = Path(__file__).resolve().parents[2]
    if (checkout / "pyproject.toml").is_file() and (checkout / "mmr_gym").is_dir():
        return checkout / "envs_data"
    return files("mmr_gym") / "envs_data"


def bundled_table_names() -> list[str]:
    """The names of the tables shipped in ``envs_data/`` (saved RoutingTable directories)."""
    root = _bundled_root()
    if not root.is_dir():
        return []
    return sorted(entry.name for entry in root.iterdir() if entry.is_dir() and (entry / _META_FILE).is_file())


def _load_bundled(name: str) -> RoutingTable:
    entry = _bundled_root() / name
    if not (entry / _META_FILE).is_file():
        raise FileNotFoundError(
            f"the bundled table {name!r} is missing from this installation ({entry}); "
            f"the bundled tables found are {bundled_table_names()} (see envs_data/README.md)"
        )
    with as_file(entry) as directory:
        try:
            return RoutingTable.load(directory)
        except TableError as exc:
            raise exc.advised(
                f"This is the bundled table {name!r}: reinstall mmr-gym, or regenerate it with the "
                "command in envs_data/README.md"
            ) from exc


def load_table(source: RoutingTable | str | os.PathLike[str] | None = None, **kwargs: Any) -> RoutingTable:
    """A RoutingTable from whatever names one.

    Args:
        source: None: the bundled default table (:data:`BUNDLED_DEFAULT`). A RoutingTable: returned
            as is. A bundled table name (:func:`bundled_table_names`). A directory with
            ``meta.json`` (or another file of a saved table): :meth:`RoutingTable.load`. A call log, one row per (query, model) call
            (a ``.parquet``/``.jsonl`` file, or a ``.csv`` with ``model``, ``correct`` and ``cost``
            columns): :func:`load_call_log`. Any other ``.csv`` file or a directory of CSVs
            (the MMR-Bench layout, one row per query): :func:`load_mmr_bench`. A key of
            :data:`DATASET_LOADERS`: that loader. Names win over paths: pass a ``Path`` to read a
            local directory that has a bundled name.
        **kwargs: passed to the file or named loader, e.g. ``features=["minilm", "image-stats"]``
            (query encoders, see :mod:`mmr_gym.datasets.encoded`), ``datasets=``, ``cost_unit=``,
            ``incomplete="drop"`` (call logs); ``layout="long"`` or ``"wide"`` overrides the
            detection of a CSV's layout. None are accepted for the other sources.

    Raises:
        ValueError: an unknown name (the message lists the known ones).
        TableError: a path that does not exist or holds bad data.
    """
    if source is None or isinstance(source, RoutingTable) or _is_bundled_name(source):
        if kwargs:
            raise TypeError(f"load_table got options {sorted(kwargs)} that a ready table cannot take")
        if isinstance(source, RoutingTable):
            return source
        return _load_bundled(BUNDLED_DEFAULT if source is None else str(source))
    if isinstance(source, str) and source in DATASET_LOADERS:
        return DATASET_LOADERS[source](**kwargs)
    if not isinstance(source, str | os.PathLike):
        raise TypeError(
            f"load_table: source must be None, a RoutingTable, a name or a path, got {type(source).__name__}"
        )
    path = Path(source)
    if path.is_file() and path.name in _SAVED_TABLE_FILES:
        raise TableError(
            str(path), None, None, f"one file of a saved table: pass its directory ({path.parent}) instead"
        )
    if path.is_dir() and any((path / name).is_file() for name in _SAVED_TABLE_FILES):
        # A saved table (RoutingTable.load names a missing meta.json), not a directory of CSVs.
        if kwargs:
            raise TypeError(f"load_table got options {sorted(kwargs)} that a saved table cannot take")
        return RoutingTable.load(path)
    if path.exists():
        layout = kwargs.pop("layout", "auto")
        if layout not in ("auto", "long", "wide"):
            raise ValueError(f"layout must be 'auto', 'long' or 'wide', got {layout!r}")
        if layout == "long" or (layout == "auto" and is_call_log(path, kwargs.get("columns"))):
            return load_call_log(path, **kwargs)
        return load_mmr_bench(path, **kwargs)
    if isinstance(source, str) and not (path.suffix or os.sep in source or "/" in source):
        raise ValueError(
            f"unknown table {source!r}: not a path, a bundled table {bundled_table_names()} "
            f"(default {BUNDLED_DEFAULT!r}) or a named loader {sorted(DATASET_LOADERS)}"
        )
    raise TableError(str(source), None, None, "file not found")


def _is_bundled_name(source: object) -> bool:
    # Names win over paths: pass a Path (or "./name") to read a local directory of the same name.
    return isinstance(source, str) and (source == BUNDLED_DEFAULT or source in bundled_table_names())
