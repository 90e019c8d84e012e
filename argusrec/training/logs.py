"""Run logs: ``train_log.csv`` (one row per ``log_every`` steps), ``metrics.csv`` (one row per evaluation),
and TensorBoard event files when the optional ``tensorboard`` package is installed.

Append-safe resume: when a run resumes from a checkpoint taken at optimizer step ``S`` (epoch ``E``
about to run or in progress), rows written after that checkpoint by the interrupted run are dropped
before new rows are appended — ``train_log.csv`` keeps rows with ``step <= S``, ``metrics.csv`` keeps
rows with ``epoch < E`` — so every step and every evaluation appears exactly once. The filtered file
is rewritten atomically (temporary file + rename); a half-written last line from a crash is dropped
too. TensorBoard gets ``purge_step = S + 1``, which hides the interrupted run's later events.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import os
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TextIO

log = logging.getLogger(__name__)

TRAIN_LOG = "train_log.csv"
METRICS_LOG = "metrics.csv"
TENSORBOARD_DIR = "tensorboard"
TRAIN_COLUMNS = ("step", "epoch", "loss", "lr", "grad_norm", "targets_per_s", "events_per_s", "seconds")

_said_no_tensorboard = False


class CsvLog:
    """A CSV file that rows are appended to (flushed at once, so a crash loses at most the last row).

    A row with a column the header lacks rewrites the file with the widened header (evaluations may
    add metrics); missing values are written as empty cells.
    """

    def __init__(
        self,
        path: Path,
        columns: tuple[str, ...] | list[str] = (),
        *,
        fresh: bool,
        keep: Callable[[dict[str, str]], bool] | None = None,
    ) -> None:
        """Open ``path`` for appending, after filtering (or discarding) what it already holds.

        Args:
            path: the CSV file.
            columns: columns known up front (more may appear later).
            fresh: start an empty file (discarding an old one) instead of continuing it.
            keep: when continuing, only rows for which ``keep(row)`` holds are kept.
        """
        self.path = Path(path)
        self.columns: list[str] = list(columns)
        self._file: TextIO | None = None
        rows: list[dict[str, str]] = []
        if not fresh and self.path.is_file():
            header, rows = _read_rows(self.path)
            self.columns = header + [c for c in self.columns if c not in header]
            rows = [r for r in rows if keep is None or keep(r)]
        self._rewrite(rows)

    def append(self, row: Mapping[str, Any]) -> None:
        new = [k for k in row if k not in self.columns]
        if new:
            _, rows = _read_rows(self.path)
            self.columns += new
            self._rewrite(rows)
        assert self._file is not None
        self._file.write(_format_line([_cell(row.get(c)) for c in self.columns]))
        self._file.flush()

    def close(self) -> None:
        if self._file is not None and not self._file.closed:
            self._file.close()

    def _rewrite(self, rows: list[dict[str, str]]) -> None:
        if self._file is not None:
            self._file.close()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", newline="") as f:
                if self.columns:
                    f.write(_format_line(self.columns))
                for r in rows:
                    f.write(_format_line([r.get(c, "") for c in self.columns]))
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        self._file = open(self.path, "a", newline="")  # kept open for appends; closed in close()


def _format_line(cells: list[str]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow(cells)
    return buf.getvalue()


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)  # shortest text that reads back as the same float: exact comparisons work
    return str(value)


def _read_rows(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    """Header and rows; a torn last line (no newline: the writer crashed mid-row) is dropped."""
    text = path.read_text()
    if text and not text.endswith("\n"):
        text = text[: text.rfind("\n") + 1]
    lines = list(csv.reader(text.splitlines()))
    if not lines:
        return [], []
    header = lines[0]
    rows = [dict(zip(header, line, strict=True)) for line in lines[1:] if len(line) == len(header)]
    return header, rows


def _int_or(value: str | None, default: int) -> int:
    try:
        return int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return default


class RunLogs:
    """The CSV logs of one run directory, plus TensorBoard when available.

    Args:
        run_dir: where ``train_log.csv``, ``metrics.csv`` and ``tensorboard/`` go.
        resume_step: the resumed checkpoint's optimizer step, or None for a fresh run (old logs are
            discarded).
        resume_epoch: the epoch the resumed checkpoint continues (metrics rows of epochs >= it go).
        tensorboard: try to write TensorBoard events (skipped, with one log message, when the
            ``tensorboard`` package is missing).
    """

    def __init__(
        self, run_dir: str | Path, *, resume_step: int | None = None, resume_epoch: int = 0, tensorboard: bool = True
    ) -> None:
        run_dir = Path(run_dir)
        fresh = resume_step is None
        last_step = -1 if resume_step is None else resume_step
        self.train = CsvLog(
            run_dir / TRAIN_LOG, TRAIN_COLUMNS, fresh=fresh, keep=lambda r: _int_or(r.get("step"), 1 << 62) <= last_step
        )
        self.metrics = CsvLog(
            run_dir / METRICS_LOG,
            ("epoch", "step"),
            fresh=fresh,
            keep=lambda r: _int_or(r.get("epoch"), 1 << 62) < resume_epoch,
        )
        self.writer = _summary_writer(run_dir / TENSORBOARD_DIR, last_step + 1) if tensorboard else None

    def log_train(self, row: Mapping[str, Any]) -> None:
        """One training row (``TRAIN_COLUMNS``; ``step`` required)."""
        self.train.append(row)
        if self.writer is not None:
            for k, v in row.items():
                if k not in ("step", "epoch") and isinstance(v, (int, float)) and math.isfinite(v):
                    self.writer.add_scalar(f"train/{k}", v, int(row["step"]))

    def log_metrics(self, epoch: int, step: int, metrics: Mapping[str, float]) -> None:
        """One evaluation: ``metrics`` keyed by name as printed (``valid/NDCG@10``)."""
        self.metrics.append({"epoch": epoch, "step": step, **metrics})
        if self.writer is not None:
            for k, v in metrics.items():
                self.writer.add_scalar(k, v, step)
            self.writer.flush()

    def close(self) -> None:
        self.train.close()
        self.metrics.close()
        if self.writer is not None:
            self.writer.close()


def _summary_writer(log_dir: Path, purge_step: int) -> Any:
    global _said_no_tensorboard
    try:
        import tensorboard  # noqa: F401  (torch's SummaryWriter needs it; import it to check)
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        if not _said_no_tensorboard:
            log.info("tensorboard is not installed: logging to CSV only (pip install 'argusrec[logging]')")
            _said_no_tensorboard = True
        return None
    return SummaryWriter(log_dir=str(log_dir), purge_step=purge_step if purge_step > 0 else None)
