"""The wheelchair's observation layout: one named field per quantity (name -> dims, scale, unit).

:func:`observation_layout` is the layout of an env with given options (``action_mode="assist"``
and ``privileged_obs`` append fields); :data:`OBS` is the default one (``blend``, 44 dims), whose
fields every mode shares. ``WheelchairSCVecEnv._observe`` writes the observation field by field
through it, the scripted baselines read it through it, and docs/envs/wheelchair.md holds
``OBS_ASSIST_PRIVILEGED.markdown()`` verbatim. Egocentric quantities are in the chair's frame
(x ahead, y to the left).
"""

from __future__ import annotations

from saferl.envs.layout import ObsField, ObsLayout
from saferl.envs.levels import IMPAIRMENT_LEVELS
from saferl.envs.wheelchair.dynamics import ChairParams
from saferl.envs.wheelchair.maps import MAX_PEDS, N_GOALS

__all__ = [
    "ACCEL_SCALE",
    "GOAL_RANGE",
    "N_SECTORS",
    "OBS",
    "OBS_ASSIST_PRIVILEGED",
    "PED_RANGE",
    "PED_SPEED",
    "SECTOR_RANGE",
    "observation_layout",
]

N_SECTORS = 16  # proximity sectors of 22.5 degrees, sector k centred at (k + 0.5) 22.5 deg
SECTOR_RANGE = 4.0  # m: sector clearances are clipped to [0, SECTOR_RANGE]
GOAL_RANGE = 8.0  # m: goal offsets are divided by this
PED_RANGE = 4.0  # m: pedestrian offsets are divided by this
PED_SPEED = 1.5  # m/s: pedestrian velocities are divided by this
ACCEL_SCALE = 2.0  # m/s^2: chair accelerations are divided by this
_GOALS = tuple(f"goal{k}" for k in range(N_GOALS))
_PEDS = tuple(f"ped{k}" for k in range(MAX_PEDS))


def observation_layout(
    chair: ChairParams | None = None, action_mode: str = "blend", privileged_obs: bool = False
) -> ObsLayout:
    """The observation layout of a ``WheelchairSC-v0`` env built with these options.

    Args:
        chair: the chair's parameters (their speed limits scale the speed dims).
        action_mode: ``"assist"`` appends the planner's command and goal posterior (5 dims).
        privileged_obs: append the one-hot impairment level and true goal (7 dims).
    """
    c = chair or ChairParams()
    u_max = (c.v_max, c.omega_max0)
    F = ObsField
    g, p = 2 * N_GOALS, 4 * MAX_PEDS
    g0, p0 = 29, 29 + g
    fields = [
        F("speed", slice(0, 1), "m/s", c.v_max, "forward speed v (encoders)"),
        F("turn_rate", slice(1, 2), "rad/s", c.omega_max0, "turn rate ω (encoders)"),
        F("accel_long", slice(2, 3), "m/s²", ACCEL_SCALE, "longitudinal acceleration (IMU)"),
        F("accel_lat", slice(3, 4), "m/s²", ACCEL_SCALE, "lateral acceleration v ω (IMU)"),
        F("joystick", slice(4, 6), "-", 1.0, "joystick now", ("turn", "forward")),
        F(
            "joystick_mean",
            slice(6, 8),
            "-",
            1.0,
            "joystick, mean over the last 0.1 s",
            ("turn", "forward"),
        ),
        F(
            "joystick_std",
            slice(8, 10),
            "-",
            1.0,
            "joystick, std over the last 0.1 s: the tremor evidence",
            ("turn", "forward"),
        ),
        F(
            "command",
            slice(10, 12),
            "m/s, rad/s",
            u_max,
            "previous blended command",
            ("v", "omega"),
        ),
        F("authority", slice(12, 13), "-", 1.0, "previous authority α of the user"),
        F(
            "sectors",
            slice(13, 13 + N_SECTORS),
            "m",
            SECTOR_RANGE,
            f"footprint clearance per 22.5° sector (sector k centred at (k + 0.5) 22.5° from "
            f"ahead, counter-clockwise), clipped to [0, {SECTOR_RANGE:g}] m",
        ),
        F("goal_dx", slice(g0, g0 + g, 2), "m", GOAL_RANGE, "candidate goals, ahead", _GOALS),
        F("goal_dy", slice(g0 + 1, g0 + g, 2), "m", GOAL_RANGE, "candidate goals, left", _GOALS),
        F(
            "ped_dx",
            slice(p0, p0 + p, 4),
            "m",
            PED_RANGE,
            "pedestrians (nearest first, 0 if absent), ahead",
            _PEDS,
        ),
        F("ped_dy", slice(p0 + 1, p0 + p, 4), "m", PED_RANGE, "pedestrians, left", _PEDS),
        F(
            "ped_vx",
            slice(p0 + 2, p0 + p, 4),
            "m/s",
            PED_SPEED,
            "pedestrian velocity, ahead",
            _PEDS,
        ),
        F("ped_vy", slice(p0 + 3, p0 + p, 4), "m/s", PED_SPEED, "pedestrian velocity, left", _PEDS),
        F("time_left", slice(p0 + p, p0 + p + 1), "-", 1.0, "remaining fraction of the episode"),
    ]
    at = p0 + p + 1
    if action_mode == "assist":
        fields += [
            F(
                "planner_command",
                slice(at, at + 2),
                "m/s, rad/s",
                u_max,
                "the planner's proposed command",
                ("v", "omega"),
            ),
            F(
                "planner_posterior",
                slice(at + 2, at + 2 + N_GOALS),
                "-",
                1.0,
                "the planner's posterior over the candidate goals",
                _GOALS,
            ),
        ]
        at += 2 + N_GOALS
    if privileged_obs:
        n_lv = len(IMPAIRMENT_LEVELS)
        fields += [
            F(
                "level",
                slice(at, at + n_lv),
                "-",
                1.0,
                "impairment level, one-hot",
                IMPAIRMENT_LEVELS,
                True,
            ),
            F(
                "goal",
                slice(at + n_lv, at + n_lv + N_GOALS),
                "-",
                1.0,
                "the user's goal, one-hot",
                _GOALS,
                True,
            ),
        ]
    return ObsLayout(fields)


#: the default layout (``action_mode="blend"``, no privileged dims): 44 dims
OBS = observation_layout()
#: the longest layout (``assist`` + ``privileged_obs``), the table in docs/envs/wheelchair.md
OBS_ASSIST_PRIVILEGED = observation_layout(action_mode="assist", privileged_obs=True)
