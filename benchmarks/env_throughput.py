"""Environment throughput: env-steps/s of the native batched envs and of SyncVectorEnv.

Usage::

    python benchmarks/env_throughput.py --env all
    python benchmarks/env_throughput.py --env WheelchairSC-v0 --sizes 1 256 4096 16384 --repeats 5
    python benchmarks/env_throughput.py --env WheelchairSC-v0 --env-option action_mode=assist

For each env and N it steps the native batched env with uniform random actions (pre-generated,
float32, one process) and reports the best and median env-steps/s over ``--repeats`` timed runs;
then gymnasium's ``SyncVectorEnv`` over the single-instance env at ``--sync-n`` (256), and the
native/sync ratio at that N. ``--env-option key=value`` (repeatable) passes a constructor option
to both. Prints the CPU model. The machine may be shared: compare best-of-K.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from typing import Any

import gymnasium as gym
import numpy as np

ENVS = {
    "WheelchairSC-v0": "saferl/WheelchairSC-v0",
    "ExoGait-v0": "saferl/ExoGait-v0",
}


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _time(step, actions, steps: int, n: int) -> tuple[float, float]:
    """(wall-clock, process-CPU-time) env-steps/s; the second is robust to a shared machine."""
    t0, c0 = time.perf_counter(), time.process_time()
    for k in range(steps):
        step(actions[k % len(actions)])
    return n * steps / (time.perf_counter() - t0), n * steps / (time.process_time() - c0)


def bench_native(
    env_id: str, n: int, steps: int, repeats: int, seed: int, **options: Any
) -> list[tuple]:
    env = gym.make_vec(env_id, num_envs=n, vectorization_mode="vector_entry_point", **options)
    env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    shape = env.action_space.shape
    actions = rng.uniform(-1, 1, (8, *shape)).astype(np.float32)
    for k in range(5):  # warm-up
        env.step(actions[k % 8])
    rates = [_time(env.step, actions, steps, n) for _ in range(repeats)]
    env.close()
    return rates


def bench_sync(
    env_id: str, n: int, steps: int, repeats: int, seed: int, **options: Any
) -> list[tuple]:
    env = gym.make_vec(env_id, num_envs=n, vectorization_mode="sync", **options)
    env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    actions = rng.uniform(-1, 1, (8, *env.action_space.shape)).astype(np.float32)
    for k in range(3):
        env.step(actions[k % 8])
    rates = [_time(env.step, actions, steps, n) for _ in range(repeats)]
    env.close()
    return rates


def steps_for(n: int, budget: float = 2.0e5) -> int:
    return int(max(10, min(2000, budget // n)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="all", choices=[*ENVS, "all"])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 256, 4096, 16384])
    parser.add_argument(
        "--sync-n", type=int, default=256, help="SyncVectorEnv comparison size (0: skip it)"
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps-budget", type=float, default=2.0e5, help="env-steps per run")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--env-option", action="append", default=[], help="env constructor option key=value"
    )
    args = parser.parse_args()
    if args.sync_n < 0 or min(args.sizes) < 1:
        parser.error("--sizes must be >= 1 and --sync-n >= 0 (0 skips the SyncVectorEnv run)")
    from saferl.config import parse_override

    options = {".".join(k): v for k, v in map(parse_override, args.env_option)}

    import saferl.envs  # noqa: F401  (registers the ids)

    print(f"CPU: {cpu_model()} ({platform.machine()}), numpy {np.__version__}, float32, 1 process")
    names = list(ENVS) if args.env == "all" else [args.env]
    for name in names:
        env_id = ENVS[name]
        try:
            gym.spec(env_id)
            gym.make_vec(
                env_id, num_envs=1, vectorization_mode="vector_entry_point", **options
            ).close()
        except Exception as exc:  # the env's module may not exist yet
            print(f"{name}: unavailable ({type(exc).__name__}: {exc})")
            continue
        print(f"\n{name}" + (f" {options}" if options else ""))
        print(
            f"{'mode':<8}{'N':>7}{'wall best':>14}{'wall median':>14}"
            f"{'cpu best':>14}{'cpu median':>14}   (env-steps/s)"
        )
        native_at_sync = None
        for n in args.sizes:
            rates = bench_native(
                env_id, n, steps_for(n, args.steps_budget), args.repeats, args.seed, **options
            )
            best = _row("native", n, rates)
            if n == args.sync_n:
                native_at_sync = best
        if args.sync_n == 0:
            continue
        if native_at_sync is None:
            steps = steps_for(args.sync_n, args.steps_budget)
            rates = bench_native(env_id, args.sync_n, steps, args.repeats, args.seed, **options)
            native_at_sync = _row("native", args.sync_n, rates)
        sync_steps = max(5, steps_for(args.sync_n, args.steps_budget) // 20)
        rates = bench_sync(env_id, args.sync_n, sync_steps, args.repeats, args.seed, **options)
        sync = _row("sync", args.sync_n, rates)
        print(
            f"native / SyncVectorEnv at N={args.sync_n}: {native_at_sync[0] / sync[0]:.0f}x wall, "
            f"{native_at_sync[1] / sync[1]:.0f}x cpu"
        )


def _row(mode: str, n: int, rates: list[tuple]) -> tuple[float, float]:
    wall = [r[0] for r in rates]
    cpu = [r[1] for r in rates]
    print(
        f"{mode:<8}{n:>7}{max(wall):>14,.0f}{statistics.median(wall):>14,.0f}"
        f"{max(cpu):>14,.0f}{statistics.median(cpu):>14,.0f}"
    )
    return max(wall), max(cpu)


if __name__ == "__main__":
    main()
