"""Experiment tracking behind one small protocol; the local CSV/JSON-lines files are always on.

A :class:`Tracker` receives the run's parameters once, one metrics row per epoch, artifacts (plots,
checkpoints) and a final ``close``. :class:`LocalTracker` writes ``metrics.csv`` and
``metrics.jsonl`` in the run directory; :class:`MultiTracker` fans out to several backends and
isolates their failures: a backend that raises is reported once (a warning naming it) and never
stops training or costs the other backends a row.

Other backends (MLflow, W&B, TensorBoard, plugins) are registered in
:data:`saferl.registry.TRACKERS` as ``factory(run_dir, tracking_config) -> Tracker``.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from saferl.utils import atomic_write_text

logger = logging.getLogger(__name__)

__all__ = ["LocalTracker", "MultiTracker", "Tracker", "read_metrics"]


@runtime_checkable
class Tracker(Protocol):
    """What every tracking backend implements."""

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Record the run's (flattened or nested) configuration once."""

    def log_metrics(self, metrics: Mapping[str, Any], step: int) -> None:
        """Record one row of scalar metrics at ``step`` (environment steps)."""

    def log_artifact(self, path: str | Path) -> None:
        """Record a file (plot, checkpoint, report)."""

    def close(self) -> None:
        """Flush and release resources; called once at the end of the run."""


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


class MultiTracker:
    """Fans every call out to several trackers; a failing backend is reported once, then skipped
    quietly on each later failure (it is still called: a transient outage may recover).

    Args:
        trackers: name -> tracker; the order is kept (put the local tracker first).
    """

    def __init__(self, trackers: Mapping[str, Tracker] | Sequence[tuple[str, Tracker]]) -> None:
        items = trackers.items() if isinstance(trackers, Mapping) else trackers
        self.trackers: dict[str, Tracker] = dict(items)
        self.failures: dict[str, int] = {}

    def _call(self, method: str, *args: Any) -> None:
        for name, tracker in self.trackers.items():
            try:
                getattr(tracker, method)(*args)
            except Exception as exc:
                count = self.failures.get(name, 0)
                self.failures[name] = count + 1
                if count == 0:
                    logger.warning(
                        "tracker '%s' failed in %s (%s: %s); training continues, the local "
                        "files keep every row; further failures of '%s' are not reported",
                        name,
                        method,
                        exc.__class__.__name__,
                        exc,
                        name,
                        extra={"data": {"tracker": name, "method": method}},
                    )

    def log_params(self, params: Mapping[str, Any]) -> None:
        self._call("log_params", params)

    def log_metrics(self, metrics: Mapping[str, Any], step: int) -> None:
        self._call("log_metrics", metrics, step)

    def log_artifact(self, path: str | Path) -> None:
        self._call("log_artifact", path)

    def close(self) -> None:
        self._call("close")
