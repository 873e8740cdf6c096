"""Files written safely and checked on reading: atomic replacement, SHA-256 hashes, checksum lists.

Every file mmr-gym writes for later reading (a saved table, a feature cache entry, a pointer such as
``math-v-root.json``, a saved scorer) goes through :func:`atomic_write`: the bytes go to a new
temporary file in the same directory, which then replaces the target with :func:`os.replace`. A
reader in another process sees the old file or the new one, never a half-written one, and a write
that fails midway leaves the old file as it was.

A *checksum list* (:data:`CHECKSUM_FILE`, ``checksums.sha256``) holds one line per file,
``<sha256 hex>  <file name>``, the format of GNU ``sha256sum``: ``sha256sum -c checksums.sha256``
checks a directory by hand.
"""

from __future__ import annotations

import ctypes
import errno
import hashlib
import os
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import BinaryIO

__all__ = [
    "CHECKSUM_FILE",
    "atomic_write",
    "exchange_paths",
    "file_sha256",
    "format_checksums",
    "parse_checksums",
    "sha256_bytes",
]

CHECKSUM_FILE = "checksums.sha256"
_BLOCK = 1 << 20
# A file modified less than this long before it was hashed is not memoized: a later rewrite within
# the file system's timestamp granularity could keep the same size and times ("racy git").
_MEMO_MIN_AGE_NS = 2_000_000_000

Writer = Callable[[BinaryIO], object]


def atomic_write(path: str | os.PathLike[str], data: bytes | str | Writer) -> Path:
    """Write ``data`` to ``path`` atomically; returns the path.

    Args:
        path: the target file; its directory must exist.
        data: the bytes, a text (written as UTF-8), or a function that writes to the binary file
            handle it is given (e.g. ``lambda fh: np.save(fh, array)``).

    The temporary file is created with the usual permissions (the umask applies, as for ``open``),
    flushed to disk, then renamed over ``path``. On any error it is removed and ``path`` is untouched.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(6)}.tmp")
    try:
        with open(tmp, "xb") as fh:
            if isinstance(data, str):
                fh.write(data.encode("utf-8"))
            elif isinstance(data, bytes | bytearray | memoryview):
                fh.write(data)
            else:
                data(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def exchange_paths(first: str | os.PathLike[str], second: str | os.PathLike[str]) -> bool:
    """Swap two existing paths (e.g. two directories) in one atomic step; False where unsupported.

    Linux's ``renameat2(..., RENAME_EXCHANGE)``: a reader of either path sees the old entry or the
    new one, never none. Returns False, changing nothing, on other systems or file systems without
    it; the caller then falls back to two renames.
    """
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(first), at_fdcwd, os.fsencode(second), rename_exchange) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), str(first), None, str(second))


def sha256_bytes(data: bytes) -> str:
    """Hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def _hash_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(_BLOCK), b""):
            digest.update(block)
    return digest.hexdigest()


def _stat_key(path: Path) -> tuple[int, ...]:
    st = path.stat()
    # The change time (ctime) moves on every write and cannot be set back by tools such as touch.
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


_memo: dict[str, tuple[tuple[int, ...], str]] = {}
_memo_lock = threading.Lock()


def file_sha256(path: str | os.PathLike[str], *, memo: bool = True) -> str:
    """Hex SHA-256 of the bytes of the file ``path``.

    With ``memo``, the digest is remembered for this process together with the file's device,
    inode, size, modification and change times; a later call whose ``stat`` matches all of them
    reuses it instead of reading the file again. Any write changes the change time and an atomic
    replacement changes the inode, so a changed file is always hashed again. A file changed less
    than 2 seconds before it was hashed is not remembered (a rewrite within the time stamps'
    resolution could look unchanged).
    """
    path = Path(path)
    key = str(path.resolve())
    if memo:
        before = _stat_key(path)
        with _memo_lock:
            cached = _memo.get(key)
        if cached is not None and cached[0] == before:
            return cached[1]
    digest = _hash_file(path)
    if memo:
        after = _stat_key(path)
        if after == before and time.time_ns() - after[3] >= _MEMO_MIN_AGE_NS:
            with _memo_lock:
                _memo[key] = (after, digest)
    return digest


def format_checksums(digests: Mapping[str, str]) -> str:
    """The text of a checksum list: ``<hex>  <name>`` per file, sorted by name (``sha256sum`` format)."""
    return "".join(f"{digests[name]}  {name}\n" for name in sorted(digests))


def parse_checksums(text: str) -> dict[str, str]:
    """File name -> hex SHA-256 from the text of a checksum list.

    Raises:
        ValueError: a line that is not ``<64 hex digits>  <file name>``, or a name listed twice;
            the message starts with ``line N:``.
    """
    digests: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        digest, sep, name = line.partition("  ")
        name = name.removeprefix("*")  # sha256sum's binary-mode marker
        if (
            not sep
            or len(digest) != 64
            or any(c not in "0123456789abcdef" for c in digest)
            or not name
            or Path(name).name != name
        ):
            raise ValueError(
                f"line {number}: expected '<64 lowercase hex digits>  <file name>', got {line!r}"
            )
        if name in digests:
            raise ValueError(f"line {number}: {name!r} is listed twice")
        digests[name] = digest
    return digests
