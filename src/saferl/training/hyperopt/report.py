"""A study's files, rebuilt from its storage alone (``saferl tune --report`` runs only this).

Written to ``<runs_dir>/studies/<study>/``:

* ``trials.csv``: one row per trial (state, values, evaluation return/cost, feasibility, env
  steps and seconds used, pruning step and reason, retries, parameters);
* ``best.yaml`` (composite) or ``pareto/trial_NNNN.yaml`` (multi, one per feasible Pareto
  trial): the trial's exact config, runnable by ``saferl train --config``;
* ``pareto_front.html`` / ``pareto_front.png``: evaluation return against cost, trials within
  the limit and the feasible front marked (multi also ``pareto_front_3d.html`` with compute);
* ``importances.csv`` / ``importances.html``, ``history.html`` (and ``intermediate.html`` for
  composite studies, the pruner's view);
* ``summary.md``: counts, compute used and saved by pruning, the best trial(s), importances.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from saferl.config import Config, dump_config, load_config
from saferl.utils import atomic_write_text

logger = logging.getLogger(__name__)

__all__ = ["trial_config", "write_report"]

_STATE_ORDER = ("COMPLETE", "PRUNED", "FAIL", "RUNNING", "WAITING")


def _feasible(t: Any) -> bool:
    return bool(t.constraints) and all(v <= 0 for v in t.constraints.values())


def trial_config(base: Config, trial: Any) -> Config:
    """The config a trial trained with, as ``saferl train --config`` should run it: the base
    config plus the trial's overrides, the run named automatically in the base's runs_dir."""
    cfg = load_config(None, list(trial.user_attrs.get("overrides", [])), base=base)
    cfg.train.name = None
    return cfg


def _write_trial_yaml(path: Path, cfg: Config, trial: Any, study_name: str) -> Path:
    a = trial.user_attrs
    head = (
        f"# Trial {trial.number} of study '{study_name}': evaluation return "
        f"{a.get('eval_return', math.nan):.6g}, cost {a.get('eval_cost', math.nan):.6g} "
        f"(limit {a.get('cost_limit', math.nan):.6g}).\n"
        f"# The trial ran in {a.get('run_dir')}; `saferl train --config {path.name}` trains the "
        "same run again (same seed: the same metrics and weights).\n"
    )
    atomic_write_text(path, head + dump_config(cfg))
    return path


def _fmt(x: Any, digits: int = 4) -> str:
    if x is None:
        return ""
    if isinstance(x, float):
        return "nan" if math.isnan(x) else f"{x:.{digits}g}"
    return str(x)


def _csv(trials: Sequence[Any], names: Sequence[str]) -> str:
    params = sorted({k for t in trials for k in t.params})
    cols = [
        "number",
        "state",
        *[f"value_{n.replace(' ', '_')}" for n in names],
        "feasible",
        "eval_return",
        "eval_cost",
        "cost_limit",
        "env_steps",
        "train_seconds",
        "pruned_at",
        "pruned_reason",
        "retry_of",
        "warm_start_from",
        "fail_reason",
        "run_dir",
        "datetime_start",
        "datetime_complete",
        *[f"param_{p}" for p in params],
    ]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(cols)
    for t in trials:
        a = t.user_attrs
        values = list(t.values) if t.values is not None else [None] * len(names)
        w.writerow(
            [
                t.number,
                t.state.name,
                *values,
                int(_feasible(t)) if t.constraints else "",
                a.get("eval_return", ""),
                a.get("eval_cost", ""),
                a.get("cost_limit", ""),
                a.get("env_steps", ""),
                a.get("train_seconds", ""),
                a.get("pruned_at", ""),
                a.get("pruned_reason", ""),
                a.get("retry_of", ""),
                a.get("warm_start_from", ""),
                a.get("fail_reason", ""),
                a.get("run_dir", ""),
                t.datetime_start.isoformat() if t.datetime_start else "",
                t.datetime_complete.isoformat() if t.datetime_complete else "",
                *[t.params.get(p, "") for p in params],
            ]
        )
    return buf.getvalue()


def _return_cost_study(optuna: Any, complete: Sequence[Any]) -> Any:
    """An in-memory two-objective copy (evaluation return up, cost down, constraints kept) for
    the return-cost Pareto plots of any study."""
    rc = optuna.create_study(directions=["maximize", "minimize"])
    for t in complete:
        a = t.user_attrs
        if "eval_return" not in a:
            continue
        rc.add_trial(
            optuna.trial.create_trial(
                values=[float(a["eval_return"]), float(a["eval_cost"])],
                params=t.params,
                distributions=t.distributions,
                user_attrs={"trial": t.number, "run_dir": a.get("run_dir")},
                system_attrs={k: v for k, v in t.system_attrs.items() if k.startswith("constr")},
            )
        )
    return rc


def _plots(
    optuna: Any, study: Any, complete: Sequence[Any], multi: bool, names: Sequence[str], out: Path
) -> tuple[list[str], list[str]]:
    """Write the HTML/PNG plots; returns (files written, notes on plots skipped)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    vis = optuna.visualization
    written, notes = [], []

    def attempt(name: str, fn: Any) -> None:
        try:
            fn()
            written.append(name)
        except Exception as exc:  # a plot that cannot be drawn yet is noted, not fatal
            notes.append(f"{name}: not drawn ({exc.__class__.__name__}: {exc})")

    rc = _return_cost_study(optuna, complete)
    if rc.trials:
        targets = ["evaluation return", "evaluation cost"]
        attempt(
            "pareto_front.html",
            lambda: vis.plot_pareto_front(rc, target_names=targets).write_html(
                out / "pareto_front.html", include_plotlyjs="cdn"
            ),
        )

        def png() -> None:
            ax = vis.matplotlib.plot_pareto_front(rc, target_names=targets)
            ax.figure.savefig(out / "pareto_front.png", dpi=120, bbox_inches="tight")
            plt.close(ax.figure)

        attempt("pareto_front.png", png)
    else:
        notes.append("pareto_front: no complete trial yet")
    if multi and complete:
        attempt(
            "pareto_front_3d.html",
            lambda: vis.plot_pareto_front(study, target_names=list(names)).write_html(
                out / "pareto_front_3d.html", include_plotlyjs="cdn"
            ),
        )
    kw: dict[str, Any] = {"target": lambda t: t.values[0], "target_name": names[0]} if multi else {}
    if complete:
        attempt(
            "history.html",
            lambda: vis.plot_optimization_history(study, **kw).write_html(
                out / "history.html", include_plotlyjs="cdn"
            ),
        )
    if len(complete) >= 2:
        attempt(
            "importances.html",
            lambda: vis.plot_param_importances(study, **kw).write_html(
                out / "importances.html", include_plotlyjs="cdn"
            ),
        )
    if not multi and study.trials:
        attempt(
            "intermediate.html",
            lambda: vis.plot_intermediate_values(study).write_html(
                out / "intermediate.html", include_plotlyjs="cdn"
            ),
        )
    return written, notes


def _importance_target(multi: bool) -> dict[str, Any]:
    """Importances of a multi-objective study are those for the return; Optuna's default
    evaluator (PED-ANOVA) treats low targets as good, hence the sign."""
    if not multi:
        return {}
    return {"target": lambda t: -t.values[0], "target_name": "-return"}


def _importances(optuna: Any, study: Any, multi: bool) -> tuple[dict[str, float], str | None]:
    kw = _importance_target(multi)
    kw.pop("target_name", None)
    try:
        return dict(optuna.importance.get_param_importances(study, **kw)), None
    except Exception as exc:
        return {}, f"{exc.__class__.__name__}: {exc}"


def write_report(
    *, study_name: str, url: str, out_dir: Path, plots: bool = True
) -> dict[str, Path]:
    """Rebuild a study's files from its storage; returns name -> path of what was written."""
    from saferl.training.hyperopt.study import import_optuna

    optuna = import_optuna()
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # "no feasible trial yet" is in the summary
    try:
        with warnings.catch_warnings():
            # PED-ANOVA warns about the direction of any explicit target (ours is negated)
            warnings.filterwarnings("ignore", message="PedAnovaImportanceEvaluator")
            return _write_report(optuna, study_name, url, out_dir, plots)
    finally:
        optuna.logging.set_verbosity(verbosity)


def _write_report(
    optuna: Any, study_name: str, url: str, out_dir: Path, plots: bool
) -> dict[str, Path]:
    from saferl.training.hyperopt.study import open_storage, redact, space_from_record

    state = optuna.trial.TrialState
    study = optuna.load_study(study_name=study_name, storage=open_storage(url))
    base, _space = space_from_record(study)
    attrs = study.user_attrs
    settings = attrs.get("saferl_settings", {})
    names = list(attrs.get("saferl_objectives", ["composite"]))
    multi = len(study.directions) > 1
    out_dir.mkdir(parents=True, exist_ok=True)
    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == state.COMPLETE]
    pruned = [t for t in trials if t.state == state.PRUNED]
    paths: dict[str, Path] = {}
    paths["trials"] = atomic_write_text(out_dir / "trials.csv", _csv(trials, names))

    # -- best configs --------------------------------------------------------------------------
    best_rows: list[list[str]] = []
    if multi:
        front = sorted(study.best_trials, key=lambda t: t.number) if complete else []
        pdir = out_dir / "pareto"
        for old in pdir.glob("trial_*.yaml") if pdir.is_dir() else []:
            old.unlink()
        for t in front:
            p = _write_trial_yaml(
                pdir / f"trial_{t.number:04d}.yaml", trial_config(base, t), t, study_name
            )
            best_rows.append([str(t.number), *(_fmt(v) for v in t.values), f"pareto/{p.name}"])
        best = None
    else:
        try:
            best = study.best_trial if complete else None
        except ValueError:  # no feasible trial
            best = None
        if best is not None and _feasible(best):
            paths["best"] = _write_trial_yaml(
                out_dir / "best.yaml", trial_config(base, best), best, study_name
            )
        elif (out_dir / "best.yaml").exists():
            (out_dir / "best.yaml").unlink()
    importances, imp_note = _importances(optuna, study, multi) if len(complete) >= 2 else ({}, None)
    if importances:
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["param", "importance"])
        w.writerows(importances.items())
        paths["importances"] = atomic_write_text(out_dir / "importances.csv", buf.getvalue())
    plot_files, plot_notes = (
        _plots(optuna, study, complete, multi, names, out_dir) if plots else ([], [])
    )

    # -- compute used and saved by pruning ------------------------------------------------------
    budget = int(settings.get("trial_steps", base.hyperopt.trial_steps))
    used = sum(int(t.user_attrs.get("env_steps", 0)) for t in complete + pruned)
    full = budget * (len(complete) + len(pruned))
    saved = sum(max(0, budget - int(t.user_attrs.get("env_steps", budget))) for t in pruned)
    counts = {s: sum(t.state.name == s for t in trials) for s in _STATE_ORDER}
    feasible = [t for t in complete if _feasible(t)]

    lines = [
        f"# Study `{study_name}`",
        "",
        f"- storage: `{redact(url)}`",
        f"- objective: {settings.get('objective', '?')} ({', '.join(names)}); "
        f"{'maximise return, minimise cost and compute' if multi else 'maximise return - cost_penalty x (cost - limit)+'}; "
        "the cost limit is a constraint",
        f"- base config: env `{base.env.id}`, algorithm `{base.algo.name}`, seed {base.train.seed}, "
        f"{budget:,} env steps per trial, scored on {settings.get('eval_episodes', '?')} evaluation "
        f"episodes of the `{settings.get('eval_checkpoint', '?')}` checkpoint",
        f"- versions at creation: {attrs.get('versions', {})}; Optuna now {optuna.__version__}",
        "",
        "## Trials",
        "",
        "| " + " | ".join(s.lower() for s in _STATE_ORDER) + " | feasible |",
        "|" + "---|" * (len(_STATE_ORDER) + 1),
        "| " + " | ".join(str(counts[s]) for s in _STATE_ORDER) + f" | {len(feasible)} |",
        "",
        f"Env steps used by finished trials: {used:,} of {full:,} had none been pruned; pruning "
        f"saved {saved:,} ({(100.0 * saved / full) if full else 0.0:.1f} %).",
        "",
    ]
    if multi:
        lines += [
            "## Feasible Pareto front",
            "",
            "| trial | " + " | ".join(names) + " | config |",
            "|" + "---|" * (len(names) + 2),
            *("| " + " | ".join(r) + " |" for r in best_rows),
        ]
        if not best_rows:
            lines.append("No feasible complete trial yet.")
    elif best is not None and _feasible(best):
        a = best.user_attrs
        lines += [
            "## Best feasible trial",
            "",
            f"Trial {best.number}: composite {_fmt(best.value)}, evaluation return "
            f"{_fmt(a.get('eval_return'))}, cost {_fmt(a.get('eval_cost'))} (limit "
            f"{_fmt(a.get('cost_limit'))}); config `best.yaml` "
            "(`saferl train --config best.yaml` reproduces it).",
            "",
            "| parameter | value |",
            "|---|---|",
            *(f"| `{k}` | {_fmt(v, 6)} |" for k, v in best.params.items()),
        ]
    else:
        lines += ["## Best feasible trial", "", "No feasible complete trial yet."]
    lines += ["", "## Parameter importances", ""]
    if importances:
        lines += [
            "| parameter | importance |",
            "|---|---|",
            *(f"| `{k}` | {v:.3f} |" for k, v in list(importances.items())[:15]),
        ]
    else:
        lines.append(imp_note or "Needs at least two complete trials.")
    lines += ["", "## Files", ""]
    files = ["trials.csv", *(["best.yaml"] if "best" in paths else [])]
    if multi and best_rows:
        files.append("pareto/")
    if importances:
        files.append("importances.csv")
    files += plot_files
    lines += [f"- [{f}]({f})" for f in files]
    lines += [f"- {n}" for n in plot_notes]
    lines += [
        "",
        f"Rebuild these files: `saferl tune --study {study_name} --storage {redact(url)} --report`; "
        f"browse the study live: `optuna-dashboard {redact(url)}`.",
        "",
    ]
    paths["summary"] = atomic_write_text(out_dir / "summary.md", "\n".join(lines))
    return paths
