"""Training callbacks, shaped like Stable-Baselines3's: small hooks, each resumable.

Hooks (all optional, called by the trainer in this order each epoch)::

    on_train_start()                         once, after a fresh start or a resume
    on_rollout_end(rollout_metrics)          after collecting the epoch's batch
    on_epoch_end(metrics) -> bool            after the update; False stops training
    on_train_end()                           once, on every exit path

``metrics`` is the epoch's row (``epoch, env_steps, ep_return, ep_cost, ep_len, cost_limit,`` plus
the algorithm's diagnostics); a callback may add columns to it (the trackers log the row after
the callbacks ran). Callbacks read metrics; they never drive the algorithm's constraint estimate.
Each callback's ``state_dict``/``load_state_dict`` is part of the trainer's checkpoint.
"""

from __future__ import annotations

import io
import logging
import math
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from saferl.utils import atomic_write_bytes

if TYPE_CHECKING:  # pragma: no cover
    from saferl.training.schedulers import Schedules

logger = logging.getLogger(__name__)

__all__ = [
    "BestModel",
    "Callback",
    "CallbackList",
    "EarlyStopping",
    "LRScheduleCallback",
    "PlotCallback",
    "ProgressBar",
    "SafetyMonitor",
]


def _num(value: Any) -> float:
    """A float, NaN for missing or non-numeric values."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def group_limits(metrics: Mapping[str, Any]) -> dict[str, float]:
    """The per-group limits of a row (``cost_limit/<group>`` columns: several constraints,
    ``env.constraint_groups`` or ``env.constraints``); empty for one constraint."""
    prefix = "cost_limit/"
    return {k[len(prefix) :]: _num(v) for k, v in metrics.items() if k.startswith(prefix)}


def worst_excess(costs: Mapping[str, float], limits: Mapping[str, float]) -> float:
    """``max over groups of cost - limit`` (NaN when some group's cost is missing)."""
    excess = [_num(costs.get(g)) - lim for g, lim in limits.items()]
    return max(excess) if excess and all(math.isfinite(e) for e in excess) else math.nan


def group_status(metrics: Mapping[str, Any], prefix: str = "ep_cost/") -> dict[str, Any] | None:
    """Where a row with several constraints stands (None with one constraint): ``worst`` the
    group furthest above (or least below) its limit among those measured, its ``cost`` and
    ``limit``, ``over`` the groups above their limits, ``unmeasured`` those whose cost is NaN
    (no finished episode), and ``costs``/``limits`` per group. Costs are the ``<prefix><g>``
    columns."""
    limits = group_limits(metrics)
    if not limits:
        return None
    costs = {g: _num(metrics.get(f"{prefix}{g}")) for g in limits}
    measured = {g: c for g, c in costs.items() if math.isfinite(c)}
    worst = max(measured, key=lambda g: measured[g] - limits[g]) if measured else None
    return {
        "worst": worst,
        "cost": measured[worst] if worst is not None else math.nan,
        "limit": limits[worst] if worst is not None else math.nan,
        "over": [g for g, c in measured.items() if c > limits[g]],
        "unmeasured": [g for g in limits if g not in measured],
        "costs": costs,
        "limits": limits,
    }


def cost_status(metrics: Mapping[str, Any]) -> str:
    """``cost C/L`` for one constraint; with several, the worst group's (``cost C  severe
    C_g/L_g``), as the epoch log line and the progress bar show it."""
    cost = _num(metrics.get("ep_cost"))
    st = group_status(metrics)
    if st is None:
        return f"cost {cost:.4g}/{_num(metrics.get('cost_limit')):.4g}"
    if st["worst"] is None:
        return f"cost {cost:.4g}  (no group measured)"
    return f"cost {cost:.4g}  worst {st['worst']} {st['cost']:.4g}/{st['limit']:.4g}"


class Callback:
    """Base class: every hook is a no-op; ``self.trainer`` is set by :meth:`init_callback`.

    A callback whose ``on_epoch_end`` returns False says why in :attr:`stop_reason` (the
    trainer reports it)."""

    name: str = "callback"

    def __init__(self) -> None:
        self.trainer: Any = None
        #: why this callback stopped training (set with the False it returns), else None
        self.stop_reason: str | None = None

    def init_callback(self, trainer: Any) -> None:
        self.trainer = trainer

    def on_train_start(self) -> None:
        pass

    def on_rollout_end(self, rollout_metrics: Mapping[str, Any]) -> None:
        pass

    def on_epoch_end(self, metrics: dict[str, Any]) -> bool:
        return True

    def on_train_end(self) -> None:
        pass

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        pass


class CallbackList(Callback):
    """Several callbacks as one; ``on_epoch_end`` calls all of them, then stops if any said so."""

    name = "callbacks"

    def __init__(self, callbacks: Iterable[Callback] = ()) -> None:
        super().__init__()
        self.callbacks = list(callbacks)
        names = [cb.name for cb in self.callbacks]
        if len(set(names)) != len(names):
            raise ValueError(f"callback names must be unique (they key the checkpoint): {names}")

    def __iter__(self):
        return iter(self.callbacks)

    def get(self, name: str) -> Callback | None:
        return next((cb for cb in self.callbacks if cb.name == name), None)

    def init_callback(self, trainer: Any) -> None:
        super().init_callback(trainer)
        for cb in self.callbacks:
            cb.init_callback(trainer)

    def on_train_start(self) -> None:
        for cb in self.callbacks:
            cb.on_train_start()

    def on_rollout_end(self, rollout_metrics: Mapping[str, Any]) -> None:
        for cb in self.callbacks:
            cb.on_rollout_end(rollout_metrics)

    def on_epoch_end(self, metrics: dict[str, Any]) -> bool:
        stopped = [cb for cb in self.callbacks if cb.on_epoch_end(metrics) is False]
        self.stop_reason = (
            "; ".join(
                getattr(cb, "stop_reason", None) or f"stopped by callback '{cb.name}'"
                for cb in stopped
            )
            or None
        )
        return not stopped

    def on_train_end(self) -> None:
        for cb in self.callbacks:
            try:
                cb.on_train_end()
            except OSError as exc:  # e.g. a full disk: one line, not a traceback
                logger.warning(
                    "callback '%s' could not write in on_train_end: %s", cb.name,
                    exc.strerror or exc,
                )  # fmt: skip
            except Exception:  # one broken callback must not hide the others' final work
                logger.exception("callback '%s' failed in on_train_end", cb.name)

    def state_dict(self) -> dict[str, Any]:
        return {cb.name: cb.state_dict() for cb in self.callbacks}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        for cb in self.callbacks:
            if cb.name in state:
                cb.load_state_dict(state[cb.name])
            else:
                logger.warning(
                    "checkpoint has no state for callback '%s'; it starts fresh", cb.name
                )


class EarlyStopping(Callback):
    """Stop when ``metric`` has not improved by more than ``min_delta`` for ``patience`` epochs.

    A NaN value (e.g. no episode finished in the epoch) counts as no improvement.
    """

    name = "early_stopping"

    def __init__(
        self, metric: str = "ep_return", mode: str = "max", patience: int = 20, min_delta: float = 0
    ) -> None:
        super().__init__()
        if mode not in ("max", "min"):
            raise ValueError(f"mode must be 'max' or 'min', got {mode!r}")
        self.metric, self.mode, self.patience, self.min_delta = metric, mode, patience, min_delta
        self.best = math.inf if mode == "min" else -math.inf
        self.best_epoch = -1
        self.wait = 0
        self.stopped_epoch: int | None = None

    def _improved(self, value: float) -> bool:
        if not math.isfinite(value):
            return False
        if self.mode == "max":
            return value > self.best + self.min_delta
        return value < self.best - self.min_delta

    def on_epoch_end(self, metrics: dict[str, Any]) -> bool:
        value = _num(metrics.get(self.metric))
        epoch = int(metrics.get("epoch", 0))
        if self._improved(value):
            self.best, self.best_epoch, self.wait = value, epoch, 0
            return True
        self.wait += 1
        if self.wait >= self.patience:
            self.stopped_epoch = epoch
            self.stop_reason = (
                f"early stopping: {self.metric} did not improve for {self.wait} epochs "
                f"(best {self.best:.4g} at epoch {self.best_epoch})"
            )
            logger.info(
                "early stopping at epoch %d: %s has not improved on %.6g (epoch %d) for %d epochs",
                epoch,
                self.metric,
                self.best,
                self.best_epoch,
                self.wait,
            )
            return False
        return True

    def state_dict(self) -> dict[str, Any]:
        return {
            "best": self.best,
            "best_epoch": self.best_epoch,
            "wait": self.wait,
            "stopped_epoch": self.stopped_epoch,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.best = float(state["best"])
        self.best_epoch = int(state["best_epoch"])
        self.wait = int(state["wait"])
        self.stopped_epoch = state.get("stopped_epoch")


def feasibility_key(ep_return: float, ep_cost: float, limit: float) -> tuple[int, float]:
    """Sort key of "best": feasible (cost <= limit) before infeasible, then higher return.

    Infeasible candidates are ranked by lower cost first (closer to feasibility), then return.
    """
    if ep_cost <= limit:
        return (1, ep_return)
    return (0, -ep_cost)


class BestModel(Callback):
    """Keeps ``best.pt``: feasible first (``ep_cost <= cost_limit``), then highest ``ep_return``.

    Among infeasible epochs (before any feasible one), the lowest cost wins. Epochs where no episode
    finished (NaN return or cost) are skipped. Writing goes through ``trainer.save_best()``.

    With several constraints (``cost_limit/<group>`` columns) an epoch is feasible only when
    every group's cost (``ep_cost/<group>``) is within its own limit; infeasible epochs rank by
    the smallest worst excess ``max_g (cost_g - limit_g)``; an epoch where some group finished
    no episode cannot be judged and is skipped.

    Args:
        evaluate: ``() -> (mean return, mean cost)`` of the current policy on evaluation
            episodes (or ``(mean return, mean cost, {group: mean cost})`` with several
            constraints). When given, the policy is judged on it instead of the epoch's training
            episodes, on epochs that are multiples of ``every`` and on the trainer's last epoch;
            the values are added to the epoch's metrics as ``best_eval_return`` and
            ``best_eval_cost``.
        every: epochs between evaluations.
    """

    name = "best_model"

    def __init__(
        self, evaluate: Callable[[], tuple[float, float]] | None = None, every: int = 1
    ) -> None:
        super().__init__()
        self.evaluate = evaluate
        self.every = max(1, int(every))
        self.best_key: tuple[int, float] | None = None
        self.best_epoch = -1
        self.best_return = math.nan
        self.best_cost = math.nan

    def is_better(self, ep_return: float, ep_cost: float, limit: float) -> bool:
        if not (math.isfinite(ep_return) and math.isfinite(ep_cost)):
            return False
        key = feasibility_key(ep_return, ep_cost, limit)
        return self.best_key is None or key > self.best_key

    def on_epoch_end(self, metrics: dict[str, Any]) -> bool:
        if self.evaluate is not None:
            epoch = int(metrics.get("epoch", 0))
            last = self.trainer is not None and epoch >= getattr(self.trainer, "total_epochs", 0)
            if epoch % self.every and not last:
                return True
            ret, cost, *per_group = self.evaluate()
            metrics["best_eval_return"], metrics["best_eval_cost"] = ret, cost
            costs = dict(per_group[0]) if per_group else {}
            for g, v in costs.items():
                metrics[f"best_eval_cost/{g}"] = v
        else:
            ret, cost = _num(metrics.get("ep_return")), _num(metrics.get("ep_cost"))
            costs = {k.partition("/")[2]: v for k, v in metrics.items() if k.startswith("ep_cost/")}
        limit = _num(metrics.get("cost_limit"))
        limits = group_limits(metrics)
        if limits:  # several constraints: judged on the worst group's excess over its limit
            excess = worst_excess(costs, limits)
            if not math.isfinite(excess):
                return True
            cost, limit = excess, 0.0
        if self.is_better(ret, cost, limit):
            self.best_key = feasibility_key(ret, cost, limit)
            self.best_epoch = int(metrics.get("epoch", 0))
            self.best_return = ret
            self.best_cost = metrics["best_eval_cost"] if self.evaluate else metrics["ep_cost"]
            if self.trainer is not None:
                self.trainer.save_best()
        return True

    def state_dict(self) -> dict[str, Any]:
        return {
            "best_key": None if self.best_key is None else list(self.best_key),
            "best_epoch": self.best_epoch,
            "best_return": self.best_return,
            "best_cost": self.best_cost,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        key = state["best_key"]
        self.best_key = None if key is None else (int(key[0]), float(key[1]))
        self.best_epoch = int(state["best_epoch"])
        self.best_return = float(state["best_return"])
        self.best_cost = float(state["best_cost"])


class LRScheduleCallback(Callback):
    """Steps the run's :class:`~saferl.training.schedulers.Schedules` at each epoch end and adds
    their new values to the metrics row (``sched/<target>`` columns, the value for the next epoch).
    """

    name = "schedules"

    def __init__(self, schedules: Schedules) -> None:
        super().__init__()
        self.schedules = schedules

    def on_epoch_end(self, metrics: dict[str, Any]) -> bool:
        if len(self.schedules):
            metrics.update(self.schedules.step(metrics))
        return True

    def state_dict(self) -> dict[str, Any]:
        return self.schedules.state_dict()

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.schedules.load_state_dict(state)


class SafetyMonitor(Callback):
    """Watches ``ep_cost`` against ``cost_limit`` epoch by epoch.

    Adds ``violation_rate`` (fraction of the last ``window`` epochs with cost above the limit) and
    ``consecutive_violations`` to every row. After ``alert_after`` violating epochs in a row it logs
    a warning, sets ``safety_alert = 1`` in that row (trackers receive it) and, with ``halt``,
    stops training. Epochs where no episode finished are neither violations nor compliant: they
    leave the counters unchanged.

    With several constraints (``cost_limit/<group>`` columns) an epoch violates when some
    group's cost (``ep_cost/<group>``) is above its own limit, and each group has its own
    ``violation_rate/<group>`` over the window (groups without a finished episode that epoch
    keep theirs).
    """

    name = "safety_monitor"

    def __init__(self, window: int = 10, alert_after: int = 5, halt: bool = False) -> None:
        super().__init__()
        self.window, self.alert_after, self.halt = window, alert_after, halt
        self.history: list[int] = []
        self.consecutive = 0
        self.alerts = 0
        self.group_history: dict[str, list[int]] = {}

    def on_epoch_end(self, metrics: dict[str, Any]) -> bool:
        cost, limit = _num(metrics.get("ep_cost")), _num(metrics.get("cost_limit"))
        limits = group_limits(metrics)
        measured = False
        if limits:
            over = []
            for g, lim in limits.items():
                c = _num(metrics.get(f"ep_cost/{g}"))
                if math.isfinite(c) and math.isfinite(lim):
                    hist = [*self.group_history.get(g, []), int(c > lim)][-self.window :]
                    self.group_history[g] = hist
                    over.append((c - lim, c, lim))
                h = self.group_history.get(g)
                metrics[f"violation_rate/{g}"] = sum(h) / len(h) if h else math.nan
            if over:  # the worst group stands for the epoch in the overall counters
                _, cost, limit = max(over)
                measured = True
        else:
            measured = math.isfinite(cost) and math.isfinite(limit)
        alert = False
        if measured:
            violated = int(cost > limit)
            self.history = [*self.history, violated][-self.window :]
            self.consecutive = self.consecutive + 1 if violated else 0
            alert = self.consecutive == self.alert_after
        rate = sum(self.history) / len(self.history) if self.history else math.nan
        metrics["violation_rate"] = rate
        metrics["consecutive_violations"] = self.consecutive
        metrics["safety_alert"] = int(alert)
        if alert:
            self.alerts += 1
            logger.warning(
                "safety alert: episode cost above the limit %.4g for %d epochs in a row "
                "(epoch %s: cost %.4g; violation rate %.0f%% over the last %d epochs)%s",
                limit,
                self.consecutive,
                metrics.get("epoch"),
                cost,
                100 * rate,
                len(self.history),
                "; halting" if self.halt else "",
                extra={"data": {"event": "safety_alert", "epoch": metrics.get("epoch")}},
            )
            if self.halt:
                self.stop_reason = (
                    f"safety monitor halt: cost above the limit for {self.consecutive} epochs"
                )
                return False
        return True

    def state_dict(self) -> dict[str, Any]:
        return {
            "history": list(self.history),
            "consecutive": self.consecutive,
            "alerts": self.alerts,
            "group_history": {g: list(h) for g, h in self.group_history.items()},
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.history = [int(v) for v in state["history"]]
        self.consecutive = int(state["consecutive"])
        self.alerts = int(state["alerts"])
        groups = state.get("group_history", {})  # absent before per-group constraints
        self.group_history = {g: [int(v) for v in h] for g, h in groups.items()}


class ProgressBar(Callback):
    """A rich progress bar on stderr: env steps, steps/s, ETA, last return, cost vs limit.

    Off when ``enabled`` is False or stderr is not a terminal (CI, pipes, log files).
    """

    name = "progress"

    def __init__(self, total_steps: int, enabled: bool = True, stream: Any = None) -> None:
        super().__init__()
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = bool(enabled) and bool(getattr(self.stream, "isatty", lambda: False)())
        self.total_steps = int(total_steps)
        self._progress: Any = None
        self._task: Any = None

    def on_train_start(self) -> None:
        if not self.enabled:
            return
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        redirect = self.stream is sys.__stderr__ or self.stream is sys.stderr
        self._progress = Progress(
            TextColumn("[bold]train"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]} steps/s"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[status]}"),
            console=Console(file=self.stream),
            transient=False,
            redirect_stdout=False,
            redirect_stderr=redirect,
            refresh_per_second=2,
        )
        done = int(getattr(self.trainer, "env_steps", 0)) if self.trainer is not None else 0
        self._t0, self._s0 = time.perf_counter(), done
        self._task = self._progress.add_task(
            "train", total=self.total_steps, completed=done, rate="-", status=""
        )
        # log lines go above the bar: saferl's console handler writes to the current
        # sys.stderr, which rich's redirect_stderr replaces while the bar runs
        self._progress.start()

    def on_epoch_end(self, metrics: dict[str, Any]) -> bool:
        if self._progress is None:
            return True
        steps = int(metrics.get("env_steps", 0))
        elapsed = max(time.perf_counter() - self._t0, 1e-9)
        rate = (steps - self._s0) / elapsed
        ret, cost, limit = (
            _num(metrics.get("ep_return")),
            _num(metrics.get("ep_cost")),
            _num(metrics.get("cost_limit")),
        )
        status = f"return {ret:.3g}  cost {cost:.3g}/{limit:.3g}"
        if group_limits(metrics):  # several constraints: the worst group against its limit
            status = f"return {ret:.3g}  {cost_status(metrics)}"
        self._progress.update(
            self._task, completed=min(steps, self.total_steps), rate=f"{rate:,.0f}", status=status
        )
        return True

    def on_train_end(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


def _figure() -> Any:
    # A fixed layout: matplotlib's layout engines double the drawing time.
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 3.5))
    fig.subplots_adjust(left=0.13, right=0.97, bottom=0.14, top=0.9)
    return fig


class PlotCallback(Callback):
    """Learning-curve PNGs in ``plots/`` every ``every`` epochs and at the end of training.

    ``returns.png`` (episode return), ``costs.png`` (episode cost with the limit line), ``kl.png``
    (KL per update) and ``cpo_cases.png`` (histogram of the CPO optimisation case, when the
    algorithm reports one). Drawn with matplotlib's Agg canvas, written atomically.
    """

    name = "plots"
    SERIES = ("epoch", "env_steps", "ep_return", "ep_cost", "cost_limit", "kl")

    def __init__(self, plots_dir: str | Path, every: int = 10) -> None:
        super().__init__()
        self.plots_dir = Path(plots_dir)
        self.every = int(every)
        self.history: dict[str, list[float]] = {k: [] for k in self.SERIES}
        self.cases: list[str] = []
        self.written: list[Path] = []

    def on_epoch_end(self, metrics: dict[str, Any]) -> bool:
        for k in self.SERIES:
            self.history[k].append(_num(metrics.get(k)))
        case = metrics.get("case", metrics.get("cpo_case"))
        if case is not None and not (isinstance(case, float) and math.isnan(case)):
            self.cases.append(str(int(case)) if isinstance(case, float) else str(case))
        if int(metrics.get("epoch", 0)) % self.every == 0:
            self.plot()
        return True

    def on_train_end(self) -> None:
        epochs = self.history["epoch"]
        if epochs and int(epochs[-1]) % self.every != 0:  # not already drawn for this epoch
            self.plot()

    def plot(self) -> list[Path]:
        """Draw every figure now; returns the files written."""
        from matplotlib.backends.backend_agg import FigureCanvasAgg

        h = self.history
        x = h["env_steps"]
        out = []

        def save(fig: Any, name: str) -> None:
            FigureCanvasAgg(fig)
            buf = io.BytesIO()
            fig.savefig(buf, format="png", dpi=90)
            path = self.plots_dir / name
            atomic_write_bytes(path, buf.getvalue())
            out.append(path)

        fig = _figure()
        ax = fig.add_subplot()
        ax.plot(x, h["ep_return"], color="tab:blue")
        ax.set(xlabel="environment steps", ylabel="episode return", title="Return")
        ax.grid(alpha=0.3)
        save(fig, "returns.png")

        fig = _figure()
        ax = fig.add_subplot()
        ax.plot(x, h["ep_cost"], color="tab:red", label="episode cost")
        ax.plot(x, h["cost_limit"], color="k", linestyle="--", label="limit d")
        ax.set(xlabel="environment steps", ylabel="episode cost", title="Cost vs limit")
        ax.legend(loc="best")
        ax.grid(alpha=0.3)
        save(fig, "costs.png")

        fig = _figure()
        ax = fig.add_subplot()
        ax.plot(x, h["kl"], color="tab:green")
        ax.set(xlabel="environment steps", ylabel="mean KL", title="KL per update")
        ax.grid(alpha=0.3)
        save(fig, "kl.png")

        if self.cases:
            counts = Counter(self.cases)
            labels = sorted(counts)
            fig = _figure()
            ax = fig.add_subplot()
            ax.bar(labels, [counts[k] for k in labels], color="tab:purple")
            ax.set(xlabel="optimisation case", ylabel="updates", title="CPO case histogram")
            save(fig, "cpo_cases.png")
        self.written = out
        return out

    def state_dict(self) -> dict[str, Any]:
        return {"history": {k: list(v) for k, v in self.history.items()}, "cases": list(self.cases)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.history = {k: [float(v) for v in state["history"].get(k, [])] for k in self.SERIES}
        self.cases = [str(c) for c in state["cases"]]
