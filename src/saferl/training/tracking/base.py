"""What every tracking backend shares: the protocol, the context a backend is built with, the
optional-package check and the run directory's ``tracking.json`` (backend run ids)."""

from __future__ import annotations

import importlib.util
import json
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from saferl.config import ConfigError
from saferl.utils import atomic_write_text

__all__ = [
    "BUILTIN_BACKENDS",
    "BackendUnavailableError",
    "MetricsRow",
    "Tracker",
    "TrackerContext",
    "epoch_ranges",
    "flatten",
    "numeric_metrics",
    "read_tracking_file",
    "require_package",
    "update_tracking_file",
]

#: Built-in backends: name -> (Python package it imports, the saferl extra that installs it).
BUILTIN_BACKENDS: dict[str, tuple[str, str]] = {
    "mlflow": ("mlflow", "mlflow"),
    "wandb": ("wandb", "wandb"),
    "tensorboard": ("tensorboard", "tensorboard"),
}

TRACKING_FILE = "tracking.json"
_FILE_LOCK = threading.Lock()  # backends write tracking.json from their delivery threads


@runtime_checkable
class Tracker(Protocol):
    """What every tracking backend implements."""

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Record the run's (nested) resolved configuration once."""

    def log_metrics(self, metrics: Mapping[str, Any], step: int) -> None:
        """Record one row of scalar metrics at ``step`` (environment steps)."""

    def log_artifact(self, path: str | Path) -> None:
        """Record a file (plot, checkpoint, report)."""

    def close(self) -> None:
        """Flush and release resources; called once at the end of the run."""


@dataclass(frozen=True)
class MetricsRow:
    """One epoch's row as a backend receives it from its delivery queue.

    Attributes:
        metrics: column -> value (floats, ints, strings; NaN allowed).
        step: environment steps at the end of the epoch (the x axis of every backend).
        time_ms: wall-clock time the row was produced, in ms since the epoch. A retried delivery
            sends the same timestamp, so a store that deduplicates identical records (MLflow's SQL
            store does) keeps one copy.
    """

    metrics: Mapping[str, Any]
    step: int
    time_ms: int

    @property
    def epoch(self) -> int | None:
        e = self.metrics.get("epoch")
        return int(e) if isinstance(e, (int, float)) and not isinstance(e, bool) else None


@dataclass(frozen=True)
class TrackerContext:
    """What the trainer tells a backend factory besides ``(run_dir, tracking_config)``.

    Passed as the keyword ``context`` to factories that accept it.

    Attributes:
        config: the run's resolved :class:`~saferl.config.Config`.
        run_name: the run directory's name.
        resume_epoch: the checkpoint epoch a resumed run continues from; None for a new run.
        history: rows already in the local files when the run (re)starts (empty for a new run),
            so that a backend can deliver what an interrupted process did not.
    """

    config: Any
    run_name: str
    resume_epoch: int | None = None
    history: Sequence[Mapping[str, Any]] = field(default_factory=tuple)


class BackendUnavailableError(ConfigError):
    """A backend asked for whose package is not installed (one line naming the extra)."""


def require_package(backend: str) -> None:
    """Raise :class:`BackendUnavailableError` if a built-in backend's package is missing.

    Only looks the package up (``importlib.util.find_spec``); nothing is imported.
    """
    package, extra = BUILTIN_BACKENDS[backend]
    try:
        found = importlib.util.find_spec(package) is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        raise BackendUnavailableError(
            f"tracking backend '{backend}' needs the {package} package: "
            f"pip install 'saferl[{extra}]'"
        )


def check_backends(names: Iterable[str]) -> None:
    """Check that every backend in ``names`` is registered and, for the built-in ones, that its
    package is installed (nothing is imported).

    Raises:
        BackendUnavailableError: a built-in backend's package is missing.
        ConfigError: a name that no one registered.
    """
    from saferl.registry import TRACKERS

    for name in names:
        if name in BUILTIN_BACKENDS:
            require_package(name)
        elif name not in TRACKERS:
            available = ", ".join(TRACKERS.names())
            raise ConfigError(
                f"tracking.backends: unknown tracker '{name}'; available: {available}"
            )


def flatten(params: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"algo": {"target_kl": 0.01}}`` -> ``{"algo.target_kl": 0.01}`` (lists stay values)."""
    out: dict[str, Any] = {}
    for k, v in params.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        if isinstance(v, Mapping) and v:
            out.update(flatten(v, key))
        else:
            out[key] = v
    return out


def numeric_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    """The columns of a row that are numbers (booleans as 0/1), as floats; strings are dropped."""
    out = {}
    for k, v in metrics.items():
        if isinstance(v, bool):
            out[k] = float(v)
        elif isinstance(v, (int, float)):
            out[k] = float(v)
        elif hasattr(v, "item") and callable(v.item):
            try:
                item = v.item()
            except (ValueError, TypeError):
                continue
            if isinstance(item, (int, float)):
                out[k] = float(item)
    return out


def epoch_ranges(epochs: Iterable[int]) -> str:
    """``[1, 2, 3, 5, 7, 8]`` -> ``"1-3, 5, 7-8"`` (sorted, duplicates dropped)."""
    values = sorted(set(epochs))
    parts: list[str] = []
    i = 0
    while i < len(values):
        j = i
        while j + 1 < len(values) and values[j + 1] == values[j] + 1:
            j += 1
        parts.append(str(values[i]) if i == j else f"{values[i]}-{values[j]}")
        i = j + 1
    return ", ".join(parts)


def read_tracking_file(run_dir: str | Path) -> dict[str, Any]:
    """``run_dir/tracking.json``: backend name -> what it recorded (run ids, where its files are,
    what it delivered); empty if absent or unreadable."""
    path = Path(run_dir) / TRACKING_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def update_tracking_file(run_dir: str | Path, backend: str, **fields: Any) -> dict[str, Any]:
    """Merge ``fields`` into ``tracking.json[backend]`` (atomic write; safe across threads)."""
    with _FILE_LOCK:
        data = read_tracking_file(run_dir)
        entry = dict(data.get(backend) or {})
        entry.update(fields)
        data[backend] = entry
        atomic_write_text(Path(run_dir) / TRACKING_FILE, json.dumps(data, indent=2) + "\n")
        return entry
