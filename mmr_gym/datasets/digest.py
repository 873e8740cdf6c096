"""A content key for a dataset path: what changes exactly when the table read from it can change."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from mmr_gym.errors import TableError
from mmr_gym.files import CHECKSUM_FILE, file_sha256
from mmr_gym.table_files import META_FILE, TABLE_FILES

__all__ = ["source_digest"]


def source_digest(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of the content behind a dataset path, for keying caches of loaded tables.

    - A saved table directory (with ``meta.json``): the digest of its ``checksums.sha256``, which
      holds the SHA-256 of every file of the table: cheap, nothing else is read. (A file damaged
      after saving does not change it; loading such a table fails on the checksum.) A table saved
      without checksums (an older mmr-gym): the SHA-256 of its files' bytes.
    - A CSV file, or a directory of CSV files: the names and SHA-256 of the bytes of the file(s)
      (the file name is part of the content: it names the dataset of a per-dataset file).

    File hashes are remembered for this process by :func:`mmr_gym.files.file_sha256`, keyed by the
    file's inode, size and modification and change times, so an unchanged big CSV is read once; any
    write to it changes the key. The digest covers content, not location: two copies of one table
    have the same digest (a cache that must report where a table was read from keys by both).

    Raises:
        TableError: ``path`` does not exist.
    """
    path = Path(path)
    if not path.exists():
        raise TableError(str(path), None, None, "file not found")
    if path.is_dir() and (path / META_FILE).is_file():
        checksums = path / CHECKSUM_FILE
        if checksums.is_file():
            return _combine("saved-table", checksums.read_text(encoding="utf-8", errors="replace"))
        parts = [f"{name}:{file_sha256(path / name)}" for name in TABLE_FILES if (path / name).is_file()]
        return _combine("saved-table-unverified", *parts)
    if path.is_file():
        return _combine("csv", f"{path.name}:{file_sha256(path)}")
    csvs = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() == ".csv")
    return _combine("csv-directory", *(f"{p.name}:{file_sha256(p)}" for p in csvs))


def _combine(kind: str, *parts: str) -> str:
    return hashlib.sha256(json.dumps([kind, *parts]).encode("utf-8")).hexdigest()
