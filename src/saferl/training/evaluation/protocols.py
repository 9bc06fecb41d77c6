"""Evaluation protocols: batched rollouts into a tidy per-episode :class:`EpisodeTable`.

Every protocol is a function ``protocol(policy, env_factory, *, episodes, seed, num_envs,
env_options, limit, ...) -> EpisodeTable`` over

* ``policy``: an :class:`~saferl.training.evaluation.policies.EvalPolicy`;
* ``env_factory``: ``factory(num_envs, **options) -> SafeVectorEnv`` (the registry's ``make_vec``);
  evaluation builds its own env instances with it and never touches a training env;
* ``episodes`` per condition, with evaluation seeds ``seed, seed + 1, ...``: episode ``e`` of
  every condition and every model uses env seed ``seed + e`` (common random numbers, so
  conditions and models are compared on the same start states and human draws).

How episodes run (:func:`run_episodes`): batches of ``M <= num_envs`` episodes run as the ``M``
instances of one natively batched env, reset with one seed per instance (``env.reset(seed=[...])``:
instance ``i`` gets the stream of ``(seed_i, 0)`` alone), stepped together until every instance
has finished its *first* episode; the autoreset episodes that follow are ignored. The policy's
sampling noise and the observation noise come from a second per-episode stream, so the table of an
episode depends only on its seed: same seeds, same table, whatever ``num_envs`` is.

Protocols (:data:`PROTOCOLS`):

* ``standard``: mean action, the env options of the run, ``episodes`` episodes.
* ``stochastic``: sampled actions, Gaussian observation noise (``obs_noise`` times the policy's
  observation scale: the normaliser's std for trained policies) and dynamics randomisation when the
  env's factory accepts one of :data:`DYNAMICS_OPTIONS`; different evaluation seeds from standard.
* ``safety``: challenge levels ``easy``, ``standard``, ``hard``; the summary reports violation
  rate, mean and CVaR(90 %) episode cost and time to first violation per level.
* ``human_factors``: impairment levels ``none``, ``mild``, ``moderate``, ``severe``; the summary
  reports per-level performance and safety and the degradation relative to ``none``.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from saferl.envs.vector import InstanceRNG
from saferl.training.evaluation.errors import EvaluationError
from saferl.training.evaluation.policies import EvalPolicy
from saferl.training.evaluation.table import EpisodeTable

__all__ = [
    "CHALLENGE_LEVELS",
    "DYNAMICS_OPTIONS",
    "IMPAIRMENT_LEVELS",
    "PROTOCOLS",
    "UnknownProtocolError",
    "human_factors",
    "resolve_protocols",
    "run_episodes",
    "safety",
    "standard",
    "stochastic",
]

CHALLENGE_LEVELS: tuple[str, ...] = ("easy", "standard", "hard")
IMPAIRMENT_LEVELS: tuple[str, ...] = ("none", "mild", "moderate", "severe")
#: env factory keyword arguments that switch on dynamics-parameter randomisation, first match wins.
DYNAMICS_OPTIONS: tuple[str, ...] = (
    "randomize_dynamics",
    "dynamics_randomization",
    "domain_randomization",
)
#: added to an episode's seed to seed its policy/observation-noise stream (kept apart from the
#: env's own stream of the same seed).
_POLICY_STREAM_SALT = 0x5EED_0F_E7A1
_STOCHASTIC_SEED_OFFSET = 1_000_000

EnvFactory = Callable[..., Any]


class UnknownProtocolError(EvaluationError):
    """A protocol name that does not exist (the message lists the valid ones)."""


# --------------------------------------------------------------------------------------------
# The batched rollout engine
# --------------------------------------------------------------------------------------------


def _policy_seeds(seeds: np.ndarray) -> list[int]:
    # A different seed per episode for the policy stream; stays in [0, 2^62).
    return [int((int(s) * 0x9E3779B1 + _POLICY_STREAM_SALT) % (1 << 62)) for s in seeds]


def _obs_scale(policy: EvalPolicy, env: Any) -> np.ndarray:
    scale = getattr(policy, "obs_scale", None)
    shape = env.single_observation_space.shape
    if scale is not None:
        return np.broadcast_to(np.asarray(scale, np.float32), shape).copy()
    low = np.asarray(env.single_observation_space.low, np.float64)
    high = np.asarray(env.single_observation_space.high, np.float64)
    half = (high - low) / 2.0
    return np.where(np.isfinite(half) & (half > 0), half, 1.0).astype(np.float32)


def _env_limit(env: Any, limit: float | None) -> float:
    if limit is not None:
        return float(limit)
    constraints = getattr(env, "constraints", None)
    if constraints is None:
        raise ValueError("the env declares no constraints; pass the cost limit explicitly")
    return float(constraints.get_limit())


def run_episodes(
    policy: EvalPolicy,
    env_factory: EnvFactory,
    seeds: Sequence[int] | np.ndarray,
    *,
    num_envs: int = 100,
    env_options: Mapping[str, Any] | None = None,
    deterministic: bool = True,
    obs_noise: float = 0.0,
    limit: float | None = None,
    max_steps: int | None = None,
) -> EpisodeTable:
    """Run one episode per seed, ``num_envs`` at a time, in freshly built batched envs.

    Args:
        policy: the policy to evaluate.
        env_factory: ``factory(num_envs, **env_options)`` -> natively batched env.
        seeds: one env seed per episode (>= 0).
        num_envs: instances stepped together (the last batch may be smaller).
        env_options: keyword arguments for the factory.
        deterministic: mean action (``True``) or sampled actions.
        obs_noise: std of Gaussian observation noise, in units of the policy's observation scale.
        limit: the per-episode cost limit; ``None`` takes the env's ``constraints.get_limit()``.
        max_steps: safety cap on steps per batch (default: the env's ``max_episode_steps``, or
            100,000); episodes still running then count as truncated at that length.

    Returns:
        :class:`EpisodeTable` with the columns ``episode, seed, return, cost, cost_<component>...,
        length, terminated, success, violation, first_violation_step, limit_exceeded_step,
        limit`` (``protocol``, ``condition``, ``level`` and ``challenge`` are added by the
        protocols), plus ``<key>_level`` (the episode's level name) for each per-episode level
        the env reports in ``info`` (its ``INFO_LEVELS``, e.g. ``impairment_level``).
    """
    seeds = np.asarray(seeds, dtype=np.int64).reshape(-1)
    if seeds.size == 0:
        raise ValueError("run_episodes: no seeds given")
    if (seeds < 0).any():
        raise ValueError("run_episodes: seeds must be >= 0")
    if num_envs < 1:
        raise ValueError(f"num_envs must be >= 1, got {num_envs}")
    options = dict(env_options or {})
    parts = []
    for start in range(0, seeds.size, int(num_envs)):
        chunk = seeds[start : start + int(num_envs)]
        env = env_factory(int(chunk.size), **options)
        context = getattr(policy, "rollout_context", contextlib.nullcontext)
        try:
            with context():
                parts.append(
                    _run_batch(policy, env, chunk, deterministic, obs_noise, limit, max_steps)
                )
        finally:
            close = getattr(env, "close", None)
            if callable(close):
                close()
    table = EpisodeTable.concat(parts)
    table.columns = {"episode": np.arange(seeds.size, dtype=np.int64), **table.columns}
    return table


def _run_batch(
    policy: EvalPolicy,
    env: Any,
    seeds: np.ndarray,
    deterministic: bool,
    obs_noise: float,
    limit: float | None,
    max_steps: int | None,
) -> EpisodeTable:
    n = int(seeds.size)
    lim = _env_limit(env, limit)
    names = list(getattr(env.constraints, "names", ()))
    obs, _ = env.reset(seed=[int(s) for s in seeds])
    policy.reset(env)
    rng = InstanceRNG(n)
    rng.seed(_policy_seeds(seeds))
    noise_scale = _obs_scale(policy, env) if obs_noise > 0 else None
    obs_dim = int(np.prod(env.single_observation_space.shape))
    cap = max_steps or getattr(env, "max_episode_steps", None) or 100_000

    active = np.ones(n, bool)
    ret = np.zeros(n)
    cost = np.zeros(n)
    comp = {k: np.zeros(n) for k in names}
    length = np.zeros(n, np.int64)
    terminated = np.zeros(n, bool)
    success = np.full(n, np.nan)
    first_violation = np.full(n, np.nan)
    limit_exceeded = np.full(n, np.nan)
    info_levels = dict(getattr(env, "INFO_LEVELS", None) or {})
    level_codes = {key: np.full(n, -1, np.int64) for key in info_levels}
    t = 0
    while active.any() and t < cap:
        o = obs
        if noise_scale is not None:
            # drawn for every instance at every step: the per-episode stream stays aligned
            z = rng.normal(obs_dim).reshape(obs.shape)
            o = (obs + np.float32(obs_noise) * noise_scale * z).astype(np.float32)
        actions = policy.act(o, env, deterministic=deterministic, rng=rng)
        obs, reward, term, trunc, info = env.step(actions)
        t += 1
        c = np.asarray(info["cost"], np.float64)
        ret += np.where(active, reward, 0.0)
        cost += np.where(active, c, 0.0)
        for k in names:
            comp[k] += np.where(active, info["cost_components"][k], 0.0)
        for key, codes in level_codes.items():  # the level of each episode's first step
            if key in info:
                codes[:] = np.where(active & (codes < 0), np.asarray(info[key]), codes)
        first_violation[active & (c > 0) & np.isnan(first_violation)] = t
        limit_exceeded[active & (cost > lim) & np.isnan(limit_exceeded)] = t
        done = active & (term | trunc)
        if done.any():
            length[done] = t
            terminated[done] = term[done]
            final = info.get("final_info", {})
            if "success" in final:
                success[done] = np.asarray(final["success"], np.float64)[done]
            elif "success" in info:
                success[done] = np.asarray(info["success"], np.float64)[done]
            active &= ~done
    length[active] = t  # hit the safety cap: truncated there

    columns: dict[str, np.ndarray] = {
        "seed": seeds.copy(),
        "return": ret,
        "cost": cost,
    }
    for k in names:
        columns[f"cost_{k}"] = comp[k]
    for key, codes in level_codes.items():
        level_names = np.asarray([*info_levels[key], "unknown"])
        columns[f"{key}_level"] = level_names[np.where(codes < 0, -1, codes)]
    columns.update(
        {
            "length": length,
            "terminated": terminated,
            "success": success,
            "violation": cost > lim,
            "first_violation_step": first_violation,
            "limit_exceeded_step": limit_exceeded,
            "limit": np.full(n, lim),
        }
    )
    return EpisodeTable(columns)


# --------------------------------------------------------------------------------------------
# Protocols
# --------------------------------------------------------------------------------------------


def _label(table: EpisodeTable, protocol: str, condition: str, options: Mapping[str, Any]):
    n = len(table)
    level = options.get("impairment")
    challenge = options.get("challenge")
    front = {
        "protocol": np.full(n, protocol),
        "condition": np.full(n, condition),
        "episode": table["episode"],
        "seed": table["seed"],
        "level": np.full(n, "mixed" if level is None else str(level)),
        "challenge": np.full(n, "default" if challenge is None else str(challenge)),
    }
    rest = {k: v for k, v in table.columns.items() if k not in front}
    return EpisodeTable({**front, **rest})


def _seeds(seed: int, episodes: int) -> np.ndarray:
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    return np.arange(seed, seed + episodes, dtype=np.int64)


def standard(
    policy: EvalPolicy,
    env_factory: EnvFactory,
    *,
    episodes: int = 100,
    seed: int = 10_000,
    num_envs: int = 100,
    env_options: Mapping[str, Any] | None = None,
    limit: float | None = None,
    deterministic: bool = True,
) -> EpisodeTable:
    """Deterministic policy (mean action), fixed evaluation seeds, the run's env options.

    With ``deterministic=False`` (``eval.deterministic: false``) actions are sampled and the
    condition is labelled ``sampled``.
    """
    options = dict(env_options or {})
    table = run_episodes(
        policy,
        env_factory,
        _seeds(seed, episodes),
        num_envs=num_envs,
        env_options=options,
        deterministic=deterministic,
        limit=limit,
    )
    return _label(table, "standard", "default" if deterministic else "sampled", options)


def dynamics_option(env_factory: EnvFactory, *, probe: bool = True) -> str | None:
    """The keyword of :data:`DYNAMICS_OPTIONS` that the env accepts, or None.

    Looks at the factory's signature; a factory taking ``**options`` is probed by building a
    one-instance env and reading its class's ``__init__`` signature (``probe=True``).
    """
    params = _parameters(env_factory)
    found = next((name for name in DYNAMICS_OPTIONS if name in params), None)
    if found is not None or not probe or not _has_var_keyword(env_factory):
        return found
    env = env_factory(1)
    try:
        params = _parameters(type(env).__init__)
    finally:
        close = getattr(env, "close", None)
        if callable(close):
            close()
    return next((name for name in DYNAMICS_OPTIONS if name in params), None)


def _parameters(fn: Any) -> dict[str, inspect.Parameter]:
    try:
        return dict(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        return {}


def _has_var_keyword(fn: Any) -> bool:
    return any(p.kind is p.VAR_KEYWORD for p in _parameters(fn).values())


def stochastic(
    policy: EvalPolicy,
    env_factory: EnvFactory,
    *,
    episodes: int = 100,
    seed: int = 10_000,
    num_envs: int = 100,
    env_options: Mapping[str, Any] | None = None,
    limit: float | None = None,
    obs_noise: float = 0.05,
    randomize_dynamics: bool = True,
) -> EpisodeTable:
    """Robustness: sampled actions, observation noise and dynamics randomisation if supported.

    Episodes use seeds ``seed + 1_000_000 + e`` (different start states from ``standard``). The
    condition is ``"sampled+noise"`` plus ``"+dynamics"`` when the env randomised its dynamics.
    """
    if obs_noise < 0:
        raise ValueError(f"obs_noise must be >= 0, got {obs_noise}")
    options = dict(env_options or {})
    condition = "sampled" + ("+obs_noise" if obs_noise > 0 else "")
    key = dynamics_option(env_factory) if randomize_dynamics else None
    if key is not None and key not in options:
        options[key] = True
    if key is not None and options.get(key):
        condition += "+dynamics"
    table = run_episodes(
        policy,
        env_factory,
        _seeds(seed + _STOCHASTIC_SEED_OFFSET, episodes),
        num_envs=num_envs,
        env_options=options,
        deterministic=False,
        obs_noise=obs_noise,
        limit=limit,
    )
    return _label(table, "stochastic", condition, options)


def _per_level(
    protocol: str,
    option: str,
    levels: Sequence[str],
    policy: EvalPolicy,
    env_factory: EnvFactory,
    *,
    episodes: int,
    seed: int,
    num_envs: int,
    env_options: Mapping[str, Any] | None,
    limit: float | None,
    deterministic: bool,
) -> EpisodeTable:
    """``episodes`` episodes for each value of the env option ``option`` (same seeds per level)."""
    tables = []
    for level in levels:
        options = {**dict(env_options or {}), option: level}
        table = run_episodes(
            policy,
            env_factory,
            _seeds(seed, episodes),
            num_envs=num_envs,
            env_options=options,
            deterministic=deterministic,
            limit=limit,
        )
        tables.append(_label(table, protocol, level, options))
    return EpisodeTable.concat(tables)


def safety(
    policy: EvalPolicy,
    env_factory: EnvFactory,
    *,
    episodes: int = 100,
    seed: int = 10_000,
    num_envs: int = 100,
    env_options: Mapping[str, Any] | None = None,
    limit: float | None = None,
    levels: Sequence[str] = CHALLENGE_LEVELS,
    deterministic: bool = True,
) -> EpisodeTable:
    """Each challenge level (``challenge=`` env option), ``episodes`` episodes per level.

    The limit is the one the run was trained against (``limit``) or, when ``None``, the limit the
    env declares at that level.
    """
    return _per_level(
        "safety", "challenge", levels, policy, env_factory, episodes=episodes, seed=seed,
        num_envs=num_envs, env_options=env_options, limit=limit, deterministic=deterministic,
    )  # fmt: skip


def human_factors(
    policy: EvalPolicy,
    env_factory: EnvFactory,
    *,
    episodes: int = 100,
    seed: int = 10_000,
    num_envs: int = 100,
    env_options: Mapping[str, Any] | None = None,
    limit: float | None = None,
    levels: Sequence[str] = IMPAIRMENT_LEVELS,
    deterministic: bool = True,
) -> EpisodeTable:
    """Each impairment level (``impairment=`` env option), ``episodes`` episodes per level."""
    return _per_level(
        "human_factors", "impairment", levels, policy, env_factory, episodes=episodes, seed=seed,
        num_envs=num_envs, env_options=env_options, limit=limit, deterministic=deterministic,
    )  # fmt: skip


PROTOCOLS: dict[str, Callable[..., EpisodeTable]] = {
    "standard": standard,
    "stochastic": stochastic,
    "safety": safety,
    "human_factors": human_factors,
}


def resolve_protocols(names: Sequence[str] | str | None) -> list[str]:
    """Validate protocol names (``"all"`` expands to every protocol; comma lists are split).

    Raises:
        UnknownProtocolError: one line naming the bad name and the valid ones.
    """
    if names is None:
        return ["standard"]
    if isinstance(names, str):
        names = [names]
    out: list[str] = []
    for item in names:
        for name in str(item).split(","):
            name = name.strip()
            if not name:
                continue
            if name == "all":
                out.extend(p for p in PROTOCOLS if p not in out)
                continue
            if name not in PROTOCOLS:
                raise UnknownProtocolError(
                    f"unknown protocol '{name}'; available: {', '.join(PROTOCOLS)}, all"
                )
            if name not in out:
                out.append(name)
    if not out:
        raise UnknownProtocolError(f"no protocol given; available: {', '.join(PROTOCOLS)}, all")
    return out
