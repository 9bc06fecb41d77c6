"""saferl.safety: constraints as data, shared by environments and algorithms."""

from saferl.safety.constraints import COMBINE_MODES, Constraint, ConstraintSet
from saferl.safety.groups import GROUP_KINDS, ConstraintGroups

__all__ = ["COMBINE_MODES", "GROUP_KINDS", "Constraint", "ConstraintGroups", "ConstraintSet"]
