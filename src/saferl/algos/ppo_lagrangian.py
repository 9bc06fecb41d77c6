"""PPO-Lagrangian: PPO-clip on ``A_r - sum_k lambda_k A_c,k`` with learned multipliers.

The multiplier(s) follow the PID Lagrangian of Stooke, Achiam & Abbeel (ICML 2020); with
``pid_kp = pid_kd = 0`` this is plain projected gradient ascent on the dual,
``lambda <- max(0, lambda + lagrangian_lr * (J_c - d))``:

    e_t = J_c - d
    I_t = max(0, I_{t-1} + e_t)                       (integral, in units of episode cost)
    D_t = max(0, J_c,t - J_c,t-1)                     (derivative of the cost, rising only)
    lambda_t = max(0, Kp * e_t + Ki * I_t + Kd * D_t) with Ki = lagrangian_lr

``lagrangian_init`` sets ``I_0 = lagrangian_init / Ki``. The multipliers are updated from the
current batch's J_c *before* the policy step. The actor objective is
``(A_r - sum lambda_k A_c,k) / (std(A_r) (1 + sum lambda_k))`` with centred advantages: reward
and cost advantages share one scale, so lambda is in natural units (reward per unit of cost).

``per_constraint=True``: one cost critic and one multiplier per constraint of the env's
``ConstraintSet`` (costs from ``info["cost_components"]``); a component's limit is its own
``Constraint.limit`` if it has one, else the combined ``cost_limit``. ``lagrangian=False`` keeps
the multipliers at 0 (plain PPO, the unconstrained baseline).

``constraint_groups`` (``env.constraint_groups`` / ``env.constraints``): one multiplier per
group, each updated from its own group's J_c. Per-component groups have one cost critic per
component, as ``per_constraint``; per-level groups share the combined cost's critic, and level
k's cost advantage (centred over its samples, 0 elsewhere) is scaled by ``n / n_k`` so that its
mean over the batch is its mean over the level's samples, the per-step units of its J_c (the
gradient of ``E[episode cost | level k]``). A level with no sample in a batch keeps its
multiplier.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from saferl.algos.buffer import RolloutBatch
from saferl.algos.common import ActorCritic, PreparedBatch, own_config
from saferl.algos.dist import all_reduce_sum_, global_mean
from saferl.algos.math import gaussian_kl
from saferl.algos.networks import GaussianActor
from saferl.config import AlgoConfig, ConfigError, PPOLagrangianConfig
from saferl.safety import ConstraintGroups, ConstraintSet

__all__ = ["PPOLagrangian"]


class PPOLagrangian(ActorCritic):
    """PPO-clip with Lagrange multiplier(s) on the cost.

    Args:
        observation_space, action_space: single-instance Box spaces of the env.
        config: hyperparameters (:class:`saferl.config.PPOLagrangianConfig`: ``actor_lr``,
            ``clip_ratio``, ``actor_epochs``, ``actor_minibatch``, ``entropy_coef``,
            ``lagrangian_lr``, ``lagrangian_init``, ``pid_kp``, ``pid_kd``, ``per_constraint``,
            ``kl_early_stop`` and the shared critic/GAE fields).
        cost_limit: per-episode limit ``d`` on the combined cost.
        seed, device: as for :class:`~saferl.algos.cpo.CPO`.
        constraint_names: the env's constraint names (required with ``per_constraint``).
        constraint_limits: per-constraint limits (``None`` entries use ``cost_limit``);
            default from ``constraints`` if given.
        constraints: the env's ``ConstraintSet`` (alternative to names and limits).
        lagrangian: ``False`` for plain PPO (multipliers fixed at 0).
        privileged_obs_dims: trailing observation dims only the critics read when
            ``config.asymmetric_critic`` (``from_env`` takes the env's ``privileged_obs_dims``).
    """

    def __init__(
        self,
        observation_space: Any,
        action_space: Any,
        config: AlgoConfig | None = None,
        *,
        cost_limit: float,
        seed: int = 0,
        device: str | torch.device = "cpu",
        constraint_names: Sequence[str] | None = None,
        constraint_limits: Sequence[float | None] | None = None,
        constraints: ConstraintSet | None = None,
        lagrangian: bool = True,
        privileged_obs_dims: int = 0,
        constraint_groups: ConstraintGroups | None = None,
    ) -> None:
        config = own_config(config, PPOLagrangianConfig)
        grouped = constraint_groups is not None and constraint_groups.grouped
        if grouped and config.per_constraint:
            raise ConfigError(
                "algo.per_constraint: env.constraints / env.constraint_groups already name the "
                "constraints; set per_constraint to false"
            )
        if constraints is not None:
            constraint_names = constraint_names or constraints.names
            if constraint_limits is None:
                constraint_limits = [c.limit for c in constraints]
        self.per_constraint = bool(config.per_constraint)
        if self.per_constraint:
            if not constraint_names:
                raise ValueError(
                    "algo.per_constraint=true needs the env's constraint names "
                    "(constraint_names= or constraints=)"
                )
            names = tuple(constraint_names)
            lims = list(constraint_limits) if constraint_limits is not None else [None] * len(names)
            if len(lims) != len(names):
                raise ValueError(f"{len(names)} constraint names but {len(lims)} limits")
            own_limits = [None if v is None else float(v) for v in lims]
        elif grouped:
            names = tuple(constraint_groups.names)
            own_limits = [None] * len(names)  # the groups' own limits (ActorCritic.group_limits)
        else:
            names = ("cost",)
            own_limits = [None]
        components = grouped and constraint_groups.kind == "components"
        super().__init__(
            observation_space,
            action_space,
            config,
            cost_limit=cost_limit,
            seed=seed,
            device=device,
            n_cost_heads=len(names) if self.per_constraint or components else 1,
            privileged_obs_dims=privileged_obs_dims,
            constraint_groups=constraint_groups,
        )
        self.constraint_names = names
        # None: follow self.cost_limit (which a schedule may change between updates)
        self._own_limits = own_limits
        self.lagrangian = bool(lagrangian)
        self.actor_optim = torch.optim.Adam(self.actor.parameters(), lr=config.actor_lr)
        k = len(names)
        ki = config.lagrangian_lr
        self.pid_integral = np.full(k, config.lagrangian_init / ki if self.lagrangian else 0.0)
        self.prev_cost = np.full(k, np.nan)
        self.multipliers = np.full(k, config.lagrangian_init if self.lagrangian else 0.0)

    config_model = PPOLagrangianConfig
    config: PPOLagrangianConfig

    SETTABLE = (
        *ActorCritic.SETTABLE,
        "clip_ratio",
        "entropy_coef",
        "lagrangian_lr",
        "kl_early_stop",
    )

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """``{"critic": ..., "actor": ...}``."""
        return {**super().optimizers(), "actor": self.actor_optim}

    def shrink_step(self, factor: float) -> list[str]:
        """A tighter KL early stop (times ``factor``, if set) and lower learning rates."""
        kl = [self._shrink_field("kl_early_stop", factor)] if self.config.kl_early_stop else []
        return [*kl, *super().shrink_step(factor)]

    @classmethod
    def from_env(
        cls, env: Any, config: AlgoConfig | None = None, seed: int = 0, **kwargs: Any
    ) -> PPOLagrangian:
        """Build for a batched env; limits and constraint names from ``env.constraints``."""
        constraints = getattr(env, "constraints", None)
        if kwargs.get("cost_limit") is None:
            if constraints is None:
                raise ValueError("the env declares no constraints: pass cost_limit")
            kwargs["cost_limit"] = constraints.get_limit()
        if constraints is not None:
            kwargs.setdefault("constraints", constraints)
        kwargs.setdefault("privileged_obs_dims", getattr(env, "privileged_obs_dims", 0))
        return cls(
            env.single_observation_space, env.single_action_space, config, seed=seed, **kwargs
        )

    @property
    def limits(self) -> np.ndarray:
        """Per-multiplier limits: a constraint's own limit, else the current ``cost_limit``."""
        if self.constraint_groups.grouped:
            return self.group_limits
        return np.asarray(
            [self.cost_limit if v is None else v for v in self._own_limits], np.float64
        )

    # ---------------------------------------------------------------------------------------
    def _cost_signal(self, batch: RolloutBatch) -> torch.Tensor:
        if not self.per_constraint:
            return super()._cost_signal(batch)
        return self._components(batch)

    def _components(self, batch: RolloutBatch) -> torch.Tensor:
        if batch.cost_components is None or tuple(batch.component_names) != self.constraint_names:
            raise ValueError(
                f"per-constraint PPO-Lagrangian needs cost components {self.constraint_names} "
                f"in the batch, got {tuple(batch.component_names)}"
            )
        return batch.cost_components

    def _episode_costs(self, batch: RolloutBatch) -> np.ndarray:
        if not self.per_constraint:
            return super()._episode_costs(batch)
        self._components(batch)
        return batch.ep_component_costs

    def _step_costs(self, batch: RolloutBatch) -> torch.Tensor:
        if not self.per_constraint:
            return super()._step_costs(batch)
        return self._components(batch)

    def update_multipliers(self, j_c: np.ndarray) -> None:
        """PID (or plain gradient-ascent) step of the multipliers from this batch's J_c."""
        if not self.lagrangian:
            return
        cfg = self.config
        measured = np.isfinite(j_c)  # an inactive level (no sample in the batch) stays as it is
        if not measured.all():
            keep = (self.pid_integral.copy(), self.prev_cost.copy(), self.multipliers.copy())
            j_c = np.where(measured, j_c, 0.0)
        err = j_c - self.limits
        self.pid_integral = np.maximum(0.0, self.pid_integral + err)
        deriv = np.where(np.isnan(self.prev_cost), 0.0, np.maximum(0.0, j_c - self.prev_cost))
        self.prev_cost = j_c.copy()
        self.multipliers = np.maximum(
            0.0, cfg.pid_kp * err + cfg.lagrangian_lr * self.pid_integral + cfg.pid_kd * deriv
        )
        if not measured.all():
            for new, old in zip(
                (self.pid_integral, self.prev_cost, self.multipliers), keep, strict=True
            ):
                new[~measured] = old[~measured]

    # ---------------------------------------------------------------------------------------
    def update(self, batch: RolloutBatch) -> dict[str, Any]:
        """Multiplier step, PPO-clip epochs on the actor, critic epochs; returns diagnostics."""
        t0 = time.perf_counter()
        data = self.prepare(batch)
        j_c, lengths, sources = self.group_costs(batch)
        self.update_multipliers(np.asarray(j_c, np.float64))
        grouped = self.constraint_groups.grouped
        ep_len = float(lengths[0]) if not grouped else float(np.nanmean(lengths))
        source = sources[0] if len(set(sources)) == 1 else "mixed"
        t_prep = time.perf_counter()
        info = self._actor_epochs(data)
        t_actor = time.perf_counter()
        info.update(self.update_critics(data))
        t_critic = time.perf_counter()
        self.obs_norm.update(batch.obs.reshape(-1, self.obs_dim).to(self.device))
        self.updates += 1
        info["J_c"] = float(j_c[0]) if len(j_c) == 1 else float(np.nanmax(j_c - self.limits))
        info["multiplier"] = float(self.multipliers.sum())
        if self.per_constraint or grouped:
            limits = self.limits
            for k, name in enumerate(self.constraint_names):
                info[f"J_c/{name}"] = float(j_c[k])
                info[f"multiplier/{name}"] = float(self.multipliers[k])
                if grouped:
                    info[f"cost_limit/{name}"] = float(limits[k])
        info.update(
            self._update_summary(
                batch, source=source, ep_len=ep_len, times=(t0, t_prep, t_actor, t_critic)
            )
        )
        return info

    def _actor_epochs(self, data: PreparedBatch) -> dict[str, Any]:
        cfg = self.config
        lam = torch.as_tensor(self.multipliers, dtype=torch.float32, device=self.device)
        # Same scale for both: the reward advantage was divided by its std, so divide the
        # (centred) cost advantages by that std too; lambda then keeps its natural units
        # (reward per unit of cost) instead of drifting with the reward advantage's spread.
        adv_c = data.adv_c / data.adv_r_std
        if data.group_counts is not None:  # per level: the mean over the level's samples
            n = data.group_counts.sum()
            scale = (n / data.group_counts.clamp_min(1.0)).float().to(self.device)
            adv_c = adv_c * scale
        adv = (data.adv_r - (adv_c * lam).sum(-1)) / (1.0 + lam.sum())
        # minibatches over the global samples; this rank steps on its rows of each
        B = data.global_size
        mb = min(cfg.actor_minibatch, B)
        params = list(self.actor.parameters())
        with torch.no_grad():
            mean_old, log_std_old = self.actor(data.obs)
            log_std_old = log_std_old.clone()
            logp_old = GaussianActor.log_prob(mean_old, log_std_old, data.actions)
        kl_stop = cfg.kl_early_stop
        n_steps, stopped = 0, False
        # (clipped share, loss) summed over steps as this rank's shares of minibatch means
        sums = torch.zeros(2, dtype=torch.float64)
        for _ in range(cfg.actor_epochs):
            if stopped:
                break
            perm = torch.randperm(B, generator=self.generator, device=self.device)
            for start in range(0, B - mb + 1, mb):
                idx = data.rows(perm[start : start + mb])
                n = int(idx.shape[0])
                mean, log_std = self.actor(data.obs[idx])
                if kl_stop is not None and n_steps > 0:
                    with torch.no_grad():
                        kl_mb = gaussian_kl(mean_old[idx], log_std_old, mean, log_std)
                    if float(global_mean(kl_mb)) > kl_stop:
                        stopped = True
                        break
                logp = GaussianActor.log_prob(mean, log_std, data.actions[idx])
                ratio = torch.exp(logp - logp_old[idx])
                a = adv[idx]
                clipped = ratio.clamp(1.0 - cfg.clip_ratio, 1.0 + cfg.clip_ratio)
                surrogate = -torch.min(ratio * a, clipped * a).sum() / max(n, 1)
                loss = surrogate - cfg.entropy_coef * GaussianActor.entropy(log_std)
                self._optimizer_step(self.actor_optim, loss, params, n)
                with torch.no_grad():
                    share = n / mb
                    sums[0] += float(((ratio - 1.0).abs() > cfg.clip_ratio).float().sum()) / mb
                    sums[1] += float(loss) * share
                n_steps += 1
        all_reduce_sum_(sums)
        clip_frac, loss_acc = float(sums[0]), float(sums[1])
        with torch.no_grad():
            mean, log_std = self.actor(data.obs)
            kl = float(global_mean(gaussian_kl(mean_old, log_std_old, mean, log_std)))
            ratio = torch.exp(GaussianActor.log_prob(mean, log_std, data.actions) - logp_old)
            d_surr_r = float(global_mean(ratio * data.adv_r - data.adv_r))
            d_surr_c = float(global_mean((ratio - 1.0) * data.adv_c.sum(-1)))
        return {
            "kl": kl,
            "d_surr_r": d_surr_r,
            "d_surr_c": d_surr_c,
            "loss_pi": loss_acc / max(n_steps, 1),
            "clip_fraction": clip_frac / max(n_steps, 1),
            "actor_steps": n_steps,
            "kl_early_stop": stopped,
        }

    # ---------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state.update(
            {
                "actor_optim": self.actor_optim.state_dict(),
                "pid_integral": torch.from_numpy(self.pid_integral.copy()),
                "prev_cost": torch.from_numpy(self.prev_cost.copy()),
                "multipliers": torch.from_numpy(self.multipliers.copy()),
            }
        )
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.actor_optim.load_state_dict(state["actor_optim"])
        self.pid_integral = np.asarray(state["pid_integral"], np.float64).copy()
        self.prev_cost = np.asarray(state["prev_cost"], np.float64).copy()
        self.multipliers = np.asarray(state["multipliers"], np.float64).copy()
