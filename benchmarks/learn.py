"""Learning curves, final policies and end-to-end throughput of saferl's trainer.

    python benchmarks/learn.py --seeds 0 1 2 --eval-seed 20000 \\
        --baseline-episodes 2048 --final-episodes 2048
    python benchmarks/learn.py --config configs/wheelchair_ppo_lagrangian.yaml --seeds 0 1 2 \\
        --set algo.kl_early_stop=0.02
    python benchmarks/learn.py --config configs/exo_cpo.yaml --steps 1e6 --seeds 0 1
    python benchmarks/learn.py --seeds 0 1 2 --resume                # continue interrupted seeds
    python benchmarks/learn.py --baselines-only --set env.impairment=severe
    python benchmarks/learn.py --throughput --config benchmarks/configs/field_defaults.yaml \\
        --set env.num_envs=1024 --epochs 6

Each seed is one run of :class:`saferl.training.trainer.Trainer`, the loop ``saferl train``
runs: the same config (``--config PATH``, default the packaged default of ``saferl train``;
``--set section.field=value`` on top, repeatable, e.g. ``--set algo.target_kl=0.02`` or
``--set env.options.action_mode=blend``), the same setup, seeding and checkpoints. Seed ``S``
is the run directory ``OUT/seedS`` (``train.runs_dir=OUT``, ``train.name=seedS``,
``train.seed=S``), so ``saferl evaluate OUT/seedS`` works on it, and ``--resume`` continues a
seed that was interrupted exactly where its last checkpoint left it.

Flags that are config fields, each the same as the ``--set`` beside it (``--set`` is applied
after them, so it has the last word): ``--steps N`` is ``train.total_steps=N``;
``--eval-seed S`` is ``eval.seed=S`` (the env seed of the first evaluation episode, for the
final policies and the baselines alike; ``best.pt`` is judged on other episodes).
``train.seed``, ``train.name`` and ``train.runs_dir`` come from ``--seeds`` and ``--out``.

Writes under ``--out`` (default ``benchmarks/out/<env.id>_<algo.name>/``, git-ignored):

* ``seed<S>/``: the seed's run directory (``config.yaml``, ``metrics.csv``, checkpoints, ...);
* ``seed<S>_final_eval.json``: the policy of the seed's ``--checkpoint`` (default ``last``: the
  final one) on ``--final-episodes`` complete episodes, one per env seed ``eval.seed``,
  ``eval.seed + 1``, ..., with the mean action and with sampled actions; per-episode returns and
  costs included;
* ``baselines.json``: the env's scripted baselines on the same episodes (those defined for the
  config's env options), per-episode returns and costs included;
* ``curves.csv``: every seed's ``metrics.csv`` rows with a ``seed`` column (CPO's rows hold its
  case, lambda, nu, kl, ...); ``curves.png``: return and cost against env steps, per seed and
  their mean, with the limit and the best scripted baseline within it; ``cases.png`` (CPO):
  the optimisation cases overall and per tenth of training;
* ``summary.json``: per seed and pooled, the last-10-epoch mean cost and return of training,
  whether that cost is within +-20 % / at most 10 % over the limit, CPO's case counts (all
  epochs and once the cost first came within 20 % of the limit), steps/s, the final evaluation;
  the baselines' means; and ``targets``: the learning targets checked on the final evaluation
  (sampled actions), with each seed's per-episode return paired against the best baseline within
  the limit on the same episodes: the mean difference and its 95 % interval from
  :func:`saferl.training.evaluation.stats.bootstrap_ci` (seeded BCa bootstrap).

About 1024 evaluation episodes give a standard error of about 0.7 in the mean episode cost on
the wheelchair; different seed sets differ by more than that at 512 (the wheelchair's seeds
10000-12047 happen to be easier than 20000-22047: docs/experiments/2026-11-wheelchair-cpo-tuning.md,
Step 7). The training curves' episode statistics are those of the episodes that finished in each
batch; early in a run only the short ones finish (all instances start together), so the first
points read low.

``--evaluate-only`` evaluates the checkpoints of the seeds already in ``--out`` again (e.g. with
another ``--eval-seed`` or ``--final-episodes``) and rewrites the summary; ``--summarize-only``
rebuilds curves, plots and summary from the files in ``--out``.

Throughput (``--throughput``): env steps/s of the trainer's epochs (collect, update and the
trainer's own work: rollback snapshots, callbacks, ``best.pt`` checks) over ``--epochs`` epochs
after a warm-up epoch, in a temporary run directory; ``collect_update_steps_per_s`` leaves the
trainer's work out. Pin the cores with ``taskset -c 0,1`` to measure "2 cores"; timings on a
shared machine are noisy: report the machine and its load.

User errors (a bad ``--set``, an unknown env, a seed whose run directory already holds a run)
print one line on stderr and exit with status 2, before anything is trained.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import multiprocessing
import os
import sys
import tempfile
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

#: fields that ``--seeds`` and ``--out`` set for every seed's run
SEED_FIELDS = ("train.seed", "train.name", "train.runs_dir")


class UsageError(ValueError):
    """A user error found before anything runs (one line, exit status 2)."""


def configure_logging(level: str) -> None:
    """saferl's log records on stderr from ``level`` up (INFO: one line per epoch)."""
    import logging

    from saferl.log import setup_logging

    setup_logging(level)
    # A run's log.jsonl handler lowers the saferl logger to INFO; the console keeps its level.
    for handler in logging.getLogger("saferl").handlers:
        handler.setLevel(level)


# --------------------------------------------------------------------------------------------
# Configs: one per seed, built as saferl train builds them
# --------------------------------------------------------------------------------------------


def field_flags(args: argparse.Namespace) -> list[str]:
    """The flags that are config fields, as ``--set`` items (applied before ``--set``)."""
    items = []
    if args.steps is not None:
        items.append(f"train.total_steps={int(args.steps)}")
    if args.eval_seed is not None:
        items.append(f"eval.seed={args.eval_seed}")
    return items


def _check_sets(items: list[str]) -> None:
    from saferl.config import parse_override

    for item in items:
        key = ".".join(parse_override(item)[0])
        if key in SEED_FIELDS:
            raise UsageError(f"--set {key}: set by --seeds and --out for each seed's run")


def seed_run_dir(out: Path, seed: int) -> Path:
    return out / f"seed{seed}"


def resolve(args: argparse.Namespace) -> dict[str, Any]:
    """Everything the command will do, validated before anything runs.

    Returns a plan: ``out``, ``configs`` (seed -> Config), ``resume`` (seeds continued from their
    run directory), ``config`` (the first seed's, for baselines and the limit) and ``limit``.

    Raises:
        ConfigError / UsageError: one-line messages.
    """
    from saferl.config import load_config

    overrides = [*field_flags(args), *args.set]
    _check_sets(args.set)
    if len(set(args.seeds)) != len(args.seeds):
        raise UsageError(f"--seeds {' '.join(map(str, args.seeds))}: a seed is given twice")
    reads_runs = args.evaluate_only or args.summarize_only
    if reads_runs and (args.config or args.set or args.steps is not None or args.resume):
        mode = "--evaluate-only" if args.evaluate_only else "--summarize-only"
        raise UsageError(
            f"{mode} reads the runs in --out as they were trained; --config, --set, --steps "
            "and --resume do not apply"
        )
    if reads_runs and args.out is None:
        raise UsageError("--evaluate-only and --summarize-only need --out")
    base = load_config(args.config, overrides)
    if args.out is not None:
        out = Path(args.out)
    else:
        from saferl.training.setup import resolve_env_id

        out = Path(f"benchmarks/out/{resolve_env_id(base.env.id)}_{base.algo.name}")
    configs, resume = {}, []
    for seed in args.seeds:
        run_dir = seed_run_dir(out, seed)
        exists = (run_dir / "manifest.json").exists()
        if reads_runs:
            if not (run_dir / "config.yaml").is_file():
                raise UsageError(f"seed {seed}: {run_dir} holds no run")
            configs[seed] = load_config(run_dir / "config.yaml", field_flags(args))
        elif exists and args.resume:
            configs[seed] = load_config(run_dir / "config.yaml", overrides)
            resume.append(seed)
        elif exists:
            raise UsageError(
                f"{run_dir} already holds a run; continue it with --resume, or choose another --out"
            )
        else:
            seed_items = [
                f"train.seed={seed}",
                f"train.name={run_dir.name}",
                f"train.runs_dir={out}",
            ]
            configs[seed] = load_config(args.config, [*overrides, *seed_items])
    from saferl.training import setup  # imports torch: after the quick checks

    config = configs[args.seeds[0]]
    spec = setup.env_spec(config)
    env = spec.make(1)
    try:
        limit = setup.cost_limits(config, env).combined
    finally:
        env.close()
    return {"out": out, "configs": configs, "resume": resume, "config": config, "limit": limit}


# --------------------------------------------------------------------------------------------
# One seed: train through the Trainer, evaluate its checkpoint
# --------------------------------------------------------------------------------------------


def run_seed(job: dict[str, Any]) -> dict[str, Any]:
    """Train one seed (unless ``job["train"]`` is False) and evaluate its checkpoint.

    Runs in a worker process with ``--jobs`` > 1, so it takes and returns plain data.
    """
    from saferl.config import config_from_dict
    from saferl.training.trainer import Trainer

    configure_logging(job["log_level"])
    seed, run_dir = job["seed"], Path(job["run_dir"])
    result: dict[str, Any] = {"seed": seed}
    if job["train"]:
        if job["resume"]:
            trainer = Trainer.resume(run_dir, job["overrides"], command=job["command"])
        else:
            config = config_from_dict(job["config"])
            trainer = Trainer(config, command=job["command"], run_dir=run_dir)
        result["exit_code"] = trainer.train()
        result["stop_reason"] = trainer.stop_reason
        if trainer.stop_reason and trainer.stop_reason.startswith("stopped by SIG"):
            result["interrupted"] = True
            return result  # the user stopped it: no evaluation of a half-trained policy
    path = Path(job["out"]) / f"seed{seed}_final_eval.json"
    path.unlink(missing_ok=True)  # an earlier evaluation of another checkpoint
    if job["episodes"]:
        final = evaluate_run(run_dir, job["checkpoint"], job["episodes"], job["eval_seed"])
        path.write_text(json.dumps(final, indent=1))
    return result


def evaluate_run(
    run_dir: Path, checkpoint: str, episodes: int, eval_seed: int | None
) -> dict[str, Any]:
    """The run's checkpoint on ``episodes`` complete episodes from env seed ``eval.seed``
    (``eval_seed`` overriding the run's), with the mean action and with sampled actions."""
    from saferl.training.evaluation import load_run_model

    overrides = [] if eval_seed is None else [f"eval.seed={eval_seed}"]
    model = load_run_model(run_dir, checkpoint=checkpoint, overrides=overrides)
    out: dict[str, Any] = {"checkpoint": str(model.checkpoint), **model.meta}
    for mode in ("deterministic", "sampled"):
        out[mode] = evaluate_policy(model, episodes, deterministic=mode == "deterministic")
    return out


def evaluate_policy(model: Any, episodes: int, *, deterministic: bool) -> dict[str, Any]:
    """Mean return, cost and length of ``model`` (a :class:`~saferl.training.evaluation.Model`)
    on one complete episode per env seed ``eval.seed``, ``eval.seed + 1``, ... with saferl's
    ``run_episodes``; per-episode ``returns`` and ``costs`` in seed order, for paired
    comparisons."""
    import numpy as np

    from saferl.training.evaluation import run_episodes

    ec = model.config.eval
    table = run_episodes(
        model.policy,
        model.env_factory,
        range(ec.seed, ec.seed + episodes),
        num_envs=min(episodes, ec.num_envs),
        env_options=model.env_options,
        deterministic=deterministic,
        limit=model.limit,
    )
    return {
        "episodes": len(table),
        "first_seed": ec.seed,
        "ep_return": float(np.mean(table["return"])),
        "ep_cost": float(np.mean(table["cost"])),
        "ep_length": float(np.mean(table["length"])),
        "returns": [float(x) for x in table["return"]],
        "costs": [float(x) for x in table["cost"]],
    }


def evaluate_baselines(config: Any, episodes: int) -> dict[str, Any]:
    """The env's scripted baselines (those defined for the config's env options) on the final
    policies' evaluation episodes, each in the env the config describes.

    One complete episode per env seed: counting the first episodes to *finish* in a batch
    started together would keep the short ones (quick successes) and drop the long ones."""
    from saferl.training import setup
    from saferl.training.evaluation import load_baseline
    from saferl.training.evaluation.models import scripted_policies

    spec = setup.env_spec(config)
    return {
        name: evaluate_policy(load_baseline(name, config=config), episodes, deterministic=True)
        for name in sorted(scripted_policies(spec.factory, spec.options))
    }


# --------------------------------------------------------------------------------------------
# Summary
# --------------------------------------------------------------------------------------------


def read_curves(out: Path, seeds: list[int]) -> list[dict[str, Any]]:
    """Every seed's metrics rows (its run's ``metrics.jsonl``, the rows of ``metrics.csv``) with
    a ``seed`` column; missing values (NaN in the CSV) as NaN."""
    from saferl.training.tracking import read_metrics

    rows = []
    for seed in seeds:
        for r in read_metrics(seed_run_dir(out, seed) / "metrics.jsonl"):
            rows.append({"seed": seed, **{k: math.nan if v is None else v for k, v in r.items()}})
    return rows


def write_csv(rows: list[dict[str, Any]], path: Path) -> None:
    import csv

    def cell(v: Any) -> Any:  # missing values are empty cells, as in metrics.csv
        return "" if v is None or (isinstance(v, float) and math.isnan(v)) else v

    keys = list(dict.fromkeys(k for r in rows for k in r))
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows({k: cell(v) for k, v in r.items()} for r in rows)


def _means(result: dict[str, Any]) -> dict[str, Any]:
    """An evaluation result without its per-episode lists."""
    return {k: v for k, v in result.items() if k not in ("returns", "costs")}


def _nanmean(values: Any) -> float:
    """Mean of the finite values (NaN, without a warning, when there are none)."""
    finite = [float(v) for v in values if math.isfinite(v)]
    return sum(finite) / len(finite) if finite else math.nan


def summarise(
    rows: list[dict[str, Any]], limit: float, final_evals: dict[str, Any]
) -> dict[str, Any]:
    """Per seed and pooled numbers of the training curves and the final evaluations."""
    import numpy as np

    per_seed = {}
    for s in sorted({r["seed"] for r in rows}):
        rs = [r for r in rows if r["seed"] == s]
        last = rs[-10:]
        cost = _nanmean([r["ep_cost"] for r in last])  # NaN: no episode finished in them
        ret = _nanmean([r["ep_return"] for r in last])
        info: dict[str, Any] = {
            "epochs": len(rs),
            "env_steps": rs[-1]["env_steps"],
            "last10_ep_cost": cost,
            "last10_ep_return": ret,
            "cost_over_limit": cost / limit if limit > 0 else math.nan,
            "within_20pct_of_limit": abs(cost - limit) <= 0.2 * limit,
            "at_most_10pct_over_limit": cost <= 1.1 * limit,
            "median_steps_per_s": float(np.median([r["fps"] for r in rs[1:] or rs])),
            "update_rollbacks": int(sum(r.get("update_failed", 0) for r in rs)),
        }
        cased = [r for r in rs if isinstance(r.get("case"), str)]
        if cased:
            info["cases_all"] = dict(Counter(r["case"] for r in cased))
            near = next(
                (i for i, r in enumerate(cased) if abs(r["ep_cost"] - limit) <= 0.2 * limit), None
            )
            if near is not None:
                info["cases_after_first_near_limit"] = dict(
                    Counter(r["case"] for r in cased[near:])
                )
                info["first_near_limit_epoch"] = cased[near]["epoch"]
            info["line_search_failures"] = sum(1 for r in cased if not r.get("accepted", True))
        ev = final_evals.get(str(s))
        if ev is not None:
            info["final_eval"] = {
                "checkpoint": ev["checkpoint"],
                "epoch": ev.get("epoch"),
                **{mode: _means(ev[mode]) for mode in ("deterministic", "sampled")},
            }
        per_seed[str(s)] = info
    pooled = {
        "last10_ep_cost_mean": float(np.mean([v["last10_ep_cost"] for v in per_seed.values()])),
        "last10_ep_return_mean": float(np.mean([v["last10_ep_return"] for v in per_seed.values()])),
    }
    if per_seed and all("final_eval" in v for v in per_seed.values()):
        for mode in ("deterministic", "sampled"):
            for key in ("ep_cost", "ep_return"):
                values = [v["final_eval"][mode][key] for v in per_seed.values()]
                pooled[f"final_{mode}_{key}_mean"] = float(np.mean(values))
    return {"cost_limit": limit, "per_seed": per_seed, "pooled": pooled}


def paired_difference(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any] | None:
    """Mean and 95 % interval of the per-episode return difference a - b
    (:func:`~saferl.training.evaluation.stats.bootstrap_ci` of the differences), when both were
    evaluated on the same episodes (same first env seed and count); else None."""
    import numpy as np

    from saferl.training.evaluation.stats import bootstrap_ci

    ra, rb = a.get("returns"), b.get("returns")
    if not ra or not rb or len(ra) != len(rb) or a.get("first_seed") != b.get("first_seed"):
        return None
    ci = bootstrap_ci(np.asarray(ra) - np.asarray(rb), confidence=0.95)
    return {
        "mean": ci.estimate,
        "ci95_low": ci.low,
        "ci95_high": ci.high,
        "n": ci.n,
        "method": ci.method,
    }


def best_feasible(baselines: dict[str, Any], limit: float) -> str | None:
    """The scripted baseline with the highest mean return among those within the limit."""
    feasible = {k: v for k, v in baselines.items() if v["ep_cost"] <= limit}
    return max(feasible, key=lambda k: feasible[k]["ep_return"]) if feasible else None


def targets(
    summary: dict[str, Any], baselines: dict[str, Any], limit: float, final_evals: dict[str, Any]
) -> dict[str, Any]:
    """The learning targets, on the final policies' evaluation episodes (sampled actions, as in
    training) when every seed has one, else on the last 10 training epochs; each seed's return
    paired against the best feasible baseline's on the same episodes."""
    pooled = summary["pooled"]
    if "final_sampled_ep_cost_mean" in pooled:
        source = "final evaluation, sampled actions"
        cost, ret = pooled["final_sampled_ep_cost_mean"], pooled["final_sampled_ep_return_mean"]
    else:
        source = "last 10 training epochs"
        cost, ret = pooled["last10_ep_cost_mean"], pooled["last10_ep_return_mean"]
    best = best_feasible(baselines, limit)
    res: dict[str, Any] = {
        "measured_on": source,
        "ep_cost": cost,
        "ep_return": ret,
        "cost_at_most_10pct_over_limit": cost <= 1.1 * limit,
        "best_feasible_baseline": best,
    }
    if best is None:
        return res
    res["best_feasible_baseline_return"] = baselines[best]["ep_return"]
    res["return_above_best_feasible_baseline"] = ret > baselines[best]["ep_return"]
    paired = {
        seed: diff
        for seed, ev in sorted(final_evals.items())
        if seed in summary["per_seed"]
        and (diff := paired_difference(ev["sampled"], baselines[best]))
    }
    if paired:
        res["sampled_return_minus_best_baseline_per_seed"] = paired
        res["every_seed_significantly_above_best_baseline"] = all(
            d["ci95_low"] > 0 for d in paired.values()
        )
    return res


def plot(
    rows: list[dict[str, Any]], limit: float, baselines: dict[str, Any], out: Path, title: str
):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    seeds = sorted({r["seed"] for r in rows})
    best = best_feasible(baselines, limit)
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    for key, ax in zip(("ep_return", "ep_cost"), axes, strict=True):
        curves = []
        for s in seeds:
            rs = [r for r in rows if r["seed"] == s]
            x = np.array([r["env_steps"] for r in rs])
            y = np.array([r[key] for r in rs], float)
            ax.plot(x, y, lw=0.8, alpha=0.4)
            curves.append((x, y))
        n = min(len(c[0]) for c in curves)
        mean = [_nanmean(col) for col in np.stack([c[1][:n] for c in curves]).T]
        ax.plot(curves[0][0][:n], mean, color="k", lw=2, label=f"mean of {len(seeds)} seeds")
        if key == "ep_cost":
            ax.axhline(limit, color="r", ls="--", label=f"limit d={limit:g}")
            ax.axhspan(0.8 * limit, 1.2 * limit, color="r", alpha=0.08, label="±20 %")
            if any(r.get("cost_target", limit) != limit for r in rows):  # cost_target_gain
                t = np.array(
                    [
                        [r.get("cost_target", limit) for r in rows if r["seed"] == s][:n]
                        for s in seeds
                    ],
                    float,
                )
                ax.plot(
                    curves[0][0][:n],
                    [_nanmean(c) for c in t.T],
                    "r:",
                    lw=1.2,
                    label="CPO's target d - I",
                )
        if best is not None:
            ax.axhline(
                baselines[best][key], color="g", ls=":", label=f"best feasible baseline ({best})"
            )
        ax.set_xlabel("env steps")
        ax.set_ylabel(key)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out / "curves.png", dpi=120)
    plt.close(fig)

    cased = [r for r in rows if isinstance(r.get("case"), str)]
    if cased:
        from saferl.algos.math import CASES

        names = list(CASES)
        fig, axes = plt.subplots(1, 2, figsize=(12, 4))
        counts = Counter(r["case"] for r in cased)
        axes[0].bar(names, [counts.get(n, 0) for n in names])
        axes[0].set_title("CPO optimisation cases (all seeds, all epochs)")
        bins = np.linspace(0, max(r["epoch"] for r in cased), 11)
        bottom = np.zeros(10)
        for name in names:
            h, _ = np.histogram([r["epoch"] for r in cased if r["case"] == name], bins=bins)
            axes[1].bar(np.arange(10), h, bottom=bottom, label=name)
            bottom += h
        axes[1].set_xlabel("tenth of training")
        axes[1].set_title("cases over training")
        axes[1].legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(out / "cases.png", dpi=120)
        plt.close(fig)


def write_summary(
    plan: dict[str, Any], args: argparse.Namespace, baselines: dict[str, Any]
) -> dict:
    """curves.csv, curves.png, cases.png and summary.json from the files in ``--out``."""
    from saferl.config import config_to_dict

    out, limit, config = plan["out"], plan["limit"], plan["config"]
    rows = read_curves(out, args.seeds)
    if not rows:
        raise UsageError(f"no seed in {out} has finished an epoch yet")
    write_csv(rows, out / "curves.csv")
    final_evals = {}
    for seed in args.seeds:
        path = out / f"seed{seed}_final_eval.json"
        if path.exists():
            final_evals[str(seed)] = json.loads(path.read_text())
    summary = summarise(rows, limit, final_evals)
    for seed, info in summary["per_seed"].items():  # finished, stopped (why) or failed
        manifest = json.loads((seed_run_dir(out, int(seed)) / "manifest.json").read_text())
        info["run"] = {k: manifest.get(k) for k in ("status", "stop_reason")}
    summary["targets"] = targets(summary, baselines, limit, final_evals)
    summary.update(
        {
            "command": " ".join([sys.executable, *sys.argv]),
            "env": config.env.id,
            "algo": config.algo.name,
            "run_dirs": {str(s): str(seed_run_dir(out, s)) for s in args.seeds},
            "config": config_to_dict(config),  # the first seed's (the others differ in train.*)
            "eval_seed": config.eval.seed,
            "baselines": {k: _means(v) for k, v in baselines.items()},
        }
    )
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    plot(
        rows,
        limit,
        baselines,
        out,
        f"{config.algo.name} on {config.env.id} ({len(args.seeds)} seeds)",
    )
    return summary


# --------------------------------------------------------------------------------------------
# Throughput
# --------------------------------------------------------------------------------------------


def throughput(args: argparse.Namespace) -> dict[str, Any]:
    """Env steps/s of ``--epochs`` trainer epochs after one warm-up epoch (a temporary run)."""
    from saferl.config import load_config
    from saferl.training.tracking import read_metrics
    from saferl.training.trainer import Trainer

    if args.steps is not None or args.resume or args.evaluate_only or args.summarize_only:
        raise UsageError(
            "--throughput times --epochs epochs of a temporary run; --steps, --resume, "
            "--evaluate-only and --summarize-only do not apply"
        )
    if args.epochs < 1:
        raise UsageError(f"--epochs must be >= 1, got {args.epochs}")
    _check_sets(args.set)
    per_epoch = load_config(args.config, args.set).train.steps_per_epoch
    with tempfile.TemporaryDirectory() as tmp:
        config = load_config(
            args.config,
            [
                *args.set,
                f"train.total_steps={(args.epochs + 1) * per_epoch}",
                f"train.seed={args.seeds[0]}",
                f"train.runs_dir={tmp}",
                "train.name=throughput",
            ],
        )
        trainer = Trainer(config, command=[sys.executable, *sys.argv])
        with contextlib.redirect_stdout(io.StringIO()):  # its summary names the temporary run
            trainer.train()
        rows = read_metrics(trainer.run_dir / "metrics.jsonl")
    warm_up, timed = rows[0], rows[1:]
    steps = timed[-1]["env_steps"] - warm_up["env_steps"]

    def total(key: str) -> float:
        return sum(r.get(key) or 0.0 for r in timed)

    collect, update, trainer_s = total("time/collect"), total("time/update"), total("time/overhead")
    return {
        "env": config.env.id,
        "algo": config.algo.name,
        "num_envs": config.env.num_envs,
        "steps_per_epoch": per_epoch,
        "timed_epochs": len(timed),
        "torch_threads": config.train.torch_threads,
        "overrides": list(args.set),
        "steps_per_s": steps / (collect + update + trainer_s),
        "collect_update_steps_per_s": steps / (collect + update),
        "collect_s_per_epoch": collect / len(timed),
        "update_s_per_epoch": update / len(timed),
        "trainer_s_per_epoch": trainer_s / len(timed),
        "actor_s_per_epoch": total("time_actor") / len(timed),
        "critic_s_per_epoch": total("time_critic") / len(timed),
        "cpu_affinity": sorted(os.sched_getaffinity(0))
        if hasattr(os, "sched_getaffinity")
        else None,
        "loadavg": os.getloadavg(),
    }


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="learn.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--config",
        default=None,
        help="config file (default: the packaged default, as saferl train)",
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config field, e.g. --set algo.target_kl=0.02 (repeatable)",
    )
    p.add_argument("--seeds", type=int, nargs="+", default=[0], help="train.seed of each run")
    p.add_argument("--steps", type=float, default=None, help="train.total_steps (e.g. 2e6)")
    p.add_argument("--out", default=None, help="parent of the seeds' run directories")
    p.add_argument(
        "--eval-seed",
        type=int,
        default=None,
        help="eval.seed: env seed of the first evaluation episode",
    )
    p.add_argument(
        "--final-episodes", type=int, default=1024, help="evaluation episodes per seed (0: none)"
    )
    p.add_argument(
        "--baseline-episodes", type=int, default=1024, help="evaluation episodes per baseline"
    )
    p.add_argument(
        "--checkpoint",
        choices=["last", "best"],
        default="last",
        help="the policy evaluated per seed",
    )
    p.add_argument("--jobs", type=int, default=1, help="seeds trained in parallel processes")
    p.add_argument("--resume", action="store_true", help="continue the seeds whose run exists")
    p.add_argument("--evaluate-only", action="store_true")
    p.add_argument("--summarize-only", action="store_true")
    p.add_argument("--no-baselines", action="store_true")
    p.add_argument("--baselines-only", action="store_true")
    p.add_argument("--throughput", action="store_true")
    p.add_argument("--epochs", type=int, default=5, help="timed epochs of --throughput")
    p.add_argument("--quiet", action="store_true", help="log warnings only")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    from saferl.config import ConfigError

    log_level = "WARNING" if args.quiet else "INFO"
    configure_logging(log_level)
    try:
        if args.eval_seed is not None and args.eval_seed < 0:
            raise UsageError(f"--eval-seed must be >= 0, got {args.eval_seed}")
        if args.throughput:
            res = throughput(args)
            print(json.dumps(res, indent=1))
            if args.out:
                Path(args.out).mkdir(parents=True, exist_ok=True)
                (Path(args.out) / "throughput.json").write_text(json.dumps(res, indent=1))
            return 0
        plan = resolve(args)
    except (ConfigError, UsageError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out = plan["out"]
    out.mkdir(parents=True, exist_ok=True)

    baselines: dict[str, Any] = {}
    if args.summarize_only or (args.no_baselines and (out / "baselines.json").exists()):
        if (out / "baselines.json").exists():
            baselines = json.loads((out / "baselines.json").read_text())
    elif not args.no_baselines:
        baselines = evaluate_baselines(plan["config"], args.baseline_episodes)
        (out / "baselines.json").write_text(json.dumps(baselines, indent=1))
        print("scripted baselines:", json.dumps({k: _means(v) for k, v in baselines.items()}))
    if args.baselines_only:
        return 0

    results: list[dict[str, Any]] = []
    if not args.summarize_only:
        from saferl.config import config_to_dict

        jobs = [
            {
                "seed": seed,
                "run_dir": str(seed_run_dir(out, seed)),
                "out": str(out),
                "train": not args.evaluate_only,
                "resume": seed in plan["resume"],
                "config": config_to_dict(plan["configs"][seed]),
                "overrides": [*field_flags(args), *args.set],
                "command": [sys.executable, *sys.argv],
                "checkpoint": args.checkpoint,
                "episodes": args.final_episodes,
                "eval_seed": args.eval_seed,
                "log_level": log_level,
            }
            for seed in args.seeds
        ]
        if args.jobs > 1:
            ctx = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(args.jobs, mp_context=ctx) as pool:
                results = list(pool.map(run_seed, jobs))
        else:
            for job in jobs:
                results.append(run_seed(job))
                if results[-1].get("interrupted"):
                    break
        if any(r.get("interrupted") for r in results):
            print(
                f"error: interrupted; continue with the same command and --resume (runs in {out})",
                file=sys.stderr,
            )
            return 130
    try:
        summary = write_summary(plan, args, baselines)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    shown = {k: summary[k] for k in ("per_seed", "pooled", "targets")}
    print(json.dumps(shown, indent=1))
    print(f"wrote {out / 'summary.json'}")
    # 1 when a seed's training failed (non-finite updates, an env error): its run says why
    return 1 if any(r.get("exit_code") for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
