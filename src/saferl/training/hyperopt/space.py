"""Search spaces: the YAML format, the default space of each algorithm, validation.

A space maps dotted config fields to distributions; a trial's config is the base config with the
sampled values applied as ``--set`` overrides, so every value is validated exactly as
``saferl train --set`` validates it::

    parameters:                       # sampled in every trial
      algo.gamma: {type: float, low: 0.95, high: 0.999}
      algo.hidden_sizes: {type: categorical, choices: [[64, 64], [128, 128]]}
    conditional:                      # sampled only when the trial's algo.name is the key
      cpo:
        algo.target_kl: {type: float, low: 0.002, high: 0.1, log: true}
      ppo_lagrangian:
        algo.actor_lr: {type: float, low: 1.0e-5, high: 1.0e-3, log: true}

``algo.name`` may itself be a categorical parameter (then each trial first picks the algorithm).
A space file may also be just the ``parameters`` mapping (no ``conditional`` section).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from saferl.config import Config, ConfigError, _short, load_config

__all__ = [
    "DEFAULT_SPACES",
    "Param",
    "SearchSpace",
    "default_space",
    "format_value",
    "parse_space",
]

# --------------------------------------------------------------------------------------------
# Default spaces, as data keyed by algorithm name (they follow config renames by editing here)
# --------------------------------------------------------------------------------------------

_COMMON: dict[str, dict[str, Any]] = {
    # discounting and advantage estimation, for reward and cost
    "algo.gamma": {"type": "float", "low": 0.95, "high": 0.999},
    "algo.lam": {"type": "float", "low": 0.8, "high": 0.99},
    "algo.cost_gamma": {"type": "float", "low": 0.8, "high": 0.999},
    "algo.cost_lam": {"type": "float", "low": 0.7, "high": 0.99},
    # critics
    "algo.critic_lr": {"type": "float", "low": 1e-4, "high": 3e-3, "log": True},
    "algo.critic_epochs": {"type": "int", "low": 2, "high": 20},
    "algo.critic_minibatch": {"type": "categorical", "choices": [256, 512, 1024, 2048]},
    "algo.max_grad_norm": {"type": "float", "low": 0.1, "high": 5.0, "log": True},
    # networks and exploration
    "algo.hidden_sizes": {
        "type": "categorical",
        "choices": [[32, 32], [64, 64], [128, 128], [256, 256], [64, 64, 64]],
    },
    "algo.activation": {"type": "categorical", "choices": ["tanh", "relu", "elu"]},
    "algo.init_log_std": {"type": "float", "low": -2.5, "high": 0.0},
    # batch: steps per update and env instances stepped together
    "train.steps_per_epoch": {"type": "categorical", "choices": [4096, 8192, 16384, 32768]},
    "env.num_envs": {"type": "categorical", "choices": [16, 32, 64, 128, 256]},
}

_CPO: dict[str, dict[str, Any]] = {
    # trust region, conjugate gradient, Fisher-vector product, line search, cost target
    "algo.target_kl": {"type": "float", "low": 0.002, "high": 0.1, "log": True},
    "algo.cg_iters": {"type": "int", "low": 5, "high": 30},
    "algo.cg_damping": {"type": "float", "low": 0.01, "high": 0.5, "log": True},
    "algo.fvp_fraction": {"type": "float", "low": 0.1, "high": 1.0},
    "algo.backtrack_coeff": {"type": "float", "low": 0.5, "high": 0.95},
    "algo.backtrack_iters": {"type": "int", "low": 5, "high": 25},
    "algo.cost_target_gain": {"type": "float", "low": 0.0, "high": 0.1},
}

_PPO_LAGRANGIAN: dict[str, dict[str, Any]] = {
    "algo.actor_lr": {"type": "float", "low": 1e-5, "high": 1e-3, "log": True},
    "algo.clip_ratio": {"type": "float", "low": 0.1, "high": 0.3},
    "algo.actor_epochs": {"type": "int", "low": 2, "high": 20},
    "algo.actor_minibatch": {"type": "categorical", "choices": [256, 512, 1024, 2048]},
    "algo.entropy_coef": {"type": "float", "low": 0.0, "high": 0.01},
    "algo.kl_early_stop": {"type": "float", "low": 0.0075, "high": 0.075, "log": True},
    # Lagrange multiplier: learning rate, start and PID damping
    "algo.lagrangian_lr": {"type": "float", "low": 0.005, "high": 0.5, "log": True},
    "algo.lagrangian_init": {"type": "float", "low": 0.0, "high": 1.0},
    "algo.pid_kp": {"type": "float", "low": 0.0, "high": 1.0},
    "algo.pid_kd": {"type": "float", "low": 0.0, "high": 1.0},
}

DEFAULT_SPACES: dict[str, dict[str, dict[str, Any]]] = {
    "cpo": {**_COMMON, **_CPO},
    "ppo_lagrangian": {**_COMMON, **_PPO_LAGRANGIAN},
}
"""The default space of each algorithm (dotted field -> distribution spec)."""

# Fields a space may not set: the trial's identity and budget belong to the study.
_RESERVED = ("train.name", "train.runs_dir", "train.total_steps", "train.progress", "hyperopt.")
_KEYS = {
    "float": {"type", "low", "high", "log", "step"},
    "int": {"type", "low", "high", "log", "step"},
    "categorical": {"type", "choices"},
}


@dataclass(frozen=True)
class Param:
    """One searched config field.

    Attributes:
        name: Optuna's parameter name (the field, prefixed ``<algo>/`` when conditional).
        field: the dotted config field it sets.
        kind: ``float``, ``int`` or ``categorical``.
        low, high, log, step: the numeric range.
        choices: categorical values as written (lists and mappings are offered to Optuna as
            their flow-YAML text).
        algo: the algorithm this parameter is conditional on (None: every trial).
    """

    name: str
    field: str
    kind: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple[Any, ...] = ()
    algo: str | None = None

    def suggest(self, trial: Any) -> Any:
        """Sample this parameter in an Optuna trial; returns the config value."""
        if self.kind == "float":
            return trial.suggest_float(self.name, self.low, self.high, log=self.log, step=self.step)
        if self.kind == "int":
            step = int(self.step) if self.step is not None else 1
            return trial.suggest_int(
                self.name, int(self.low), int(self.high), log=self.log, step=step
            )
        value = trial.suggest_categorical(self.name, list(self.optuna_choices()))
        return self.from_optuna(value)

    def optuna_choices(self) -> tuple[Any, ...]:
        """The choices as Optuna stores them (None, bool, int, float or str)."""
        return tuple(_to_optuna(c) for c in self.choices)

    def from_optuna(self, value: Any) -> Any:
        """The config value of a stored Optuna parameter value."""
        if self.kind != "categorical":
            return value
        for choice in self.choices:
            if _to_optuna(choice) == value:
                return choice
        return value

    def contains(self, value: Any) -> bool:
        """Whether a stored parameter value lies in this parameter's range or choices."""
        if self.kind == "categorical":
            return value in self.optuna_choices()
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        return float(self.low) <= float(value) <= float(self.high)

    def spec(self) -> dict[str, Any]:
        """The YAML spec of this parameter."""
        if self.kind == "categorical":
            return {"type": "categorical", "choices": list(self.choices)}
        out: dict[str, Any] = {"type": self.kind, "low": self.low, "high": self.high}
        if self.log:
            out["log"] = True
        if self.step is not None:
            out["step"] = self.step
        return out


def _to_optuna(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return format_value(value)


def format_value(value: Any) -> str:
    """A value as ``--set`` text that parses back to the same value (floats exactly)."""
    text = yaml.safe_dump(value, default_flow_style=True, width=10**9, sort_keys=False)
    text = text.strip()
    if text.endswith("\n..."):
        text = text[: -len("\n...")]
    return text.removesuffix("...").strip()


@dataclass
class SearchSpace:
    """A validated search space.

    Attributes:
        params: unconditional parameters, in the order written.
        conditional: algorithm name -> its parameters.
        source: where the space came from (for messages and the study's record).
    """

    params: list[Param] = field(default_factory=list)
    conditional: dict[str, list[Param]] = field(default_factory=dict)
    source: str = "default"

    def all_params(self) -> list[Param]:
        """Every parameter, conditional ones included."""
        return [*self.params, *(p for ps in self.conditional.values() for p in ps)]

    def by_name(self) -> dict[str, Param]:
        """Optuna parameter name -> parameter."""
        return {p.name: p for p in self.all_params()}

    def sample(self, trial: Any, base_algo: str) -> dict[str, Any]:
        """Sample a trial's values; returns dotted field -> config value (in sampling order)."""
        values: dict[str, Any] = {}
        for p in self.params:
            values[p.field] = p.suggest(trial)
        algo = str(values.get("algo.name", base_algo))
        for p in self.conditional.get(algo, []):
            values[p.field] = p.suggest(trial)
        return values

    def values_from_params(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Dotted field -> config value from a finished trial's stored parameters."""
        named = self.by_name()
        out: dict[str, Any] = {}
        for name, value in params.items():
            p = named.get(name)
            fld = p.field if p is not None else name.split("/", 1)[-1]
            out[fld] = p.from_optuna(value) if p is not None else value
        return out

    def to_dict(self) -> dict[str, Any]:
        """The space in its YAML format (stored with the study)."""
        out: dict[str, Any] = {"parameters": {p.field: p.spec() for p in self.params}}
        if self.conditional:
            out["conditional"] = {
                algo: {p.field: p.spec() for p in ps} for algo, ps in self.conditional.items()
            }
        return out


def overrides_for(values: Mapping[str, Any]) -> list[str]:
    """``--set`` strings for dotted field -> value."""
    return [f"{k}={format_value(v)}" for k, v in values.items()]


def default_space(algo: str, base: Config | None = None) -> SearchSpace:
    """The default space of ``algo`` (unconditional: the trial's algorithm is the base config's),
    checked against ``base`` (default: the config defaults with ``algo.name=algo``).

    Raises:
        ConfigError: no default space for this algorithm.
    """
    if algo not in DEFAULT_SPACES:
        raise ConfigError(
            f"algo.name: no default search space for '{algo}' (defaults exist for "
            f"{', '.join(DEFAULT_SPACES)}); give one with --space FILE"
        )
    if base is None:
        base = load_config(base=Config(), overrides=[f"algo.name={algo}"])
    return parse_space(
        {"parameters": DEFAULT_SPACES[algo]}, base, source=f"default space of {algo}"
    )


def parse_space(data: Any, base: Config, *, source: str = "space") -> SearchSpace:
    """Validate a space mapping against ``base`` (each bound and choice must give a valid config).

    Raises:
        ConfigError: one line naming ``source``, the entry and what is allowed.
    """
    if not isinstance(data, Mapping) or not data:
        raise ConfigError(
            f"{source}: must be a non-empty mapping of dotted config fields to distributions, "
            f"got {_short(data)}"
        )
    if set(data) <= {"parameters", "conditional"}:
        params_data = data.get("parameters") or {}
        cond_data = data.get("conditional") or {}
    else:
        params_data, cond_data = data, {}
    if not isinstance(params_data, Mapping):
        raise ConfigError(f"{source}: parameters must be a mapping, got {_short(params_data)}")
    if not isinstance(cond_data, Mapping):
        raise ConfigError(
            f"{source}: conditional must map algorithm names to parameters, got {_short(cond_data)}"
        )
    space = SearchSpace(_parse_params(params_data, None, source), {}, source)
    from saferl.registry import ALGORITHMS

    for algo, entries in cond_data.items():
        if not isinstance(algo, str) or algo not in ALGORITHMS:
            raise ConfigError(
                f"{source}: conditional.{algo if isinstance(algo, str) else _short(algo)}: "
                "not a registered algorithm; known: "
                f"{', '.join(ALGORITHMS.names())}"
            )
        if not isinstance(entries, Mapping) or not entries:
            raise ConfigError(
                f"{source}: conditional.{algo}: must be a non-empty mapping of fields to "
                f"distributions, got {_short(entries)}"
            )
        space.conditional[algo] = _parse_params(entries, algo, f"{source}: conditional.{algo}")
    if not space.all_params():
        raise ConfigError(f"{source}: no parameters to search")
    _check_against(space, base, source)
    return space


def _parse_params(entries: Mapping[str, Any], algo: str | None, where: str) -> list[Param]:
    out = []
    for fld, spec in entries.items():
        out.append(_parse_param(fld, spec, algo, where))
    return out


def _parse_param(fld: Any, spec: Any, algo: str | None, where: str) -> Param:
    if not isinstance(fld, str) or not fld or any(not part for part in fld.split(".")):
        raise ConfigError(f"{where}: {_short(fld)}: must be a dotted config field")
    at = f"{where}: {fld}"
    if fld.startswith(_RESERVED) or fld in _RESERVED:
        raise ConfigError(
            f"{at}: cannot be searched (set by the study: train.name, train.runs_dir, "
            "train.total_steps via hyperopt.trial_steps, train.progress, hyperopt.*)"
        )
    if algo is not None and fld == "algo.name":
        raise ConfigError(f"{at}: algo.name cannot be conditional on itself")
    if not isinstance(spec, Mapping):
        raise ConfigError(
            f"{at}: must be a mapping such as {{type: float, low: 0.001, high: 0.1, log: true}}, "
            f"got {_short(spec)}"
        )
    kind = spec.get("type")
    if kind not in _KEYS:
        raise ConfigError(f"{at}.type: must be one of float, int, categorical, got {_short(kind)}")
    unknown = sorted(str(k) for k in spec if k not in _KEYS[kind])
    if unknown:
        raise ConfigError(
            f"{at}: unknown key {_short(unknown[0])} for type {kind}; allowed: "
            f"{', '.join(sorted(_KEYS[kind]))}"
        )
    name = fld if algo is None else f"{algo}/{fld}"
    if kind == "categorical":
        choices = spec.get("choices")
        if not isinstance(choices, list) or not choices:
            raise ConfigError(f"{at}.choices: must be a non-empty list, got {_short(choices)}")
        texts = [_to_optuna(c) for c in choices]
        if len(set(map(repr, texts))) != len(texts):
            raise ConfigError(f"{at}.choices: must not repeat a value, got {_short(choices)}")
        return Param(name, fld, kind, choices=tuple(choices), algo=algo)
    for key in ("low", "high"):
        v = spec.get(key)
        ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
        if not ok or (kind == "int" and not float(v).is_integer()):
            what = "an integer" if kind == "int" else "a finite number"
            raise ConfigError(f"{at}.{key}: must be {what}, got {_short(v)}")
    low, high = spec["low"], spec["high"]
    if not low < high:
        raise ConfigError(f"{at}: low must be < high, got low {low}, high {high}")
    log = spec.get("log", False)
    if not isinstance(log, bool):
        raise ConfigError(f"{at}.log: must be true or false, got {_short(log)}")
    if log and low <= 0:
        raise ConfigError(f"{at}: log: true needs low > 0, got low {low}")
    step = spec.get("step")
    if step is not None:
        ok = isinstance(step, (int, float)) and not isinstance(step, bool) and step > 0
        if not ok or (kind == "int" and not float(step).is_integer()):
            raise ConfigError(f"{at}.step: must be a positive number, got {_short(step)}")
        if log:
            raise ConfigError(f"{at}: step and log: true cannot be combined")
    if kind == "int":
        low, high = int(low), int(high)
    else:
        low, high = float(low), float(high)
        step = float(step) if step is not None else None
    return Param(name, fld, kind, low=low, high=high, log=log, step=step, algo=algo)


def _check_against(space: SearchSpace, base: Config, source: str) -> None:
    """Every bound and choice must give a valid config (the checks of ``--set``)."""
    names_param = next((p for p in space.params if p.field == "algo.name"), None)
    for p in space.all_params():
        values = list(p.choices) if p.kind == "categorical" else [p.low, p.high]
        for v in values:
            overrides = [f"{p.field}={format_value(v)}"]
            if p.algo is not None:
                overrides.insert(0, f"algo.name={p.algo}")
            try:
                load_config(None, overrides, base=base)
            except ConfigError as exc:
                where = f"conditional.{p.algo}: " if p.algo else ""
                text = str(exc)
                if not text.startswith(p.field + ":"):
                    text = f"{p.field}: {text}"
                if ", got " not in text:
                    text += f" (value {_short(v)})"
                raise ConfigError(f"{source}: {where}{text}") from None
    if names_param is not None:
        from saferl.registry import ALGORITHMS

        for choice in names_param.choices:
            if choice not in ALGORITHMS:
                raise ConfigError(
                    f"{source}: algo.name: '{choice}' is not a registered algorithm; known: "
                    f"{', '.join(ALGORITHMS.names())}"
                )


def load_space_file(path: str, base: Config) -> SearchSpace:
    """Read and validate a space YAML file (the same bounded reader as config files).

    Raises:
        ConfigError: unreadable file or invalid space, one line naming the file.
    """
    from saferl.config import _read_yaml

    try:
        data = _read_yaml(path)
    except ConfigError as exc:
        raise ConfigError(f"--space {exc}") from None
    return parse_space(data, base, source=f"--space {path}")
