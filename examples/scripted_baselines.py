"""Roll out an environment's scripted baselines with the native batched env (no training).

    python examples/scripted_baselines.py --env WheelchairSC-v0 --impairment severe
    python examples/scripted_baselines.py --env ExoGait-v0 --num-envs 256

Prints mean episode return, cost and cost limit per baseline; shows the batched env API:
``make_env`` -> ``reset(seed=...)`` -> ``step(actions)`` with ``info["cost"]``.
"""

from __future__ import annotations

import argparse

import numpy as np

import saferl


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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="WheelchairSC-v0", choices=saferl.ENVS.names())
    parser.add_argument("--num-envs", type=int, default=128)
    parser.add_argument("--impairment", choices=["none", "mild", "moderate", "severe"])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    options = {"impairment": args.impairment} if args.impairment else {}
    env = saferl.make_env(args.env, num_envs=args.num_envs, **options)
    limit = env.constraints.get_limit()
    print(f"{args.env} {options or ''} cost limit {limit:g} per episode")
    for name, factory in sorted(type(env).SCRIPTED_POLICIES.items()):
        stats = rollout(env, factory(), seed=args.seed)
        flag = "ok" if stats["cost"] <= limit else "ABOVE LIMIT"
        print(
            f"  {name:<14} return {stats['return']:8.2f}   cost {stats['cost']:8.2f}  {flag}"
            f"   ({stats['n']} episodes)"
        )
    env.close()


if __name__ == "__main__":
    main()
