"""Bring your own environment: external envs in saferl's batched contract.

* ``gym:<id>``: any Gymnasium env whose ``info`` carries a per-step cost
  (:func:`make_gym_vec`, ``saferl.make_env("gym:MyEnv-v0", num_envs=8, cost_key="cost")``,
  ``env.id: gym:MyEnv-v0`` in a config; ``gym:my_package:MyEnv-v0`` imports ``my_package``
  first, as ``gymnasium.make`` does);
* ``safety:<module>:<callable>`` (or ``safety:<Safety-Gymnasium id>`` where that package is
  importable): envs with Safety-Gymnasium's 6-tuple ``step`` (:func:`make_safety_vec`);
* the velocity-constrained MuJoCo tasks (``HopperVelocity-v0`` ... ``HumanoidVelocity-v0``,
  :data:`VELOCITY_TASKS`), registered in saferl's registry and with Gymnasium as
  ``saferl/<name>``; they need the ``mujoco`` extra.

All of them are :class:`GymnasiumVecEnv`: Gymnasium's own Sync/AsyncVectorEnv underneath,
same-step autoreset, ``info["cost"]``, per-episode seeding and exact resume by replaying the
current episode (see :mod:`saferl.envs.adapters.gymnasium_vec`). docs/envs/adapters.md is the
user's guide.
"""

from __future__ import annotations

import gymnasium as gym

from saferl.envs.adapters.gymnasium_vec import (
    VECTORIZATION_MODES,
    CostInfoError,
    GymnasiumVecEnv,
    ReplayError,
    SafeInstance,
    episode_seed,
    gym_factory,
    make_gym_vec,
)
from saferl.envs.adapters.six_tuple import SixTupleEnv, make_safety_vec, safety_factory
from saferl.envs.adapters.velocity import VELOCITY_TASKS, VelocityCost, VelocityTask

__all__ = [
    "VECTORIZATION_MODES",
    "VELOCITY_TASKS",
    "CostInfoError",
    "GymnasiumVecEnv",
    "ReplayError",
    "SafeInstance",
    "SixTupleEnv",
    "VelocityCost",
    "VelocityTask",
    "episode_seed",
    "gym_factory",
    "make_gym_vec",
    "make_safety_vec",
    "register_gymnasium_ids",
    "safety_factory",
]


def register_gymnasium_ids() -> None:
    """Register the velocity tasks with Gymnasium as ``saferl/<name>`` (idempotent):
    ``gymnasium.make`` gives one plain env, ``gymnasium.make_vec(...,
    vectorization_mode="vector_entry_point")`` the batched :class:`GymnasiumVecEnv`."""
    for name, task in VELOCITY_TASKS.items():
        env_id = f"saferl/{name}"
        if env_id in gym.registry:
            continue
        gym.register(id=env_id, entry_point=task.single, vector_entry_point=task)
