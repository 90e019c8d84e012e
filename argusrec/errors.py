"""The exceptions argusrec raises for problems a user can fix.

The CLI turns every :class:`ArgusrecError` into a one-paragraph message and a non-zero exit code;
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class ArgusrecError(Exception):
    """Base class: a problem with the user's input, config or environment (not a bug)."""


class DataError(ArgusrecError):
    """Bad input data: names the file, the line or column, what was found and what was expected."""

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        column: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.file = file
        self.line = line
        self.column = column
        self.hint = hint
        where = []
        if file is not None:
            where.append(str(file))
        if line is not None:
            where.append(f"line {line}")
        if column is not None:
            where.append(f"column {column!r}")
        text = ": ".join([", ".join(where), message]) if where else message
        if hint:
            text += f" ({hint})"
        super().__init__(text)


class DownloadError(ArgusrecError):
    """A dataset could not be downloaded or failed its checksum."""
