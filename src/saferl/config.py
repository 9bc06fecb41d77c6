"""Validated configuration: one pydantic model per section, YAML load/dump, ``--set`` overrides.

A run is fully described by a :class:`Config`. Every field has a default, a documented meaning and
a range; unknown keys are refused. User errors surface as :class:`ConfigError`, whose message
names the dotted field, the value given and what is allowed, for example::

    algo.target_kl: must be > 0, got -0.1

Typical use::

    cfg = load_config("configs/exo_cpo.yaml", overrides=["algo.target_kl=0.02"])
    dump_config(cfg, "runs/x/config.yaml")
"""

from __future__ import annotations

import logging
import math
import reprlib
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializeAsAny,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_core import PydanticCustomError

logger = logging.getLogger(__name__)

__all__ = [
    "AlgoConfig",
    "CPOConfig",
    "Config",
    "ConfigError",
    "DistributedConfig",
    "EarlyStoppingConfig",
    "EnvConfig",
    "EvalConfig",
    "HyperoptConfig",
    "ObsEMAConfig",
    "PPOLagrangianConfig",
    "SafetyMonitorConfig",
    "ScheduleConfig",
    "TrackingConfig",
    "TrainConfig",
    "algo_config_model",
    "apply_overrides",
    "config_from_dict",
    "config_to_dict",
    "default_config_path",
    "dump_config",
    "load_config",
    "parse_override",
    "register_algo_config",
    "short_repr",
]


class ConfigError(ValueError):
    """A user error in a configuration: the message is one line, ready to print."""


class _Section(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        validate_assignment=True,
        validate_default=True,
        use_attribute_docstrings=True,
        frozen=False,
        allow_inf_nan=False,
    )

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_for_numbers(cls, v: Any, info: ValidationInfo) -> Any:
        # pydantic's lax mode reads true as 1; a boolean given for a number is a mistake.
        field = cls.model_fields.get(info.field_name or "")
        if field is None or not _is_numeric(field.annotation):
            return v
        items = v if isinstance(v, list) else [v]
        if any(isinstance(x, bool) for x in items):
            raise ValueError("must be a number, not a boolean")
        return v


def _type_leaves(ann: Any) -> set[Any]:
    origin = typing.get_origin(ann)
    if origin in (typing.Union, types.UnionType, list):
        return set().union(*(_type_leaves(a) for a in typing.get_args(ann)))
    return {ann}


def _is_numeric(ann: Any) -> bool:
    """Whether a field takes int/float (or lists of them) and never a bool."""
    leaves = _type_leaves(ann)
    return bool(leaves & {int, float}) and bool not in leaves and Any not in leaves


# --------------------------------------------------------------------------------------------
# Sections
# --------------------------------------------------------------------------------------------


class ObsEMAConfig(_Section):
    """Moving averages of observation dims appended to the observation (a memory for a
    memoryless policy; `saferl.envs.wrappers.ObservationEMA`)."""

    dims: list[int | str] = Field(min_length=1)
    """Observation dims to average (not the env's privileged ones): indices, or names from the
    env's observation layout (`env.obs_layout`; docs/envs/*.md): a field name gives all its
    dims, `field.component` one of them (the wheelchair's tremor evidence is `joystick_std`).
    Names are resolved when the env is built."""

    @field_validator("dims", mode="before")
    @classmethod
    def _indices_or_names(cls, v: Any) -> Any:
        if not isinstance(v, list):
            return v
        out: list[Any] = []
        for d in v:
            if isinstance(d, str):
                d = d.strip()
                if d.isdigit():
                    d = int(d)
                elif not all(part.isidentifier() for part in d.split(".", 1)):
                    raise ValueError(
                        f"{d[:40]!r} is neither an observation index nor a field name "
                        "(field or field.component)"
                    )
            out.append(d)
        return out

    weights: list[float] = Field(default_factory=lambda: [0.05], min_length=1)
    """Per-step weights w in (0, 1] of the newest value, one average per weight and dim
    (time constant 1/w steps: 0.05 is 20 steps, 2 s on the wheelchair)."""

    @field_validator("weights")
    @classmethod
    def _weights_in_unit_interval(cls, v: list[float]) -> list[float]:
        if not all(0.0 < w <= 1.0 for w in v):
            raise ValueError("each weight must be in (0, 1]")
        return v


class EnvConfig(_Section):
    """The environment trained on (training env; evaluation builds its own instances)."""

    id: str = "WheelchairSC-v0"
    """Registered environment name (see `saferl envs`)."""
    num_envs: int = Field(256, ge=1, le=1_000_000)
    """Instances stepped together in one natively batched env (per process); 256 gives the
    end-to-end throughput target (>= 20k env steps/s with CPO on 2 cores), 64 about 15k."""
    impairment: str | None = None
    """Fixed impairment level (none|mild|moderate|severe); null samples one per episode."""
    challenge: str = "standard"
    """Challenge level (easy|standard|hard)."""
    constraint_groups: Literal["impairment"] | None = None
    """`impairment`: one constraint per impairment level, each on the combined cost of the
    episodes of that level (the level read from `info["impairment"]`, not from the
    observation), each with its own limit (`cost_limit`); the policy must be safe for every
    level, not only on average. null: one constraint on all episodes."""
    cost_limit: float | dict[str, float] | None = None
    """Per-episode cost limit d; null takes the environment's declared default. With
    `constraint_groups`: a number applies to every group, a mapping gives each group its own
    (`{none: 15, mild: 15, moderate: 15, severe: 10}`, every group named)."""
    strict: bool = False
    """Use the environment's strict limit instead of the default one (ignored if cost_limit set)."""
    constraints: dict[str, float] | None = None
    """One constraint per named cost component of the environment, each with its own
    per-episode limit (`{collision: 1, comfort: 15}`; `saferl envs` lists the components).
    Unnamed components are not constrained, nor is the combined cost. Not together with
    `constraint_groups` or `cost_limit`."""
    options: dict[str, Any] = Field(default_factory=dict)
    """Extra keyword arguments passed to the environment's factory."""
    obs_ema: ObsEMAConfig | None = None
    """Append moving averages of these observation dims (training, evaluation and the trained
    policy all see them); null: the env's own observation."""

    @field_validator("cost_limit", "constraints", mode="before")
    @classmethod
    def _numbers_or_mapping(cls, v: Any, info: ValidationInfo) -> Any:
        # one clear line instead of pydantic's error per member of the union
        def number(x: Any) -> float:
            if isinstance(x, bool):
                raise ValueError("limits must be numbers, not booleans")
            try:
                value = float(x)
            except (TypeError, ValueError):
                what = "a number" if info.field_name == "constraints" else "a number or a mapping"
                raise ValueError(f"must be {what} (name -> limit)") from None
            if not math.isfinite(value):
                raise ValueError("must be a finite number")
            return value

        if v is None:
            return v
        if isinstance(v, Mapping):
            return {str(k): number(x) for k, x in v.items()}
        if info.field_name == "constraints":
            raise ValueError("must be a mapping component -> limit")
        return number(v)

    @field_validator("cost_limit", "constraints")
    @classmethod
    def _limits_non_negative(cls, v: Any, info: ValidationInfo) -> Any:
        values = v.values() if isinstance(v, dict) else [v]
        if any(isinstance(x, bool) for x in values):
            raise ValueError("limits must be numbers, not booleans")
        if any(x is not None and not x >= 0 for x in values):
            raise ValueError("limits must be >= 0")
        if isinstance(v, dict) and not v:
            raise ValueError("name at least one")
        groups = info.data.get("constraint_groups")
        if info.field_name == "cost_limit" and isinstance(v, dict) and groups is None:
            raise PydanticCustomError(
                "not_available",
                "a mapping of limits needs env.constraint_groups; otherwise give one number",
            )
        if info.field_name == "constraints" and v is not None:
            if groups is not None:
                raise PydanticCustomError(
                    "not_available",
                    "per-component constraints cannot be combined with env.constraint_groups "
                    "(level x component would multiply the constraints); choose one",
                )
            if info.data.get("cost_limit") is not None:
                raise PydanticCustomError(
                    "not_available",
                    "each component has its own limit here; remove env.cost_limit",
                )
        return v


class AlgoConfig(_Section):
    """Hyperparameters every actor-critic algorithm shares (networks, GAE, critics).

    ``algo`` in a :class:`Config` is the model registered for ``algo.name``
    (:class:`CPOConfig`, :class:`PPOLagrangianConfig`, or a plugin's, see
    :func:`register_algo_config`): a field another algorithm uses is refused, not ignored."""

    name: str = "cpo"
    """Registered algorithm (cpo | ppo_lagrangian | a plugin): selects the model of this
    section."""
    hidden_sizes: list[int] = Field(default_factory=lambda: [64, 64])
    """Hidden layer widths of the actor and of both critics."""
    activation: Literal["tanh", "relu", "elu", "gelu"] = "tanh"
    """Hidden activation of the MLPs."""
    init_log_std: float | list[float] = -0.5
    """Initial state-independent log standard deviation of the Gaussian actor: one value for
    every action dimension, or a list with one per dimension."""
    init_action_mean: list[float] | None = None
    """Initial mean action (the bias of the actor's output layer), one value per action
    dimension, in the env's action units; None starts at zero. The initial policy is then
    centred here (e.g. at full user authority in a shared-control env)."""
    asymmetric_critic: bool = False
    """Asymmetric actor-critic (Pinto et al. 2018): the trailing observation dims that the env
    marks privileged (`privileged_obs_dims`, e.g. `env.options.privileged_obs: true`: the
    wheelchair's true goal and impairment level) go to the critics only. The actor's network has
    no input for them, so the trained policy does not depend on them (a deployed policy still
    takes the full-size observation; any values, e.g. zeros, in those slots), while the
    critics' values, and so the advantages, no longer carry the variance of what the policy
    cannot observe."""
    normalize_obs: bool = True
    """Running mean/variance observation normaliser (part of the policy's state)."""
    obs_clip: float = Field(10.0, gt=0)
    """Clip normalised observations to +-obs_clip."""
    gamma: float = Field(0.99, gt=0, le=1)
    """Reward discount."""
    lam: float = Field(0.95, ge=0, le=1)
    """GAE lambda for the reward advantage."""
    cost_gamma: float = Field(0.99, gt=0, le=1)
    """Cost discount."""
    cost_lam: float = Field(0.95, ge=0, le=1)
    """GAE lambda for the cost advantage."""
    critic_lr: float = Field(1e-3, gt=0, le=1)
    """Adam learning rate of the reward and cost critics."""
    critic_epochs: int = Field(10, ge=1, le=1000)
    """Passes over the batch per update for the critics."""
    critic_minibatch: int = Field(1024, ge=1)
    """Critic minibatch size (samples)."""
    max_grad_norm: float = Field(0.5, gt=0)
    """Gradient-norm clip for optimiser steps."""
    cost_estimate: Literal["episodes", "rate"] = "episodes"
    """How J_c (the policy's expected episode cost) is estimated from a batch: `episodes` is
    the mean cost of the episodes that finished in it (docs/algorithms.md, section 3); `rate` is the batch's mean cost
    per step times the mean episode length (renewal-reward), which uses every step of the
    current policy instead of episodes that started under older ones; better when an episode
    is much longer than a batch's steps per instance."""

    @field_validator("hidden_sizes")
    @classmethod
    def _positive_sizes(cls, v: list[int]) -> list[int]:
        if not v or any(h < 1 for h in v):
            raise ValueError("must be a non-empty list of positive integers")
        return v

    @field_validator("init_log_std")
    @classmethod
    def _log_std_range(cls, v: float | list[float]) -> float | list[float]:
        values = v if isinstance(v, list) else [v]
        if not values or any(not -5 <= x <= 2 for x in values):
            raise ValueError("must be a number or a non-empty list of numbers in [-5, 2]")
        return v


class CPOConfig(AlgoConfig):
    """CPO (``algo.name: cpo``): the shared fields plus the trust region and its line search."""

    name: Literal["cpo"] = "cpo"
    """Constrained Policy Optimization."""
    target_kl: float = Field(0.01, gt=0, le=1)
    """Trust-region size delta: mean KL(pi_old || pi) per update (KL summed over action dims)."""
    cg_iters: int = Field(15, ge=1, le=500)
    """Conjugate-gradient iterations for H^-1 g and H^-1 b."""
    cg_damping: float = Field(0.1, ge=0)
    """Damping added to Fisher-vector products (H + damping I)."""
    fvp_fraction: float = Field(0.25, gt=0, le=1)
    """Fraction of the batch used for Fisher-vector products."""
    cost_target_gain: float = Field(0.0, ge=0)
    """Integral gain k_i of the cost target. 0 (default) is the plain CPO step (docs/algorithms.md): each step
    aims at J_c = d. With k_i > 0 the step aims at d - I, where
    I <- clip(I + k_i clip(J_c - d, -d/2, d/2), 0, d/2) after every update from the first one
    that is not a recovery step (no wind-up during the approach from far above the limit).
    This removes the steady offset above the limit that noise in the cost gradient b leaves
    (each step lowers the cost less than the linearised step predicts), at the price of the
    return the lower target costs (docs/algorithms.md, section 3)."""
    backtrack_coeff: float = Field(0.8, gt=0, lt=1)
    """Line-search step shrink factor beta."""
    backtrack_iters: int = Field(15, ge=1, le=100)
    """Maximum line-search steps K."""


class PPOLagrangianConfig(AlgoConfig):
    """PPO-Lagrangian (``algo.name: ppo_lagrangian``): the shared fields plus PPO's clipped
    actor update and the Lagrange multipliers."""

    name: Literal["ppo_lagrangian"] = "ppo_lagrangian"
    """PPO-clip with Lagrange multiplier(s) on the cost."""
    actor_lr: float = Field(3e-4, gt=0, le=1)
    """Adam learning rate of the actor."""
    clip_ratio: float = Field(0.2, gt=0, lt=1)
    """PPO clipping epsilon."""
    actor_epochs: int = Field(10, ge=1, le=1000)
    """Actor passes over the batch per update."""
    actor_minibatch: int = Field(1024, ge=1)
    """Actor minibatch size."""
    entropy_coef: float = Field(0.0, ge=0)
    """Entropy bonus coefficient."""
    lagrangian_lr: float = Field(0.05, gt=0)
    """Learning rate of the Lagrange multiplier(s)."""
    lagrangian_init: float = Field(0.0, ge=0)
    """Initial value of the Lagrange multiplier(s)."""
    pid_kp: float = Field(0.0, ge=0)
    """Proportional gain of PID-damped multiplier updates (0 = plain gradient ascent)."""
    pid_kd: float = Field(0.0, ge=0)
    """Derivative gain of PID-damped multiplier updates."""
    per_constraint: bool = False
    """One multiplier per constraint of the env's ConstraintSet."""
    kl_early_stop: float | None = Field(0.015, gt=0, le=1)
    """Stop the actor's epochs early once a minibatch's mean KL(pi_old || pi) exceeds this
    (Spinning Up's rule); null: never stop early."""


_ALGO_CONFIGS: dict[str, type[AlgoConfig]] = {
    "cpo": CPOConfig,
    "ppo_lagrangian": PPOLagrangianConfig,
}


def register_algo_config(name: str, model: type[AlgoConfig]) -> None:
    """Declare the config model of algorithm ``name`` (a subclass of :class:`AlgoConfig` whose
    ``name`` field is ``Literal[name]``); ``algo`` sections naming it are validated by it.
    Registering a factory with a ``config_model`` attribute in
    :data:`saferl.registry.ALGORITHMS` does the same."""
    if not (isinstance(model, type) and issubclass(model, AlgoConfig)):
        raise TypeError(f"the config model of '{name}' must subclass saferl.config.AlgoConfig")
    _ALGO_CONFIGS[name] = model


def algo_config_model(name: str) -> type[AlgoConfig]:
    """The config model of algorithm ``name``.

    Raises:
        ValueError: no algorithm of that name is registered.
    """
    model = _ALGO_CONFIGS.get(name)
    if model is not None:
        return model
    from saferl.registry import ALGORITHMS, RegistryError

    try:
        factory = ALGORITHMS.get(name)
    except RegistryError as exc:
        raise ValueError(str(exc)) from None
    # A plugin without a model of its own takes the shared fields only.
    model = getattr(factory, "config_model", None) or AlgoConfig
    register_algo_config(name, model)
    return model


class EarlyStoppingConfig(_Section):
    """Stop when a metric has not improved for `patience` epochs."""

    enabled: bool = False
    """Turn early stopping on."""
    metric: str = "ep_return"
    """Epoch metric to watch (a column of metrics.csv)."""
    mode: Literal["max", "min"] = "max"
    """Whether larger or smaller values are better."""
    patience: int = Field(20, ge=1)
    """Epochs without improvement before stopping."""
    min_delta: float = Field(0.0, ge=0)
    """Smallest change that counts as improvement."""


class SafetyMonitorConfig(_Section):
    """Watches episode cost against the limit."""

    enabled: bool = True
    """Turn the safety monitor on."""
    window: int = Field(10, ge=1)
    """Epochs over which the violation rate is computed."""
    alert_after: int = Field(5, ge=1)
    """Consecutive violating epochs before an alert is logged and tracked."""
    halt: bool = False
    """Stop training when the alert fires."""


class ScheduleConfig(_Section):
    """A schedule for one parameter (a learning rate or a config value such as algo.target_kl)."""

    target: str
    """What is scheduled: 'critic_lr', 'actor_lr' or a dotted config field (e.g. env.cost_limit)."""
    kind: Literal["constant", "linear", "exponential", "cosine", "step", "plateau"] = "linear"
    """Shape of the schedule."""
    start: float | None = None
    """Value at the first epoch (default: the configured value)."""
    end: float | None = None
    """Value at the last epoch (linear/cosine)."""
    gamma: float = Field(0.99, gt=0)
    """Multiplicative factor (exponential, step, plateau)."""
    step_size: int = Field(10, ge=1)
    """Epochs between decays (step); patience (plateau)."""
    metric: str = "ep_return"
    """Epoch metric a plateau schedule watches (a column of metrics.csv)."""
    mode: Literal["max", "min"] = "max"
    """Whether the plateau metric should rise (max) or fall (min)."""
    warmup_epochs: int = Field(0, ge=0)
    """Linear warm-up from 0.1x before the schedule proper."""


class TrainConfig(_Section):
    """The training loop and its run directory."""

    total_steps: int = Field(1_000_000, ge=1)
    """Environment steps (summed over instances and ranks) to train for."""
    steps_per_epoch: int = Field(20_000, ge=1)
    """Environment steps collected per update (global batch size)."""
    seed: int = Field(0, ge=0, lt=2**32)
    """Master seed: env instances, networks and every RNG derive from it."""
    name: str | None = None
    """Run name; the run directory is runs_dir/name (default: <env>_<algo>_<timestamp>)."""
    runs_dir: str = "runs"
    """Parent directory of run directories."""
    checkpoint_every: int = Field(10, ge=1)
    """Epochs between checkpoints (a final one is always written)."""
    keep_checkpoints: int = Field(3, ge=1)
    """How many epoch_N.pt checkpoints to keep (last.pt and best.pt are separate)."""
    best_eval_episodes: int = Field(0, ge=0)
    """Complete evaluation episodes that judge best.pt (env seeds from eval.seed + 1,000,000,
    apart from the episodes saferl evaluate reports on; the mean action if eval.deterministic),
    run every checkpoint_every epochs and at the last epoch. 0 judges
    every epoch on its own training episodes: cheap but noisy (a batch finishes few episodes,
    and early in a run only the short ones)."""
    device: str = "cpu"
    """Torch device for the networks (cpu, cuda, cuda:1)."""
    torch_threads: int = Field(1, ge=0)
    """torch.set_num_threads; 0 leaves torch's default. One thread is fastest for the small
    networks used here (64x64 and 128x128; measured 6x faster than two on a busy 2-core machine)."""
    max_consecutive_failures: int = Field(3, ge=1)
    """Non-finite updates in a row before the run stops."""
    plot_every: int = Field(10, ge=1)
    """Epochs between learning-curve plots."""
    progress: bool = True
    """Show a rich progress bar on a terminal."""
    early_stopping: EarlyStoppingConfig = Field(default_factory=EarlyStoppingConfig)
    """Early stopping callback."""
    safety_monitor: SafetyMonitorConfig = Field(default_factory=SafetyMonitorConfig)
    """Safety monitor callback."""
    schedules: list[ScheduleConfig] = Field(default_factory=list)
    """Parameter and learning-rate schedules."""

    @field_validator("name")
    @classmethod
    def _name_stays_inside_runs_dir(cls, v: str | None) -> str | None:
        if v is None:
            return v
        if not v or "\0" in v:
            raise ValueError("must be a non-empty name without NUL characters")
        parts = v.replace("\\", "/").split("/")
        if v.startswith(("/", "\\", "~")) or (len(v) > 1 and v[1] == ":") or ".." in parts:
            raise ValueError("must stay inside train.runs_dir (no absolute path, '~' or '..')")
        if all(p in ("", ".") for p in parts):
            raise ValueError(
                "must name a directory inside train.runs_dir, not the directory itself"
            )
        return v

    @field_validator("runs_dir")
    @classmethod
    def _runs_dir_is_a_path(cls, v: str) -> str:
        if not v or "\0" in v:
            raise ValueError("must be a non-empty path without NUL characters")
        return v


class TrackingConfig(_Section):
    """Experiment tracking backends (the local CSV/JSONL files are always written; see
    docs/tracking.md)."""

    backends: list[str] = Field(default_factory=list)
    """Backends besides the local files: mlflow, wandb, tensorboard or a plugin's name (each is an
    optional extra, e.g. pip install 'saferl[mlflow]'); 'local' is always on."""
    experiment: str | None = None
    """MLflow experiment and W&B project; null: 'saferl-<env.id>' (one per environment)."""
    mlflow_uri: str | None = None
    """MLflow tracking URI (http://host:port, sqlite:///file.db, ...); null:
    sqlite:///<train.runs_dir>/mlflow.db with artifacts in <train.runs_dir>/mlartifacts."""
    mlflow_log_model: bool = True
    """MLflow: log the final policy (best.pt, else last.pt) as an MLflow pyfunc model."""
    wandb_mode: Literal["auto", "online", "offline"] = "auto"
    """W&B: auto is online when an API key is found (WANDB_API_KEY or ~/.netrc), else offline;
    online without a key falls back to offline. Offline runs are written under the run directory
    (upload later with 'wandb sync')."""
    wandb_entity: str | None = None
    """W&B entity (team or user); null: the account's default."""
    tags: list[str] = Field(default_factory=list)
    """Tags attached to the MLflow and W&B runs."""
    queue_size: int = Field(10_000, ge=1)
    """Metrics rows a failing backend keeps for retry; beyond it the oldest are dropped (the
    end-of-run report names them; the local files keep every row)."""
    flush_timeout: float = Field(30.0, ge=0)
    """Seconds the end of a run waits for each backend to deliver what it has queued."""

    @field_validator("backends")
    @classmethod
    def _backends_once(cls, v: list[str]) -> list[str]:
        seen = [b for i, b in enumerate(v) if b in v[:i]]
        if seen:
            raise ValueError(f"'{seen[0]}' is listed twice")
        if any(not b.strip() for b in v):
            raise ValueError("backend names must not be empty")
        return v

    @field_validator("mlflow_uri", "mlflow_log_model", "wandb_entity")
    @classmethod
    def _only_with_backend(cls, v: Any, info: ValidationInfo) -> Any:
        # A setting for a backend that is not in use would silently do nothing: refuse it.
        backend = "mlflow" if (info.field_name or "").startswith("mlflow") else "wandb"
        default = TrackingConfig.model_fields[info.field_name].default
        if v != default and backend not in (info.data.get("backends") or []):
            raise ValueError(
                f"only used by the {backend} backend; add {backend} to tracking.backends "
                f"(saferl train --use-{backend})"
            )
        return v


class EvalConfig(_Section):
    """Evaluation protocols run by `saferl evaluate`."""

    protocols: list[str] = Field(default_factory=lambda: ["standard"])
    """Protocols: standard, stochastic, safety, human_factors."""
    episodes: int = Field(100, ge=1)
    """Episodes per protocol and condition."""
    seed: int = Field(10_000, ge=0, lt=2**32)
    """First evaluation seed (kept apart from training seeds)."""
    num_envs: int = Field(1000, ge=1)
    """Instances stepped in parallel during evaluation (each runs one episode)."""
    deterministic: bool = True
    """Use the mean action under the standard protocol."""
    confidence: float = Field(0.95, gt=0, lt=1)
    """Confidence level of bootstrap intervals."""
    bootstrap_samples: int = Field(10_000, ge=100)
    """Bootstrap resamples."""


class HyperoptConfig(_Section):
    """Optuna study run by `saferl tune` (docs/tuning.md). Each trial is a short training run of
    this config with the sampled values applied as `--set` overrides."""

    study_name: str = "saferl"
    """Study name: a study with this name in the storage is continued; its files are written to
    `train.runs_dir/studies/<name>/`."""
    storage: str | None = None
    """Where the study lives: a journal file path (safe for several local worker processes),
    `sqlite:///FILE` (one process) or `postgresql://USER@HOST:PORT/DB` (workers on several
    machines); null is the journal file `train.runs_dir/studies/<name>/journal.log`."""
    n_trials: int = Field(50, ge=1, le=100_000)
    """Finished (complete or pruned) trials the study should hold; a restarted study runs only
    the missing ones."""
    timeout_s: float | None = Field(None, gt=0)
    """Stop asking for new trials after this many seconds (a running trial finishes)."""
    n_workers: int = Field(1, ge=1, le=256)
    """Local worker processes sharing the study (not with SQLite storage)."""
    objective: Literal["composite", "multi"] = "composite"
    """`composite`: one value, the evaluation return minus `cost_penalty` times the cost above
    the limit, with the limit also recorded as a constraint; `multi`: maximise return, minimise
    cost and minimise compute, only trials within the limit forming the Pareto front."""
    compute: Literal["wall_time", "env_steps"] = "wall_time"
    """The compute objective of `multi`: seconds of training (varies with batch, networks and
    machine load) or environment steps (deterministic; differs between trials only when they
    stop early)."""
    sampler: Literal["tpe", "random", "cmaes", "nsga2", "gp", "qmc"] = "tpe"
    """Optuna sampler (cmaes: single objective only)."""
    pruner: Literal["auto", "median", "hyperband", "successive_halving", "rule", "none"] = "auto"
    """`auto`: median for `composite`, saferl's rule for `multi`; Optuna's pruners
    (median, hyperband, successive_halving) work on `composite` only; `rule` is saferl's rule
    (cost far above the limit, or return below a quantile of finished trials at the same step)."""
    seed: int | None = Field(None, ge=0, lt=2**32)
    """Sampler seed; null takes train.seed. Each worker process (and each restart) derives its
    own seed from it, so a one-worker study run from scratch is reproducible."""
    trial_steps: int = Field(200_000, ge=1)
    """Environment steps per trial (train.total_steps of each trial)."""
    eval_episodes: int = Field(32, ge=1)
    """Complete evaluation episodes that score a trial (env seeds from eval.seed + 2,000,000,
    apart from those `saferl evaluate` and best.pt use; the mean action if eval.deterministic)."""
    eval_checkpoint: Literal["best", "last"] = "best"
    """Checkpoint of a trial that is evaluated (best: as `saferl evaluate` does by default)."""
    cost_penalty: float = Field(1.0, ge=0)
    """`composite`: return units lost per unit of episode cost above the limit."""
    report_points: int = Field(20, ge=2, le=1000)
    """Training progress is reported to the pruner at this many evenly spaced env steps."""
    prune_warmup: float = Field(0.3, ge=0, lt=1)
    """No pruning before this fraction of trial_steps."""
    prune_min_trials: int = Field(4, ge=1)
    """Finished trials needed at a step before a trial can be pruned by comparison with them."""
    prune_quantile: float = Field(0.25, gt=0, lt=1)
    """saferl's rule: prune when the return is below this quantile of finished trials' returns
    at the same step."""
    prune_cost_factor: float = Field(2.0, gt=1)
    """saferl's rule: prune when the training episode cost exceeds this multiple of the limit."""
    heartbeat_s: float = Field(30.0, gt=0)
    """Seconds between a running trial's heartbeats in the storage."""
    stale_after_s: float = Field(600.0, gt=0)
    """A running trial of a worker on another machine whose heartbeat is this old is failed and
    re-enqueued (on the same machine a dead worker process is detected at once)."""
    max_retries: int = Field(2, ge=0)
    """How often the parameters of a trial whose worker died are re-enqueued."""
    search_space: dict[str, Any] = Field(default_factory=dict)
    """The space searched (format in docs/tuning.md); empty: the algorithm's default space."""


class DistributedConfig(_Section):
    """torch.distributed settings, used when torchrun starts the run (``saferl train --nproc N``
    or ``torchrun ... -m saferl train``); a plain ``saferl train`` is a world of one process
    (docs/distributed.md)."""

    backend: Literal["auto", "gloo", "nccl"] = "auto"
    """Process-group backend: auto is gloo on CPU and NCCL for CUDA tensors (gloo for the CPU
    ones) on CUDA; nccl needs train.device cuda."""
    timeout_s: float = Field(600.0, gt=0)
    """Seconds the process group may take to form, and any collective to finish, before the run
    stops with an error."""
    zero: bool = False
    """Shard the critics' Adam state over the ranks with ZeroRedundancyOptimizer (each rank
    keeps 1/N of it); the results are the same as without. Needs an algorithm with a critics'
    optimiser (cpo, ppo_lagrangian); no effect in a single process."""
    check_every: int = Field(10, ge=0)
    """Every this many epochs, check that every rank holds bit-identical weights (one small
    collective) and stop with an error if not; 0 never checks."""


class Config(_Section):
    """A complete saferl run."""

    env: EnvConfig = Field(default_factory=EnvConfig)
    algo: SerializeAsAny[AlgoConfig] = Field(default_factory=CPOConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    hyperopt: HyperoptConfig = Field(default_factory=HyperoptConfig)
    distributed: DistributedConfig = Field(default_factory=DistributedConfig)

    @field_validator("algo", mode="wrap")
    @classmethod
    def _algo_model_by_name(cls, v: Any, handler: Any) -> AlgoConfig:
        # The section is validated by the model registered for its name, so a field of another
        # algorithm is an unknown key (named in the error), not silently ignored.
        if isinstance(v, AlgoConfig):
            model = algo_config_model(v.name)
            return v if type(v) is model else model.model_validate(v.model_dump())
        if not isinstance(v, Mapping):
            return handler(v)
        name = v.get("name", "cpo")
        if not isinstance(name, str):
            raise PydanticCustomError(
                "algo_name", "must be a string, got {given}", {"given": _short(name)}
            )
        try:
            model = algo_config_model(name)
        except ValueError as exc:
            raise PydanticCustomError("algo_name", "{problem}", {"problem": str(exc)}) from None
        return model.model_validate(dict(v))

    @field_validator("distributed")
    @classmethod
    def _distributed_backend_fits_the_device(
        cls, v: DistributedConfig, info: ValidationInfo
    ) -> DistributedConfig:
        train = info.data.get("train")
        if v.backend == "nccl" and train is not None and not train.device.startswith("cuda"):
            raise PydanticCustomError(
                "not_available",
                "backend nccl needs train.device: cuda (use gloo or auto on CPU)",
            )
        return v


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------

_CONSTRAINT_WORDS = {
    "greater_than": "> {gt}",
    "greater_than_equal": ">= {ge}",
    "less_than": "< {lt}",
    "less_than_equal": "<= {le}",
}


def _describe_error(err: Mapping[str, Any], model: type[BaseModel], data: Any = None) -> str:
    """One line for one pydantic error: 'dotted.field: problem, got value'. ``data`` (what was
    validated) tells which algorithm's model an ``algo`` key was checked against."""
    loc = _short(".".join(str(p) for p in err["loc"]), 120).strip("'") or "<config>"
    etype = err["type"]
    ctx = err.get("ctx") or {}
    given = err.get("input")
    if etype == "algo_name":
        return f"algo.name: {err['msg']}"
    if etype == "not_available":
        return f"{loc}: {err['msg']}"
    if etype == "extra_forbidden":
        if err["loc"][:1] == ("algo",) and len(err["loc"]) == 2:
            name = _algo_name_in(data)
            allowed = ", ".join(algo_config_model(name).model_fields)
            return f"{loc}: unknown key for algorithm '{name}'; allowed keys here: {allowed}"
        parent = _model_at(model, err["loc"][:-1])
        allowed = ", ".join(parent.model_fields) if parent is not None else "?"
        return f"{loc}: unknown key; allowed keys here: {allowed}"
    if etype == "missing":
        return f"{loc}: required field is missing"
    if etype in _CONSTRAINT_WORDS:
        bound = {k: _fmt_num(v) for k, v in ctx.items()}
        return f"{loc}: must be {_CONSTRAINT_WORDS[etype].format(**bound)}, got {_short(given)}"
    if etype in ("literal_error", "enum"):
        return f"{loc}: must be one of {ctx.get('expected', '?')}, got {_short(given)}"
    msg = err["msg"]
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    return f"{loc}: {msg[0].lower() + msg[1:] if msg else 'invalid'}, got {_short(given)}"


_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxlist, _REPR.maxdict, _REPR.maxstring, _REPR.maxother = 3, 6, 6, 80, 80


def short_repr(value: Any, limit: int = 80) -> str:
    """repr of a value cut to a short prefix (an error line never echoes a whole input)."""
    text = _REPR.repr(value)
    return text if len(text) <= limit else text[:limit] + "…"


_short = short_repr


def _fmt_num(v: Any) -> Any:
    return int(v) if isinstance(v, float) and v.is_integer() else v


def _model_at(model: type[BaseModel], loc: Sequence[Any]) -> type[BaseModel] | None:
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        field = getattr(current, "model_fields", {}).get(part)
        if field is None:
            return None
        ann = field.annotation
        args = getattr(ann, "__args__", ())
        candidates = [ann, *args]
        current = next(
            (c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None
        )
        if current is None:
            return None
    return current


def _algo_name_in(data: Any) -> str:
    algo = data.get("algo") if isinstance(data, Mapping) else None
    name = algo.get("name", "cpo") if isinstance(algo, Mapping) else "cpo"
    return name if isinstance(name, str) else "cpo"


def _raise_validation(exc: ValidationError, source: str | None = None, data: Any = None) -> None:
    errors = exc.errors(include_url=False)
    # Fields of another algorithm: one statement naming them all (a config written for one
    # algorithm and run with another usually has several).
    foreign = [e for e in errors if e["type"] == "extra_forbidden" and e["loc"][:1] == ("algo",)]
    lines = []
    if len(foreign) > 1:
        name = _algo_name_in(data)
        keys = ", ".join(".".join(map(str, e["loc"])) for e in foreign)
        allowed = ", ".join(algo_config_model(name).model_fields)
        lines.append(f"{keys}: unknown keys for algorithm '{name}'; allowed keys here: {allowed}")
        errors = [e for e in errors if e not in foreign]
    lines += [_describe_error(e, Config, data) for e in errors]
    prefix = f"{source}: " if source else ""
    msg = prefix + lines[0]
    if len(lines) > 1:
        msg += f" (and {len(lines) - 1} more: " + "; ".join(lines[1:]) + ")"
    raise ConfigError(msg) from None


# --------------------------------------------------------------------------------------------
# Loading, overrides and dumping
# --------------------------------------------------------------------------------------------


def config_from_dict(data: Mapping[str, Any] | None, *, source: str | None = None) -> Config:
    """Validate a nested mapping into a :class:`Config` (missing fields take defaults)."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(
            f"{source or 'config'}: top level must be a mapping of sections, "
            f"got {type(data).__name__}"
        )
    try:
        return Config.model_validate(dict(data))
    except ValidationError as exc:
        _raise_validation(exc, source, data)
        raise  # unreachable


def config_to_dict(cfg: Config) -> dict[str, Any]:
    """The fully resolved config as plain YAML-safe containers."""
    return cfg.model_dump(mode="json")


_VERBATIM_FIELDS = frozenset({"train.name", "train.runs_dir"})
"""Names and paths: an override's value is taken as written, never parsed as YAML."""

_MAX_CONFIG_BYTES = 1 << 20
_MAX_YAML_NODES = 100_000


def _check_node(root: yaml.Node, p: Path | str) -> None:
    """Refuse duplicate keys and graphs whose alias expansion exceeds _MAX_YAML_NODES.

    ``p`` names the source in messages (a file, or ``--set KEY``)."""
    sizes: dict[int, int] = {}
    active: set[int] = set()

    def size(node: yaml.Node) -> int:
        nid = id(node)
        if nid in sizes:
            return sizes[nid]
        if nid in active:
            raise ConfigError(f"{p}: recursive YAML alias at line {node.start_mark.line + 1}")
        active.add(nid)
        total = 1
        if isinstance(node, yaml.MappingNode):
            seen: dict[str, int] = {}
            for k, v in node.value:
                if isinstance(k, yaml.ScalarNode) and k.tag != "tag:yaml.org,2002:merge":
                    if k.value in seen:
                        raise ConfigError(
                            f"{p}: duplicate key {_short(k.value)} at line "
                            f"{k.start_mark.line + 1} (first at line {seen[k.value]})"
                        )
                    seen[k.value] = k.start_mark.line + 1
                total += size(k) + size(v)
                if total > _MAX_YAML_NODES:
                    break
        elif isinstance(node, yaml.SequenceNode):
            for v in node.value:
                total += size(v)
                if total > _MAX_YAML_NODES:
                    break
        active.discard(nid)
        if total > _MAX_YAML_NODES:
            raise ConfigError(
                f"{p}: YAML expands to more than {_MAX_YAML_NODES} values "
                "(aliases repeated too often); write the values out"
            )
        sizes[nid] = total
        return total

    size(root)


def parse_override(text: str) -> tuple[list[str], Any]:
    """Split ``"a.b.c=value"`` into (["a", "b", "c"], parsed value).

    The value is parsed as YAML so ``1e-3``, ``true``, ``[64, 64]`` and ``null`` get their
    natural types; pydantic then coerces it to the field's type (``2e6`` for an int field
    becomes 2000000).
    """
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"--set {_short(text)}: expected KEY=VALUE, e.g. algo.target_kl=0.02")
    parts = key.split(".")
    if any(not p for p in parts):
        raise ConfigError(f"--set {_short(text)}: malformed key {_short(key)}")
    if key in _VERBATIM_FIELDS:
        return parts, raw
    if not raw.strip():
        return parts, _coerce_number("")
    # The same bounds as a file: an alias bomb in a value is refused, not expanded.
    loader = yaml.SafeLoader(raw)
    try:
        node = loader.get_single_node()
        if node is None:
            value: Any = None
        else:
            _check_node(node, f"--set {short_repr(key, 60)}")
            value = loader.construct_document(node)
    except RecursionError:
        raise ConfigError(f"--set {short_repr(key, 60)}: value nested too deeply") from None
    except yaml.YAMLError:
        value = raw
    finally:
        loader.dispose()
    return parts, _coerce_number(value)


def _coerce_number(value: Any) -> Any:
    # YAML 1.1 reads "2e6" as a string; numbers users type should be numbers.
    if isinstance(value, str):
        try:
            f = float(value)
        except ValueError:
            return value
        if math.isfinite(f) and f.is_integer() and ("e" in value.lower()):
            return int(f)
        return f
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return value  # pydantic accepts 2000000.0 for int fields
    return value


def apply_overrides(data: dict[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """Apply ``--set`` overrides to a nested dict (in place) and return it.

    Unknown keys are not rejected here; validation of the result names them.
    """
    for text in overrides:
        parts, value = parse_override(text)
        node = data
        for i, part in enumerate(parts[:-1]):
            nxt = node.get(part)
            if nxt is None:
                nxt = node[part] = {}
            if not isinstance(nxt, dict):
                dotted = ".".join(parts[: i + 1])
                raise ConfigError(f"--set {_short(text)}: {dotted} is a value, not a section")
            node = nxt
        node[parts[-1]] = value
    return data


def _read_yaml(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    try:
        with p.open("rb") as fh:
            raw = fh.read(_MAX_CONFIG_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {p}") from None
    except OSError as exc:
        raise ConfigError(f"config file {p} cannot be read: {exc.__class__.__name__}") from None
    if len(raw) > _MAX_CONFIG_BYTES:
        raise ConfigError(f"config file {p} is larger than {_MAX_CONFIG_BYTES} bytes (1 MiB)")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"config file {p} is not UTF-8 text (invalid byte at offset {exc.start})"
        ) from None
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return {}
        _check_node(node, p)
        data = loader.construct_document(node)
    except RecursionError:
        raise ConfigError(f"{p}: YAML nested too deeply") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError(f"{p}: {_short(problem, 120).strip(chr(39))}{where}") from None
    finally:
        loader.dispose()
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"{p}: top level must be a mapping of sections, got {type(data).__name__}"
        )
    return data


def _switch_algorithm(data: dict[str, Any], current: str, overrides: Iterable[str]) -> None:
    """An override of ``algo.name`` on a validated ``base`` starts the new algorithm from the
    base's shared fields: the fields only the base's algorithm has are dropped (they were valid
    there; a YAML file or an override that sets them for the new one is still refused)."""
    names = [parse_override(o)[1] for o in overrides if o.partition("=")[0].strip() == "algo.name"]
    if not names or not isinstance(names[-1], str) or names[-1] == current:
        return
    try:
        model = algo_config_model(names[-1])
    except ValueError:
        return  # validation names the unknown algorithm
    algo = data.get("algo")
    if isinstance(algo, dict):
        data["algo"] = {k: v for k, v in algo.items() if k in model.model_fields}


def default_config_path() -> Path:
    """The embedded default config file of ``saferl train`` (packaged with saferl)."""
    return Path(__file__).parent / "configs" / "default.yaml"


def load_config(
    path: str | Path | None = None, overrides: Iterable[str] = (), *, base: Config | None = None
) -> Config:
    """Load a YAML config, apply overrides, validate.

    Without ``path`` it starts from ``base`` if given (``base=Config()``: the field defaults),
    else from the packaged default config (:func:`default_config_path`, what ``saferl train``
    runs). On a ``base``, an override of ``algo.name`` keeps the shared algorithm fields and drops
    those only the base's algorithm has (hyperparameter search switches algorithms this way); in
    a file, fields of another algorithm are refused.

    Raises:
        ConfigError: a one-line message naming the file or dotted field at fault.
    """
    if path is None and base is None:
        path = default_config_path()
    if path is not None:
        data = _read_yaml(path)
        source = str(path)
    else:
        # Only what differs from the field defaults: an override of algo.name then starts the
        # new algorithm from its own defaults (fields set for the old one are still refused).
        data = base.model_dump(mode="json", exclude_defaults=True)
        # the name selects the algorithm's model, even where it is that model's default
        data.setdefault("algo", {})["name"] = base.algo.name
        source = None
        _switch_algorithm(data, base.algo.name, overrides)
    overrides = list(overrides)
    if overrides:
        apply_overrides(data, overrides)
        source = None if path is None else source
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        # Name the file only when no override could be the culprit.
        _raise_validation(exc, source if not overrides else None, data)
        raise  # unreachable


def dump_config(cfg: Config, path: str | Path | None = None) -> str:
    """YAML of the fully resolved config; written atomically to ``path`` if given."""
    text = yaml.safe_dump(config_to_dict(cfg), sort_keys=False, default_flow_style=False)
    if path is not None:
        from saferl.utils import atomic_write_text

        atomic_write_text(path, text)
    return text
