"""``check_safe_env``: Gymnasium's env checker plus saferl's cost contract.

For a single :class:`gymnasium.Env` it runs :func:`gymnasium.utils.env_checker.check_env` (its
warnings are turned into failures); for a :class:`gymnasium.vector.VectorEnv` it checks the
batched API (spaces, shapes, dtypes, same-step autoreset keys). Then, for both, the cost contract:

* ``info["cost"]`` present, finite, ``>= 0`` (float for single envs, ``(N,)`` float32 batched);
* ``info["cost_components"]`` present, one entry per constraint of ``env.constraints`` (when the
  env declares a :class:`~saferl.safety.ConstraintSet`), each finite and ``>= 0``, and their
  combination (union/max or sum) equal to ``info["cost"]``;
* determinism: the same seed and actions give identical observations, rewards and costs;
* ``state_dict()`` / ``load_state_dict()`` mid-episode gives an identical continuation.

Failures raise :class:`SafeEnvCheckError` with a message that says what to fix.
"""

from __future__ import annotations

import copy
import warnings
from typing import Any

import gymnasium as gym
import numpy as np

__all__ = ["SafeEnvCheckError", "check_safe_env"]


class SafeEnvCheckError(ValueError):
    """An environment violates the Gymnasium API or saferl's cost contract."""


def _fail(msg: str) -> None:
    raise SafeEnvCheckError(msg)


def _actions(space: gym.Space, steps: int, seed: int) -> list[Any]:
    space = copy.deepcopy(space)
    space.seed(seed)
    return [space.sample() for _ in range(steps)]


def _check_costs(info: dict[str, Any], env: Any, batched: bool, where: str) -> None:
    if "cost" not in info:
        _fail(f"{where}: info has no 'cost' key; return the per-step cost in info['cost']")
    cost = np.asarray(info["cost"])
    n = getattr(env, "num_envs", 1)
    if batched:
        if cost.shape != (n,):
            _fail(f"{where}: info['cost'] must have shape ({n},), got {cost.shape}")
        if cost.dtype != np.float32:
            _fail(f"{where}: info['cost'] must be float32, got {cost.dtype}")
    elif cost.shape != ():
        _fail(f"{where}: info['cost'] must be a scalar float, got shape {cost.shape}")
    if not np.all(np.isfinite(cost)):
        _fail(f"{where}: info['cost'] has non-finite values: {cost}")
    if np.any(cost < 0):
        _fail(f"{where}: info['cost'] must be >= 0, got {cost}")
    comps = info.get("cost_components")
    if not isinstance(comps, dict) or not comps:
        _fail(f"{where}: info['cost_components'] must be a non-empty dict name -> cost")
    constraints = getattr(env, "constraints", None)
    if constraints is not None:
        if set(comps) != set(constraints.names):
            _fail(
                f"{where}: info['cost_components'] keys {sorted(comps)} do not match "
                f"env.constraints {sorted(constraints.names)}"
            )
    for name, value in comps.items():
        v = np.asarray(value, np.float64)
        if v.shape != cost.shape:
            _fail(f"{where}: cost component '{name}' has shape {v.shape}, cost has {cost.shape}")
        if not np.all(np.isfinite(v)) or np.any(v < 0):
            _fail(f"{where}: cost component '{name}' must be finite and >= 0, got {v}")
    stack = np.stack([np.asarray(comps[k], np.float64) for k in comps])
    mode = getattr(constraints, "combine_mode", None)
    candidates = {"max": stack.max(axis=0), "sum": stack.sum(axis=0)}
    if mode is not None:
        if not np.allclose(candidates[mode], cost, atol=1e-5):
            _fail(
                f"{where}: info['cost'] ({cost}) is not the {mode} of the components "
                f"({candidates[mode]}) as env.constraints.combine_mode says"
            )
    elif not any(np.allclose(c, cost, atol=1e-5) for c in candidates.values()):
        _fail(f"{where}: info['cost'] is neither the max nor the sum of the components")


def _rollout(env: Any, seed: int, actions: list[Any], batched: bool) -> list[tuple]:
    obs, _ = env.reset(seed=seed)
    out: list[tuple] = [(np.array(obs, copy=True),)]
    for t, a in enumerate(actions):
        obs, r, term, trunc, info = env.step(a)
        _check_costs(info, env, batched, f"step {t}")
        out.append(
            (
                np.array(obs, copy=True),
                np.array(r, copy=True),
                np.array(info["cost"], copy=True),
                np.array(term, copy=True),
                np.array(trunc, copy=True),
            )
        )
        if not batched and (term or trunc):
            obs, _ = env.reset()
            out.append((np.array(obs, copy=True),))
    return out


def _same(a: list[tuple], b: list[tuple]) -> bool:
    if len(a) != len(b):
        return False
    return all(
        len(x) == len(y) and all(np.array_equal(u, v) for u, v in zip(x, y, strict=True))
        for x, y in zip(a, b, strict=True)
    )


def _check_vector_api(env: gym.vector.VectorEnv, seed: int) -> None:
    from gymnasium.vector import AutoresetMode

    n = env.num_envs
    for attr in ("single_observation_space", "single_action_space", "num_envs"):
        if not hasattr(env, attr):
            _fail(f"vector env lacks attribute '{attr}'")
    mode = env.metadata.get("autoreset_mode")
    if mode != AutoresetMode.SAME_STEP:
        _fail(f"metadata['autoreset_mode'] must be AutoresetMode.SAME_STEP, got {mode!r}")
    obs, info = env.reset(seed=seed)
    if not isinstance(info, dict):
        _fail("reset() must return (obs, info) with info a dict")
    if obs.shape != env.observation_space.shape or obs.dtype != env.observation_space.dtype:
        _fail(
            f"reset() obs has shape {obs.shape}/{obs.dtype}, observation_space is "
            f"{env.observation_space.shape}/{env.observation_space.dtype}"
        )
    if obs not in env.observation_space:
        _fail("reset() observation is outside observation_space")
    space = copy.deepcopy(env.action_space)
    space.seed(seed)
    for t in range(5):
        obs, r, term, trunc, info = env.step(space.sample())
        if obs not in env.observation_space:
            _fail(f"step {t}: observation outside observation_space")
        for name, arr, dtype in (("reward", r, None), ("terminated", term, np.bool_)):
            arr = np.asarray(arr)
            if arr.shape != (n,):
                _fail(f"step {t}: {name} must have shape ({n},), got {arr.shape}")
            if dtype is not None and arr.dtype != dtype:
                _fail(f"step {t}: {name} must be bool, got {arr.dtype}")
        if np.asarray(trunc).shape != (n,):
            _fail(f"step {t}: truncated must have shape ({n},)")
        done = np.asarray(term) | np.asarray(trunc)
        if done.any():
            for key in ("final_obs", "_final_obs", "final_info", "_final_info"):
                if key not in info:
                    _fail(f"step {t}: an instance finished but info lacks '{key}' (same-step)")


def check_safe_env(env: Any, *, seed: int = 0, steps: int = 40, check_state: bool = True) -> None:
    """Check ``env`` (single or vector) against Gymnasium's API and saferl's cost contract.

    Args:
        env: a :class:`gymnasium.Env` or :class:`gymnasium.vector.VectorEnv` (possibly wrapped).
        seed: seed used for the determinism and round-trip checks.
        steps: steps per check rollout.
        check_state: also check ``state_dict``/``load_state_dict`` (skipped with a clear error
            if the env lacks them and this is True).

    Raises:
        SafeEnvCheckError: with an actionable message on the first violation.
    """
    batched = isinstance(env, gym.vector.VectorEnv)
    if batched:
        _check_vector_api(env, seed)
    else:
        from gymnasium.utils.env_checker import check_env

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                check_env(env.unwrapped, skip_render_check=True)
            except AssertionError as exc:
                _fail(f"gymnasium check_env failed: {exc}")
        msgs = [str(w.message) for w in caught if "saferl" not in str(w.filename)]
        if msgs:
            _fail("gymnasium check_env warned: " + " | ".join(msgs))

    actions = _actions(env.action_space, steps, seed)
    first = _rollout(env, seed, actions, batched)
    second = _rollout(env, seed, actions, batched)
    if not _same(first, second):
        _fail(
            "not deterministic: two rollouts with the same seed and actions differ; draw all "
            "randomness from generators seeded in reset(seed=...)"
        )

    if not check_state:
        return
    base = env.unwrapped if hasattr(env, "unwrapped") else env
    if not (hasattr(base, "state_dict") and hasattr(base, "load_state_dict")):
        _fail("env has no state_dict()/load_state_dict(); saferl needs them for exact resume")
    half = steps // 2
    env.reset(seed=seed)
    for a in actions[:half]:
        *_, term, trunc, _ = env.step(a)
        if not batched and (term or trunc):
            env.reset()
    state = copy.deepcopy(base.state_dict())
    cont = []
    for a in actions[half:]:
        cont.append(env.step(a)[:4])
    base.load_state_dict(state)
    for t, a in enumerate(actions[half:]):
        again = env.step(a)[:4]
        if not all(
            np.array_equal(np.asarray(x), np.asarray(y))
            for x, y in zip(cont[t], again, strict=True)
        ):
            _fail(
                f"state_dict round trip: continuation differs at step {half + t}; "
                "state_dict() must capture every array and RNG that influences step()"
            )
        if not batched and (again[2] or again[3]):
            break
