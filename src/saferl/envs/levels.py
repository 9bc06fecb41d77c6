"""Impairment levels shared by saferl's envs: their names and the ``impairment`` option.

Both envs draw a simulated user's parameters per episode from one of the levels
``none | mild | moderate | severe`` (what each level means is the env's own data); the option
``impairment`` names a level for all instances, ``"random"`` (drawn per episode), or one name
per instance.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["IMPAIRMENT_LEVELS", "levels_option", "parse_levels"]

IMPAIRMENT_LEVELS: tuple[str, ...] = ("none", "mild", "moderate", "severe")


def parse_levels(value: Any, num_envs: int, argname: str = "impairment") -> np.ndarray:
    """Turn an impairment option into per-instance level codes.

    ``value`` is a level name (all instances fixed to it), ``"random"`` (sampled per episode
    uniformly over the four levels), or a sequence of N names (one fixed level per instance,
    ``"random"`` allowed). Returns int8 ``(N,)``: level index, or -1 for "sample per episode".
    Raises ``ValueError`` naming ``argname`` for unknown names or a wrong length.
    """
    names = {n: i for i, n in enumerate(IMPAIRMENT_LEVELS)}
    names["random"] = -1

    def code(v: Any) -> int:
        if not isinstance(v, str) or v not in names:
            raise ValueError(
                f"{argname}: unknown level {v!r}; expected one of "
                f"{[*IMPAIRMENT_LEVELS, 'random']} or a list of them"
            )
        return names[v]

    if isinstance(value, str):
        return np.full(num_envs, code(value), np.int8)
    if isinstance(value, Sequence) or isinstance(value, np.ndarray):
        values = list(value)
        if len(values) != num_envs:
            raise ValueError(
                f"{argname}: a list must give one level per instance ({num_envs}), got {len(values)}"
            )
        return np.array([code(v) for v in values], np.int8)
    raise ValueError(f"{argname}: expected a level name or a list of names, got {value!r}")


def levels_option(codes: np.ndarray) -> Any:
    """Inverse of :func:`parse_levels`: one name when every instance has the same code, else a list."""
    if (codes == codes[0]).all():
        return "random" if codes[0] < 0 else IMPAIRMENT_LEVELS[codes[0]]
    return ["random" if c < 0 else IMPAIRMENT_LEVELS[c] for c in codes]
