"""Which constraints a run holds its policy to: one on the combined cost, one per cost component,
or one per group of episodes (e.g. per impairment level).

A :class:`ConstraintGroups` names the constraints of a run, their per-episode limits and what
each one measures:

* ``kind="combined"`` (the default, one constraint): the combined per-step cost ``info["cost"]``
  over every episode, limit ``d``.
* ``kind="components"``: constraint ``k`` is the per-episode sum of the cost component
  ``names[k]`` (``info["cost_components"][names[k]]``) over every episode, with its own limit.
* ``kind="levels"``: constraint ``k`` is the combined cost over the episodes whose level (the
  integer ``info[key]`` of their steps, constant within an episode) is ``k``; ``names[k]`` is
  that level's name. Each level's expected episode cost must be within its own limit, e.g.
  ``key="impairment"`` with the four impairment levels: safe for every user, not only on
  average.

Components and levels are not combined into a product (level x component): the number of
constraints, and with it the exact multi-constraint CPO step's work (it tries every subset of
constraints), would multiply, and the limits would need a table. A run picks one kind.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["GROUP_KINDS", "ConstraintGroups"]

GROUP_KINDS = ("combined", "components", "levels")


@dataclass(frozen=True)
class ConstraintGroups:
    """The constraints of a run (see the module docstring).

    Attributes:
        kind: ``combined``, ``components`` or ``levels``.
        names: one name per constraint (``("cost",)`` for ``combined``; component names; level
            names in the order of their integer codes).
        limits: per-episode limits, one per constraint (undiscounted episode cost).
        key: for ``levels``, the ``info`` key carrying each step's level code; else None.
    """

    kind: str
    names: tuple[str, ...]
    limits: tuple[float, ...]
    key: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in GROUP_KINDS:
            raise ValueError(f"kind must be one of {GROUP_KINDS}, got {self.kind!r}")
        names, limits = tuple(self.names), tuple(float(v) for v in self.limits)
        if not names or len(names) != len(limits):
            raise ValueError(f"{len(names)} constraint names but {len(limits)} limits")
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate constraint names in {list(names)}")
        if any(not (math.isfinite(v) and v >= 0) for v in limits):
            raise ValueError(f"limits must be finite and >= 0, got {list(limits)}")
        if self.kind == "combined" and len(names) != 1:
            raise ValueError("a combined constraint is one constraint")
        if (self.kind == "levels") != (self.key is not None):
            raise ValueError("levels need the info key of the level (and only levels have one)")
        object.__setattr__(self, "names", names)
        object.__setattr__(self, "limits", limits)

    @classmethod
    def combined(cls, limit: float) -> ConstraintGroups:
        """The default: one constraint on the combined cost."""
        return cls("combined", ("cost",), (float(limit),))

    @classmethod
    def levels(cls, key: str, names: Sequence[str], limits: Sequence[float]) -> ConstraintGroups:
        """One constraint per level code ``0..len(names)-1`` of ``info[key]``."""
        return cls("levels", tuple(names), tuple(limits), key)

    @classmethod
    def components(cls, names: Sequence[str], limits: Sequence[float]) -> ConstraintGroups:
        """One constraint per cost component."""
        return cls("components", tuple(names), tuple(limits))

    def __len__(self) -> int:
        return len(self.names)

    @property
    def grouped(self) -> bool:
        """True unless this is the single constraint on the combined cost."""
        return self.kind != "combined"
