"""Experiment tracking behind one small protocol; the local CSV/JSON-lines files are always on.

A :class:`Tracker` receives the run's parameters once, one metrics row per epoch, artifacts (plots)
and a final ``close``. :class:`LocalTracker` writes ``metrics.csv`` and ``metrics.jsonl`` in the
run directory, synchronously: they are the run's complete record. Every other backend (MLflow,
W&B, TensorBoard, a plugin from :data:`saferl.registry.TRACKERS`) runs behind a
:class:`QueuedTracker`: its own thread, a bounded queue, retries, one warning when it first fails
and an end-of-run report of what it holds. :func:`build_trackers` assembles them for a run;
``docs/tracking.md`` describes each backend.

Backend factories are called as ``factory(run_dir, tracking_config)``, plus
``context=TrackerContext(...)`` when they accept that keyword.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from saferl.config import ConfigError
from saferl.registry import TRACKERS, RegistryError, UnknownNameError
from saferl.training.tracking.base import (
    BUILTIN_BACKENDS,
    BackendUnavailableError,
    MetricsRow,
    Tracker,
    TrackerContext,
    check_backends,
    read_tracking_file,
)
from saferl.training.tracking.delivery import DeliveryReport, QueuedTracker
from saferl.training.tracking.local import LocalTracker, read_metrics
from saferl.training.tracking.multi import MultiTracker
from saferl.utils import accepts_kwarg

logger = logging.getLogger(__name__)

__all__ = [
    "BUILTIN_BACKENDS",
    "BackendUnavailableError",
    "DeliveryReport",
    "LocalTracker",
    "MetricsRow",
    "MultiTracker",
    "QueuedTracker",
    "Tracker",
    "TrackerContext",
    "build_trackers",
    "check_backends",
    "read_metrics",
    "read_tracking_file",
]


def build_trackers(
    run_dir: str | Path, config: Any, *, resume_epoch: int | None = None
) -> MultiTracker:
    """The local tracker plus every backend in ``config.tracking.backends``, each queued.

    Args:
        run_dir: the run directory.
        config: the run's resolved :class:`~saferl.config.Config`.
        resume_epoch: the checkpoint epoch when resuming (the local files are cut back to it and
            the rows up to it are offered to backends as history); None for a new run.

    Raises:
        BackendUnavailableError: a built-in backend whose package is not installed.
        ConfigError: a backend name nobody registered.
    """
    run_dir = Path(run_dir)
    tc = config.tracking
    check_backends(tc.backends)  # before anything is built: a missing package is a user error
    local = LocalTracker(run_dir, tc, resume_epoch=resume_epoch)
    context = TrackerContext(
        config=config,
        run_name=run_dir.name,
        resume_epoch=resume_epoch,
        history=tuple(dict(r) for r in local.rows) if resume_epoch is not None else (),
    )
    trackers: list[tuple[str, Tracker]] = [("local", local)]
    for name in tc.backends:
        if name == "local":
            continue
        try:
            factory = TRACKERS.get(name)
        except UnknownNameError as exc:
            raise ConfigError(f"tracking.backends: {exc}") from None
        except RegistryError as exc:  # a plugin that cannot load never stops training
            logger.warning(
                "tracker '%s' unavailable (%s); continuing with the local files", name, exc
            )
            continue
        try:
            if accepts_kwarg(factory, "context"):
                backend = factory(run_dir, tc, context=context)
            else:
                backend = factory(run_dir, tc)
        except ConfigError:  # a missing package or a wrong setting: the user's to fix
            raise
        except Exception as exc:  # e.g. a plugin's own start-up error: never stops training
            logger.warning(
                "tracker '%s' unavailable (%s: %s); continuing with the local files",
                name,
                exc.__class__.__name__,
                exc,
            )
            continue
        trackers.append(
            (
                name,
                QueuedTracker(
                    name, backend, queue_size=tc.queue_size, flush_timeout=tc.flush_timeout
                ),
            )
        )
    return MultiTracker(trackers, run_dir=run_dir)
