"""The local tracker: ``metrics.csv`` and ``metrics.jsonl`` in the run directory, always on.

These files are the run's record of its metrics: every other backend is a copy, and a backend that
was down can be refilled from them (``read_metrics``).
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from saferl.utils import atomic_write_text

__all__ = ["LocalTracker", "read_metrics"]


def _json_value(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None  # JSON has no NaN/inf; the CSV keeps "nan"
    if hasattr(v, "item") and callable(v.item):
        return _json_value(v.item())
    return v


def _csv_value(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return repr(v)  # shortest round-trip repr: identical runs give identical files
    return str(v)


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a ``metrics.jsonl`` file (a partial last line, from a kill mid-write, is skipped)."""
    rows = []
    p = Path(path)
    if not p.exists():
        return rows
    with open(p, encoding="utf-8") as f:
        for line in f:
            if not line.endswith("\n"):
                break
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                break
    return rows


class LocalTracker:
    """``metrics.csv`` + ``metrics.jsonl`` in ``run_dir``, one row per epoch.

    Each row is written with a single ``write`` and flushed (``fsync`` too) before
    :meth:`log_metrics` returns, so the files are safe to read while training runs. If a row brings
    a column the CSV header lacks, the CSV is rewritten atomically with the wider header.

    Args:
        run_dir: the run directory.
        resume_epoch: when resuming, the checkpoint's epoch: rows with a larger ``epoch`` (written
            after that checkpoint by the interrupted process) are dropped, so the files end up
            identical to an uninterrupted run's. ``None`` starts fresh files.
    """

    #: a failure to write the local files is raised by :class:`MultiTracker`, not skipped: the
    #: trainer stops (a full disk) rather than lose rows
    essential = True

    def __init__(self, run_dir: str | Path, tracking_config: Any = None, *, resume_epoch=None):
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.csv_path = self.run_dir / "metrics.csv"
        self.jsonl_path = self.run_dir / "metrics.jsonl"
        self.rows: list[dict[str, Any]] = []
        self.columns: list[str] = []
        if resume_epoch is not None:
            self.rows = [
                r for r in read_metrics(self.jsonl_path) if int(r.get("epoch", 0)) <= resume_epoch
            ]
            for r in self.rows:
                self._extend_columns(r)
        self._rewrite()

    # -- protocol --------------------------------------------------------------------------------
    def log_params(self, params: Mapping[str, Any]) -> None:
        pass  # the trainer writes the resolved config.yaml itself

    def log_metrics(self, metrics: Mapping[str, Any], step: int) -> None:
        row = {k: _json_value(v) for k, v in metrics.items()}
        row.setdefault("env_steps", int(step))
        self.rows.append(row)
        line = json.dumps(row) + "\n"
        self._append(self.jsonl_path, line)
        if self._extend_columns(row):
            self._rewrite_csv()
        else:
            self._append(self.csv_path, self._csv_line(row))

    def log_artifact(self, path: str | Path) -> None:
        pass  # the files already live in the run directory

    def close(self) -> None:
        pass  # every row is already flushed and fsynced

    # -- files -----------------------------------------------------------------------------------
    def _extend_columns(self, row: Mapping[str, Any]) -> bool:
        new = [k for k in row if k not in self.columns]
        self.columns.extend(new)
        return bool(new)

    def _csv_line(self, row: Mapping[str, Any]) -> str:
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerow(
            [_csv_value(row.get(c)) for c in self.columns]
        )
        return buf.getvalue()

    @staticmethod
    def _append(path: Path, text: str) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, text.encode("utf-8"))
            os.fsync(fd)
        finally:
            os.close(fd)

    def _rewrite_csv(self) -> None:
        text = ""
        if self.columns:
            buf = io.StringIO()
            csv.writer(buf, lineterminator="\n").writerow(self.columns)
            text = buf.getvalue() + "".join(self._csv_line(r) for r in self.rows)
        atomic_write_text(self.csv_path, text)

    def _rewrite(self) -> None:
        atomic_write_text(self.jsonl_path, "".join(json.dumps(r) + "\n" for r in self.rows))
        self._rewrite_csv()
