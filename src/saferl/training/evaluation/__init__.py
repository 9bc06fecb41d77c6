"""Evaluation: protocols, statistics, model comparison and reports.

Modules:

* :mod:`~saferl.training.evaluation.stats`: bootstrap CIs, Welch / Mann-Whitney tests, Holm and
  BH corrections, effect sizes, CVaR, feasibility-first ranking (scipy.stats underneath);
* :mod:`~saferl.training.evaluation.protocols`: ``standard``, ``stochastic``, ``safety`` and
  ``human_factors``, run batched in the native vector env into an :class:`EpisodeTable`;
* :mod:`~saferl.training.evaluation.policies` / :mod:`~saferl.training.evaluation.models`: trained
  checkpoints and scripted baselines (``baselines:<name>``) behind one policy protocol;
* :mod:`~saferl.training.evaluation.report` / :mod:`~saferl.training.evaluation.compare`: JSON,
  CSV, Markdown and self-contained HTML reports;
* :func:`run_evaluate` / :func:`run_compare`: what ``saferl evaluate`` / ``saferl compare`` call.

Example::

    from saferl.training.evaluation import evaluate_model, load_model
    model = load_model("runs/wheelchair_cpo")             # or "baselines:human_only"
    table, results = evaluate_model(model, ["standard", "safety"], episodes=200)
"""

from __future__ import annotations

from saferl.training.evaluation.api import evaluate_model, run_evaluate
from saferl.training.evaluation.compare import compare_tables, run_compare
from saferl.training.evaluation.errors import EvaluationError
from saferl.training.evaluation.models import (
    Model,
    load_baseline,
    load_model,
    load_run_model,
)
from saferl.training.evaluation.policies import (
    ActorPolicy,
    EvalPolicy,
    FunctionPolicy,
    ScriptedAdapter,
)
from saferl.training.evaluation.protocols import (
    PROTOCOLS,
    UnknownProtocolError,
    human_factors,
    run_episodes,
    safety,
    standard,
    stochastic,
)
from saferl.training.evaluation.table import EpisodeTable

__all__ = [
    "PROTOCOLS",
    "ActorPolicy",
    "EpisodeTable",
    "EvalPolicy",
    "EvaluationError",
    "FunctionPolicy",
    "Model",
    "ScriptedAdapter",
    "UnknownProtocolError",
    "compare_tables",
    "evaluate_model",
    "human_factors",
    "load_baseline",
    "load_model",
    "load_run_model",
    "run_compare",
    "run_episodes",
    "run_evaluate",
    "safety",
    "standard",
    "stochastic",
]
