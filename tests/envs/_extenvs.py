"""External envs for the adapter tests, as a user would write them (importable as ``_extenvs``).

* ``CostPendulum-v0``: Gymnasium's real ``Pendulum-v1`` with a cost wrapper (cost 1 on steps
  where |angular velocity| > 4 rad/s, ``info["cost"]``), 60-step episodes; registered with
  Gymnasium on import, so ``gym:_extenvs:CostPendulum-v0`` works from a config.
* ``NoCostPendulum-v0``: the same without a cost in ``info``.
* :class:`SixTupleToy`: a small env of our own with Safety-Gymnasium's API (6-tuple ``step``,
  ``reset(seed=...) -> (obs, info)``), random-length episodes that terminate (a drifting point
  that must stay inside a radius), a cost when it is outside an inner radius, its own
  ``numpy`` RNG seeded in ``reset``, and a 6-tuple time limit as Safety-Gymnasium's
  ``make`` adds. ``make_six_tuple`` is its factory (``safety:_extenvs:make_six_tuple``).
"""

from __future__ import annotations

from typing import Any, ClassVar

import gymnasium as gym
import numpy as np

SPEED_LIMIT = 4.0


class PendulumCost(gym.Wrapper):
    """``info["cost"] = 1.0`` when the pendulum spins faster than ``SPEED_LIMIT`` rad/s."""

    def step(self, action: Any):
        obs, reward, terminated, truncated, info = self.env.step(action)
        info = dict(info)
        info["cost"] = float(abs(float(obs[2])) > SPEED_LIMIT)
        return obs, reward, terminated, truncated, info


def make_cost_pendulum(**kwargs: Any) -> gym.Env:
    return PendulumCost(gym.make("Pendulum-v1", **kwargs))


def make_no_cost_pendulum(**kwargs: Any) -> gym.Env:
    return gym.make("Pendulum-v1", **kwargs)


if "CostPendulum-v0" not in gym.registry:
    gym.register("CostPendulum-v0", entry_point=make_cost_pendulum, max_episode_steps=60)
    gym.register("NoCostPendulum-v0", entry_point=make_no_cost_pendulum, max_episode_steps=60)


class _Box:
    """A space as another Gymnasium version would have it: only low/high/shape/dtype/sample."""

    def __init__(self, low: float, high: float, shape: tuple[int, ...]) -> None:
        self.low = np.full(shape, low, np.float64)
        self.high = np.full(shape, high, np.float64)
        self.shape = shape
        self.dtype = np.dtype(np.float64)


class SixTupleToy:
    """A point drifting in the plane under noise and the action; Safety-Gymnasium's API.

    obs (4,): position, velocity. reward: progress towards the origin; cost: 1 outside radius
    1; terminated outside radius 3.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": []}

    def __init__(self, noise: float = 0.3) -> None:
        self.noise = float(noise)
        self.observation_space = _Box(-np.inf, np.inf, (4,))
        self.action_space = _Box(-1.0, 1.0, (2,))
        self.rng = np.random.default_rng()
        self.pos = np.zeros(2)
        self.vel = np.zeros(2)

    def _obs(self) -> np.ndarray:
        return np.concatenate([self.pos, self.vel])

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        self.pos = self.rng.uniform(-1.5, 1.5, 2)
        self.vel = np.zeros(2)
        return self._obs(), {"start": self.pos.copy()}

    def step(self, action):
        a = np.clip(np.asarray(action, np.float64), -1.0, 1.0)
        before = float(np.linalg.norm(self.pos))
        self.vel = 0.8 * self.vel + 0.1 * a + self.noise * self.rng.normal(size=2) * 0.1
        self.pos = self.pos + self.vel
        dist = float(np.linalg.norm(self.pos))
        reward = before - dist
        cost = float(dist > 1.0)
        terminated = dist > 3.0
        return self._obs(), reward, cost, terminated, False, {"dist": dist}


class SixTupleTimeLimit:
    """Safety-Gymnasium's ``make`` adds a time limit that speaks the 6-tuple API; so does this."""

    def __init__(self, env: SixTupleToy, max_steps: int) -> None:
        self.env = env
        self.max_steps = max_steps
        self.t = 0
        self.observation_space = env.observation_space
        self.action_space = env.action_space
        self.metadata = env.metadata

    def reset(self, **kwargs: Any):
        self.t = 0
        return self.env.reset(**kwargs)

    def step(self, action):
        obs, r, c, term, trunc, info = self.env.step(action)
        self.t += 1
        return obs, r, c, term, trunc or self.t >= self.max_steps, info


def make_six_tuple(noise: float = 0.3, max_steps: int = 40) -> SixTupleTimeLimit:
    return SixTupleTimeLimit(SixTupleToy(noise), max_steps)
