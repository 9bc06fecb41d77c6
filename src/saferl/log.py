"""Structured logging: human-readable console output plus JSON-lines files.

Every module uses ``logger = logging.getLogger(__name__)``. The CLI calls :func:`setup_logging`
once with ``--log-level``; the trainer adds a JSON-lines file inside each run directory with
:func:`add_jsonl_handler`. Extra structured fields go through ``extra={"data": {...}}`` and land
as keys of the JSON record.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

__all__ = ["JsonLinesFormatter", "add_jsonl_handler", "remove_handler", "setup_logging"]

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class JsonLinesFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, plus ``record.data`` keys."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        data = getattr(record, "data", None)
        if isinstance(data, dict):
            for k, v in data.items():
                out.setdefault(k, v)
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


def setup_logging(level: str | int = "INFO") -> None:
    """Configure the ``saferl`` logger tree for console output at ``level``.

    Raises:
        ValueError: ``level`` is not one of DEBUG, INFO, WARNING, ERROR, CRITICAL.
    """
    if isinstance(level, str):
        name = level.upper()
        if name not in LEVELS:
            raise ValueError(f"--log-level: must be one of {', '.join(LEVELS)}, got {level!r}")
        level = getattr(logging, name)
    root = logging.getLogger("saferl")
    root.setLevel(level)
    for h in list(root.handlers):
        if isinstance(h, _ConsoleHandler):
            root.removeHandler(h)
    handler = _ConsoleHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    # The console keeps its level when a run's log file lowers the logger's (add_jsonl_handler).
    handler.setLevel(level)
    root.addHandler(handler)


def console_level() -> str:
    """The console's level name as set by :func:`setup_logging` (the ``saferl`` logger's
    effective level when it was not called), for passing ``--log-level`` to child processes."""
    root = logging.getLogger("saferl")
    for h in root.handlers:
        if isinstance(h, _ConsoleHandler) and h.level != logging.NOTSET:
            return logging.getLevelName(h.level)
    return logging.getLevelName(root.getEffectiveLevel())


class _ConsoleHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is when a record arrives (as the standard library's
    last-resort handler does), so a progress bar that redirects stderr gets the log lines."""

    def __init__(self) -> None:
        logging.Handler.__init__(self)

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr


class _JsonLinesFileHandler(logging.FileHandler):
    """A FileHandler that drops a record it cannot write (a full disk) instead of printing a
    traceback per record; ``dropped`` counts them. The write that failed first is reported by
    the code that made it (e.g. the trainer's checkpoint), once."""

    dropped = 0

    def handleError(self, record: logging.LogRecord) -> None:
        self.dropped += 1


def add_jsonl_handler(path: str | Path, level: int = logging.DEBUG) -> logging.Handler:
    """Append every ``saferl`` log record to ``path`` as JSON lines; returns the handler."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    handler = _JsonLinesFileHandler(p, mode="a", encoding="utf-8")
    handler.setFormatter(JsonLinesFormatter())
    handler.setLevel(level)
    root = logging.getLogger("saferl")
    if root.level == logging.NOTSET or root.level > level:
        root.setLevel(level)
    root.addHandler(handler)
    return handler


def remove_handler(handler: logging.Handler) -> None:
    """Detach and close a handler added by :func:`add_jsonl_handler`."""
    logging.getLogger("saferl").removeHandler(handler)
    handler.close()
