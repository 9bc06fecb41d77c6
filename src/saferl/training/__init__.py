"""saferl.training: everything around the learning loop.

``Trainer`` (trainer.py) runs collect -> update -> callbacks -> trackers -> checkpoint and owns
the run directory; ``checkpoint``, ``callbacks``, ``schedulers`` and ``tracking`` are its parts.
Names are imported lazily, so ``import saferl.training`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "BestModel",
    "Callback",
    "CallbackList",
    "CheckpointError",
    "EarlyStopping",
    "LRScheduleCallback",
    "LocalTracker",
    "MultiTracker",
    "ParamSchedule",
    "PlotCallback",
    "ProgressBar",
    "SafetyMonitor",
    "Schedules",
    "Tracker",
    "TrainError",
    "Trainer",
    "load_checkpoint",
    "run_train",
]

_WHERE = {
    "Trainer": "trainer",
    "TrainError": "trainer",
    "run_train": "trainer",
    "Callback": "callbacks",
    "CallbackList": "callbacks",
    "BestModel": "callbacks",
    "EarlyStopping": "callbacks",
    "LRScheduleCallback": "callbacks",
    "PlotCallback": "callbacks",
    "ProgressBar": "callbacks",
    "SafetyMonitor": "callbacks",
    "CheckpointError": "checkpoint",
    "load_checkpoint": "checkpoint",
    "ParamSchedule": "schedulers",
    "Schedules": "schedulers",
    "LocalTracker": "tracking",
    "MultiTracker": "tracking",
    "Tracker": "tracking",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'saferl.training' has no attribute {name!r}")
    return getattr(importlib.import_module(f"saferl.training.{module}"), name)
