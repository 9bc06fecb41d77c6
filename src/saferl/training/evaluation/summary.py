"""Per-condition summaries of an :class:`EpisodeTable`: what ``results.json`` and the reports show.

:func:`summarize` groups the table by ``(protocol, condition)`` and gives, per group: episodes,
mean return and mean cost with bootstrap CIs, CVaR(90 %) of episode cost with its CI, violation
rate (episode cost > limit) with its CI, success rate (when the env reports success), mean
length, time to first violation (mean over episodes that had one, and the share that had one),
and the mean of each cost component. :func:`degradation` turns the ``human_factors`` groups into
the degradation curve relative to the ``none`` level. :func:`constraint_summary` holds a run
trained with several constraints (per impairment level, per cost component) to each one's own
limit.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from saferl.training.evaluation import stats
from saferl.training.evaluation.table import EpisodeTable

__all__ = [
    "StatsOptions",
    "constraint_summary",
    "degradation",
    "summarize",
    "summarize_group",
]


@dataclass(frozen=True)
class StatsOptions:
    """Confidence level, bootstrap resamples and seed for every interval in a summary."""

    confidence: float = 0.95
    n_resamples: int = 10_000
    seed: int = 0
    cvar_alpha: float = 0.9


def _nanmean(x: np.ndarray) -> float:
    x = np.asarray(x, np.float64)
    x = x[np.isfinite(x)]
    return float(x.mean()) if x.size else math.nan


def summarize_group(table: EpisodeTable, opts: StatsOptions = StatsOptions()) -> dict[str, Any]:
    """Statistics of one group of episodes (see the module docstring). JSON-ready values."""
    ret = table["return"].astype(np.float64)
    cost = table["cost"].astype(np.float64)
    kw = {"confidence": opts.confidence, "n_resamples": opts.n_resamples, "seed": opts.seed}
    success = table["success"].astype(np.float64)
    known = np.isfinite(success)
    fv = table["first_violation_step"].astype(np.float64)
    limits = np.unique(table["limit"])
    out: dict[str, Any] = {
        "episodes": len(table),
        "limit": float(limits[0]) if limits.size == 1 else [float(v) for v in limits],
        "return": stats.bootstrap_ci(ret, **kw).to_dict(),
        "cost": stats.bootstrap_ci(cost, **kw).to_dict(),
        "cost_cvar": {
            "alpha": opts.cvar_alpha,
            **stats.cvar_ci(cost, opts.cvar_alpha, **kw).to_dict(),
        },
        "violation_rate": stats.rate_ci(table["violation"].astype(np.float64), **kw).to_dict(),
        "success_rate": (
            stats.rate_ci(success[known], **kw).to_dict() if known.all() and known.any() else None
        ),
        "length": {"mean": float(table["length"].mean()), "max": int(table["length"].max())},
        "first_violation_step": {
            "mean": _nanmean(fv),
            "median": float(np.nanmedian(fv)) if np.isfinite(fv).any() else math.nan,
            "share_with_violation": float(np.isfinite(fv).mean()),
        },
        "cost_components": {c: float(table[f"cost_{c}"].mean()) for c in table.cost_components},
    }
    return _jsonable(out)


def summarize(
    table: EpisodeTable, opts: StatsOptions = StatsOptions()
) -> dict[str, dict[str, dict[str, Any]]]:
    """``{protocol: {condition: summarize_group(...)}}`` in table order."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for protocol in table.unique("protocol"):
        sub = table.where(protocol=protocol)
        out[protocol] = {
            cond: summarize_group(sub.where(condition=cond), opts)
            for cond in sub.unique("condition")
        }
    return out


def degradation(
    groups: Mapping[str, Mapping[str, Any]], baseline: str = "none"
) -> list[dict[str, Any]]:
    """Degradation curve over impairment levels from ``summarize(...)["human_factors"]``.

    One row per level: mean return and cost, violation rate, and the change relative to the
    ``baseline`` level (absolute, and relative to ``|baseline|`` for return). Missing baseline:
    the first level is the reference.
    """
    if not groups:
        return []
    ref_name = baseline if baseline in groups else next(iter(groups))
    ref = groups[ref_name]
    r0 = ref["return"]["estimate"]
    c0 = ref["cost"]["estimate"]
    v0 = ref["violation_rate"]["estimate"]
    rows = []
    for level, g in groups.items():
        r, c, v = g["return"]["estimate"], g["cost"]["estimate"], g["violation_rate"]["estimate"]
        rows.append(
            {
                "level": level,
                "return": r,
                "cost": c,
                "violation_rate": v,
                "return_change": r - r0,
                "return_change_pct": (100.0 * (r - r0) / abs(r0)) if r0 else None,
                "cost_change": c - c0,
                "violation_rate_change": v - v0,
            }
        )
    return rows


def constraint_summary(
    table: EpisodeTable, constraints: Mapping[str, Any], opts: StatsOptions = StatsOptions()
) -> dict[str, Any]:
    """Each constraint group of a run against its own limit, per protocol condition.

    Args:
        table: the episodes (``protocol``/``condition`` columns; per level the
            ``<key>_level`` column, per component the ``cost_<component>`` columns).
        constraints: the run's groups as :meth:`Model.describe` gives them: ``kind``
            (``levels`` or ``components``), ``key`` (levels), ``limits`` (group -> limit).

    Returns:
        ``{kind, key, limits, protocols: {protocol: {condition: {group: {episodes, limit,
        cost, violation_rate, within_limit}}}}}``: per level the episodes of that level alone
        (a condition without episodes of a level leaves it out), per component every episode's
        sum of that component; ``violation_rate`` is the share of those episodes whose cost is
        above the group's own limit, ``within_limit`` whether the mean cost is at most it.
    """
    kind = str(constraints["kind"])
    limits = {str(g): float(v) for g, v in constraints["limits"].items()}
    key = constraints.get("key")
    kw = {"confidence": opts.confidence, "n_resamples": opts.n_resamples, "seed": opts.seed}
    column = f"{key}_level"
    if kind == "levels" and len(table) and column not in table:
        raise ValueError(f"the episodes do not say their {key} level (no column {column})")
    out: dict[str, Any] = {}
    for protocol in table.unique("protocol"):
        sub = table.where(protocol=protocol)
        out[protocol] = {}
        for cond in sub.unique("condition"):
            rows = sub.where(condition=cond)
            groups: dict[str, Any] = {}
            for g, limit in limits.items():
                if kind == "levels":
                    cost = rows["cost"][np.asarray(rows[column]) == g].astype(np.float64)
                else:
                    cost = rows[f"cost_{g}"].astype(np.float64)
                if cost.size == 0:
                    continue
                mean = stats.bootstrap_ci(cost, **kw).to_dict()
                groups[g] = {
                    "episodes": int(cost.size),
                    "limit": limit,
                    "cost": mean,
                    "violation_rate": stats.rate_ci(
                        (cost > limit).astype(np.float64), **kw
                    ).to_dict(),
                    "within_limit": bool(float(np.mean(cost)) <= limit),
                }
            out[protocol][cond] = groups
    return _jsonable({"kind": kind, "key": key, "limits": limits, "protocols": out})


def _jsonable(obj: Any) -> Any:
    """NaN/inf -> None, numpy scalars -> Python (strict JSON)."""
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj
