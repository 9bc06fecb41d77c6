"""``ExoGait-v0``: a hip-knee exoskeleton on a body-weight-supported treadmill."""

from __future__ import annotations

from saferl.envs.exoskeleton.env import *  # noqa: F403
from saferl.envs.exoskeleton.env import __all__ as __all__
