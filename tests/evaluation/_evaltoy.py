"""A tiny batched env with the options evaluation needs (not part of the package).

1-D reaching: ``x' = x + 0.3 gain a + noise``; success when ``|x - goal| < 0.1`` (terminated),
crash when ``|x| > 1.5`` (terminated), truncated at 30 steps. ``impairment`` scales a "human"
disturbance, ``challenge`` widens the hazard zone, ``randomize_dynamics`` draws ``gain`` per episode.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from gymnasium.spaces import Box

from saferl.envs.vector import SafeVectorEnv
from saferl.safety import Constraint, ConstraintSet

NOISE = {"none": 0.0, "mild": 0.05, "moderate": 0.15, "severe": 0.3}
HAZARD = {"easy": 0.9, "standard": 0.6, "hard": 0.3}


class _GoToGoal:
    name = "go_to_goal"

    def reset(self, env):
        pass

    def act(self, obs, env):
        return np.clip(3.0 * (env.goal - env.x), -1, 1)[:, None].astype(np.float32)


class _Reckless:
    name = "reckless"

    def reset(self, env):
        pass

    def act(self, obs, env):
        return np.ones((env.num_envs, 1), np.float32)


class EvalToyVecEnv(SafeVectorEnv):
    SCRIPTED_POLICIES: ClassVar[dict[str, Any]] = {"go_to_goal": _GoToGoal, "reckless": _Reckless}

    def __init__(
        self,
        num_envs=1,
        *,
        instance_offset=0,
        render_mode=None,
        impairment="none",
        challenge="standard",
        randomize_dynamics=False,
    ):
        if impairment not in NOISE:
            raise ValueError(f"impairment must be one of {list(NOISE)}")
        if challenge not in HAZARD:
            raise ValueError(f"challenge must be one of {list(HAZARD)}")
        super().__init__(
            num_envs,
            observation_space=Box(-np.inf, np.inf, (2,), np.float32),
            action_space=Box(-1.0, 1.0, (1,), np.float32),
            constraints=ConstraintSet(
                [
                    Constraint("hazard", "inside the hazard zone"),
                    Constraint("fast", "large action", threshold="|a| > 0.9"),
                ],
                limit=3.0,
                episode_length=30,
            ),
            max_episode_steps=30,
            instance_offset=instance_offset,
            render_mode=render_mode,
        )
        self.noise = NOISE[impairment]
        self.hazard = HAZARD[challenge]
        self.randomize = randomize_dynamics
        self.x = np.zeros(num_envs, np.float32)
        self.goal = np.zeros(num_envs, np.float32)
        self.gain = np.ones(num_envs, np.float32)

    def _reset_instances(self, idx):
        u = self.rng.uniform(3, idx)
        self.x[idx] = u[:, 0] - 0.5
        self.goal[idx] = np.where(u[:, 1] < 0.5, -1.0, 1.0) * (0.5 + 0.4 * u[:, 2])
        if self.randomize:
            self.gain[idx] = 0.7 + 0.6 * self.rng.uniform(1, idx)[:, 0]

    def _step_batch(self, actions):
        a = actions[:, 0]
        z = self.rng.normal(1)[:, 0]
        self.x += 0.3 * self.gain * a + (0.02 + self.noise) * z
        dist = np.abs(self.x - self.goal)
        success = dist < 0.1
        crash = np.abs(self.x) > 1.5
        reward = (-dist + 5.0 * success).astype(np.float32)
        comps = {
            "hazard": (np.abs(self.x) > self.hazard).astype(np.float32),
            "fast": (np.abs(a) > 0.9).astype(np.float32),
        }
        return reward, success | crash, comps, {"success": success.copy()}

    def _observe(self, idx=None):
        if idx is None:
            return np.stack([self.x, self.goal], axis=1)
        return np.stack([self.x[idx], self.goal[idx]], axis=1)

    def _get_state(self):
        return {"x": self.x, "goal": self.goal, "gain": self.gain}

    def _set_state(self, state):
        self.x[:] = state["x"]
        self.goal[:] = state["goal"]
        self.gain[:] = state["gain"]


def make_vec(num_envs=1, *, impairment="none", challenge="standard", randomize_dynamics=False):
    return EvalToyVecEnv(
        num_envs,
        impairment=impairment,
        challenge=challenge,
        randomize_dynamics=randomize_dynamics,
    )
