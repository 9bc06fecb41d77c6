"""Evaluate a trained run and compare it with the environment's scripted baselines.

    python examples/evaluate_and_compare.py runs/my_run --episodes 200
    python examples/evaluate_and_compare.py runs/my_run --baselines human_only safety_filter

Writes runs/my_run/eval/ (results.json, episodes.csv, report.md, report.html) and a comparison
report beside the run.
"""

from __future__ import annotations

import argparse
import sys

import saferl


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir")
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--protocols", default="standard,safety,human_factors")
    parser.add_argument(
        "--baselines", nargs="*", default=["human_only"], help="scripted baselines to compare"
    )
    args = parser.parse_args(argv)
    protocols = args.protocols.split(",")
    try:
        saferl.run_evaluate(args.run_dir, protocols=protocols, episodes=args.episodes)
        models = [args.run_dir, *(f"baselines:{b}" for b in args.baselines)]
        return saferl.run_compare(models, protocols=["standard"], episodes=args.episodes)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
