"""saferl.envs: natively batched safe environments (simulation only; imports only saferl.safety).

Registers with Gymnasium (idempotent):

* ``"saferl/WheelchairSC-v0"``: :class:`saferl.envs.wheelchair.WheelchairSCEnv` (single) and
  :class:`saferl.envs.wheelchair.WheelchairSCVecEnv` (``gymnasium.make_vec(...,
  vectorization_mode="vector_entry_point")``);
* ``"saferl/ExoGait-v0"``: :mod:`saferl.envs.exoskeleton` (``ExoGaitEnv`` / ``ExoGaitVecEnv``).

Entry points are strings, so importing this package does not import the simulators.
"""

from __future__ import annotations

import gymnasium as gym

from saferl.envs import adapters as _adapters
from saferl.envs.checker import SafeEnvCheckError, check_safe_env

__all__ = ["ENV_IDS", "SafeEnvCheckError", "check_safe_env", "register_envs"]

ENV_IDS = {
    "saferl/WheelchairSC-v0": (
        "saferl.envs.wheelchair:WheelchairSCEnv",
        "saferl.envs.wheelchair:WheelchairSCVecEnv",
        600,
    ),
    "saferl/ExoGait-v0": (
        "saferl.envs.exoskeleton:ExoGaitEnv",
        "saferl.envs.exoskeleton:ExoGaitVecEnv",
        1000,
    ),
}


def register_envs() -> None:
    """Register saferl's environments with Gymnasium (skips ids that are already registered).

    ``max_episode_steps`` is not passed to Gymnasium: the envs truncate themselves, and a
    ``TimeLimit`` wrapper would only duplicate that.
    """
    for env_id, (entry, vec_entry, _steps) in ENV_IDS.items():
        if env_id in gym.registry:
            continue
        gym.register(
            id=env_id,
            entry_point=entry,
            vector_entry_point=vec_entry,
            disable_env_checker=False,
        )


register_envs()
_adapters.register_gymnasium_ids()  # saferl/HopperVelocity-v0 ... (MuJoCo loads on first use)
