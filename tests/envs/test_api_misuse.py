"""Python API misuse of the built-in envs: each is refused with one clear error, never accepted
silently or answered with a raw numpy error."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import saferl
from saferl.envs.vector import SEED_MAX

ENV_IDS = ("WheelchairSC-v0", "ExoGait-v0")


@pytest.mark.parametrize("env_id", ENV_IDS)
@pytest.mark.parametrize("bad", [True, False, 2.0, "4", 0, -3])
def test_make_env_refuses_a_num_envs_that_is_not_a_positive_int(env_id, bad):
    with pytest.raises(ValueError, match=r"^num_envs must be"):
        saferl.make_env(env_id, num_envs=bad)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_step_and_reset_after_close_raise_a_clear_error(env_id):
    env = saferl.make_env(env_id, num_envs=2)
    env.reset(seed=0)
    env.step(np.zeros(env.action_space.shape, np.float32))
    env.close()
    with pytest.raises(RuntimeError, match=r"^step: this \w+ was closed"):
        env.step(np.zeros(env.action_space.shape, np.float32))
    with pytest.raises(RuntimeError, match=r"^reset: this \w+ was closed"):
        env.reset(seed=0)
    env.close()  # closing twice is harmless


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_single_env_step_after_close_raises_a_clear_error(env_id):
    env = gym.make(f"saferl/{env_id}")
    env.reset(seed=0)
    env.close()
    with pytest.raises(RuntimeError, match=r"^step: this \w+ was closed"):
        env.step(env.action_space.sample())
    with pytest.raises(RuntimeError, match=r"^reset: this \w+ was closed"):
        env.reset()


@pytest.mark.parametrize("env_id", ENV_IDS)
@pytest.mark.parametrize("seed", [2**70, 2**64, -1])
def test_reset_with_a_seed_outside_64_bits_names_seed_and_the_range(env_id, seed):
    env = saferl.make_env(env_id, num_envs=2)
    with pytest.raises(ValueError, match=r"^seed: .*outside 0\.\.2\*\*64 - 1"):
        env.reset(seed=seed)
    with pytest.raises(ValueError, match=r"^seed: .*outside 0\.\.2\*\*64 - 1"):
        env.reset(seed=[0, seed])  # one seed per instance
    single = gym.make(f"saferl/{env_id}")
    with pytest.raises(ValueError, match=r"^seed: .*outside 0\.\.2\*\*64 - 1"):
        single.reset(seed=seed)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_reset_accepts_the_whole_64_bit_seed_range(env_id):
    env = saferl.make_env(env_id, num_envs=2)
    obs_max, _ = env.reset(seed=SEED_MAX)
    obs_list, _ = env.reset(seed=[SEED_MAX, 0])
    assert np.isfinite(obs_max).all() and np.isfinite(obs_list).all()
    # the top seed is not folded onto another one: 2**64 - 1 and 2**63 - 1 differ
    other, _ = env.reset(seed=2**63 - 1)
    again, _ = env.reset(seed=SEED_MAX)
    np.testing.assert_array_equal(again, obs_max)
    assert not np.array_equal(other, obs_max)


@pytest.mark.parametrize("bad", [1.5, "3", True])
def test_reset_refuses_a_seed_that_is_not_an_int(bad):
    env = saferl.make_env("WheelchairSC-v0", num_envs=1)
    with pytest.raises(ValueError, match=r"^seed: expected an int"):
        env.reset(seed=bad)
