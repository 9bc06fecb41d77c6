"""CPO and PPO-Lagrangian end to end on the one-step Gaussian-bandit CMDP (known optimum).

On the bandit the observation is constant, so the policy is one Gaussian N(mu, sigma^2) and
expected reward/cost have closed forms: E[r] = sum(mu), E[c] = sum(mu^2 + sigma^2) (the action
box [-2, 2] is far away for the policies tested here). These are the oracles.
"""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
import torch
from cmdp import ContextBanditCMDP, GaussianBanditCMDP

from saferl.algos.buffer import RolloutCollector
from saferl.algos.cpo import CPO
from saferl.algos.learn import learn
from saferl.algos.math import gaussian_kl
from saferl.algos.networks import GaussianActor
from saferl.algos.ppo_lagrangian import PPOLagrangian
from saferl.config import AlgoConfig, ConfigError, CPOConfig, PPOLagrangianConfig

FAST = {"critic_epochs": 5, "critic_minibatch": 512}


def _policy(algo) -> tuple[np.ndarray, np.ndarray]:
    """(mu, sigma) of the bandit policy (constant observation)."""
    with torch.no_grad():
        mean, log_std = algo.actor(algo.obs_norm.normalize(torch.ones(1, 2)))
    return mean[0].double().numpy(), log_std.detach().exp().double().numpy()


def _expected(algo) -> tuple[float, float]:
    mu, sd = _policy(algo)
    return float(mu.sum()), float((mu**2 + sd**2).sum())


def _one_update(limit: float, seed: int = 0):
    env = GaussianBanditCMDP(64, 2, limit)
    algo = CPO.from_env(env, AlgoConfig(**FAST), seed=seed)
    col = RolloutCollector(env, algo, steps_per_env=16, seed=seed)
    batch = col.collect()
    data = algo.prepare(batch)
    with torch.no_grad():
        mean_old, ls_old = algo.actor(data.obs)
        ls_old = ls_old.clone()
        logp_old = GaussianActor.log_prob(mean_old, ls_old, data.actions)
    before = _expected(algo)
    diag = algo.update(batch)
    with torch.no_grad():
        mean, ls = algo.actor(data.obs)
        ratio = torch.exp(GaussianActor.log_prob(mean, ls, data.actions) - logp_old)
        surr_r = float((ratio * data.adv_r).mean() - data.adv_r.mean())
        surr_c = float((ratio * data.adv_c[:, 0]).mean() - data.adv_c[:, 0].mean())
        kl = float(gaussian_kl(mean_old, ls_old, mean, ls).mean())
    return diag, before, _expected(algo), surr_r, surr_c, kl


def test_cpo_update_on_violated_batch_lowers_cost():
    # Initial policy: mu ~ 0, sigma = exp(-0.5): E[c] = 2 * 0.368 = 0.74 > d = 0.3.
    diag, (_, cost0), (_, cost1), _, surr_c, kl = _one_update(limit=0.3)
    assert diag["c"] > 0 and diag["accepted"]
    assert diag["case"] in ("recovery", "both_active")
    assert surr_c < 0  # the cost surrogate on the batch went down
    assert cost1 < cost0 - 1e-3  # and so did the true expected cost (closed form)
    assert kl <= CPOConfig().target_kl * (1 + 1e-4)


def test_cpo_update_on_slack_batch_raises_reward_within_trust_region():
    diag, (ret0, _), (ret1, _), surr_r, _, kl = _one_update(limit=100.0)
    assert diag["c"] < 0 and diag["case"] == "feasible" and diag["accepted"]
    assert surr_r > 0
    assert ret1 > ret0 + 1e-3  # true expected reward rose
    assert 0 < kl <= CPOConfig().target_kl * (1 + 1e-4)


def _run(algo_cls, seed, updates, **kw):
    env = GaussianBanditCMDP(32, 2, 1.0)
    algo = algo_cls.from_env(env, AlgoConfig(**FAST), seed=seed, **kw)
    learn(env, algo, total_steps=32 * 8 * updates, steps_per_epoch=32 * 8)
    return algo


def _params(algo):
    return [t.clone() for t in algo.actor.state_dict().values()] + [
        t.clone() for t in algo.critics.state_dict().values()
    ]


@pytest.mark.parametrize("algo_cls", [CPO, PPOLagrangian])
def test_same_seed_gives_identical_parameters_and_other_seed_differs(algo_cls):
    a = _params(_run(algo_cls, 3, 4))
    b = _params(_run(algo_cls, 3, 4))
    c = _params(_run(algo_cls, 4, 4))
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert not all(torch.equal(x, y) for x, y in zip(a, c, strict=True))


@pytest.mark.parametrize("algo_cls", [CPO, PPOLagrangian])
@pytest.mark.parametrize(
    ("estimate", "gain"), [("episodes", 0.0), ("rate", 0.0), ("episodes", 0.3)]
)
def test_resume_from_state_dict_continues_bit_exactly(algo_cls, estimate, gain):
    if algo_cls is CPO:
        cfg = CPOConfig(**FAST, cost_estimate=estimate, cost_target_gain=gain)
    else:  # no cost target in PPO-Lagrangian
        cfg = PPOLagrangianConfig(**FAST, cost_estimate=estimate)

    # With the gain: 8-D noisy bandit starting at cost 8 e^-1 = 2.9, just above d = 2.8, so
    # CPO's first step is not a recovery step and the cost-target offset integrates from it.
    def make_env():
        return GaussianBanditCMDP(32, 8, 2.8, noise=1.0) if gain else GaussianBanditCMDP(32, 2, 1.0)

    env = make_env()
    straight = algo_cls.from_env(env, cfg, seed=1)
    col = RolloutCollector(env, straight, steps_per_env=8, seed=1)
    for _ in range(5):
        straight.update(col.collect())

    env1 = make_env()
    first = algo_cls.from_env(env1, cfg, seed=1)
    col1 = RolloutCollector(env1, first, steps_per_env=8, seed=1)
    for _ in range(3):
        first.update(col1.collect())
    buf = io.BytesIO()
    torch.save({"algo": first.state_dict(), "collector": col1.state_dict()}, buf)
    buf.seek(0)
    state = torch.load(buf, weights_only=True)
    env2 = make_env()
    env2._rng.bit_generator.state = env1._rng.bit_generator.state  # the env's own state
    resumed = algo_cls.from_env(env2, cfg, seed=99)  # different seed: the state must win
    col2 = RolloutCollector(env2, resumed, steps_per_env=8, seed=99)
    resumed.load_state_dict(state["algo"])
    col2.load_state_dict(state["collector"])
    for _ in range(2):
        resumed.update(col2.collect())
    for x, y in zip(_params(straight), _params(resumed), strict=True):
        assert torch.equal(x, y)
    if estimate == "rate":  # the episode-length memory is part of the state
        assert torch.equal(resumed.length_history, straight.length_history)
    else:
        assert resumed.length_history is None
    if gain and algo_cls is CPO:  # so is the cost-target offset
        assert state["algo"]["cost_offset"] > 0 and state["algo"]["cost_offset_active"]
        assert resumed.cost_offset == straight.cost_offset


def test_cpo_converges_to_the_constrained_optimum_of_the_bandit():
    # max sum(a) s.t. sum(a^2) <= d = 1 (2-D): a* = (0.7071, 0.7071), return sqrt(2).
    env = GaussianBanditCMDP(64, 2, 1.0)
    algo = CPO.from_env(env, AlgoConfig(**FAST), seed=0)
    hist = learn(env, algo, total_steps=64 * 16 * 90, steps_per_epoch=64 * 16)
    mu, sd = _policy(algo)
    ret, cost = _expected(algo)
    assert np.all(np.abs(mu - math.sqrt(0.5)) < 0.03), (mu, sd)
    assert cost <= 1.0 * 1.03
    assert ret >= 0.97 * math.sqrt(2)
    # Near the optimum both constraints are active: the dual case dominates the last epochs.
    last_cases = [h["case"] for h in hist[-30:]]
    assert last_cases.count("both_active") >= 25, last_cases
    # Measured episode cost of the last 10 batches sits at the limit (not swinging).
    assert abs(np.mean([h["ep_cost"] for h in hist[-10:]]) - 1.0) < 0.05


def _time_averaged_true_cost(gain: float, epochs: int = 200) -> tuple[float, float]:
    """CPO on the 8-D bandit with reward and cost noise (sd 4, 128 episodes per batch):
    (closed-form expected cost, cost-target offset) averaged over the last 100 updates."""
    env = GaussianBanditCMDP(32, 8, 1.0, noise=4.0)
    algo = CPO.from_env(env, CPOConfig(**FAST, target_kl=0.05, cost_target_gain=gain), seed=0)
    col = RolloutCollector(env, algo, steps_per_env=4, seed=0)
    costs, offsets = [], []
    for _ in range(epochs):
        algo.update(col.collect())
        costs.append(_expected(algo)[1])
        offsets.append(algo.cost_offset)
    return float(np.mean(costs[-100:])), float(np.mean(offsets[-100:]))


def test_cost_target_integral_removes_the_offset_a_noisy_cost_gradient_leaves():
    # Noise in b: each step lowers the true cost less than the linear model predicts, so
    # CPO as specified settles above the limit (the wheelchair's ~20 %, docs/algorithms.md).
    cost_plain, offset_plain = _time_averaged_true_cost(0.0)
    assert cost_plain > 1.15 and offset_plain == 0.0
    # The integral lowers the target until the true expected cost sits at the limit (within
    # the spread of the last 100 updates' average over exploration-noise streams: 1.04-1.09
    # over 8 streams measured).
    cost_int, offset_int = _time_averaged_true_cost(0.1)
    assert abs(cost_int - 1.0) < 0.1, cost_int
    assert offset_int > 0.2


def _advantage_std_after_training(asymmetric: bool) -> float:
    """Reward-advantage std (before standardisation) on a fresh batch after 8 CPO updates on
    the context bandit, with the context given to the critics only or to nobody."""
    env = ContextBanditCMDP(64, 2, 1.0, scale=5.0, observe_context=asymmetric)
    algo = CPO.from_env(env, AlgoConfig(**FAST, asymmetric_critic=asymmetric), seed=0)
    col = RolloutCollector(env, algo, steps_per_env=16, seed=0)
    for _ in range(8):
        algo.update(col.collect())
    return algo.prepare(col.collect()).adv_r_std


def test_asymmetric_critic_removes_what_the_actor_cannot_observe_from_the_advantages():
    # Blind critic: the hidden context's 5 z is in every advantage (std ~ 5). A critic that
    # reads z predicts it, leaving the action's own effect (std ~ 1 at the initial sigma).
    blind = _advantage_std_after_training(asymmetric=False)
    asym = _advantage_std_after_training(asymmetric=True)
    assert blind > 4.0
    assert asym < 0.4 * blind, (asym, blind)


@pytest.mark.parametrize("algo_cls", [CPO, PPOLagrangian])
def test_asymmetric_critic_keeps_the_privileged_dims_from_the_actor(algo_cls):
    env = ContextBanditCMDP(16, 2, 1.0)
    algo = algo_cls.from_env(env, AlgoConfig(**FAST, asymmetric_critic=True), seed=0)
    assert algo.actor.mu[0].in_features == 2  # the actor's network has no input for z
    obs = torch.tensor([[1.0, 1.0, -3.0], [1.0, 1.0, 3.0]])
    with torch.no_grad():
        mean, _ = algo.actor(obs)
        values = algo.critics(obs)
    assert torch.equal(mean[0], mean[1])  # the action does not depend on z
    assert not torch.equal(values[0], values[1])  # the critics read it
    symmetric = algo_cls.from_env(env, AlgoConfig(**FAST), seed=0)
    assert symmetric.actor.mu[0].in_features == 3  # without the option the actor sees all


def test_asymmetric_critic_needs_privileged_observations():
    env = ContextBanditCMDP(16, 2, 1.0, observe_context=False)
    with pytest.raises(ConfigError, match=r"^algo\.asymmetric_critic: .*privileged_obs"):
        CPO.from_env(env, AlgoConfig(**FAST, asymmetric_critic=True), seed=0)


def test_unconstrained_ppo_violates_the_constraint_that_cpo_meets():
    env = GaussianBanditCMDP(64, 2, 1.0)
    cfg = PPOLagrangianConfig(**FAST, actor_lr=3e-3, actor_minibatch=256)
    ppo = PPOLagrangian.from_env(env, cfg, seed=0, lagrangian=False)
    learn(env, ppo, total_steps=64 * 16 * 25, steps_per_epoch=64 * 16)
    _, cost = _expected(ppo)
    assert cost > 2.0  # twice the limit: the unconstrained optimum is the box corner
    assert float(ppo.multipliers.sum()) == 0.0


@pytest.mark.slow
def test_ppo_lagrangian_multiplier_finds_the_dual_optimum_of_the_bandit():
    # At a* the multiplier is d(return)/d(cost) = 1 / (2 * 0.7071) = 0.7071.
    env = GaussianBanditCMDP(64, 2, 1.0)
    cfg = PPOLagrangianConfig(**FAST, actor_lr=3e-3, actor_minibatch=256, lagrangian_lr=0.05)
    algo = PPOLagrangian.from_env(env, cfg, seed=0)
    hist = learn(env, algo, total_steps=64 * 16 * 120, steps_per_epoch=64 * 16)
    mu, _ = _policy(algo)
    assert np.all(np.abs(mu - math.sqrt(0.5)) < 0.05), mu
    assert abs(np.mean([h["multiplier"] for h in hist[-10:]]) - math.sqrt(0.5)) < 0.15


def test_per_constraint_multipliers_rise_only_for_the_violated_constraint():
    # a0^2 <= 0.05 is violated by the initial policy (E[a0^2] = sigma^2 = 0.37), a1^2 <= 3 is not.
    env = GaussianBanditCMDP(64, 2, limit=10.0, component_limits=[0.05, 3.0])
    cfg = PPOLagrangianConfig(**FAST, per_constraint=True, lagrangian_lr=0.5)
    algo = PPOLagrangian.from_env(env, cfg, seed=0)
    assert algo.constraint_names == ("a0", "a1")
    np.testing.assert_allclose(algo.limits, [0.05, 3.0])
    hist = learn(env, algo, total_steps=64 * 16 * 3, steps_per_epoch=64 * 16)
    assert algo.multipliers[0] > 0.1 and algo.multipliers[1] == 0.0
    assert hist[-1]["multiplier/a0"] == algo.multipliers[0]
    # J_c per constraint is the per-component episode cost, not the combined one
    assert hist[0]["J_c/a0"] == pytest.approx(0.37, abs=0.06)
    assert hist[0]["J_c/a1"] == pytest.approx(0.37, abs=0.06)


@pytest.mark.slow
def test_per_constraint_ppo_lagrangian_reaches_each_component_optimum():
    # optimum: a0 = sqrt(0.25) = 0.5, a1 = sqrt(1) = 1; multipliers 1.0 and 0.5. The early
    # overshoot winds up the integral of multiplier 0, which unwinds slowly: 250 updates.
    env = GaussianBanditCMDP(64, 2, limit=10.0, component_limits=[0.25, 1.0])
    cfg = PPOLagrangianConfig(
        **FAST, per_constraint=True, actor_lr=3e-3, actor_minibatch=256, lagrangian_lr=0.05
    )
    algo = PPOLagrangian.from_env(env, cfg, seed=0)
    hist = learn(env, algo, total_steps=64 * 16 * 250, steps_per_epoch=64 * 16)
    mu, sd = _policy(algo)
    # the Gaussian's own constrained optimum at its current sigma: mu_k^2 + sigma_k^2 = d_k
    np.testing.assert_allclose(mu, np.sqrt(np.array([0.25, 1.0]) - sd**2), atol=0.06)
    # and the multipliers approach the dual optimum 1 / (2 sqrt(d_k)) = (1.0, 0.5)
    last = hist[-10:]
    assert abs(np.mean([h["multiplier/a1"] for h in last]) - 0.5) < 0.05
    assert abs(np.mean([h["multiplier/a0"] for h in last]) - 1.0) < 0.15


@pytest.mark.parametrize("algo_cls", [CPO, PPOLagrangian])
def test_initial_policy_starts_at_the_configured_mean_and_per_dimension_std(algo_cls):
    env = GaussianBanditCMDP(512, 2, 1.0)
    config = AlgoConfig(init_log_std=[-1.0, -3.0], init_action_mean=[0.7, -0.4])
    algo = algo_cls.from_env(env, config, seed=0)
    obs, _ = env.reset(seed=0)
    obs = obs + np.random.default_rng(0).normal(size=obs.shape).astype(np.float32)
    actions = algo.act(obs)[0].double().numpy()
    # 512 draws: the sample mean is within 4 standard errors of the configured mean
    np.testing.assert_allclose(actions.mean(0), [0.7, -0.4], atol=4 * math.exp(-1) / math.sqrt(512))
    np.testing.assert_allclose(actions.std(0), np.exp([-1.0, -3.0]), rtol=0.15)
    default = algo_cls.from_env(env, AlgoConfig(init_log_std=-1.0), seed=0)
    assert np.abs(default.act(obs)[0].double().numpy().mean(0)).max() < 0.1


def test_init_lists_of_the_wrong_length_name_the_field():
    env = GaussianBanditCMDP(8, 2, 1.0)
    with pytest.raises(ConfigError, match=r"^algo.init_action_mean: .* 2 dimensions, got 3"):
        CPO.from_env(env, AlgoConfig(init_action_mean=[0.0, 0.0, 0.0]), seed=0)
    with pytest.raises(ConfigError, match=r"^algo.init_log_std: .* 2 dimensions, got 3"):
        CPO.from_env(env, AlgoConfig(init_log_std=[-1.0, -1.0, -1.0]), seed=0)
    assert CPO.from_env(env, AlgoConfig(init_log_std=[-1.5]), seed=0).actor.log_std.tolist() == [
        -1.5,
        -1.5,
    ]


def _renewal_batch(p_before: float, p_batch: float, steps: int = 60, n: int = 4000):
    """Instances running episode after episode of 100 steps with a per-step cost probability
    drawn per episode (U(0, 2 p)); ``p`` changes from ``p_before`` to ``p_batch`` when the
    batch window starts (a policy update). Returns the window's per-step costs (steps, n) and
    the costs and lengths of the episodes that finished in it."""
    rng = np.random.default_rng(0)
    length = 100
    age = rng.integers(0, length, n)  # stationary start: a random point in an episode
    prob = rng.random(n) * 2 * p_before
    cost_so_far = rng.binomial(age, prob).astype(float)
    costs = np.zeros((steps, n))
    ep_costs, ep_lengths = [], []
    for t in range(steps):
        c = rng.random(n) < prob * (p_batch / p_before)
        costs[t] = c
        cost_so_far += c
        age += 1
        done = age >= length
        ep_costs += list(cost_so_far[done])
        ep_lengths += [length] * int(done.sum())
        prob[done] = rng.random(int(done.sum())) * 2 * p_before
        age[done] = 0
        cost_so_far[done] = 0
    return torch.from_numpy(costs), np.array(ep_costs), np.array(ep_lengths)


def test_rate_estimate_of_the_episode_cost_uses_the_current_policy_only():
    from saferl.algos.common import estimate_episode_cost, estimate_episode_cost_from_rate

    exact = 0.1 * 100  # E[p] L
    costs, ep_costs, ep_lengths = _renewal_batch(0.1, 0.1)
    j_rate, t_rate, source, history = estimate_episode_cost_from_rate(costs, len(ep_lengths), 600)
    assert source == "rate"
    assert t_rate == pytest.approx(100.0, rel=0.02)  # instance-steps per finished episode
    assert j_rate[0] == pytest.approx(exact, rel=0.03)
    assert history.tolist() == [costs.numel(), len(ep_lengths)]
    j_ep, _, _ = estimate_episode_cost(ep_costs, ep_lengths, None, 600, 0.99)
    assert j_ep[0] == pytest.approx(exact, rel=0.03)  # both unbiased when nothing changes
    # after a policy change (cost rate halved) the finished episodes mostly ran before it
    costs, ep_costs, ep_lengths = _renewal_batch(0.1, 0.05)
    j_rate, _, _, _ = estimate_episode_cost_from_rate(costs, len(ep_lengths), 600, history)
    j_ep, _, _ = estimate_episode_cost(ep_costs, ep_lengths, None, 600, 0.99)
    assert j_rate[0] == pytest.approx(exact / 2, rel=0.03)
    assert j_ep[0] > 0.65 * exact
    # per-constraint heads (T, N, K); no finished episode yet: T is the horizon
    stacked = torch.stack([costs, 2 * costs], dim=-1)
    j_k, t_k, _, h = estimate_episode_cost_from_rate(stacked, 0, 600)
    assert t_k == 600 and h[1] == 0
    np.testing.assert_allclose(j_k, [600 * costs.mean(), 1200 * costs.mean()], rtol=1e-12)


def test_rate_estimate_is_not_fooled_by_the_short_episodes_of_a_synchronised_start():
    from saferl.algos.common import estimate_episode_cost, estimate_episode_cost_from_rate

    # 1000 instances start together; episodes last 400 steps, except 5 % that succeed after 50;
    # one cost every 10 steps: E[L] = 382.5, E[episode cost] = 38.25
    rng = np.random.default_rng(1)
    n, horizon, history, estimates = 1000, 400, None, []
    length = np.where(rng.random(n) < 0.05, 50, horizon)
    age = np.zeros(n, int)
    for _batch in range(12):  # batches of 80 steps per instance
        costs = np.zeros((80, n))
        finished = []
        for t in range(80):
            costs[t] = (age % 10) == 9
            age += 1
            done = age >= length
            finished += list(length[done])
            length[done] = np.where(rng.random(int(done.sum())) < 0.05, 50, horizon)
            age[done] = 0
        costs_t = torch.from_numpy(costs)
        j, t_len, _, history = estimate_episode_cost_from_rate(
            costs_t, len(finished), horizon, history
        )
        j_ep, _, _ = estimate_episode_cost(
            np.array(finished) / 10.0, np.array(finished), None, horizon, 0.99
        )
        estimates.append((j[0], t_len, j_ep[0] if finished else None))
    # first batch: only the 50-step successes finished (cost 5 each); the rate estimate uses the
    # horizon instead of their length and stays on the safe side
    assert estimates[0][2] == pytest.approx(5.0)
    assert estimates[0][1] == horizon and estimates[0][0] == pytest.approx(40.0, rel=0.02)
    # the instances stay nearly in step (period 400 = 5 batches): the finished episodes swing
    # from short successes to full episodes, the rate estimate stays within 15 % throughout
    assert all(j == pytest.approx(38.25, rel=0.15) for j, _, _ in estimates)
    episodes = [je for _, _, je in estimates if je is not None]
    assert max(abs(je - 38.25) for je in episodes) > 0.4 * 38.25
