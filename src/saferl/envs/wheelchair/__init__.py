"""``WheelchairSC-v0``: shared-control navigation of a powered wheelchair (docs/envs/wheelchair.md).

An impaired user drives a mid-wheel-drive powered wheelchair with a proportional joystick towards
one of three candidate goals in an 8 m x 8 m room; the agent sees the joystick signal and the
chair's sensors, not the goal, and arbitrates between the user and a robot command. The rooms:

* :mod:`~saferl.envs.wheelchair.maps`: procedural rooms, geodesic fields, the on-disk cache;
* :mod:`~saferl.envs.wheelchair.dynamics`: chair kinematics and the joystick mapping;
* :mod:`~saferl.envs.wheelchair.user`: the simulated user (joystick operator with impairments,
  driving strategy, doorway manoeuvre);
* :mod:`~saferl.envs.wheelchair.goals`: Bayesian goal inference (the planner, the autopilot);
* :mod:`~saferl.envs.wheelchair.observation`: the named observation layout;
* :mod:`~saferl.envs.wheelchair.costs`: cost thresholds, constraints, per-step costs;
* :mod:`~saferl.envs.wheelchair.env`: :class:`WheelchairSCVecEnv` (natively batched),
  :class:`WheelchairSCEnv` (single instance, for ``gymnasium.make``), :func:`make_vec`;
* :mod:`~saferl.envs.wheelchair.baselines`: the scripted baselines.

The names users import are re-exported here (``saferl.envs.wheelchair.WheelchairSCVecEnv``).
"""

from __future__ import annotations

from saferl.envs.levels import IMPAIRMENT_LEVELS
from saferl.envs.wheelchair.baselines import (
    BASELINES,
    Autopilot,
    FixedBlend,
    HumanOnly,
    SafetyFilter,
    TremorSwitch,
)
from saferl.envs.wheelchair.costs import (
    A_TIP,
    COSTS,
    EPISODE_STEPS,
    WHEELCHAIR_CONSTRAINTS,
    CostThresholds,
    wheelchair_constraints,
)
from saferl.envs.wheelchair.dynamics import (
    CONTROL_DT,
    ChairParams,
    arc_step,
    chair_substep,
    joystick_to_command,
)
from saferl.envs.wheelchair.env import (
    CHALLENGES,
    Challenge,
    WheelchairSCEnv,
    WheelchairSCVecEnv,
    make_vec,
)
from saferl.envs.wheelchair.goals import infer_goal
from saferl.envs.wheelchair.maps import (
    MAX_PEDS,
    N_GOALS,
    MapLibrary,
    MapParams,
    build_map_library,
    get_map_library,
)
from saferl.envs.wheelchair.observation import OBS, observation_layout
from saferl.envs.wheelchair.user import (
    JOYSTICK_IMPAIRMENTS,
    JoystickImpairment,
    JoystickOperator,
)

__all__ = [
    "A_TIP",
    "BASELINES",
    "CHALLENGES",
    "CONTROL_DT",
    "COSTS",
    "EPISODE_STEPS",
    "IMPAIRMENT_LEVELS",
    "JOYSTICK_IMPAIRMENTS",
    "MAX_PEDS",
    "N_GOALS",
    "OBS",
    "WHEELCHAIR_CONSTRAINTS",
    "Autopilot",
    "ChairParams",
    "Challenge",
    "CostThresholds",
    "FixedBlend",
    "HumanOnly",
    "JoystickImpairment",
    "JoystickOperator",
    "MapLibrary",
    "MapParams",
    "SafetyFilter",
    "TremorSwitch",
    "WheelchairSCEnv",
    "WheelchairSCVecEnv",
    "arc_step",
    "build_map_library",
    "chair_substep",
    "get_map_library",
    "infer_goal",
    "joystick_to_command",
    "make_vec",
    "observation_layout",
    "wheelchair_constraints",
]
