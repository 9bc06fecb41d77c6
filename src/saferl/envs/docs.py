"""Markdown tables that the env docs (docs/envs/*.md) hold verbatim, rendered from the code: an
env's constraints (:func:`constraints_markdown`) and its observation layout
(:meth:`saferl.envs.layout.ObsLayout.markdown`). A test checks that each doc contains them, so
a threshold or a field changed in the code cannot leave the docs behind.
"""

from __future__ import annotations

from saferl.safety import ConstraintSet

__all__ = ["constraints_markdown"]


def constraints_markdown(constraints: ConstraintSet) -> str:
    """One row per constraint: name, the violation rule (its rendered threshold), what it
    means, its basis; then the combined cost and its limits."""
    rows = ["| cost | violation when (per step) | meaning | basis |", "|---|---|---|---|"]
    for c in constraints:
        rows.append(
            f"| `{c.name}` | {_cell(c.threshold)} | {_cell(c.description)} | {_cell(c.source)} |"
        )
    strict = "" if constraints.strict_limit is None else f" (strict {constraints.strict_limit:g})"
    rows.append(
        f"| combined | {constraints.combine_mode} of the {len(constraints)} indicators | "
        f"limit {constraints.limit:g} per {constraints.episode_length}-step episode{strict} | |"
    )
    return "\n".join(rows) + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")
