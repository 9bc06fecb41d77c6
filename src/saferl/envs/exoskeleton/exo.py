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
    "AAN_B",
    "AAN_K",
    "ASSIST_CORRECTION",
    "ASSIST_GAIN_MAX",
    "ASSIST_RATE",
    "CUFF_RATIO",
    "FOOT_LIFTER_K",
    "FOOT_LIFTER_SLACK",
    "ROM_GUARD_MARGIN",
    "TAU_EXO_BANDWIDTH",
    "TAU_EXO_MAX",
    "TAU_EXO_SLEW",
    "aan_command",
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

# The exo's own assist-as-needed controller (``action_mode="assist"`` and the ``aan_impedance``
# baseline): an impedance to the walker's reference at the walker's phase, scaled per joint by
# an assistance level, plus a bounded torque correction; the exo's ROM guard drops the part of
# the command that would push a joint further outside the safe range the therapist set (the
# contracture-shifted limits of the `rom` cost, less ROM_GUARD_MARGIN); the command then passes
# a rate limiter below the `torque_rate` cost threshold, so noise on the assistance settings is
# not torque-rate noise. Units: N m/rad, N m s/rad, N m, N m/s.
AAN_K = (200.0, 150.0)  # hip, knee: PD guidance's stiffness at assistance level 1
AAN_B = (10.0, 5.0)
ASSIST_GAIN_MAX = 1.5  # assistance level in [0, 1.5] (1: PD guidance's impedance)
ASSIST_CORRECTION = 15.0  # |torque correction| <= 15 N m (a quarter of TAU_EXO_MAX)
ASSIST_RATE = 450.0  # N m/s command rate limit (the torque_rate cost fires above 500)
ROM_GUARD_MARGIN = float(np.deg2rad(2.0))  # rad inside the safe range


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


def aan_command(
    err: np.ndarray,
    err_rate: np.ndarray,
    gain: np.ndarray,
    correction: np.ndarray,
    q: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    prev: np.ndarray,
    rate_step: float,
) -> np.ndarray:
    """The assist-as-needed controller's torque command (N m), ``(2, 2, N)`` (joint hip/knee,
    leg R/L, instance).

    ``tau = gain (K err + B err_rate) + correction``; where a joint is beyond its guarded limit
    (``q < lo`` or ``q > hi``) the component pushing it further out is dropped; clipped to
    ``+-TAU_EXO_MAX``; then ``prev + clip(tau - prev, +-rate_step)``.

    Args:
        err, err_rate: reference minus joint angle (rad) and rate (rad/s), ``(2, 2, N)``.
        gain: assistance level per joint (dimensionless), ``(2, 2, N)``.
        correction: added torque (N m), ``(2, 2, N)``.
        q: joint angles (rad); ``lo``, ``hi``: guarded limits (rad), ``(2, 2, N)``.
        prev: the previous command (N m), ``(2, 2, N)``.
        rate_step: the largest change per call (N m), ``ASSIST_RATE`` times the control step.
    """
    k = np.asarray(AAN_K, err.dtype)[:, None, None]
    b = np.asarray(AAN_B, err.dtype)[:, None, None]
    tau = gain * (k * err + b * err_rate) + correction
    tau = np.where(((q < lo) & (tau < 0.0)) | ((q > hi) & (tau > 0.0)), 0.0, tau)
    np.clip(tau, -TAU_EXO_MAX, TAU_EXO_MAX, out=tau)
    return prev + np.clip(tau - prev, -rate_step, rate_step)


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
