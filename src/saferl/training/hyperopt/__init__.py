"""Hyperparameter search with Optuna: ``saferl tune`` (docs/tuning.md).

A trial is a short training run through the same :class:`~saferl.training.trainer.Trainer` as
``saferl train``: the base config with the sampled values applied as ``--set`` overrides, so a
trial's config is exactly what ``saferl train --config best.yaml`` runs again.

* :mod:`~saferl.training.hyperopt.space`: search spaces (YAML format, per-algorithm defaults);
* :mod:`~saferl.training.hyperopt.trial`: one trial (progress reports, pruning, evaluation);
* :mod:`~saferl.training.hyperopt.study`: storage, samplers, pruners, workers, stale trials,
  :func:`run_tune`;
* :mod:`~saferl.training.hyperopt.report`: the study's files, rebuilt from its storage.

Optuna is an optional dependency (``pip install 'saferl[tune]'``), imported on first use.
"""

from __future__ import annotations

from saferl.training.hyperopt.space import DEFAULT_SPACES, SearchSpace, default_space, parse_space
from saferl.training.hyperopt.study import TuneError, run_report, run_tune, storage_url

__all__ = [
    "DEFAULT_SPACES",
    "SearchSpace",
    "TuneError",
    "default_space",
    "parse_space",
    "run_report",
    "run_tune",
    "storage_url",
]
