"""A tidy per-episode table: a dict of equal-length numpy columns (no pandas dependency).

Each row is one evaluation episode. Standard columns (in this order), then one ``cost_<name>`` column
per cost component of the env's :class:`~saferl.safety.ConstraintSet`:

===========================  =========  ==========================================================
column                       dtype      meaning
===========================  =========  ==========================================================
``protocol``                 str        protocol name (``standard``, ``safety``, ...)
``condition``                str        condition within the protocol (e.g. ``hard``, ``mild``)
``episode``                  int64      index of the episode within its condition (0..n-1)
``seed``                     int64      env seed of the episode (instance seeded with it alone)
``level``                    str        impairment level (``mixed`` when sampled per episode)
``challenge``                str        challenge level
``return``                   float64    undiscounted episode return
``cost``                     float64    undiscounted episode cost (sum of per-step ``info["cost"]``)
``length``                   int64      steps in the episode
``terminated``               bool       ended by termination (not by the time limit)
``success``                  float64    1/0 from the env's ``success`` info, NaN if it reports none
``violation``                bool       episode cost > the cost limit
``first_violation_step``     float64    1-based step of the first step with cost > 0 (NaN: none)
``limit_exceeded_step``      float64    1-based step at which the running cost first exceeds the
                                        limit (NaN: never)
``limit``                    float64    the cost limit the episode was judged against
===========================  =========  ==========================================================
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from saferl.utils import atomic_write_text

__all__ = ["BASE_COLUMNS", "EpisodeTable"]

BASE_COLUMNS: tuple[str, ...] = (
    "protocol",
    "condition",
    "episode",
    "seed",
    "level",
    "challenge",
    "return",
    "cost",
    "length",
    "terminated",
    "success",
    "violation",
    "first_violation_step",
    "limit_exceeded_step",
    "limit",
)


class EpisodeTable:
    """Columns of equal length; rows are episodes.

    Args:
        columns: name -> 1-D array-like, all of the same length.
    """

    def __init__(self, columns: Mapping[str, Any]) -> None:
        cols = {k: np.asarray(v) for k, v in columns.items()}
        lengths = {k: v.shape for k, v in cols.items()}
        sizes = {s[0] if len(s) == 1 else None for s in lengths.values()}
        if None in sizes or len(sizes) > 1:
            raise ValueError(f"EpisodeTable columns must be 1-D of equal length, got {lengths}")
        self.columns: dict[str, np.ndarray] = cols

    # ------------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return 0 if not self.columns else len(next(iter(self.columns.values())))

    def __getitem__(self, name: str) -> np.ndarray:
        try:
            return self.columns[name]
        except KeyError:
            raise KeyError(f"no column {name!r}; columns: {list(self.columns)}") from None

    def __contains__(self, name: object) -> bool:
        return name in self.columns

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, EpisodeTable) or list(self.columns) != list(other.columns):
            return False
        return all(
            np.array_equal(self[k], other[k], equal_nan=self[k].dtype.kind == "f")
            for k in self.columns
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"EpisodeTable({len(self)} rows, columns={list(self.columns)})"

    @property
    def names(self) -> list[str]:
        return list(self.columns)

    @property
    def cost_components(self) -> list[str]:
        """Names of the per-component cost columns, without the ``cost_`` prefix."""
        return [k[5:] for k in self.columns if k.startswith("cost_")]

    # ------------------------------------------------------------------------------------------
    def where(self, mask: np.ndarray | None = None, **equals: Any) -> EpisodeTable:
        """Rows where ``mask`` holds and every ``column == value`` in ``equals``."""
        keep = np.ones(len(self), bool) if mask is None else np.asarray(mask, bool)
        for k, v in equals.items():
            keep &= self[k] == v
        return EpisodeTable({k: v[keep] for k, v in self.columns.items()})

    def unique(self, name: str) -> list[Any]:
        """Distinct values of a column in order of first appearance."""
        seen: dict[Any, None] = {}
        for v in self[name].tolist():
            seen.setdefault(v, None)
        return list(seen)

    @staticmethod
    def concat(tables: Iterable[EpisodeTable]) -> EpisodeTable:
        """Stack tables row-wise; columns missing from some tables are filled (NaN / "")."""
        tables = [t for t in tables if len(t.columns)]
        if not tables:
            return EpisodeTable({})
        names: list[str] = []
        for t in tables:
            names.extend(n for n in t.columns if n not in names)
        out = {}
        for n in names:
            parts = []
            for t in tables:
                if n in t.columns:
                    parts.append(t[n])
                else:
                    ref = next(tt[n] for tt in tables if n in tt.columns)
                    fill = "" if ref.dtype.kind in "US" else np.nan
                    dtype = ref.dtype if ref.dtype.kind in "US" else np.float64
                    parts.append(np.full(len(t), fill, dtype=dtype))
            out[n] = np.concatenate(parts)
        return EpisodeTable(out)

    # ------------------------------------------------------------------------------------------
    def rows(self) -> Iterator[dict[str, Any]]:
        """Rows as dicts of plain Python values (NaN floats become ``None``)."""
        names = list(self.columns)
        lists = [self.columns[n].tolist() for n in names]
        for values in zip(*lists, strict=True):
            yield {n: _plain(v) for n, v in zip(names, values, strict=True)}

    def to_dict(self) -> dict[str, list[Any]]:
        """Columns as lists of plain values (JSON-ready; NaN -> ``None``)."""
        return {k: [_plain(x) for x in v.tolist()] for k, v in self.columns.items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Sequence[Any]]) -> EpisodeTable:
        """Inverse of :meth:`to_dict` (``None`` in numeric columns -> NaN)."""
        cols = {}
        for k, v in data.items():
            if any(isinstance(x, str) for x in v):
                cols[k] = np.asarray(["" if x is None else x for x in v], dtype=str)
            elif any(x is None for x in v) or any(isinstance(x, float) for x in v):
                cols[k] = np.asarray([math.nan if x is None else x for x in v], dtype=np.float64)
            else:
                cols[k] = np.asarray(v)
        return cls(cols)

    def to_csv(self, path: str | Path | None = None) -> str:
        """CSV text (header + one line per episode; NaN as an empty field); written if ``path``."""
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(self.columns)
        for row in self.rows():
            writer.writerow(["" if v is None else _fmt(v) for v in row.values()])
        text = buf.getvalue()
        if path is not None:
            atomic_write_text(path, text)
        return text


def _plain(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def _fmt(v: Any) -> str:
    if isinstance(v, bool):
        return str(int(v))
    if isinstance(v, float):
        return repr(v)
    return str(v)
