"""Per-level constraints on two gloo ranks: 2 ranks x 4 wheelchair instances take the same
updates as 1 process x 8 instances (the harness of ``test_distributed.py``). Every per-level
statistic goes through saferl.algos.dist: each level's J_c and episode length (finished
episodes, or the cost critic at the level's episode starts), the level-centred cost
advantages and each level's sample count, the per-level surrogate costs of the line search."""

from __future__ import annotations

import os
import tempfile

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from test_distributed import K_UPDATES, N_LOCAL, STEPS_PER_ENV, TOLERANCE, _flat, _rank_worker

from saferl.algos.buffer import RolloutCollector
from saferl.algos.cpo import CPO
from saferl.algos.ppo_lagrangian import PPOLagrangian
from saferl.config import CPOConfig, PPOLagrangianConfig
from saferl.safety import ConstraintGroups

#: short episodes (the env truncates them), so that some levels finish episodes in a batch and
#: others fall back on the cost critic: both estimates are all-reduced
EPISODE_STEPS = 20
LEVELS = ("none", "mild", "moderate", "severe")
#: per-level limits (different, so that a level compared with another's limit would show)
LIMITS = (2.0, 2.0, 1.0, 0.5)


def _algo(name: str, env):
    groups = ConstraintGroups.levels("impairment", LEVELS, LIMITS)
    common = {"hidden_sizes": [16, 16], "critic_minibatch": 48, "critic_epochs": 2}
    if name == "cpo":
        cfg = CPOConfig(**common, fvp_fraction=0.5, cg_damping=0.2, cost_target_gain=0.1)
        return CPO.from_env(env, cfg, seed=0, constraint_groups=groups)
    cfg = PPOLagrangianConfig(**common, actor_minibatch=64, actor_epochs=2, kl_early_stop=0.02)
    return PPOLagrangian.from_env(env, cfg, seed=0, constraint_groups=groups)


def _train(name: str, n_envs: int, offset: int = 0) -> tuple[list[torch.Tensor], list[dict]]:
    """K updates on real wheelchair rollouts with per-level constraints; the flat parameters
    after each, and the per-level diagnostics."""
    from saferl.registry import ENVS

    env = ENVS.get("WheelchairSC-v0")(num_envs=n_envs, instance_offset=offset)
    env.max_episode_steps = EPISODE_STEPS
    algo = _algo(name, env)
    col = RolloutCollector(env, algo, STEPS_PER_ENV, seed=5, instance_offset=offset)
    params, diags = [], []
    for _ in range(K_UPDATES):
        info = algo.update(col.collect())
        params.append(_flat(algo).clone())
        diags.append({k: v for k, v in info.items() if k.startswith(("J_c", "case"))})
    return params, diags


@pytest.mark.skipif(not dist.is_available(), reason="torch.distributed unavailable")
def test_two_ranks_with_per_level_constraints_equal_one_process_on_all_instances():
    torch.set_num_threads(1)
    single = {name: _train(name, 2 * N_LOCAL) for name in ("cpo", "ppo_lagrangian")}
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "ranks.pt")
        mp.spawn(_rank_worker, args=(os.path.join(tmp, "init"), out, _train), nprocs=2, join=True)
        res = torch.load(out, weights_only=False)
    # both estimates of J_c were in play: finished episodes for some levels, the critic for others
    sources = {d[f"J_c_source/{lv}"] for d in single["cpo"][1] for lv in LEVELS}
    assert {"episodes", "critic"} <= sources
    for name, (rtol, atol) in TOLERANCE.items():
        (p0, d0), (p1, d1) = res[name]
        p_single, d_single = single[name]
        for k in range(K_UPDATES):
            # every rank holds the same weights after every update, bit for bit
            assert torch.equal(p0[k], p1[k]) and repr(d0[k]) == repr(d1[k]), (name, k)
            torch.testing.assert_close(p0[k], p_single[k], rtol=rtol, atol=atol)
            assert d0[k].keys() == d_single[k].keys()
            for key, value in d_single[k].items():
                if isinstance(value, str):
                    assert d0[k][key] == value, (name, k, key)
                else:  # per-level J_c: the same episodes, summed in another order
                    assert d0[k][key] == pytest.approx(value, rel=1e-5, nan_ok=True), (name, k, key)
