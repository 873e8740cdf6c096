"""A :class:`~mmr_gym.table.RoutingTable` on disk: saved with a SHA-256 per file, checked on loading.

A saved table is a directory of four files (parquet, npz and JSON; never pickle):

- ``outcomes.parquet``: the columns ``query_id``, ``dataset``, then ``<model>_correct`` and
  ``<model>_cost`` for every model, in order (no other column);
- ``features.npz``: one float32 ``[n, d]`` array per feature channel (it may hold none);
- ``meta.json``: ``format_version``, ``model_names``, the table's ``meta`` and ``checksum_file``;
- ``checksums.sha256``: the SHA-256 of the three other files, one ``<hex>  <name>`` line each (the
  format of ``sha256sum``, so ``sha256sum -c checksums.sha256`` checks the directory by hand).
  It is written last.

Loading reads each file once, checks its bytes against ``checksums.sha256`` and only then parses
them, so a flipped byte, a truncated file or a missing file is a :class:`~mmr_gym.errors.TableError`
that names the file and says what to do (re-create the table with what made it, or restore the
file), never a table with silently wrong numbers or without its features.

Tables saved before mmr-gym wrote checksums (no ``checksums.sha256`` and no ``checksum_file`` in
``meta.json``) still load, with an :class:`~mmr_gym.errors.UnverifiedTableWarning` naming the
directory: their files are checked for structure only. Loading and saving such a table again adds
the checksums. A ``meta.json`` that names a checksum list which is missing is refused.

Concurrent processes: every file is replaced atomically (:func:`mmr_gym.files.atomic_write`), the
checksum list is removed first and written last, and a load that fails while the directory or its
list changes (a save in progress) waits for the save to end and reads again (up to about 4 s), so
readers see the old table or the new one, never a mix, and do not fail while another process saves
now and then. (A process that saves into the same directory without pause can still make a reader
give up with the checksum error after that wait.) Loaders that cache tables save a whole new
directory and swap it in (:func:`replace_table_dir`).
"""

from __future__ import annotations

import errno
import io
import json
import os
import random
import shutil
import stat
import tempfile
import time
import warnings
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from mmr_gym.errors import TableError, UnverifiedTableWarning
from mmr_gym.files import (
    CHECKSUM_FILE,
    atomic_write,
    exchange_paths,
    format_checksums,
    parse_checksums,
    sha256_bytes,
)

if TYPE_CHECKING:
    from mmr_gym.table import RoutingTable

FORMAT_VERSION = 1
OUTCOMES_FILE = "outcomes.parquet"
FEATURES_FILE = "features.npz"
META_FILE = "meta.json"
TABLE_FILES = (OUTCOMES_FILE, FEATURES_FILE, META_FILE)


def save_table(table: RoutingTable, directory: str | Path) -> Path:
    """Write ``table`` to ``directory`` (created if needed) as described in the module docstring."""
    directory = Path(directory)
    outcomes = io.BytesIO()
    # Deterministic bytes: no pandas index or writer metadata that carries a timestamp.
    table.to_frame().to_parquet(outcomes, index=False, compression="zstd")
    features = io.BytesIO()
    np.savez_compressed(features, **{c: v for c, v in table.features.items()})
    header = {
        "checksum_file": CHECKSUM_FILE,
        "format_version": FORMAT_VERSION,
        "model_names": list(table.model_names),
        "meta": dict(table.meta),
    }
    try:
        # allow_nan=False: NaN and Infinity are not JSON (other readers refuse the file).
        meta_text = json.dumps(header, indent=2, sort_keys=True, allow_nan=False) + "\n"
    except (TypeError, ValueError) as exc:  # before any file is written
        raise TypeError(
            f"cannot save the table {table.source!r}: its meta must hold JSON values only (str, finite "
            f"numbers, bools, None, lists, dicts with str keys): {exc}"
        ) from exc
    contents = {
        OUTCOMES_FILE: outcomes.getvalue(),
        FEATURES_FILE: features.getvalue(),
        META_FILE: meta_text.encode("utf-8"),
    }
    directory.mkdir(parents=True, exist_ok=True)
    # The list goes first and comes back last: a reader that finds none while meta.json names it
    # knows a save is in progress (and waits), one that finds it finds the files it lists.
    (directory / CHECKSUM_FILE).unlink(missing_ok=True)
    for name, data in contents.items():
        atomic_write(directory / name, data)
    digests = {name: sha256_bytes(data) for name, data in contents.items()}
    atomic_write(directory / CHECKSUM_FILE, format_checksums(digests))
    return directory


def replace_table_dir(table: RoutingTable, directory: str | Path) -> Path:
    """Save ``table`` as ``directory`` whole: into a new temporary sibling, then renamed into place.

    For caches that loaders build: a reader sees the complete old table or the complete new one,
    never a directory being written. An existing ``directory`` is swapped with the new one in one
    step where the system can (Linux, :func:`mmr_gym.files.exchange_paths`), else renamed aside
    first (a reader at that instant finds no table, as before the first save); the old one is then
    removed. :func:`load_table_dir` starts again if the directory is swapped while it reads.
    Returns ``directory``.
    """
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=directory.parent, prefix=f".{directory.name}.new-"))
    old = None
    try:
        save_table(table, tmp)
        if directory.exists() and exchange_paths(tmp, directory):
            return directory  # tmp now holds the old table, removed below
        if directory.exists():
            old = Path(tempfile.mkdtemp(dir=directory.parent, prefix=f".{directory.name}.old-"))
            os.replace(directory, old / directory.name)
        try:
            os.replace(tmp, directory)
        except OSError as exc:
            if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
            # Another process renamed its table into place first; a cache key names the content: keep it.
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # already gone after a successful rename
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    return directory


def load_table_dir(cls: type[RoutingTable], directory: str | Path) -> RoutingTable:
    """Read the table saved in ``directory`` by :func:`save_table` (see the module docstring).

    Concurrent writers: the files are read through one handle on the directory, so a table that
    another process swaps in whole (:func:`replace_table_dir`) is read from one directory or the
    other. If a read fails while the directory or its checksum list changes (a save in progress
    there: :func:`save_table` removes the list first and writes it last), it waits for the save to
    finish (up to about 4 s) and reads again. A failure while nothing changes is damage: it is
    raised at once.

    Raises:
        TableError: a file is missing, damaged (its SHA-256 differs from ``checksums.sha256``) or
            malformed; the message names the file (and the column or entry) and what to do.
    """
    directory = Path(directory)
    for delay in (*_RETRY_DELAYS, None):
        before = _signature(directory)
        with _DirectoryFiles(directory) as files:
            try:
                return _load_once(cls, directory, files)
            except TableError as exc:
                changing = (
                    isinstance(exc, _ChecksumsMissing) or files.replaced() or _signature(directory) != before
                )
                if delay is None or not changing:
                    if isinstance(exc, _ChecksumsMissing):  # the user meets a plain TableError
                        raise TableError(exc.source, exc.column, exc.row, exc.problem) from None
                    raise
        time.sleep(delay * random.uniform(0.5, 1.5))
    raise AssertionError("unreachable")


def _load_once(cls: type[RoutingTable], directory: Path, files: _DirectoryFiles) -> RoutingTable:
    meta_path = directory / META_FILE
    if not files.is_file(META_FILE):
        present = [name for name in (OUTCOMES_FILE, FEATURES_FILE, CHECKSUM_FILE) if files.is_file(name)]
        problem = "missing: not a saved RoutingTable directory"
        if present:
            problem = (
                f"missing, but the directory holds a saved table's other files ({', '.join(present)}): restore "
                "meta.json from a copy or re-create the table with the command or loader that made it"
            )
        raise TableError(str(meta_path), None, None, problem)
    digests = _read_checksums(files)
    meta_bytes = _read_checked(files, META_FILE, digests, "")
    header = _parse_header(meta_path, meta_bytes)
    advice = _advice(header)
    if digests is None:
        if "checksum_file" in header:
            raise _ChecksumsMissing(
                str(directory / CHECKSUM_FILE),
                None,
                None,
                f"missing, but {META_FILE} says the table was saved with it, so its files cannot be checked; "
                f"{advice}",
            )
        warnings.warn(
            f"{directory}: no {CHECKSUM_FILE} (saved by an mmr-gym older than file checksums), so its files "
            "cannot be checked for damage; load and save it again to add checksums",
            UnverifiedTableWarning,
            stacklevel=5,  # the caller of RoutingTable.load
        )
    else:
        for name in TABLE_FILES:
            if name not in digests:
                raise TableError(
                    str(directory / CHECKSUM_FILE),
                    None,
                    None,
                    f"does not list {name}; restore it or {advice}",
                )
        for name in sorted(set(digests) - set(TABLE_FILES)):  # a later format's files: check them too
            _read_checked(files, name, digests, advice)
    model_names = header["model_names"]
    frame = _parse_outcomes(directory / OUTCOMES_FILE, _read_checked(files, OUTCOMES_FILE, digests, advice))
    features = _parse_features(
        directory / FEATURES_FILE, _read_checked(files, FEATURES_FILE, digests, advice), advice
    )
    from mmr_gym.datasets.columns import model_columns, outcome_values  # local: datasets imports table

    outcomes_path = str(directory / OUTCOMES_FILE)
    for column in ("query_id", "dataset"):
        if column not in frame.columns:
            raise TableError(outcomes_path, column, None, f"missing column; {advice}")
    from mmr_gym.table import TEXT_COLUMN  # local: table imports this module

    base = ["query_id", "dataset"] + ([TEXT_COLUMN] if TEXT_COLUMN in frame.columns else [])
    stored = model_columns([c for c in frame.columns if c not in base], outcomes_path)
    expected_columns = base + [f"{m}{s}" for m in stored for s in ("_correct", "_cost")]
    extra = [c for c in frame.columns if c not in expected_columns]
    if extra:
        raise TableError(
            outcomes_path,
            str(extra[0]),
            None,
            f"unexpected column (a saved table has only query_id, dataset, {TEXT_COLUMN} and the model "
            f"columns); {advice}",
        )
    if stored != model_names:
        differences = [
            f"missing from {where}: {names}"
            for where, names in (
                (META_FILE, [m for m in stored if m not in model_names]),
                (OUTCOMES_FILE, [m for m in model_names if m not in stored]),
            )
            if names
        ] or ["the same models in another order"]
        raise TableError(
            str(meta_path),
            "model_names",
            None,
            f"lists {model_names}, but {OUTCOMES_FILE} has columns for the models {stored}: the two files do "
            f"not belong together ({'; '.join(differences)}); restore them or {advice}",
        )
    # A saved table was complete and numeric when saved: a missing or text cell is damage, not a
    # gap to fill with a column mean as the CSV loaders do.
    for column in expected_columns[len(base) :]:
        if not pd.api.types.is_numeric_dtype(frame[column]) or pd.api.types.is_bool_dtype(frame[column]):
            raise TableError(
                outcomes_path, column, None, f"stored as {frame[column].dtype}, not as numbers; {advice}"
            )
        missing = np.flatnonzero(frame[column].isna().to_numpy())
        if missing.size:
            raise TableError(
                outcomes_path,
                column,
                int(missing[0]),
                f"missing value ({missing.size} such row(s)); a saved table has none; {advice}",
            )
    correct, cost = outcome_values(frame, model_names, outcomes_path)
    return cls(
        correct=correct,
        cost=cost,
        query_ids=frame["query_id"].to_numpy(),
        datasets=frame["dataset"].to_numpy(),
        model_names=tuple(model_names),
        features=features,
        meta=header["meta"],
        source=str(directory),
        texts=frame[TEXT_COLUMN].to_numpy(dtype=object) if TEXT_COLUMN in frame.columns else None,
    )


# ---------------------------------------------------------------------------------------- internals
# Waits (seconds) before reading again while another process saves into the directory. Each is
# drawn between half and one and a half times its value (below), so that a reader does not keep
# time with a writer that swaps the directory again and again; about 4 s in all.
_RETRY_DELAYS = (0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 0.64, 0.64, 0.64, 0.64)


class _ChecksumsMissing(TableError):
    """The checksum list is missing though meta.json names it: damage, or a save in progress."""


def _signature(directory: Path) -> tuple[object, ...]:
    """What changes when a table is saved into ``directory`` or swapped for another."""
    try:
        st = os.stat(directory)
        listing = (directory / CHECKSUM_FILE).read_bytes()
    except OSError:
        return (None,)
    return (st.st_dev, st.st_ino, listing)


class _DirectoryFiles:
    """Reads the files of one directory through a handle on it (where the OS allows: POSIX), so that
    every file comes from the same directory even if another one is renamed to its path meanwhile."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._fd: int | None = None

    def __enter__(self) -> _DirectoryFiles:
        if os.open in os.supports_dir_fd and hasattr(os, "O_DIRECTORY"):
            try:
                self._fd = os.open(self.directory, os.O_RDONLY | os.O_DIRECTORY)
            except OSError:
                self._fd = None  # missing or not a directory: reported by the reads
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            os.close(self._fd)

    def is_file(self, name: str) -> bool:
        if self._fd is None:
            return (self.directory / name).is_file()
        try:
            return stat.S_ISREG(os.stat(name, dir_fd=self._fd).st_mode)
        except OSError:
            return False

    def read(self, name: str) -> bytes:
        if self._fd is None:
            return (self.directory / name).read_bytes()
        fd = os.open(name, os.O_RDONLY, dir_fd=self._fd)
        with os.fdopen(fd, "rb") as fh:
            return fh.read()

    def replaced(self) -> bool:
        """Whether the path now names another directory than the one read (or none)."""
        if self._fd is None:
            return False
        try:
            now = os.stat(self.directory)
        except OSError:
            return True
        read = os.fstat(self._fd)
        # A removed directory has no links; its inode number may already name the new one.
        return read.st_nlink == 0 or (now.st_dev, now.st_ino) != (read.st_dev, read.st_ino)


def _advice(header: dict[str, Any] | None) -> str:
    """What to do about a damaged file: re-create the table (naming what made it, if known) or restore it."""
    meta = header.get("meta", {}) if header else {}
    made_by = ""
    if meta.get("generator"):
        made_by = f" (meta.json: generator {meta['generator']!r}, seed {meta.get('seed')!r})"
    elif meta.get("source"):
        made_by = f" (meta.json: source {meta['source']!r})"
    return f"re-create the table with the command or loader that made it{made_by}, or restore the file from a copy"


def _read_checksums(files: _DirectoryFiles) -> dict[str, str] | None:
    path = files.directory / CHECKSUM_FILE
    if not files.is_file(CHECKSUM_FILE):
        return None
    try:
        return parse_checksums(files.read(CHECKSUM_FILE).decode("utf-8"))
    except FileNotFoundError:  # removed since is_file: as if missing
        return None
    except (ValueError, UnicodeDecodeError) as exc:  # UnicodeDecodeError is a ValueError too
        raise TableError(
            str(path),
            None,
            None,
            f"not a checksum list ({exc}); restore it from a copy or re-create the table",
        ) from exc


def _read_checked(files: _DirectoryFiles, name: str, digests: dict[str, str] | None, advice: str) -> bytes:
    """The bytes of file ``name``, checked against ``digests`` (when there is a list)."""
    path = files.directory / name
    advice = advice or _advice(None)
    try:
        data = files.read(name)
    except FileNotFoundError:
        listed = f" ({CHECKSUM_FILE} lists it)" if digests and name in digests else ""
        raise TableError(str(path), None, None, f"missing{listed}; {advice}") from None
    except OSError as exc:
        raise TableError(str(path), None, None, f"cannot be read ({exc})") from exc
    if digests is not None and name in digests:
        got = sha256_bytes(data)
        if got != digests[name]:
            raise TableError(
                str(path),
                None,
                None,
                f"damaged or changed since the table was saved: its SHA-256 is {got}, {CHECKSUM_FILE} records "
                f"{digests[name]}; {advice}",
            )
    return data


def _parse_header(path: Path, data: bytes) -> dict[str, Any]:
    source = str(path)
    try:
        header = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise TableError(source, None, None, f"not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    except json.JSONDecodeError as exc:
        raise TableError(source, None, exc.lineno, f"invalid JSON: {exc.msg}") from None
    if not isinstance(header, dict):
        raise TableError(
            source,
            None,
            None,
            f"expected a JSON object (format_version, model_names, meta), got a {type(header).__name__}",
        )
    if header.get("format_version") != FORMAT_VERSION:
        raise TableError(
            source, "format_version", None, f"expected {FORMAT_VERSION}, got {header.get('format_version')!r}"
        )
    names = header.get("model_names")
    if not isinstance(names, list) or not names or not all(isinstance(m, str) for m in names):
        raise TableError(
            source, "model_names", None, f"expected a non-empty list of model names, got {names!r}"
        )
    if not isinstance(header.get("meta", {}), dict):
        raise TableError(source, "meta", None, f"expected a JSON object, got {header['meta']!r}")
    header.setdefault("meta", {})
    if "checksum_file" in header and header["checksum_file"] != CHECKSUM_FILE:
        raise TableError(
            source, "checksum_file", None, f"expected {CHECKSUM_FILE!r}, got {header['checksum_file']!r}"
        )
    return header


def _parse_outcomes(path: Path, data: bytes) -> pd.DataFrame:
    try:
        return pd.read_parquet(io.BytesIO(data))
    except Exception as exc:  # pyarrow raises ArrowInvalid, OSError and others for a damaged file
        raise TableError(
            str(path),
            None,
            None,
            f"not a readable parquet file ({type(exc).__name__}: {exc}); it is damaged or truncated: "
            f"{_advice(None)}",
        ) from exc


def _parse_features(path: Path, data: bytes, advice: str) -> dict[str, np.ndarray]:
    source = str(path)
    try:
        archive = np.load(io.BytesIO(data), allow_pickle=False)
        if not isinstance(archive, np.lib.npyio.NpzFile):
            raise TableError(
                source, None, None, f"expected an npz archive of channels, got a single array; {advice}"
            )
        with archive:
            return {channel: archive[channel] for channel in archive.files}
    except TableError:
        raise
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
        raise TableError(
            source,
            None,
            None,
            f"not a readable npz archive ({type(exc).__name__}: {exc}); it is damaged or truncated: {advice}",
        ) from exc
