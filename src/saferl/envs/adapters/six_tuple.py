"""Envs with Safety-Gymnasium's API: ``step`` returns ``(obs, reward, cost, terminated,
truncated, info)``.

Safety-Gymnasium pins gymnasium 0.28 and cannot be installed next to gymnasium 1.x, which saferl
needs; saferl therefore never imports it unless asked to and depends on nothing of it. The
adapter is duck-typed: any object with ``observation_space`` / ``action_space`` (Box-like:
``low``, ``high``, ``shape``), ``reset(seed=..., options=...) -> (obs, info)`` and a 6-tuple
``step`` is turned into a Gymnasium 1.x env (:class:`SixTupleEnv`, the cost moved into
``info["cost"]``) and then batched by :class:`~saferl.envs.adapters.GymnasiumVecEnv` like any
Gymnasium env (seeding, same-step autoreset, exact resume by replay).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.wrappers import TimeLimit

from saferl.envs.adapters.gymnasium_vec import (
    GymnasiumVecEnv,
    _as_box,
    _constraint_set,
)

__all__ = ["SixTupleEnv", "make_safety_vec", "safety_factory"]


class SixTupleEnv(gym.Env):
    """A Gymnasium 1.x env around a duck-typed env whose ``step`` returns 6 values.

    ``step`` returns ``(obs, reward, terminated, truncated, info)`` with ``info["cost"]`` the
    wrapped env's cost (float). Spaces become float32 Boxes with the same bounds.

    Args:
        env: the wrapped object (Safety-Gymnasium env or anything with its API).
        name: its name in messages.
    """

    def __init__(self, env: Any, name: str = "env") -> None:
        self.env = env
        self.name = name
        self.observation_space = _as_box(env.observation_space, "observation", name)
        self.action_space = _as_box(env.action_space, "action", name)
        self._act_dtype = np.dtype(getattr(env.action_space, "dtype", np.float32))
        self.metadata = dict(getattr(env, "metadata", {}) or {})
        self.render_mode = getattr(env, "render_mode", None)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        result = self.env.reset(seed=seed, options=options)
        if not (isinstance(result, tuple) and len(result) == 2):
            raise TypeError(
                f"{self.name}: reset() must return (obs, info), got {type(result).__name__}"
            )
        obs, info = result
        return np.asarray(obs, np.float32), dict(info)

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        result = self.env.step(np.asarray(action).astype(self._act_dtype, copy=False))
        if not isinstance(result, tuple) or len(result) != 6:
            n = len(result) if isinstance(result, tuple) else type(result).__name__
            raise TypeError(
                f"{self.name}: step() returned {n} values; the Safety-Gymnasium API returns 6 "
                "(obs, reward, cost, terminated, truncated, info); for a 5-tuple env with the "
                "cost in info use gym:<id>"
            )
        obs, reward, cost, terminated, truncated, info = result
        info = dict(info)
        info["cost"] = float(cost)
        return np.asarray(obs, np.float32), float(reward), bool(terminated), bool(truncated), info

    def render(self) -> Any:
        render = getattr(self.env, "render", None)
        return render() if callable(render) else None

    def close(self) -> None:
        close = getattr(self.env, "close", None)
        if callable(close):
            close()


def _resolve(target: str) -> Callable[..., Any]:
    """``"module:callable"`` -> the callable; a plain name -> ``safety_gymnasium.make``."""
    if ":" in target:
        module_name, _, attr = target.partition(":")
        try:
            obj: Any = importlib.import_module(module_name)
            for part in attr.split("."):
                obj = getattr(obj, part)
        except (ImportError, AttributeError) as exc:
            raise ValueError(f"cannot load '{target}': {exc}") from None
        if not callable(obj):
            raise ValueError(f"'{target}' is not callable")
        return obj
    try:
        safety_gymnasium = importlib.import_module("safety_gymnasium")
    except ImportError:
        raise ValueError(
            f"'{target}' needs the safety_gymnasium package, which is not installed (it pins "
            "gymnasium 0.28 and cannot share an environment with saferl); give a factory "
            "instead: safety:<module>:<callable> returning an env with the 6-tuple API"
        ) from None

    def make(**kwargs: Any) -> Any:
        return safety_gymnasium.make(target, **kwargs)

    return make


def make_safety_vec(
    target: str | Callable[..., Any],
    num_envs: int = 1,
    *,
    cost_limit: float | None = None,
    max_episode_steps: int | None = None,
    vectorization: str = "sync",
    instance_offset: int = 0,
    name: str | None = None,
    **kwargs: Any,
) -> GymnasiumVecEnv:
    """``num_envs`` instances of a 6-tuple env in saferl's batched contract.

    Args:
        target: a callable returning a new env (called with ``**kwargs``), ``"module:callable"``,
            or a Safety-Gymnasium id (needs the ``safety_gymnasium`` package importable).
        num_envs: instances N.
        cost_limit: the per-episode limit the env is declared with (None: a run needs
            ``env.cost_limit``).
        max_episode_steps: a time limit added on top (Gymnasium's ``TimeLimit``); envs that
            truncate themselves (Safety-Gymnasium's do) need none.
        vectorization: ``"sync"`` or ``"async"``.
        instance_offset: global index of instance 0.
        name: the env's name in messages and state dicts (default: from ``target``).
        **kwargs: the env's own keyword arguments.
    """
    if isinstance(num_envs, bool) or not isinstance(num_envs, (int, np.integer)) or num_envs < 1:
        raise ValueError(f"num_envs must be a positive int, got {num_envs!r}")
    if callable(target):
        make = target
        default = f"{getattr(target, '__module__', '?')}:{getattr(target, '__qualname__', '?')}"
    else:
        make, default = _resolve(target), target
    name = name or f"safety:{default}"

    def env_fn() -> gym.Env:
        env: gym.Env = SixTupleEnv(make(**kwargs), name)
        if max_episode_steps is not None:
            env = TimeLimit(env, int(max_episode_steps))
        return env

    env = GymnasiumVecEnv(
        [env_fn] * int(num_envs),
        name=name,
        cost_key="cost",
        vectorization=vectorization,
        instance_offset=instance_offset,
    )
    if max_episode_steps is not None:
        env.max_episode_steps = int(max_episode_steps)
    if cost_limit is not None:
        env.constraints = _constraint_set(env.component, cost_limit, env.max_episode_steps)
    return env


def safety_factory(target: str) -> Callable[..., GymnasiumVecEnv]:
    """The saferl factory of ``safety:<target>`` (registry prefix ``safety:``).

    Raises:
        ValueError: the target cannot be loaded.
    """
    make = _resolve(target)

    def factory(
        num_envs: int = 1,
        *,
        cost_limit: float | None = None,
        max_episode_steps: int | None = None,
        vectorization: str = "sync",
        instance_offset: int = 0,
        **kwargs: Any,
    ) -> GymnasiumVecEnv:
        env = make_safety_vec(
            make,
            num_envs,
            cost_limit=cost_limit,
            max_episode_steps=max_episode_steps,
            vectorization=vectorization,
            instance_offset=instance_offset,
            name=f"safety:{target}",
            **kwargs,
        )
        return env

    factory.__doc__ = make_safety_vec.__doc__
    return factory
