"""Train CPO (or PPO-Lagrangian) on one of saferl's environments through the public API.

    python examples/train_cpo_basic.py --env-type wheelchair --max-iterations 50
    python examples/train_cpo_basic.py --env-type exoskeleton --max-iterations 1000 \\
        --early-stopping --impairment severe
    python examples/train_cpo_basic.py --algo ppo_lagrangian --set algo.per_constraint=true
    python examples/train_cpo_basic.py --env-type exoskeleton --max-iterations 1000 \\
        --use-wandb --use-mlflow --early-stopping   # W&B offline without an API key

Every flag maps onto a config field; ``--set section.field=value`` reaches any other one.
"""

from __future__ import annotations

import argparse
import sys

import saferl

ENV_IDS = {"wheelchair": "WheelchairSC-v0", "exoskeleton": "ExoGait-v0"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env-type", choices=sorted(ENV_IDS), default="wheelchair")
    parser.add_argument("--algo", choices=["cpo", "ppo_lagrangian"], default="cpo")
    parser.add_argument("--max-iterations", type=int, default=50, help="epochs (updates)")
    parser.add_argument("--steps-per-epoch", type=int, default=20_000)
    parser.add_argument("--num-envs", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--impairment", choices=["none", "mild", "moderate", "severe"])
    parser.add_argument("--cost-limit", type=float, help="per-episode limit (default: env's)")
    parser.add_argument("--early-stopping", action="store_true", help="stop on a return plateau")
    parser.add_argument("--name", help="run name (directory runs/NAME)")
    parser.add_argument("--use-mlflow", action="store_true", help="also track in MLflow")
    parser.add_argument("--use-wandb", action="store_true", help="also track in W&B")
    parser.add_argument("--use-tensorboard", action="store_true", help="TensorBoard files")
    parser.add_argument("--tracking-uri", help="MLflow tracking URI (with --use-mlflow)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args(argv)

    overrides = [
        f"env.id={ENV_IDS[args.env_type]}",
        f"env.num_envs={args.num_envs}",
        f"algo.name={args.algo}",
        f"train.steps_per_epoch={args.steps_per_epoch}",
        f"train.total_steps={args.max_iterations * args.steps_per_epoch}",
        f"train.seed={args.seed}",
    ]
    if args.impairment:
        overrides.append(f"env.impairment={args.impairment}")
    if args.cost_limit is not None:
        overrides.append(f"env.cost_limit={args.cost_limit}")
    if args.early_stopping:
        overrides.append("train.early_stopping.enabled=true")
    if args.name:
        overrides.append(f"train.name={args.name}")
    backends = [
        name
        for name, on in (
            ("mlflow", args.use_mlflow),
            ("wandb", args.use_wandb),
            ("tensorboard", args.use_tensorboard),
        )
        if on
    ]
    if backends:
        overrides.append(f"tracking.backends=[{', '.join(backends)}]")
    if args.tracking_uri:
        overrides.append(f"tracking.mlflow_uri={args.tracking_uri}")
    try:
        config = saferl.load_config(overrides=[*overrides, *args.set])
        trainer = saferl.Trainer(config, command=[sys.executable, *sys.argv])
    except saferl.ConfigError as exc:  # also a backend whose package is missing
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return trainer.train()


if __name__ == "__main__":
    sys.exit(main())
