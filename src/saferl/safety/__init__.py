"""saferl.safety: constraints as data, shared by environments and algorithms."""

from saferl.safety.constraints import COMBINE_MODES, Constraint, ConstraintSet

__all__ = ["COMBINE_MODES", "Constraint", "ConstraintSet"]
