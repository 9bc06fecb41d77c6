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
    "FOOT_LIFTER_K",
    "FOOT_LIFTER_SLACK",
    "TAU_EXO_BANDWIDTH",
    "TAU_EXO_MAX",
    "TAU_EXO_SLEW",
    "actuator_substep",
    "cuff_forces",
    "foot_lifter",
]

TAU_EXO_MAX = 60.0  # N m per joint [design]
TAU_EXO_BANDWIDTH = 0.010  # first-order actuator time constant (s)
TAU_EXO_SLEW = 2000.0  # N m/s hard slew limit
CUFF_RATIO = 0.6  # cuff at 0.6 of the segment length
# Passive foot lifters (the elastic straps of a Lokomat-type orthosis): slack down to
# FOOT_LIFTER_SLACK of plantarflexion, beyond it a dorsiflexing moment k (slack - q_a) per kg of
# body mass [design]: at 75 kg 75 N m/rad, 10 N m at 25 deg of plantarflexion. The slack lets
# the unimpaired push-off (to ~17 deg) through; the strap holds a dropping foot.
FOOT_LIFTER_K = 1.0  # N m/rad/kg
FOOT_LIFTER_SLACK = -0.30  # rad


def foot_lifter(q_a: np.ndarray, mass: np.ndarray, on: bool = True) -> tuple[np.ndarray, ...]:
    """Foot-lifter moment on the foot (N m, dorsiflexion +) and its stiffness ``-d tau/d q_a``,
    each ``(2, N)``; ``q_a``: ankle angles (rad), ``mass`` (N,) kg. Zero when ``on`` is False."""
    k = FOOT_LIFTER_K * mass * float(on)
    taut = q_a < FOOT_LIFTER_SLACK
    return np.where(taut, k * (FOOT_LIFTER_SLACK - q_a), 0.0), np.where(taut, k, 0.0)


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
