"""Wrappers for the natively batched envs.

:class:`ObservationEMA` gives a memoryless policy a memory: it appends exponential moving
averages of chosen observation dims to the observation. On ``WheelchairSC-v0`` the impairment
level is latent (docs/envs/wheelchair.md); one 0.1 s window of the joystick (its within-step std,
the observation field ``joystick_std``, dims 8-9) is weak evidence of the user's tremor, while its average over the last few
seconds is strong evidence, and a policy that sees it can decide how much authority to give the
user (docs/experiments/2026-11-wheelchair-cpo-tuning.md, Step 8).

Arrays in, arrays out: the averages of all instances are updated together, each instance's
restart at its own episode boundary (same-step autoreset), and the terminal observation in
``info["final_obs"]`` gets the averages of the episode it ends, for bootstrapping. Privileged
dims an env appends (``privileged_obs_dims``) stay at the end, after the averages, so that an
asymmetric critic still finds them there.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from gymnasium.spaces import Box

__all__ = ["ObservationEMA"]


class ObservationEMA:
    """Append ``ema_w = (1 - w) ema_w + w x`` of the observation dims ``dims`` for every
    per-step weight ``w`` in ``weights`` (time constant ``1 / w`` steps).

    Each average starts at an episode's first observation. The new observation is
    ``[obs[:P], ema (len(weights) x len(dims), weight-major), obs[P:]]`` with ``P`` the number of
    non-privileged dims. Everything else (constraints, options, rendering, scripted policies)
    is the wrapped env's.

    Args:
        env: a natively batched env (``num_envs``, ``single_observation_space``, same-step
            autoreset with ``info["final_obs"]``).
        dims: observation dims to average (not privileged ones: their average would show the
            actor what an asymmetric critic keeps from it): indices, or names from the env's
            ``obs_layout`` (:class:`~saferl.envs.layout.ObsLayout`: a field name gives all
            of its dims, ``field.component`` one of them), e.g. ``["joystick_std"]``.
        weights: per-step weights in (0, 1].

    Raises:
        ValueError: an empty, repeated or out-of-range ``dims``, a name the env's layout lacks
            (the message lists the names it has), or a weight outside (0, 1] (the message
            starts with the argument's name).
    """

    def __init__(
        self, env: Any, dims: Sequence[int | str], weights: Sequence[float] = (0.05,)
    ) -> None:
        space = env.single_observation_space
        d = int(space.shape[0])
        self._privileged = int(getattr(env, "privileged_obs_dims", 0))
        visible = d - self._privileged
        dims = _resolve_dims(env, dims)
        if not dims or len(set(dims)) != len(dims) or not all(0 <= i < visible for i in dims):
            raise ValueError(
                f"dims: {dims} must be distinct observation dims in 0..{visible - 1} "
                f"(the env has {d}, {self._privileged} of them privileged)"
            )
        weights = [float(w) for w in weights]
        if not weights or not all(0.0 < w <= 1.0 for w in weights):
            raise ValueError(f"weights: {weights} must be per-step weights in (0, 1]")
        self.env = env
        self.dims = np.asarray(dims, np.int64)
        self.weights = np.asarray(weights, np.float32).reshape(-1, 1)  # (W, 1)
        self.num_envs = int(env.num_envs)
        self._split = visible
        lo = np.broadcast_to(np.asarray(space.low, np.float32), (d,))
        hi = np.broadcast_to(np.asarray(space.high, np.float32), (d,))
        n_w = len(weights)
        low = np.concatenate([lo[:visible], np.tile(lo[self.dims], n_w), lo[visible:]])
        high = np.concatenate([hi[:visible], np.tile(hi[self.dims], n_w), hi[visible:]])
        self.single_observation_space = Box(low, high, dtype=np.float32)
        self.observation_space = Box(
            np.tile(low, (self.num_envs, 1)), np.tile(high, (self.num_envs, 1)), dtype=np.float32
        )
        self._ema = np.zeros((self.num_envs, n_w, len(dims)), np.float32)

    @classmethod
    def wrap_factory(
        cls, factory: Callable[..., Any], dims: Sequence[int | str], weights: Sequence[float]
    ) -> Callable[..., Any]:
        """``factory(num_envs, **options)`` whose envs are wrapped; it keeps ``factory``'s
        signature, so option probes (challenge, dynamics) still see the env's parameters."""

        @functools.wraps(factory)
        def make(*args: Any, **options: Any) -> Any:
            return cls(factory(*args, **options), dims, weights)

        return make

    # ------------------------------------------------------------------------------------------
    def __getattr__(self, name: str) -> Any:
        if name == "env":  # not set yet (e.g. while unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.env, name)

    @property
    def privileged_obs_dims(self) -> int:
        """The wrapped env's privileged dims, still the trailing ones."""
        return self._privileged

    @property
    def unwrapped(self) -> Any:
        return getattr(self.env, "unwrapped", self.env)

    def _augment(self, obs: np.ndarray, ema: np.ndarray) -> np.ndarray:
        flat = ema.reshape(ema.shape[0], -1)
        return np.concatenate([obs[:, : self._split], flat, obs[:, self._split :]], axis=1)

    # ------------------------------------------------------------------------------------------
    def reset(self, *, seed: Any = None, options: Any = None) -> tuple[np.ndarray, dict]:
        """Reset the env; the averages restart for the instances it resets (all, or those in
        ``options["reset_mask"]``, whose other instances keep their episodes)."""
        obs, info = self.env.reset(seed=seed, options=options)
        obs = np.asarray(obs, np.float32)
        if options and "reset_mask" in options:
            mask = np.asarray(options["reset_mask"], bool)
            self._ema[mask] = obs[mask][:, None, self.dims]
        else:
            self._ema[:] = obs[:, None, self.dims]
        return self._augment(obs, self._ema), info

    def step(self, actions: Any) -> tuple[np.ndarray, Any, Any, Any, dict]:
        obs, reward, terminated, truncated, info = self.env.step(actions)
        obs = np.asarray(obs, np.float32)
        done = np.asarray(terminated, bool) | np.asarray(truncated, bool)
        w = self.weights
        if done.any() and "final_obs" in info:
            final = np.array(info["final_obs"], dtype=object)  # a copy: the env's stays raw
            rows = [i for i in np.nonzero(done)[0] if final[i] is not None]
            if rows:
                last = np.stack([np.asarray(final[i], np.float32) for i in rows])
                ema_last = (1.0 - w) * self._ema[rows] + w * last[:, None, self.dims]
                for j, aug in zip(rows, self._augment(last, ema_last), strict=True):
                    final[j] = aug
            info = {**info, "final_obs": final}
        self._ema *= 1.0 - w
        self._ema += w * obs[:, None, self.dims]
        self._ema[done] = obs[done][:, None, self.dims]  # new episodes start their averages
        return self._augment(obs, self._ema), reward, terminated, truncated, info

    # ------------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """The wrapped env's state plus the averages and what they average (plain tensors and
        lists: a resumed run continues bit-exactly)."""
        return {
            "env": self.env.state_dict(),
            "ema": torch.from_numpy(self._ema.copy()),
            "dims": self.dims.tolist(),
            "weights": self.weights[:, 0].tolist(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`.

        Raises:
            ValueError: the state averages other dims or with other weights (the message
                starts with ``obs_ema``).
        """
        mine = (self.dims.tolist(), self.weights[:, 0].tolist())
        saved = (list(state.get("dims", mine[0])), list(state.get("weights", mine[1])))
        ema = np.asarray(state["ema"], np.float32)
        if saved != mine or ema.shape != self._ema.shape:
            raise ValueError(
                f"obs_ema: the state averages dims {saved[0]} with weights {saved[1]} over "
                f"{ema.shape[0]} instances; this wrapper averages {mine[0]} with {mine[1]} "
                f"over {self.num_envs}"
            )
        self.env.load_state_dict(state["env"])
        self._ema = ema.copy()


def _resolve_dims(env: Any, dims: Sequence[Any]) -> list[int]:
    """Observation indices for ``dims`` (ints, or names resolved by the env's ``obs_layout``)."""
    dims = list(dims)
    if not any(isinstance(x, str) for x in dims):
        return [int(i) for i in dims]
    layout = getattr(env, "obs_layout", None)
    if layout is None:
        raise ValueError(
            f"dims: {dims} names observation fields, but {type(env).__name__} declares no "
            "observation layout (obs_layout); give observation indices"
        )
    return layout.resolve(dims, "dims")
