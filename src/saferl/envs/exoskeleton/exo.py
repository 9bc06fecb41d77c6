"""The exoskeleton: a hip-knee actuator per leg and the interaction forces at its cuffs.

Action ``a in [-1, 1]^4`` -> commanded torque ``a * TAU_EXO_MAX`` per joint (hip R, knee R, hip L,
knee L), followed with a first-order lag (``TAU_EXO_BANDWIDTH``) and a hard slew limit
(``TAU_EXO_SLEW``) per physics substep (:func:`actuator_substep`). The exo is massless with one
cuff per segment at ``CUFF_RATIO`` of its length, the cuff force perpendicular to the segment
(:func:`cuff_forces`). Units: N m, N, s.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "CUFF_RATIO",
    "TAU_EXO_BANDWIDTH",
    "TAU_EXO_MAX",
    "TAU_EXO_SLEW",
    "actuator_substep",
    "cuff_forces",
]

TAU_EXO_MAX = 60.0  # N m per joint [design]
TAU_EXO_BANDWIDTH = 0.010  # first-order actuator time constant (s)
TAU_EXO_SLEW = 2000.0  # N m/s hard slew limit
CUFF_RATIO = 0.6  # cuff at 0.6 of the segment length


def actuator_substep(tau: np.ndarray, cmd: np.ndarray, gain: float, slew: float) -> None:
    """One physics substep of the actuator, in place: ``tau += clip((cmd - tau) gain, +-slew)``.

    Args:
        tau: the delivered torque (N m), any shape, updated in place.
        cmd: the commanded torque (N m), same shape.
        gain: ``1 - exp(-dt / TAU_EXO_BANDWIDTH)`` for the substep ``dt``.
        slew: ``TAU_EXO_SLEW * dt`` (N m per substep).
    """
    step = (cmd - tau) * gain
    np.clip(step, -slew, slew, out=step)
    tau += step


def cuff_forces(
    tau_h: np.ndarray, tau_k: np.ndarray, qk: np.ndarray, thigh: np.ndarray, leg: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Thigh and shank cuff forces (N), each ``(2, N)`` (legs R, L).

    ``F_shank = |tau_k| / r_s`` and ``F_thigh = |tau_h - tau_k + (tau_k / r_s) L1 cos(q_k)| / r_t``
    with ``r_s = CUFF_RATIO * leg`` and ``r_t = CUFF_RATIO * thigh``.

    Args:
        tau_h, tau_k: exo hip and knee torques (N m), ``(2, N)``.
        qk: knee angles (rad), ``(2, N)``; ``thigh`` (L1), ``leg``: segment lengths (m), ``(N,)``.
    """
    rs = CUFF_RATIO * leg
    rt = CUFF_RATIO * thigh
    fsh = np.abs(tau_k) / rs
    fth = np.abs(tau_h - tau_k + tau_k / rs * thigh * np.cos(qk)) / rt
    return fth, fsh
