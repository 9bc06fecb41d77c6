"""The chair: mid-wheel-drive powered-wheelchair kinematics and its joystick mapping.

:class:`ChairParams` (typical indoor powered wheelchair **[design]**), :func:`chair_substep`
(motor controller lags and limits, then the exact unicycle arc), :func:`arc_step` and
:func:`joystick_to_command` (the chair's proportional joystick mapping). Units: SI, angles in
rad; state arrays float32, updated in place.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["CONTROL_DT", "ChairParams", "arc_step", "chair_substep", "joystick_to_command"]

f32 = np.float32
TWO_PI = f32(2 * np.pi)
CONTROL_DT = 0.1  # s: one control step = ChairParams.substeps physics steps


@dataclass(frozen=True)
class ChairParams:
    """Chair dynamics (a typical indoor powered wheelchair, values chosen for the model)."""

    v_max: float = 1.5  # m/s forward
    v_rev: float = 0.5  # m/s reverse
    omega_max0: float = 1.5  # rad/s at standstill
    tau_v: float = 0.25  # s
    tau_omega: float = 0.15  # s
    a_acc: float = 1.0  # m/s^2 (speeding up)
    a_dec: float = 1.5  # m/s^2 (slowing down)
    alpha_max: float = 3.0  # rad/s^2
    track: float = 0.55  # m (wheel base b)
    v_wheel_max: float = 1.6  # m/s per drive wheel
    disc_radius: float = 0.32  # m, footprint = two discs (0.64 m wide, 1.04 m long) ...
    disc_offset: float = 0.20  # ... at +-0.20 m along the heading
    cg_height: float = 0.55  # m
    dt: float = 0.02  # s physics
    substeps: int = 5  # per 0.1 s control step


def chair_substep(x, y, psi, v, w, vc, wc, chair: ChairParams) -> None:
    """Advance the chair by ``chair.dt`` in place (all float32 arrays of the same shape).

    Motor controller: first-order lags towards the command (exact discretisation of
    ``v' = (v_c - v) / tau_v``), rate-limited by ``a_acc`` when speeding up and ``a_dec`` when
    slowing down, and by ``alpha_max`` for the turn rate; drive-wheel speeds ``v -+ omega b/2``
    are limited to ``v_wheel_max`` by scaling the command ``(v_c, omega_c)`` (curvature
    preserved) and, during transients, the state ``(v, omega)``. The
    pose then follows the exact unicycle arc for constant ``(v, omega)`` over ``dt``.
    """
    c = chair
    dt = f32(c.dt)
    half_b = f32(c.track / 2)
    # the controller scales wheel-speed commands beyond the limit (curvature preserved) ...
    wheel_c = np.abs(vc) + np.abs(wc) * half_b
    sc = np.minimum(f32(1), f32(c.v_wheel_max) / np.maximum(wheel_c, f32(1e-6)))
    vc = vc * sc
    wc = wc * sc
    kv = f32(1 - np.exp(-c.dt / c.tau_v))
    kw = f32(1 - np.exp(-c.dt / c.tau_omega))
    dv = (vc - v) * kv
    lim = np.where(dv * v >= 0, f32(c.a_acc), f32(c.a_dec)) * dt
    v += np.clip(dv, -lim, lim)
    w += np.clip((wc - w) * kw, -f32(c.alpha_max) * dt, f32(c.alpha_max) * dt)
    # ... and the wheels never exceed it during the lagged transient either
    wheel = np.abs(v) + np.abs(w) * half_b
    scale = np.minimum(f32(1), f32(c.v_wheel_max) / np.maximum(wheel, f32(1e-6)))
    v *= scale
    w *= scale
    arc_step(x, y, psi, v, w, dt)


def arc_step(x, y, psi, v, w, dt) -> None:
    """Exact unicycle arc for constant (v, omega) over dt, in place (chord form, stable at 0)."""
    dpsi = w * dt
    chord = v * dt * np.sinc(dpsi / TWO_PI)  # sin(dpsi/2) / (dpsi/2)
    mid = psi + f32(0.5) * dpsi
    x += chord * np.cos(mid)
    y += chord * np.sin(mid)
    psi += dpsi


def joystick_to_command(
    j: np.ndarray, v: np.ndarray, chair: ChairParams
) -> tuple[np.ndarray, np.ndarray]:
    """Joystick ``(..., 2)`` = (turn, forward) in the unit disk -> float32 command
    ``(v_c, omega_c)`` (m/s, rad/s): forward ``j_y v_max`` (reverse ``j_y v_rev``), turn
    ``j_x omega_max0 (1 - 0.5 |v| / v_max)`` (the turn rate shrinks with the speed ``v``)."""
    c = chair
    jx, jy = j[..., 0], j[..., 1]
    vc = np.where(jy >= 0, f32(c.v_max), f32(c.v_rev)) * jy
    wmax = f32(c.omega_max0) * (f32(1) - f32(0.5 / c.v_max) * np.abs(v))
    return vc.astype(np.float32), (wmax * jx).astype(np.float32)
