"""Named observation layouts: which observation dims hold what, in which unit and scale.

Each saferl env declares its observation once, as an :class:`ObsLayout` of :class:`ObsField`
(name -> dims, scale, unit): the env's ``_observe`` writes each field through it, its scripted
baselines read fields through it, its docs table is :meth:`ObsLayout.markdown` and configs name
fields instead of indices (``env.obs_ema.dims: [joystick_std]``, resolved by
:meth:`ObsLayout.resolve`). An env instance exposes its layout as ``env.obs_layout`` (options
such as privileged observations append fields).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

__all__ = ["ObsField", "ObsLayout"]


@dataclass(frozen=True)
class ObsField:
    """One named group of observation dims.

    Attributes:
        name: the field's name (a Python identifier).
        index: the dims, as a slice ``start:stop:step`` of the observation vector.
        unit: unit of the quantity before scaling (``"-"``: dimensionless).
        scale: the observation is ``quantity / scale``: a number, one number per dim, or a
            symbol when the scale differs per instance (e.g. ``"M g"``).
        description: what the field holds.
        components: names of the dims in order (``()``: unnamed); ``field.component``
            addresses one dim in :meth:`ObsLayout.resolve`.
        privileged: the field is a privileged dim (ablations, asymmetric critics only).
    """

    name: str
    index: slice
    unit: str
    scale: float | tuple[float, ...] | str
    description: str
    components: tuple[str, ...] = ()
    privileged: bool = False

    def __post_init__(self) -> None:
        if not self.name.isidentifier():
            raise ValueError(f"observation field name {self.name!r} is not an identifier")
        if self.components and len(self.components) != len(self.dims):
            raise ValueError(
                f"observation field {self.name!r}: {len(self.components)} component names for "
                f"{len(self.dims)} dims"
            )

    @cached_property
    def dims(self) -> tuple[int, ...]:
        """The observation dims of this field, in order."""
        s = self.index
        return tuple(range(s.start, s.stop, s.step or 1))

    @property
    def size(self) -> int:
        return len(self.dims)

    @property
    def at(self) -> int | slice:
        """Index into the observation's last axis: an int for a one-dim field (so
        ``obs[:, field.at]`` is ``(N,)``), else the slice (``(N, size)``)."""
        return self.dims[0] if self.size == 1 else self.index


class ObsLayout:
    """An env's observation vector as named fields that tile dims ``0..size-1`` exactly once.

    Args:
        fields: the fields, in any order.

    Raises:
        ValueError: repeated names, or dims covered twice or not at all.
    """

    def __init__(self, fields: Sequence[ObsField]) -> None:
        self._fields = {f.name: f for f in sorted(fields, key=lambda f: f.dims[0])}
        if len(self._fields) != len(fields):
            raise ValueError("observation field names must be distinct")
        covered = sorted(d for f in fields for d in f.dims)
        if covered != list(range(len(covered))):
            raise ValueError(f"observation fields must cover dims 0..{len(covered) - 1} once each")
        self.size = len(covered)

    def __getitem__(self, name: str) -> ObsField:
        return self._fields[name]

    def __contains__(self, name: object) -> bool:
        return name in self._fields

    def __iter__(self) -> Iterator[ObsField]:
        return iter(self._fields.values())

    def __len__(self) -> int:
        return len(self._fields)

    def __repr__(self) -> str:
        return f"ObsLayout({self.size} dims: {', '.join(self._fields)})"

    @property
    def names(self) -> tuple[str, ...]:
        """Field names in the order of their first dim."""
        return tuple(self._fields)

    def addresses(self) -> tuple[str, ...]:
        """Every name :meth:`resolve` accepts: fields, then ``field.component`` for each named
        component."""
        comps = [f"{f.name}.{c}" for f in self for c in f.components]
        return (*self.names, *comps)

    def extend(self, fields: Sequence[ObsField]) -> ObsLayout:
        """This layout with ``fields`` added (they must continue the dims)."""
        return ObsLayout([*self, *fields])

    def resolve(self, dims: Sequence[Any], argname: str = "dims") -> list[int]:
        """Observation indices for ``dims``: ints are kept, a field name gives all of the
        field's dims (in order), ``field.component`` one of them.

        Raises:
            ValueError: an unknown name, or an entry that is neither an int nor a name (one line
                starting with ``argname``, listing the names this layout has).
        """
        out: list[int] = []
        for d in dims:
            if isinstance(d, str):
                out.extend(self._dims_of(d, argname))
            elif isinstance(d, int) and not isinstance(d, bool):
                out.append(int(d))
            elif hasattr(d, "__index__") and not isinstance(d, bool):
                out.append(int(d.__index__()))
            else:
                raise ValueError(
                    f"{argname}: {d!r} is neither an observation index nor a field name; "
                    f"names: {', '.join(self.names)}"
                )
        return out

    def _dims_of(self, name: str, argname: str) -> tuple[int, ...]:
        field, _, comp = name.partition(".")
        f = self._fields.get(field)
        if f is not None and not comp:
            return f.dims
        if f is not None and comp in f.components:
            return (f.dims[f.components.index(comp)],)
        example = next((f"{f.name}.{f.components[0]}" for f in self if f.components), None)
        one = f" or field.component (e.g. {example})" if example else ""
        raise ValueError(
            f"{argname}: unknown observation field {name!r}; expected an index in "
            f"0..{self.size - 1}, a field name ({', '.join(self.names)}){one}"
        )

    def markdown(self) -> str:
        """The layout as a Markdown table (dims, name, content, unit, scale), one row per
        field; the env docs hold this table verbatim (a test checks it)."""
        rows = ["| dims | name | content | unit | scale |", "|---|---|---|---|---|"]
        for f in self:
            rows.append(
                f"| {_dims_text(f.dims)} | `{f.name}`{_components_text(f.components)} | "
                f"{f.description}{' (privileged)' if f.privileged else ''} | "
                f"{'–' if f.unit == '-' else f.unit} | "
                f"{_scale_text(f.scale)} |"
            )
        return "\n".join(rows) + "\n"


def _dims_text(dims: tuple[int, ...]) -> str:
    if len(dims) == 1:
        return str(dims[0])
    if dims[-1] - dims[0] == len(dims) - 1:
        return f"{dims[0]}–{dims[-1]}"
    return ", ".join(str(d) for d in dims)


def _components_text(components: tuple[str, ...]) -> str:
    return f" ({', '.join(components)})" if components else ""


def _scale_text(scale: float | tuple[float, ...] | str) -> str:
    if isinstance(scale, str):
        return f"÷ {scale}"
    if isinstance(scale, tuple):
        if len(set(scale)) == 1:
            scale = scale[0]
        else:
            return "÷ (" + ", ".join(f"{s:g}" for s in scale) + ")"
    return "–" if scale == 1 else f"÷ {scale:g}"
