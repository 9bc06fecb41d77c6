"""``ExoGait-v0``: a hip-knee exoskeleton on a body-weight-supported treadmill
(docs/envs/exoskeleton.md).

A stroke-like user walks on a treadmill with body-weight support wearing a bilateral hip-knee
exoskeleton; the agent commands the four exo joint torques. The rooms:

* :mod:`~saferl.envs.exoskeleton.physics`: the walker physics (body, legs, foot contact,
  treadmill, body-weight support), the reference gait;
* :mod:`~saferl.envs.exoskeleton.user`: the simulated walker (impairment levels, controller,
  learned feedforward and its cache);
* :mod:`~saferl.envs.exoskeleton.exo`: the exoskeleton actuator and cuff forces;
* :mod:`~saferl.envs.exoskeleton.observation`: the named observation layout;
* :mod:`~saferl.envs.exoskeleton.costs`: cost thresholds, constraints, per-step costs;
* :mod:`~saferl.envs.exoskeleton.env`: :class:`ExoGaitVecEnv` (natively batched),
  :class:`ExoGaitEnv` (single instance, for ``gymnasium.make``), :func:`make_vec`;
* :mod:`~saferl.envs.exoskeleton.baselines`: the scripted baselines.

The names users import are re-exported here (``saferl.envs.exoskeleton.ExoGaitVecEnv``).
"""

from __future__ import annotations

from saferl.envs.exoskeleton.baselines import (
    BASELINES,
    AANImpedance,
    PDGuidance,
    SplinePulse,
    ZeroTorque,
)
from saferl.envs.exoskeleton.costs import (
    COSTS,
    EPISODE_STEPS,
    EXO_CONSTRAINTS,
    CostThresholds,
    exo_constraints,
)
from saferl.envs.exoskeleton.env import (
    ACTION_MODES,
    CHALLENGES,
    LEVELS,
    OBJECTIVES,
    ExoChallenge,
    ExoGaitEnv,
    ExoGaitVecEnv,
    make_vec,
)
from saferl.envs.exoskeleton.exo import TAU_EXO_MAX
from saferl.envs.exoskeleton.observation import OBS, observation_layout
from saferl.envs.exoskeleton.physics import PhysicsConfig, WalkerSim
from saferl.envs.exoskeleton.user import WALKER_IMPAIRMENTS, HumanController, ImpairmentLevel

__all__ = [
    "ACTION_MODES",
    "BASELINES",
    "CHALLENGES",
    "COSTS",
    "EPISODE_STEPS",
    "EXO_CONSTRAINTS",
    "LEVELS",
    "OBJECTIVES",
    "OBS",
    "TAU_EXO_MAX",
    "WALKER_IMPAIRMENTS",
    "AANImpedance",
    "CostThresholds",
    "ExoChallenge",
    "ExoGaitEnv",
    "ExoGaitVecEnv",
    "HumanController",
    "ImpairmentLevel",
    "PDGuidance",
    "PhysicsConfig",
    "SplinePulse",
    "WalkerSim",
    "ZeroTorque",
    "exo_constraints",
    "make_vec",
    "observation_layout",
]
