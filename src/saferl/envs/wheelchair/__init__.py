"""``WheelchairSC-v0``: shared-control navigation of a powered wheelchair (docs/envs/wheelchair.md).

The package's rooms: :mod:`~saferl.envs.wheelchair.env` (the batched env, the single env and the
registry factory); the rest is re-exported here, so ``saferl.envs.wheelchair.WheelchairSCVecEnv``
and friends keep their import path.
"""

from __future__ import annotations

from saferl.envs.wheelchair.env import *  # noqa: F403
from saferl.envs.wheelchair.env import __all__ as _env_all
from saferl.envs.wheelchair.env import EPISODE_STEPS, infer_goal

__all__ = [*_env_all, "EPISODE_STEPS", "infer_goal"]
