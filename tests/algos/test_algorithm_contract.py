"""CPO and PPO-Lagrangian implement saferl.algos.base.Algorithm: named optimisers, named settable
hyperparameters validated against their config fields, and their own step-shrink rule."""

from __future__ import annotations

import pytest
import torch
from cmdp import GaussianBanditCMDP

from saferl.algos import CPO, PPOLagrangian
from saferl.algos.base import Algorithm, HyperparameterError
from saferl.algos.buffer import RolloutCollector
from saferl.config import AlgoConfig, CPOConfig, PPOLagrangianConfig

FAST = {"critic_epochs": 1, "critic_minibatch": 256}


def _make(cls, config=None):
    return cls.from_env(GaussianBanditCMDP(16, 2, 1.0), config, seed=0)


@pytest.mark.parametrize("cls", [CPO, PPOLagrangian])
def test_both_algorithms_satisfy_the_protocol(cls):
    assert isinstance(_make(cls), Algorithm)


def test_optimizers_are_named():
    cpo, ppo = _make(CPO), _make(PPOLagrangian)
    assert cpo.optimizers() == {"critic": cpo.critic_optim}
    assert ppo.optimizers() == {"critic": ppo.critic_optim, "actor": ppo.actor_optim}


def test_hyperparameters_are_read_and_set_through_the_algorithms_own_config_copy():
    given = CPOConfig(**FAST)
    algo = _make(CPO, given)
    hp = algo.hyperparameters()
    assert hp["target_kl"] == given.target_kl and hp["cost_limit"] == 1.0
    algo.set_hyperparameter("target_kl", 0.02)
    algo.set_hyperparameter("cost_limit", 3.0)
    assert algo.config.target_kl == 0.02 and algo.cost_limit == 3.0
    assert given.target_kl == 0.01  # the caller's config is not changed
    with pytest.raises(HyperparameterError, match="no settable hyperparameter 'hidden_sizes'"):
        algo.set_hyperparameter("hidden_sizes", 3)
    with pytest.raises(ValueError, match="target_kl"):
        algo.set_hyperparameter("target_kl", -1.0)
    with pytest.raises(ValueError, match="cost_limit"):
        algo.set_hyperparameter("cost_limit", float("inf"))
    assert "kl_early_stop" in _make(PPOLagrangian).hyperparameters()
    assert "target_kl" not in _make(PPOLagrangian).hyperparameters()


def test_shrink_step_is_each_algorithms_own_rule():
    cpo = _make(CPO)
    cpo.shrink_step(0.5)
    assert cpo.config.target_kl == pytest.approx(0.005)
    assert cpo.critic_optim.param_groups[0]["lr"] == pytest.approx(0.5e-3)
    ppo = _make(PPOLagrangian)
    ppo.shrink_step(0.5)
    assert ppo.config.kl_early_stop == pytest.approx(0.0075)
    assert ppo.actor_optim.param_groups[0]["lr"] == pytest.approx(1.5e-4)
    never = _make(PPOLagrangian, PPOLagrangianConfig(kl_early_stop=None))
    assert never.shrink_step(0.5) == ["critic lr x0.5", "actor lr x0.5"]


def test_ppo_lagrangian_kl_early_stop_is_its_own_field():
    def actor_steps(kl_early_stop):
        env = GaussianBanditCMDP(16, 2, 1.0)
        cfg = PPOLagrangianConfig(
            **FAST, actor_lr=0.05, actor_minibatch=64, kl_early_stop=kl_early_stop
        )
        algo = PPOLagrangian.from_env(env, cfg, seed=0)
        batch = RolloutCollector(env, algo, steps_per_env=16, seed=0).collect()
        return algo.update(batch)

    tight, never = actor_steps(1e-9), actor_steps(None)
    assert tight["kl_early_stop"] and tight["actor_steps"] == 1
    assert not never["kl_early_stop"] and never["actor_steps"] == 10 * (256 // 64)


def test_a_shared_fields_config_is_completed_and_another_algorithms_is_refused():
    algo = _make(CPO, AlgoConfig(critic_lr=0.5))
    assert isinstance(algo.config, CPOConfig) and algo.config.critic_lr == 0.5
    with pytest.raises(TypeError, match="CPOConfig expected, got PPOLagrangianConfig"):
        _make(CPO, PPOLagrangianConfig())
    assert torch.is_tensor(algo.actor.log_std)
