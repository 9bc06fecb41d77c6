"""The wheelchair's costs: named thresholds, the constraint set rendered from them, and the
per-step evaluation.

:class:`CostThresholds` holds every threshold once; :func:`wheelchair_constraints` writes the
constraint descriptions from it and :func:`step_costs` compares against it, so the number in the
description is the number the env uses. Costs are per-step indicators combined by their union
(Safety-Gymnasium convention); the per-episode limit is 15 (2.5 % of 600 steps), strict 6.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from saferl.envs.wheelchair.dynamics import ChairParams
from saferl.safety import Constraint, ConstraintSet

__all__ = [
    "A_TIP",
    "COSTS",
    "EPISODE_STEPS",
    "WHEELCHAIR_CONSTRAINTS",
    "CostThresholds",
    "step_costs",
    "wheelchair_constraints",
]

f32 = np.float32
EPISODE_STEPS = 600
GRAVITY = 9.81
#: static lateral tipping limit g (b/2)/h of the default chair (track b, CG height h), m/s^2
A_TIP = GRAVITY * (ChairParams.track / 2) / ChairParams.cg_height


@dataclass(frozen=True)
class CostThresholds:
    """Where each cost indicator fires. Accelerations are means over the 0.1 s control step,
    the jerk their 0.1 s difference; ``d_min`` is the footprint's clearance (m)."""

    near_miss_distance: float = 0.10  # m: near miss when 0 <= d_min < this ...
    near_miss_speed: float = 0.3  # m/s: ... at a speed above this
    comfort_accel: float = 1.0  # m/s^2: |a_long| or |a_lat| above this is uncomfortable
    comfort_jerk: float = 5.0  # m/s^3 (raised from 2.0: docs/envs/wheelchair.md, deviation 2)
    tip_fraction: float = 0.5  # of A_TIP: the resultant horizontal acceleration limit
    social_speed: float = 0.5  # m/s: faster than this ...
    social_distance: float = 0.8  # m: ... within this centre distance of a pedestrian

    @property
    def tip_accel(self) -> float:
        """m/s^2: the ``tip_risk`` threshold ``tip_fraction * A_TIP``."""
        return self.tip_fraction * A_TIP


COSTS = CostThresholds()


def wheelchair_constraints(t: CostThresholds = COSTS) -> ConstraintSet:
    """The env's constraints, their thresholds written from ``t``; limit 15 (strict 6) per
    600-step episode, combined by their union."""
    return ConstraintSet(
        [
            Constraint(
                "collision",
                "any footprint overlap with a wall, furniture or a pedestrian",
                threshold="d_min < 0",
                source="Safety-Gym hazard analogue",
            ),
            Constraint(
                "near_miss",
                f"passing closer than {t.near_miss_distance:.2f} m at speed",
                threshold=f"0 <= d_min < {t.near_miss_distance:.2f} m and |v| > "
                f"{t.near_miss_speed:g} m/s",
                source="design",
            ),
            Constraint(
                "comfort",
                "uncomfortable acceleration or jerk (0.1 s means)",
                threshold=f"|a_long| > {t.comfort_accel:.1f} or |a_lat| > {t.comfort_accel:.1f} m/s^2 "
                f"or |jerk| > {t.comfort_jerk:.1f} m/s^3",
                source="de Winkel et al. 2023; Gulati et al. 2013",
            ),
            Constraint(
                "tip_risk",
                f"horizontal acceleration above {t.tip_fraction:g} x the static tipping limit",
                threshold=f"|(a_long, a_lat)| > {t.tip_fraction:g} g (b/2)/h = "
                f"{t.tip_accel:.2f} m/s^2",
                source="ISO 7176-1/-2 stability geometry, design margin",
            ),
            Constraint(
                "social",
                "fast inside a pedestrian's personal zone",
                threshold=f"|v| > {t.social_speed:g} m/s within {t.social_distance:g} m of a "
                "pedestrian",
                source="Hall 1966 proxemics",
            ),
        ],
        limit=15.0,
        strict_limit=6.0,
        combine_mode="max",
        episode_length=EPISODE_STEPS,
    )


WHEELCHAIR_CONSTRAINTS = wheelchair_constraints()


def step_costs(
    t: CostThresholds,
    hit: np.ndarray,
    pen: np.ndarray,
    d_min: np.ndarray,
    speed: np.ndarray,
    a_long: np.ndarray,
    a_lat: np.ndarray,
    jerk: np.ndarray,
    ped_distance: np.ndarray,
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The step's cost indicators and their magnitude.

    Args:
        t: the thresholds.
        hit: bool ``(N,)`` the footprint overlapped an obstacle (before projection).
        pen: float32 ``(N,)`` penetration depth (m); ``d_min``: clearance after contact (m).
        speed: ``|v|`` (m/s); ``a_long``, ``a_lat``: accelerations (m/s^2); ``jerk`` (m/s^3).
        ped_distance: centre distance to the nearest active pedestrian (m; 1e3 if none).

    Returns:
        ``components`` (name -> float32 ``(N,)`` in {0, 1}) and ``magnitude`` float32 ``(N,)``:
        penetration + near-miss shortfall + acceleration excesses + 0.1 x jerk excess.
    """
    collision = hit | (d_min < 0)
    near = (~collision) & (d_min < t.near_miss_distance) & (speed > t.near_miss_speed)
    comfort = (
        (np.abs(a_long) > t.comfort_accel)
        | (np.abs(a_lat) > t.comfort_accel)
        | (np.abs(jerk) > t.comfort_jerk)
    )
    a_tot = np.sqrt(a_long**2 + a_lat**2)
    tip = a_tot > f32(t.tip_accel)
    social = (speed > t.social_speed) & (ped_distance < t.social_distance)
    components = {
        "collision": collision.astype(np.float32),
        "near_miss": near.astype(np.float32),
        "comfort": comfort.astype(np.float32),
        "tip_risk": tip.astype(np.float32),
        "social": social.astype(np.float32),
    }
    magnitude = (
        pen
        + np.where(near, f32(t.near_miss_distance) - d_min, 0)
        + np.maximum(np.abs(a_long) - t.comfort_accel, 0)
        + np.maximum(np.abs(a_lat) - t.comfort_accel, 0)
        + np.maximum(np.abs(jerk) - t.comfort_jerk, 0) * f32(0.1)  # jerk excess x 0.1 s
    ).astype(np.float32)
    return components, magnitude
