"""Constraint-aware hyperparameter search on saferl's environments through the public API.

    python examples/hyperparameter_optimization.py --env-type wheelchair --n-trials 100 \\
        --optimize-metric composite --generate-plots
    python examples/hyperparameter_optimization.py --env-type exoskeleton --n-trials 40 \\
        --optimize-metric multi --n-workers 2

The base config is configs/wheelchair_cpo.yaml or configs/exo_cpo.yaml; each trial trains it for
``--trial-steps`` env steps with the sampled values of the algorithm's default search space
(docs/tuning.md). The study (a journal file under runs/studies/NAME/) continues when the script
is run again; its files (trials.csv, best.yaml or pareto/*.yaml, summary.md, plots) are written
to the same folder. Every flag maps onto a ``hyperopt`` field; ``--set`` reaches any other one.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import saferl

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
BASE = {"wheelchair": "wheelchair_cpo.yaml", "exoskeleton": "exo_cpo.yaml"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env-type", choices=sorted(BASE), default="wheelchair")
    parser.add_argument("--n-trials", type=int, default=100)
    parser.add_argument("--optimize-metric", choices=["composite", "multi"], default="composite")
    parser.add_argument("--generate-plots", action="store_true", help="HTML/PNG plots too")
    parser.add_argument("--trial-steps", type=int, default=200_000, help="env steps per trial")
    parser.add_argument("--n-workers", type=int, default=1, help="local worker processes")
    parser.add_argument("--sampler", default="tpe")
    parser.add_argument("--study", help="study name (default: <env-type>_<metric>)")
    parser.add_argument("--storage", help="journal path, sqlite:///FILE or postgresql://...")
    parser.add_argument("--space", help="search-space YAML (default: the algorithm's)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args(argv)

    study = args.study or f"{args.env_type}_{args.optimize_metric}"
    overrides = [
        f"hyperopt.study_name={study}",
        f"hyperopt.n_trials={args.n_trials}",
        f"hyperopt.objective={args.optimize_metric}",
        f"hyperopt.trial_steps={args.trial_steps}",
        f"hyperopt.n_workers={args.n_workers}",
        f"hyperopt.sampler={args.sampler}",
        f"hyperopt.seed={args.seed}",
    ]
    if args.storage:
        overrides.append(f"hyperopt.storage={args.storage}")
    try:
        return saferl.run_tune(
            str(CONFIGS / BASE[args.env_type]),
            [*overrides, *args.set],
            space_path=args.space,
            plots=args.generate_plots,
        )
    except saferl.ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
