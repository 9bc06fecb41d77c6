"""What CPO and PPO-Lagrangian share: networks, acting, advantages, critics, J_c, state.

One level of inheritance only: :class:`ActorCritic` holds the actor, the batched critics, the
observation normaliser, the critic optimiser and the algorithm's own ``torch.Generator``; the
algorithms add their actor update and their constraint handling.
"""

from __future__ import annotations

import copy
import math
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from pydantic import ValidationError
from torch import nn

from saferl.algos.base import HyperparameterError
from saferl.algos.buffer import RolloutBatch, compute_gae
from saferl.algos.dist import (
    all_reduce_sum_,
    average_gradients_,
    global_mean,
    global_mean_std,
    instance_span,
    local_rows,
)
from saferl.algos.networks import Critics, GaussianActor, ObsNormalizer
from saferl.config import AlgoConfig, ConfigError
from saferl.safety import ConstraintGroups

__all__ = [
    "ActorCritic",
    "PreparedBatch",
    "actor_input_dims",
    "estimate_episode_cost",
    "estimate_episode_cost_from_rate",
    "estimate_level_costs",
    "own_config",
]


@dataclass
class PreparedBatch:
    """A rollout flattened to ``B = T*N`` samples with advantages, on the algorithm's device.

    ``adv_r`` is standardised (global mean 0, std 1); ``adv_c`` ``(B, Kc)`` is centred only
    (its scale carries the constraint's units).

    Under ``torch.distributed`` the batch is this rank's ``instances`` of ``total_instances``
    (from global instance ``offset``); random minibatches are drawn over the global sample
    numbers (:attr:`global_size`) and :meth:`rows` picks this rank's part of them
    (:func:`saferl.algos.dist.local_rows`). In a single process ``offset = 0`` and
    ``instances = total_instances``.
    """

    obs: torch.Tensor  # (B, d) normalised
    actions: torch.Tensor  # (B, A) raw samples
    adv_r: torch.Tensor  # (B,)
    adv_c: torch.Tensor  # (B, Kc)
    ret_r: torch.Tensor  # (B,) reward-critic targets
    ret_c: torch.Tensor  # (B, Kc) cost-critic targets
    adv_r_std: float = 1.0  # std of the raw reward advantage (adv_r was divided by it)
    #: ``(B, m)`` bool: which samples belong to each constraint group (None: every sample to
    #: every group); ``adv_c`` is then one column per group, centred over the group's samples
    #: and 0 outside it
    group_mask: torch.Tensor | None = None
    #: ``(m,)`` float64: samples of each group over all ranks (with ``group_mask``)
    group_counts: torch.Tensor | None = None
    instances: int = 0  # env instances in this rank's batch (0: the batch is one flat block)
    offset: int = 0  # global index of this rank's first instance
    total_instances: int = 0  # instances over all ranks

    @property
    def size(self) -> int:
        """Samples held here."""
        return int(self.obs.shape[0])

    @property
    def global_size(self) -> int:
        """Samples over all ranks (``size`` in a single process)."""
        if not self.instances:
            return self.size
        return self.size // self.instances * self.total_instances

    def rows(self, idx: torch.Tensor) -> torch.Tensor:
        """This rank's rows among the global sample numbers ``idx`` (``idx`` itself in a single
        process)."""
        if not self.instances:
            return idx
        return local_rows(idx, self.instances, self.offset, self.total_instances)


def estimate_episode_cost(
    ep_costs: np.ndarray,
    ep_lengths: np.ndarray,
    critic_start_values: torch.Tensor | None,
    fallback_length: float,
    cost_gamma: float,
) -> tuple[np.ndarray, float, str]:
    """J_c (mean undiscounted episode cost) and the mean episode length T of the batch.

    From the episodes finished in the batch (global over ranks). If none finished anywhere,
    from the cost critic at the episode starts: the critic estimates the *discounted* cost
    ``V_c``; assuming a uniform cost rate over a horizon ``T = fallback_length`` it is turned
    into the undiscounted episode cost ``V_c * T (1 - gamma) / (1 - gamma^T)``. Never NaN.

    Args:
        ep_costs: ``(E,)`` or ``(E, K)`` episode costs of the finished episodes.
        ep_lengths: ``(E,)``.
        critic_start_values: ``(N, K)`` cost-critic values at episode starts (or ``None``).
        fallback_length: episode length to use when no episode finished.
        cost_gamma: the cost discount.

    Returns:
        ``(J_c (K,), T, source)`` with source ``"episodes"`` or ``"critic"``.
    """
    ep_costs = np.asarray(ep_costs, np.float64)
    if ep_costs.ndim == 1:
        ep_costs = ep_costs[:, None]
    if ep_costs.size:
        k = ep_costs.shape[1]
    elif critic_start_values is not None:
        k = critic_start_values.shape[-1]
    else:
        k = max(ep_costs.shape[1], 1)
    sums = torch.zeros(k + 2, dtype=torch.float64)
    if len(ep_lengths):
        sums[:k] = torch.from_numpy(ep_costs.sum(0))
        sums[k] = float(np.sum(ep_lengths))
        sums[k + 1] = float(len(ep_lengths))
    all_reduce_sum_(sums)
    n = float(sums[k + 1])
    if n > 0:
        return (sums[:k] / n).numpy(), float(sums[k]) / n, "episodes"
    horizon = max(float(fallback_length), 1.0)
    if critic_start_values is None:
        return np.zeros(k), horizon, "none"
    v = _global_column_means(critic_start_values)
    factor = horizon if cost_gamma >= 1 else horizon * (1 - cost_gamma) / (1 - cost_gamma**horizon)
    return np.maximum(v * factor, 0.0), horizon, "critic"


def estimate_level_costs(
    ep_costs: np.ndarray,
    ep_lengths: np.ndarray,
    ep_groups: np.ndarray,
    m: int,
    start_groups: np.ndarray,
    critic_start_values: Any,
    fallback_length: float,
    cost_gamma: float,
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """J_c and the mean episode length T of each level's episodes (global over ranks).

    Level ``k``'s estimate follows the rules of :func:`estimate_episode_cost` on the episodes of
    level ``k`` alone: the mean cost of its episodes finished in the batch; if none finished
    anywhere, the cost critic at the starts of the unfinished episodes of that level (the
    instances whose current level is ``k``); if the batch holds no sample of level ``k`` at all,
    the level is *inactive* for this update (J_c and T are NaN, source ``"none"``): nothing in
    the batch measures it and the batch's gradients cannot change it.

    Args:
        ep_costs: ``(E,)`` finished episodes' costs; ep_lengths ``(E,)``; ep_groups ``(E,)``
            their level codes.
        m: number of levels (codes ``0..m-1``).
        start_groups: ``(N,)`` each instance's current level (-1: no sample of its episode).
        critic_start_values: ``() -> (N,)`` cost-critic values at the episode starts (called
            only when some level finished no episode).
        fallback_length, cost_gamma: as in :func:`estimate_episode_cost`.

    Returns:
        ``(J_c (m,), T (m,), sources)``.
    """
    costs = np.asarray(ep_costs, np.float64).reshape(-1)
    lengths = np.asarray(ep_lengths, np.float64).reshape(-1)
    onehot = np.asarray(ep_groups).reshape(-1, 1) == np.arange(m)  # (E, m)
    sums = torch.zeros(3 * m, dtype=torch.float64)
    if len(costs):
        sums[:m] = torch.from_numpy((costs[:, None] * onehot).sum(0))
        sums[m : 2 * m] = torch.from_numpy((lengths[:, None] * onehot).sum(0))
        sums[2 * m :] = torch.from_numpy(onehot.sum(0).astype(np.float64))
    all_reduce_sum_(sums)
    s = sums.numpy()
    n = s[2 * m :]
    j = np.full(m, np.nan)
    t = np.full(m, np.nan)
    sources = ["episodes" if n[k] > 0 else "none" for k in range(m)]
    done = n > 0
    j[done] = s[:m][done] / n[done]
    t[done] = s[m : 2 * m][done] / n[done]
    if done.all():
        return j, t, sources
    # the same decision on every rank (global counts): the critic fallback's collective
    starts = np.asarray(start_groups).reshape(-1, 1) == np.arange(m)  # (N, m)
    v = critic_start_values().detach().double().reshape(-1).cpu()
    mask = torch.from_numpy(starts.astype(np.float64))
    vs = torch.cat([(v[:, None] * mask).sum(0), mask.sum(0)])
    all_reduce_sum_(vs)
    horizon = max(float(fallback_length), 1.0)
    factor = horizon if cost_gamma >= 1 else horizon * (1 - cost_gamma) / (1 - cost_gamma**horizon)
    for k in np.flatnonzero(~done):
        if vs[m + k] > 0:
            j[k] = max(float(vs[k] / vs[m + k]) * factor, 0.0)
            t[k] = horizon
            sources[k] = "critic"
    return j, t, sources


#: weight of the previous batches in the episode-length estimate of ``cost_estimate: rate``
LENGTH_MEMORY = 0.9


def estimate_episode_cost_from_rate(
    step_costs: torch.Tensor,
    n_finished: int,
    horizon: float,
    history: torch.Tensor | None = None,
    memory: float = LENGTH_MEMORY,
) -> tuple[np.ndarray, float, str, torch.Tensor]:
    """J_c as the batch's mean cost per step times the mean episode length T.

    By the renewal-reward theorem, instances that run episode after episode spend a share of
    their steps in each episode proportional to its length, so the mean cost per step is
    ``E[episode cost] / E[episode length]``. Every step of the batch comes from the current
    policy, while a finished episode mostly ran under earlier ones when an episode is longer
    than a batch's steps per instance. T, by the same theorem, is instance-steps per finished
    episode, counted over this batch and the earlier ones with weight ``memory`` per batch
    (``history``), and at most ``horizon``. All instances start together, so in the first
    batches only short episodes finish: their mean length would be far too short, while this
    ratio starts at the horizon (conservative) and settles on the mean length.

    Args:
        step_costs: ``(T, N)`` or ``(T, N, K)`` per-step costs.
        n_finished: episodes that finished in the batch (this rank).
        horizon: the env's episode length (time limit), or a stand-in when it has none.
        history: ``(2,)`` float64 discounted (instance-steps, finished episodes) of the earlier
            batches (global), or ``None`` for the first batch.
        memory: weight of ``history``.

    Returns:
        ``(J_c (K,), T, "rate", history)`` with the updated history.
    """
    c = step_costs.detach().double()
    c = c.reshape(-1, c.shape[-1] if c.dim() == 3 else 1)
    k = c.shape[1]
    sums = torch.zeros(k + 2, dtype=torch.float64)
    sums[:k] = c.sum(0)
    sums[k] = float(c.shape[0])
    sums[k + 1] = float(n_finished)
    all_reduce_sum_(sums)
    new_history = sums[k:].clone()
    if history is not None:
        new_history += float(memory) * history.double()
    steps, finished = float(new_history[0]), float(new_history[1])
    length = max(float(horizon), 1.0)
    if finished > 0:
        length = min(length, steps / finished)
    rate = sums[:k] / sums[k].clamp_min(1.0)
    return (rate * length).numpy(), length, "rate", new_history


def own_config(config: AlgoConfig | None, model: type[AlgoConfig]) -> AlgoConfig:
    """``config`` as the algorithm's own config model: None gives its defaults, a shared-fields
    :class:`AlgoConfig` is completed with them.

    Raises:
        TypeError: the config of another algorithm.
    """
    if config is None:
        return model()
    if isinstance(config, model):
        return config
    if type(config) is AlgoConfig:
        return model(**config.model_dump(exclude={"name"}))
    raise TypeError(f"{model.__name__} expected, got {type(config).__name__} ({config.name})")


def _leaf_types(ann: Any) -> set[Any]:
    args = typing.get_args(ann)
    return set().union(*(_leaf_types(a) for a in args)) if args else {ann}


def actor_input_dims(config: AlgoConfig, obs_dim: int, privileged: int) -> int:
    """Observation dims the actor reads: all, or (``asymmetric_critic``) all but the env's
    ``privileged`` trailing ones.

    Raises:
        ConfigError: ``asymmetric_critic`` on an env without privileged dims, or with nothing
            else left.
    """
    if not config.asymmetric_critic:
        return obs_dim
    if privileged <= 0:
        raise ConfigError(
            "algo.asymmetric_critic: the environment has no privileged observation "
            "(set env.options.privileged_obs: true on an env that offers it)"
        )
    if privileged >= obs_dim:
        raise ConfigError(
            f"algo.asymmetric_critic: {privileged} privileged dims leave the actor no "
            f"observation (of {obs_dim})"
        )
    return obs_dim - privileged


def _global_column_means(values: torch.Tensor) -> np.ndarray:
    """Column means of ``values (N, K)`` over ranks, as a float64 array ``(K,)``."""
    v = values.detach().double().reshape(values.shape[0], -1)
    s = torch.cat([v.sum(0), torch.tensor([float(v.shape[0])], dtype=torch.float64)])
    all_reduce_sum_(s)
    return (s[:-1] / s[-1].clamp_min(1.0)).numpy()


class ActorCritic:
    """Shared machinery of the on-policy algorithms (not used on its own).

    Args:
        observation_space, action_space: single-instance Box spaces.
        config: :class:`saferl.config.AlgoConfig`.
        cost_limit: per-episode limit ``d`` on the combined cost.
        seed: seeds the network initialisation and the algorithm's ``torch.Generator``
            (action sampling, minibatch and FVP subsample permutations).
        device: torch device of the networks.
        n_cost_heads: number of cost critics (1 = the combined cost).
        constraint_groups: the constraints (:class:`saferl.safety.ConstraintGroups`; default:
            one on the combined cost with limit ``cost_limit``). Per-level groups share one
            cost critic of the combined cost (the level is constant within an episode, so a
            sample's cost advantage is its own level's); per-component groups need one cost
            critic per component (``n_cost_heads``).
        privileged_obs_dims: how many trailing observation dims are privileged (the env's
            ``privileged_obs_dims``); with ``config.asymmetric_critic`` only the critics read
            them.
    """

    def __init__(
        self,
        observation_space: Any,
        action_space: Any,
        config: AlgoConfig,
        *,
        cost_limit: float,
        seed: int,
        device: str | torch.device = "cpu",
        n_cost_heads: int = 1,
        privileged_obs_dims: int = 0,
        constraint_groups: ConstraintGroups | None = None,
    ) -> None:
        if cost_limit is None or not math.isfinite(float(cost_limit)) or cost_limit < 0:
            raise ValueError(f"cost_limit must be a finite number >= 0, got {cost_limit!r}")
        groups = constraint_groups or ConstraintGroups.combined(float(cost_limit))
        #: the constraints optimised against (the combined cost by default)
        self.constraint_groups = groups
        self._group_limits = np.asarray(groups.limits, np.float64)
        if groups.kind == "levels" and config.cost_estimate == "rate":
            raise ConfigError(
                "algo.cost_estimate: rate is not available with per-level constraints "
                "(env.constraint_groups); use episodes"
            )
        # A private copy: set_hyperparameter changes it, the caller's config stays as given.
        self.config = config.model_copy(deep=True)
        self.cost_limit = float(cost_limit)
        self.seed = int(seed)
        self.device = torch.device(device)
        self.obs_dim = int(np.prod(observation_space.shape))
        self.act_dim = int(np.prod(action_space.shape))
        self.action_low = np.asarray(action_space.low, np.float32).reshape(self.act_dim)
        self.action_high = np.asarray(action_space.high, np.float32).reshape(self.act_dim)
        self.n_cost_heads = int(n_cost_heads)
        actor_inputs = actor_input_dims(config, self.obs_dim, int(privileged_obs_dims))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            try:
                self.actor = GaussianActor(
                    self.obs_dim,
                    self.act_dim,
                    config.hidden_sizes,
                    config.activation,
                    config.init_log_std,
                    init_mean=config.init_action_mean,
                    input_dims=actor_inputs,
                ).to(self.device)
            except ValueError as exc:  # an init list of the wrong length: name the config field
                raise ConfigError(f"algo.{exc}") from None
            self.critics = Critics(
                self.obs_dim, 1 + self.n_cost_heads, config.hidden_sizes, config.activation
            ).to(self.device)
        self.obs_norm = ObsNormalizer(
            self.obs_dim, clip=config.obs_clip, enabled=config.normalize_obs
        ).to(self.device)
        self.critic_optim = torch.optim.Adam(self.critics.parameters(), lr=config.critic_lr)
        self.generator = torch.Generator(self.device).manual_seed(self.seed + 1)
        self.updates = 0
        #: discounted (instance-steps, finished episodes) for ``cost_estimate: rate``
        self.length_history: torch.Tensor | None = None

    # ---------------------------------------------------------------------------------------
    # Acting
    # ---------------------------------------------------------------------------------------
    def _obs_tensor(self, obs: Any) -> torch.Tensor:
        o = torch.as_tensor(obs, dtype=torch.float32).to(self.device)
        return self.obs_norm.normalize(o.reshape(-1, self.obs_dim))

    @torch.no_grad()
    def act(
        self, obs: Any, noise: Any = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Sample actions for raw observations ``obs (N, d)``.

        ``noise`` ``(N, A)`` float32: standard-normal exploration noise drawn per env instance
        (the collector draws it from a stream keyed by each instance's global index, so an
        instance's actions do not depend on how instances are split over processes); None draws
        it from the algorithm's generator.

        Returns CPU tensors ``(action (N, A), log_prob (N,), value_r (N,), value_c)`` where
        ``action`` is the raw Gaussian sample (clip it to the action box before sending it to
        the env; the collector does) and ``value_c`` is ``(N,)`` for one cost critic, else
        ``(N, K)``.
        """
        o = self._obs_tensor(obs)
        if noise is None:
            action, logp = self.actor.sample(o, self.generator)
        else:
            mean, log_std = self.actor(o)
            z = torch.as_tensor(noise, dtype=mean.dtype).to(self.device).reshape(mean.shape)
            action = mean + z * torch.exp(log_std)
            logp = GaussianActor.log_prob(mean, log_std, action)
        v = self.critics(o)
        v_c = v[:, 1] if self.n_cost_heads == 1 else v[:, 1:]
        return action.cpu(), logp.cpu(), v[:, 0].cpu(), v_c.cpu()

    @torch.no_grad()
    def value(self, obs: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """Critic values ``(value_r (N,), value_c)`` of raw observations (CPU tensors)."""
        v = self.critics(self._obs_tensor(obs))
        v_c = v[:, 1] if self.n_cost_heads == 1 else v[:, 1:]
        return v[:, 0].cpu(), v_c.cpu()

    @torch.no_grad()
    def predict(self, obs: Any, deterministic: bool = True) -> np.ndarray:
        """Env-ready actions (clipped to the box) for raw ``obs (N, d)``: the mean if
        ``deterministic``, else a sample (from the algorithm's generator). Never updates the
        normaliser (evaluation is frozen)."""
        o = self._obs_tensor(obs)
        if deterministic:
            action = self.actor(o)[0]
        else:
            action = self.actor.sample(o, self.generator)[0]
        return np.clip(action.cpu().numpy(), self.action_low, self.action_high)

    # ---------------------------------------------------------------------------------------
    # Update helpers
    # ---------------------------------------------------------------------------------------
    def _cost_signal(self, batch: RolloutBatch) -> torch.Tensor:
        """Per-step costs matching the cost critics, ``(T, N, Kc)`` (combined by default; the
        constrained components with per-component groups)."""
        if self.constraint_groups.kind == "components":
            return self._component_columns(batch)
        return batch.costs.unsqueeze(-1)

    def _component_index(self, batch: RolloutBatch) -> list[int]:
        names = tuple(self.constraint_groups.names)
        have = tuple(batch.component_names)
        if batch.cost_components is None or any(n not in have for n in names):
            raise ValueError(
                f"per-component constraints need cost components {names} in the batch, got {have}"
            )
        return [have.index(n) for n in names]

    def _component_columns(self, batch: RolloutBatch) -> torch.Tensor:
        """The constrained components' per-step costs ``(T, N, m)``."""
        idx = self._component_index(batch)
        if idx == list(range(batch.cost_components.shape[-1])):
            return batch.cost_components
        return batch.cost_components[..., idx]

    @property
    def group_limits(self) -> np.ndarray:
        """``(m,)`` per-episode limit of each constraint group (the current ``cost_limit`` for
        the combined cost)."""
        if not self.constraint_groups.grouped:
            return np.asarray([self.cost_limit], np.float64)
        return self._group_limits.copy()

    def group_costs(self, batch: RolloutBatch) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """J_c ``(m,)``, mean episode length T ``(m,)`` and the estimate's source of each
        constraint group (NaN and ``"none"`` for an inactive level, see
        :func:`estimate_level_costs`)."""
        groups = self.constraint_groups
        m = len(groups)
        if groups.kind != "levels":
            j, t, source = self.episode_cost(batch)
            j = np.asarray(j, np.float64).reshape(-1)
            return j, np.full(m, float(t)), [source] * m
        fallback = batch.horizon or max(float(np.mean(batch.current_lengths)), 1.0)

        def critic() -> torch.Tensor:
            with torch.no_grad():
                return self.critics(self._obs_tensor(batch.start_obs))[:, 1]

        return estimate_level_costs(
            batch.ep_costs,
            batch.ep_lengths,
            batch.ep_groups,
            m,
            batch.current_groups,
            critic,
            fallback,
            self.config.cost_gamma,
        )

    def prepare(self, batch: RolloutBatch) -> PreparedBatch:
        """GAE for reward and cost(s), flatten, normalise observations, scale advantages."""
        cfg = self.config
        adv_r, ret_r = compute_gae(
            batch.rewards.numpy(),
            batch.values_r.numpy(),
            batch.terminated.numpy(),
            batch.truncated.numpy(),
            batch.boot_values_r.numpy(),
            batch.last_values_r.numpy(),
            cfg.gamma,
            cfg.lam,
        )
        adv_c, ret_c = compute_gae(
            self._cost_signal(batch).numpy(),
            batch.values_c.numpy(),
            batch.terminated.numpy(),
            batch.truncated.numpy(),
            batch.boot_values_c.numpy(),
            batch.last_values_c.numpy(),
            cfg.cost_gamma,
            cfg.cost_lam,
        )
        B = batch.num_steps
        dev = self.device
        adv_r_t = torch.from_numpy(adv_r.reshape(B)).to(dev)
        adv_c_t = torch.from_numpy(adv_c.reshape(B, -1)).to(dev)
        mean_r, std_r = global_mean_std(adv_r_t)
        adv_r_t = ((adv_r_t - mean_r) / (std_r + 1e-8)).float()
        group_mask = group_counts = None
        if self.constraint_groups.kind != "levels":
            # cost advantages: centred only, per head
            means_c = torch.stack([global_mean(adv_c_t[:, k]) for k in range(adv_c_t.shape[1])])
            adv_c_t = (adv_c_t - means_c).float()
        else:
            # one column per level: centred over that level's samples (global), 0 elsewhere
            m = len(self.constraint_groups)
            codes = batch.groups.reshape(B).to(dev)
            group_mask = codes.unsqueeze(-1) == torch.arange(m, device=dev)
            maskd = group_mask.double()
            raw = adv_c_t[:, :1]
            sums = torch.cat([(raw * maskd).sum(0), maskd.sum(0)]).cpu()
            all_reduce_sum_(sums)
            group_counts = sums[m:]
            means = (sums[:m] / group_counts.clamp_min(1.0)).to(dev)
            adv_c_t = ((raw - means) * maskd).float()
        obs = self.obs_norm.normalize(batch.obs.reshape(B, self.obs_dim).to(dev))
        n_local = int(batch.rewards.shape[1])
        offset, total = instance_span(n_local)
        return PreparedBatch(
            obs=obs,
            actions=batch.actions.reshape(B, self.act_dim).to(dev),
            adv_r=adv_r_t,
            adv_c=adv_c_t,
            ret_r=torch.from_numpy(ret_r.reshape(B)).float().to(dev),
            ret_c=torch.from_numpy(ret_c.reshape(B, -1)).float().to(dev),
            adv_r_std=float(std_r) + 1e-8,
            group_mask=group_mask,
            group_counts=group_counts,
            instances=n_local,
            offset=offset,
            total_instances=total,
        )

    def episode_cost(self, batch: RolloutBatch) -> tuple[np.ndarray, float, str]:
        """J_c per cost head, mean episode length T and the estimate's source."""
        fallback = batch.horizon or max(float(np.mean(batch.current_lengths)), 1.0)
        if self.config.cost_estimate == "rate":
            j_c, length, source, self.length_history = estimate_episode_cost_from_rate(
                self._step_costs(batch), len(batch.ep_lengths), fallback, self.length_history
            )
            return j_c, length, source
        if len(batch.ep_lengths) == 0:
            with torch.no_grad():
                v = self.critics(self._obs_tensor(batch.start_obs))[:, 1:]
        else:
            v = None
        ep_costs = self._episode_costs(batch)
        return estimate_episode_cost(
            ep_costs, batch.ep_lengths, v, fallback, self.config.cost_gamma
        )

    def _episode_costs(self, batch: RolloutBatch) -> np.ndarray:
        if self.constraint_groups.kind == "components":
            return np.asarray(batch.ep_component_costs)[:, self._component_index(batch)]
        return batch.ep_costs

    def _step_costs(self, batch: RolloutBatch) -> torch.Tensor:
        """Per-step costs of the constrained heads, ``(T, N, K)``."""
        if self.constraint_groups.kind == "components":
            return self._component_columns(batch)
        return batch.costs.unsqueeze(-1)

    def update_critics(self, data: PreparedBatch) -> dict[str, float]:
        """Adam on the GAE targets of all critics at once, minibatched, several epochs.

        Minibatches are drawn over the global samples (:meth:`PreparedBatch.rows`); each rank
        takes the mean squared error over its rows of a minibatch and the gradients are averaged
        weighted by those row counts, i.e. the gradient of the minibatch's mean."""
        cfg = self.config
        targets = torch.cat([data.ret_r.unsqueeze(-1), data.ret_c], dim=1)  # (B, G)
        B = data.global_size
        mb = min(cfg.critic_minibatch, B)
        params = list(self.critics.parameters())
        loss_sum = torch.zeros(targets.shape[1], device=self.device)
        n_steps = 0
        for _ in range(cfg.critic_epochs):
            perm = torch.randperm(B, generator=self.generator, device=self.device)
            for start in range(0, B - mb + 1, mb):
                idx = data.rows(perm[start : start + mb])
                n = int(idx.shape[0])
                err = self.critics(data.obs[idx]) - targets[idx]
                per_head = (err * err).sum(0) / max(n, 1)
                loss = per_head.sum()
                self._optimizer_step(self.critic_optim, loss, params, n)
                loss_sum += per_head.detach() * (n / mb)  # this rank's share of the mean
                n_steps += 1
        all_reduce_sum_(loss_sum)
        losses = (loss_sum / max(n_steps, 1)).cpu().numpy()
        out = {"loss_v_r": float(losses[0]), "critic_steps": n_steps}
        if len(losses) == 2:
            out["loss_v_c"] = float(losses[1])
        else:
            for k, val in enumerate(losses[1:]):
                out[f"loss_v_c{k}"] = float(val)
            out["loss_v_c"] = float(np.mean(losses[1:]))
        return out

    # ---------------------------------------------------------------------------------------
    # The Algorithm contract beyond act/update/state (saferl.algos.base.Algorithm)
    # ---------------------------------------------------------------------------------------
    #: config fields that may change during a run (read afresh by every update)
    SETTABLE: ClassVar[tuple[str, ...]] = (
        "gamma",
        "lam",
        "cost_gamma",
        "cost_lam",
        "max_grad_norm",
    )

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """``{"critic": the critics' Adam}`` (subclasses add theirs)."""
        return {"critic": self.critic_optim}

    def hyperparameters(self) -> dict[str, float]:
        """``cost_limit`` and the :attr:`SETTABLE` config fields (those set, for optional ones)."""
        out = {"cost_limit": float(self.cost_limit)}
        if self.constraint_groups.grouped:  # after cost_limit: restored in this order
            for name, value in zip(self.constraint_groups.names, self._group_limits, strict=True):
                out[f"cost_limit/{name}"] = float(value)
        for name in self.SETTABLE:
            value = getattr(self.config, name)
            if value is not None:
                out[name] = float(value)
        return out

    def set_hyperparameter(self, name: str, value: float) -> None:
        """Set ``cost_limit`` or a :attr:`SETTABLE` field of this algorithm's own config copy
        (validated against the field's range). With per-level constraints ``cost_limit`` sets
        every level's limit and ``cost_limit/<group>`` one group's (levels or components).

        Raises:
            HyperparameterError: not a settable hyperparameter of this algorithm.
            ValueError: out of range.
        """
        groups = self.constraint_groups
        group_limit = groups.grouped and name.partition("/")[2] in groups.names
        if name == "cost_limit" or (name.startswith("cost_limit/") and group_limit):
            value = float(value)
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
            if name == "cost_limit":
                self.cost_limit = value
                if groups.kind == "levels":
                    self._group_limits[:] = value
            else:
                self._group_limits[groups.names.index(name.partition("/")[2])] = value
            return
        if name not in self.SETTABLE:
            limits = [k for k in self.hyperparameters() if k.startswith("cost_limit")]
            allowed = ", ".join([*limits, *self.SETTABLE])
            raise HyperparameterError(
                f"{type(self).__name__} has no settable hyperparameter '{name}' (settable: "
                f"{allowed})"
            )
        field = type(self.config).model_fields[name]
        if int in _leaf_types(field.annotation) and float not in _leaf_types(field.annotation):
            value = round(value)
        try:
            setattr(self.config, name, value)
        except ValidationError as exc:
            msg = exc.errors(include_url=False)[0]["msg"].removeprefix("Value error, ")
            raise ValueError(f"{name}: {msg}, got {value!r}") from None

    def shrink_step(self, factor: float) -> list[str]:
        """Scale every optimiser's learning rate by ``factor`` (subclasses shrink their step
        size too)."""
        done = []
        for name, opt in self.optimizers().items():
            for group in opt.param_groups:
                group["lr"] *= factor
            done.append(f"{name} lr x{factor:g}")
        return done

    def _shrink_field(self, name: str, factor: float) -> str:
        old = getattr(self.config, name)
        setattr(self.config, name, old * factor)
        return f"{name} {old:.3g} -> {old * factor:.3g}"

    # ---------------------------------------------------------------------------------------
    # State
    # ---------------------------------------------------------------------------------------
    def shard_critic_optimizer(self) -> None:
        """Shard the critics' Adam state over the ranks of the process group with
        :class:`torch.distributed.optim.ZeroRedundancyOptimizer` (``distributed.zero``): each
        rank keeps the moments of its share of the parameters, steps that share and broadcasts
        it. The state so far is kept. Collective: every rank calls it; needs an initialised
        process group."""
        from torch.distributed.optim import ZeroRedundancyOptimizer

        if isinstance(self.critic_optim, ZeroRedundancyOptimizer):
            return
        state = self.critic_optim.state_dict()
        zero = ZeroRedundancyOptimizer(
            self.critics.parameters(),
            optimizer_class=torch.optim.Adam,
            lr=self.critic_optim.param_groups[0]["lr"],
        )
        zero.load_state_dict(state)
        self.critic_optim = zero

    def _zero(self) -> Any:
        """The critics' ZeroRedundancyOptimizer, or None when they use a plain one."""
        opt = self.critic_optim
        return opt if hasattr(opt, "consolidate_state_dict") else None

    def _critic_optim_state(self) -> dict[str, Any]:
        zero = self._zero()
        if zero is None:
            return self.critic_optim.state_dict()
        # this rank's shard only (no collective): what a rollback needs; checkpoints take the
        # whole state from consolidated_state_dict
        return {
            "zero_shard": zero.optim.state_dict(),
            "lr": [float(g["lr"]) for g in zero.param_groups],
        }

    def _load_critic_optim_state(self, state: Mapping[str, Any]) -> None:
        zero = self._zero()
        if "zero_shard" in state:
            if zero is None:
                raise ValueError(
                    "the critic optimiser state is one rank's ZeRO shard; load a checkpoint "
                    "(it holds the whole state) instead"
                )
            zero.optim.load_state_dict(state["zero_shard"])
            for group, lr in zip(zero.param_groups, state["lr"], strict=True):
                group["lr"] = lr
        elif zero is not None:  # the whole state: each rank keeps its shard of it
            zero.load_state_dict(copy.deepcopy(dict(state)))
        else:
            self.critic_optim.load_state_dict(state)

    def consolidated_state_dict(self) -> dict[str, Any] | None:
        """:meth:`state_dict` with the critics' whole optimiser state, for a checkpoint.

        With a sharded optimiser (:meth:`shard_critic_optimizer`) this is a collective that
        every rank calls: the shards are gathered on rank 0, which gets the state; the other
        ranks get None. Otherwise it is :meth:`state_dict`.
        """
        zero = self._zero()
        state = self.state_dict()
        if zero is None:
            return state
        zero.consolidate_state_dict(to=0)
        if zero.rank != 0:
            return None
        state["critic_optim"] = zero.state_dict()
        return state

    def state_dict(self) -> dict[str, Any]:
        """Weights, critic optimiser, normaliser, generator state and counters (plain tensors
        and containers: ``torch.save``-able, loadable with ``weights_only=True``). With a
        sharded critic optimiser, its state is this rank's shard (see
        :meth:`consolidated_state_dict`)."""
        return {
            "actor": self.actor.state_dict(),
            "critics": self.critics.state_dict(),
            "critic_optim": self._critic_optim_state(),
            "obs_norm": self.obs_norm.state_dict(),
            "generator": self.generator.get_state(),
            "updates": self.updates,
            "length_history": self.length_history,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict` (exactly: a resumed run continues bit-identically)."""
        self.actor.load_state_dict(state["actor"])
        self.critics.load_state_dict(state["critics"])
        self._load_critic_optim_state(state["critic_optim"])
        self.obs_norm.load_state_dict(state["obs_norm"])
        self.generator.set_state(torch.as_tensor(state["generator"]).cpu())
        self.updates = int(state["updates"])
        history = state.get("length_history")  # absent in checkpoints from before the option
        self.length_history = None if history is None else torch.as_tensor(history).double()

    def _optimizer_step(
        self, optim: torch.optim.Optimizer, loss: torch.Tensor, params: Sequence[Any], n: int
    ) -> None:
        """One minibatch step: backward, gradients averaged over ranks (weighted by the local
        minibatch size ``n``, in one collective) when distributed, clipped to
        ``max_grad_norm``, then ``optim.step``."""
        optim.zero_grad(set_to_none=True)
        loss.backward()
        average_gradients_(params, n)
        nn.utils.clip_grad_norm_(params, self.config.max_grad_norm)
        optim.step()

    def _update_summary(
        self, batch: Any, *, source: str, ep_len: float, times: Sequence[float]
    ) -> dict[str, Any]:
        """The diagnostics every update reports besides its own (J_c source, limit, episode
        statistics, policy statistics, and the time of each phase from ``times`` =
        (start, prepared, actor done, critic done) in seconds)."""
        t0, t_prep, t_actor, t_critic = times
        return {
            "J_c_source": source,
            "cost_limit": self.cost_limit,
            "mean_ep_len": ep_len,
            **batch.episode_stats(),
            **self.train_mode_info(),
            "time_prepare": t_prep - t0,
            "time_actor": t_actor - t_prep,
            "time_critic": t_critic - t_actor,
            "updates": self.updates,
        }

    def train_mode_info(self) -> dict[str, float]:
        """Small policy statistics for logs: mean std of the Gaussian and its entropy."""
        with torch.no_grad():
            ls = self.actor.log_std
            return {
                "policy_std": float(ls.exp().mean()),
                "entropy": float(GaussianActor.entropy(ls)),
            }

    @staticmethod
    def _names(names: Sequence[str] | None, k: int) -> list[str]:
        return list(names) if names is not None else [f"c{i}" for i in range(k)]
