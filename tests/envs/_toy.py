"""A tiny SafeVectorEnv used to test the base-class contract (not part of the package)."""

from __future__ import annotations

import numpy as np
from gymnasium.spaces import Box

from saferl.envs.vector import SafeVectorEnv, SingleEnv
from saferl.safety import Constraint, ConstraintSet

TOY_CONSTRAINTS = ConstraintSet(
    [
        Constraint("far", "position beyond 0.5", threshold="|x| > 0.5"),
        Constraint("fast", "large action", threshold="|a| > 0.8"),
    ],
    limit=4.0,
    strict_limit=2.0,
    episode_length=20,
)


class ToyVecEnv(SafeVectorEnv):
    """x' = x + 0.3 a + 0.1 noise; terminated when |x| > 1; truncated at 20 steps."""

    def __init__(self, num_envs=1, *, instance_offset=0, render_mode=None, horizon=20):
        super().__init__(
            num_envs,
            observation_space=Box(-np.inf, np.inf, (2,), np.float32),
            action_space=Box(-1.0, 1.0, (1,), np.float32),
            constraints=TOY_CONSTRAINTS,
            max_episode_steps=horizon,
            instance_offset=instance_offset,
            render_mode=render_mode,
        )
        self.x = np.zeros(num_envs, np.float32)
        self.goal = np.zeros(num_envs, np.float32)

    def _reset_instances(self, idx):
        u = self.rng.uniform(2, idx)
        self.x[idx] = u[:, 0] - 0.5
        self.goal[idx] = 2 * u[:, 1] - 1

    def _step_batch(self, actions):
        a = actions[:, 0]
        noise = self.rng.normal(1)[:, 0]
        self.x += 0.3 * a + 0.1 * noise
        reward = -np.abs(self.x - self.goal)
        terminated = np.abs(self.x) > 1.0
        comps = {
            "far": (np.abs(self.x) > 0.5).astype(np.float32),
            "fast": (np.abs(a) > 0.8).astype(np.float32),
        }
        return reward, terminated, comps, {"x": self.x.copy()}

    def _observe(self, idx=None):
        if idx is None:
            return np.stack([self.x, self.goal], axis=1)
        return np.stack([self.x[idx], self.goal[idx]], axis=1)

    def _get_state(self):
        return {"x": self.x, "goal": self.goal}

    def _set_state(self, state):
        self.x[:] = state["x"]
        self.goal[:] = state["goal"]


class ToyEnv(SingleEnv):
    vector_cls = ToyVecEnv
