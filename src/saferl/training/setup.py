"""From a validated config to the pieces of a run: the one place that builds them.

``saferl train``, hyperparameter trials, evaluation of a trained run, the benchmarks and the
examples all build their environments, cost limits and algorithm here, so a config means the
same thing everywhere:

* :func:`env_spec`: the registered env factory, wrapped as ``env.obs_ema`` says, and the options
  it is built with (``env.options`` plus ``env.challenge``/``env.impairment`` where the env has
  levels); :meth:`EnvSpec.make` builds envs and turns the env's own refusals into one-line
  errors that name the config field.
* :func:`cost_limits`: the combined per-episode limit (``env.cost_limit``, else the env's
  declared limit, its strict one with ``env.strict``), the per-constraint limits, and the
  constraints the algorithm is held to (``env.constraint_groups``: one per impairment level;
  ``env.constraints``: one per named cost component).
* :func:`build_algorithm`: the registered algorithm for ``algo.name`` with its own config model.
* :func:`check_resources`: ``train.device`` exists here, and the rollout batch and networks fit
  in memory.
"""

from __future__ import annotations

import functools
import inspect
import itertools
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from saferl.config import Config, ConfigError
from saferl.registry import ALGORITHMS, ENVS, RegistryError
from saferl.safety import ConstraintGroups
from saferl.utils import accepts_kwarg, names_param

__all__ = [
    "ENV_NAMESPACE",
    "CostLimits",
    "EnvSpec",
    "build_algorithm",
    "check_resources",
    "cost_limits",
    "env_spec",
    "resolve_env_id",
]

#: Gymnasium namespace of saferl's ids (``gymnasium.make("saferl/WheelchairSC-v0")``)
ENV_NAMESPACE = "saferl/"

#: options the config sets through its own fields rather than ``env.options``
_LEVEL_FIELDS = ("challenge", "impairment")


def resolve_env_id(env_id: str) -> str:
    """The registry name of ``env_id``: the Gymnasium id ``saferl/NAME`` is the same env as
    ``NAME``.

    Raises:
        ConfigError: no env of that name (the message lists the registered ones).
    """
    name = env_id
    if name not in ENVS and name.startswith(ENV_NAMESPACE):
        name = name[len(ENV_NAMESPACE) :]
    try:
        ENVS.get(name)
    except RegistryError as exc:
        raise ConfigError(f"env.id: {exc}") from None
    return name


def _field_of_option(key: str) -> str:
    return f"env.{key}" if key in _LEVEL_FIELDS else f"env.options.{key}"


@dataclass
class EnvSpec:
    """An env as a config describes it.

    Attributes:
        id: registry name (``saferl/`` prefix removed).
        base: the registered factory ``factory(num_envs, **options)``.
        options: the options every env of the run is built with.
        obs_ema: ``(dims, weights)`` of the moving averages appended to observations, or None.
    """

    id: str
    base: Callable[..., Any]
    options: dict[str, Any] = field(default_factory=dict)
    obs_ema: tuple[list[Any], list[float]] | None = None

    def make(self, num_envs: int, **options: Any) -> Any:
        """Build ``num_envs`` instances with this spec's options (``options`` override them).

        Raises:
            ConfigError: the env refuses an option (one line naming the config field).
        """
        opts = {**self.options, **options}
        try:
            env = self.base(num_envs=num_envs, **opts)
        except ImportError as exc:  # an optional dependency of the env (e.g. the mujoco extra)
            raise ConfigError(f"env.id: {exc}") from None
        except TypeError as exc:
            m = re.search(r"unexpected keyword argument '(\w+)'", str(exc))
            if m is None:
                raise
            raise ConfigError(
                f"{_field_of_option(m.group(1))}: environment '{self.id}' has no option "
                f"'{m.group(1)}'{_known_options(self.base)}"
            ) from None
        except ValueError as exc:
            key, sep, rest = str(exc).partition(":")
            if not sep or not (key in opts or names_param(self.base, key)):
                raise
            raise ConfigError(f"{_field_of_option(key)}:{rest}") from None
        if self.obs_ema is None:
            return env
        from saferl.envs.wrappers import ObservationEMA

        dims, weights = self.obs_ema
        try:
            return ObservationEMA(env, dims, weights)
        except ValueError as exc:
            env.close()
            raise ConfigError(f"env.obs_ema.{exc}") from None

    @property
    def factory(self) -> Callable[..., Any]:
        """``factory(num_envs, **options)`` building envs as :meth:`make` does (it keeps the
        registered factory's signature and attributes, e.g. ``SCRIPTED_POLICIES``)."""

        @functools.wraps(self.base)
        def make(num_envs: int = 1, **options: Any) -> Any:
            return self.make(num_envs, **options)

        return make


def _known_options(factory: Callable[..., Any]) -> str:
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return ""
    names = [p for p, v in params.items() if p != "num_envs" and v.kind is v.KEYWORD_ONLY]
    return f" (its options: {', '.join(names)})" if names else ""


def env_spec(cfg: Config) -> EnvSpec:
    """The env factory and options of ``cfg`` (training, evaluation and ``best.pt`` checks).

    Raises:
        ConfigError: an unknown env, or challenge/impairment levels it does not have.
    """
    env_id = resolve_env_id(cfg.env.id)
    base = ENVS.get(env_id)
    ec = cfg.env
    if ec.challenge != "standard" and not accepts_kwarg(base, "challenge"):
        raise ConfigError(f"env.challenge: environment '{env_id}' has no challenge levels")
    if ec.impairment is not None and not accepts_kwarg(base, "impairment"):
        raise ConfigError(f"env.impairment: environment '{env_id}' has no impairment levels")
    for key in _LEVEL_FIELDS:
        if key in ec.options:
            raise ConfigError(f"env.options.{key}: set env.{key} instead")
    options = dict(ec.options)
    # Environments without levels keep working: the challenge is passed where the factory
    # names the parameter (or a non-default one is asked for, which the check above allowed).
    if names_param(base, "challenge") or ec.challenge != "standard":
        options["challenge"] = ec.challenge
    if ec.impairment is not None:
        options["impairment"] = ec.impairment
    ema = None if ec.obs_ema is None else (list(ec.obs_ema.dims), list(ec.obs_ema.weights))
    return EnvSpec(env_id, base, options, ema)


@dataclass(frozen=True)
class CostLimits:
    """The per-episode cost limits a run is held to.

    Attributes:
        combined: limit d on the combined cost ``info["cost"]``.
        names: the env's constraint names (empty if it declares none).
        per_constraint: one limit per constraint (None where the env declares none), or None
            when the env declares no constraints.
        strict: whether the env's strict limits were taken.
        groups: the constraints the algorithm optimises against
            (:class:`~saferl.safety.ConstraintGroups`: the combined cost by default, one per
            impairment level with ``env.constraint_groups``, one per named component with
            ``env.constraints``).
    """

    combined: float
    names: tuple[str, ...] = ()
    per_constraint: tuple[float | None, ...] | None = None
    strict: bool = False
    groups: ConstraintGroups | None = None

    def __post_init__(self) -> None:
        if self.groups is None:
            object.__setattr__(self, "groups", ConstraintGroups.combined(self.combined))


def cost_limits(cfg: Config, env: Any) -> CostLimits:
    """``env.cost_limit`` if set, else the limit ``env`` declares (strict with ``env.strict``);
    and the run's constraint groups (``env.constraint_groups``, ``env.constraints``).

    Raises:
        ConfigError: no limit anywhere; an env without the levels or components named; a
            mapping of limits that does not name every level, or names an unknown one.
    """
    constraints = getattr(env, "constraints", None)
    strict = bool(cfg.env.strict)
    given = cfg.env.cost_limit
    if constraints is not None:
        declared: float | None = float(constraints.get_limit(strict=strict))
    else:
        declared = None
    if given is not None and not isinstance(given, dict):
        combined = float(given)
    elif declared is not None:
        combined = declared
    elif cfg.env.constraints is None and not isinstance(given, dict):
        raise ConfigError(
            f"env.cost_limit: environment '{cfg.env.id}' declares no constraints; set "
            "env.cost_limit"
        )
    else:
        combined = 0.0  # only the groups' own limits are used
    groups = _constraint_groups(cfg, env, combined, given)
    if constraints is None:
        return CostLimits(combined, strict=strict, groups=groups)
    attr = "strict_limit" if strict else "limit"
    per = tuple(getattr(c, attr) for c in constraints)
    return CostLimits(combined, tuple(constraints.names), per, strict, groups)


def _constraint_groups(
    cfg: Config, env: Any, combined: float, given: float | dict[str, float] | None
) -> ConstraintGroups:
    ec = cfg.env
    if ec.constraints is not None:
        constraints = getattr(env, "constraints", None)
        known = tuple(constraints.names) if constraints is not None else ()
        unknown = [n for n in ec.constraints if n not in known]
        if unknown:
            have = f"its components: {', '.join(known)}" if known else "it declares none"
            raise ConfigError(
                f"env.constraints: environment '{ec.id}' has no cost component "
                f"'{unknown[0]}' ({have})"
            )
        names = [n for n in known if n in ec.constraints]  # the env's order
        return ConstraintGroups.components(names, [ec.constraints[n] for n in names])
    if ec.constraint_groups is None:
        return ConstraintGroups.combined(combined)
    key = ec.constraint_groups
    levels = dict(getattr(env, "INFO_LEVELS", None) or {}).get(key)
    if not levels:
        raise ConfigError(
            f"env.constraint_groups: environment '{ec.id}' has no {key} levels in its info"
        )
    if getattr(ec, key, None) is not None:
        raise ConfigError(
            f"env.constraint_groups: env.{key} fixes one level; per-level constraints need "
            f"episodes of every level (remove env.{key})"
        )
    if isinstance(given, dict):
        unknown = [n for n in given if n not in levels]
        if unknown:
            raise ConfigError(
                f"env.cost_limit: '{unknown[0]}' is not a {key} level (levels: {', '.join(levels)})"
            )
        missing = [n for n in levels if n not in given]
        if missing:
            raise ConfigError(
                f"env.cost_limit: no limit for the {key} level '{missing[0]}' (a mapping names "
                f"every level: {', '.join(levels)}; or give one number for all)"
            )
        limits = [float(given[n]) for n in levels]
    else:
        limits = [combined] * len(levels)
    return ConstraintGroups.levels(key, levels, limits)


def build_algorithm(cfg: Config, env: Any, limits: CostLimits) -> Any:
    """The algorithm ``algo.name`` for ``env``'s spaces, held to ``limits``.

    It receives what its constructor names: ``cost_limit``, ``seed``, ``device``, the env's
    ``privileged_obs_dims`` (for ``algo.asymmetric_critic``), ``constraint_names`` and
    ``constraint_limits`` (None entries fall back to the combined limit inside it).
    """
    try:
        factory = ALGORITHMS.get(cfg.algo.name)
    except RegistryError as exc:
        raise ConfigError(f"algo.name: {exc}") from None
    obs_space = getattr(env, "single_observation_space", env.observation_space)
    act_space = getattr(env, "single_action_space", env.action_space)
    kwargs: dict[str, Any] = {"cost_limit": limits.combined, "seed": cfg.train.seed}
    optional = {
        "device": cfg.train.device,
        "privileged_obs_dims": int(getattr(env, "privileged_obs_dims", 0)),
    }
    if limits.per_constraint is not None:
        optional["constraint_names"] = limits.names
        optional["constraint_limits"] = list(limits.per_constraint)
    groups = limits.groups
    if groups is not None and groups.grouped:
        # named, not swallowed by **kwargs: an algorithm that ignored them would optimise
        # against another constraint than the config says
        if not names_param(factory, "constraint_groups"):
            field = "env.constraints" if groups.kind == "components" else "env.constraint_groups"
            raise ConfigError(
                f"{field}: algorithm '{cfg.algo.name}' does not take several constraints "
                "(cpo and ppo_lagrangian do)"
            )
        kwargs["constraint_groups"] = groups
    kwargs.update({k: v for k, v in optional.items() if accepts_kwarg(factory, k)})
    return factory(obs_space, act_space, cfg.algo, **kwargs)


# --------------------------------------------------------------------------------------------
# Resources
# --------------------------------------------------------------------------------------------

#: a batch may take at most this share of the machine's memory
_MEMORY_SHARE = 0.5
#: float32 values a rollout keeps per step besides the observation (action, log-prob, reward,
#: costs, values, advantages, returns, flags), counted generously
_PER_STEP_EXTRA = 24


def _fmt_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.3g} {unit}"
        n /= 1024
    return f"{n:.3g} TiB"  # unreachable


def _total_memory() -> int | None:
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return None


def _check_device(name: str) -> torch.device:
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(
            f"train.device: unknown device {name!r}; use cpu, cuda or cuda:N"
        ) from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(
                f"train.device: {name} is not available here (this torch has no usable CUDA "
                "device); use cpu"
            )
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(
                f"train.device: {name} does not exist; this machine has "
                f"{torch.cuda.device_count()} CUDA device(s)"
            )
    elif device.type != "cpu":
        raise ConfigError(f"train.device: {name!r} is not supported; use cpu, cuda or cuda:N")
    return device


def check_resources(cfg: Config, obs_dim: int | None = None, act_dim: int | None = None) -> None:
    """Refuse a device that is not here and sizes whose memory would not fit.

    The estimate covers the rollout batch (``train.steps_per_epoch`` steps of the observation
    and the per-step values; the observation size from ``obs_dim`` when known) and the networks
    (actor and two critics with gradients and Adam state) plus one minibatch's activations.

    Raises:
        ConfigError: one line with the field, the estimate and the memory available.
    """
    _check_device(cfg.train.device)
    total = _total_memory()
    if total is None:
        return
    budget = _MEMORY_SHARE * total
    obs = obs_dim if obs_dim is not None else 1
    act = act_dim if act_dim is not None else 1
    batch = 4.0 * cfg.train.steps_per_epoch * (2 * obs + act + _PER_STEP_EXTRA)
    if batch > budget:
        raise ConfigError(
            f"train.steps_per_epoch: {cfg.train.steps_per_epoch} steps need about "
            f"{_fmt_bytes(batch)} for the rollout batch; at most {_fmt_bytes(budget)} (half of "
            "this machine's memory) is allowed"
        )
    sizes = [obs, *cfg.algo.hidden_sizes, act]
    params = sum(a * b + b for a, b in itertools.pairwise(sizes))
    # actor + two critics; each parameter with its gradient and two Adam moments
    nets = 4.0 * 3 * 4 * params
    widest = max(cfg.algo.hidden_sizes)
    minibatch = min(cfg.train.steps_per_epoch, max(getattr(cfg.algo, "critic_minibatch", 1), 1))
    activations = 4.0 * 3 * minibatch * widest * len(cfg.algo.hidden_sizes) * 2
    if nets + activations > budget:
        raise ConfigError(
            f"algo.hidden_sizes: {cfg.algo.hidden_sizes} needs about "
            f"{_fmt_bytes(nets + activations)} for the networks; at most {_fmt_bytes(budget)} "
            "(half of this machine's memory) is allowed"
        )
