"""Bit-exact trajectory fingerprints of both envs, to check that a refactor changed nothing.

Usage (run from the repository root, same machine and numpy for both runs)::

    python tests/envs/golden_trajectories.py record /tmp/golden.json   # before the change
    python tests/envs/golden_trajectories.py compare /tmp/golden.json  # after: exit 1 on a diff

Each scenario builds an env with fixed options, resets it with a fixed seed and steps it with
seeded uniform random actions (or a scripted baseline), hashing every array it returns (obs,
reward, terminated, truncated and every info entry, final observations included) step by step,
then the final ``state_dict()``. One SHA-256 per scenario and key, so a diff names the first
quantity that changed. Float results depend on the CPU's vector math and numpy's version, so the
fingerprints are only comparable on one machine: this is a script, not a test.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

STEPS = 300
N_WHEELCHAIR = 8
N_EXO = 4


class _Hasher:
    def __init__(self) -> None:
        self.h: dict[str, Any] = {}

    def add(self, key: str, value: Any) -> None:
        if isinstance(value, dict):
            for k in sorted(value):
                self.add(f"{key}.{k}", value[k])
            return
        if isinstance(value, np.ndarray) and value.dtype == object:
            for i, v in enumerate(value):
                self.add(f"{key}[{i}]", v)
            return
        h = self.h.setdefault(key, hashlib.sha256())
        if value is None:
            h.update(b"None")
        elif isinstance(value, (list, tuple)):
            h.update(repr(value).encode())
        else:
            a = np.asarray(value)
            h.update(f"{a.dtype}{a.shape}".encode())
            h.update(np.ascontiguousarray(a).tobytes())

    def digest(self) -> dict[str, str]:
        return {k: v.hexdigest()[:20] for k, v in sorted(self.h.items())}


def _run(env: Any, policy: Any | None, seed: int, steps: int, set_at: dict | None = None):
    hs = _Hasher()
    obs, info = env.reset(seed=seed)
    hs.add("reset_obs", obs)
    rng = np.random.default_rng(seed)
    if policy is not None:
        policy.reset(env)
    for t in range(steps):
        if set_at and t in set_at:
            env.set_options(**set_at[t])
        if policy is None:
            a = rng.uniform(-1.2, 1.2, (env.num_envs, *env.single_action_space.shape))
            a = a.astype(np.float32)
        else:
            a = policy.act(obs, env)
            hs.add("action", a)
        obs, rew, term, trunc, info = env.step(a)
        hs.add("obs", obs)
        hs.add("reward", rew)
        hs.add("terminated", term)
        hs.add("truncated", trunc)
        hs.add("info", info)
    hs.add("state", _plain(env.state_dict()))
    return hs.digest()


def _plain(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return np.asarray(repr(obj).encode())
    if isinstance(obj, (int, float, str, bool)) or obj is None:
        return np.asarray(repr(obj).encode())
    return obj


def scenarios() -> Iterator[tuple[str, Callable[[], dict]]]:
    from saferl.envs.exoskeleton import ExoGaitVecEnv
    from saferl.envs.wheelchair import WheelchairSCVecEnv

    W = WheelchairSCVecEnv
    for mode in ("blend", "residual", "assist"):
        for imp in ("none", "mild", "moderate", "severe", "random"):
            yield (
                f"wheelchair/{mode}/{imp}",
                lambda mode=mode, imp=imp: _run(
                    W(N_WHEELCHAIR, action_mode=mode, impairment=imp), None, 3, STEPS
                ),
            )
    for ch in ("easy", "hard"):
        yield (
            f"wheelchair/blend/{ch}",
            lambda ch=ch: _run(W(N_WHEELCHAIR, challenge=ch), None, 5, STEPS),
        )
    yield (
        "wheelchair/assist/privileged",
        lambda: _run(W(N_WHEELCHAIR, action_mode="assist", privileged_obs=True), None, 6, STEPS),
    )
    yield (
        "wheelchair/curriculum",
        lambda: _run(
            W(N_WHEELCHAIR, impairment="none"),
            None,
            7,
            STEPS,
            {50: {"impairment": "severe", "challenge": "hard"}, 150: {"challenge": "easy"}},
        ),
    )
    yield (
        "wheelchair/offset",
        lambda: _run(W(3, instance_offset=5, impairment="moderate"), None, 8, STEPS),
    )
    for name, cls in W.SCRIPTED_POLICIES.items():
        for mode in ("blend", "residual", "assist"):
            if hasattr(cls, "available") and not cls.available({"action_mode": mode}):
                continue
            yield (
                f"wheelchair/baseline/{name}/{mode}",
                lambda cls=cls, mode=mode: _run(W(N_WHEELCHAIR, action_mode=mode), cls(), 9, STEPS),
            )
    E = ExoGaitVecEnv
    for imp in ("none", "mild", "moderate", "severe", "random"):
        yield (f"exo/{imp}", lambda imp=imp: _run(E(N_EXO, impairment=imp), None, 3, STEPS))
    yield ("exo/hard", lambda: _run(E(N_EXO, challenge="hard"), None, 4, STEPS))
    yield (
        "exo/easy/rehab",
        lambda: _run(E(N_EXO, challenge="easy", objective="rehab"), None, 4, STEPS),
    )
    yield ("exo/float64", lambda: _run(E(N_EXO, dtype="float64"), None, 5, STEPS))
    yield (
        "exo/privileged/short",
        lambda: _run(E(N_EXO, privileged_obs=True, episode_steps=120), None, 6, STEPS),
    )
    yield (
        "exo/curriculum",
        lambda: _run(
            E(N_EXO, impairment="none"),
            None,
            7,
            STEPS,
            {40: {"impairment": "severe", "challenge": "hard"}},
        ),
    )
    yield ("exo/dt", lambda: _run(E(N_EXO, physics_dt=0.002), None, 8, 150))
    for name, cls in E.SCRIPTED_POLICIES.items():
        yield (
            f"exo/baseline/{name}",
            lambda cls=cls: _run(E(N_EXO, impairment="severe"), cls(), 9, STEPS),
        )


def record() -> dict[str, Any]:
    from saferl.envs.exoskeleton import ExoGaitVecEnv
    from saferl.envs.wheelchair import WheelchairSCVecEnv

    out: dict[str, Any] = {}
    for name, fn in scenarios():
        out[name] = fn()
        print(name, flush=True)
    for cls in (WheelchairSCVecEnv, ExoGaitVecEnv):
        out[f"constraints/{cls.__name__}"] = [
            [c.name, c.description, c.threshold, c.source] for c in cls.constraints
        ] + [cls.constraints.limit, cls.constraints.strict_limit]
    return out


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("record", "compare"):
        print(__doc__)
        return 2
    now = record()
    if argv[0] == "record":
        with open(argv[1], "w") as fh:
            json.dump(now, fh, indent=1, sort_keys=True)
        return 0
    with open(argv[1]) as fh:
        before = json.load(fh)
    diffs = 0
    for name in sorted(set(before) | set(now)):
        a, b = before.get(name), now.get(name)
        if a == b:
            continue
        diffs += 1
        if isinstance(a, dict) and isinstance(b, dict):
            keys = [k for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
            print(f"DIFF {name}: {keys[:8]}")
        else:
            print(f"DIFF {name}:\n  before {a}\n  after  {b}")
    print(f"{len(now)} scenarios, {diffs} differ")
    return 1 if diffs else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
