"""The SafeVectorEnv contract, on a tiny toy env (tests/envs/_toy.py)."""

import pickle

import numpy as np
import pytest
from _toy import ToyEnv, ToyVecEnv
from scipy import stats

from saferl.envs.vector import InstanceRNG, SafeVectorEnv


def _actions(t, n, offset=0):
    # deterministic per-instance actions (depend on global index and time only)
    g = np.arange(offset, offset + n)
    return np.sin(0.7 * t + 1.3 * g)[:, None].astype(np.float32)


def _rollout(env, steps, offset=0, seed=5):
    obs, _ = env.reset(seed=seed)
    out = [obs]
    for t in range(steps):
        obs, r, te, tr, info = env.step(_actions(t, env.num_envs, offset))
        out += [obs, r[:, None], te[:, None], tr[:, None], info["cost"][:, None]]
    return np.concatenate(out, axis=1)


def test_same_step_autoreset_keeps_final_obs_and_returns_reset_obs():
    env = ToyVecEnv(6)
    env.reset(seed=0)
    seen_done = False
    for _ in range(60):
        x_before = env.x.copy()
        obs, _, te, tr, info = env.step(np.ones((6, 1), np.float32))
        done = te | tr
        if not done.any():
            assert "final_obs" not in info
            continue
        seen_done = True
        assert info["final_obs"].dtype == object and info["final_obs"].shape == (6,)
        np.testing.assert_array_equal(info["_final_obs"], done)
        np.testing.assert_array_equal(info["_final_info"], done)
        for i in range(6):
            if done[i]:
                final = info["final_obs"][i]
                # terminal obs: the state after the step (x_before + 0.3 + noise)
                assert abs(final[0] - x_before[i] - 0.3) < 0.6
                assert te[i] == (abs(final[0]) > 1.0)
                # returned obs is a fresh episode: x in [-0.5, 0.5), clock reset
                assert -0.5 <= obs[i, 0] < 0.5 and env.elapsed[i] == 0
                assert info["final_info"]["episode_length"][i] >= 1
            else:
                assert info["final_obs"][i] is None
    assert seen_done


def test_truncation_at_horizon_and_episode_statistics():
    env = ToyVecEnv(3, horizon=5)
    env.reset(seed=1)
    total_r = np.zeros(3)
    total_c = np.zeros(3)
    for _ in range(5):
        _, r, te, tr, info = env.step(np.zeros((3, 1), np.float32))
        total_r += r
        total_c += info["cost"]
        assert not te.any()
    assert tr.all()
    np.testing.assert_allclose(info["final_info"]["episode_return"], total_r, rtol=1e-5)
    np.testing.assert_allclose(info["final_info"]["episode_cost"], total_c)
    np.testing.assert_array_equal(info["final_info"]["episode_length"], [5, 5, 5])


def test_results_do_not_depend_on_how_instances_are_split():
    whole = _rollout(ToyVecEnv(8), 45)
    parts = [
        _rollout(ToyVecEnv(3, instance_offset=0), 45, 0),
        _rollout(ToyVecEnv(1, instance_offset=3), 45, 3),
        _rollout(ToyVecEnv(4, instance_offset=4), 45, 4),
    ]
    np.testing.assert_array_equal(whole, np.concatenate(parts, axis=0))


def test_same_seed_same_trajectory_and_different_seed_differs():
    a = _rollout(ToyVecEnv(4), 30, seed=11)
    b = _rollout(ToyVecEnv(4), 30, seed=11)
    c = _rollout(ToyVecEnv(4), 30, seed=12)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_state_dict_mid_episode_gives_identical_continuation():
    env = ToyVecEnv(5)
    env.reset(seed=3)
    for t in range(7):
        env.step(_actions(t, 5))
    state = pickle.loads(pickle.dumps(env.state_dict()))
    ref = [env.step(_actions(t, 5)) for t in range(7, 40)]
    other = ToyVecEnv(5)
    other.load_state_dict(state)
    for t, (o, r, te, tr, info) in zip(range(7, 40), ref, strict=True):
        o2, r2, te2, tr2, info2 = other.step(_actions(t, 5))
        np.testing.assert_array_equal(o, o2)
        np.testing.assert_array_equal(r, r2)
        np.testing.assert_array_equal(te | tr, te2 | tr2)
        np.testing.assert_array_equal(info["cost"], info2["cost"])


def _plain(obj):
    if isinstance(obj, dict):
        return all(isinstance(k, str) and _plain(v) for k, v in obj.items())
    if isinstance(obj, (list, tuple)):
        return all(_plain(v) for v in obj)
    return isinstance(obj, (np.ndarray, int, float, bool, str, type(None)))


def test_state_dict_holds_only_plain_containers():
    env = ToyVecEnv(2)
    env.reset(seed=0)
    assert _plain(env.state_dict())
    for arr in env.state_dict()["rng"].values():
        if isinstance(arr, np.ndarray):
            assert arr.dtype == np.int64  # torch.from_numpy-able, no uint64


def test_load_state_dict_rejects_other_batch_size():
    env = ToyVecEnv(2)
    env.reset(seed=0)
    with pytest.raises(ValueError, match="num_envs"):
        ToyVecEnv(3).load_state_dict(env.state_dict())


def test_single_env_equals_instance_of_batch_across_episodes():
    vec = ToyVecEnv(4)
    single = ToyEnv(instance_offset=2)
    vobs, _ = vec.reset(seed=9)
    sobs, _ = single.reset(seed=9)
    np.testing.assert_array_equal(vobs[2], sobs)
    episodes = 0
    for t in range(80):
        acts = _actions(t, 4)
        vobs, vr, vte, vtr, vinfo = vec.step(acts)
        sobs, sr, ste, str_, sinfo = single.step(acts[2])
        assert sr == pytest.approx(float(vr[2]), abs=0)
        assert sinfo["cost"] == float(vinfo["cost"][2])
        assert (ste, str_) == (bool(vte[2]), bool(vtr[2]))
        if ste or str_:
            episodes += 1
            np.testing.assert_array_equal(sobs, vinfo["final_obs"][2])
            sobs, _ = single.reset()
        np.testing.assert_array_equal(sobs, vobs[2])
    assert episodes >= 2


def test_bad_actions_raise_value_error_naming_the_argument():
    env = ToyVecEnv(3)
    env.reset(seed=0)
    with pytest.raises(ValueError, match="actions: expected shape"):
        env.step(np.zeros((2, 1)))
    bad = np.zeros((3, 1))
    bad[1, 0] = np.nan
    with pytest.raises(ValueError, match=r"actions: non-finite.*\[1\]"):
        env.step(bad)
    single = ToyEnv()
    single.reset(seed=0)
    with pytest.raises(ValueError, match="action: expected shape"):
        single.step(np.zeros(2))


def test_out_of_box_actions_are_clipped():
    a = ToyVecEnv(2)
    b = ToyVecEnv(2)
    a.reset(seed=4)
    b.reset(seed=4)
    oa = a.step(np.full((2, 1), 7.0))[0]
    ob = b.step(np.full((2, 1), 1.0))[0]
    np.testing.assert_array_equal(oa, ob)


def test_step_before_reset_and_bad_num_envs():
    with pytest.raises(RuntimeError, match="reset"):
        ToyVecEnv(1).step(np.zeros((1, 1)))
    with pytest.raises(ValueError, match="num_envs"):
        ToyVecEnv(0)
    assert issubclass(ToyVecEnv, SafeVectorEnv)


def test_instance_rng_streams_are_uniform_normal_and_independent():
    rng = InstanceRNG(2000)
    rng.seed(123)
    u = rng.uniform(8)
    assert u.min() >= 0 and u.max() < 1
    assert stats.kstest(u.ravel(), "uniform").pvalue > 1e-3
    z = rng.normal(5)
    assert stats.kstest(z.ravel(), "norm").pvalue > 1e-3
    # neighbouring instances and consecutive draws are uncorrelated
    assert abs(np.corrcoef(u[:-1, 0], u[1:, 0])[0, 1]) < 0.1
    assert abs(np.corrcoef(u[:, 0], u[:, 1])[0, 1]) < 0.1
    # subset draws advance only the selected instances
    before = rng.counter.copy()
    rng.uniform(3, np.array([5, 7]))
    assert (rng.counter - before).tolist().count(3) == 2


def test_instance_rng_stream_depends_on_seed_and_global_index_only():
    a = InstanceRNG(10)
    a.seed(7)
    b = InstanceRNG(4, instance_offset=6)
    b.seed(7)
    np.testing.assert_array_equal(a.words(5)[6:], b.words(5))
