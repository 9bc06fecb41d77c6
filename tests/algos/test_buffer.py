"""GAE against hand-computed values; the collector's bootstrapping and episode bookkeeping."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from cmdp import ChainEnv

from saferl.algos.buffer import RolloutCollector, compute_gae
from saferl.algos.networks import ObsNormalizer


def test_gae_matches_hand_computed_example_with_termination_truncation_and_cutoff():
    gamma, lam = 0.9, 0.8  # gamma * lam = 0.72
    # 4 steps x 3 instances (time-major).
    rewards = np.array([[1, 1, 0], [2, 1, 0], [3, 1, 0], [4, 1, 1]], np.float32)
    values = np.array([[0.5, 0, 1], [0.6, 0, 1], [0.7, 0, 1], [0.8, 0, 1]], np.float32)
    terminated = np.zeros((4, 3), bool)
    truncated = np.zeros((4, 3), bool)
    terminated[1, 0] = True  # instance 0: episode ends for real after step 1
    truncated[2, 1] = True  # instance 1: time limit after step 2, V(final obs) = 5
    boot = np.zeros((4, 3), np.float32)
    boot[2, 1] = 5.0
    boot[1, 0] = 123.0  # must be ignored: terminated, not truncated
    last = np.array([0.9, -1.0, 2.0], np.float32)  # V(current obs) at the batch cut-off
    adv, ret = compute_gae(rewards, values, terminated, truncated, boot, last, gamma, lam)

    expected = np.zeros((4, 3))
    # instance 0: d1 = 2 + 0 - 0.6 = 1.4 (termination: no bootstrap)
    #             d0 = 1 + 0.9*0.6 - 0.5 = 1.04, A0 = 1.04 + 0.72*1.4 = 2.048
    #             d3 = 4 + 0.9*0.9 - 0.8 = 4.01 (cut-off: bootstrap from last value)
    #             d2 = 3 + 0.9*0.8 - 0.7 = 3.02, A2 = 3.02 + 0.72*4.01 = 5.9072
    expected[:, 0] = [2.048, 1.4, 5.9072, 4.01]
    # instance 1: d2 = 1 + 0.9*5 = 5.5 (truncation: bootstrap from the final obs)
    #             A1 = 1 + 0.72*5.5 = 4.96, A0 = 1 + 0.72*4.96 = 4.5712
    #             new episode at t=3: d3 = 1 + 0.9*(-1) = 0.1
    expected[:, 1] = [4.5712, 4.96, 5.5, 0.1]
    # instance 2: d3 = 1 + 0.9*2 - 1 = 1.8, d0..2 = 0 + 0.9 - 1 = -0.1
    #             A2 = -0.1 + 0.72*1.8 = 1.196, A1 = -0.1 + 0.72*1.196 = 0.76112,
    #             A0 = -0.1 + 0.72*0.76112 = 0.4480064
    expected[:, 2] = [0.4480064, 0.76112, 1.196, 1.8]
    np.testing.assert_allclose(adv, expected, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(ret, expected + values, rtol=1e-6, atol=1e-6)


def test_gae_termination_wins_over_truncation_and_cost_heads_broadcast():
    rewards = np.ones((2, 1, 2), np.float32)  # (T, N, K=2)
    values = np.zeros((2, 1, 2), np.float32)
    terminated = np.array([[True], [False]])
    truncated = np.array([[True], [False]])
    boot = np.full((2, 1, 2), 7.0, np.float32)
    last = np.array([[3.0, 4.0]], np.float32)
    adv, _ = compute_gae(rewards, values, terminated, truncated, boot, last, 0.5, 1.0)
    np.testing.assert_allclose(adv[0, 0], [1.0, 1.0])  # no bootstrap from 7
    np.testing.assert_allclose(adv[1, 0], [1 + 0.5 * 3.0, 1 + 0.5 * 4.0])


class _StubPolicy:
    """Deterministic 'critic': V_r(obs) = 10 t + instance, V_c = 100 + V_r."""

    def act(self, obs):
        n = obs.shape[0]
        v_r, v_c = self.value(obs)
        return torch.zeros(n, 1), torch.zeros(n), v_r, v_c

    def value(self, obs):
        v = 10 * obs[:, 0] + obs[:, 1]
        return v, 100 + v


def test_collector_bootstraps_from_final_obs_and_tracks_episodes_across_batches():
    env = ChainEnv(num_envs=2, horizon=3)
    col = RolloutCollector(env, _StubPolicy(), steps_per_env=4, seed=0)
    batch = col.collect()
    # instance 0 terminates after 2 steps (twice); instance 1 is truncated after 3 steps.
    assert batch.terminated[:, 0].tolist() == [False, True, False, True]
    assert batch.truncated[:, 1].tolist() == [False, False, True, False]
    assert batch.boot_values_r[2, 1] == pytest.approx(31.0)  # V(final obs t=3, instance 1)
    assert batch.boot_values_c[2, 1, 0] == pytest.approx(131.0)
    assert float(batch.boot_values_r[:, 0].abs().sum()) == 0.0  # termination: no bootstrap
    # cut-off: V(current obs); instance 0 was just reset (t=0), instance 1 is at t=1.
    np.testing.assert_allclose(batch.last_values_r.numpy(), [0.0, 11.0])
    np.testing.assert_allclose(np.sort(batch.ep_returns), [3.0, 3.0, 6.0])
    np.testing.assert_allclose(np.sort(batch.ep_lengths), [2.0, 2.0, 3.0])
    np.testing.assert_allclose(np.sort(batch.ep_costs), [1.0, 1.0, 1.5])
    # The stored obs are those the actions were taken in: instance 1 at t = 0, 1, 2, 0.
    assert batch.obs[:, 1, 0].tolist() == [0.0, 1.0, 2.0, 0.0]

    # Episodes continue across batches: instance 1's current episode started at step 3.
    saved = col.state_dict()
    buf = io.BytesIO()
    torch.save(saved, buf)
    buf.seek(0)
    restored = torch.load(buf, weights_only=True)
    batch2 = col.collect()
    # instance 1 finishes the episode begun in batch 1 after 2 more steps: return 1+2+3.
    assert 6.0 in batch2.ep_returns.tolist()
    assert batch2.ep_lengths.max() == 3.0

    # A collector restored from the saved state (and the env state) reproduces batch 2.
    env_b = ChainEnv(num_envs=2, horizon=3)
    env_b.t[:] = [0, 1]
    col_b = RolloutCollector(env_b, _StubPolicy(), steps_per_env=4, seed=0)
    col_b.load_state_dict(restored)
    batch2b = col_b.collect()
    np.testing.assert_array_equal(batch2b.ep_returns, batch2.ep_returns)
    np.testing.assert_array_equal(batch2b.rewards.numpy(), batch2.rewards.numpy())


def test_collector_refuses_next_step_autoreset():
    import gymnasium as gym

    env = ChainEnv()
    env.metadata = {"autoreset_mode": gym.vector.AutoresetMode.NEXT_STEP}
    with pytest.raises(ValueError, match="same-step"):
        RolloutCollector(env, _StubPolicy(), steps_per_env=2)


def test_obs_normalizer_matches_numpy_moments_and_roundtrips():
    rng = np.random.default_rng(0)
    norm = ObsNormalizer(3, clip=100.0)
    chunks = [rng.normal(loc=[1, -2, 5], scale=[0.5, 3, 10], size=(n, 3)) for n in (7, 50, 300)]
    for ch in chunks:
        norm.update(torch.from_numpy(ch).float())
    allx = np.concatenate(chunks).astype(np.float32).astype(np.float64)
    np.testing.assert_allclose(norm.mean.numpy(), allx.mean(0), rtol=1e-9)
    np.testing.assert_allclose(norm.var.numpy(), allx.var(0), rtol=1e-9)
    z = norm.normalize(torch.from_numpy(allx).float())
    np.testing.assert_allclose(z.mean(0).numpy(), 0.0, atol=1e-5)
    np.testing.assert_allclose(z.std(0, unbiased=False).numpy(), 1.0, atol=1e-4)
    other = ObsNormalizer(3, clip=100.0)
    other.load_state_dict(norm.state_dict())
    torch.testing.assert_close(other.normalize(torch.ones(2, 3)), norm.normalize(torch.ones(2, 3)))
