"""Any Gymnasium env that reports a per-step cost, as a saferl batched env.

:class:`GymnasiumVecEnv` runs ``N`` instances of a third-party :class:`gymnasium.Env` in
Gymnasium's own :class:`~gymnasium.vector.SyncVectorEnv` (one process, a Python loop over the
instances) or :class:`~gymnasium.vector.AsyncVectorEnv` (one worker process per instance),
with same-step autoreset, and gives them saferl's batched contract (the one of
:class:`saferl.envs.vector.SafeVectorEnv`):

* ``info["cost"]``: ``(N,)`` float32 >= 0, the cost of the transition just taken (also for an
  instance that was reset in the same step), read from the wrapped env's ``info[cost_key]``;
  ``info["cost_components"]``: ``{component: (N,) float32}`` (one component);
* ``info["final_obs"]`` / ``info["final_info"]`` (with their masks) where an instance finished,
  ``final_info`` with ``episode_return``, ``episode_cost`` and ``episode_length``;
* float32 observations and actions (Box spaces only), actions validated and clipped to the box;
* per-instance seeding that does not depend on how instances are split across workers;
* ``state_dict()`` / ``load_state_dict()`` with exact resume *by replay* (below).

A third-party env is one Python object per instance, so stepping N of them is a loop over
instances (in ``SyncVectorEnv``) or N processes (``AsyncVectorEnv``): unlike saferl's own envs,
no array code steps them together.

Seeding. Every episode is started with its own seed, derived from the run's seed, the
instance's global index (``instance_offset + i``) and the episode's number on that instance
(:func:`episode_seed`). An episode's start therefore depends only on those three numbers, never
on what came before on the instance.

Exact resume by replay. The state of a third-party env (a MuJoCo simulation, a wrapper's
counters) cannot be read in general. What can be saved is how it got there: ``state_dict()``
keeps, per instance, the seed of the current episode and the actions taken in it since its
reset, plus the current observation. ``load_state_dict()`` resets each instance with that seed
and replays the actions through the whole wrapped env, then checks that the observation it
reaches is bit-identical to the saved one. So a resumed run continues bit-exactly for any env
that is deterministic given its reset seed and its actions (what ``check_safe_env`` checks), at
the price of replaying each instance's current episode once (at most one episode per instance).
An env that does not reproduce is refused with an error, never continued silently from another
state.
"""

from __future__ import annotations

import functools
import importlib
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium.spaces import Box
from gymnasium.vector import AsyncVectorEnv, AutoresetMode, SyncVectorEnv
from gymnasium.vector.utils import batch_space

from saferl.envs.vector import SafeVectorEnv
from saferl.safety import Constraint, ConstraintSet

__all__ = [
    "VECTORIZATION_MODES",
    "CostInfoError",
    "GymnasiumVecEnv",
    "ReplayError",
    "SafeInstance",
    "episode_seed",
    "gym_factory",
    "make_gym_vec",
]

#: how the instances are stepped: ``sync`` (one process) or ``async`` (a process per instance)
VECTORIZATION_MODES = ("sync", "async")


class CostInfoError(ValueError):
    """The wrapped env's ``info`` has no usable cost (the message names the key)."""


class ReplayError(RuntimeError):
    """Resuming by replay did not reach the saved state: the env is not reproducible."""


def episode_seed(base_seed: int, index: int, episode: int) -> int:
    """The seed of episode ``episode`` of the instance with global index ``index`` of a run
    seeded ``base_seed``: a 63-bit int mixed by :class:`numpy.random.SeedSequence`, so nearby
    seeds, indices and episodes give unrelated streams."""
    words = np.random.SeedSequence(int(base_seed), spawn_key=(int(index), int(episode)))
    lo, hi = words.generate_state(2, np.uint32)
    return (int(hi) << 31) ^ int(lo)


def _as_box(space: Any, what: str, env_name: str) -> Box:
    """A float32 Box with the bounds of ``space`` (any object with ``low``/``high``/``shape``:
    Gymnasium 1.x and 0.2x spaces alike)."""
    low, high = getattr(space, "low", None), getattr(space, "high", None)
    if low is None or high is None or not np.issubdtype(np.asarray(low).dtype, np.number):
        raise TypeError(
            f"{env_name}: saferl needs a Box {what} space, the env has {space!r}; wrap it "
            "(e.g. gymnasium.wrappers.FlattenObservation) to give it one"
        )
    shape = tuple(getattr(space, "shape", np.shape(low)))
    if len(shape) != 1:
        raise TypeError(
            f"{env_name}: saferl needs a flat (1-d) Box {what} space, the env's has shape "
            f"{shape}; flatten it (gymnasium.wrappers.FlattenObservation)"
        )
    with np.errstate(over="ignore"):
        lo = np.broadcast_to(np.asarray(low, np.float64), shape).astype(np.float32)
        hi = np.broadcast_to(np.asarray(high, np.float64), shape).astype(np.float32)
    return Box(lo, hi, shape, np.float32)


class SafeInstance(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """One instance of an external env as saferl needs it (the outermost wrapper).

    * ``info["cost"]`` (float) and ``info["cost_components"]`` (``{component: float}``) from
      ``info[cost_key]``; a missing, non-finite or negative cost raises :class:`CostInfoError`;
    * float32 observations, float32 Box spaces;
    * every episode seeded by :func:`episode_seed` (``reset(seed=s)`` starts episode 0 of run
      seed ``s``; ``reset()`` the next episode);
    * a log of the current episode's actions, for :meth:`saferl_state` / :meth:`saferl_restore`.

    Args:
        env: the wrapped env (5-tuple Gymnasium API).
        cost_key: the ``info`` key that holds the per-step cost.
        index: global index of this instance (seeding).
        name: the env's name in messages.
        component: name of the cost component in ``info["cost_components"]``.
    """

    def __init__(
        self,
        env: gym.Env,
        *,
        cost_key: str = "cost",
        index: int = 0,
        name: str = "env",
        component: str = "cost",
    ) -> None:
        gym.utils.RecordConstructorArgs.__init__(
            self, cost_key=cost_key, index=index, name=name, component=component
        )
        super().__init__(env)
        self.cost_key = cost_key
        self.index = int(index)
        self.name = name
        self.component = component
        self.observation_space = _as_box(env.observation_space, "observation", name)
        self.action_space = _as_box(env.action_space, "action", name)
        self._inner_action_dtype = np.dtype(getattr(env.action_space, "dtype", np.float32))
        spec = getattr(env, "spec", None)
        #: the wrapped env's time limit in steps (None: none known)
        self.saferl_horizon = getattr(spec, "max_episode_steps", None)
        self.base_seed: int | None = None
        self.episode = -1
        self._actions: list[np.ndarray] = []
        self._obs: Any = None
        #: the state :meth:`saferl_restore_pending` restores (set through ``set_attr``)
        self.saferl_pending: dict[str, Any] | None = None

    # ------------------------------------------------------------------------------------------
    def _next_episode(self, seed: int | None) -> int:
        if seed is not None:
            if int(seed) < 0:
                raise ValueError(f"seed must be >= 0, got {seed}")
            self.base_seed, self.episode = int(seed), 0
        elif self.base_seed is None:
            fresh = np.random.SeedSequence().generate_state(2, np.uint32)
            self.base_seed, self.episode = (int(fresh[1]) << 31) ^ int(fresh[0]), 0
        else:
            self.episode += 1
        return episode_seed(self.base_seed, self.index, self.episode)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        obs, info = self.env.reset(seed=self._next_episode(seed), options=options)
        self._actions = []
        self._obs = obs
        return np.asarray(obs, np.float32), dict(info)

    def _cost(self, info: Mapping[str, Any]) -> float:
        if self.cost_key not in info:
            keys = ", ".join(sorted(map(str, info))) or "none"
            raise CostInfoError(
                f"cost_key: '{self.name}' reports no info['{self.cost_key}'] (its info keys: "
                f"{keys}); return the per-step cost there or name its key with cost_key=..."
            )
        try:
            cost = float(info[self.cost_key])
        except (TypeError, ValueError):
            raise CostInfoError(
                f"cost_key: info['{self.cost_key}'] of '{self.name}' is not a number: "
                f"{info[self.cost_key]!r}"
            ) from None
        if not math.isfinite(cost) or cost < 0:
            raise CostInfoError(
                f"cost_key: info['{self.cost_key}'] of '{self.name}' must be finite and >= 0 "
                f"(saferl's costs are non-negative), got {cost}"
            )
        return cost

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        a = np.asarray(action, np.float32)
        obs, reward, terminated, truncated, info = self.env.step(
            a.astype(self._inner_action_dtype, copy=False)
        )
        info = dict(info)
        cost = self._cost(info)
        info["cost"] = cost
        info["cost_components"] = {self.component: cost}
        self._actions.append(a.copy())
        self._obs = obs
        return np.asarray(obs, np.float32), float(reward), bool(terminated), bool(truncated), info

    # ------------------------------------------------------------------------------------------
    def saferl_probe(self) -> list[str]:
        """Reset with seed 0 and take one step at the centre of the action box; raises
        :class:`CostInfoError` if that step reports no usable cost. Returns the info keys.
        (Leaves the instance mid-episode: ``reset`` it before use.)"""
        self.reset(seed=0)
        mid = (self.action_space.low + self.action_space.high) / 2.0
        mid = np.where(np.isfinite(mid), mid, 0.0).astype(np.float32)
        *_, info = self.step(mid)
        self.base_seed, self.episode, self._actions = None, -1, []
        return sorted(map(str, info))

    def saferl_declared(self) -> ConstraintSet | float | None:
        """What the wrapped env declares: a ``constraints`` attribute (a ConstraintSet), else a
        ``cost_limit`` attribute (a float), else None."""
        for attr in ("constraints", "cost_limit"):
            try:
                value = self.env.get_wrapper_attr(attr)
            except AttributeError:
                continue
            if isinstance(value, ConstraintSet):
                return value
            if attr == "cost_limit" and isinstance(value, (int, float)):
                return float(value)
        return None

    def saferl_state(self) -> dict[str, Any]:
        """How this instance reached its state: run seed, episode number, the episode's actions
        (``(T, act_dim)`` float32) and the current observation (as the wrapped env gave it)."""
        act_dim = self.action_space.shape[0]
        actions = np.stack(self._actions) if self._actions else np.zeros((0, act_dim), np.float32)
        return {
            "base_seed": self.base_seed,
            "index": self.index,
            "episode": self.episode,
            "actions": actions,
            "obs": None if self._obs is None else np.array(self._obs, copy=True),
        }

    def saferl_restore(self, state: Mapping[str, Any]) -> None:
        """Reset with the saved episode's seed and replay its actions; refuse (raise
        :class:`ReplayError`) if the observation reached differs from the saved one."""
        if int(state["index"]) != self.index:
            raise ValueError(
                f"state of instance {state['index']} loaded into instance {self.index}"
            )
        self.base_seed = None if state["base_seed"] is None else int(state["base_seed"])
        self.episode = int(state["episode"])
        self._actions, self._obs = [], None
        if self.base_seed is None or self.episode < 0:
            return  # never reset: nothing to rebuild
        obs, _ = self.env.reset(seed=episode_seed(self.base_seed, self.index, self.episode))
        actions = np.asarray(state["actions"], np.float32)
        for t, a in enumerate(actions):
            obs, _r, terminated, truncated, _info = self.env.step(
                a.astype(self._inner_action_dtype, copy=False)
            )
            if (terminated or truncated) and t < len(actions) - 1:
                raise ReplayError(
                    f"resume: replaying episode {self.episode} of instance {self.index} of "
                    f"'{self.name}' ended it after {t + 1} of {len(actions)} steps; the env is "
                    "not reproducible from its reset seed and actions, so this run cannot "
                    "resume exactly"
                )
            self._actions.append(a.copy())
        saved = state["obs"]
        if saved is not None and not np.array_equal(np.asarray(obs), np.asarray(saved)):
            raise ReplayError(
                f"resume: replaying episode {self.episode} of instance {self.index} of "
                f"'{self.name}' ({len(actions)} steps) reached another observation than the "
                "saved one; the env is not reproducible from its reset seed and actions (global "
                "or unseeded randomness?), so this run cannot resume exactly"
            )
        self._obs = obs

    def saferl_restore_pending(self) -> None:
        """:meth:`saferl_restore` of ``saferl_pending`` (set per instance by ``set_attr``)."""
        state, self.saferl_pending = self.saferl_pending, None
        if state is None:
            raise RuntimeError("saferl_restore_pending: no state was set")
        self.saferl_restore(state)


def _make_instance(
    env_fn: Callable[[], gym.Env], cost_key: str, index: int, name: str, component: str
) -> SafeInstance:
    return SafeInstance(env_fn(), cost_key=cost_key, index=index, name=name, component=component)


def _component_name(cost_key: str) -> str:
    return cost_key if cost_key.isidentifier() else "cost"


class GymnasiumVecEnv(gym.vector.VectorEnv):
    """``N`` instances of a Gymnasium env with a per-step cost, in saferl's batched contract
    (see the module docstring).

    Args:
        env_fns: one zero-argument callable per instance, each returning a new
            :class:`gymnasium.Env` (5-tuple API, cost in ``info[cost_key]``).
        name: the env's name in messages and state dicts (e.g. ``"gym:Hopper-v5"``).
        cost_key: the ``info`` key with the per-step cost (float >= 0).
        constraints: the :class:`~saferl.safety.ConstraintSet` the env declares (its one
            component must be named like the cost component), or None (then a run needs
            ``env.cost_limit``).
        vectorization: ``"sync"`` (one process) or ``"async"`` (a process per instance).
        instance_offset: global index of instance 0 (seeding of worker slices).
        probe: check once at construction, on every instance, that a step reports the cost
            (reset with seed 0 and one step at the centre of the action box).
        component: name of the cost component (default: ``cost_key`` if it is an identifier,
            else ``"cost"``).
    """

    metadata: ClassVar[dict[str, Any]] = {
        "autoreset_mode": AutoresetMode.SAME_STEP,
        "render_modes": [],
    }
    #: options a running env can change: none
    SETTABLE_OPTIONS: ClassVar[Mapping[str, tuple[Any, ...]]] = {}

    def __init__(
        self,
        env_fns: Sequence[Callable[[], gym.Env]],
        *,
        name: str = "env",
        cost_key: str = "cost",
        constraints: ConstraintSet | None = None,
        vectorization: str = "sync",
        instance_offset: int = 0,
        probe: bool = True,
        component: str | None = None,
    ) -> None:
        if not env_fns:
            raise ValueError("num_envs must be >= 1")
        if vectorization not in VECTORIZATION_MODES:
            raise ValueError(
                f"vectorization: unknown value {vectorization!r}; expected one of "
                f"{list(VECTORIZATION_MODES)}"
            )
        if not isinstance(cost_key, str) or not cost_key:
            raise ValueError(f"cost_key: must be a non-empty string, got {cost_key!r}")
        self.name = name
        self.cost_key = cost_key
        self.component = component or _component_name(cost_key)
        if constraints is not None and list(constraints.names) != [self.component]:
            raise ValueError(
                f"constraints: the env reports one cost component '{self.component}', the "
                f"ConstraintSet declares {list(constraints.names)}"
            )
        self.constraints = constraints
        self.vectorization = vectorization
        self.instance_offset = int(instance_offset)
        fns = [
            functools.partial(
                _make_instance, fn, cost_key, self.instance_offset + i, name, self.component
            )
            for i, fn in enumerate(env_fns)
        ]
        if vectorization == "sync":
            self._vec: gym.vector.VectorEnv = SyncVectorEnv(
                fns, copy=False, autoreset_mode=AutoresetMode.SAME_STEP
            )
            try:
                if probe:
                    self._vec.call("saferl_probe")
            except BaseException:
                self._vec.close()
                raise
        else:
            if probe:  # one instance in this process: a refusal reads as one error, not N
                first = fns[0]()
                try:
                    first.saferl_probe()
                finally:
                    first.close()
            self._vec = AsyncVectorEnv(fns, copy=False, autoreset_mode=AutoresetMode.SAME_STEP)
        self.num_envs = len(fns)
        self.single_observation_space = self._vec.single_observation_space
        self.single_action_space = self._vec.single_action_space
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        horizon = self._vec.get_attr("saferl_horizon")[0]
        #: the wrapped env's time limit (the collector's horizon); None if it has none
        self.max_episode_steps = None if horizon is None else int(horizon)
        self.render_mode = None
        self.elapsed = np.zeros(self.num_envs, np.int32)
        self.episode_return = np.zeros(self.num_envs, np.float64)
        self.episode_cost = np.zeros(self.num_envs, np.float64)
        self._act_low = np.asarray(self.single_action_space.low, np.float32)
        self._act_high = np.asarray(self.single_action_space.high, np.float32)
        self._needs_reset = True

    # ------------------------------------------------------------------------------------------
    def reset(
        self,
        *,
        seed: int | Sequence[int] | None = None,
        options: dict[str, Any] | None = None,
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Reset all instances. ``seed``: an int (instance ``i`` plays the episodes of
        ``(seed, instance_offset + i)``), one int per instance, or None (the next episode of
        each instance; fresh OS entropy the first time). ``options`` may hold
        ``{"reset_mask": bool array (N,)}`` to reset only some instances."""
        n = self.num_envs
        seeds: list[int | None] | None
        if seed is None:
            seeds = None
        elif isinstance(seed, (int, np.integer)):
            seeds = [int(seed)] * n
        else:
            seeds = [int(s) for s in seed]
            if len(seeds) != n:
                raise ValueError(f"seed: expected an int or {n} ints (one per instance)")
        opts = dict(options) if options else None
        mask = np.ones(n, bool)
        if opts and "reset_mask" in opts:
            mask = np.asarray(opts["reset_mask"], bool)
            if mask.shape != (n,):
                raise ValueError(f"options['reset_mask'] must have shape ({n},), got {mask.shape}")
            opts["reset_mask"] = mask
            if not mask.any():
                return self._last_obs.copy(), {}
        obs, info = self._vec.reset(seed=seeds, options=opts)
        self.elapsed[mask] = 0
        self.episode_return[mask] = 0.0
        self.episode_cost[mask] = 0.0
        self._needs_reset = False
        self._last_obs = np.array(obs, np.float32, copy=True)
        return self._last_obs.copy(), info

    #: shape/NaN check and clipping to the action box (``_act_low``/``_act_high``), the batched
    #: base class's own rule; returns float32 ``(N, act_dim)``
    validate_actions = SafeVectorEnv.validate_actions

    def step(
        self, actions: Any
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Step every instance once (same-step autoreset; see the module docstring)."""
        if self._needs_reset:
            raise RuntimeError("call reset() before step()")
        a = self.validate_actions(actions)
        obs, reward, terminated, truncated, vinfo = self._vec.step(a)
        obs = np.array(obs, np.float32, copy=True)
        reward = np.asarray(reward, np.float32)
        terminated = np.asarray(terminated, bool)
        truncated = np.asarray(truncated, bool)
        done = terminated | truncated
        info = {k: v for k, v in vinfo.items() if k not in ("cost", "_cost", "cost_components")}
        info.pop("_cost_components", None)
        cost = np.zeros(self.num_envs, np.float32)
        if "cost" in vinfo:
            live = np.asarray(vinfo["_cost"], bool)
            cost[live] = np.asarray(vinfo["cost"], np.float32)[live]
        self.elapsed += 1
        if done.any():
            vfinal = vinfo["final_info"]
            cost[done] = np.asarray(vfinal["cost"], np.float32)[done]
        self.episode_return += reward
        self.episode_cost += cost
        info["cost"] = cost
        info["cost_components"] = {self.component: cost.copy()}
        if done.any():
            final_obs = np.full(self.num_envs, None, dtype=object)
            for i in np.flatnonzero(done):  # only the finished instances
                final_obs[i] = np.asarray(vinfo["final_obs"][i], np.float32).copy()
            final_info = {
                k: v
                for k, v in vinfo["final_info"].items()
                if k not in ("cost", "_cost", "cost_components", "_cost_components")
            }
            final_info["cost"] = cost.copy()
            final_info["cost_components"] = {self.component: cost.copy()}
            final_info["episode_return"] = self.episode_return.astype(np.float32)
            final_info["episode_cost"] = self.episode_cost.astype(np.float32)
            final_info["episode_length"] = self.elapsed.copy()
            for key in ("cost", "cost_components", "episode_return", "episode_cost"):
                final_info[f"_{key}"] = done.copy()
            final_info["_episode_length"] = done.copy()
            info["final_obs"] = final_obs
            info["_final_obs"] = done.copy()
            info["final_info"] = final_info
            info["_final_info"] = done.copy()
            self.elapsed[done] = 0
            self.episode_return[done] = 0.0
            self.episode_cost[done] = 0.0
        self._last_obs = obs.copy()
        return obs, reward, terminated, truncated, info

    def render(self) -> None:
        return None

    def close_extras(self, **kwargs: Any) -> None:
        self._vec.close(**kwargs)

    # ------------------------------------------------------------------------------------------
    def get_options(self) -> dict[str, Any]:
        return {}

    def set_options(self, **options: Any) -> None:
        if options:
            raise ValueError(
                f"set_options: {self.name} has no option {next(iter(options))!r} that can be "
                "changed; expected one of []"
            )

    def state_dict(self) -> dict[str, Any]:
        """Per instance, how it reached its state (seed, episode, the episode's actions, the
        current observation), plus the episode statistics; see the module docstring."""
        return {
            "class": type(self).__name__,
            "name": self.name,
            "num_envs": self.num_envs,
            "needs_reset": self._needs_reset,
            "elapsed": self.elapsed.copy(),
            "episode_return": self.episode_return.copy(),
            "episode_cost": self.episode_cost.copy(),
            "last_obs": None if self._needs_reset else self._last_obs.copy(),
            "instances": list(self._vec.call("saferl_state")),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Rebuild every instance's state by replaying its current episode.

        Raises:
            ValueError: a state of another env or another ``num_envs``.
            ReplayError: the env did not reproduce the saved state (not deterministic given its
                reset seed and actions): the run cannot resume exactly.
        """
        if state.get("class") != type(self).__name__ or state.get("name") != self.name:
            raise ValueError(
                f"state_dict is for {state.get('class')!r} '{state.get('name')}', this env is "
                f"{type(self).__name__!r} '{self.name}'"
            )
        if int(state["num_envs"]) != self.num_envs:
            raise ValueError(
                f"state_dict has num_envs={state['num_envs']}, this env has {self.num_envs}"
            )
        self._vec.set_attr("saferl_pending", [dict(s) for s in state["instances"]])
        self._vec.call("saferl_restore_pending")
        self.elapsed[:] = np.asarray(state["elapsed"])
        self.episode_return[:] = np.asarray(state["episode_return"])
        self.episode_cost[:] = np.asarray(state["episode_cost"])
        self._needs_reset = bool(state["needs_reset"])
        if state.get("last_obs") is not None:
            self._last_obs = np.asarray(state["last_obs"], np.float32).copy()


# --------------------------------------------------------------------------------------------
# Factories
# --------------------------------------------------------------------------------------------


def _constraint_set(component: str, limit: float, horizon: int | None) -> ConstraintSet:
    return ConstraintSet(
        [Constraint(component, "per-step cost reported by the wrapped env", unit="cost")],
        limit=float(limit),
        episode_length=horizon,
    )


def make_gym_vec(
    env_id: str,
    num_envs: int = 1,
    *,
    cost_key: str = "cost",
    cost_limit: float | None = None,
    vectorization: str = "sync",
    instance_offset: int = 0,
    max_episode_steps: int | None = None,
    **kwargs: Any,
) -> GymnasiumVecEnv:
    """``num_envs`` instances of the Gymnasium env ``env_id`` (``gymnasium.make(env_id,
    **kwargs)``; ``"module:EnvId"`` imports ``module`` first) in saferl's batched contract.

    Args:
        env_id: a Gymnasium id whose env reports a per-step cost in ``info[cost_key]``.
        num_envs: instances N.
        cost_key: the ``info`` key with the cost.
        cost_limit: per-episode limit the env is declared with (else the env's own
            ``constraints``/``cost_limit`` attribute, else none: a run then needs
            ``env.cost_limit``).
        vectorization: ``"sync"`` or ``"async"`` (Gymnasium's vector envs).
        instance_offset: global index of instance 0.
        max_episode_steps: time limit (``gymnasium.make``'s argument).
        **kwargs: the env's own keyword arguments.
    """
    if isinstance(num_envs, bool) or not isinstance(num_envs, (int, np.integer)) or num_envs < 1:
        raise ValueError(f"num_envs must be a positive int, got {num_envs!r}")
    name = f"gym:{env_id}"
    make_kwargs = dict(kwargs)
    if max_episode_steps is not None:
        make_kwargs["max_episode_steps"] = int(max_episode_steps)

    def env_fn() -> gym.Env:
        return gym.make(env_id, **make_kwargs)

    env = GymnasiumVecEnv(
        [env_fn] * int(num_envs),
        name=name,
        cost_key=cost_key,
        vectorization=vectorization,
        instance_offset=instance_offset,
    )
    if cost_limit is None:
        declared = env._vec.call("saferl_declared")[0]
        if isinstance(declared, ConstraintSet) and list(declared.names) == [env.component]:
            env.constraints = declared
            return env
        cost_limit = declared.limit if isinstance(declared, ConstraintSet) else declared
    if cost_limit is not None:
        env.constraints = _constraint_set(env.component, cost_limit, env.max_episode_steps)
    return env


def gym_factory(env_id: str) -> Callable[..., GymnasiumVecEnv]:
    """The saferl factory of ``gym:<env_id>`` (registry prefix ``gym:``).

    Raises:
        ValueError: Gymnasium does not know ``env_id`` (its own message).
    """
    module, sep, bare = env_id.rpartition(":")
    try:
        if sep:  # "module:EnvId": import the module that registers the id, as gymnasium.make
            importlib.import_module(module)
        gym.spec(bare)
    except ImportError as exc:
        raise ValueError(f"cannot import '{module}' for '{env_id}': {exc}") from None
    except gym.error.Error as exc:
        raise ValueError(f"Gymnasium has no environment '{bare}': {exc}") from None

    def factory(
        num_envs: int = 1,
        *,
        cost_key: str = "cost",
        cost_limit: float | None = None,
        vectorization: str = "sync",
        instance_offset: int = 0,
        max_episode_steps: int | None = None,
        **kwargs: Any,
    ) -> GymnasiumVecEnv:
        return make_gym_vec(
            env_id,
            num_envs,
            cost_key=cost_key,
            cost_limit=cost_limit,
            vectorization=vectorization,
            instance_offset=instance_offset,
            max_episode_steps=max_episode_steps,
            **kwargs,
        )

    factory.__doc__ = make_gym_vec.__doc__
    return factory
