"""Named observation and action layouts of the built-in environments, for export sidecars.

A deployer feeds the exported policy the raw observation the robot's software computes, so it
needs each dimension's meaning and scale, not just its index. The tables below follow the
environments' observation code and their pages in ``docs/envs/``; an environment without a
table (a plugin) gets generic names ``obs[i]`` / ``action[i]`` and its space's bounds.

Each entry is ``(name, unit)``: ``unit`` says what the float holds, scale included (e.g.
``"v / 1.5 m/s"``).
"""

from __future__ import annotations

from typing import Any

__all__ = ["action_layout", "observation_layout"]

_IMPAIRMENTS = ("none", "mild", "moderate", "severe")


def _wheelchair_obs(options: dict[str, Any], dim: int) -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = [
        ("speed", "v / 1.5 m/s"),
        ("yaw_rate", "omega / 1.5 rad/s"),
        ("accel_long", "m/s^2 x 0.5"),
        ("accel_lat", "m/s^2 x 0.5"),
        ("joystick_last_turn", "deflection in [-1, 1] (last sample of the step)"),
        ("joystick_last_forward", "deflection in [-1, 1] (last sample of the step)"),
        ("joystick_mean_turn", "deflection in [-1, 1] (mean over the 0.1 s step)"),
        ("joystick_mean_forward", "deflection in [-1, 1] (mean over the 0.1 s step)"),
        ("joystick_std_turn", "deflection (std over the 0.1 s step: tremor evidence)"),
        ("joystick_std_forward", "deflection (std over the 0.1 s step: tremor evidence)"),
        ("prev_command_v", "executed v of the last step / 1.5 m/s"),
        ("prev_command_omega", "executed omega of the last step / 1.5 rad/s"),
        ("prev_authority", "user authority alpha of the last step, in [0, 1]"),
    ]
    rows += [(f"clearance_sector_{i}", "m x 0.25 (footprint clearance)") for i in range(16)]
    for g in range(3):
        rows += [
            (f"goal_{g}_x", "m / 8 (chair frame, forward)"),
            (f"goal_{g}_y", "m / 8 (chair frame, left)"),
        ]
    for p in range(2):
        rows += [
            (f"pedestrian_{p}_x", "m x 0.25 (chair frame; 0 when absent)"),
            (f"pedestrian_{p}_y", "m x 0.25 (chair frame; 0 when absent)"),
            (f"pedestrian_{p}_vx", "m/s / 1.5 (chair frame; 0 when absent)"),
            (f"pedestrian_{p}_vy", "m/s / 1.5 (chair frame; 0 when absent)"),
        ]
    rows.append(("time_left", "fraction of the 600-step episode left"))
    if options.get("action_mode") == "assist":
        rows += [
            ("planner_v", "planner's proposed v / 1.5 m/s"),
            ("planner_omega", "planner's proposed omega / 1.5 rad/s"),
        ]
        rows += [(f"planner_goal_{g}_posterior", "probability") for g in range(3)]
    if options.get("privileged_obs"):
        rows += [(f"impairment_{lv}", "one-hot (simulator only)") for lv in _IMPAIRMENTS]
        rows += [(f"true_goal_{g}", "one-hot (simulator only)") for g in range(3)]
    return rows


def _exo_obs(options: dict[str, Any], dim: int) -> list[tuple[str, str]]:
    joints = ("hip_r", "knee_r", "hip_l", "knee_l")
    rows: list[tuple[str, str]] = [(f"theta_{j}", "rad") for j in joints]
    rows += [(f"theta_dot_{j}", "rad/s / 10") for j in joints]
    rows += [(f"reference_{j}", "rad (reference at the human's phase)") for j in joints]
    rows += [(f"reference_error_{j}", "rad (reference - theta)") for j in joints]
    rows += [("phase_sin", "sin 2 pi phase"), ("phase_cos", "cos 2 pi phase")]
    rows += [
        ("foot_force_r", "normal force / (M g)"),
        ("foot_force_l", "normal force / (M g)"),
        ("pelvis_height_offset", "m (y_p - y0)"),
        ("pelvis_vertical_speed", "m/s"),
    ]
    rows += [(f"exo_torque_{j}", "N m / 60") for j in joints]
    rows += [
        ("cuff_force_thigh", "N / 220 (worse side)"),
        ("cuff_force_shank", "N / 130 (worse side)"),
        ("belt_speed", "m/s / 1.2"),
        ("body_weight_support", "fraction"),
    ]
    rows += [("theta_ankle_r", "rad"), ("theta_ankle_l", "rad")]
    rows += [("theta_dot_ankle_r", "rad/s / 10"), ("theta_dot_ankle_l", "rad/s / 10")]
    if options.get("privileged_obs"):
        rows += [(f"impairment_{lv}", "one-hot (simulator only)") for lv in _IMPAIRMENTS]
    return rows


_OBS = {"WheelchairSC-v0": _wheelchair_obs, "ExoGait-v0": _exo_obs}

_ACTIONS: dict[str, list[tuple[str, str]]] = {
    "WheelchairSC-v0": [
        ("authority", "alpha = (a + 1) / 2 of the command left to the user"),
        ("robot_v", "robot command v (or its correction of the planner's, x 0.5) / 1.5 m/s"),
        ("robot_omega", "robot command omega (or its correction, x 0.5) / 1.5 rad/s"),
    ],
    "ExoGait-v0": [
        ("torque_hip_r", "N m / 60"),
        ("torque_knee_r", "N m / 60"),
        ("torque_hip_l", "N m / 60"),
        ("torque_knee_l", "N m / 60"),
    ],
}


def observation_layout(env_id: str, options: dict[str, Any], dim: int) -> list[tuple[str, str]]:
    """``(name, unit)`` for each of the env's ``dim`` raw observation dims (generic names when
    the env has no table or its table does not match ``dim``)."""
    make = _OBS.get(env_id)
    rows = make(options, dim) if make is not None else []
    if len(rows) != dim:
        rows = [(f"obs[{i}]", "") for i in range(dim)]
    return rows


def action_layout(env_id: str, dim: int) -> list[tuple[str, str]]:
    """``(name, unit)`` for each of the env's ``dim`` action dims."""
    rows = _ACTIONS.get(env_id, [])
    if len(rows) != dim:
        rows = [(f"action[{i}]", "") for i in range(dim)]
    return list(rows)
