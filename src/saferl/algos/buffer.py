"""Rollout storage, GAE(lambda) for reward and cost, and the rollout collector.

Layout: every per-step array is time-major, ``(T, N, ...)`` for ``T`` steps of ``N`` env
instances, preallocated once. Bootstrapping (see :func:`compute_gae`):

* **termination** (``terminated[t]``): the episode really ended, the next value is 0;
* **truncation** (``truncated[t]`` and not terminated): the episode was cut by a time limit; the
  next value is the critic at the *final* observation (Gymnasium 1.x same-step autoreset puts
  it in ``info["final_obs"]`` with mask ``info["_final_obs"]``; the observation returned by
  ``step`` is already the next episode's first one);
* **batch cut-off** (``t = T-1`` without either): the next value is the critic at the current
  observation, from which the next batch continues.

The collector is algorithm-agnostic: it needs a ``policy`` with

* ``act(obs (N, d) float32 tensor) -> (action (N, A), log_prob (N,), value_r (N,), value_c)``
  where ``action`` is the *raw* Gaussian sample (stored for log-probabilities; the collector
  clips a copy to the action box for the env) and ``value_c`` is ``(N,)`` or ``(N, K)``;
* ``value(obs) -> (value_r (N,), value_c)`` for bootstrapping.

If the policy's ``act`` takes ``noise=``, the collector draws its exploration noise: ``(N, A)``
standard normals, one counter-based stream per env instance keyed by the instance's *global*
index (:class:`saferl.envs.vector.InstanceRNG`, as the envs key their own randomness), so that
an instance's actions, like its episodes, do not depend on how the instances are split over
processes. The streams are part of :meth:`RolloutCollector.state_dict`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch

from saferl.envs.vector import InstanceRNG
from saferl.utils import names_param

__all__ = ["RolloutBatch", "RolloutCollector", "RolloutPolicy", "compute_gae"]


class RolloutPolicy(Protocol):
    def act(
        self, obs: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]: ...

    def value(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]: ...


def compute_gae(
    rewards: np.ndarray,
    values: np.ndarray,
    terminated: np.ndarray,
    truncated: np.ndarray,
    boot_values: np.ndarray,
    last_values: np.ndarray,
    gamma: float,
    lam: float,
) -> tuple[np.ndarray, np.ndarray]:
    """GAE(lambda) advantages and value targets for a ``(T, N, ...)`` batch.

    Args:
        rewards: per-step rewards (or costs), ``(T, N)`` or ``(T, N, K)``.
        values: critic values at the observations the actions were taken in, same shape.
        terminated, truncated: ``(T, N)`` bool: the step ended the episode (truncated counts
            only where not terminated).
        boot_values: critic values at the final observation of truncated steps (ignored
            elsewhere), same shape as ``values``.
        last_values: critic values at the observation after the last step, ``(N,)`` or
            ``(N, K)``: the bootstrap at the batch cut-off.
        gamma, lam: discount and GAE lambda.

    Returns:
        ``(advantages, returns)`` float64 arrays of ``values``' shape; ``returns = adv + values``
        are the critic targets.
    """
    rewards = np.asarray(rewards, np.float64)
    values = np.asarray(values, np.float64)
    T = rewards.shape[0]
    extra = (1,) * (values.ndim - 2)  # broadcast (T, N) masks over a trailing K axis
    term = np.asarray(terminated, bool).reshape(*terminated.shape, *extra)
    trunc = np.asarray(truncated, bool).reshape(*truncated.shape, *extra) & ~term
    # next value: V(o_{t+1}) within an episode, V(final obs) at truncation, 0 at termination
    next_values = np.empty_like(values)
    next_values[:-1] = values[1:]
    next_values[-1] = last_values
    next_values = np.where(trunc, np.asarray(boot_values, np.float64), next_values)
    next_values = np.where(term, 0.0, next_values)
    deltas = rewards + gamma * next_values - values
    # the recursion continues only inside an episode and inside the batch
    cont = (~(term | trunc)).astype(np.float64) * (gamma * lam)
    adv = np.empty_like(values)
    last = np.zeros_like(values[0])  # A_T = 0: the chain is cut at the batch end
    for t in range(T - 1, -1, -1):
        last = deltas[t] + cont[t] * last
        adv[t] = last
    return adv, adv + values


@dataclass
class RolloutBatch:
    """One batch of ``T`` steps from ``N`` instances (time-major tensors on the CPU).

    Attributes:
        obs: raw observations the actions were taken in, ``(T, N, d)`` float32.
        actions: raw (unclipped) Gaussian samples, ``(T, N, A)`` float32.
        log_probs: their log-probabilities under the collecting policy, ``(T, N)``.
        rewards: ``(T, N)``; costs: combined per-step cost ``info["cost"]``, ``(T, N)``.
        cost_components: ``(T, N, K)`` per-constraint costs (``None`` if not collected), in the
            order of ``component_names``.
        values_r: ``(T, N)``; values_c: ``(T, N, Kc)`` as returned by the policy.
        terminated, truncated: ``(T, N)`` bool.
        boot_values_r, boot_values_c: critic at the final observation of truncated steps.
        last_values_r ``(N,)``, last_values_c ``(N, Kc)``: critic at the observation after the
            last step (bootstrap at the cut-off).
        ep_returns, ep_costs, ep_lengths: statistics of the episodes that finished in this
            batch, ``(E,)`` float64; ep_component_costs ``(E, K)``.
        start_obs: first observation of each instance's current episode at the end of the
            batch, ``(N, d)`` (for a cost-critic estimate of J_c when no episode finished).
        current_lengths: steps so far of each instance's current episode, ``(N,)``.
        horizon: the env's episode length if known (time limit), else ``None``.
        group_key: the ``info`` key of the per-episode level recorded (``None``: none), with
            ``groups`` ``(T, N)`` int64 each step's level code, ``ep_groups`` ``(E,)`` the finished
            episodes' levels and ``current_groups`` ``(N,)`` the level of each instance's
            unfinished episode (-1 where the episode began on the last step: no sample of it
            is in the batch); ``group_names`` the level names by code (for statistics).
    """

    obs: torch.Tensor
    actions: torch.Tensor
    log_probs: torch.Tensor
    rewards: torch.Tensor
    costs: torch.Tensor
    values_r: torch.Tensor
    values_c: torch.Tensor
    terminated: torch.Tensor
    truncated: torch.Tensor
    boot_values_r: torch.Tensor
    boot_values_c: torch.Tensor
    last_values_r: torch.Tensor
    last_values_c: torch.Tensor
    ep_returns: np.ndarray
    ep_costs: np.ndarray
    ep_lengths: np.ndarray
    start_obs: torch.Tensor
    current_lengths: np.ndarray
    cost_components: torch.Tensor | None = None
    component_names: tuple[str, ...] = ()
    ep_component_costs: np.ndarray | None = None
    horizon: int | None = None
    extras: dict[str, Any] = field(default_factory=dict)
    group_key: str | None = None
    group_names: tuple[str, ...] = ()
    groups: torch.Tensor | None = None
    ep_groups: np.ndarray | None = None
    current_groups: np.ndarray | None = None

    @property
    def num_steps(self) -> int:
        """Environment steps in the batch (``T * N``)."""
        return int(self.rewards.numel())

    def episode_stats(self) -> dict[str, float]:
        """Mean return, cost and length of the finished episodes (NaN if none), their count,
        the mean episode cost per component (``ep_cost/<name>``) when collected, and per level
        (``ep_return/<level>``, ``ep_cost/<level>``, ``episodes/<level>``) when levels are."""
        n = len(self.ep_returns)
        if n == 0:
            out = {"ep_return": np.nan, "ep_cost": np.nan, "ep_len": np.nan, "episodes": 0}
        else:
            out = {
                "ep_return": float(np.mean(self.ep_returns)),
                "ep_cost": float(np.mean(self.ep_costs)),
                "ep_len": float(np.mean(self.ep_lengths)),
                "episodes": n,
            }
        if self.ep_component_costs is not None:
            for k, name in enumerate(self.component_names):
                col = self.ep_component_costs[:, k]
                out[f"ep_cost/{name}"] = float(np.mean(col)) if n else np.nan
        if self.ep_groups is not None:
            for k, name in enumerate(self.group_names):
                sel = self.ep_groups == k
                m = int(sel.sum())
                out[f"ep_return/{name}"] = float(np.mean(self.ep_returns[sel])) if m else np.nan
                out[f"ep_cost/{name}"] = float(np.mean(self.ep_costs[sel])) if m else np.nan
                out[f"episodes/{name}"] = m
        return out


def _as_index_array(info: Mapping[str, Any], key: str, n: int) -> np.ndarray:
    mask = info.get("_" + key)
    if mask is None:
        return np.zeros(n, bool)
    return np.asarray(mask, bool)


class RolloutCollector:
    """Steps a natively batched Gymnasium ``VectorEnv`` with a policy and fills batches.

    Carries the current observation and the per-instance episode accumulators across batches,
    so episodes continue over batch boundaries. ``state_dict()`` holds plain tensors/arrays
    (``torch.save``-able, ``weights_only=True``-loadable); the env's own state is saved by its
    ``state_dict`` separately.

    Args:
        env: a VectorEnv with same-step autoreset: ``reset(seed) -> (obs (N, d), info)``;
            ``step(actions (N, A)) -> obs, reward, terminated, truncated, info`` with
            ``info["cost"]`` ``(N,)`` and optionally ``info["cost_components"]`` (name ->
            ``(N,)``).
        policy: see the module docstring.
        steps_per_env: ``T``, steps per instance per batch.
        seed: seed of the first ``env.reset``.
        component_names: cost components to record; default: ``env.constraints.names`` if the
            env declares constraints, else none.
        instance_offset: global index of the env's first instance (a process holding a slice
            of the instances); keys the exploration noise. Default: the env's
            ``instance_offset``, else 0.
        group_key: record ``info[group_key]``, the per-episode level each step carries (see
            :class:`RolloutBatch`); default: the ``key`` of the policy's ``constraint_groups``
            if it has one, else none.
    """

    def __init__(
        self,
        env: Any,
        policy: RolloutPolicy,
        steps_per_env: int,
        *,
        seed: int | None = None,
        component_names: Sequence[str] | None = None,
        instance_offset: int | None = None,
        group_key: str | None = None,
    ) -> None:
        mode = getattr(env, "metadata", {}).get("autoreset_mode")
        if mode is not None and str(getattr(mode, "value", mode)).lower().replace("_", "").replace(
            "-", ""
        ) not in ("samestep",):
            raise ValueError(
                f"RolloutCollector needs same-step autoreset, the env uses {mode!r}; build the "
                "vector env with autoreset_mode=gymnasium.vector.AutoresetMode.SAME_STEP"
            )
        if steps_per_env < 1:
            raise ValueError(f"steps_per_env must be >= 1, got {steps_per_env}")
        self.env = env
        self.policy = policy
        self.T = int(steps_per_env)
        self.N = int(env.num_envs)
        self.seed = seed
        if component_names is None:
            constraints = getattr(env, "constraints", None)
            component_names = tuple(constraints.names) if constraints is not None else ()
        self.component_names = tuple(component_names)
        groups = getattr(policy, "constraint_groups", None)
        if group_key is None:
            group_key = getattr(groups, "key", None)
        self.group_key = group_key
        own = groups is not None and getattr(groups, "key", None) == group_key
        self.group_names = tuple(groups.names) if own else ()
        space = env.single_action_space
        self._low = np.asarray(space.low, np.float32)
        self._high = np.asarray(space.high, np.float32)
        self.horizon = (
            getattr(env, "max_episode_steps", None)
            or getattr(getattr(env, "constraints", None), "episode_length", None)
            or getattr(getattr(env, "spec", None), "max_episode_steps", None)
        )
        self.obs_dim = int(np.prod(env.single_observation_space.shape))
        self.act_dim = int(np.prod(space.shape))
        if instance_offset is None:
            instance_offset = int(getattr(env, "instance_offset", 0) or 0)
        # per-instance exploration noise, if the policy takes it
        self.noise = InstanceRNG(self.N, instance_offset) if _takes_noise(policy) else None
        # carried across batches
        self._obs: np.ndarray | None = None
        self._start_obs = np.zeros((self.N, self.obs_dim), np.float32)
        self._ep_ret = np.zeros(self.N, np.float64)
        self._ep_cost = np.zeros(self.N, np.float64)
        self._ep_len = np.zeros(self.N, np.int64)
        self._ep_comp = np.zeros((self.N, len(self.component_names)), np.float64)
        self.total_steps = 0

    # ----------------------------------------------------------------------------------------
    def _reset(self) -> None:
        if self.noise is not None:
            self.noise.seed(None if self.seed is None else noise_seed(self.seed))
        obs, _ = self.env.reset(seed=self.seed)
        self._obs = np.asarray(obs, np.float32).reshape(self.N, self.obs_dim)
        self._start_obs[:] = self._obs
        self._ep_ret[:] = 0
        self._ep_cost[:] = 0
        self._ep_len[:] = 0
        self._ep_comp[:] = 0

    @torch.no_grad()
    def collect(self) -> RolloutBatch:
        """Run ``T`` steps of all ``N`` instances and return the batch."""
        if self._obs is None:
            self._reset()
        T, N, d, K = self.T, self.N, self.obs_dim, len(self.component_names)
        obs_buf = torch.empty(T, N, d)
        rew_buf = np.empty((T, N), np.float32)
        cost_buf = np.empty((T, N), np.float32)
        comp_buf = np.zeros((T, N, K), np.float32) if K else None
        term_buf = np.empty((T, N), bool)
        trunc_buf = np.empty((T, N), bool)
        act_buf = logp_buf = vr_buf = vc_buf = bvr_buf = bvc_buf = None
        ep_ret, ep_cost, ep_len, ep_comp, ep_grp = [], [], [], [], []
        key = self.group_key
        grp_buf = np.empty((T, N), np.int64) if key is not None else None
        done = np.zeros(N, bool)

        for t in range(T):
            obs_t = torch.from_numpy(self._obs)
            if self.noise is None:
                action, logp, v_r, v_c = self.policy.act(obs_t)
            else:
                noise = torch.from_numpy(self.noise.normal(self.act_dim))
                action, logp, v_r, v_c = self.policy.act(obs_t, noise=noise)
            if v_c.dim() == 1:
                v_c = v_c.unsqueeze(-1)
            if act_buf is None:  # shapes known after the first call
                act_buf = torch.empty(T, N, action.shape[-1])
                logp_buf = torch.empty(T, N)
                vr_buf = torch.empty(T, N)
                vc_buf = torch.empty(T, N, v_c.shape[-1])
                bvr_buf = torch.zeros(T, N)
                bvc_buf = torch.zeros(T, N, v_c.shape[-1])
            obs_buf[t] = obs_t
            act_buf[t] = action
            logp_buf[t] = logp
            vr_buf[t] = v_r
            vc_buf[t] = v_c
            env_action = np.clip(action.cpu().numpy(), self._low, self._high)
            obs, reward, terminated, truncated, info = self.env.step(env_action)
            reward = np.asarray(reward, np.float32)
            terminated = np.asarray(terminated, bool)
            truncated = np.asarray(truncated, bool)
            cost = np.asarray(info["cost"], np.float32)
            rew_buf[t] = reward
            cost_buf[t] = cost
            term_buf[t] = terminated
            trunc_buf[t] = truncated
            self._ep_ret += reward
            self._ep_cost += cost
            self._ep_len += 1
            if K:
                comps = info["cost_components"]
                for k, name in enumerate(self.component_names):
                    comp_buf[t, :, k] = comps[name]
                self._ep_comp += comp_buf[t]
            if grp_buf is not None:
                if key not in info:
                    raise ValueError(
                        f"the env's info has no '{key}': per-level constraints need each "
                        "step's level there"
                    )
                grp_buf[t] = np.asarray(info[key]).astype(np.int64, copy=False)

            done = terminated | truncated
            boot = truncated & ~terminated
            if boot.any():
                has_final = _as_index_array(info, "final_obs", N)
                idx = np.nonzero(boot)[0]
                if not has_final[idx].all():
                    raise ValueError(
                        "a truncated instance has no info['final_obs']: the collector needs "
                        "the final observation to bootstrap (same-step autoreset)"
                    )
                final = info["final_obs"]
                if isinstance(final, np.ndarray) and final.dtype != object:
                    fo = final[idx]
                else:
                    fo = np.stack([np.asarray(final[i]) for i in idx])
                fo_t = torch.from_numpy(np.asarray(fo, np.float32).reshape(len(idx), d))
                b_r, b_c = self.policy.value(fo_t)
                if b_c.dim() == 1:
                    b_c = b_c.unsqueeze(-1)
                idx_t = torch.from_numpy(idx)
                bvr_buf[t, idx_t] = b_r
                bvc_buf[t, idx_t] = b_c
            self._obs = np.asarray(obs, np.float32).reshape(N, d)
            if done.any():
                idx = np.nonzero(done)[0]
                ep_ret.append(self._ep_ret[idx].copy())
                ep_cost.append(self._ep_cost[idx].copy())
                ep_len.append(self._ep_len[idx].copy())
                self._ep_ret[idx] = 0
                self._ep_cost[idx] = 0
                self._ep_len[idx] = 0
                if K:
                    ep_comp.append(self._ep_comp[idx].copy())
                    self._ep_comp[idx] = 0
                if grp_buf is not None:
                    ep_grp.append(grp_buf[t, idx].copy())
                self._start_obs[idx] = self._obs[idx]

        last_obs = torch.from_numpy(self._obs.copy())
        l_r, l_c = self.policy.value(last_obs)
        if l_c.dim() == 1:
            l_c = l_c.unsqueeze(-1)
        self.total_steps += T * N

        def cat(parts: list[np.ndarray], dtype: Any, width: int | None = None) -> np.ndarray:
            if parts:
                return np.concatenate(parts).astype(dtype)
            return np.zeros((0,) if width is None else (0, width), dtype)

        return RolloutBatch(
            obs=obs_buf,
            actions=act_buf,
            log_probs=logp_buf,
            rewards=torch.from_numpy(rew_buf),
            costs=torch.from_numpy(cost_buf),
            values_r=vr_buf,
            values_c=vc_buf,
            terminated=torch.from_numpy(term_buf),
            truncated=torch.from_numpy(trunc_buf),
            boot_values_r=bvr_buf,
            boot_values_c=bvc_buf,
            last_values_r=l_r.reshape(N).clone(),
            last_values_c=l_c.reshape(N, -1).clone(),
            ep_returns=cat(ep_ret, np.float64),
            ep_costs=cat(ep_cost, np.float64),
            ep_lengths=cat(ep_len, np.float64),
            start_obs=torch.from_numpy(self._start_obs.copy()),
            current_lengths=self._ep_len.astype(np.float64),
            cost_components=torch.from_numpy(comp_buf) if K else None,
            component_names=self.component_names,
            ep_component_costs=cat(ep_comp, np.float64, K) if K else None,
            horizon=int(self.horizon) if self.horizon else None,
            group_key=key,
            group_names=self.group_names,
            groups=torch.from_numpy(grp_buf) if grp_buf is not None else None,
            ep_groups=cat(ep_grp, np.int64) if grp_buf is not None else None,
            current_groups=np.where(done, -1, grp_buf[-1]) if grp_buf is not None else None,
        )

    # ----------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Plain containers: the carried observation, episode accumulators and counters."""
        return {
            "started": self._obs is not None,
            "obs": torch.from_numpy(self._obs.copy()) if self._obs is not None else None,
            "start_obs": torch.from_numpy(self._start_obs.copy()),
            "ep_ret": torch.from_numpy(self._ep_ret.copy()),
            "ep_cost": torch.from_numpy(self._ep_cost.copy()),
            "ep_len": torch.from_numpy(self._ep_len.copy()),
            "ep_comp": torch.from_numpy(self._ep_comp.copy()),
            "total_steps": int(self.total_steps),
            "seed": self.seed,
            "component_names": list(self.component_names),
            "noise": _tensors(self.noise.state_dict()) if self.noise is not None else None,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`state_dict` saved (the env's state is restored separately)."""
        if list(state["component_names"]) != list(self.component_names):
            raise ValueError(
                f"collector components {self.component_names} differ from the saved "
                f"{state['component_names']}"
            )
        self._obs = (
            np.asarray(state["obs"], np.float32).reshape(self.N, self.obs_dim).copy()
            if state["started"]
            else None
        )
        self._start_obs[:] = np.asarray(state["start_obs"])
        self._ep_ret[:] = np.asarray(state["ep_ret"])
        self._ep_cost[:] = np.asarray(state["ep_cost"])
        self._ep_len[:] = np.asarray(state["ep_len"])
        self._ep_comp[:] = np.asarray(state["ep_comp"])
        self.total_steps = int(state["total_steps"])
        self.seed = state["seed"]
        if self.noise is not None and state.get("noise") is not None:
            self.noise.load_state_dict({k: np.asarray(v) for k, v in state["noise"].items()})
        elif self.noise is not None and self._obs is not None:
            # a checkpoint from before per-instance noise: fresh streams from the seed
            self.noise.seed(None if self.seed is None else noise_seed(self.seed))


#: mixed into the collector's seed for the exploration-noise streams (apart from the envs')
NOISE_SEED_SALT = 0x2545F4914F6CDD1D


def noise_seed(seed: int) -> int:
    """The seed of the exploration-noise streams of a collector seeded with ``seed``."""
    return (int(seed) ^ NOISE_SEED_SALT) & (2**63 - 1)


def _takes_noise(policy: Any) -> bool:
    act = getattr(policy, "act", None)
    return act is not None and names_param(act, "noise")


def _tensors(state: Mapping[str, Any]) -> dict[str, Any]:
    return {k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v for k, v in state.items()}
