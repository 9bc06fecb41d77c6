"""Failure isolation for one backend: a delivery thread, a bounded queue, retries and a report.

:class:`QueuedTracker` wraps a backend. The training loop's calls only append to a queue and
return at once; a daemon thread hands the queue to the backend in order. When the backend raises
(server down, disk full, expired credentials) the call stays at the head of the queue and is
retried with exponential backoff (0.5 s doubling to 5 s), so a backend that comes back receives
its backlog in order. The first failure is reported once as a warning; a recovery is logged at
INFO. The queue keeps at most ``queue_size`` metrics rows: beyond that the oldest row is dropped
and remembered, and the end-of-run report names it (the local files always hold every row).

Backends may implement ``log_rows(rows: list[MetricsRow])`` to receive several queued rows in one
call (MLflow sends them as one batch request); otherwise ``log_metrics`` is called per row.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from saferl.training.tracking.base import MetricsRow, Tracker, epoch_ranges

logger = logging.getLogger(__name__)

__all__ = ["DeliveryReport", "QueuedTracker"]

RETRY_FIRST_S = 0.5
RETRY_MAX_S = 5.0
#: While closing, a backend that fails this many times in a row is given up on (its backlog is
#: reported as not delivered) rather than holding the process for the whole flush timeout.
CLOSE_ATTEMPTS = 3
#: Rows handed to ``log_rows`` at once.
ROWS_PER_CALL = 50


@dataclass
class DeliveryReport:
    """What one backend received, for the end-of-run summary and ``tracking.json``.

    Attributes:
        name: backend name.
        delivered: epochs whose rows the backend accepted.
        pending: epochs still queued when the run ended (not delivered).
        dropped: epochs dropped from a full queue (not delivered).
        failures: failed calls (each retry counts).
        last_error: the last exception, as ``Type: message``.
        other_pending: calls other than metrics rows (params, artifacts, close) left undelivered.
        where: the backend's own description of where its data is (run id and URI, a directory).
    """

    name: str
    delivered: list[int] = field(default_factory=list)
    pending: list[int] = field(default_factory=list)
    dropped: list[int] = field(default_factory=list)
    failures: int = 0
    last_error: str | None = None
    other_pending: list[str] = field(default_factory=list)
    where: str | None = None

    @property
    def complete(self) -> bool:
        return not (self.pending or self.dropped or self.other_pending)

    def lines(self) -> list[str]:
        """Human-readable summary lines."""
        rows = len(self.delivered)
        got = f"{rows} row(s)" + (f" (epochs {epoch_ranges(self.delivered)})" if rows else "")
        head = f"tracker '{self.name}': {got}"
        if self.where:
            head += f" in {self.where}"
        out = [head]
        missing = sorted(set(self.pending) | set(self.dropped))
        if missing:
            out.append(
                f"tracker '{self.name}': NOT delivered: epochs {epoch_ranges(missing)} "
                f"({self.last_error or 'backend unavailable'}); the local metrics files hold them"
            )
        if self.other_pending:
            out.append(
                f"tracker '{self.name}': NOT delivered: {', '.join(self.other_pending)} "
                f"({self.last_error or 'backend unavailable'})"
            )
        return out

    def as_dict(self) -> dict[str, Any]:
        return {
            "delivered_epochs": epoch_ranges(self.delivered),
            "delivered_rows": len(self.delivered),
            "undelivered_epochs": epoch_ranges(set(self.pending) | set(self.dropped)),
            "undelivered_other": list(self.other_pending),
            "failures": self.failures,
            "last_error": self.last_error,
        }


@dataclass
class _Op:
    kind: str  # "params", "rows", "artifact", "close"
    payload: Any = None

    def describe(self) -> str:
        if self.kind == "artifact":
            return f"artifact {Path(self.payload).name}"
        return {"params": "params", "close": "final artifacts and close"}.get(self.kind, self.kind)


class QueuedTracker:
    """A backend behind a delivery thread (see the module docstring).

    Args:
        name: backend name (in warnings and reports).
        backend: the backend; it is only ever called from the delivery thread.
        queue_size: metrics rows kept while the backend fails.
        flush_timeout: seconds :meth:`close` waits for the backlog (and the backend's own close).
    """

    def __init__(
        self, name: str, backend: Tracker, *, queue_size: int = 10_000, flush_timeout: float = 30.0
    ) -> None:
        self.name = name
        self.backend = backend
        self.queue_size = int(queue_size)
        self.flush_timeout = float(flush_timeout)
        self.report = DeliveryReport(name)
        self._queue: collections.deque[_Op] = collections.deque()
        self._rows_queued = 0
        self._cond = threading.Condition()
        self._closing = False
        self._failing = False
        self._close_failures = 0
        self._finished = False
        self._thread = threading.Thread(
            target=self._run, name=f"saferl-tracker-{name}", daemon=True
        )
        self._thread.start()

    # -- the training loop's side: never blocks --------------------------------------------------
    def log_params(self, params: Mapping[str, Any]) -> None:
        self._put(_Op("params", params))

    def log_metrics(self, metrics: Mapping[str, Any], step: int) -> None:
        row = MetricsRow(dict(metrics), int(step), int(time.time() * 1000))
        with self._cond:
            if self._rows_queued >= self.queue_size:
                self._drop_oldest_row()
            self._queue.append(_Op("rows", row))
            self._rows_queued += 1
            self._cond.notify()

    def log_artifact(self, path: str | Path) -> None:
        self._put(_Op("artifact", Path(path)))

    def close(self) -> None:
        """Queue the backend's close, wait up to ``flush_timeout`` s for the queue to drain,
        then record what was (not) delivered in :attr:`report`."""
        with self._cond:
            self._queue.append(_Op("close"))
            self._closing = True
            self._cond.notify_all()
            deadline = time.monotonic() + self.flush_timeout
            while not self._finished:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(min(left, 0.25))
            self._finished = True  # the thread stops at its next look at the queue
            for op in self._queue:
                if op.kind == "rows":
                    if op.payload.epoch is not None:
                        self.report.pending.append(op.payload.epoch)
                else:
                    self.report.other_pending.append(op.describe())
            self._queue.clear()
            self._cond.notify_all()
        describe = getattr(self.backend, "describe", None)
        if callable(describe):
            try:
                self.report.where = describe()
            except Exception:  # a description is a nicety; never fail the run's end on it
                self.report.where = None

    # -- internals ---------------------------------------------------------------------------------
    def _put(self, op: _Op) -> None:
        with self._cond:
            self._queue.append(op)
            self._cond.notify()

    def _drop_oldest_row(self) -> None:
        for i, op in enumerate(self._queue):
            if op.kind == "rows":
                del self._queue[i]
                self._rows_queued -= 1
                if op.payload.epoch is not None:
                    self.report.dropped.append(op.payload.epoch)
                return

    def _next_batch(self) -> list[_Op]:
        """The head op, or the leading run of metrics rows (up to ROWS_PER_CALL)."""
        head = self._queue[0]
        if head.kind != "rows" or not hasattr(self.backend, "log_rows"):
            return [head]
        batch = []
        for op in self._queue:
            if op.kind != "rows" or len(batch) >= ROWS_PER_CALL:
                break
            batch.append(op)
        return batch

    def _deliver(self, batch: list[_Op]) -> None:
        head = batch[0]
        if head.kind == "rows":
            rows = [op.payload for op in batch]
            if hasattr(self.backend, "log_rows"):
                self.backend.log_rows(rows)
            else:
                self.backend.log_metrics(rows[0].metrics, rows[0].step)
        elif head.kind == "params":
            self.backend.log_params(head.payload)
        elif head.kind == "artifact":
            self.backend.log_artifact(head.payload)
        elif head.kind == "close":
            self.backend.close()

    def _run(self) -> None:
        delay = RETRY_FIRST_S
        while True:
            with self._cond:
                while not self._queue and not self._finished:
                    self._cond.wait()
                if self._finished:
                    return
                batch = self._next_batch()
            try:
                self._deliver(batch)
            except Exception as exc:
                self._on_failure(exc)
                with self._cond:
                    if self._closing and self._close_failures >= CLOSE_ATTEMPTS:
                        self._finished = True  # give up: close() reports the backlog
                        self._cond.notify_all()
                        return
                    wait = min(delay, 1.0) if self._closing else delay
                    self._cond.wait(wait)  # close() wakes us for a prompt last try
                delay = min(delay * 2, RETRY_MAX_S)
                continue
            delay = RETRY_FIRST_S
            with self._cond:
                if self._failing:
                    self._failing = False
                    logger.info(
                        "tracker '%s' is back after %d failed call(s); delivering %d queued row(s)",
                        self.name,
                        self.report.failures,
                        self._rows_queued,
                    )
                for op in batch:
                    # close() may have cleared the queue meanwhile: pop only what is still there.
                    if self._queue and self._queue[0] is op:
                        self._queue.popleft()
                        if op.kind == "rows":
                            self._rows_queued -= 1
                            if op.payload.epoch is not None:
                                self.report.delivered.append(op.payload.epoch)
                if batch[0].kind == "close":
                    self._finished = True
                    self._cond.notify_all()
                    return

    def _on_failure(self, exc: Exception) -> None:
        first = self.report.failures == 0
        self.report.failures += 1
        first_line = (str(exc).splitlines() or [""])[0][:200]
        self.report.last_error = f"{exc.__class__.__name__}: {first_line}"
        if self._closing:
            self._close_failures += 1
        if first:
            logger.warning(
                "tracker '%s' failed (%s); training continues, its rows are queued and retried "
                "and the local files keep every row; further failures of '%s' are not reported",
                self.name,
                self.report.last_error,
                self.name,
                extra={"data": {"tracker": self.name}},
            )
        self._failing = True
