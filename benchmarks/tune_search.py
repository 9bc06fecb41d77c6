"""Search strategies at equal budget on short wheelchair runs, and worker throughput.

    python benchmarks/tune_search.py [--trials 9] [--seeds 0 1] [--out runs/bench_tune]
    python benchmarks/tune_search.py --throughput [--trials 6]

Strategies (each a saferl study of ``--trials`` trials on the same base config and space):
TPE with the median pruner, random search without pruning, and a 3x3 grid (Optuna's
GridSampler) over the same ranges. Each trial trains CPO on WheelchairSC-v0 (assist mode,
the settings of configs/wheelchair_cpo.yaml, scaled down: 32 envs, 4,096-step batches,
``--trial-steps`` env steps) and is scored on 32 evaluation episodes. Printed and written to
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
GRID = {"algo.target_kl": [0.01, 0.03, 0.1], "algo.cost_target_gain": [0.0, 0.05, 0.1]}


def base_overrides(runs: Path, study: str, trial_steps: int, **hopt: object) -> list[str]:
    out = {
        "env.num_envs": 32,
        "algo.hidden_sizes": "[64, 64]",
        "train.steps_per_epoch": 4096,
        "train.best_eval_episodes": 0,
        "train.plot_every": 1000,
        "train.checkpoint_every": 1000,
        "train.runs_dir": str(runs),
        "eval.num_envs": 32,
        "hyperopt.study_name": study,
        "hyperopt.trial_steps": trial_steps,
        "hyperopt.eval_episodes": 32,
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


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trials", type=int, default=9)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--trial-steps", type=int, default=16384)
    p.add_argument("--out", default="runs/bench_tune")
    p.add_argument("--throughput", action="store_true")
    args = p.parse_args()
    setup_logging("WARNING")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    space = out / "space.yaml"
    space.write_text(yaml.safe_dump(SPACE))
    config = str(ROOT / "configs" / "wheelchair_cpo.yaml")
    results = []
    if args.throughput:
        for k in (1, 2):
            name = f"throughput_k{k}"
            t0 = time.perf_counter()
            ov = base_overrides(
                out,
                name,
                args.trial_steps,
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
            for strategy in ("tpe_median", "random", "grid"):
                if strategy == "grid" and seed != args.seeds[0]:
                    continue
                name = f"{strategy}_s{seed}"
                hopt = {"n_trials": args.trials, "seed": seed}
                sampler = None
                if strategy == "tpe_median":
                    hopt.update(sampler="tpe", pruner="median")
                elif strategy == "random":
                    hopt.update(sampler="random", pruner="none")
                else:
                    hopt.update(pruner="none")
                    sampler = optuna.samplers.GridSampler(GRID, seed=seed)
                t0 = time.perf_counter()
                run_tune(
                    config,
                    base_overrides(out, name, args.trial_steps, **hopt),
                    space_path=str(space),
                    sampler=sampler,
                    plots=False,
                )
                r = summarize(out, name, args.trial_steps, time.perf_counter() - t0)
                results.append(r)
                print(json.dumps(r), flush=True)
    path = out / ("throughput.json" if args.throughput else "results.json")
    path.write_text(json.dumps(results, indent=1))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
