"""The exoskeleton's scripted baselines: no torque, Lokomat-like phase-based PD guidance and a
MyoAssist-style hip spline pulse. :data:`BASELINES` is the env's ``SCRIPTED_POLICIES``.

Each is a :class:`~saferl.envs.vector.ScriptedPolicy`: ``reset(env)``, then ``act(obs, env)`` ->
float32 ``(N, 4)`` actions in [-1, 1] (exo torque / ``TAU_EXO_MAX``; hip R, knee R, hip L, knee
L). They read the walker's state and phase from the env (baselines, not agents).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from saferl.envs.exoskeleton.exo import TAU_EXO_MAX

if TYPE_CHECKING:
    from saferl.envs.exoskeleton.env import ExoGaitVecEnv

__all__ = ["BASELINES", "PDGuidance", "SplinePulse", "ZeroTorque"]


class ZeroTorque:
    """No exo torque: the human walks alone."""

    name = "zero_torque"

    def reset(self, env: ExoGaitVecEnv) -> None:
        pass

    def act(self, obs: np.ndarray, env: ExoGaitVecEnv) -> np.ndarray:
        return np.zeros((env.num_envs, 4), np.float32)


class PDGuidance:
    """Lokomat-like phase-based PD to the reference at the human's phase, 60 N m cap.

    ``tau = K (q_ref - q) + B (qdot_ref - qdot)`` with (K, B) = (200, 10) hip and (150, 5) knee.
    """

    name = "pd_guidance"
    K = (200.0, 150.0)
    B = (10.0, 5.0)

    def reset(self, env: ExoGaitVecEnv) -> None:
        pass

    def act(self, obs: np.ndarray, env: ExoGaitVecEnv) -> np.ndarray:
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

    def reset(self, env: ExoGaitVecEnv) -> None:
        pass

    def act(self, obs: np.ndarray, env: ExoGaitVecEnv) -> np.ndarray:
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
}
