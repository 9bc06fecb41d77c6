"""Train on several processes (and machines) with torchrun, through saferl's launcher.

    # one machine, 2 processes (GPUs if there are, else CPU processes with gloo)
    python examples/distributed_training.py --training-mode single_node --gpus-per-node 2
    # ZeRO: the critics' optimiser state sharded over the processes
    python examples/distributed_training.py --gpus-per-node 2 --use-zero-optimizer
    # two machines: run this on each, with the address of the first (same --rdzv-id)
    python examples/distributed_training.py --training-mode multi_node --nnodes 2 \\
        --gpus-per-node 4 --rdzv-endpoint 10.0.0.1:29500 --rdzv-id exp1

``--batch-size`` is the number of environment steps per update over all processes
(``train.steps_per_epoch``); the environment instances (``--num-envs``) are split evenly over
the processes. Every flag maps onto a config field; ``--set`` reaches any other one. See
docs/distributed.md.
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import datetime

import torch

import saferl


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--training-mode", choices=["single_node", "multi_node"], default="single_node"
    )
    parser.add_argument("--gpus-per-node", type=int, default=2, help="processes per machine")
    parser.add_argument("--batch-size", type=int, default=40_000, help="env steps per update")
    parser.add_argument("--num-envs", type=int, default=256, help="env instances, all processes")
    parser.add_argument("--total-steps", type=int, default=2_000_000)
    parser.add_argument("--use-zero-optimizer", action="store_true", help="distributed.zero")
    parser.add_argument("--config", help="YAML config (default: the packaged default)")
    parser.add_argument("--name", help="run name (directory runs/NAME); the same on every node")
    parser.add_argument("--max-restarts", type=int, default=0, help="restart after a failure")
    parser.add_argument("--nnodes", type=int, default=2, help="machines (multi_node)")
    parser.add_argument("--node-rank", type=int, help="this machine's rank (multi_node, optional)")
    parser.add_argument("--rdzv-endpoint", help="HOST:PORT every machine reaches (multi_node)")
    parser.add_argument("--rdzv-id", default="saferl", help="rendezvous id (multi_node)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args(argv)

    nproc = args.gpus_per_node
    overrides = [
        f"train.steps_per_epoch={args.batch_size}",
        f"train.total_steps={args.total_steps}",
        f"env.num_envs={args.num_envs}",
    ]
    if args.use_zero_optimizer:
        overrides.append("distributed.zero=true")
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if gpus:
        overrides.append("train.device=cuda")
        if gpus < nproc:
            print(f"error: --gpus-per-node {nproc}, {gpus} GPU(s) here", file=sys.stderr)
            return 2
    else:
        print(
            f"no GPU here: running {nproc} CPU processes with gloo ({os.cpu_count()} cores)",
            flush=True,
        )
    overrides += args.set
    try:
        cfg = saferl.load_config(args.config, overrides)
    except saferl.ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    name = args.name or f"{cfg.env.id}_{cfg.algo.name}_{datetime.now():%Y%m%d-%H%M%S}"
    worker_args = ["train", "--name", name]
    if args.config:
        worker_args += ["--config", args.config]
    for item in overrides:
        worker_args += ["--set", item]
    if args.training_mode == "single_node":
        return saferl.launch_distributed(
            worker_args, nproc_per_node=nproc, max_restarts=args.max_restarts
        )
    if not args.rdzv_endpoint or not args.name:
        print("error: multi_node needs --rdzv-endpoint HOST:PORT and --name NAME", file=sys.stderr)
        return 2
    return saferl.launch_distributed(
        worker_args,
        nproc_per_node=nproc,
        max_restarts=args.max_restarts,
        nnodes=args.nnodes,
        node_rank=args.node_rank,
        rdzv_endpoint=args.rdzv_endpoint,
        rdzv_id=args.rdzv_id,
    )


if __name__ == "__main__":
    sys.exit(main())
