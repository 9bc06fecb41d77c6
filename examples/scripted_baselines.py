"""Roll out an environment's scripted baselines with the native batched env (no training).

    python examples/scripted_baselines.py --env-type wheelchair --set env.impairment=severe
    python examples/scripted_baselines.py --env-type exoskeleton --num-envs 256

The env is the one a config trains on, built as ``saferl train`` builds it
(``saferl.training.setup.env_spec``): ``--env-type wheelchair`` is the packaged default
(``saferl.load_config()``), ``--env-type exoskeleton`` the repository's ``configs/exo_cpo.yaml``,
``--config PATH`` any config; ``--set env.field=value`` changes it. Only the baselines defined
for the env's options run (the wheelchair's ``safety_filter`` is not defined in ``assist`` mode).

Prints mean episode return, cost and cost limit per baseline; shows the batched env API:
``reset(seed=...)`` -> ``step(actions)`` with ``info["cost"]``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

import saferl
from saferl.training import setup
from saferl.training.evaluation.models import scripted_policies

#: the config each --env-type starts from (None: the packaged default)
CONFIGS = {
    "wheelchair": None,
    "exoskeleton": Path(__file__).resolve().parents[1] / "configs" / "exo_cpo.yaml",
}


def rollout(env, policy, seed: int, episodes_per_instance: int = 1) -> dict[str, float]:
    obs, _ = env.reset(seed=seed)
    policy.reset(env)
    n = env.num_envs
    finished = np.zeros(n, dtype=int)
    returns, costs = [], []
    while (finished < episodes_per_instance).any():
        obs, _, terminated, truncated, info = env.step(policy.act(obs, env))
        done = terminated | truncated
        if done.any():
            final = info["final_info"]
            for i in np.flatnonzero(done & (finished < episodes_per_instance)):
                returns.append(float(final["episode_return"][i]))
                costs.append(float(final["episode_cost"][i]))
            finished += done
    return {"return": float(np.mean(returns)), "cost": float(np.mean(costs)), "n": len(returns)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    start = parser.add_mutually_exclusive_group()
    start.add_argument(
        "--env-type", choices=sorted(CONFIGS), default="wheelchair", help="starting config"
    )
    start.add_argument("--config", type=Path, help="start from this config file instead")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--num-envs", type=int, default=128, help="instances, one episode each")
    parser.add_argument("--seed", type=int, default=0, help="env seed of the first instance")
    args = parser.parse_args(argv)
    path = args.config if args.config is not None else CONFIGS[args.env_type]
    try:
        config = saferl.load_config(path, args.set)
        spec = setup.env_spec(config)
        env = spec.make(args.num_envs)
        limit = setup.cost_limits(config, env).combined
    except saferl.ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{spec.id} {spec.options} cost limit {limit:g} per episode")
    for name, factory in sorted(scripted_policies(spec.factory, spec.options).items()):
        stats = rollout(env, factory(), seed=args.seed)
        flag = "ok" if stats["cost"] <= limit else "ABOVE LIMIT"
        print(
            f"  {name:<14} return {stats['return']:8.2f}   cost {stats['cost']:8.2f}  {flag}"
            f"   ({stats['n']} episodes)"
        )
    env.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
