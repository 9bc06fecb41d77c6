"""Several trackers at once; each one's failures stay its own."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from saferl.training.tracking.base import Tracker, update_tracking_file
from saferl.training.tracking.delivery import DeliveryReport, QueuedTracker

logger = logging.getLogger(__name__)

__all__ = ["MultiTracker"]


class MultiTracker:
    """Fans every call out to several trackers; a failing backend is reported once, then skipped
    quietly on each later failure (it is still called: a transient outage may recover).

    Backends wrapped in a :class:`~saferl.training.tracking.delivery.QueuedTracker` do not raise
    (they queue and retry on their own thread); at :meth:`close` their delivery reports are logged
    (which rows each backend holds, which it does not) and, when ``run_dir`` is given, recorded in
    ``run_dir/tracking.json``.

    Args:
        trackers: name -> tracker; the order is kept (put the local tracker first).
        run_dir: the run directory, for ``tracking.json``.
    """

    def __init__(
        self,
        trackers: Mapping[str, Tracker] | Sequence[tuple[str, Tracker]],
        run_dir: str | Path | None = None,
    ) -> None:
        items = trackers.items() if isinstance(trackers, Mapping) else trackers
        self.trackers: dict[str, Tracker] = dict(items)
        self.failures: dict[str, int] = {}
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.reports: dict[str, DeliveryReport] = {}

    def _call(self, method: str, *args: Any) -> None:
        for name, tracker in self.trackers.items():
            try:
                getattr(tracker, method)(*args)
            except Exception as exc:
                if getattr(tracker, "essential", False):
                    raise  # the local files: losing them silently would lose rows
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
        """Close every tracker (queued backends flush first), then report their deliveries."""
        self._call("close")
        for name, tracker in self.trackers.items():
            if isinstance(tracker, QueuedTracker):
                self.reports[name] = tracker.report
        for name, report in self.reports.items():
            for i, line in enumerate(report.lines()):
                level = logging.INFO if i == 0 else logging.WARNING
                logger.log(level, "%s", line, extra={"data": {"tracker": name}})
            if self.run_dir is not None:
                try:
                    update_tracking_file(self.run_dir, name, delivery=report.as_dict())
                except OSError as exc:  # e.g. disk full: the log lines above still say it
                    logger.warning("could not write tracking.json: %s", exc)
