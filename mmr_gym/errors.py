"""Errors that say where bad input is: the file (or source), the column and the row."""

from __future__ import annotations


class TableError(ValueError):
    """Bad outcome-table input. ``str(err)`` names the source, the column and the row (0-based)."""

    def __init__(self, source: str, column: str | None, row: int | None, problem: str) -> None:
        self.source = source
        self.column = column
        self.row = row
        self.problem = problem
        where = [source]
        if column is not None:
            where.append(f"column {column!r}")
        if row is not None:
            where.append(f"row {row}")
        super().__init__(f"{', '.join(where)}: {problem}")

    def advised(self, advice: str) -> TableError:
        """The same error with ``advice`` (what to do) after its problem."""
        return TableError(self.source, self.column, self.row, f"{self.problem}. {advice}")


class UnverifiedFilesWarning(UserWarning):
    """Saved files were loaded without checking them for damage: they have no checksums (an older
    mmr-gym saved them)."""


class UnverifiedTableWarning(UnverifiedFilesWarning):
    """A saved table was loaded without checking its files: it has no checksums (an older mmr-gym saved it)."""


class LogError(ValueError):
    """Bad decision-log input (off-policy evaluation). ``str(err)`` names the source, the column and
    the row (0-based, with the logged episode and step when known)."""

    def __init__(
        self, source: str, column: str | None, row: int | None, problem: str, where: str = ""
    ) -> None:
        self.source = source
        self.column = column
        self.row = row
        self.problem = problem
        parts = [source]
        if column is not None:
            parts.append(f"column {column!r}")
        if row is not None:
            parts.append(f"row {row}{f' ({where})' if where else ''}")
        super().__init__(f"{', '.join(parts)}: {problem}")
