"""Models to evaluate: trained runs (a checkpoint of a run directory) and scripted baselines.

A model spec (what ``saferl evaluate`` and ``saferl compare`` accept) is either

* a run directory ``runs/<name>`` (checkpoint ``best`` by default, ``last``, or a file path), or
* ``baselines:<name>``: a scripted baseline from the env class's ``SCRIPTED_POLICIES``, evaluated
  in the env (and with the cost limit) of the runs it is compared with, or of the default config
  when there are none.

:class:`Model` bundles the policy with everything needed to evaluate it on its own env instances:
the env factory and options (built as the trainer builds them, from the run's ``config.yaml``),
the cost limit the run was trained against (and, for a run trained with several constraints,
each one's own limit), and the run's :class:`~saferl.config.EvalConfig`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from saferl.config import Config, ConfigError, load_config, short_repr
from saferl.training import setup
from saferl.training.evaluation.errors import EvaluationError
from saferl.training.evaluation.policies import ActorPolicy, EvalPolicy, ScriptedAdapter

logger = logging.getLogger(__name__)

__all__ = [
    "BASELINE_PREFIX",
    "EvaluationError",
    "Model",
    "load_baseline",
    "load_model",
    "load_run_model",
    "resolve_checkpoint",
    "scripted_policies",
]

BASELINE_PREFIX = "baselines:"


@dataclass
class Model:
    """A policy plus the env it is evaluated in.

    Attributes:
        name: display name (run directory name, or ``baselines:<name>``).
        spec: what the user gave.
        policy: the :class:`EvalPolicy`.
        env_id: registered env name.
        env_factory: ``factory(num_envs, **options)``.
        env_options: options for the factory (challenge/impairment as in training).
        limit: per-episode cost limit the model is judged against (the combined cost's; the
            ``violation`` column of the episodes).
        config: the run's config (defaults for a baseline without runs).
        run_dir: the run directory (None for baselines).
        checkpoint: checkpoint file used (None for baselines).
        meta: epoch, env_steps, sha256 of the checkpoint (when known).
        constraints: a run trained with several constraints (``env.constraint_groups``,
            ``env.constraints``): ``{kind, key, limits: {group: limit}}``, each group judged
            against its own limit in the reports; None with the one combined constraint.
            Baselines compared with such a run are judged on the same groups.
    """

    name: str
    spec: str
    policy: EvalPolicy
    env_id: str
    env_factory: Callable[..., Any]
    env_options: dict[str, Any]
    limit: float
    config: Config
    run_dir: Path | None = None
    checkpoint: Path | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    constraints: dict[str, Any] | None = None

    def describe(self) -> dict[str, Any]:
        """JSON-ready description (for results files)."""
        return {
            "name": self.name,
            "spec": self.spec,
            "kind": "baseline" if self.run_dir is None else "trained",
            "run_dir": str(self.run_dir) if self.run_dir is not None else None,
            "checkpoint": str(self.checkpoint) if self.checkpoint is not None else None,
            "env_id": self.env_id,
            "env_options": dict(self.env_options),
            "limit": self.limit,
            **({"constraints": self.constraints} if self.constraints else {}),
            **self.meta,
        }


def _describe_groups(groups: Any) -> dict[str, Any] | None:
    """:attr:`Model.constraints` from a :class:`~saferl.safety.ConstraintGroups` (None for the
    one combined constraint)."""
    if groups is None or not groups.grouped:
        return None
    limits = dict(zip(groups.names, (float(v) for v in groups.limits), strict=True))
    return {"kind": groups.kind, "key": groups.key, "limits": limits}


def _spec(cfg: Config, env_id: str | None = None) -> setup.EnvSpec:
    """The env spec of ``cfg`` (``env_id`` in place of ``env.id`` if given), as training builds
    it; config errors become :class:`EvaluationError`."""
    if env_id is not None and env_id != cfg.env.id:
        cfg = cfg.model_copy(update={"env": cfg.env.model_copy(update={"id": env_id})})
    try:
        return setup.env_spec(cfg)
    except ConfigError as exc:
        raise EvaluationError(str(exc)) from None


def _probe(spec: setup.EnvSpec, cfg: Config, options: dict[str, Any] | None = None) -> Any:
    """(observation dim, action dim, privileged dims, cost limit, constraint groups as
    :attr:`Model.constraints`) of one probe instance."""
    try:
        env = spec.make(1, **(options or {}))
    except ConfigError as exc:
        raise EvaluationError(str(exc)) from None
    try:
        limits = setup.cost_limits(cfg, env)
        return (
            int(env.single_observation_space.shape[0]),
            int(env.single_action_space.shape[0]),
            int(getattr(env, "privileged_obs_dims", 0)),
            limits.combined,
            _describe_groups(limits.groups),
        )
    except ConfigError as exc:
        raise EvaluationError(str(exc)) from None
    finally:
        close = getattr(env, "close", None)
        if callable(close):
            close()


def _all_scripted(factory: Callable[..., Any], options: dict[str, Any]) -> dict[str, Any]:
    cls = getattr(factory, "SCRIPTED_POLICIES", None)
    if cls is not None:
        return dict(cls)
    env = factory(num_envs=1, **options)
    try:
        # the env class's, also through wrappers such as the moving averages of env.obs_ema
        base = getattr(env, "unwrapped", env)
        return dict(getattr(type(base), "SCRIPTED_POLICIES", {}) or {})
    finally:
        close = getattr(env, "close", None)
        if callable(close):
            close()


def _available(policies: dict[str, Any], options: dict[str, Any]) -> dict[str, Any]:
    return {
        name: make
        for name, make in policies.items()
        if getattr(make, "available", None) is None or make.available(options)
    }


def scripted_policies(factory: Callable[..., Any], options: dict[str, Any]) -> dict[str, Any]:
    """``SCRIPTED_POLICIES`` of the env class the factory builds (name -> factory), less those
    whose ``available(options)`` says they are not defined for these env options."""
    return _available(_all_scripted(factory, options), options)


def resolve_checkpoint(run_dir: Path, checkpoint: str = "best") -> Path:
    """``best`` | ``last`` | a path -> the checkpoint file (``best`` falls back to ``last``).

    Raises:
        EvaluationError: no such file / no checkpoints in the run directory.
    """
    ckpt_dir = run_dir / "checkpoints"
    if checkpoint in ("best", "last"):
        path = ckpt_dir / f"{checkpoint}.pt"
        if path.is_file():
            return path
        if checkpoint == "best" and (ckpt_dir / "last.pt").is_file():
            logger.warning("%s has no best.pt (no feasible epoch recorded); using last.pt", run_dir)
            return ckpt_dir / "last.pt"
        if not ckpt_dir.is_dir() or not any(ckpt_dir.glob("*.pt")):
            raise EvaluationError(f"run directory {run_dir} has no checkpoints")
        raise EvaluationError(f"run directory {run_dir} has no {checkpoint}.pt checkpoint")
    path = Path(checkpoint)
    if not path.is_file() and (ckpt_dir / checkpoint).is_file():
        path = ckpt_dir / checkpoint
    if not path.is_file():
        raise EvaluationError(f"checkpoint {checkpoint} does not exist")
    return path


def load_run_model(
    run_dir: str | Path, *, checkpoint: str = "best", overrides: Sequence[str] = ()
) -> Model:
    """A trained policy from a run directory (``config.yaml`` + a checkpoint).

    The actor and observation normaliser are rebuilt from the run's ``algo`` config and loaded
    from the checkpoint's ``state["algo"]`` (``actor``, ``obs_norm``); the checkpoint's SHA-256 is
    checked against ``manifest.json`` when recorded there. ``overrides`` (``--set``) apply on top
    of the run's config (e.g. ``eval.episodes=20`` or ``env.challenge=hard``).

    Raises:
        EvaluationError: not a run directory, no checkpoints, unreadable/corrupt checkpoint.
    """
    from saferl.algos.common import actor_input_dims
    from saferl.algos.networks import GaussianActor, ObsNormalizer
    from saferl.training.checkpoint import CheckpointError, RunManifest, load_checkpoint

    rd = Path(run_dir)
    if not rd.is_dir():
        raise EvaluationError(f"run directory {rd} does not exist")
    cfg_path = rd / "config.yaml"
    if not cfg_path.is_file():
        raise EvaluationError(f"{rd} is not a run directory (no config.yaml)")
    try:
        cfg = load_config(cfg_path, list(overrides))
        trained_env = load_config(cfg_path).env.id if overrides else cfg.env.id
        same_env = setup.resolve_env_id(cfg.env.id) == setup.resolve_env_id(trained_env)
    except ConfigError as exc:
        raise EvaluationError(str(exc)) from None
    if not same_env:
        raise EvaluationError(
            f"env.id: a run is evaluated in the env it was trained in ({trained_env}), got "
            f"{short_repr(cfg.env.id)}; compare runs of other envs with their own run directories"
        )
    path = resolve_checkpoint(rd, checkpoint)
    try:
        manifest = RunManifest(rd / "manifest.json")
    except CheckpointError as exc:
        raise EvaluationError(f"{exc}: the checkpoint's SHA-256 cannot be checked") from None
    entry = manifest.checkpoints.get(path.name) if path.parent == rd / "checkpoints" else None
    try:
        state = load_checkpoint(path, expected_sha256=entry["sha256"] if entry else None)
    except CheckpointError as exc:
        raise EvaluationError(str(exc)) from None
    algo_state = state.get("algo") if isinstance(state, dict) else None
    if not isinstance(algo_state, dict) or "actor" not in algo_state:
        raise EvaluationError(f"checkpoint {path} holds no policy (state['algo']['actor'])")
    spec = _spec(cfg, state.get("meta", {}).get("env", cfg.env.id))
    obs_dim, act_dim, privileged, limit, constraints = _probe(spec, cfg)
    ac = cfg.algo
    try:  # the trainer's rule (asymmetric critic: all but the env's trailing privileged dims)
        inputs = actor_input_dims(ac, obs_dim, privileged)
    except ConfigError as exc:
        raise EvaluationError(str(exc)) from None
    actor = GaussianActor(
        obs_dim, act_dim, ac.hidden_sizes, ac.activation, ac.init_log_std, input_dims=inputs
    )
    norm = ObsNormalizer(obs_dim, clip=ac.obs_clip, enabled=ac.normalize_obs)
    try:
        actor.load_state_dict(algo_state["actor"])
        if "obs_norm" in algo_state:
            norm.load_state_dict(algo_state["obs_norm"])
    except (RuntimeError, KeyError) as exc:
        raise EvaluationError(
            f"checkpoint {path} does not fit the run's config ({str(exc).splitlines()[0]})"
        ) from None
    policy = ActorPolicy(actor, norm if ac.normalize_obs else None, name=rd.name)
    counters = state.get("counters", {})
    return Model(
        name=rd.name,
        spec=str(run_dir),
        policy=policy,
        env_id=spec.id,
        env_factory=spec.factory,
        env_options=dict(spec.options),
        limit=limit,
        config=cfg,
        constraints=constraints,
        run_dir=rd,
        checkpoint=path,
        meta={
            "epoch": counters.get("epoch"),
            "env_steps": counters.get("env_steps"),
            "sha256": entry["sha256"] if entry else None,
            "algo": cfg.algo.name,
        },
    )


def load_baseline(
    name: str,
    *,
    config: Config | None = None,
    env_id: str | None = None,
    env_options: dict[str, Any] | None = None,
    limit: float | None = None,
    constraints: dict[str, Any] | None = None,
) -> Model:
    """A scripted baseline as a model (``baselines:<name>``).

    Args:
        name: key of the env class's ``SCRIPTED_POLICIES`` (the ``baselines:`` prefix is optional).
        config: config giving env, limit and evaluation settings (default: the default config).
        env_id, env_options, limit, constraints: override what ``config`` gives (compare passes
            the first run's, so baselines are evaluated under the same conditions and judged
            on the same constraint groups).

    Raises:
        EvaluationError: unknown baseline (the message lists the env's baselines).
    """
    cfg = config if config is not None else load_config(None)
    short = name[len(BASELINE_PREFIX) :] if name.startswith(BASELINE_PREFIX) else name
    spec = _spec(cfg, env_id)
    eid = spec.id
    factory = spec.factory
    options = dict(env_options) if env_options is not None else dict(spec.options)
    every = _all_scripted(factory, options)
    available = _available(every, options)
    if short not in available:
        names = ", ".join(f"{BASELINE_PREFIX}{k}" for k in sorted(available)) or "none"
        what = (
            f"baseline '{BASELINE_PREFIX}{short}' is not defined for {eid} with options {options}"
            if short in every
            else f"unknown baseline '{BASELINE_PREFIX}{short}' for {eid}"
        )
        raise EvaluationError(f"{what}; available: {names}")
    display = f"{BASELINE_PREFIX}{short}"
    if limit is None:
        _, _, _, limit, probed = _probe(spec, cfg, options)
        constraints = constraints if constraints is not None else probed
    return Model(
        name=display,
        spec=display,
        policy=ScriptedAdapter(available[short], display),
        env_id=eid,
        env_factory=factory,
        env_options=options,
        limit=float(limit),
        config=cfg,
        constraints=constraints,
    )


#: file suffixes of exported policies (``saferl export``), evaluated through ``saferl.deploy``
EXPORTED_SUFFIXES = (".onnx", ".pt")


def load_model(spec: str, *, checkpoint: str = "best", reference: Model | None = None) -> Model:
    """A run directory, an exported policy file (``.onnx``/``.pt`` with its sidecar, run by its
    runtime: what a robot would run) or ``baselines:<name>``; baselines take ``reference``'s
    env and limit."""
    path = Path(spec)
    if path.suffix in EXPORTED_SUFFIXES and path.is_file():
        from saferl.deploy import DeployError, load_exported_model

        try:
            return load_exported_model(path)
        except DeployError as exc:
            raise EvaluationError(str(exc)) from None
    if spec.startswith(BASELINE_PREFIX):
        if reference is not None:
            return load_baseline(
                spec,
                config=reference.config,
                env_id=reference.env_id,
                env_options=reference.env_options,
                limit=reference.limit,
                constraints=reference.constraints,
            )
        return load_baseline(spec)
    return load_run_model(spec, checkpoint=checkpoint)
