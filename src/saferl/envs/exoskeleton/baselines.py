"""The exoskeleton's scripted baselines: no torque, Lokomat-like phase-based PD guidance, a
MyoAssist-style hip spline pulse, and the reference assist-as-needed impedance controller.
:data:`BASELINES` is the env's ``SCRIPTED_POLICIES``.

Each is a :class:`~saferl.envs.vector.ScriptedPolicy`: ``reset(env)``, then ``act(obs, env)`` ->
float32 actions in [-1, 1] in the env's ``action_mode`` (``torque``: ``(N, 4)`` exo torque /
``TAU_EXO_MAX``; hip R, knee R, hip L, knee L). ``available(options)`` says in which action
modes a baseline is defined (``zero_torque`` and ``aan_impedance`` in both, the torque patterns
only in ``torque``). They read the walker's state and phase from the env (baselines, not
agents).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from saferl.envs.exoskeleton.exo import ASSIST_GAIN_MAX, ASSIST_RATE, TAU_EXO_MAX, aan_command

if TYPE_CHECKING:
    from saferl.envs.exoskeleton.env import ExoGaitVecEnv

__all__ = ["BASELINES", "AANImpedance", "PDGuidance", "SplinePulse", "ZeroTorque"]

_CONTROL_DT = 0.01  # s, the env's control step


def _torque_only(options: Mapping[str, Any]) -> bool:
    return options.get("action_mode", "torque") == "torque"


def _check_mode(policy: Any, env: ExoGaitVecEnv) -> None:
    if not policy.available({"action_mode": env.action_mode}):
        raise ValueError(
            f"action_mode: the {policy.name} baseline is not defined for {env.action_mode!r}"
        )


class ZeroTorque:
    """No exo torque: the human walks alone (``assist``: assistance 0, no correction)."""

    name = "zero_torque"

    @staticmethod
    def available(options: Mapping[str, Any]) -> bool:
        return True

    def reset(self, env: ExoGaitVecEnv) -> None:
        pass

    def act(self, obs: np.ndarray, env: ExoGaitVecEnv) -> np.ndarray:
        if env.action_mode == "assist":
            a = np.zeros((env.num_envs, 8), np.float32)
            a[:, :4] = -1.0
            return a
        return np.zeros((env.num_envs, 4), np.float32)


class AANImpedance:
    """The reference assist-as-needed controller: the exo's own impedance
    (``exo.aan_command``) at assistance level 1 (PD guidance's stiffness and damping) with its
    ROM guard (no torque pushing a joint further outside the contracture-shifted safe range)
    and its 450 N m/s rate limit, no correction.

    In ``action_mode="assist"`` it is the action ``(1/3, 1/3, 1/3, 1/3, 0, 0, 0, 0)``; in
    ``torque`` mode it runs the same controller itself (its last command, per instance,
    restarts from zero with each episode).
    """

    name = "aan_impedance"

    @staticmethod
    def available(options: Mapping[str, Any]) -> bool:
        return True

    def reset(self, env: ExoGaitVecEnv) -> None:
        self.prev = np.zeros((2, 2, env.num_envs), env.dtype)

    def act(self, obs: np.ndarray, env: ExoGaitVecEnv) -> np.ndarray:
        n = env.num_envs
        if env.action_mode == "assist":
            a = np.zeros((n, 8), np.float32)
            a[:, :4] = 2.0 / ASSIST_GAIN_MAX - 1.0
            return a
        if getattr(self, "prev", None) is None or self.prev.shape[-1] != n:
            self.reset(env)
        self.prev[..., env.elapsed == 0] = 0.0  # a new episode: the exo starts from zero
        err, err_rate, q, lo, hi = env.aan_inputs()
        one, zero = np.ones_like(err), np.zeros_like(err)
        self.prev = aan_command(
            err, err_rate, one, zero, q, lo, hi, self.prev, ASSIST_RATE * _CONTROL_DT
        )
        a = np.empty((n, 4), np.float32)
        a[:, 0::2] = (self.prev[0] / TAU_EXO_MAX).T
        a[:, 1::2] = (self.prev[1] / TAU_EXO_MAX).T
        return a


class PDGuidance:
    """Lokomat-like phase-based PD to the reference at the human's phase, 60 N m cap.

    ``tau = K (q_ref - q) + B (qdot_ref - qdot)`` with (K, B) = (200, 10) hip and (150, 5) knee.
    """

    name = "pd_guidance"
    K = (200.0, 150.0)
    B = (10.0, 5.0)
    available = staticmethod(_torque_only)

    def reset(self, env: ExoGaitVecEnv) -> None:
        pass

    def act(self, obs: np.ndarray, env: ExoGaitVecEnv) -> np.ndarray:
        _check_mode(self, env)
        hum = env.human
        qh, qk, qdh, qdk = env.sim.joint_angles()
        th = self.K[0] * (hum.qr_h - qh) + self.B[0] * (hum.qdr_h - qdh)
        tk = self.K[1] * (hum.qr_k - qk) + self.B[1] * (hum.qdr_k - qdk)
        a = np.empty((env.num_envs, 4), np.float32)
        a[:, 0::2] = (th / TAU_EXO_MAX).T
        a[:, 1::2] = (tk / TAU_EXO_MAX).T
        return np.clip(a, -1.0, 1.0)


class SplinePulse:
    """MyoAssist-style 4-parameter spline torque pulse, adapted to hip flexion around swing.

    Parameters (Poggensee & Collins 2021 defaults): peak 0.5 (of 60 N m), rise 0.467, peak time
    0.90, fall 0.075, as fractions of a window that spans the leg's phase [0.30, 0.80] (late
    stance to mid swing); cubic (smoothstep) rise and fall.
    """

    name = "spline_pulse"
    peak, rise, peak_time, fall = 0.5, 0.467, 0.90, 0.075
    window = (0.30, 0.80)
    available = staticmethod(_torque_only)

    def reset(self, env: ExoGaitVecEnv) -> None:
        pass

    def act(self, obs: np.ndarray, env: ExoGaitVecEnv) -> np.ndarray:
        _check_mode(self, env)
        lp = env.human.leg_phase.astype(np.float64)
        w0, w1 = self.window
        u = (lp - w0) / (w1 - w0)
        t_on, t_pk, t_off = self.peak_time - self.rise, self.peak_time, self.peak_time + self.fall
        up = np.clip((u - t_on) / (t_pk - t_on), 0.0, 1.0)
        down = np.clip((t_off - u) / (t_off - t_pk), 0.0, 1.0)
        s = np.where(u <= t_pk, up, down)
        s = s * s * (3.0 - 2.0 * s)
        a = np.zeros((env.num_envs, 4), np.float32)
        a[:, 0::2] = (self.peak * s).T
        return a


#: name -> baseline class (a zero-argument factory)
BASELINES: dict[str, Callable[[], Any]] = {
    "zero_torque": ZeroTorque,
    "pd_guidance": PDGuidance,
    "spline_pulse": SplinePulse,
    "aan_impedance": AANImpedance,
}
