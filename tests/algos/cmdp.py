"""Tiny natively batched constrained envs with known answers (test helpers, not tests).

:class:`GaussianBanditCMDP` is a one-step CMDP: every episode is one step, the observation is
constant, reward ``r = sum(a)`` and cost ``c = sum(a^2)`` (actions clipped to ``[-2, 2]^k``).
Its constrained optimum over deterministic policies is ``max sum(a) s.t. sum(a^2) <= d``, i.e.
``a* = sqrt(d / k) * (1, ..., 1)`` with return ``sqrt(k d)``; a Gaussian policy with standard
deviation ``sigma`` pays ``k sigma^2`` extra cost, so its constrained optimum is
``mu = sqrt((d - k sigma^2) / k)`` per dimension, tending to ``a*`` as ``sigma`` shrinks.
Unconstrained, the return grows with ``mu`` until the action box: the cost goes to ``4k``.
With ``component_limits`` each dimension's ``a_k^2`` is a separate constraint with its own limit
``d_k`` (optimum ``a_k = sqrt(d_k)``, multiplier ``1 / (2 sqrt(d_k))``).
:class:`LevelBanditCMDP` draws a hidden level per episode (``info["level"]``, not observed) that
scales the cost: a level-blind policy meets every level's limit only by keeping the heaviest
level's cost within it.
``noise`` adds zero-mean Gaussian noise of that standard deviation to every reward and cost
(same expectations, so the same optimum): the surrogate gradients g and b become noisy.

:class:`ChainEnv` has deterministic dynamics and a fixed horizon, for collector tests.
"""

from __future__ import annotations

from typing import ClassVar

import gymnasium as gym
import numpy as np
from gymnasium.spaces import Box
from gymnasium.vector import AutoresetMode

from saferl.safety import Constraint, ConstraintSet


class GaussianBanditCMDP(gym.vector.VectorEnv):
    metadata: ClassVar[dict] = {"autoreset_mode": AutoresetMode.SAME_STEP}

    def __init__(
        self,
        num_envs: int = 64,
        act_dim: int = 2,
        limit: float = 1.0,
        component_limits: list[float] | None = None,
        noise: float = 0.0,
        seed: int = 0,
    ) -> None:
        self.num_envs = num_envs
        self.noise = float(noise)
        self._rng = np.random.default_rng(seed)
        self.single_observation_space = Box(-np.inf, np.inf, (2,), np.float32)
        self.single_action_space = Box(-2.0, 2.0, (act_dim,), np.float32)
        self.observation_space = Box(-np.inf, np.inf, (num_envs, 2), np.float32)
        self.action_space = Box(-2.0, 2.0, (num_envs, act_dim), np.float32)
        if component_limits is None:
            comps = [Constraint("energy", "squared action", unit="a^2")]
        else:  # one component per action dimension, a_k^2, with its own limit
            comps = [
                Constraint(f"a{k}", f"squared action {k}", unit="a^2", limit=lim)
                for k, lim in enumerate(component_limits)
            ]
        self.split = component_limits is not None
        self.constraints = ConstraintSet(comps, limit=limit, combine_mode="sum", episode_length=1)
        self.max_episode_steps = 1
        self._obs = np.ones((num_envs, 2), np.float32)

    def reset(self, *, seed=None, options=None):
        return self._obs.copy(), {}

    def step(self, actions):
        a = np.clip(np.asarray(actions, np.float32), -2.0, 2.0)
        reward = a.sum(1).astype(np.float32)
        cost = (a * a).sum(1).astype(np.float32)
        if self.noise > 0:
            reward += (self.noise * self._rng.standard_normal(self.num_envs)).astype(np.float32)
            cost += (self.noise * self._rng.standard_normal(self.num_envs)).astype(np.float32)
        terminated = np.ones(self.num_envs, bool)
        truncated = np.zeros(self.num_envs, bool)
        final = np.empty(self.num_envs, dtype=object)
        for i in range(self.num_envs):
            final[i] = self._obs[i].copy()
        info = {
            "cost": cost,
            "cost_components": (
                {f"a{k}": a[:, k] * a[:, k] for k in range(a.shape[1])}
                if self.split
                else {"energy": cost}
            ),
            "final_obs": final,
            "_final_obs": np.ones(self.num_envs, bool),
        }
        return self._obs.copy(), reward, terminated, truncated, info


class ContextBanditCMDP(GaussianBanditCMDP):
    """:class:`GaussianBanditCMDP` plus a hidden per-episode context ``z ~ N(0, 1)`` that adds
    ``scale * z`` to the reward: the optimum is unchanged, but every return carries variance
    the policy can do nothing about. The observation is ``[1, 1, z]`` with ``z`` as the one
    privileged (trailing) dim, the one only an asymmetric critic reads; with
    ``observe_context=False`` it is ``[1, 1]`` and nothing can see ``z``."""

    def __init__(
        self,
        num_envs: int = 64,
        act_dim: int = 2,
        limit: float = 1.0,
        *,
        scale: float = 5.0,
        observe_context: bool = True,
        seed: int = 0,
    ) -> None:
        super().__init__(num_envs, act_dim, limit, seed=seed)
        self.scale = float(scale)
        self.privileged_obs_dims = 1 if observe_context else 0
        d = 2 + self.privileged_obs_dims
        self.single_observation_space = Box(-np.inf, np.inf, (d,), np.float32)
        self.observation_space = Box(-np.inf, np.inf, (num_envs, d), np.float32)
        self._z = self._rng.standard_normal(num_envs).astype(np.float32)

    def _context_obs(self) -> np.ndarray:
        ones = np.ones((self.num_envs, 2), np.float32)
        return np.concatenate([ones, self._z[:, None]], 1) if self.privileged_obs_dims else ones

    def reset(self, *, seed=None, options=None):
        return self._context_obs(), {}

    def step(self, actions):
        _, reward, terminated, truncated, info = super().step(actions)
        reward = reward + self.scale * self._z
        final = np.empty(self.num_envs, dtype=object)
        obs_before = self._context_obs()
        for i in range(self.num_envs):
            final[i] = obs_before[i]
        info["final_obs"] = final
        self._z = self._rng.standard_normal(self.num_envs).astype(np.float32)  # next episodes
        return self._context_obs(), reward, terminated, truncated, info


class LevelBanditCMDP(GaussianBanditCMDP):
    """:class:`GaussianBanditCMDP` whose cost is ``weights[z] * sum(a^2)`` for a per-episode
    level ``z`` drawn uniformly (or with ``probs``) (``info["level"]``, int8; the observation does not show it).

    With one limit ``d`` per level and a level-blind policy the optimum keeps the heaviest
    level at its limit: ``E[sum(a^2)] = d / max(weights)``; a limit on the population's mean
    cost only gives ``E[sum(a^2)] = d / mean(weights)``, which the heavy level exceeds."""

    INFO_LEVELS: ClassVar[dict] = {"level": ("light", "heavy")}

    def __init__(
        self,
        num_envs: int = 64,
        act_dim: int = 2,
        limit: float = 1.0,
        *,
        weights: tuple[float, ...] = (0.5, 1.5),
        probs: tuple[float, ...] | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__(num_envs, act_dim, limit, seed=seed)
        self.weights = np.asarray(weights, np.float32)
        self.probs = probs
        if len(weights) != 2:
            self.INFO_LEVELS = {"level": tuple(f"L{k}" for k in range(len(weights)))}
        self._level = self._draw()

    def _draw(self) -> np.ndarray:
        k = len(self.weights)
        if self.probs is None:
            return self._rng.integers(0, k, self.num_envs).astype(np.int8)
        return self._rng.choice(k, self.num_envs, p=self.probs).astype(np.int8)

    def step(self, actions):
        obs, reward, terminated, truncated, info = super().step(actions)
        w = self.weights[self._level]
        info["cost"] = (info["cost"] * w).astype(np.float32)
        info["cost_components"] = {"energy": info["cost"]}
        info["level"] = self._level.copy()
        self._level = self._draw()
        return obs, reward, terminated, truncated, info


class ChainEnv(gym.vector.VectorEnv):
    """obs = [t, instance]; reward = 1 + t, cost = 0.5 per step; instance 0 terminates at t=2,
    the others are truncated at ``horizon``. Same-step autoreset with ``final_obs``."""

    metadata: ClassVar[dict] = {"autoreset_mode": AutoresetMode.SAME_STEP}

    def __init__(self, num_envs: int = 2, horizon: int = 3) -> None:
        self.num_envs = num_envs
        self.horizon = horizon
        self.max_episode_steps = horizon
        self.single_observation_space = Box(-np.inf, np.inf, (2,), np.float32)
        self.single_action_space = Box(-1.0, 1.0, (1,), np.float32)
        self.observation_space = Box(-np.inf, np.inf, (num_envs, 2), np.float32)
        self.action_space = Box(-1.0, 1.0, (num_envs, 1), np.float32)
        self.t = np.zeros(num_envs, np.int64)

    def _obs(self):
        return np.stack([self.t, np.arange(self.num_envs)], 1).astype(np.float32)

    def reset(self, *, seed=None, options=None):
        self.t[:] = 0
        return self._obs(), {}

    def step(self, actions):
        reward = (1.0 + self.t).astype(np.float32)
        cost = np.full(self.num_envs, 0.5, np.float32)
        self.t += 1
        terminated = np.zeros(self.num_envs, bool)
        terminated[0] = self.t[0] == 2
        truncated = (self.t >= self.horizon) & ~terminated
        done = terminated | truncated
        info = {"cost": cost}
        if done.any():
            final = np.empty(self.num_envs, dtype=object)
            obs_before = self._obs()
            for i in np.nonzero(done)[0]:
                final[i] = obs_before[i]
            info["final_obs"] = final
            info["_final_obs"] = done.copy()
            self.t[done] = 0
        return self._obs(), reward, terminated, truncated, info
