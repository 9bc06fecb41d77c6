"""The wheelchair's scripted baselines (human only, autopilot, fixed blend, tremor switch,
safety filter): :data:`BASELINES`, the env's ``SCRIPTED_POLICIES``.

Each is a :class:`~saferl.envs.vector.ScriptedPolicy`: ``reset(env)``, then ``act(obs, env)``
-> float32 ``(N, 3)`` actions in [-1, 1]; ``available(options)`` says in which ``action_mode``
it is defined. They read the observation through its named layout
(:data:`~saferl.envs.wheelchair.observation.OBS`: the fields every action mode shares) and may
read the env's state (they are baselines, not agents).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from saferl.envs.wheelchair.goals import infer_goal
from saferl.envs.wheelchair.maps import N_GOALS
from saferl.envs.wheelchair.observation import OBS, SECTOR_RANGE

if TYPE_CHECKING:
    from saferl.envs.wheelchair.env import WheelchairSCVecEnv

__all__ = [
    "BASELINES",
    "Autopilot",
    "FixedBlend",
    "HumanOnly",
    "SafetyFilter",
    "TremorSwitch",
]

f32 = np.float32
_JOY_MEAN = OBS["joystick_mean"].at
_JOY_STD = OBS["joystick_std"].at
_SECTORS = OBS["sectors"].at


class _Base:
    name = "base"

    @staticmethod
    def available(options: Mapping[str, Any]) -> bool:
        """Defined for an env built with ``options``: a command of the robot's own needs
        ``action_mode`` ``blend`` or ``assist``."""
        return options.get("action_mode", "blend") in ("blend", "assist")

    def reset(self, env: WheelchairSCVecEnv) -> None:
        pass

    def _action(self, alpha, v_r, w_r, env: WheelchairSCVecEnv) -> np.ndarray:
        """The env's action for authority ``alpha`` and robot command ``(v_r, w_r)``: in
        ``assist`` mode the correction of the planner's command that gives ``u_r`` (clipped to
        the action box, so within 0.5 u_max of the planner's command).

        Raises:
            ValueError: the baseline is not :meth:`available` in the env's ``action_mode``.
        """
        if not self.available({"action_mode": env.action_mode}):
            raise ValueError(
                f"action_mode: the {self.name} baseline is not defined for {env.action_mode!r}"
            )
        c = env.chair
        if env.action_mode == "assist":
            a1 = (v_r - env.planner_u[:, 0]) / f32(0.5 * c.v_max)
            a2 = (w_r - env.planner_u[:, 1]) / f32(0.5 * c.omega_max0)
        else:
            a1 = np.where(v_r >= 0, v_r / f32(c.v_max), v_r / f32(c.v_rev))
            a2 = w_r / f32(c.omega_max0)
        a = np.stack([np.broadcast_to(f32(2) * alpha - f32(1), v_r.shape), a1, a2], axis=1)
        return np.clip(a, -1, 1).astype(np.float32)


class HumanOnly(_Base):
    """alpha = 1: the user drives alone."""

    name = "human_only"

    @staticmethod
    def available(options: Mapping[str, Any]) -> bool:
        return True  # a0 = 1 (blend, assist) and a zero residual (residual) are the user alone

    def act(self, obs: np.ndarray, env: WheelchairSCVecEnv) -> np.ndarray:
        a = np.zeros((env.num_envs, 3), np.float32)
        a[:, 0] = 1.0
        return a


class Autopilot(_Base):
    """alpha = 0: drive to the most likely goal under a Bayesian posterior from the joystick.

    The likelihood of the observed joystick (mean over the last step) given goal g is
    ``exp(-|j - j_int(g)|^2 / (2 sigma^2))`` with ``j_int(g)`` the joystick an ideal user would
    push towards g (Dragan & Srinivasa 2013 style); the log-posterior is accumulated with a
    forgetting factor so the estimate can follow a change of mind (:func:`infer_goal`). In
    ``action_mode="assist"`` the chair's planner is this computation, and the baseline reads it.
    """

    name = "autopilot"
    alpha = 0.0

    def reset(self, env: WheelchairSCVecEnv) -> None:
        self.logp = np.zeros((env.num_envs, N_GOALS), np.float32)

    def _command(self, obs: np.ndarray, env: WheelchairSCVecEnv) -> tuple[np.ndarray, ...]:
        if env.action_mode == "assist":
            return env.planner_u[:, 0].copy(), env.planner_u[:, 1].copy()
        if getattr(self, "logp", None) is None or self.logp.shape[0] != env.num_envs:
            self.reset(env)
        self.logp[env.elapsed == 0] = 0.0
        j = infer_goal(
            self.logp,
            obs[:, _JOY_MEAN],
            env.candidate_joysticks(),
            env.PLANNER_SIGMA,
            env.PLANNER_FORGET,
        )
        return env.joystick_to_command(j, env.v)

    def act(self, obs: np.ndarray, env: WheelchairSCVecEnv) -> np.ndarray:
        v_r, w_r = self._command(obs, env)
        return self._action(f32(self.alpha), v_r, w_r, env)


class FixedBlend(Autopilot):
    """alpha = 0.5 between the user and the autopilot."""

    name = "fixed_blend"
    alpha = 0.5


class TremorSwitch(Autopilot):
    """Switched arbitration: the user drives alone (alpha = 1) while the joystick is steady
    (its standard deviation over the last step, observation field ``joystick_std``, has norm
    below 0.05), else the autopilot drives (alpha = 0)."""

    name = "tremor_switch"
    threshold = 0.05

    def act(self, obs: np.ndarray, env: WheelchairSCVecEnv) -> np.ndarray:
        v_r, w_r = self._command(obs, env)
        steady = np.sqrt((obs[:, _JOY_STD] ** 2).sum(axis=1)) < f32(self.threshold)
        return self._action(np.where(steady, f32(1), f32(0)), v_r, w_r, env)


class SafetyFilter(_Base):
    """The user's command with its speed scaled by the clearance in the heading sectors (VFH-like)."""

    name = "safety_filter"

    @staticmethod
    def available(options: Mapping[str, Any]) -> bool:
        # its command (the user's, slowed) is not within reach of assist's correction of the
        # planner's command
        return options.get("action_mode", "blend") == "blend"

    def act(self, obs: np.ndarray, env: WheelchairSCVecEnv) -> np.ndarray:
        vh, wh = env.joystick_to_command(obs[:, _JOY_MEAN], env.v)
        sect = obs[:, _SECTORS] * SECTOR_RANGE
        forward = np.minimum(sect[:, [0, 15]].min(axis=1), sect[:, [1, 14]].min(axis=1) + 0.1)
        backward = sect[:, 7:9].min(axis=1)
        clear = np.where(vh >= 0, forward, backward)
        scale = np.clip((clear - 0.05) / 0.6, 0.0, 1.0)
        return self._action(f32(0.0), vh * scale, wh, env)


#: name -> baseline class (a zero-argument factory)
BASELINES: dict[str, Callable[[], Any]] = {
    "human_only": HumanOnly,
    "autopilot": Autopilot,
    "fixed_blend": FixedBlend,
    "tremor_switch": TremorSwitch,
    "safety_filter": SafetyFilter,
}
