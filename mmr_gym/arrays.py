"""Read-only arrays: the package's shared state (tables, lookups, logs, worlds) and the masks and
views it hands out, which nobody may write once made.

Each helper makes ``array`` read-only; they differ in what they do to the caller's array:

- :func:`read_only`: flags ``array`` itself (the caller just made it and gives it away);
- :func:`read_only_contiguous`: a C-contiguous array, flagged: ``array`` itself when it already is
  one (then the caller's array is flagged too), else a contiguous copy;
- :func:`read_only_copy`: always a copy, flagged: the caller's array stays theirs and writable.
"""

from __future__ import annotations

import numpy as np

__all__ = ["read_only", "read_only_contiguous", "read_only_copy"]


def read_only(array: np.ndarray) -> np.ndarray:
    """``array``, made read-only in place (masks and views handed out, never to be written)."""
    array.flags.writeable = False
    return array


def read_only_contiguous(array: np.ndarray) -> np.ndarray:
    """``array`` as a read-only C-contiguous array (``np.ascontiguousarray``: a copy only if needed,
    and at least one dimension)."""
    return read_only(np.ascontiguousarray(array))


def read_only_copy(array: np.ndarray) -> np.ndarray:
    """A read-only copy of ``array`` (the caller keeps a writable original)."""
    return read_only(np.array(array, copy=True))
