"""Natively batched safe environments: the base class every saferl env derives from.

:class:`SafeVectorEnv` is a :class:`gymnasium.vector.VectorEnv` that steps ``N`` instances as
float32 arrays (struct-of-arrays, no Python loop over instances) with *same-step* autoreset
(``AutoresetMode.SAME_STEP``, Gymnasium 1.x conventions):

* ``step`` returns, for an instance whose episode just ended, the *reset* observation; the
  terminal observation is in ``info["final_obs"]`` (object array of length N, ``None`` where the
  instance did not finish) with the mask ``info["_final_obs"]``, and the step's info in
  ``info["final_info"]`` (dict of ``(N,)`` arrays) with the mask ``info["_final_info"]``. These
  keys are present only on steps where some instance finished, as in ``SyncVectorEnv``.
* ``reward``, ``info["cost"]`` and ``info["cost_components"]`` always describe the transition
  just taken, also for instances that were reset in the same step (in ``SyncVectorEnv`` the
  top-level info of a reset instance is the reset info; here the step info is kept at the top
  level and copied into ``final_info``). ``info["cost"]`` is ``(N,)`` float32 >= 0, combined from
  the components by the env's :class:`~saferl.safety.ConstraintSet` ``constraints``.
* ``final_info`` also carries ``episode_return``, ``episode_cost`` and ``episode_length``.

Randomness is per instance: instance ``i`` (global index ``instance_offset + i``) owns a
counter-based stream (:class:`InstanceRNG`, a SplitMix64-style hash of (key, counter)), so a given
``(seed, global index)`` produces the same trajectory whatever N is and however instances are
split across workers, while draws stay vectorised over the batch.

Writing an environment (what a subclass implements)::

    class MyVecEnv(SafeVectorEnv):
        def __init__(self, num_envs=1, *, instance_offset=0, render_mode=None, **options):
            super().__init__(
                num_envs,
                observation_space=Box(-inf, inf, (obs_dim,), np.float32),  # single-instance
                action_space=Box(-1, 1, (act_dim,), np.float32),           # single-instance
                constraints=ConstraintSet([...], limit=..., strict_limit=..., episode_length=T),
                max_episode_steps=T,           # base truncates at T steps (or None)
                instance_offset=instance_offset,
                render_mode=render_mode,
            )
            ... preallocate (N,) float32 state arrays ...

        def _reset_instances(self, idx):     # int64 index array; draw with self.rng.*(…, idx)
            ...                              # re-sample the state of these instances
        def _step_batch(self, actions):      # actions: validated float32 (N, act_dim), clipped
            ...                              # advance all N instances (vectorised)
            return reward, terminated, components, extra_info
            # reward (N,) float32; terminated (N,) bool; components {name: (N,) float32}
            # matching self.constraints; extra_info {key: (N,) array} (may be {})
        def _observe(self, idx=None):        # float32 (len(idx) or N, obs_dim)
            ...
        def _get_state(self) -> dict: ...    # every array of the simulation (plain numpy)
        def _set_state(self, state) -> None: ...   # copy back into the preallocated buffers
        # optional: render_instance(i) -> (H, W, 3) uint8 for render_mode="rgb_array"

        # optional: options a running env can change (curricula), see set_options below
        SETTABLE_OPTIONS = {"impairment": ("none", "mild", "random", None), ...}
        def _get_options(self) -> dict: ...  # current value of each settable option
        def _set_options(self, options) -> None: ...  # apply {name: value} to future episodes

The base class does validation (shape, NaN), clipping to the action box, the episode clock
(``self.elapsed`` (N,) int32; truncation at ``max_episode_steps``), cost combination, episode
statistics, autoreset, seeding and ``state_dict``/``load_state_dict``. The RNG streams, the
clock, the episode statistics and the settable options are saved by the base class; the
subclass saves the rest.

Changing options of a running env (curricula; the trainer's ``train.schedules`` on ``env.X``
call it once per epoch): the public :meth:`SafeVectorEnv.set_options` checks every name against
``SETTABLE_OPTIONS`` (name -> allowed values) and every value against the allowed ones, then
hands them all to ``_set_options``. The contract the hook keeps: a new value applies to each
instance from its *next episode start* (autoreset or ``reset()``), never to an episode under
way (whatever the episode uses while it runs is fixed per instance when it starts, so the
physics stays consistent); setting the current value changes nothing; step() costs nothing
extra. ``_get_options`` returns the current values as plain Python values; they are part of
``state_dict()`` and ``load_state_dict`` gives them back to ``_set_options`` (before
``_set_state``, which restores the per-instance arrays), so a resumed curriculum is exact.

:class:`SingleEnv` turns any subclass into a plain :class:`gymnasium.Env` (N = 1) for
``gymnasium.make``; :class:`ScriptedPolicy` is the protocol of the envs' scripted baselines.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Protocol, runtime_checkable

import gymnasium as gym
import numpy as np
from gymnasium.spaces import Box
from gymnasium.vector import AutoresetMode
from gymnasium.vector.utils import batch_space

from saferl.safety import ConstraintSet

__all__ = [
    "SEED_MAX",
    "InstanceRNG",
    "SafeVectorEnv",
    "ScriptedPolicy",
    "SingleEnv",
    "unbatch_info",
]

_U64 = np.uint64
_M1 = _U64(0xBF58476D1CE4E5B9)
_M2 = _U64(0x94D049BB133111EB)
_GAMMA = _U64(0x9E3779B97F4A7C15)
_S30, _S27, _S31 = _U64(30), _U64(27), _U64(31)
_SHIFT40 = _U64(40)
_INV24 = np.float32(2.0**-24)
#: seeds are 64-bit: 0 .. 2**64 - 1
SEED_MAX = 2**64 - 1


def _mix64(z: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser (Stafford variant 13), element-wise on a uint64 array, in place."""
    z ^= z >> _S30
    z *= _M1
    z ^= z >> _S27
    z *= _M2
    z ^= z >> _S31
    return z


def _derive_keys(seeds: np.ndarray, indices: np.ndarray, salt: int) -> np.ndarray:
    """A well-mixed 64-bit key per (seed, global instance index, salt)."""
    with np.errstate(over="ignore"):
        s = _mix64(seeds.astype(_U64) * _GAMMA + _U64(salt))
        z = _mix64(s ^ _mix64(indices.astype(_U64) * _GAMMA + _U64(0x632BE59BD9B4E019)))
    return z


class InstanceRNG:
    """Independent counter-based random streams, one per instance, drawn in batches.

    Word ``n`` of instance ``i`` is ``mix64(mix64(a_i + n) ^ b_i)`` (two SplitMix64 rounds), with
    per-instance keys ``(a_i, b_i)`` derived from ``(seed, instance_offset + i)``. The stream of an
    instance depends only on its seed and global index and on how many words it has consumed, so
    results are independent of the batch size and of the worker split. All draws are vectorised
    over the requested instances.

    Args:
        num_envs: number of instances N.
        instance_offset: global index of instance 0 (for a worker that holds a slice).
    """

    def __init__(self, num_envs: int, instance_offset: int = 0) -> None:
        self.num_envs = int(num_envs)
        self.instance_offset = int(instance_offset)
        self.key_a = np.zeros(self.num_envs, _U64)
        self.key_b = np.zeros(self.num_envs, _U64)
        self.counter = np.zeros(self.num_envs, _U64)
        self._all = np.arange(self.num_envs, dtype=np.int64)

    def seed(self, seed: int | Sequence[int] | None, idx: np.ndarray | None = None) -> None:
        """(Re)seed instances ``idx`` (all by default) and rewind their counters.

        ``seed`` is an int (instance ``i`` gets the stream of ``(seed, instance_offset + i)``),
        a sequence of one int per selected instance (instance ``i`` gets ``(seed[i], 0)``), or
        ``None`` (fresh OS entropy). Seeds are 64-bit: ints in ``0 .. 2**64 - 1``.

        Raises:
            ValueError: a seed outside ``0 .. 2**64 - 1`` or not an int, or a sequence of the
                wrong length (the message starts with ``seed``).
        """
        idx = self._all if idx is None else np.asarray(idx, dtype=np.int64)
        if seed is None:
            seed = int(np.random.SeedSequence().generate_state(1, np.uint64)[0] >> np.uint64(1))
        if isinstance(seed, (int, np.integer)):
            seeds = np.full(idx.shape, _check_seed(seed), dtype=np.uint64)
            gidx = (idx + self.instance_offset).astype(np.uint64)
        else:
            values = [_check_seed(s) for s in seed]
            if len(values) != idx.size:
                raise ValueError(
                    f"seed: expected an int or {idx.size} ints (one per instance), got {len(values)}"
                )
            seeds = np.array(values, dtype=np.uint64).reshape(idx.shape)
            gidx = np.zeros(idx.shape, np.uint64)
        self.key_a[idx] = _derive_keys(seeds, gidx, 1)
        self.key_b[idx] = _derive_keys(seeds, gidx, 2)
        self.counter[idx] = 0

    def words(self, k: int, idx: np.ndarray | None = None) -> np.ndarray:
        """``(n, k)`` uint64 random words for instances ``idx`` (all by default); advances them."""
        if idx is None:
            a, b, c = self.key_a, self.key_b, self.counter
        else:
            a, b, c = self.key_a[idx], self.key_b[idx], self.counter[idx]
        z = (a + c)[:, None] + np.arange(k, dtype=_U64)[None, :]
        with np.errstate(over="ignore"):
            _mix64(z)
            z ^= b[:, None]
            _mix64(z)
        if idx is None:
            self.counter += _U64(k)
        else:
            self.counter[idx] += _U64(k)
        return z

    def uniform(self, k: int, idx: np.ndarray | None = None) -> np.ndarray:
        """``(n, k)`` float32 uniforms in ``[0, 1)`` (24-bit resolution)."""
        return (self.words(k, idx) >> _SHIFT40).astype(np.float32) * _INV24

    def normal(self, k: int, idx: np.ndarray | None = None) -> np.ndarray:
        """``(n, k)`` float32 standard normals (Box-Muller, one word per pair of normals)."""
        z1, z2 = self.normal_pair_from(self.words((k + 1) // 2, idx))
        return np.concatenate([z1, z2], axis=1)[:, :k]

    @staticmethod
    def uniform_from(words: np.ndarray) -> np.ndarray:
        """Convert uint64 words (any shape) to float32 uniforms in ``[0, 1)``."""
        return (words >> _SHIFT40).astype(np.float32) * _INV24

    @staticmethod
    def normal_pair_from(words: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Two float32 standard-normal arrays (Box-Muller) from uint64 words of any shape."""
        u1 = ((words >> _SHIFT40).astype(np.float32) + np.float32(0.5)) * _INV24
        u2 = (words & _U64(0xFFFFFF)).astype(np.float32) * _INV24
        r = np.sqrt(np.float32(-2.0) * np.log(u1))
        t = np.float32(2.0 * np.pi) * u2
        return r * np.cos(t), r * np.sin(t)

    def state_dict(self) -> dict[str, Any]:
        """Keys and counters as int64 arrays (bit-identical views of the uint64 state)."""
        return {
            "key_a": self.key_a.view(np.int64).copy(),
            "key_b": self.key_b.view(np.int64).copy(),
            "counter": self.counter.view(np.int64).copy(),
            "instance_offset": self.instance_offset,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        for name in ("key_a", "key_b", "counter"):
            arr = np.asarray(state[name])
            if arr.shape != (self.num_envs,):
                raise ValueError(
                    f"RNG state '{name}' has shape {arr.shape}, expected ({self.num_envs},)"
                )
            getattr(self, name)[:] = arr.astype(np.int64).view(_U64)
        self.instance_offset = int(state.get("instance_offset", self.instance_offset))


def _check_seed(seed: Any) -> int:
    """``seed`` as a Python int in ``0 .. SEED_MAX``, else a one-line ``ValueError``."""
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"seed: expected an int in 0..2**64 - 1, got {seed!r}")
    if not 0 <= int(seed) <= SEED_MAX:
        raise ValueError(f"seed: {int(seed)} is outside 0..2**64 - 1 (= {SEED_MAX})")
    return int(seed)


@runtime_checkable
class ScriptedPolicy(Protocol):
    """A scripted (non-learning) baseline acting on a batched env.

    ``reset(env)`` is called once after ``env.reset``; ``act(obs, env)`` returns float32
    ``(N, act_dim)`` actions inside the action box. Scripted policies may read privileged env
    state (they are baselines, not agents); they must keep any randomness per instance. A
    policy class may define ``available(options) -> bool`` (a static method): whether it is
    defined for an env built with those constructor options (absent: always); evaluation
    offers only the available ones.
    """

    name: str

    def reset(self, env: Any) -> None: ...

    def act(self, obs: np.ndarray, env: Any) -> np.ndarray: ...


class SafeVectorEnv(gym.vector.VectorEnv):
    """Base class for natively batched saferl environments (see the module docstring).

    Args:
        num_envs: number of instances N (>= 1).
        observation_space: the *single-instance* observation space (float32 Box).
        action_space: the *single-instance* action space (float32 Box).
        constraints: the env's :class:`ConstraintSet` (combines components into ``cost``).
        max_episode_steps: truncation horizon in steps (``None``: never truncate).
        instance_offset: global index of instance 0 (seeding of worker slices).
        render_mode: ``None`` or ``"rgb_array"``.
    """

    metadata: ClassVar[dict[str, Any]] = {
        "autoreset_mode": AutoresetMode.SAME_STEP,
        "render_modes": ["rgb_array"],
        "render_fps": 10,
    }
    #: name -> zero-argument factory of a :class:`ScriptedPolicy`; filled by subclasses.
    SCRIPTED_POLICIES: ClassVar[dict[str, Any]] = {}
    #: options :meth:`set_options` may change on a running env: name -> its allowed values.
    #: Filled by subclasses (empty: nothing can be changed after construction).
    SETTABLE_OPTIONS: ClassVar[Mapping[str, tuple[Any, ...]]] = {}

    def __init__(
        self,
        num_envs: int,
        *,
        observation_space: Box,
        action_space: Box,
        constraints: ConstraintSet,
        max_episode_steps: int | None,
        instance_offset: int = 0,
        render_mode: str | None = None,
    ) -> None:
        if isinstance(num_envs, bool) or not isinstance(num_envs, (int, np.integer)):
            raise ValueError(f"num_envs must be a positive int, got {num_envs!r}")
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(
                f"render_mode must be None or one of {self.metadata['render_modes']}, "
                f"got {render_mode!r}"
            )
        if not isinstance(constraints, ConstraintSet):
            raise TypeError("constraints must be a saferl.safety.ConstraintSet")
        self.num_envs = int(num_envs)
        self.single_observation_space = observation_space
        self.single_action_space = action_space
        self.observation_space = batch_space(observation_space, self.num_envs)
        self.action_space = batch_space(action_space, self.num_envs)
        self.constraints = constraints
        self.max_episode_steps = max_episode_steps
        self.render_mode = render_mode
        self.rng = InstanceRNG(self.num_envs, instance_offset)
        self.elapsed = np.zeros(self.num_envs, np.int32)
        self.episode_return = np.zeros(self.num_envs, np.float64)
        self.episode_cost = np.zeros(self.num_envs, np.float64)
        self._act_low = np.asarray(action_space.low, np.float32)
        self._act_high = np.asarray(action_space.high, np.float32)
        self._all_idx = np.arange(self.num_envs, dtype=np.int64)
        self._needs_reset = True
        self._seeded = False

    # ------------------------------------------------------------------------------------------
    # subclass hooks
    def _reset_instances(self, idx: np.ndarray) -> None:
        raise NotImplementedError

    def _step_batch(
        self, actions: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray], dict[str, np.ndarray]]:
        raise NotImplementedError

    def _observe(self, idx: np.ndarray | None = None) -> np.ndarray:
        raise NotImplementedError

    def _get_state(self) -> dict[str, Any]:
        raise NotImplementedError

    def _set_state(self, state: Mapping[str, Any]) -> None:
        raise NotImplementedError

    def render_instance(self, i: int) -> np.ndarray:  # pragma: no cover - optional
        raise NotImplementedError(f"{type(self).__name__} does not implement rendering")

    def _get_options(self) -> dict[str, Any]:
        return {}

    def _set_options(self, options: Mapping[str, Any]) -> None:
        raise NotImplementedError(f"{type(self).__name__} has no options to change")

    # ------------------------------------------------------------------------------------------
    def set_options(self, **options: Any) -> None:
        """Change options of the running env, e.g. ``set_options(impairment="severe")``.

        The names and their allowed values are ``SETTABLE_OPTIONS``. A new value applies to
        each instance from its next episode start (autoreset or :meth:`reset`), never to an
        episode under way; calling it with the current value changes nothing. The current
        values (:meth:`get_options`) are part of :meth:`state_dict`. Everything is checked
        before anything changes.

        Raises:
            ValueError: an option this env cannot change, or a value that is not allowed (the
                message names the option and the allowed names or values).
        """
        allowed = self.SETTABLE_OPTIONS
        for name, value in options.items():
            if name not in allowed:
                raise ValueError(
                    f"set_options: {type(self).__name__} has no option {name!r} that can be "
                    f"changed; expected one of {list(allowed)}"
                )
            if not _is_choice(value, allowed[name]):
                raise ValueError(
                    f"{name}: unknown value {value!r}; expected one of {list(allowed[name])}"
                )
        if options:
            self._set_options(options)

    def get_options(self) -> dict[str, Any]:
        """The current value of each option in ``SETTABLE_OPTIONS`` (what new episodes use)."""
        return _copy_tree(self._get_options())

    # ------------------------------------------------------------------------------------------
    @property
    def instance_offset(self) -> int:
        return self.rng.instance_offset

    def reset(
        self,
        *,
        seed: int | Sequence[int] | None = None,
        options: dict[str, Any] | None = None,
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Reset all instances. ``seed``: int, one int per instance, or None (ints in
        ``0 .. 2**64 - 1``).

        ``options`` may hold ``{"reset_mask": bool array (N,)}`` to reset only some instances
        (the others keep their state; their observation is returned unchanged).

        Raises:
            ValueError: a seed outside ``0 .. 2**64 - 1`` (the message names ``seed``).
            RuntimeError: the env was closed.
        """
        self._check_open("reset")
        if seed is not None and not isinstance(seed, (int, np.integer)):
            if not isinstance(seed, (Sequence, np.ndarray)):
                raise ValueError(f"seed: expected an int in 0..2**64 - 1 or a list, got {seed!r}")
            seed = list(seed)
        if seed is not None or not self._seeded:
            self.rng.seed(seed)
            self._seeded = True
        idx = self._all_idx
        if options and "reset_mask" in options:
            mask = np.asarray(options["reset_mask"], bool)
            if mask.shape != (self.num_envs,):
                raise ValueError(
                    f"options['reset_mask'] must have shape ({self.num_envs},), got {mask.shape}"
                )
            idx = np.flatnonzero(mask)
        self._begin_episodes(idx)
        self._needs_reset = False
        return self._observe().astype(np.float32, copy=True), {}

    def _begin_episodes(self, idx: np.ndarray) -> None:
        if idx.size == 0:
            return
        self.elapsed[idx] = 0
        self.episode_return[idx] = 0.0
        self.episode_cost[idx] = 0.0
        self._reset_instances(idx)

    def validate_actions(self, actions: Any) -> np.ndarray:
        """Shape/NaN check and clipping to the action box; returns float32 ``(N, act_dim)``."""
        a = np.asarray(actions)
        expected = (self.num_envs, *self.single_action_space.shape)
        if a.shape != expected:
            raise ValueError(f"actions: expected shape {expected}, got {a.shape}")
        if not np.issubdtype(a.dtype, np.number) or np.issubdtype(a.dtype, np.complexfloating):
            raise ValueError(f"actions: expected a real numeric array, got dtype {a.dtype}")
        a = a.astype(np.float32, copy=False)
        if not np.isfinite(a).all():
            bad = np.flatnonzero(~np.isfinite(a).all(axis=tuple(range(1, a.ndim))))
            raise ValueError(
                f"actions: non-finite values (NaN/inf) for instances {bad[:10].tolist()}"
            )
        return np.clip(a, self._act_low, self._act_high)

    def step(
        self, actions: Any
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Advance every instance by one control step (see the module docstring).

        Raises:
            RuntimeError: the env was closed, or never reset.
            ValueError: bad actions (wrong shape, non-numeric, NaN/inf).
        """
        self._check_open("step")
        if self._needs_reset:
            raise RuntimeError("call reset() before step()")
        a = self.validate_actions(actions)
        reward, terminated, components, extra = self._step_batch(a)
        reward = np.asarray(reward, np.float32)
        terminated = np.asarray(terminated, bool)
        cost = self.constraints.combine(components)
        self.elapsed += 1
        if self.max_episode_steps is not None:
            truncated = (self.elapsed >= self.max_episode_steps) & ~terminated
        else:
            truncated = np.zeros(self.num_envs, bool)
        self.episode_return += reward
        self.episode_cost += cost
        info: dict[str, Any] = {
            "cost": cost,
            "cost_components": {k: np.asarray(v, np.float32) for k, v in components.items()},
        }
        info.update(extra)
        obs = self._observe().astype(np.float32, copy=True)
        done = terminated | truncated
        if done.any():
            idx = np.flatnonzero(done)
            final_obs = np.full(self.num_envs, None, dtype=object)
            for i in idx:  # only the finished instances (a few per step)
                final_obs[i] = obs[i].copy()
            final_info = dict(info)
            final_info["cost_components"] = dict(info["cost_components"])
            final_info["episode_return"] = self.episode_return.astype(np.float32)
            final_info["episode_cost"] = self.episode_cost.astype(np.float32)
            final_info["episode_length"] = self.elapsed.copy()
            for key in list(final_info):
                final_info[f"_{key}"] = done.copy()
            self._begin_episodes(idx)
            obs[idx] = self._observe(idx)
            info["final_obs"] = final_obs
            info["_final_obs"] = done
            info["final_info"] = final_info
            info["_final_info"] = done.copy()
        return obs, reward, terminated, truncated, info

    def _check_open(self, call: str) -> None:
        if self.closed:
            raise RuntimeError(
                f"{call}: this {type(self).__name__} was closed (close()); build a new env"
            )

    def render(self) -> tuple[np.ndarray, ...] | None:
        """``rgb_array``: a one-element tuple with instance 0's frame (``None`` otherwise)."""
        if self.render_mode is None:
            return None
        return (self.render_instance(0),)

    # ------------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue bit-exactly (plain numpy arrays, scalars, dicts)."""
        return {
            "class": type(self).__name__,
            "num_envs": self.num_envs,
            "needs_reset": self._needs_reset,
            "seeded": self._seeded,
            "rng": self.rng.state_dict(),
            "elapsed": self.elapsed.copy(),
            "episode_return": self.episode_return.copy(),
            "episode_cost": self.episode_cost.copy(),
            "options": self.get_options(),
            "env": _copy_tree(self._get_state()),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore a :meth:`state_dict` of an env of the same class, construction options and
        N; the options :meth:`set_options` changes are restored from the state."""
        if state.get("class") != type(self).__name__:
            raise ValueError(
                f"state_dict is for {state.get('class')!r}, this env is {type(self).__name__!r}"
            )
        if int(state["num_envs"]) != self.num_envs:
            raise ValueError(
                f"state_dict has num_envs={state['num_envs']}, this env has {self.num_envs}"
            )
        self.rng.load_state_dict(state["rng"])
        self.elapsed[:] = state["elapsed"]
        self.episode_return[:] = state["episode_return"]
        self.episode_cost[:] = state["episode_cost"]
        self._needs_reset = bool(state["needs_reset"])
        self._seeded = bool(state["seeded"])
        options = state.get("options")
        if options:
            self._set_options(dict(options))
        self._set_state(state["env"])


def _is_choice(value: Any, choices: Sequence[Any]) -> bool:
    """``value`` is one of ``choices`` (of the same type: no ``True == 1``, no arrays)."""
    return any(
        value is c
        or (
            c is not None
            and (type(value) is type(c) or (isinstance(c, str) and isinstance(value, str)))
            and value == c
        )
        for c in choices
    )


def _copy_tree(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        return obj.copy()
    if isinstance(obj, dict):
        return {k: _copy_tree(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_copy_tree(v) for v in obj)
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def unbatch_info(info: Mapping[str, Any], i: int = 0) -> dict[str, Any]:
    """Instance ``i``'s view of a batched info dict (masks dropped, arrays -> scalars)."""
    out: dict[str, Any] = {}
    for key, value in info.items():
        if key.startswith("_"):
            continue
        if key == "final_obs":
            if value[i] is not None:
                out[key] = value[i]
            continue
        if isinstance(value, Mapping):
            if key == "final_info" and not info.get("_final_info", np.zeros(i + 1, bool))[i]:
                continue
            out[key] = unbatch_info(value, i)
        elif isinstance(value, np.ndarray) and value.ndim >= 1:
            item = value[i]
            out[key] = item.item() if np.ndim(item) == 0 else item
        else:
            out[key] = value
    return out


class SingleEnv(gym.Env):
    """A :class:`gymnasium.Env` running a :class:`SafeVectorEnv` subclass with N = 1.

    Subclasses set ``vector_cls``. The wrapped batched env autoresets; the terminal observation
    is returned as ``obs`` and the already-sampled next episode is used by the following
    ``reset()`` without a seed, so a single env and instance 0 of a batch with the same seed see
    the same sequence of episodes. ``info["cost"]`` is a float, ``info["cost_components"]`` a
    dict of floats.
    """

    vector_cls: ClassVar[type[SafeVectorEnv]]
    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(self, render_mode: str | None = None, **options: Any) -> None:
        self.vec = self.vector_cls(1, render_mode=render_mode, **options)
        self.observation_space = self.vec.single_observation_space
        self.action_space = self.vec.single_action_space
        self.render_mode = render_mode
        self.constraints = self.vec.constraints
        self._pending: np.ndarray | None = None

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        self.vec._check_open("reset")
        if seed is not None:
            _check_seed(seed)
        super().reset(seed=seed)
        if seed is None and not options and self._pending is not None:
            obs, self._pending = self._pending, None
            return obs, {}
        self._pending = None
        obs, info = self.vec.reset(seed=seed, options=options)
        return obs[0], unbatch_info(info)

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        a = np.asarray(action)
        if a.shape != self.action_space.shape:
            raise ValueError(f"action: expected shape {self.action_space.shape}, got {a.shape}")
        obs, reward, terminated, truncated, info = self.vec.step(a[None])
        single = unbatch_info(info)
        single.pop("final_info", None)
        o = obs[0]
        if terminated[0] or truncated[0]:
            self._pending = o
            o = single.pop("final_obs")
            single["episode"] = {
                "r": float(info["final_info"]["episode_return"][0]),
                "c": float(info["final_info"]["episode_cost"][0]),
                "l": int(info["final_info"]["episode_length"][0]),
            }
        else:
            self._pending = None
        return o, float(reward[0]), bool(terminated[0]), bool(truncated[0]), single

    def render(self) -> np.ndarray | None:
        if self.render_mode is None:
            return None
        return self.vec.render_instance(0)

    def close(self) -> None:
        """Close the batched env; ``step``/``reset`` then raise ``RuntimeError``."""
        self.vec.close()
        super().close()

    def set_options(self, **options: Any) -> None:
        """:meth:`SafeVectorEnv.set_options`; a change applies from the next ``reset()`` (an
        episode already drawn by the last autoreset is dropped)."""
        before = self.vec.get_options()
        self.vec.set_options(**options)
        if self.vec.get_options() != before:
            self._pending = None

    def get_options(self) -> dict[str, Any]:
        return self.vec.get_options()

    def state_dict(self) -> dict[str, Any]:
        return {
            "vec": self.vec.state_dict(),
            "pending": None if self._pending is None else self._pending.copy(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.vec.load_state_dict(state["vec"])
        pending = state.get("pending")
        self._pending = None if pending is None else np.asarray(pending, np.float32).copy()
