"""The exoskeleton's observation layout: one named field per quantity (name -> dims, scale, unit).

Sensors a real gait trainer has: joint encoders, FSR insoles, the body-weight-support load cell,
and an inertial sensor on each shoe for the (human-driven) ankle.
Joint fields hold (right, left); hip and knee fields interleave (hip R, knee R, hip L, knee L).
``ExoGaitVecEnv._observe`` writes the observation field by field through :data:`OBS` (or
:func:`observation_layout` with privileged dims), and docs/envs/exoskeleton.md holds
``OBS_PRIVILEGED.markdown()`` verbatim.
"""

from __future__ import annotations

from saferl.envs.exoskeleton.costs import COSTS, CostThresholds
from saferl.envs.exoskeleton.exo import TAU_EXO_MAX
from saferl.envs.layout import ObsField, ObsLayout
from saferl.envs.levels import IMPAIRMENT_LEVELS

__all__ = ["BELT_SCALE", "OBS", "OBS_PRIVILEGED", "RATE_SCALE", "observation_layout"]

RATE_SCALE = 10.0  # rad/s: joint rates are divided by this
BELT_SCALE = 1.2  # m/s: the belt speed is divided by this
_LEGS = ("right", "left")


def observation_layout(privileged_obs: bool = False, costs: CostThresholds = COSTS) -> ObsLayout:
    """The observation layout of an ``ExoGait-v0`` env (34 dims; ``privileged_obs`` appends the
    one-hot impairment level, 4 dims). ``costs``: its cuff-force limits scale the cuff dims."""
    F = ObsField
    fields = [
        F("hip_angle", slice(0, 4, 2), "rad", 1.0, "hip angle (flexion +)", _LEGS),
        F("knee_angle", slice(1, 4, 2), "rad", 1.0, "knee angle (flexion +)", _LEGS),
        F("hip_rate", slice(4, 8, 2), "rad/s", RATE_SCALE, "hip angular velocity", _LEGS),
        F("knee_rate", slice(5, 8, 2), "rad/s", RATE_SCALE, "knee angular velocity", _LEGS),
        F(
            "hip_ref",
            slice(8, 12, 2),
            "rad",
            1.0,
            "reference hip angle at the walker's phase",
            _LEGS,
        ),
        F(
            "knee_ref",
            slice(9, 12, 2),
            "rad",
            1.0,
            "reference knee angle at the walker's phase",
            _LEGS,
        ),
        F("hip_error", slice(12, 16, 2), "rad", 1.0, "reference − hip angle", _LEGS),
        F("knee_error", slice(13, 16, 2), "rad", 1.0, "reference − knee angle", _LEGS),
        F("phase_sin", slice(16, 17), "-", 1.0, "sin 2πφ̂ of the walker's gait phase φ̂"),
        F("phase_cos", slice(17, 18), "-", 1.0, "cos 2πφ̂"),
        F("foot_load", slice(18, 20), "N", "M g", "vertical foot load F_n (insoles)", _LEGS),
        F(
            "pelvis_height",
            slice(20, 21),
            "m",
            1.0,
            "pelvis height y_p − y_0 (y_0: walking height)",
        ),
        F("pelvis_vy", slice(21, 22), "m/s", 1.0, "pelvis vertical speed"),
        F("hip_torque", slice(22, 26, 2), "N m", TAU_EXO_MAX, "previous exo hip torque", _LEGS),
        F("knee_torque", slice(23, 26, 2), "N m", TAU_EXO_MAX, "previous exo knee torque", _LEGS),
        F("cuff_thigh", slice(26, 27), "N", costs.cuff_thigh, "thigh cuff force, worse side"),
        F("cuff_shank", slice(27, 28), "N", costs.cuff_shank, "shank cuff force, worse side"),
        F("belt_speed", slice(28, 29), "m/s", BELT_SCALE, "treadmill belt speed"),
        F("bws", slice(29, 30), "-", 1.0, "body-weight-support fraction β"),
        F(
            "ankle_angle",
            slice(30, 32),
            "rad",
            1.0,
            "ankle angle (dorsiflexion +; foot IMU)",
            _LEGS,
        ),
        F("ankle_rate", slice(32, 34), "rad/s", RATE_SCALE, "ankle angular velocity", _LEGS),
    ]
    if privileged_obs:
        n_lv = len(IMPAIRMENT_LEVELS)
        fields.append(
            F(
                "level",
                slice(34, 34 + n_lv),
                "-",
                1.0,
                "impairment level, one-hot",
                IMPAIRMENT_LEVELS,
                True,
            )
        )
    return ObsLayout(fields)


#: the default layout (34 dims)
OBS = observation_layout()
#: with the privileged dims (38), the table in docs/envs/exoskeleton.md
OBS_PRIVILEGED = observation_layout(privileged_obs=True)
