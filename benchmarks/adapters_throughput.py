"""Env steps per second of an external env through saferl's adapter (no learning).

    python benchmarks/adapters_throughput.py --env HopperVelocity-v0 --steps 20000

Compares, on the same env and random actions:

* ``gymnasium``: one plain ``gymnasium.make`` env stepped in a Python loop (what a
  single-process, SB3-style loop does);
* ``saferl sync N``: saferl's adapter over Gymnasium's ``SyncVectorEnv`` (one process, a loop
  over the N instances, plus saferl's cost, seeding and replay log);
* ``saferl async N``: the same over ``AsyncVectorEnv`` (a process per instance).

A third-party env is one Python object per instance, so no mode steps the instances as arrays:
the adapter's cost over the plain loop is what this measures (and what the worker processes of
``async`` buy on a machine with spare cores).
"""

from __future__ import annotations

import argparse
import time

import gymnasium as gym
import numpy as np

import saferl


def plain(env_id: str, steps: int) -> float:
    from saferl.envs.adapters import VELOCITY_TASKS

    env = VELOCITY_TASKS[env_id].single() if env_id in VELOCITY_TASKS else gym.make(env_id)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    low, high = env.action_space.low, env.action_space.high
    t0 = time.perf_counter()
    for _ in range(steps):
        *_, term, trunc, _info = env.step(rng.uniform(low, high).astype(np.float32))
        if term or trunc:
            env.reset()
    return steps / (time.perf_counter() - t0)


def batched(env_id: str, steps: int, num_envs: int, mode: str) -> float:
    env = saferl.make_env(env_id, num_envs=num_envs, vectorization=mode)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    low, high = env.single_action_space.low, env.single_action_space.high
    n = max(1, steps // num_envs)
    t0 = time.perf_counter()
    for _ in range(n):
        env.step(rng.uniform(low, high, (num_envs, low.shape[0])).astype(np.float32))
    rate = n * num_envs / (time.perf_counter() - t0)
    env.close()
    return rate


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--env", default="HopperVelocity-v0")
    p.add_argument("--steps", type=int, default=20000)
    p.add_argument("--num-envs", type=int, nargs="+", default=[1, 16])
    p.add_argument("--async", dest="use_async", action="store_true", help="also AsyncVectorEnv")
    args = p.parse_args()
    print(f"{args.env}, {args.steps} random-action steps per mode")
    print(f"  gymnasium (one env, Python loop)  {plain(args.env, args.steps):8.0f} steps/s")
    for n in args.num_envs:
        modes = ("sync", "async") if args.use_async else ("sync",)
        for mode in modes:
            rate = batched(args.env, args.steps, n, mode)
            print(f"  saferl {mode:5s} num_envs={n:<4d}          {rate:8.0f} steps/s")


if __name__ == "__main__":
    main()
