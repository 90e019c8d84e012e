"""Delimited text files before parsing: opening a source, sniffing the separator, reading and checking the header.

A source is a path, a seekable binary file object (e.g. a member of a zip file, see
:func:`zip_member`), or a callable returning a fresh binary file object. :class:`SourceFile` opens
it as often as needed (the careful mode of :func:`~argusrec.data.adapters.delimited.read_delimited`
re-reads from the start). Problems raise :class:`~argusrec.errors.DataError` naming the file.
"""

from __future__ import annotations

import csv
import difflib
import os
import re
import zipfile
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Union

import pyarrow as pa

from argusrec.data.adapters.values import looks_numeric
from argusrec.errors import DataError

Source = Union[str, os.PathLike, BinaryIO, Callable[[], BinaryIO]]

#: Separators tried by :func:`sniff_separator`, in order of preference when several fit.
SEPARATORS: tuple[str, ...] = ("::", "\t", ",", ";", "|")
_SAMPLE_BYTES = 1 << 16


# --------------------------------------------------------------------------------------------------
# Sources


class SourceFile:
    """A source that can be opened more than once (the careful mode re-reads from the start)."""

    def __init__(self, source: Source, name: str | None = None) -> None:
        self._path: Path | None = None
        self._file: BinaryIO | None = None
        self._opener: Callable[[], BinaryIO] | None = None
        if isinstance(source, (str, os.PathLike)):
            self._path = Path(source)
            self.name = name or str(source)
        elif hasattr(source, "read"):
            self._file = source  # type: ignore[assignment]
            self.name = name or str(getattr(source, "name", "<stream>"))
        elif callable(source):
            self._opener = source
            self.name = name or "<stream>"
        else:
            raise TypeError(f"expected a path, a binary file object or an opener, got {type(source)!r}")
        self._opened_once = False

    @contextmanager
    def open(self, native: bool = False) -> Iterator[BinaryIO]:
        """A binary stream from the start of the file; ``native``: an Arrow file for paths (no GIL)."""
        if self._path is not None:
            if not self._path.is_file():
                what = "is a folder, not a file" if self._path.is_dir() else "file not found"
                raise DataError(what, file=self.name)
            with pa.OSFile(str(self._path)) if native else open(self._path, "rb") as f:
                yield f  # type: ignore[misc]
        elif self._opener is not None:
            f = self._opener()
            try:
                yield f
            finally:
                f.close()
        else:
            assert self._file is not None
            # Every reader starts from the beginning: the sniffer, the header check, each pass.
            if self._file.seekable():
                self._file.seek(0)
            elif self._opened_once:
                raise DataError("cannot read a non-seekable stream twice", file=self.name)
            self._opened_once = True
            yield self._file

    def head(self, n: int = _SAMPLE_BYTES) -> bytes:
        with self.open() as f:
            return f.read(n)

    def size(self) -> int | None:
        if self._path is not None and self._path.is_file():
            return self._path.stat().st_size
        return None

    def header(self, *, separator: str, encoding: str, quoting: bool) -> list[str]:
        """The column names on the first line (BOM and surrounding spaces removed)."""
        with self.open() as f:
            first = f.readline(1 << 20)
        if not first:
            raise DataError("file is empty", file=self.name)
        text = first.decode(encoding, errors="replace").lstrip("\ufeff").rstrip("\r\n")
        if separator == "::" or not quoting:
            fields = text.split(separator)
        else:
            fields = next(csv.reader([text], delimiter=separator))
        return [f.strip() for f in fields]


def _sample_text(inp: SourceFile, encoding: str) -> str:
    data = inp.head()
    if not data:
        raise DataError("file is empty", file=inp.name)
    if len(data) == _SAMPLE_BYTES and b"\n" in data:
        data = data[: data.rindex(b"\n")]  # drop the partial last line of the sample
    return data.decode(encoding, errors="replace").lstrip("\ufeff")


def estimate_rows(source: Source, *, total_bytes: int | None = None, name: str | None = None) -> int | None:
    """Rough row count from the file size and the mean length of the first lines (for partitioning)."""
    inp = SourceFile(source, name)
    size = total_bytes if total_bytes is not None else inp.size()
    if size is None:
        return None
    sample = inp.head()
    lines = sample.count(b"\n") or 1
    return max(1, round(size * lines / max(len(sample), 1)))


def zip_member(archive: str | os.PathLike, member: str) -> Callable[[], BinaryIO]:
    """A source for :func:`~.delimited.read_delimited`: opens ``member`` of the zip ``archive`` afresh on each call."""

    def open_member() -> BinaryIO:
        try:
            with zipfile.ZipFile(archive) as zf:
                # The member keeps the archive's file open until the member itself is closed.
                return zf.open(member)  # type: ignore[return-value]
        except (zipfile.BadZipFile, OSError, KeyError) as exc:
            raise DataError(f"cannot open {member!r} in the archive ({exc})", file=str(archive)) from exc

    return open_member


# --------------------------------------------------------------------------------------------------
# Separator and header


def _strip_quoted(line: str) -> str:
    return re.sub(r'"[^"]*"', '""', line)


def sniff_separator(
    source: Source,
    *,
    name: str | None = None,
    encoding: str = "utf-8",
    candidates: Sequence[str] = SEPARATORS,
    max_lines: int = 50,
    agreement: float = 0.8,
) -> str:
    """The separator that splits the first lines of the file into the same number (>= 2) of fields.

    Quoted text is ignored when counting. A candidate fits when one field count (>= 2) covers at
    least ``agreement`` of the sampled lines, so one odd line does not spoil the guess; the last line
    of a file that does not end with a newline (a truncated file) is not counted. When
    several fit, the first in ``candidates`` wins (``::``, tab, comma, ``;``, ``|``). Raises
    :class:`DataError` naming the file and the candidates tried when none fits.
    """
    inp = SourceFile(source, name)
    text = _sample_text(inp, encoding)
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if len(lines) > 2 and not text.endswith("\n") and len(inp.head(_SAMPLE_BYTES + 1)) <= _SAMPLE_BYTES:
        lines.pop()  # the whole file without a final newline: its last line may be cut short
    lines = lines[:max_lines]
    for sep in candidates:
        counts = Counter((_strip_quoted(ln) if sep != "::" else ln).count(sep) for ln in lines)
        count, support = counts.most_common(1)[0]
        if count > 0 and support >= agreement * len(lines):
            return sep
    tried = " ".join(repr(c) for c in candidates)
    raise DataError(
        f"cannot tell the separator: none of {tried} splits the first {len(lines)} lines into the same "
        "number of fields",
        file=inp.name,
        hint="give the separator explicitly, e.g. separator=','",
    )


def read_header(
    source: Source, *, separator: str, name: str | None = None, encoding: str = "utf-8", quoting: bool = True
) -> list[str]:
    """The column names on the first line of the file (BOM and surrounding spaces removed)."""
    return SourceFile(source, name).header(separator=separator, encoding=encoding, quoting=quoting)


def check_columns(found: Sequence[str], required: Sequence[str], *, file: str) -> None:
    """Raise :class:`DataError` naming the file, the missing columns and the columns found."""
    missing = [c for c in required if c not in found]
    if not missing:
        return
    hint = None
    if found and all(looks_numeric(c) for c in found if c):
        hint = "the first line looks like data, not a header; the file may have no header line"
    else:
        guesses = []
        for c in missing:
            close = difflib.get_close_matches(c, found, n=1, cutoff=0.6)
            lowered = [f for f in found if f.lower() == c.lower()]
            match = lowered or close
            if match:
                guesses.append(f"{match[0]!r} for {c!r}")
        if guesses:
            hint = "misnamed? found " + ", ".join(guesses)
    noun = "column" if len(missing) == 1 else "columns"
    raise DataError(
        f"missing {noun} {', '.join(repr(c) for c in missing)}; expected {list(required)}, found columns {list(found)}",
        file=file,
        column=missing[0],
        hint=hint,
    )
