"""Goal inference: a Bayesian posterior over the three candidate goals from the joystick.

The chair's planner (``action_mode="assist"``) and the ``autopilot`` baseline share it
(Dragan & Srinivasa 2013 style): :func:`infer_goal` with the likelihood width
:data:`PLANNER_SIGMA` and the forgetting factor :data:`PLANNER_FORGET`.
"""

from __future__ import annotations

import numpy as np

__all__ = ["PLANNER_FORGET", "PLANNER_SIGMA", "infer_goal"]

f32 = np.float32

#: joystick likelihood width (fraction of full deflection)
PLANNER_SIGMA = 0.35
#: per-step forgetting factor of the log-posterior
PLANNER_FORGET = 0.97


def infer_goal(
    logp: np.ndarray, joy: np.ndarray, cands: np.ndarray, sigma: float, forget: float
) -> np.ndarray:
    """One Bayesian update of the goal log-posterior ``logp`` (N, G), in place, and the
    candidate joystick (N, 2) of the most likely goal.

    The likelihood of the observed mean joystick ``joy`` (N, 2) under goal g is
    ``exp(-|joy - cands[:, g]|^2 / (2 sigma^2))`` (Dragan & Srinivasa 2013 style); the
    log-posterior forgets with factor ``forget`` so the estimate can follow a change of mind,
    and a joystick at rest (every axis within 0.05) carries no evidence.
    """
    moving = (np.abs(joy) > 0.05).any(axis=1)
    ll = -((joy[:, None, :] - cands) ** 2).sum(axis=2) / f32(2 * sigma**2)
    logp *= f32(forget)
    logp += np.where(moving[:, None], ll, f32(0))
    best = np.argmax(logp, axis=1)
    return cands[np.arange(len(best)), best]
