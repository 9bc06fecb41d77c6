"""Several constraints in CPO and PPO-Lagrangian: one per level of a per-episode variable read
from ``info`` (e.g. the impairment level) or one per cost component, each with its own limit."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
import torch
from cmdp import GaussianBanditCMDP, LevelBanditCMDP

from saferl.algos.buffer import RolloutCollector
from saferl.algos.common import estimate_level_costs
from saferl.algos.cpo import CPO
from saferl.algos.learn import learn
from saferl.algos.ppo_lagrangian import PPOLagrangian
from saferl.config import AlgoConfig, ConfigError, CPOConfig, PPOLagrangianConfig
from saferl.safety import ConstraintGroups

FAST = {"critic_epochs": 5, "critic_minibatch": 512}
LEVELS = ("light", "heavy")


def _levels(light: float = 1.0, heavy: float = 1.0) -> ConstraintGroups:
    return ConstraintGroups.levels("level", LEVELS, (light, heavy))


def _params(algo) -> list[torch.Tensor]:
    return [
        t.clone() for t in [*algo.actor.state_dict().values(), *algo.critics.state_dict().values()]
    ]


def _second_moment(algo) -> float:
    """E[sum(a^2)] of the bandit policy (constant observation)."""
    with torch.no_grad():
        mean, log_std = algo.actor(algo.obs_norm.normalize(torch.ones(1, 2)))
        return float((mean[0] ** 2 + log_std.exp() ** 2).sum().detach())


# ------------------------------------------------------------------------------------------
# One code path: a single group is today's single-constraint CPO, bit for bit
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("algo_cls", "cfg"),
    [
        (CPO, CPOConfig(**FAST)),
        (PPOLagrangian, PPOLagrangianConfig(**FAST, actor_minibatch=256)),
    ],
)
def test_one_group_through_the_grouped_path_is_bit_identical_to_the_single_constraint(
    algo_cls, cfg
):
    # The bandit's one component "energy" is its combined cost: a per-component constraint on
    # it is the same problem, solved by the grouped code path (J_c per group, c as a vector,
    # the group loop for b and the line search) instead of the single-constraint one.
    def run(groups):
        env = GaussianBanditCMDP(32, 2, limit=0.4, noise=0.3)
        algo = algo_cls.from_env(env, cfg, seed=3, constraint_groups=groups)
        hist = learn(env, algo, total_steps=32 * 8 * 5, steps_per_epoch=32 * 8)
        return algo, hist

    plain, h_plain = run(None)
    one, h_one = run(ConstraintGroups.components(["energy"], [0.4]))
    assert one.constraint_groups.grouped and not plain.constraint_groups.grouped
    for a, b in zip(_params(plain), _params(one), strict=True):
        assert torch.equal(a, b)
    for a, b in zip(h_plain, h_one, strict=True):
        assert a["kl"] == b["kl"] and a["J_c"] == b["J_c"]
        if algo_cls is CPO:
            assert a["case"] == b["case"] and a["c"] == b["c"] == b["c/energy"]
    if algo_cls is CPO:  # the run went through both signs of c
        assert {h["case"] for h in h_plain} & {"recovery", "both_active"}


def test_one_group_with_the_cost_target_integrates_bit_identically_to_the_single_constraint():
    # cost_target_gain: each group has its own integral I_k; with one group it is the single
    # constraint's I, bit for bit, and so are the steps it shifts (the aim d - I).
    cfg = CPOConfig(**FAST, cost_target_gain=0.5)

    def run(groups):
        env = GaussianBanditCMDP(32, 2, limit=0.4, noise=0.3)
        algo = CPO.from_env(env, cfg, seed=3, constraint_groups=groups)
        offsets = []
        for _ in range(12):
            learn(env, algo, total_steps=32 * 8, steps_per_epoch=32 * 8)
            offsets.append(
                algo.cost_offset if groups is None else float(algo.group_cost_offsets[0])
            )
        return algo, offsets

    plain, i_plain = run(None)
    one, i_one = run(ConstraintGroups.components(["energy"], [0.4]))
    assert i_plain == i_one and max(i_plain) > 0  # the integral ran
    assert one.cost_offset == 0.0  # the grouped path keeps its own integrals only
    for a, b in zip(_params(plain), _params(one), strict=True):
        assert torch.equal(a, b)


def test_each_levels_cost_target_integrates_its_own_excess_and_an_inactive_level_keeps_it():
    env = LevelBanditCMDP(64, 2, 1.0)
    cfg = CPOConfig(**FAST, cost_target_gain=0.2)
    algo = CPO.from_env(env, cfg, seed=0, constraint_groups=_levels(1.0, 0.5))
    col = RolloutCollector(env, algo, steps_per_env=8, seed=0)
    batch = col.collect()
    algo.group_cost_offsets_active[:] = True
    algo.group_cost_offsets[:] = [0.1, 0.2]
    j, _, _ = algo.group_costs(batch)
    info = algo.update(batch)
    # the rule of the single constraint, per level: I + k_i clip(J_c - d, -d/2, d/2), in [0, d/2]
    for k, (lim, start) in enumerate([(1.0, 0.1), (0.5, 0.2)]):
        expect = min(max(start + 0.2 * min(max(j[k] - lim, -lim / 2), lim / 2), 0.0), lim / 2)
        assert algo.group_cost_offsets[k] == expect
    assert info["cost_target/light"] == 1.0 - 0.1 and info["cost_target/heavy"] == 0.5 - 0.2
    # a batch of light episodes only: heavy is inactive and its integral stays where it was
    env.probs = (1.0, 0.0)
    col.collect()  # flush the episodes drawn before the change
    algo.group_cost_offsets[0] = 0.3
    before = algo.group_cost_offsets.copy()
    batch = col.collect()
    j, _, _ = algo.group_costs(batch)
    info = algo.update(batch)
    assert math.isnan(info["J_c/heavy"]) and j[0] < 1.0
    assert algo.group_cost_offsets[1] == before[1]
    assert algo.group_cost_offsets[0] == max(0.3 + 0.2 * max(j[0] - 1.0, -0.5), 0.0) < 0.3
    state = algo.state_dict()
    again = CPO.from_env(env, cfg, seed=1, constraint_groups=_levels(1.0, 0.5))
    again.load_state_dict(state)
    np.testing.assert_array_equal(again.group_cost_offsets, algo.group_cost_offsets)
    assert list(again.group_cost_offsets_active) == [True, True]


# ------------------------------------------------------------------------------------------
# Per-level constraints
# ------------------------------------------------------------------------------------------
def test_per_level_cpo_keeps_the_heaviest_level_within_its_limit():
    # cost = w_level * sum(a^2), w = (0.5, 1.5), level hidden from the policy, limit 1 each.
    # One population constraint settles at E[sum a^2] = 1: the heavy level pays 1.5.
    # Per-level constraints: E[sum a^2] = 1 / 1.5 = 0.667, heavy at its limit, light at 1/3.
    def run(groups):
        env = LevelBanditCMDP(64, 2, 1.0)
        algo = CPO.from_env(env, AlgoConfig(**FAST), seed=0, constraint_groups=groups)
        return algo, learn(env, algo, total_steps=64 * 16 * 60, steps_per_epoch=64 * 16)

    algo, hist = run(_levels())
    e = _second_moment(algo)
    assert e == pytest.approx(2 / 3, rel=0.05)
    last = hist[-10:]
    assert np.mean([h["J_c/heavy"] for h in last]) == pytest.approx(1.0, abs=0.06)
    assert np.mean([h["J_c/light"] for h in last]) == pytest.approx(1 / 3, abs=0.05)
    # the heavy level binds, the light one does not
    assert np.mean([h["nu/heavy"] for h in last]) > 0.5
    assert all(h["nu/light"] == 0.0 for h in last)
    # every accepted step kept each group's surrogate cost within its slack
    for h in hist:
        if h["accepted"]:
            for name in LEVELS:
                assert h[f"d_surr_c/{name}"] <= max(-h[f"c/{name}"], 0.0) + 1e-12
    plain, _ = run(None)
    assert 1.5 * _second_moment(plain) > 1.35  # the population constraint lets heavy violate


def test_recovery_logs_which_levels_drive_the_step():
    # both levels far above tiny limits: a recovery step on the worst-violation combination
    env = LevelBanditCMDP(64, 2, 1.0)
    algo = CPO.from_env(env, AlgoConfig(**FAST), seed=0, constraint_groups=_levels(0.01, 0.01))
    col = RolloutCollector(env, algo, steps_per_env=8, seed=0)
    info = algo.update(col.collect())
    assert info["case"] == "recovery"
    w = [info[f"recovery_weight/{n}"] for n in LEVELS]
    assert all(v >= 0 for v in w) and sum(w) == pytest.approx(1.0)
    assert w[1] > 0  # the heavy level, the most violated, drives it
    # no recovery: no weights
    easy = CPO.from_env(env, AlgoConfig(**FAST), seed=0, constraint_groups=_levels(50.0, 50.0))
    info = easy.update(RolloutCollector(env, easy, steps_per_env=8, seed=0).collect())
    assert info["case"] != "recovery"
    assert all(math.isnan(info[f"recovery_weight/{n}"]) for n in LEVELS)


def test_level_costs_are_each_levels_own_episodes_and_a_level_without_samples_is_inactive():
    costs = np.array([1.0, 2.0, 4.0, 8.0, 3.0])
    lengths = np.array([10.0, 20.0, 30.0, 40.0, 50.0])
    levels = np.array([0, 0, 2, 2, 2])
    called = []

    def critic():
        called.append(1)
        return torch.tensor([0.5, 0.7, 0.9, 1.1])

    # level 1 finished nothing but instance 3 runs a level-1 episode; level 3 has no sample
    j, t, src = estimate_level_costs(
        costs, lengths, levels, 4, np.array([0, 2, -1, 1]), critic, 100.0, 1.0
    )
    np.testing.assert_allclose(j[[0, 2]], [1.5, 5.0])
    np.testing.assert_allclose(t[[0, 2]], [15.0, 40.0])
    # the critic's discounted value at the level-1 start, as an undiscounted episode cost
    assert j[1] == pytest.approx(1.1 * 100.0) and t[1] == 100.0
    assert math.isnan(j[3]) and math.isnan(t[3])
    assert src == ["episodes", "critic", "episodes", "none"]
    # every level finished an episode: the critic is not consulted
    called.clear()
    estimate_level_costs(costs, lengths, np.array([0, 1, 2, 3, 3]), 4, np.zeros(4), critic, 9, 1)
    assert not called


def _level_batch(groups=None, n=64, steps=8):
    env = LevelBanditCMDP(n, 2, 1.0, weights=(0.5, 1.0, 1.5))
    groups = groups or ConstraintGroups.levels("level", ("a", "b", "c"), (1.0, 1.0, 1.0))
    algo = CPO.from_env(env, AlgoConfig(**FAST), seed=0, constraint_groups=groups)
    return env, algo, RolloutCollector(env, algo, steps_per_env=steps, seed=0).collect()


def test_collector_records_each_steps_level_and_each_finished_episodes_level():
    env, _algo, batch = _level_batch()
    assert batch.group_key == "level" and batch.group_names == ("a", "b", "c")
    # one-step episodes: each step's cost is weights[level] * sum(a^2)
    a = np.clip(batch.actions.numpy(), -2, 2)
    w = env.weights[batch.groups.numpy()]
    np.testing.assert_allclose(batch.costs.numpy(), w * (a * a).sum(-1), rtol=1e-5)
    np.testing.assert_array_equal(batch.ep_groups, batch.groups.numpy().reshape(-1))
    assert (batch.current_groups == -1).all()  # every episode ended on the last step
    stats = batch.episode_stats()
    sel = batch.ep_groups == 2
    assert stats["ep_cost/c"] == pytest.approx(batch.ep_costs[sel].mean())
    assert stats["episodes/c"] == int(sel.sum())


def test_cost_advantages_are_centred_over_each_levels_samples():
    _, algo, batch = _level_batch()
    data = algo.prepare(batch)
    codes = batch.groups.reshape(-1)
    assert data.adv_c.shape == (codes.numel(), 3)
    for k in range(3):
        inside = codes == k
        col = data.adv_c[:, k].double()
        assert float(col[inside].mean()) == pytest.approx(0.0, abs=1e-6)
        assert (col[~inside] == 0).all()
        assert float(data.group_counts[k]) == int(inside.sum())
    # the shape within a level is the raw cost advantage's (one critic of the combined cost)
    raw = algo.prepare(batch).adv_c  # deterministic
    torch.testing.assert_close(raw, data.adv_c)


def test_a_level_without_samples_is_left_out_of_the_step():
    # level b is never drawn: nothing in the batch measures it or can change it
    env = LevelBanditCMDP(64, 2, 1.0, weights=(0.5, 1.0, 1.5), probs=(0.5, 0.0, 0.5))
    groups = ConstraintGroups.levels("level", ("a", "b", "c"), (1.0, 1.0, 0.2))
    algo = CPO.from_env(env, AlgoConfig(**FAST), seed=0, constraint_groups=groups)
    diag = algo.update(RolloutCollector(env, algo, steps_per_env=8, seed=0).collect())
    assert diag["active_constraints"] == 2
    assert math.isnan(diag["J_c/b"]) and diag["J_c_source/b"] == "none"
    assert math.isnan(diag["c/b"]) and math.isnan(diag["nu/b"])
    assert diag["c/c"] > 0 and diag["c/a"] < 0  # c violated, a not
    assert diag["accepted"] and diag["d_surr_c/c"] < 0


def test_per_level_limits_are_hyperparameters_a_schedule_can_move():
    _, algo, _ = _level_batch()
    hp = algo.hyperparameters()
    assert list(hp)[:4] == ["cost_limit", "cost_limit/a", "cost_limit/b", "cost_limit/c"]
    algo.set_hyperparameter("cost_limit/c", 0.25)
    np.testing.assert_array_equal(algo.group_limits, [1.0, 1.0, 0.25])
    algo.set_hyperparameter("cost_limit", 2.0)  # every level
    np.testing.assert_array_equal(algo.group_limits, [2.0, 2.0, 2.0])
    with pytest.raises(ValueError, match="cost_limit/c"):
        algo.set_hyperparameter("cost_limit/c", -1.0)
    with pytest.raises(Exception, match="cost_limit/a"):
        algo.set_hyperparameter("cost_limit/zz", 1.0)


def test_per_level_state_dict_resume_continues_bit_exactly():
    def make():
        env = LevelBanditCMDP(32, 2, 1.0)
        algo = CPO.from_env(env, AlgoConfig(**FAST), seed=0, constraint_groups=_levels(1.0, 0.6))
        return env, algo

    env, algo = make()
    col = RolloutCollector(env, algo, steps_per_env=8, seed=0)
    for _ in range(2):
        algo.update(col.collect())
    buf = io.BytesIO()
    torch.save({"algo": algo.state_dict(), "collector": col.state_dict()}, buf)
    buf.seek(0)
    saved = torch.load(buf, weights_only=True)
    state, col_state = saved["algo"], saved["collector"]
    rng_state = env._rng.bit_generator.state
    level = env._level.copy()
    for _ in range(2):
        algo.update(col.collect())
    env2, algo2 = make()
    algo2.load_state_dict(state)
    col2 = RolloutCollector(env2, algo2, steps_per_env=8, seed=0)
    col2.load_state_dict(col_state)
    env2._rng.bit_generator.state = rng_state
    env2._level = level
    for _ in range(2):
        algo2.update(col2.collect())
    for a, b in zip(_params(algo), _params(algo2), strict=True):
        assert torch.equal(a, b)


# ------------------------------------------------------------------------------------------
# Per-component constraints
# ------------------------------------------------------------------------------------------
def test_per_component_cpo_reaches_each_components_own_optimum():
    # max a0 + a1 s.t. E[a0^2] <= 0.25, E[a1^2] <= 1: both bind, mu_k^2 + sigma_k^2 = d_k
    env = GaussianBanditCMDP(64, 2, limit=10.0, component_limits=[0.25, 1.0])
    groups = ConstraintGroups.components(["a0", "a1"], [0.25, 1.0])
    algo = CPO.from_env(env, AlgoConfig(**FAST), seed=0, constraint_groups=groups)
    assert algo.n_cost_heads == 2
    hist = learn(env, algo, total_steps=64 * 16 * 70, steps_per_epoch=64 * 16)
    with torch.no_grad():
        mean, log_std = algo.actor(algo.obs_norm.normalize(torch.ones(1, 2)))
    second = (mean[0] ** 2 + log_std.exp() ** 2).detach().double().numpy()
    np.testing.assert_allclose(second, [0.25, 1.0], rtol=0.08)
    last = hist[-10:]
    assert sum(h["case"] == "both_active" for h in last) >= 8
    assert np.mean([h["active_constraints"] for h in last]) == 2
    assert min(np.mean([h["nu/a0"] for h in last]), np.mean([h["nu/a1"] for h in last])) > 0


def test_one_multiplier_per_level_each_from_its_own_levels_cost():
    # initial E[sum a^2] = 2 exp(-1) = 0.74: light (w 0.5) costs 0.37 <= 1, heavy (1.5) 1.1 > 0.5
    env = LevelBanditCMDP(64, 2, 1.0)
    cfg = PPOLagrangianConfig(**FAST, lagrangian_lr=0.5)
    algo = PPOLagrangian.from_env(env, cfg, seed=0, constraint_groups=_levels(1.0, 0.5))
    assert algo.constraint_names == LEVELS
    hist = learn(env, algo, total_steps=64 * 16 * 3, steps_per_epoch=64 * 16)
    assert algo.multipliers[1] > 0.1 and algo.multipliers[0] == 0.0
    assert hist[0]["J_c/light"] == pytest.approx(0.37, abs=0.06)
    assert hist[0]["J_c/heavy"] == pytest.approx(1.1, abs=0.15)
    assert hist[-1]["cost_limit/heavy"] == 0.5


def test_options_that_would_do_nothing_with_groups_are_refused():
    env = LevelBanditCMDP(8, 2, 1.0)
    with pytest.raises(ConfigError, match=r"^algo\.cost_estimate:"):
        CPO.from_env(env, CPOConfig(cost_estimate="rate"), constraint_groups=_levels())
    with pytest.raises(ConfigError, match=r"^algo\.per_constraint:"):
        PPOLagrangian.from_env(
            env, PPOLagrangianConfig(per_constraint=True), constraint_groups=_levels()
        )
