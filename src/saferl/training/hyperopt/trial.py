"""One trial: a short training run through the Trainer, progress reports, evaluation, values.

A trial's config is the study's base config with ``train.total_steps = hyperopt.trial_steps`` and
the sampled values applied as ``--set`` overrides (the mechanism and validation of
``saferl train --set``); its run directory ``<runs_dir>/studies/<study>/trials/trial_NNNN`` is a
run directory like any other. Training progress (the epoch rows' return and cost) is reported at
``hyperopt.report_points`` evenly spaced env steps, so trials with different batch sizes are
compared at the same steps. The trial is scored on complete evaluation episodes of its
``hyperopt.eval_checkpoint`` with fixed env seeds (``eval.seed + TUNE_EVAL_SEED_OFFSET`` onwards).
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from saferl.config import Config, HyperoptConfig, load_config
from saferl.training.callbacks import Callback, group_status
from saferl.training.hyperopt.space import SearchSpace, format_value, overrides_for

logger = logging.getLogger(__name__)

__all__ = [
    "TUNE_EVAL_SEED_OFFSET",
    "PruneRule",
    "TrialOutcome",
    "TrialReporter",
    "composite_value",
    "evaluate_run",
    "report_grid",
    "trial_overrides",
]

TUNE_EVAL_SEED_OFFSET = 2_000_000
"""A trial's evaluation env seeds start at ``eval.seed`` plus this: apart from the episodes
``saferl evaluate`` reports on (``eval.seed``) and those that choose best.pt (+1,000,000)."""


class TrialInterrupted(Exception):
    """Training stopped by SIGINT/SIGTERM: the trial is not a result (it is re-enqueued)."""


class TrialFailed(Exception):
    """Training failed (env error, repeated non-finite updates, a config the trainer refused)."""


def composite_value(ret: float, cost: float, limit: float, penalty: float) -> float:
    """The composite objective: ``return - penalty * max(0, cost - limit)``."""
    return float(ret) - float(penalty) * max(0.0, float(cost) - float(limit))


def report_grid(trial_steps: int, points: int) -> list[int]:
    """The env steps at which progress is reported: ``points`` evenly spaced up to the budget."""
    grid = sorted({max(1, round(k * trial_steps / points)) for k in range(1, points + 1)})
    return grid


@dataclass
class PruneRule:
    """saferl's pruning rule (the one multi-objective studies use; Optuna's pruners cannot).

    At a report step past the warm-up, a trial is pruned when

    1. its training episode cost is above ``cost_factor`` times the limit, or
    2. at least ``min_trials`` finished trials reported a return at that step and this trial's
       return is below their ``quantile``.

    Attributes:
        warmup_steps: no pruning before this env step.
        cost_factor: rule 1's multiple of the limit.
        quantile: rule 2's quantile of finished trials' returns.
        min_trials: finished trials needed for rule 2.
        reference: step -> returns of finished (complete) trials at that step.
    """

    warmup_steps: int
    cost_factor: float
    quantile: float
    min_trials: int
    reference: dict[int, list[float]] = field(default_factory=dict)

    def decide(self, step: int, ret: float, cost: float, limit: float) -> str | None:
        """The reason to prune at ``step`` (None: continue)."""
        if step < self.warmup_steps:
            return None
        if math.isfinite(cost) and cost > self.cost_factor * limit:
            return f"cost {cost:.4g} > {self.cost_factor:g} x limit {limit:.4g}"
        others = [r for r in self.reference.get(step, []) if math.isfinite(r)]
        if math.isfinite(ret) and len(others) >= self.min_trials:
            q = float(np.quantile(others, self.quantile))
            if ret < q:
                return (
                    f"return {ret:.4g} < {self.quantile:g}-quantile {q:.4g} of "
                    f"{len(others)} finished trials"
                )
        return None

    @staticmethod
    def reference_from(trials: Sequence[Any]) -> dict[int, list[float]]:
        """step -> returns, from the ``curve`` user attribute of finished trials."""
        ref: dict[int, list[float]] = {}
        for t in trials:
            for step, (ret, _cost) in (t.user_attrs.get("curve") or {}).items():
                ref.setdefault(int(step), []).append(float(ret))
        return ref


class TrialReporter(Callback):
    """Trainer callback: reports progress at the grid steps and stops a trial to prune it.

    Optuna's pruner (single objective) sees the composite value of the training episodes; saferl's
    rule sees their return and cost. A pruned trial is stopped by returning False from
    ``on_epoch_end`` (the trainer writes its checkpoint and closes the run normally).
    """

    name = "hyperopt"

    def __init__(
        self,
        trial: Any,
        grid: Sequence[int],
        *,
        penalty: float,
        optuna_pruning: bool,
        rule: PruneRule | None,
    ) -> None:
        super().__init__()
        self.trial = trial
        self.grid = list(grid)
        self.penalty = penalty
        self.optuna_pruning = optuna_pruning
        self.rule = rule
        self.curve: dict[str, list[float]] = {}
        self.pruned_reason: str | None = None
        self.pruned_at: int | None = None
        self._next = 0
        self._ret = math.nan
        self._cost = math.nan
        self._limit = math.nan

    def on_epoch_end(self, metrics: dict[str, Any]) -> bool:
        steps = int(metrics.get("env_steps", 0))
        ret, cost = (
            float(metrics.get("ep_return", math.nan)),
            float(metrics.get("ep_cost", math.nan)),
        )
        limit = float(metrics.get("cost_limit", math.nan))
        groups = group_status(metrics)
        if groups is not None:  # several constraints: the group furthest above its own limit
            cost, limit = float(groups["cost"]), float(groups["limit"])
        if math.isfinite(ret) and math.isfinite(cost):  # an epoch without finished episodes keeps
            self._ret, self._cost, self._limit = ret, cost, limit  # the last values
        limit = self._limit
        keep_going = True
        while self._next < len(self.grid) and self.grid[self._next] <= steps:
            step = self.grid[self._next]
            self._next += 1
            if not math.isfinite(self._ret):
                continue
            self.curve[str(step)] = [self._ret, self._cost]
            reason = None
            if self.optuna_pruning:
                self.trial.report(composite_value(self._ret, self._cost, limit, self.penalty), step)
                if self.trial.should_prune():
                    reason = "Optuna's pruner"
            if reason is None and self.rule is not None:
                reason = self.rule.decide(step, self._ret, self._cost, limit)
            if reason is not None:
                self.pruned_reason, self.pruned_at = reason, step
                keep_going = False
                break
        return keep_going


def trial_overrides(values: Mapping[str, Any], hopt: HyperoptConfig) -> list[str]:
    """The ``--set`` overrides that turn the base config into a trial's config (what best.yaml
    holds): the trial budget, then the sampled values."""
    return [f"train.total_steps={hopt.trial_steps}", *overrides_for(values)]


def bookkeeping_overrides(base: Config, trials_dir: Path, number: int, study: str) -> list[str]:
    """Overrides that place a trial's run and tag it; they do not change what is trained."""
    tags = [*base.tracking.tags, f"study:{study}", f"trial:{number}"]
    return [
        f"train.runs_dir={trials_dir}",
        f"train.name=trial_{number:04d}",
        "train.progress=false",
        f"tracking.tags={format_value(tags)}",
    ]


def evaluate_run(run_dir: str | Path, hopt: HyperoptConfig) -> tuple[float, float, float]:
    """Mean return and cost of a run's ``hyperopt.eval_checkpoint`` on ``hyperopt.eval_episodes``
    complete episodes (env seeds from ``eval.seed + TUNE_EVAL_SEED_OFFSET``, the run's env
    options, the mean action if ``eval.deterministic``); returns (return, cost, limit).

    A run trained with several constraints (``env.constraint_groups``, ``env.constraints``) is
    judged by its worst group: the cost and limit returned are those of the group whose mean
    cost is furthest above (or least below) its own limit, so ``cost <= limit`` exactly when
    every group is within its limit (see :func:`evaluate_run_groups` for every group's)."""
    ret, cost, limit, _ = evaluate_run_groups(run_dir, hopt)
    return ret, cost, limit


def evaluate_run_groups(
    run_dir: str | Path, hopt: HyperoptConfig
) -> tuple[float, float, float, dict[str, dict[str, float]]]:
    """:func:`evaluate_run` plus each constraint group's ``{cost, limit}`` (empty with one
    constraint). A level with no evaluation episode is left out of the worst-group choice."""
    from saferl.training.evaluation import load_run_model, run_episodes

    model = load_run_model(run_dir, checkpoint=hopt.eval_checkpoint)
    cfg = model.config
    first = cfg.eval.seed + TUNE_EVAL_SEED_OFFSET
    n = hopt.eval_episodes
    table = run_episodes(
        model.policy,
        model.env_factory,
        range(first, first + n),
        num_envs=min(n, cfg.eval.num_envs),
        env_options=model.env_options,
        deterministic=cfg.eval.deterministic,
        limit=model.limit,
    )
    ret, cost, limit = (
        float(np.mean(table["return"])),
        float(np.mean(table["cost"])),
        float(model.limit),
    )
    groups: dict[str, dict[str, float]] = {}
    spec = model.constraints
    if spec:
        for g, lim in spec["limits"].items():
            if spec["kind"] == "levels":
                costs = table["cost"][np.asarray(table[f"{spec['key']}_level"]) == g]
            else:
                costs = table[f"cost_{g}"]
            if len(costs):
                groups[str(g)] = {"cost": float(np.mean(costs)), "limit": float(lim)}
        if groups:
            worst = max(groups, key=lambda g: groups[g]["cost"] - groups[g]["limit"])
            cost, limit = groups[worst]["cost"], groups[worst]["limit"]
    return ret, cost, limit, groups


@dataclass
class TrialOutcome:
    """What a finished trial produced.

    Attributes:
        values: the objective values told to Optuna (None when pruned).
        pruned: whether the trial was stopped by pruning.
        attrs: user attributes recorded on the trial.
    """

    values: list[float] | None
    pruned: bool
    attrs: dict[str, Any]


class Heartbeat:
    """A thread that records ``heartbeat`` (Unix time) on a running trial every ``interval`` s."""

    def __init__(self, trial: Any, interval: float) -> None:
        self.trial = trial
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="saferl-heartbeat", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.trial.set_user_attr("heartbeat", time.time())
            except Exception as exc:  # a storage hiccup must not kill the trial
                logger.debug("heartbeat failed: %s", exc)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def run_trial(
    trial: Any,
    *,
    base: Config,
    space: SearchSpace,
    study_name: str,
    trials_dir: Path,
    multi: bool,
    optuna_pruning: bool,
    rule: PruneRule | None,
) -> TrialOutcome:
    """Sample, train, evaluate; returns the outcome (Optuna's ``tell`` is the caller's).

    Raises:
        TrialInterrupted: training stopped by a signal.
        TrialFailed: training failed or the sampled config was refused.
    """
    from saferl.config import ConfigError
    from saferl.training.trainer import Trainer

    hopt = base.hyperopt
    values = space.sample(trial, base.algo.name)
    overrides = trial_overrides(values, hopt)
    trial.set_user_attr("overrides", overrides)
    try:
        cfg = load_config(None, overrides, base=base)
        cfg = load_config(
            None, bookkeeping_overrides(base, trials_dir, trial.number, study_name), base=cfg
        )
    except ConfigError as exc:
        raise TrialFailed(f"sampled config refused: {exc}") from None
    run_dir = trials_dir / f"trial_{trial.number:04d}"
    trial.set_user_attr("run_dir", str(run_dir))
    reporter = TrialReporter(
        trial,
        report_grid(hopt.trial_steps, hopt.report_points),
        penalty=hopt.cost_penalty,
        optuna_pruning=optuna_pruning,
        rule=rule,
    )
    t0 = time.perf_counter()
    try:
        trainer = Trainer(
            cfg,
            run_dir=run_dir,
            extra_callbacks=[reporter],
            command=["saferl", "tune", "--study", study_name, f"(trial {trial.number})"],
        )
    except ConfigError as exc:
        raise TrialFailed(f"trainer refused the config: {exc}") from None
    with contextlib.redirect_stdout(io.StringIO()) as summary:
        code = trainer.train()
    wall = time.perf_counter() - t0
    (run_dir / "train_summary.txt").write_text(summary.getvalue())
    stop = trainer.stop_reason or ""
    if stop.startswith("stopped by SIG"):
        raise TrialInterrupted(stop)
    if code != 0:
        raise TrialFailed(stop or f"training exited with code {code}")
    attrs: dict[str, Any] = {
        "env_steps": int(trainer.env_steps),
        "train_seconds": round(wall, 3),
        "curve": reporter.curve,
    }
    if reporter.pruned_reason is not None:
        attrs.update(pruned_at=reporter.pruned_at, pruned_reason=reporter.pruned_reason)
        return TrialOutcome(None, True, attrs)
    ret, cost, limit, groups = evaluate_run_groups(run_dir, hopt)
    attrs.update(eval_return=ret, eval_cost=cost, cost_limit=limit)
    if groups:  # eval_cost / cost_limit are the worst group's
        attrs["eval_groups"] = groups
    if multi:
        compute = wall if hopt.compute == "wall_time" else float(trainer.env_steps)
        vals = [ret, cost, compute]
    else:
        vals = [composite_value(ret, cost, limit, hopt.cost_penalty)]
    return TrialOutcome(vals, False, attrs)
