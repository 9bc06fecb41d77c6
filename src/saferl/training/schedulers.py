"""Schedules over epochs: learning rates through torch's own LR schedulers, other values
(cost limit curriculum, target KL, entropy coefficient, impairment/challenge level) through
:class:`ParamSchedule`. All are stepped once per epoch and have ``state_dict``.

Configured from ``train.schedules`` (a list of :class:`saferl.config.ScheduleConfig`)::

    train:
      schedules:
        - {target: critic_lr, kind: cosine, end: 1.0e-5, warmup_epochs: 5}
        - {target: algo.target_kl, kind: linear, start: 0.02, end: 0.005}
        - {target: env.cost_limit, kind: linear, start: 30, end: 15}

Shapes (``t`` = epochs since the schedule proper began, ``T`` = its length in epochs):

* ``constant``: ``start``;
* ``linear``: ``start + (end - start) * min(t, T) / T``;
* ``exponential``: ``start * gamma**t``;
* ``cosine``: ``end + (start - end) * (1 + cos(pi * min(t, T) / T)) / 2``;
* ``step``: ``start * gamma**(t // step_size)``;
* ``plateau``: multiplied by ``gamma`` when ``metric`` (default ``ep_return``; ``mode`` max or min)
  has not improved for more than ``step_size`` epochs;
* ``warmup_epochs > 0``: a linear ramp from ``0.1 * start`` first (torch: ``LinearLR`` chained by
  ``SequentialLR``).

Learning-rate targets (``critic_lr``, ``actor_lr``, or ``algo.critic_lr``/``algo.actor_lr``;
in general ``<name>_lr``) are wired to the algorithm's optimiser of that name
(``algo.optimizers()``, see :class:`saferl.algos.base.Algorithm`). Other targets are dotted
config fields: ``algo.X`` must be one of the algorithm's ``hyperparameters()`` and is set with
``set_hyperparameter(X, v)``; ``env.cost_limit`` sets the algorithm's ``cost_limit`` (what the
constraint is optimised against; with per-level constraints every level's), and a per-group
limit curriculum schedules ``env.cost_limit.<level>`` (``env.constraint_groups``) or
``env.constraints.<component>`` (``env.constraints``); other ``env.X`` fields are passed to
the environment's ``set_options(X=v)`` (an environment without it cannot be scheduled; such a
target needs an explicit ``start``). ``env.impairment`` and ``env.challenge`` are categorical: the
scheduled number indexes the level list (floor, clipped), starting from 0 unless ``start`` says.

A resumed run restores each schedule's state, including its horizon: a finished run continued
with a larger ``train.total_steps`` keeps every schedule at its final value.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch.optim import lr_scheduler

from saferl.config import ConfigError, ScheduleConfig

logger = logging.getLogger(__name__)

__all__ = [
    "LEVELS",
    "LRSchedule",
    "ParamSchedule",
    "Schedules",
    "build_schedules",
]

LEVELS = {
    "env.impairment": ["none", "mild", "moderate", "severe"],
    "env.challenge": ["easy", "standard", "hard"],
}
WARMUP_START = 0.1


def _closed_form(cfg: ScheduleConfig, start: float, end: float, t: int, horizon: int) -> float:
    kind = cfg.kind
    if kind == "constant":
        return start
    if kind == "linear":
        return start + (end - start) * min(t, horizon) / max(horizon, 1)
    if kind == "exponential":
        return start * cfg.gamma**t
    if kind == "cosine":
        return end + (start - end) * (1 + math.cos(math.pi * min(t, horizon) / max(horizon, 1))) / 2
    if kind == "step":
        return start * cfg.gamma ** (t // cfg.step_size)
    raise ValueError(f"no closed form for kind {kind!r}")


class ParamSchedule:
    """A schedule for a value that is not an optimiser's learning rate.

    Args:
        cfg: the schedule's configuration.
        default: the configured value, used when ``cfg.start`` is None.
        total_epochs: epochs of the whole run (the horizon of linear/cosine, warm-up included).
        apply: called with the value at construction and after each :meth:`step`.
    """

    def __init__(
        self,
        cfg: ScheduleConfig,
        default: float,
        total_epochs: int,
        apply: Callable[[float], None] | None = None,
    ) -> None:
        self.cfg = cfg
        self.start = float(cfg.start if cfg.start is not None else default)
        self.end = float(cfg.end if cfg.end is not None else self.start)
        self.horizon = max(int(total_epochs) - cfg.warmup_epochs, 1)
        self.apply = apply
        self.epoch = 0
        self.plateau_value = self.start
        self.best = -math.inf
        self.bad_epochs = 0
        self.value = self._compute()
        self._apply()

    def _compute(self) -> float:
        w = self.cfg.warmup_epochs
        if self.epoch < w:
            frac = WARMUP_START + (1 - WARMUP_START) * self.epoch / w
            return self.start * frac
        if self.cfg.kind == "plateau":
            return self.plateau_value
        return _closed_form(self.cfg, self.start, self.end, self.epoch - w, self.horizon)

    def _apply(self) -> None:
        if self.apply is not None:
            self.apply(self.value)

    def step(self, metric: float | None = None) -> float:
        """Advance one epoch (``metric``: the plateau schedule's signal, larger is better)."""
        if self.cfg.kind == "plateau" and self.epoch >= self.cfg.warmup_epochs:
            if metric is not None and math.isfinite(metric) and metric > self.best:
                self.best, self.bad_epochs = metric, 0
            else:
                self.bad_epochs += 1
                if self.bad_epochs > self.cfg.step_size:
                    self.plateau_value *= self.cfg.gamma
                    self.bad_epochs = 0
        self.epoch += 1
        self.value = self._compute()
        self._apply()
        return self.value

    def state_dict(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "value": self.value,
            "start": self.start,
            "end": self.end,
            "horizon": self.horizon,
            "plateau_value": self.plateau_value,
            "best": self.best,
            "bad_epochs": self.bad_epochs,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        for key in ("epoch", "horizon", "bad_epochs"):
            setattr(self, key, int(state[key]))
        for key in ("value", "start", "end", "plateau_value", "best"):
            setattr(self, key, float(state[key]))
        self._apply()


class LRSchedule:
    """torch LR schedulers (one per optimiser) driven by one :class:`ScheduleConfig`.

    The optimisers' learning rate is first set to ``cfg.start`` (if given); ``end`` is the final
    rate for linear and cosine.
    """

    def __init__(
        self, cfg: ScheduleConfig, optimizers: Sequence[torch.optim.Optimizer], total_epochs: int
    ) -> None:
        if not optimizers:
            raise ConfigError(f"train.schedules: no optimiser matches target '{cfg.target}'")
        self.cfg = cfg
        self.optimizers = list(optimizers)
        self.schedulers: list[Any] = []
        self.horizon = max(int(total_epochs) - cfg.warmup_epochs, 1)
        for opt in self.optimizers:
            self.schedulers.append(self._build(opt))
        self.epoch = 0

    def _build(self, opt: torch.optim.Optimizer) -> Any:
        cfg = self.cfg
        start = float(cfg.start) if cfg.start is not None else float(opt.param_groups[0]["lr"])
        end = float(cfg.end) if cfg.end is not None else start
        if cfg.kind == "linear":
            base = max(start, end)  # LinearLR's factors must lie in [0, 1]
        else:
            base = start
        for group in opt.param_groups:
            group["lr"] = base
            group["initial_lr"] = base
        main: Any
        if cfg.kind == "constant":
            main = lr_scheduler.ConstantLR(opt, factor=1.0, total_iters=0)
        elif cfg.kind == "linear":
            main = lr_scheduler.LinearLR(
                opt, start_factor=start / base, end_factor=end / base, total_iters=self.horizon
            )
        elif cfg.kind == "exponential":
            main = lr_scheduler.ExponentialLR(opt, gamma=cfg.gamma)
        elif cfg.kind == "cosine":
            main = lr_scheduler.CosineAnnealingLR(opt, T_max=self.horizon, eta_min=end)
        elif cfg.kind == "step":
            main = lr_scheduler.StepLR(opt, step_size=cfg.step_size, gamma=cfg.gamma)
        elif cfg.kind == "plateau":
            if not cfg.gamma < 1:
                raise ConfigError(
                    f"train.schedules[{cfg.target}]: plateau needs gamma < 1, got {cfg.gamma}"
                )
            main = lr_scheduler.ReduceLROnPlateau(
                opt, mode="max", factor=cfg.gamma, patience=cfg.step_size
            )
        else:  # pragma: no cover - the config's Literal forbids it
            raise ConfigError(f"unknown schedule kind {cfg.kind!r}")
        if cfg.warmup_epochs <= 0:
            return main
        if cfg.kind == "plateau":
            # ReduceLROnPlateau cannot sit inside SequentialLR (it needs the metric): ramp first.
            warm = lr_scheduler.LinearLR(
                opt, start_factor=WARMUP_START, end_factor=1.0, total_iters=cfg.warmup_epochs
            )
            return {"warmup": warm, "main": main}
        for group in opt.param_groups:
            group["lr"] = base  # the main scheduler's constructor may have moved it
        warm = lr_scheduler.LinearLR(
            opt, start_factor=WARMUP_START, end_factor=1.0, total_iters=cfg.warmup_epochs
        )
        return lr_scheduler.SequentialLR(opt, [warm, main], milestones=[cfg.warmup_epochs])

    def step(self, metric: float | None = None) -> None:
        if self.cfg.kind == "cosine" and self.epoch >= self.cfg.warmup_epochs + self.horizon:
            # CosineAnnealingLR is periodic; past the horizon the rate stays at ``end``.
            self.epoch += 1
            return
        for sched in self.schedulers:
            if isinstance(sched, dict):
                if self.epoch < self.cfg.warmup_epochs:
                    sched["warmup"].step()
                else:
                    sched["main"].step(_finite(metric))
            elif isinstance(sched, lr_scheduler.ReduceLROnPlateau):
                sched.step(_finite(metric))
            else:
                sched.step()
        self.epoch += 1

    @property
    def value(self) -> float:
        return float(self.optimizers[0].param_groups[0]["lr"])

    def state_dict(self) -> dict[str, Any]:
        scheds = []
        for s in self.schedulers:
            if isinstance(s, dict):
                scheds.append({k: v.state_dict() for k, v in s.items()})
            else:
                scheds.append(s.state_dict())
        return {"epoch": self.epoch, "schedulers": scheds, "lrs": self._lrs()}

    def _lrs(self) -> list[list[float]]:
        return [[float(g["lr"]) for g in opt.param_groups] for opt in self.optimizers]

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.epoch = int(state["epoch"])
        for s, st in zip(self.schedulers, state["schedulers"], strict=True):
            if isinstance(s, dict):
                for k, v in s.items():
                    v.load_state_dict(st[k])
            else:
                s.load_state_dict(st)
        # The optimisers' state_dicts carry lr too; set it explicitly so the order of restoring
        # optimisers and schedules does not matter.
        for opt, lrs in zip(self.optimizers, state["lrs"], strict=True):
            for g, lr in zip(opt.param_groups, lrs, strict=True):
                g["lr"] = lr


def _plateau_signal(metrics: Mapping[str, Any] | None, cfg: ScheduleConfig) -> float | None:
    """The schedule's metric oriented so that larger is better (``mode="min"`` flips it)."""
    value = None if metrics is None else metrics.get(cfg.metric)
    if value is None:
        return None
    return float(value) if cfg.mode == "max" else -float(value)


def _finite(metric: float | None) -> float:
    if metric is None or not math.isfinite(metric):
        return -math.inf  # counts as "no improvement" in mode="max"
    return float(metric)


class Schedules:
    """Coordinates several schedules: one :meth:`step` per epoch, one ``state_dict``.

    Args:
        items: target name -> :class:`LRSchedule` or :class:`ParamSchedule`. A plateau schedule
            watches its own ``cfg.metric`` (``cfg.mode``: whether it should rise or fall).
    """

    def __init__(self, items: Mapping[str, LRSchedule | ParamSchedule] | None = None) -> None:
        self.items: dict[str, LRSchedule | ParamSchedule] = dict(items or {})

    def __len__(self) -> int:
        return len(self.items)

    def step(self, metrics: Mapping[str, Any] | None = None) -> dict[str, float]:
        """Advance every schedule by one epoch; returns the new values."""
        for item in self.items.values():
            item.step(_plateau_signal(metrics, item.cfg))
        return self.values()

    def values(self) -> dict[str, float]:
        """Current value of each schedule, keyed ``sched/<target>`` (for the metrics row)."""
        return {f"sched/{k}": float(v.value) for k, v in self.items.items()}

    def state_dict(self) -> dict[str, Any]:
        return {k: v.state_dict() for k, v in self.items.items()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        missing = set(self.items) - set(state)
        if missing:
            raise ValueError(f"schedule state lacks {sorted(missing)}")
        for k, v in self.items.items():
            v.load_state_dict(state[k])


# --------------------------------------------------------------------------------------------
# Building from the config
# --------------------------------------------------------------------------------------------


def _setter(
    target: str, cfg: ScheduleConfig, algo: Any, env: Any
) -> tuple[Callable[[float], None], float]:
    """(apply function, configured default) for a non-LR dotted target."""
    section, _, field = target.partition(".")
    if section not in ("algo", "env") or not field:
        raise ConfigError(
            f"train.schedules: target '{target}' must be critic_lr, actor_lr, algo.<field> "
            "or env.<field>"
        )
    groups = getattr(algo, "constraint_groups", None)
    kind = getattr(groups, "kind", "combined")
    group_field = {"levels": "env.cost_limit.", "components": "env.constraints."}.get(kind)
    if target.startswith(("env.cost_limit.", "env.constraints.")):
        group = target.split(".", 2)[2]
        if group_field is None or not target.startswith(group_field):
            raise ConfigError(
                f"train.schedules: target '{target}': a per-group limit needs "
                f"{'env.constraints' if target.startswith('env.constraints.') else 'env.constraint_groups'}"
                " in the config"
            )
        if group not in groups.names:
            raise ConfigError(
                f"train.schedules: target '{target}': no constraint group '{group}' (groups: "
                f"{', '.join(groups.names)})"
            )
        name = f"cost_limit/{group}"

        def apply_group(v: float) -> None:
            try:
                algo.set_hyperparameter(name, v)
            except ValueError as exc:
                raise ConfigError(f"train.schedules: target '{target}': {exc}") from None

        return apply_group, algo.hyperparameters()[name]
    if target == "env.cost_limit" and kind == "components":
        raise ConfigError(
            "train.schedules: target 'env.cost_limit': with env.constraints each component has "
            "its own limit; schedule env.constraints.<component>"
        )
    if target == "env.cost_limit" and kind == "levels":
        limits = {v for k, v in algo.hyperparameters().items() if k.startswith("cost_limit/")}
        if cfg.start is None and len(limits) > 1:
            raise ConfigError(
                "train.schedules: target 'env.cost_limit' sets every level's limit; the levels "
                "start from different limits: give an explicit start"
            )
    if target == "env.cost_limit" or section == "algo":
        name = "cost_limit" if target == "env.cost_limit" else field
        values = algo.hyperparameters()
        if name not in values:
            allowed = ", ".join(f"algo.{k}" for k in values if k != "cost_limit")
            lrs = ", ".join(f"{k}_lr" for k in algo.optimizers())
            raise ConfigError(
                f"train.schedules: target '{target}' is not a settable hyperparameter of "
                f"{type(algo).__name__} (schedulable: env.cost_limit, {lrs}, {allowed})"
            )

        def apply(v: float) -> None:
            try:
                algo.set_hyperparameter(name, v)
            except ValueError as exc:
                raise ConfigError(f"train.schedules: target '{target}': {exc}") from None

        if target == "env.cost_limit" and kind == "levels":
            return apply, next(v for k, v in values.items() if k.startswith("cost_limit/"))
        return apply, values[name]
    # Other env fields change the running environment: it must offer set_options(**kw).
    if not callable(getattr(env, "set_options", None)):
        raise ConfigError(
            f"train.schedules: target '{target}': the environment ({type(env).__name__}) has no "
            "set_options() to change it during training"
        )
    settable = getattr(env, "SETTABLE_OPTIONS", None)
    if settable is not None and field not in settable:
        raise ConfigError(
            f"train.schedules: target '{target}': {type(env).__name__} can change only "
            f"{', '.join(f'env.{k}' for k in settable) or 'nothing'} during training"
        )
    if target in LEVELS:
        levels = LEVELS[target]

        def apply_level(v: float) -> None:
            env.set_options(**{field: levels[min(max(math.floor(v), 0), len(levels) - 1)]})

        return apply_level, 0.0
    if cfg.start is None:
        raise ConfigError(f"train.schedules: target '{target}' needs an explicit start value")
    return (lambda v: env.set_options(**{field: v})), float(cfg.start)


def build_schedules(
    configs: Sequence[ScheduleConfig], *, algo: Any, env: Any, total_epochs: int
) -> Schedules:
    """One :class:`Schedules` from ``train.schedules``.

    Raises:
        ConfigError: a duplicate or unknown target, or an LR target without a matching optimiser.
    """
    items: dict[str, LRSchedule | ParamSchedule] = {}
    for cfg in configs:
        target = cfg.target
        if target in items:
            raise ConfigError(f"train.schedules: target '{target}' is scheduled twice")
        lr_key = target.removeprefix("algo.")
        optimizers = algo.optimizers()
        if lr_key.endswith("_lr") and lr_key.removesuffix("_lr") in optimizers:
            items[target] = LRSchedule(cfg, [optimizers[lr_key.removesuffix("_lr")]], total_epochs)
        elif lr_key in ("critic_lr", "actor_lr"):
            raise ConfigError(
                f"train.schedules: target '{target}': {type(algo).__name__} has no "
                f"'{lr_key.removesuffix('_lr')}' optimiser (its optimisers: "
                f"{', '.join(optimizers) or 'none'})"
            )
        else:
            apply, default = _setter(target, cfg, algo, env)
            items[target] = ParamSchedule(cfg, default, total_epochs, apply)
    return Schedules(items)
