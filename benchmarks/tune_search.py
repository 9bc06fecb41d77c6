"""Search strategies at equal budget on short wheelchair runs, and worker throughput.

    python benchmarks/tune_search.py [--trials 20] [--seeds 0 1 2] [--trial-steps N]
        [--num-envs 32] [--batch 4096] [--strategies tpe_median random grid] [--out DIR]
    python benchmarks/tune_search.py --throughput [--trials 6]

Strategies (each a saferl study of ``--trials`` trials on the same base config and space):
TPE with the median pruner (``tpe_median``; ``tpe`` without pruning), random search without
pruning, and a 4x5 grid (Optuna's GridSampler) over the same ranges. Each trial trains CPO on WheelchairSC-v0 (assist mode,
the settings of configs/wheelchair_cpo.yaml, scaled down: ``--num-envs`` envs, ``--batch``-step
batches, 64x64 networks, ``--trial-steps`` env steps) and is scored on ``--eval-episodes``
evaluation episodes. Printed and written to
``OUT/results.json``: per study the best feasible evaluation return after each trial, env steps
and seconds used, and the env steps pruning saved. ``--throughput`` runs the same TPE study with
one and with two worker processes and reports finished trials per minute.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import optuna
import yaml

from saferl.log import setup_logging
from saferl.training.hyperopt import run_tune
from saferl.training.hyperopt.study import open_storage
from saferl.training.hyperopt.trial import composite_value

ROOT = Path(__file__).resolve().parents[1]
SPACE = {
    "parameters": {
        "algo.target_kl": {"type": "float", "low": 0.01, "high": 0.1, "log": True},
        "algo.cost_target_gain": {"type": "float", "low": 0.0, "high": 0.1},
    }
}
GRID = {
    "algo.target_kl": [0.01, 0.02, 0.05, 0.1],
    "algo.cost_target_gain": [0.0, 0.025, 0.05, 0.075, 0.1],
}


def base_overrides(
    runs: Path, study: str, trial_steps: int, scale: argparse.Namespace, **hopt: object
) -> list[str]:
    out = {
        "env.num_envs": scale.num_envs,
        "algo.hidden_sizes": "[64, 64]",
        "train.steps_per_epoch": scale.batch,
        "train.best_eval_episodes": 0,
        "train.plot_every": 1000,
        "train.checkpoint_every": 1000,
        "train.runs_dir": str(runs),
        "eval.num_envs": 32,
        "hyperopt.study_name": study,
        "hyperopt.trial_steps": trial_steps,
        "hyperopt.eval_episodes": scale.eval_episodes,
        "hyperopt.prune_min_trials": 3,
        "hyperopt.report_points": 8,
    }
    out.update({f"hyperopt.{k}": v for k, v in hopt.items()})
    return [f"{k}={v}" for k, v in out.items()]


def summarize(runs: Path, study: str, trial_steps: int, seconds: float) -> dict:
    url = str(runs / "studies" / study / "journal.log")
    s = optuna.load_study(study_name=study, storage=open_storage(url))
    best, curve, steps = float("-inf"), [], 0
    best_c, curve_c, steps_curve = float("-inf"), [], []
    state = optuna.trial.TrialState
    for t in s.trials:
        a = t.user_attrs
        steps += int(a.get("env_steps", 0))
        steps_curve.append(steps)
        if t.state == state.COMPLETE:
            best_c = max(
                best_c, composite_value(a["eval_return"], a["eval_cost"], a["cost_limit"], 1.0)
            )
            if a["eval_cost"] <= a["cost_limit"]:
                best = max(best, float(a["eval_return"]))
        curve.append(None if best == float("-inf") else round(best, 4))
        curve_c.append(None if best_c == float("-inf") else round(best_c, 4))
    pruned = [t for t in s.trials if t.state == state.PRUNED]
    saved = sum(trial_steps - int(t.user_attrs["env_steps"]) for t in pruned)
    return {
        "study": study,
        "trials": len(s.trials),
        "complete": sum(t.state == state.COMPLETE for t in s.trials),
        "pruned": len(pruned),
        "feasible": sum(
            t.state == state.COMPLETE and t.user_attrs["eval_cost"] <= t.user_attrs["cost_limit"]
            for t in s.trials
        ),
        "best_feasible_return_after_each_trial": curve,
        "best_composite_after_each_trial": curve_c,
        "env_steps_after_each_trial": steps_curve,
        "env_steps": steps,
        "env_steps_saved_by_pruning": saved,
        "fraction_saved": saved / (trial_steps * len(s.trials)) if s.trials else 0.0,
        "seconds": round(seconds, 1),
    }


def table(results: list[dict], checkpoints: list[int]) -> str:
    """Per strategy, over study seeds: mean best feasible return after k trials, feasible
    trials, env steps and the share pruning saved."""
    by: dict[str, list[dict]] = {}
    for r in results:
        by.setdefault(r["study"].rsplit("_s", 1)[0], []).append(r)
    head = " / ".join(str(k) for k in checkpoints)
    lines = [
        f"| strategy | studies | best feasible return after {head} trials (mean; min-max) "
        f"| best composite after {head} trials (mean) | feasible trials | env steps "
        "| saved by pruning |",
        "|---|---|---|---|---|---|---|",
    ]

    def cell(rs: list[dict], key: str, k: int, spread: bool) -> str:
        vals = [r[key][k - 1] for r in rs if len(r[key]) >= k]
        got = [v for v in vals if v is not None]
        if not got:
            return "none"
        note = "" if len(got) == len(vals) else f" ({len(vals) - len(got)} none)"
        mean = f"{sum(got) / len(got):.2f}"
        return (f"{mean} ({min(got):.2f}-{max(got):.2f})" if spread else mean) + note

    for name, rs in by.items():
        cells = [cell(rs, "best_feasible_return_after_each_trial", k, True) for k in checkpoints]
        comp = [cell(rs, "best_composite_after_each_trial", k, False) for k in checkpoints]
        feas = sum(r["feasible"] for r in rs) / len(rs)
        steps = sum(r["env_steps"] for r in rs) / len(rs)
        saved = sum(r["fraction_saved"] for r in rs) / len(rs)
        lines.append(
            f"| {name} | {len(rs)} | {' / '.join(cells)} | {' / '.join(comp)} | {feas:.1f} "
            f"| {steps:,.0f} "
            f"| {100 * saved:.0f} % |"
        )
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trials", type=int, default=20)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--trial-steps", type=int, default=16384)
    p.add_argument("--num-envs", type=int, default=32)
    p.add_argument("--batch", type=int, default=4096, help="train.steps_per_epoch of a trial")
    p.add_argument("--eval-episodes", type=int, default=32)
    p.add_argument(
        "--strategies",
        nargs="+",
        default=["tpe_median", "random", "grid"],
        choices=["tpe_median", "tpe", "random", "grid"],
    )
    p.add_argument("--config", default=str(ROOT / "configs" / "wheelchair_cpo.yaml"))
    p.add_argument("--out", default="runs/bench_tune")
    p.add_argument("--throughput", action="store_true")
    p.add_argument(
        "--table", nargs="+", metavar="RESULTS_JSON", help="only print the table of these files"
    )
    args = p.parse_args()
    if args.table:
        rows = [r for f in args.table for r in json.loads(Path(f).read_text())]
        print(table(rows, sorted({k for k in (1, 5, 10, args.trials) if k <= args.trials})))
        return 0
    setup_logging("WARNING")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    space = out / "space.yaml"
    space.write_text(yaml.safe_dump(SPACE))
    config = args.config
    grid_size = len(GRID["algo.target_kl"]) * len(GRID["algo.cost_target_gain"])
    results = []
    if args.throughput:
        for k in (1, 2):
            name = f"throughput_k{k}"
            t0 = time.perf_counter()
            ov = base_overrides(
                out,
                name,
                args.trial_steps,
                args,
                n_trials=args.trials,
                n_workers=k,
                pruner="none",
                sampler="random",
                seed=0,
            )
            run_tune(config, ov, space_path=str(space), plots=False)
            dt = time.perf_counter() - t0
            r = summarize(out, name, args.trial_steps, dt)
            r["workers"] = k
            r["trials_per_minute"] = round(60 * r["trials"] / dt, 2)
            results.append(r)
            print(json.dumps(r), flush=True)
    else:
        for seed in args.seeds:
            for strategy in args.strategies:
                # With at least as many trials as grid points every seed runs the same grid.
                if strategy == "grid" and seed != args.seeds[0] and args.trials >= grid_size:
                    continue
                name = f"{strategy}_s{seed}"
                hopt = {"n_trials": args.trials, "seed": seed}
                sampler = None
                if strategy == "tpe_median":
                    hopt.update(sampler="tpe", pruner="median")
                elif strategy == "tpe":
                    hopt.update(sampler="tpe", pruner="none")
                elif strategy == "random":
                    hopt.update(sampler="random", pruner="none")
                else:
                    hopt.update(pruner="none")
                    sampler = optuna.samplers.GridSampler(GRID, seed=seed)
                t0 = time.perf_counter()
                run_tune(
                    config,
                    base_overrides(out, name, args.trial_steps, args, **hopt),
                    space_path=str(space),
                    sampler=sampler,
                    plots=False,
                )
                r = summarize(out, name, args.trial_steps, time.perf_counter() - t0)
                results.append(r)
                print(json.dumps(r), flush=True)
        marks = sorted({k for k in (1, 5, 10, args.trials) if k <= args.trials})
        print(table(results, marks))
    path = out / ("throughput.json" if args.throughput else "results.json")
    path.write_text(json.dumps(results, indent=1))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
