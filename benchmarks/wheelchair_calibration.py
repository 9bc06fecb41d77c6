"""Unassisted-user (alpha = 1) calibration of WheelchairSC-v0 (docs/envs/wheelchair.md calibration table).

Usage::

    python benchmarks/wheelchair_calibration.py                    # 256 episodes per level
    python benchmarks/wheelchair_calibration.py --episodes 512 --seed 3 --challenge standard

Runs the ``human_only`` scripted policy (alpha = 1) for one 600-step episode per instance, with
the impairment level fixed per run, and prints per level: success rate (with a 95 % Wilson
interval), collision-steps per episode (mean, median, 90th percentile, share of episodes with
any collision), the combined cost per episode, and the episode length of the successes. The
collision count is the ``collision`` cost component summed over the episode (a bump stop that
persists while the user keeps pushing counts every step). ``--doors`` also reports the share of
collision-steps that happen within 0.6 m of a doorway centre. ``--baselines`` prints the
scripted-baseline table instead (every policy of ``SCRIPTED_POLICIES``, or those named by
``--policies``, at every level: success, collision-steps, cost, comfort violations per episode
and the intent deviation, the per-step mean of 1/2 sum(((u - u_h) / u_max)^2) between the
executed command u and the command u_h of the user's mean joystick over the step).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from saferl.envs.wheelchair import EPISODE_STEPS, WheelchairSCVecEnv

LEVELS = ("none", "mild", "moderate", "severe")


def wilson(p: float, n: int, z: float = 1.96) -> tuple[float, float]:
    den = 1 + z * z / n
    c = (p + z * z / (2 * n)) / den
    h = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return c - h, c + h


def run_level(
    level: str,
    n: int,
    seed: int,
    challenge: str,
    doors: bool = False,
    policy_name: str = "human_only",
) -> dict:
    """One episode per instance for ``n`` instances of the user at ``level`` with a policy."""
    env = WheelchairSCVecEnv(n, impairment=level, challenge=challenge)
    obs, _ = env.reset(seed=seed)
    policy = env.SCRIPTED_POLICIES[policy_name]()
    policy.reset(env)
    done = np.zeros(n, bool)
    success = np.zeros(n, bool)
    length = np.zeros(n)
    coll = np.zeros(n)
    cost = np.zeros(n)
    door_coll = np.zeros(n)
    comfort = np.zeros(n)
    intent = np.zeros(n)
    for _ in range(EPISODE_STEPS):
        v0 = env.v.copy()
        if doors:
            dx = env.x[:, None] - env.maps.doors[env.map_id][:, :, 0]
            dy = env.y[:, None] - env.maps.doors[env.map_id][:, :, 1]
            on = env.maps.doors[env.map_id][:, :, 2] > 0
            near_door = (np.where(on, np.hypot(dx, dy), 1e3) < 0.6).any(axis=1)
        obs, _, term, trunc, info = env.step(policy.act(obs, env))
        live = ~done
        c = info["cost_components"]["collision"]
        coll += c * live
        if doors:
            door_coll += c * live * near_door
        cost += info["cost"] * live
        comfort += info["cost_components"]["comfort"] * live
        vh, wh = env.joystick_to_command(env.joy[:, 1], v0)
        du = (env.prev_u - np.stack([vh, wh], axis=1)) / env._u_max
        intent += 0.5 * (du * du).sum(axis=1) * live
        length += live
        success |= term & live
        done |= term | trunc
    assert done.all()
    return {
        "success": success,
        "collisions": coll,
        "cost": cost,
        "length": length,
        "door_collisions": door_coll,
        "comfort": comfort,
        "intent": intent,
    }


def baselines(n: int, seed: int, challenge: str, names: list[str] | None = None) -> None:
    print(f"scripted baselines, challenge={challenge}, {n} episodes per cell, seed={seed}")
    print(
        "| policy | level | success | collision-steps / ep (mean, median) | cost / ep | "
        "comfort / ep | intent deviation |"
    )
    print("|---|---|---|---|---|---|---|")
    for name in names or WheelchairSCVecEnv.SCRIPTED_POLICIES:
        for level in LEVELS:
            r = run_level(level, n, seed, challenge, policy_name=name)
            c = r["collisions"]
            print(
                f"| {name} | {level} | {r['success'].mean():.2f} | {c.mean():.1f}, "
                f"{np.median(c):.0f} | {r['cost'].mean():.1f} | {r['comfort'].mean():.1f} | "
                f"{(r['intent'] / r['length']).mean():.3f} |",
                flush=True,
            )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--episodes", type=int, default=256, help="episodes per level")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--challenge", default="standard")
    ap.add_argument("--levels", nargs="*", default=list(LEVELS))
    ap.add_argument("--doors", action="store_true", help="share of collisions near doorways")
    ap.add_argument("--baselines", action="store_true", help="the scripted-baseline table")
    ap.add_argument(
        "--policies",
        nargs="*",
        choices=list(WheelchairSCVecEnv.SCRIPTED_POLICIES),
        help="with --baselines: only these baselines (default: all)",
    )
    args = ap.parse_args()
    if args.baselines:
        baselines(args.episodes, args.seed, args.challenge, args.policies)
        return
    print(
        f"human_only (alpha = 1), challenge={args.challenge}, {args.episodes} episodes/level, "
        f"seed={args.seed}"
    )
    hdr = (
        "| level | success [95 % CI] | collision-steps/ep: mean (median, p90) | "
        "episodes with a collision | cost/ep | steps to success |"
    )
    print(hdr)
    print("|---|---|---|---|---|---|")
    for level in args.levels:
        t0 = time.perf_counter()
        r = run_level(level, args.episodes, args.seed, args.challenge, args.doors)
        s = r["success"].mean()
        lo, hi = wilson(s, args.episodes)
        c = r["collisions"]
        extra = ""
        if args.doors:
            extra = f" doors {r['door_collisions'].sum() / max(c.sum(), 1):.2f}"
        print(
            f"| {level} | {s:.2f} [{lo:.2f}, {hi:.2f}] | {c.mean():.2f} ({np.median(c):.0f}, "
            f"{np.percentile(c, 90):.0f}) | {(c > 0).mean():.2f} | {r['cost'].mean():.1f} | "
            f"{r['length'][r['success']].mean():.0f} |{extra}  ({time.perf_counter() - t0:.0f} s)"
        )


if __name__ == "__main__":
    main()
