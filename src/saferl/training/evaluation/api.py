"""Entry points: :func:`evaluate_model` (library) and :func:`run_evaluate` (``saferl evaluate``).

``run_evaluate`` reads the run's ``config.yaml`` (plus ``--set`` overrides), loads the checkpoint,
runs the protocols on fresh env instances with the evaluation seeds of ``eval.seed``, and writes
``runs/<name>/eval/`` (see :mod:`saferl.training.evaluation.report`). User errors raise
:class:`~saferl.training.evaluation.errors.EvaluationError` (a ``ValueError``) with a one-line
message.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from saferl.config import EvalConfig
from saferl.training.evaluation.errors import EvaluationError
from saferl.training.evaluation.models import Model, load_run_model
from saferl.training.evaluation.protocols import PROTOCOLS, resolve_protocols
from saferl.training.evaluation.summary import StatsOptions, degradation, summarize
from saferl.training.evaluation.table import EpisodeTable

logger = logging.getLogger(__name__)

__all__ = ["evaluate_model", "run_evaluate", "settings_from"]


def settings_from(eval_cfg: EvalConfig, episodes: int | None = None) -> dict[str, Any]:
    """The evaluation settings (from ``EvalConfig``, ``episodes`` overriding) as a plain dict."""
    if episodes is not None and (isinstance(episodes, bool) or int(episodes) < 1):
        raise EvaluationError(f"--episodes must be >= 1, got {episodes}")
    n = int(episodes) if episodes is not None else int(eval_cfg.episodes)
    return {
        "episodes": n,
        "seed": int(eval_cfg.seed),
        "num_envs": int(min(eval_cfg.num_envs, n)),
        "deterministic": bool(eval_cfg.deterministic),
        "confidence": float(eval_cfg.confidence),
        "bootstrap_samples": int(eval_cfg.bootstrap_samples),
    }


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def run_protocols(
    model: Model, protocols: Sequence[str], settings: dict[str, Any]
) -> tuple[EpisodeTable, dict[str, float]]:
    """Run each protocol for one model; returns the concatenated table and seconds per protocol."""
    tables = []
    timing = {}
    for name in protocols:
        kwargs: dict[str, Any] = {
            "episodes": settings["episodes"],
            "seed": settings["seed"],
            "num_envs": settings["num_envs"],
            "env_options": model.env_options,
            "limit": model.limit,
        }
        if name in ("standard", "safety", "human_factors"):
            kwargs["deterministic"] = settings["deterministic"]
        t0 = time.perf_counter()
        try:
            tables.append(PROTOCOLS[name](model.policy, model.env_factory, **kwargs))
        except TypeError as exc:
            # An env without challenge/impairment options cannot run that protocol.
            if "unexpected keyword argument" in str(exc):
                raise EvaluationError(
                    f"protocol '{name}' needs an env option that {model.env_id} does not "
                    f"accept ({exc})"
                ) from None
            raise
        timing[name] = time.perf_counter() - t0
        logger.info(
            "%s: %s protocol, %d episodes in %.1f s",
            model.name,
            name,
            len(tables[-1]),
            timing[name],
        )
    return EpisodeTable.concat(tables), timing


def evaluate_model(
    model: Model,
    protocols: Sequence[str] | str | None = None,
    *,
    episodes: int | None = None,
    eval_config: EvalConfig | None = None,
) -> tuple[EpisodeTable, dict[str, Any]]:
    """Evaluate one model under the protocols; returns (per-episode table, results dict).

    Args:
        model: from :func:`~saferl.training.evaluation.models.load_model`.
        protocols: names (``"all"`` for every protocol); default ``eval.protocols`` of the config.
        episodes: episodes per condition; default ``eval.episodes``.
        eval_config: default the model's ``config.eval``.
    """
    ecfg = eval_config if eval_config is not None else model.config.eval
    names = resolve_protocols(protocols if protocols else list(ecfg.protocols))
    settings = settings_from(ecfg, episodes)
    table, timing = run_protocols(model, names, settings)
    opts = StatsOptions(
        confidence=settings["confidence"], n_resamples=settings["bootstrap_samples"], seed=0
    )
    summaries = summarize(table, opts)
    protocols_out: dict[str, Any] = {}
    for name in names:
        block: dict[str, Any] = {"conditions": summaries.get(name, {}), "seconds": timing[name]}
        if name == "human_factors":
            block["degradation"] = degradation(block["conditions"])
        protocols_out[name] = block
    from saferl import __version__

    results = {
        "saferl_version": __version__,
        "created": _now(),
        "model": model.describe(),
        "env": {"id": model.env_id, "options": dict(model.env_options), "limit": model.limit},
        "settings": {**settings, "protocols": names},
        "protocols": protocols_out,
    }
    return table, results


def run_evaluate(
    run_dir: str,
    *,
    checkpoint: str = "best",
    protocols: list[str] | None = None,
    episodes: int | None = None,
    report: bool = True,
    overrides: list[str] | None = None,
    track: bool = True,
) -> int:
    """What ``saferl evaluate RUN_DIR`` calls; returns the exit code (0).

    Args:
        run_dir: the run directory (``config.yaml`` + ``checkpoints/``).
        checkpoint: ``best`` (falls back to ``last``), ``last``, or a checkpoint file path.
        protocols: protocol names (comma lists and ``all`` accepted); empty/None: ``eval.protocols``.
        episodes: episodes per protocol condition; None: ``eval.episodes``.
        report: also write plots, ``report.md`` and ``report.html``.
        overrides: ``--set`` overrides applied to the run's config (``eval.*``, ``env.*``).
        track: also send the evaluation to the run's MLflow run, when it has one (see
            :func:`send_to_trackers`).

    Writes ``RUN_DIR/eval/{results.json, episodes.csv[, report.md, report.html, plots/]}`` and
    prints where.

    Raises:
        EvaluationError: (a ``ValueError``) unknown protocol, missing run dir/checkpoint, bad
            override, unknown env: one-line message.
    """
    # Validate the protocol names before loading anything.
    names = resolve_protocols(protocols) if protocols else None
    model = load_run_model(run_dir, checkpoint=checkpoint, overrides=list(overrides or []))
    table, results = evaluate_model(model, names, episodes=episodes)
    out_dir = Path(run_dir) / "eval"
    from saferl.training.evaluation.report import write_evaluation

    paths = write_evaluation(out_dir, results, table, report=report)
    _print_summary(results, paths)
    if track and model.run_dir is not None:
        send_to_trackers(model.run_dir, out_dir, results)
    return 0


def send_to_trackers(run_dir: str | Path, eval_dir: str | Path, results: dict[str, Any]) -> bool:
    """Send an evaluation's files and summary numbers to the MLflow run that tracked the run
    (``tracking.json``); nothing when it had none. A failure (mlflow missing, server down) is one
    warning: the evaluation's own files are already written. Returns whether it was sent."""
    from saferl.training.tracking.mlflow_backend import log_evaluation

    try:
        where = log_evaluation(run_dir, eval_dir, results)
    except Exception as exc:  # a tracker never fails an evaluation
        logger.warning(
            "evaluation not sent to MLflow (%s: %s); its files are in %s",
            exc.__class__.__name__,
            str(exc).splitlines()[0] if str(exc) else "",
            eval_dir,
        )
        return False
    if where:
        print(where)
    return bool(where)


def _print_summary(results: dict[str, Any], paths: dict[str, Path]) -> None:
    from saferl.training.evaluation.report import fmt, fmt_ci, print_constraints

    limit = results["env"]["limit"]
    print(f"evaluation of {results['model']['name']} (cost limit {fmt(limit)}):")
    for p, block in results["protocols"].items():
        for c, s in block["conditions"].items():
            print(
                f"  {p:<14} {c:<24} return {fmt_ci(s['return']):<28} cost {fmt_ci(s['cost']):<28}"
                f" violations {fmt(s['violation_rate']['estimate'])}"
            )
    print_constraints(results)
    for kind in ("results_json", "episodes_csv", "report_md", "report_html"):
        if kind in paths:
            print(f"wrote {paths[kind]}")
