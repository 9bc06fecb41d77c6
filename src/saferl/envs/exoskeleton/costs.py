"""The exoskeleton's costs: named thresholds, the constraint set rendered from them, and the
per-step evaluation.

:class:`CostThresholds` holds every threshold once; :func:`exo_constraints` writes the
constraint descriptions from it and :func:`step_costs` compares against it. Costs are per-step
indicators combined by their union, with the Safety-Gymnasium limit rate: 25 per 1000-step
episode (2.5 %), strict 10 (1 %).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from saferl.safety import Constraint, ConstraintSet

__all__ = [
    "COSTS",
    "EPISODE_STEPS",
    "EXO_CONSTRAINTS",
    "CostThresholds",
    "exo_constraints",
    "step_costs",
]

EPISODE_STEPS = 1000


@dataclass(frozen=True)
class CostThresholds:
    """Where each cost indicator fires (angles in deg, speeds in rad/s, forces in N)."""

    hip_rom_deg: tuple[float, float] = (-25.0, 45.0)  # hip extension, flexion limits
    # knee hyperextension, flexion limits; -10 deg, not the -5 deg first designed: the
    # passive hyperextension stop sits near -7.5 deg (docs/envs/exoskeleton.md)
    knee_rom_deg: tuple[float, float] = (-10.0, 75.0)
    # `rom` counts a joint outside its safe range only while the exo's torque at that joint
    # pushes it further out by more than this (N m): the exo's doing, not a contracture the
    # walker reaches on its own (docs/envs/exoskeleton.md)
    rom_push_torque: float = 2.0
    hip_speed: float = 5.0  # rad/s, ~1.3x the normative peak
    knee_speed: float = 9.0  # rad/s
    cuff_thigh: float = 220.0  # N (ISO/TS 15066 Table A.2 quasi-static)
    cuff_shank: float = 130.0  # N
    torque_rate: float = 500.0  # N m/s, over one 10 ms control step
    # pelvis height / walking height y0 below which it has sunk into the harness (0.90; first
    # designed 0.85 of a lower y0, see docs/envs/exoskeleton.md)
    collapse_ratio: float = 0.90
    # leg phase window of late swing (first designed from 0.62: this model unloads the foot
    # by phase 0.675, see docs/envs/exoskeleton.md) ...
    trip_window: tuple[float, float] = (0.68, 0.95)
    trip_load: float = 0.05  # ... in which a foot load F_n above this x M g is a trip


COSTS = CostThresholds()


def exo_constraints(t: CostThresholds = COSTS, episode_steps: int = EPISODE_STEPS) -> ConstraintSet:
    """The env's constraints, their thresholds written from ``t``; limit 0.025 x
    ``episode_steps`` (strict 0.01 x), i.e. 25 (10) per 1000-step episode."""
    h, k = t.hip_rom_deg, t.knee_rom_deg
    limits = {"limit": 25.0, "strict_limit": 10.0}
    if episode_steps != EPISODE_STEPS:
        limits = {"limit": 0.025 * episode_steps, "strict_limit": 0.01 * episode_steps}
    return ConstraintSet(
        [
            Constraint(
                "rom",
                "the exo pushes a joint further outside its safe range of motion "
                "(contracture-shifted)",
                threshold=f"hip [{h[0]:g}, {h[1]:g}] deg, knee [{k[0]:g}, {k[1]:g}] deg, minus "
                f"contracture shifts, while the exo torque at that joint points outwards by more "
                f"than {t.rom_push_torque:g} N m",
                source="reference ROM plus margin [design]; exo-caused only, "
                "docs/envs/exoskeleton.md",
            ),
            Constraint(
                "joint_speed",
                "joint angular speed above ~1.3x the normative peak",
                threshold=f"|qdot_hip| > {t.hip_speed:g} rad/s or |qdot_knee| > "
                f"{t.knee_speed:g} rad/s",
                source="[design], docs/envs/exoskeleton.md",
            ),
            Constraint(
                "cuff_force",
                "interaction force at a thigh or shank cuff",
                threshold=f"F_thigh > {t.cuff_thigh:g} N or F_shank > {t.cuff_shank:g} N",
                source="ISO/TS 15066:2016 Table A.2 quasi-static limits [verify]",
            ),
            Constraint(
                "torque_rate",
                "exo torque rate (comfort/jerk proxy)",
                threshold=f"|d tau_exo / dt| > {t.torque_rate:g} N m/s over a 10 ms step",
                source="[design]",
            ),
            Constraint(
                "collapse",
                "pelvis sunk into the harness-catch zone",
                threshold=f"y_p < {t.collapse_ratio:.2f} y0 (pelvis "
                f"{round(100 * (1 - t.collapse_ratio)):g} % below its walking height)",
                source="[design]",
            ),
            Constraint(
                "trip",
                "foot loaded during swing (toe drag / scuff)",
                threshold=f"phase in [{t.trip_window[0]:g}, {t.trip_window[1]:g}] and F_n > "
                f"{t.trip_load:g} M g",
                source="stroke toe-drag hazard [design]",
            ),
        ],
        episode_length=int(episode_steps),
        **limits,
    )


EXO_CONSTRAINTS = exo_constraints()


def step_costs(
    t: CostThresholds,
    qh: np.ndarray,
    qk: np.ndarray,
    hip_lo: np.ndarray,
    knee_hi: np.ndarray,
    vh: np.ndarray,
    vk: np.ndarray,
    f_thigh: np.ndarray,
    f_shank: np.ndarray,
    rate: np.ndarray,
    height_ratio: np.ndarray,
    leg_phase: np.ndarray,
    load: np.ndarray,
    tau_h: np.ndarray,
    tau_k: np.ndarray,
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The step's cost indicators and their magnitude (the sum of normalised excesses).

    Args:
        t: the thresholds.
        qh, qk: hip and knee angles (rad), ``(2, N)``; ``hip_lo``, ``knee_hi``: the
            per-instance contracture-shifted hip-extension and knee-flexion limits (rad),
            ``(2, N)``.
        vh, vk: joint speeds over the control step (rad/s), ``(2, N)``.
        f_thigh, f_shank: cuff forces (N), ``(2, N)``.
        rate: the larger exo torque rate over the step (N m/s), ``(N,)``.
        height_ratio: pelvis height / walking height ``y_p / y0``, ``(N,)``.
        leg_phase: each leg's gait phase in [0, 1), ``(2, N)``; ``load``: foot load
            ``F_n / (M g)``, ``(2, N)``.
        tau_h, tau_k: the delivered exo hip and knee torques (N m), ``(2, N)``: a joint
            outside its range counts for ``rom`` only while the exo pushes it further out
            (by more than ``t.rom_push_torque``).

    Returns:
        ``components`` (name -> float32 ``(N,)`` in {0, 1}) and ``magnitude`` float32 ``(N,)``.
    """
    hip_hi = np.deg2rad(t.hip_rom_deg[1])
    knee_lo = np.deg2rad(t.knee_rom_deg[0])
    push = t.rom_push_torque
    rom_ex = (
        np.where(tau_h < -push, np.maximum(hip_lo - qh, 0.0), 0.0)
        + np.where(tau_h > push, np.maximum(qh - hip_hi, 0.0), 0.0)
        + np.where(tau_k < -push, np.maximum(knee_lo - qk, 0.0), 0.0)
        + np.where(tau_k > push, np.maximum(qk - knee_hi, 0.0), 0.0)
    ).sum(axis=0)
    spd_ex = (
        np.maximum(np.abs(vh) / t.hip_speed - 1.0, 0.0)
        + np.maximum(np.abs(vk) / t.knee_speed - 1.0, 0.0)
    ).sum(axis=0)
    cuff_ex = (
        np.maximum(f_thigh / t.cuff_thigh - 1.0, 0.0)
        + np.maximum(f_shank / t.cuff_shank - 1.0, 0.0)
    ).sum(axis=0)
    rate_ex = np.maximum(rate / t.torque_rate - 1.0, 0.0)
    col_ex = np.maximum(t.collapse_ratio - height_ratio, 0.0)
    swing = (leg_phase >= t.trip_window[0]) & (leg_phase <= t.trip_window[1])
    trip_ex = np.where(swing, np.maximum(load - t.trip_load, 0.0), 0.0).sum(axis=0)
    comps = {
        "rom": (rom_ex > 0).astype(np.float32),
        "joint_speed": (spd_ex > 0).astype(np.float32),
        "cuff_force": (cuff_ex > 0).astype(np.float32),
        "torque_rate": (rate_ex > 0).astype(np.float32),
        "collapse": (col_ex > 0).astype(np.float32),
        "trip": (trip_ex > 0).astype(np.float32),
    }
    magnitude = (rom_ex + spd_ex + cuff_ex + rate_ex + col_ex + trip_ex).astype(np.float32)
    return comps, magnitude
