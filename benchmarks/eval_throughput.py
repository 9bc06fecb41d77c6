"""Evaluation throughput: N episodes of an env under the ``standard`` protocol.

Target: 1000 wheelchair episodes in under a minute on 2 CPU cores.

    python benchmarks/eval_throughput.py                          # 1000 episodes, both policies
    python benchmarks/eval_throughput.py --episodes 200 --num-envs 100 --policy actor

Policies: ``actor`` is a freshly initialised Gaussian MLP actor (the default CPO architecture,
64x64 tanh, with an observation normaliser fitted on a batch of observations), i.e. exactly the
computation of a trained checkpoint; ``baseline`` is the env's first scripted baseline
(``human_only`` for the wheelchair). Prints wall time, episodes/s and env steps/s; ``--json``
writes the numbers to a file.
"""

from __future__ import annotations

import argparse
import json
import os
import time


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--env", default="WheelchairSC-v0")
    p.add_argument("--episodes", type=int, default=1000)
    p.add_argument("--num-envs", type=int, default=1000, help="instances stepped together")
    p.add_argument("--policy", choices=["actor", "baseline", "both"], default="both")
    p.add_argument("--threads", type=int, default=2, help="torch threads (0: torch default)")
    p.add_argument("--seed", type=int, default=10_000)
    p.add_argument("--json", help="write the results to this JSON file")
    args = p.parse_args()

    import numpy as np
    import torch

    from saferl.algos.networks import GaussianActor, ObsNormalizer
    from saferl.registry import ENVS
    from saferl.training.evaluation.policies import ActorPolicy, ScriptedAdapter
    from saferl.training.evaluation.protocols import standard

    if args.threads:
        torch.set_num_threads(args.threads)
    factory = ENVS.get(args.env)
    t0 = time.perf_counter()
    probe = factory(num_envs=64)
    obs, _ = probe.reset(seed=0)
    build_s = time.perf_counter() - t0
    obs_dim = probe.single_observation_space.shape[0]
    act_dim = probe.single_action_space.shape[0]

    policies = []
    if args.policy in ("actor", "both"):
        torch.manual_seed(0)
        actor = GaussianActor(obs_dim, act_dim, (64, 64), "tanh", -0.5)
        norm = ObsNormalizer(obs_dim)
        norm.update(torch.as_tensor(np.asarray(obs)))
        policies.append(ActorPolicy(actor, norm, name="actor(64x64)"))
    if args.policy in ("baseline", "both"):
        scripted = type(probe).SCRIPTED_POLICIES
        name = next(iter(scripted))
        policies.append(ScriptedAdapter(scripted[name], f"baselines:{name}"))

    results = {
        "env": args.env,
        "episodes": args.episodes,
        "num_envs": args.num_envs,
        "threads": torch.get_num_threads(),
        "cpus": os.cpu_count(),
        "first_env_build_s": round(build_s, 3),
        "runs": [],
    }
    print(
        f"{args.env}: {args.episodes} episodes, {args.num_envs} envs in parallel, "
        f"torch threads {torch.get_num_threads()}, {os.cpu_count()} CPUs"
    )
    for policy in policies:
        t0 = time.perf_counter()
        table = standard(
            policy, factory, episodes=args.episodes, seed=args.seed, num_envs=args.num_envs
        )
        wall = time.perf_counter() - t0
        steps = int(table["length"].sum())
        row = {
            "policy": policy.name,
            "wall_s": round(wall, 2),
            "episodes_per_s": round(len(table) / wall, 1),
            "env_steps": steps,
            "env_steps_per_s": round(steps / wall),
            "mean_length": round(float(table["length"].mean()), 1),
            "mean_return": round(float(table["return"].mean()), 3),
            "mean_cost": round(float(table["cost"].mean()), 3),
        }
        results["runs"].append(row)
        print(
            f"  {policy.name:<24} {wall:6.1f} s  {row['episodes_per_s']:7.1f} episodes/s  "
            f"{row['env_steps_per_s']:>8} env steps/s  (mean length {row['mean_length']})"
        )
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
