"""``saferl runs``: one row per run, from run directories or from an MLflow store.

Columns (:data:`COLUMNS`): name, env, algo, seed, steps, final_return, final_cost, limit,
best_return, best_cost, feasible, status. "Final" is the last epoch's training metrics; "best"
is the epoch chosen as ``best.pt`` is, feasible first (cost <= limit), then the highest return;
``feasible`` says whether the final cost is within the limit. A run trained with several
constraints (per impairment level or per cost component) is judged by its worst group: its
cost and limit columns are those of the group furthest above (or least below) its own limit.
``status`` is ``finished``, ``stopped`` (early stopping, a signal), ``failed``, ``running`` (a live process holds the run
directory) or ``crashed`` (it says running but no process holds it, e.g. after ``kill -9``).
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from saferl.config import ConfigError

__all__ = [
    "COLUMNS",
    "filter_runs",
    "format_runs",
    "runs_from_dirs",
    "runs_from_mlflow",
    "sort_runs",
]

COLUMNS = (
    "name",
    "env",
    "algo",
    "seed",
    "steps",
    "final_return",
    "final_cost",
    "limit",
    "best_return",
    "best_cost",
    "feasible",
    "status",
)


def _finite(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _judged(r: Mapping[str, Any]) -> tuple[float | None, float | None]:
    """(cost, limit) a row is judged by: ``ep_cost`` against ``cost_limit``, or with several
    constraints (``cost_limit/<group>`` columns) the group furthest above (or least below) its
    own limit, so ``cost <= limit`` exactly when every measured group is within its limit."""
    from saferl.training.callbacks import group_status

    st = group_status(r)
    if st is None:
        return _finite(r.get("ep_cost")), _finite(r.get("cost_limit"))
    return _finite(st["cost"]), _finite(st["limit"])


def _best(rows: Sequence[Mapping[str, Any]]) -> tuple[float | None, float | None]:
    """(return, cost) of the best epoch: feasible first, then the highest return."""
    best_key, best = None, (None, None)
    for r in rows:
        ret = _finite(r.get("ep_return"))
        cost, limit = _judged(r)
        if ret is None or cost is None:
            continue
        key = (limit is not None and cost <= limit, ret)
        if best_key is None or key > best_key:
            best_key, best = key, (ret, cost)
    return best


def _lock_held(run_dir: Path) -> bool:
    """Whether a live process holds ``run_dir/.lock`` (the trainer's flock)."""
    path = run_dir / ".lock"
    if not path.exists():
        return False
    try:
        import fcntl
    except ImportError:  # not POSIX: cannot tell
        return False
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)  # also drops the shared lock we may have taken
    return False


def _status(manifest_status: str | None, run_dir: Path | None) -> str:
    status = manifest_status or "unknown"
    if status in ("running", "created"):
        if run_dir is not None and _lock_held(run_dir):
            return "running"
        return "crashed"
    return status


def _row(**fields: Any) -> dict[str, Any]:
    row = {c: fields.get(c) for c in COLUMNS}
    cost, limit = row["final_cost"], row["limit"]
    if cost is not None and limit is not None:
        row["feasible"] = bool(cost <= limit)
    return row


def runs_from_dirs(root: str | Path) -> list[dict[str, Any]]:
    """Rows for ``root`` itself if it is a run directory, else for each run directory in it.

    Raises:
        ConfigError: ``root`` does not exist.
    """
    from saferl.training.tracking.local import read_metrics

    root = Path(root)
    if not root.is_dir():
        raise ConfigError(f"runs: {root} is not a directory")
    candidates = [root] if (root / "manifest.json").is_file() else sorted(root.iterdir())
    out = []
    for rd in candidates:
        manifest_path = rd / "manifest.json"
        if not manifest_path.is_file():
            continue
        try:
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            continue
        rows = read_metrics(rd / "metrics.jsonl")
        last = rows[-1] if rows else {}
        best_return, best_cost = _best(rows)
        final_cost, limit = _judged(last)
        out.append(
            _row(
                name=rd.name,
                env=manifest.get("env"),
                algo=manifest.get("algo"),
                seed=manifest.get("seed"),
                steps=last.get("env_steps", manifest.get("env_steps")),
                final_return=_finite(last.get("ep_return")),
                final_cost=final_cost,
                limit=limit,
                best_return=best_return,
                best_cost=best_cost,
                status=_status(manifest.get("status"), rd),
            )
        )
    return out


def runs_from_mlflow(uri: str, experiment: str | None = None) -> list[dict[str, Any]]:
    """Rows for the saferl runs of an MLflow store (every experiment, or one by name).

    Raises:
        BackendUnavailableError: mlflow is not installed.
        ConfigError: the experiment does not exist.
    """
    from saferl.training.tracking.base import require_package

    require_package("mlflow")
    from mlflow.tracking import MlflowClient

    from saferl.training.tracking.mlflow_backend import RUN_DIR_TAG

    client = MlflowClient(tracking_uri=uri)
    if experiment is not None:
        exp = client.get_experiment_by_name(experiment)
        if exp is None:
            raise ConfigError(f"runs: no MLflow experiment '{experiment}' at {uri}")
        ids = [exp.experiment_id]
    else:
        ids = [e.experiment_id for e in client.search_experiments()]
    out = []
    for run in client.search_runs(ids, filter_string=f"tags.`{RUN_DIR_TAG}` != ''"):
        rid = run.info.run_id
        tags, metrics = run.data.tags, run.data.metrics
        by_step: dict[int, dict[str, float]] = {}
        groups = [k for k in metrics if k.startswith("cost_limit/")]
        groups += [f"ep_cost/{k[len('cost_limit/') :]}" for k in groups]
        for key in ("ep_return", "ep_cost", "cost_limit", *groups):
            for m in client.get_metric_history(rid, key):
                by_step.setdefault(int(m.step), {})[key] = m.value
        best_return, best_cost = _best([by_step[s] for s in sorted(by_step)])
        run_dir = Path(tags[RUN_DIR_TAG]) if tags.get(RUN_DIR_TAG) else None
        mstatus = {"FINISHED": "finished", "RUNNING": "running"}.get(run.info.status, "crashed")
        if mstatus == "running" and run_dir is not None and run_dir.is_dir():
            mstatus = _status("running", run_dir)
        steps = metrics.get("env_steps")
        final_cost, limit = _judged(metrics)
        out.append(
            _row(
                name=run.info.run_name,
                env=tags.get("saferl.env"),
                algo=tags.get("saferl.algo"),
                seed=int(tags["saferl.seed"]) if tags.get("saferl.seed", "").isdigit() else None,
                steps=int(steps) if steps is not None else None,
                final_return=_finite(metrics.get("ep_return")),
                final_cost=final_cost,
                limit=limit,
                best_return=best_return,
                best_cost=best_cost,
                status=mstatus,
            )
        )
    return out


def filter_runs(rows: Iterable[Mapping[str, Any]], filters: Sequence[str]) -> list[dict[str, Any]]:
    """Keep rows matching every ``column=value`` (or ``column!=value``) filter (text compare).

    Raises:
        ConfigError: a filter without ``=`` or naming an unknown column.
    """
    parsed = []
    for f in filters:
        for part in (p.strip() for p in f.split(",")):
            if not part:
                continue
            negate = "!=" in part
            key, sep, value = part.partition("!=" if negate else "=")
            key = key.strip()
            if not sep or key not in COLUMNS:
                raise ConfigError(
                    f"--filter {part!r}: expected COLUMN=VALUE with COLUMN one of "
                    f"{', '.join(COLUMNS)}"
                )
            parsed.append((key, value.strip(), negate))
    out = []
    for r in rows:
        ok = all((_text(r.get(k)) == v) != neg for k, v, neg in parsed)
        if ok:
            out.append(dict(r))
    return out


def sort_runs(
    rows: Iterable[Mapping[str, Any]], column: str | None, *, ascending: bool = False
) -> list[dict[str, Any]]:
    """Sort by ``column`` (numbers high to low unless ``ascending``; missing values last).

    Raises:
        ConfigError: an unknown column.
    """
    rows = [dict(r) for r in rows]
    if column is None:
        return rows
    if column not in COLUMNS:
        raise ConfigError(f"--sort {column!r}: expected one of {', '.join(COLUMNS)}")
    present = [r for r in rows if r.get(column) is not None]
    missing = [r for r in rows if r.get(column) is None]
    present.sort(key=lambda r: r[column], reverse=not ascending)
    return present + missing


def _text(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def format_runs(rows: Sequence[Mapping[str, Any]], fmt: str = "table") -> str:
    """``table`` (aligned text), ``csv`` or ``json`` (a list of objects, numbers unrounded).

    Raises:
        ConfigError: an unknown format.
    """
    if fmt == "json":
        return json.dumps([{c: r.get(c) for c in COLUMNS} for r in rows], indent=2)
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(COLUMNS)
        for r in rows:
            w.writerow(["" if r.get(c) is None else r.get(c) for c in COLUMNS])
        return buf.getvalue().rstrip("\n")
    if fmt != "table":
        raise ConfigError(f"--format {fmt!r}: expected table, csv or json")
    cells = [list(COLUMNS)] + [[_text(r.get(c)) for c in COLUMNS] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(COLUMNS))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(line.rstrip() for line in lines)
