"""Constraints as data: what an environment declares, what algorithms and the CLI read.

A :class:`Constraint` is one per-step cost component (an indicator by default, Safety-Gymnasium
convention: ``c_t = 1`` when the step violates the rule, else ``0``). A :class:`ConstraintSet` is
the ordered collection an environment declares; it combines the components into the scalar
per-step cost ``info["cost"]`` (the union of violations, i.e. the element-wise max, by default;
optionally the sum) and carries the per-episode limits ``d`` (default and strict) on the expected
undiscounted episode cost. Environments never hard-code limits anywhere else.

Example::

    constraints = ConstraintSet(
        [Constraint("collision", "any footprint overlap", threshold="d_min < 0")],
        limit=15.0,
        strict_limit=6.0,
        episode_length=600,
    )
    cost = constraints.combine({"collision": np.array([0.0, 1.0], np.float32)})
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

__all__ = ["COMBINE_MODES", "Constraint", "ConstraintSet"]

COMBINE_MODES = ("max", "sum")


@dataclass(frozen=True)
class Constraint:
    """One cost component.

    Attributes:
        name: identifier, the key in ``info["cost_components"]`` (e.g. ``"collision"``).
        description: one line, what is being constrained and why.
        unit: unit of the per-step value; ``"indicator"`` (0/1 per step) by default.
        threshold: human-readable violation rule (e.g. ``"|a_lat| > 2.45 m/s^2"``).
        limit: optional per-episode limit on this component alone (same units, summed over the
            episode); ``None`` when only the combined cost is constrained.
        strict_limit: optional stricter per-episode limit on this component alone.
        source: where the threshold comes from (paper, standard, or ``"design"``).
    """

    name: str
    description: str
    unit: str = "indicator"
    threshold: str = ""
    limit: float | None = None
    strict_limit: float | None = None
    source: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.isidentifier():
            raise ValueError(f"Constraint name must be an identifier string, got {self.name!r}")
        for attr in ("limit", "strict_limit"):
            value = getattr(self, attr)
            if value is not None and not (np.isfinite(value) and value >= 0):
                raise ValueError(f"Constraint {self.name!r}: {attr} must be finite and >= 0")


@dataclass(frozen=True)
class ConstraintSet:
    """The ordered constraints of an environment and the limits on their combined cost.

    Attributes:
        constraints: the components, in the order the env reports them.
        limit: default per-episode limit ``d`` on the combined cost (sum over the episode).
        strict_limit: stricter per-episode limit (``None`` if the env defines none).
        combine_mode: ``"max"`` (union of violations, the default: the combined indicator is 1
            when any component is violated) or ``"sum"`` (components add up).
        episode_length: nominal episode length in steps, used to express limits as rates.
    """

    constraints: Sequence[Constraint]
    limit: float
    strict_limit: float | None = None
    combine_mode: str = "max"
    episode_length: int | None = None
    _index: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        constraints = tuple(self.constraints)
        if not constraints:
            raise ValueError("ConstraintSet needs at least one Constraint")
        for c in constraints:
            if not isinstance(c, Constraint):
                raise TypeError(f"ConstraintSet items must be Constraint, got {type(c).__name__}")
        names = [c.name for c in constraints]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate constraint names in {names}")
        if self.combine_mode not in COMBINE_MODES:
            raise ValueError(
                f"combine_mode must be one of {COMBINE_MODES}, got {self.combine_mode!r}"
            )
        if not (np.isfinite(self.limit) and self.limit >= 0):
            raise ValueError(f"limit must be finite and >= 0, got {self.limit!r}")
        if self.strict_limit is not None and not (0 <= self.strict_limit <= self.limit):
            raise ValueError(
                f"strict_limit must be in [0, limit={self.limit}], got {self.strict_limit!r}"
            )
        object.__setattr__(self, "constraints", constraints)
        object.__setattr__(self, "_index", {n: i for i, n in enumerate(names)})

    # -- container protocol -------------------------------------------------------------------
    @property
    def names(self) -> tuple[str, ...]:
        """Component names in order."""
        return tuple(c.name for c in self.constraints)

    def __len__(self) -> int:
        return len(self.constraints)

    def __iter__(self) -> Iterator[Constraint]:
        return iter(self.constraints)

    def __contains__(self, name: object) -> bool:
        return name in self._index

    def __getitem__(self, name: str) -> Constraint:
        try:
            return self.constraints[self._index[name]]
        except KeyError:
            raise KeyError(f"unknown constraint {name!r}; available: {list(self.names)}") from None

    # -- limits --------------------------------------------------------------------------------
    def get_limit(self, strict: bool = False) -> float:
        """The per-episode limit on the combined cost (``strict=True``: the strict one)."""
        if strict:
            if self.strict_limit is None:
                raise ValueError("this ConstraintSet defines no strict_limit")
            return float(self.strict_limit)
        return float(self.limit)

    def limit_rate(self, strict: bool = False) -> float | None:
        """The limit as a fraction of steps in violation (``None`` without ``episode_length``)."""
        if not self.episode_length:
            return None
        return self.get_limit(strict) / float(self.episode_length)

    # -- combination ---------------------------------------------------------------------------
    def combine(
        self, components: Mapping[str, np.ndarray], out: np.ndarray | None = None
    ) -> np.ndarray:
        """Combine per-component costs into the scalar per-step cost.

        Args:
            components: name -> array of shape ``(N,)`` (or scalars), one entry per constraint;
                extra or missing names raise ``ValueError``.
            out: optional float32 buffer of shape ``(N,)`` to write into.

        Returns:
            float32 array ``(N,)``: the element-wise max (``combine_mode="max"``) or sum.
        """
        if set(components) != set(self._index):
            missing = sorted(set(self._index) - set(components))
            extra = sorted(set(components) - set(self._index))
            raise ValueError(f"cost components mismatch: missing {missing}, unexpected {extra}")
        arrays = [np.asarray(components[n], dtype=np.float32) for n in self.names]
        if out is None:
            out = np.array(arrays[0], dtype=np.float32, copy=True)
        else:
            np.copyto(out, arrays[0])
        op = np.maximum if self.combine_mode == "max" else np.add
        for arr in arrays[1:]:
            op(out, arr, out=out)
        return out

    # -- presentation --------------------------------------------------------------------------
    def describe(self) -> list[dict[str, str]]:
        """Rows for a table (one per component plus the combined limit), all values strings."""
        rows = []
        for c in self.constraints:
            rows.append(
                {
                    "name": c.name,
                    "description": c.description,
                    "unit": c.unit,
                    "threshold": c.threshold,
                    "limit": "-" if c.limit is None else f"{c.limit:g}",
                    "strict_limit": "-" if c.strict_limit is None else f"{c.strict_limit:g}",
                    "source": c.source,
                }
            )
        per = f" per {self.episode_length}-step episode" if self.episode_length else " per episode"
        rows.append(
            {
                "name": f"cost ({self.combine_mode})",
                "description": (
                    "union of the component indicators"
                    if self.combine_mode == "max"
                    else "sum of the components"
                )
                + per,
                "unit": "steps" if self.combine_mode == "max" else "sum",
                "threshold": "",
                "limit": f"{self.limit:g}",
                "strict_limit": "-" if self.strict_limit is None else f"{self.strict_limit:g}",
                "source": "",
            }
        )
        return rows

    def summary(self) -> str:
        """One line: how the components combine and the limits (``saferl envs`` prints it)."""
        combine = "union (max)" if self.combine_mode == "max" else "sum"
        per = f" per {self.episode_length}-step episode" if self.episode_length else ""
        strict = "" if self.strict_limit is None else f", strict {self.strict_limit:g}"
        return f"cost = {combine} of the components; limit {self.limit:g}{per}{strict}"

    def describe_text(self) -> str:
        """A plain-text table of :meth:`describe` (for logs)."""
        rows = self.describe()
        cols = ["name", "threshold", "limit", "strict_limit", "description"]
        widths = {c: max(len(c), *(len(r[c]) for r in rows)) for c in cols}
        lines = ["  ".join(c.ljust(widths[c]) for c in cols)]
        lines.append("  ".join("-" * widths[c] for c in cols))
        lines.extend("  ".join(r[c].ljust(widths[c]) for c in cols) for r in rows)
        return "\n".join(line.rstrip() for line in lines)
