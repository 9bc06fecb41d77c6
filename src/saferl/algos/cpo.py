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
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from saferl.algos.buffer import RolloutBatch
from saferl.algos.common import ActorCritic, PreparedBatch, own_config
from saferl.algos.dist import global_mean, weighted_average_
from saferl.algos.math import (
    backtracking_line_search,
    conjugate_gradient,
    cpo_step,
    fisher_vector_product,
    flat_grad,
    flat_params,
    gaussian_kl,
    gaussian_mlp_fvp,
    set_flat_params_,
)
from saferl.algos.networks import GaussianActor
from saferl.config import AlgoConfig, CPOConfig

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
        constraint_names: accepted for a uniform constructor; CPO constrains the combined cost.
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
    ) -> None:
        super().__init__(
            observation_space,
            action_space,
            own_config(config, CPOConfig),
            cost_limit=cost_limit,
            seed=seed,
            device=device,
            n_cost_heads=1,
            privileged_obs_dims=privileged_obs_dims,
        )
        self.constraint_names = tuple(constraint_names or ())
        # Closed-form Fisher-vector product (exact for this actor); False: double backward.
        self.closed_form_fvp = bool(closed_form_fvp)
        #: integral tightening I of the cost target (episode-cost units; ``cost_target_gain``)
        self.cost_offset = 0.0
        #: whether the integral runs (from the first step that is not a recovery step)
        self.cost_offset_active = False

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

    def state_dict(self) -> dict[str, Any]:
        """:meth:`ActorCritic.state_dict` plus the cost-target offset."""
        return {
            **super().state_dict(),
            "cost_offset": self.cost_offset,
            "cost_offset_active": self.cost_offset_active,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict`; checkpoints from before ``cost_target_gain`` have no
        offset (0)."""
        super().load_state_dict(state)
        self.cost_offset = float(state.get("cost_offset", 0.0))
        self.cost_offset_active = bool(state.get("cost_offset_active", False))

    # ---------------------------------------------------------------------------------------
    def _actor_step(self, data: PreparedBatch, c: float) -> dict[str, Any]:
        cfg = self.config
        actor = self.actor
        params = list(actor.parameters())
        B = data.size
        adv_c = data.adv_c[:, 0]
        with torch.no_grad():
            mean_old, log_std_old = actor(data.obs)
            mean_old = mean_old.detach()
            log_std_old = log_std_old.detach().clone()
            logp_old = GaussianActor.log_prob(mean_old, log_std_old, data.actions)

        # Surrogate gradients g (reward, ascent) and b (cost) at ratio = 1.
        mean, log_std = actor(data.obs)
        ratio = torch.exp(GaussianActor.log_prob(mean, log_std, data.actions) - logp_old)
        surr_r = (ratio * data.adv_r).mean()
        surr_c = (ratio * adv_c).mean()
        g = weighted_average_(flat_grad(surr_r, params, retain_graph=True), B).double()
        b = weighted_average_(flat_grad(surr_c, params), B).double()

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
            # J^T diag(1/sigma^2) J by hand for both right-hand sides at once (docs/algorithms.md
            # section 4: the conjugate-gradient solves dominate the actor step; this is ~3x cheaper).
            fvp = gaussian_mlp_fvp(
                actor.mu, actor.log_std, actor.inputs(obs_sub), cfg.cg_damping, count=m_local
            )
            hinv = conjugate_gradient(fvp, torch.stack([g, b]), cfg.cg_iters)
            hinv_g, hinv_b = hinv[0], hinv[1]
        else:
            mean_sub, log_std_sub = actor(obs_sub)
            kl_sub = gaussian_kl(mean_old_sub, log_std_old, mean_sub, log_std_sub).sum()
            kl_sub = kl_sub / max(m_local, 1)  # the local mean (0 for no local states)
            fvp = fisher_vector_product(kl_sub, params, cfg.cg_damping, count=m_local)
            hinv_g = conjugate_gradient(fvp, g, cfg.cg_iters)
            hinv_b = conjugate_gradient(fvp, b, cfg.cg_iters)
        del fvp

        step = cpo_step(g, b, hinv_g, hinv_b, c, cfg.target_kl)
        x = step.x
        expected_r = float(g @ x)
        expected_c = float(b @ x)
        need_reward_gain = step.case != "recovery" and expected_r > 0
        cost_slack = max(-c, 0.0)
        surr_r0 = float(global_mean(surr_r.detach()))
        surr_c0 = float(global_mean(surr_c.detach()))

        @torch.no_grad()
        def evaluate() -> dict[str, float]:
            mu, ls = actor(data.obs)
            rt = torch.exp(GaussianActor.log_prob(mu, ls, data.actions) - logp_old)
            return {
                "kl": float(global_mean(gaussian_kl(mean_old, log_std_old, mu, ls))),
                "d_surr_r": float(global_mean(rt * data.adv_r)) - surr_r0,
                "d_surr_c": float(global_mean(rt * adv_c)) - surr_c0,
            }

        def accept(st: Mapping[str, float]) -> bool:
            return (
                st["kl"] <= cfg.target_kl
                and st["d_surr_c"] <= cost_slack
                and (st["d_surr_r"] > 0 or not need_reward_gain)
            )

        theta0 = flat_params(params)
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
            accepted, k, st = False, -1, {"kl": 0.0, "d_surr_r": 0.0, "d_surr_c": 0.0}
        if not accepted:
            st = {"kl": 0.0, "d_surr_r": 0.0, "d_surr_c": 0.0}  # parameters restored exactly
        return {
            "case": step.case,
            "case_code": step.case_code,
            "lambda": step.lam,
            "nu": step.nu,
            "q": step.q,
            "r": step.r,
            "s": step.s,
            "c": c,
            "B": step.B,
            "accepted": accepted,
            "backtrack_k": k,
            "step_fraction": cfg.backtrack_coeff**k if accepted else 0.0,
            "kl": st["kl"],
            "d_surr_r": st["d_surr_r"],
            "d_surr_c": st["d_surr_c"],
            "expected_d_surr_r": expected_r,
            "expected_d_surr_c": expected_c,
            "grad_norm_g": float(g.norm()),
            "grad_norm_b": float(b.norm()),
            "step_norm": float(x.norm()) if math.isfinite(float(x.norm())) else math.nan,
            "fvp_samples": m,
        }
