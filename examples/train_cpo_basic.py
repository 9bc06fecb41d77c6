"""Train CPO on one of saferl's environments through the public API.

    python examples/train_cpo_basic.py --env-type wheelchair --max-iterations 50
    python examples/train_cpo_basic.py --env-type exoskeleton --max-iterations 100 \\
        --early-stopping --set env.impairment=severe
    python examples/train_cpo_basic.py --config configs/wheelchair_ppo_lagrangian.yaml \\
        --max-iterations 50 --set algo.per_constraint=true
    python examples/train_cpo_basic.py --env-type exoskeleton --max-iterations 1000 \\
        --use-wandb --use-mlflow --early-stopping   # W&B offline without an API key

It starts from a config, as ``saferl train`` does: ``--env-type wheelchair`` (the default) is the
packaged default (``saferl.load_config()``, the settings ``saferl train`` runs);
``--env-type exoskeleton`` is the repository's ``configs/exo_cpo.yaml``, the exoskeleton's own
settings (the wheelchair's observation averages and ``action_mode`` option are the
wheelchair's); ``--config PATH`` is any config file. The other flags are config fields, and
``--set section.field=value`` (repeatable, applied last) reaches every field.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import saferl

#: the config each --env-type starts from (None: the packaged default)
CONFIGS = {
    "wheelchair": None,
    "exoskeleton": Path(__file__).resolve().parents[1] / "configs" / "exo_cpo.yaml",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    start = parser.add_mutually_exclusive_group()
    start.add_argument(
        "--env-type", choices=sorted(CONFIGS), default="wheelchair", help="starting config"
    )
    start.add_argument("--config", type=Path, help="start from this config file instead")
    parser.add_argument(
        "--max-iterations",
        type=int,
        help="epochs (updates): train.total_steps = N x train.steps_per_epoch (default: the "
        "config's train.total_steps)",
    )
    parser.add_argument("--early-stopping", action="store_true", help="train.early_stopping")
    parser.add_argument("--seed", type=int, help="train.seed")
    parser.add_argument("--name", help="train.name (the run directory is runs/NAME)")
    # tracking: tracking.backends and tracking.mlflow_uri
    parser.add_argument("--use-mlflow", action="store_true", help="also track in MLflow")
    parser.add_argument("--use-wandb", action="store_true", help="also track in W&B")
    parser.add_argument("--use-tensorboard", action="store_true", help="TensorBoard files")
    parser.add_argument("--tracking-uri", help="MLflow tracking URI (with --use-mlflow)")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="any config field"
    )
    args = parser.parse_args(argv)

    path = args.config if args.config is not None else CONFIGS[args.env_type]
    if args.max_iterations is not None and args.max_iterations < 1:
        print(f"error: --max-iterations must be >= 1, got {args.max_iterations}", file=sys.stderr)
        return 2
    overrides = []
    if args.early_stopping:
        overrides.append("train.early_stopping.enabled=true")
    if args.seed is not None:
        overrides.append(f"train.seed={args.seed}")
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
    overrides += args.set
    try:
        config = saferl.load_config(path, overrides)
        if args.max_iterations is not None:
            if any(s.partition("=")[0].strip() == "train.total_steps" for s in args.set):
                raise saferl.ConfigError(
                    "--max-iterations sets train.total_steps; give one of them, not both"
                )
            steps = args.max_iterations * config.train.steps_per_epoch
            config = saferl.load_config(path, [*overrides, f"train.total_steps={steps}"])
        trainer = saferl.Trainer(config, command=[sys.executable, *sys.argv])
    except saferl.ConfigError as exc:  # also the trainer's: run directory taken, backend missing
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return trainer.train()


if __name__ == "__main__":
    sys.exit(main())
