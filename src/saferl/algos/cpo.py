"""Constrained Policy Optimization (Achiam et al., ICML 2017), as specified in ``docs/algorithms.md``.

Per update:

1. GAE for reward and (combined) cost with separate critics; reward advantages standardised,
   cost advantages centred only.
2. ``g``, ``b``: gradients of the reward and cost surrogates ``mean[ratio * A]`` at the current
   policy (global over ranks).
3. ``H^-1 g``, ``H^-1 b`` by conjugate gradient with the Fisher-vector product of the mean KL
   (summed over action dims) on a random ``fvp_fraction`` subsample, plus ``cg_damping``.
4. ``c = (J_c - d) / T`` from the episodes finished in the batch (cost critic at episode starts
   if none finished; ``cost_estimate: rate``: the batch's cost per step times T); with
   ``cost_target_gain`` > 0, ``d`` is lowered by an integral offset (see ``AlgoConfig``);
   :func:`saferl.algos.math.cpo_step` gives the step and its case.
5. Backtracking line search: accept the first ``beta^k x`` with mean KL <= delta, cost surrogate
   rise <= max(-c, 0), and reward-surrogate improvement (except in recovery, and except where
   the step itself predicts none, see ``docs/algorithms.md``); otherwise restore exactly.
6. Critics: Adam, minibatched, several epochs. Observation normaliser: merged with the batch.

With several constraints (``constraint_groups``: one per impairment level or per cost
component) every group k has its own J_c,k, T_k, ``c_k = (J_c,k - d_k) / T_k`` and cost-surrogate
gradient ``b_k`` (the mean over the group's samples of ``ratio * A_c``, its cost advantages
centred over those samples); :func:`saferl.algos.math.cpo_step_multi` gives the step (with one
active group it is ``cpo_step``), and the line search checks every group's surrogate cost. A
level with no sample in the batch is inactive for that update (left out of the step).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from saferl.algos.buffer import RolloutBatch
from saferl.algos.common import ActorCritic, PreparedBatch, own_config
from saferl.algos.dist import global_mean, global_sum, weighted_average_
from saferl.algos.math import (
    backtracking_line_search,
    conjugate_gradient,
    cpo_step,
    cpo_step_multi,
    fisher_vector_product,
    flat_grad,
    flat_params,
    gaussian_kl,
    gaussian_mlp_fvp,
    set_flat_params_,
)
from saferl.algos.networks import GaussianActor
from saferl.config import AlgoConfig, CPOConfig
from saferl.safety import ConstraintGroups

__all__ = ["CPO"]


class CPO(ActorCritic):
    """CPO on the combined per-step cost ``info["cost"]``.

    Args:
        observation_space, action_space: single-instance Box spaces of the env.
        config: hyperparameters (:class:`saferl.config.CPOConfig`; a shared-fields
            ``AlgoConfig`` is completed with CPO's defaults): network sizes, GAE, critics,
            ``target_kl`` (delta), ``cg_iters``, ``cg_damping``, ``fvp_fraction``,
            ``backtrack_coeff``, ``backtrack_iters``.
        cost_limit: per-episode limit ``d`` on the combined cost (undiscounted, summed).
        seed: seeds network initialisation and the algorithm's generator.
        device: torch device.
        constraint_names: accepted for a uniform constructor (the constraints are
            ``constraint_groups``).
        constraint_groups: several constraints (:class:`saferl.safety.ConstraintGroups`: one per
            impairment level or per cost component, each with its own limit); default: the
            combined cost with limit ``cost_limit``.
        closed_form_fvp: use :func:`~saferl.algos.math.gaussian_mlp_fvp` (exact, faster)
            instead of the generic double-backward Fisher-vector product.
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
        closed_form_fvp: bool = True,
        privileged_obs_dims: int = 0,
        constraint_groups: ConstraintGroups | None = None,
    ) -> None:
        config = own_config(config, CPOConfig)
        grouped = constraint_groups is not None and constraint_groups.grouped
        components = grouped and constraint_groups.kind == "components"
        super().__init__(
            observation_space,
            action_space,
            config,
            cost_limit=cost_limit,
            seed=seed,
            device=device,
            n_cost_heads=len(constraint_groups) if components else 1,
            privileged_obs_dims=privileged_obs_dims,
            constraint_groups=constraint_groups,
        )
        self.constraint_names = tuple(constraint_names or ())
        # Closed-form Fisher-vector product (exact for this actor); False: double backward.
        self.closed_form_fvp = bool(closed_form_fvp)
        #: integral tightening I of the cost target (episode-cost units; ``cost_target_gain``)
        self.cost_offset = 0.0
        #: whether the integral runs (from the first step that is not a recovery step)
        self.cost_offset_active = False
        m = len(self.constraint_groups)
        #: with several constraint groups: one integral I_k per group, and whether it runs
        self.group_cost_offsets = np.zeros(m, np.float64)
        self.group_cost_offsets_active = np.zeros(m, bool)

    @classmethod
    def from_env(
        cls, env: Any, config: AlgoConfig | None = None, seed: int = 0, **kwargs: Any
    ) -> CPO:
        """Build for a batched env; ``cost_limit`` defaults to ``env.constraints.limit``."""
        constraints = getattr(env, "constraints", None)
        if kwargs.get("cost_limit") is None:
            if constraints is None:
                raise ValueError("the env declares no constraints: pass cost_limit")
            kwargs["cost_limit"] = constraints.get_limit()
        names = tuple(constraints.names) if constraints is not None else None
        kwargs.setdefault("constraint_names", names)
        kwargs.setdefault("privileged_obs_dims", getattr(env, "privileged_obs_dims", 0))
        return cls(
            env.single_observation_space, env.single_action_space, config, seed=seed, **kwargs
        )

    config_model = CPOConfig
    config: CPOConfig

    SETTABLE = (
        *ActorCritic.SETTABLE,
        "target_kl",
        "cg_damping",
        "fvp_fraction",
        "cost_target_gain",
        "backtrack_coeff",
    )

    def shrink_step(self, factor: float) -> list[str]:
        """A smaller trust region (``target_kl`` times ``factor``) and critic learning rate."""
        return [self._shrink_field("target_kl", factor), *super().shrink_step(factor)]

    # ---------------------------------------------------------------------------------------
    def update(self, batch: RolloutBatch) -> dict[str, Any]:
        """One CPO update on a batch; returns the diagnostics (see ``docs/algorithms.md``)."""
        t0 = time.perf_counter()
        data = self.prepare(batch)
        if self.constraint_groups.grouped:
            return self._update_groups(batch, data, t0)
        j_c, ep_len, source = self.episode_cost(batch)
        j_c = float(j_c[0])
        target = self.cost_limit - min(self.cost_offset, 0.5 * self.cost_limit)
        c = (j_c - target) / ep_len
        t_prep = time.perf_counter()
        info = self._actor_step(data, c)
        info["cost_target"] = target
        self._integrate_cost_offset(j_c, info["case"], source)
        t_actor = time.perf_counter()
        info.update(self.update_critics(data))
        t_critic = time.perf_counter()
        self.obs_norm.update(batch.obs.reshape(-1, self.obs_dim).to(self.device))
        self.updates += 1
        info["J_c"] = j_c
        info.update(
            self._update_summary(
                batch, source=source, ep_len=ep_len, times=(t0, t_prep, t_actor, t_critic)
            )
        )
        return info

    def _update_groups(self, batch: RolloutBatch, data: PreparedBatch, t0: float) -> dict[str, Any]:
        """:meth:`update` with several constraint groups (one per level or component)."""
        j, lengths, sources = self.group_costs(batch)
        limits = self.group_limits
        targets = limits - np.minimum(self.group_cost_offsets, 0.5 * limits)
        c = (j - targets) / lengths  # NaN for an inactive group
        t_prep = time.perf_counter()
        info = self._actor_step(data, c)
        self._integrate_group_cost_offsets(j, limits, info["case"], sources)
        t_actor = time.perf_counter()
        info.update(self.update_critics(data))
        t_critic = time.perf_counter()
        self.obs_norm.update(batch.obs.reshape(-1, self.obs_dim).to(self.device))
        self.updates += 1
        active = np.isfinite(c)
        worst = int(np.argmax(np.where(active, c, -np.inf))) if active.any() else 0
        info["J_c"] = float(j[worst])
        for k, name in enumerate(self.constraint_groups.names):
            info[f"J_c/{name}"] = float(j[k])
            info[f"J_c_source/{name}"] = sources[k]
            info[f"cost_limit/{name}"] = float(limits[k])
            info[f"cost_target/{name}"] = float(targets[k])
        source = "episodes" if all(x == "episodes" for x in sources) else "mixed"
        ep_len = float(np.nanmean(lengths)) if active.any() else math.nan
        info.update(
            self._update_summary(
                batch, source=source, ep_len=ep_len, times=(t0, t_prep, t_actor, t_critic)
            )
        )
        return info

    def _integrate_cost_offset(self, j_c: float, case: str, source: str) -> None:
        """``I <- clip(I + k_i clip(J_c - d, -d/2, d/2), 0, d/2)`` from the first update whose
        step is not a recovery step, on every update whose J_c is measured (not the critic's
        fallback)."""
        gain = self.config.cost_target_gain
        if gain <= 0 or source == "critic":
            return
        if not self.cost_offset_active:
            self.cost_offset_active = case != "recovery"
        if self.cost_offset_active:
            half = 0.5 * self.cost_limit
            err = min(max(j_c - self.cost_limit, -half), half)
            self.cost_offset = min(max(self.cost_offset + gain * err, 0.0), half)

    def _integrate_group_cost_offsets(
        self, j_c: np.ndarray, limits: np.ndarray, case: str, sources: Sequence[str]
    ) -> None:
        """:meth:`_integrate_cost_offset` for each constraint group on its own J_c,k and limit
        d_k (the same rule, in the same floating-point operations); a group whose J_c,k is not
        measured this update (inactive: no sample; or the critic's fallback) is left as it is."""
        gain = self.config.cost_target_gain
        if gain <= 0:
            return
        offsets, running = self.group_cost_offsets, self.group_cost_offsets_active
        for k in range(len(offsets)):
            if sources[k] != "episodes":
                continue
            if not running[k]:
                running[k] = case != "recovery"
            if running[k]:
                limit = float(limits[k])
                half = 0.5 * limit
                err = min(max(float(j_c[k]) - limit, -half), half)
                offsets[k] = min(max(float(offsets[k]) + gain * err, 0.0), half)

    def state_dict(self) -> dict[str, Any]:
        """:meth:`ActorCritic.state_dict` plus the cost-target offset (one per constraint group
        with several)."""
        out = {
            **super().state_dict(),
            "cost_offset": self.cost_offset,
            "cost_offset_active": self.cost_offset_active,
        }
        if self.constraint_groups.grouped:
            out["group_cost_offsets"] = [float(v) for v in self.group_cost_offsets]
            out["group_cost_offsets_active"] = [bool(v) for v in self.group_cost_offsets_active]
        return out

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict`; checkpoints from before ``cost_target_gain`` have no
        offset (0)."""
        super().load_state_dict(state)
        self.cost_offset = float(state.get("cost_offset", 0.0))
        self.cost_offset_active = bool(state.get("cost_offset_active", False))
        m = len(self.constraint_groups)
        offsets = state.get("group_cost_offsets", [0.0] * m)
        running = state.get("group_cost_offsets_active", [False] * m)
        if len(offsets) != m or len(running) != m:
            raise ValueError(
                f"the checkpoint's cost-target offsets are for {len(offsets)} constraint groups, "
                f"this algorithm has {m}"
            )
        self.group_cost_offsets = np.asarray(offsets, np.float64).copy()
        self.group_cost_offsets_active = np.asarray(running, bool).copy()

    # ---------------------------------------------------------------------------------------
    def _actor_step(self, data: PreparedBatch, c: float | np.ndarray) -> dict[str, Any]:
        """The actor's CPO step for one constraint (``c`` a number) or several (``c`` one
        value per group; NaN: the group is inactive in this update)."""
        cfg = self.config
        actor = self.actor
        params = list(actor.parameters())
        B = data.size
        grouped = not isinstance(c, float)
        cs = np.asarray(c, np.float64).reshape(-1)
        names = self.constraint_groups.names if grouped else ("cost",)
        active = [k for k in range(len(cs)) if math.isfinite(cs[k])]
        mask = data.group_mask
        with torch.no_grad():
            mean_old, log_std_old = actor(data.obs)
            mean_old = mean_old.detach()
            log_std_old = log_std_old.detach().clone()
            logp_old = GaussianActor.log_prob(mean_old, log_std_old, data.actions)

        # Surrogate gradients g (reward, ascent) and b_k (cost of group k) at ratio = 1; b_k is
        # the mean over group k's samples (every sample unless the groups are levels).
        mean, log_std = actor(data.obs)
        ratio = torch.exp(GaussianActor.log_prob(mean, log_std, data.actions) - logp_old)
        surr_r = (ratio * data.adv_r).mean()
        g = weighted_average_(flat_grad(surr_r, params, retain_graph=True), B).double()
        counts = [B] * len(cs)
        if mask is not None:
            counts = [int(mask[:, k].sum()) for k in range(len(cs))]
        surr_c: dict[int, torch.Tensor] = {}
        bs: list[torch.Tensor] = []
        for i, k in enumerate(active):
            adv_k = data.adv_c[:, k]
            surr = (
                (ratio * adv_k).mean()
                if mask is None
                else (ratio * adv_k).sum() / max(counts[k], 1)
            )
            surr_c[k] = surr
            last = i == len(active) - 1
            bs.append(weighted_average_(flat_grad(surr, params, retain_graph=not last), counts[k]))
        bs = [b.double() for b in bs]

        # Fisher-vector products on a random subsample of the states (drawn over the global
        # samples; this rank holds m_local of them).
        n_all = data.global_size
        m = max(1, min(n_all, round(cfg.fvp_fraction * n_all)))
        if m < n_all:
            perm = torch.randperm(n_all, generator=self.generator, device=self.device)
            idx = data.rows(perm[:m])
            obs_sub, mean_old_sub = data.obs[idx], mean_old[idx]
        else:
            obs_sub, mean_old_sub = data.obs, mean_old
        m_local = int(obs_sub.shape[0])
        if self.closed_form_fvp:
            # J^T diag(1/sigma^2) J by hand for all right-hand sides at once (docs/algorithms.md
            # section 4: the conjugate-gradient solves dominate the actor step; this is ~3x cheaper).
            fvp = gaussian_mlp_fvp(
                actor.mu, actor.log_std, actor.inputs(obs_sub), cfg.cg_damping, count=m_local
            )
            hinv = conjugate_gradient(fvp, torch.stack([g, *bs]), cfg.cg_iters)
            hinv_g, hinv_bs = hinv[0], list(hinv[1:])
        else:
            mean_sub, log_std_sub = actor(obs_sub)
            kl_sub = gaussian_kl(mean_old_sub, log_std_old, mean_sub, log_std_sub).sum()
            kl_sub = kl_sub / max(m_local, 1)  # the local mean (0 for no local states)
            fvp = fisher_vector_product(kl_sub, params, cfg.cg_damping, count=m_local)
            hinv_g = conjugate_gradient(fvp, g, cfg.cg_iters)
            hinv_bs = [conjugate_gradient(fvp, b, cfg.cg_iters) for b in bs]
        del fvp

        multi = None
        if len(active) == 1:  # cpo_step_multi with m = 1 is this closed form (tested)
            step = cpo_step(g, bs[0], hinv_g, hinv_bs[0], float(cs[active[0]]), cfg.target_kl)
        else:
            zeros = torch.zeros(len(g), 0, dtype=torch.float64, device=g.device)
            B_ = torch.stack(bs, 1) if bs else zeros
            HB = torch.stack(hinv_bs, 1) if bs else zeros
            step = multi = cpo_step_multi(g, B_, hinv_g, HB, cs[active], cfg.target_kl)
        x = step.x
        expected_r = float(g @ x)
        expected_cs = {k: float(bs[i] @ x) for i, k in enumerate(active)}
        need_reward_gain = step.case != "recovery" and expected_r > 0
        slack = {k: max(-float(cs[k]), 0.0) for k in active}
        surr_r0 = float(global_mean(surr_r.detach()))
        if mask is None:
            surr_c0 = {k: float(global_mean(v.detach())) for k, v in surr_c.items()}
        else:
            surr_c0 = {k: self._group_mean(ratio.detach() * data.adv_c[:, k], data, k)
                       for k in active}  # fmt: skip
        keys = {k: "d_surr_c" if not grouped else f"d_surr_c/{names[k]}" for k in active}

        @torch.no_grad()
        def evaluate() -> dict[str, float]:
            mu, ls = actor(data.obs)
            rt = torch.exp(GaussianActor.log_prob(mu, ls, data.actions) - logp_old)
            out = {
                "kl": float(global_mean(gaussian_kl(mean_old, log_std_old, mu, ls))),
                "d_surr_r": float(global_mean(rt * data.adv_r)) - surr_r0,
            }
            for k in active:
                if mask is None:
                    out[keys[k]] = float(global_mean(rt * data.adv_c[:, k])) - surr_c0[k]
                else:
                    out[keys[k]] = self._group_mean(rt * data.adv_c[:, k], data, k) - surr_c0[k]
            return out

        def accept(st: Mapping[str, float]) -> bool:
            return (
                st["kl"] <= cfg.target_kl
                and all(st[keys[k]] <= slack[k] for k in active)
                and (st["d_surr_r"] > 0 or not need_reward_gain)
            )

        theta0 = flat_params(params)
        restored = {"kl": 0.0, "d_surr_r": 0.0, **{keys[k]: 0.0 for k in active}}
        if torch.isfinite(x).all() and x.abs().sum() > 0:
            ls_res = backtracking_line_search(
                lambda th: set_flat_params_(params, th),
                theta0,
                x.to(theta0.dtype),
                evaluate,
                accept,
                cfg.backtrack_coeff,
                cfg.backtrack_iters,
            )
            accepted, k, st = ls_res.accepted, ls_res.k, dict(ls_res.stats)
        else:
            accepted, k, st = False, -1, dict(restored)
        if not accepted:
            st = dict(restored)  # parameters restored exactly
        info: dict[str, Any] = {
            "case": step.case,
            "case_code": step.case_code,
            "lambda": step.lam,
        }
        if multi is None:
            info.update({"nu": step.nu, "q": step.q, "r": step.r, "s": step.s})
            k0 = active[0]
            info.update({"c": float(cs[k0]) if grouped else c, "B": step.B})
        else:
            nus = np.asarray(multi.nu, np.float64)
            info.update({"nu": float(np.nansum(nus)) if len(nus) else 0.0, "q": multi.q})
            info.update({"r": math.nan, "s": math.nan, "B": math.nan})
            info["c"] = float(np.max(cs[active])) if active else math.nan
        d_surr_c = [st[keys[k]] for k in active]
        info.update(
            {
                "accepted": accepted,
                "backtrack_k": k,
                "step_fraction": cfg.backtrack_coeff**k if accepted else 0.0,
                "kl": st["kl"],
                "d_surr_r": st["d_surr_r"],
                "d_surr_c": max(d_surr_c) if d_surr_c else 0.0,
                "expected_d_surr_r": expected_r,
                "expected_d_surr_c": max(expected_cs.values()) if expected_cs else 0.0,
                "grad_norm_g": float(g.norm()),
                "grad_norm_b": max((float(b.norm()) for b in bs), default=0.0),
                "step_norm": float(x.norm()) if math.isfinite(float(x.norm())) else math.nan,
                "fvp_samples": m,
            }
        )
        if grouped:
            info["active_constraints"] = len(active)
            for i, name in enumerate(names):
                on = i in expected_cs
                info[f"c/{name}"] = float(cs[i])
                info[f"d_surr_c/{name}"] = st[keys[i]] if on else math.nan
                if multi is not None and on:
                    info[f"nu/{name}"] = float(multi.nu[active.index(i)])
                elif on:
                    info[f"nu/{name}"] = float(step.nu)
                else:
                    info[f"nu/{name}"] = math.nan
                # which groups drive a recovery step: the weights of the worst-violation
                # combination it lowers (sum 1; one active group: 1); NaN outside recovery
                weight = math.nan
                if step.case == "recovery" and on:
                    weight = 1.0 if multi is None else float(multi.weights[active.index(i)])
                info[f"recovery_weight/{name}"] = weight
        return info

    @staticmethod
    def _group_mean(values: torch.Tensor, data: PreparedBatch, k: int) -> float:
        """Mean of ``values`` (0 outside group ``k``) over group k's samples on every rank."""
        total, _ = global_sum(values)
        assert data.group_counts is not None
        return float(total / data.group_counts[k].clamp_min(1.0))
