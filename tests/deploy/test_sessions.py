"""Per-user state: a session's averages equal the env wrapper's, step by step."""

from __future__ import annotations

import numpy as np
import pytest

from saferl.deploy import SessionStore, load_policy
from saferl.registry import ENVS
from saferl.training.evaluation import load_run_model

N = 8


def test_sessions_keep_the_env_wrappers_averages_through_resets(wheelchair):
    """The raw env and the wrapped env run side by side from the same seeds; the store sees only
    raw observations and session ids. Its averages and actions equal what the wrapper and
    saferl's policy compute, also after some users start a new episode mid-way."""
    model = load_run_model(wheelchair.run_dir, checkpoint="last")
    rt = load_policy(wheelchair.onnx)
    store = SessionStore(rt)
    ids = [f"user-{i}" for i in range(N)]
    raw_env = ENVS.get(model.env_id)(N, **model.env_options)
    wrapped_env = model.env_factory(N, **model.env_options)
    try:
        raw, _ = raw_env.reset(seed=list(range(N)))
        wrapped, _ = wrapped_env.reset(seed=list(range(N)))
        reset = [True] * N
        for t in range(120):
            if t == 60:  # users 0-3 start a new episode (the others keep theirs)
                mask = np.arange(N) < 4
                raw, _ = raw_env.reset(options={"reset_mask": mask})
                wrapped, _ = wrapped_env.reset(options={"reset_mask": mask})
                reset = list(mask)
            action = store.act(raw, ids, reset)
            state = np.stack([store.get(i) for i in ids])
            np.testing.assert_array_equal(state, wrapped[:, 49:51], err_msg=f"step {t}")
            expected = model.policy.act(wrapped, wrapped_env, deterministic=True, rng=None)
            np.testing.assert_array_equal(action, np.clip(expected, -1, 1), err_msg=f"step {t}")
            raw, *_ = raw_env.step(action)
            wrapped, *_ = wrapped_env.step(action)
            reset = [False] * N
    finally:
        raw_env.close()
        wrapped_env.close()


def test_a_new_or_evicted_session_starts_an_episode(wheelchair):
    rt = load_policy(wheelchair.onnx)
    store = SessionStore(rt, max_sessions=2)
    rng = np.random.default_rng(0)
    obs = rng.standard_normal((3, rt.obs_dim)).astype(np.float32)
    store.act(obs[:1], ["a"])
    np.testing.assert_array_equal(store.get("a"), obs[0, [8, 9]])  # starts at the observation
    store.act(obs[1:2], ["a"])
    w = np.float32(0.05)
    expected = obs[0, [8, 9]] * (np.float32(1) - w) + w * obs[1, [8, 9]]
    np.testing.assert_array_equal(store.get("a"), expected)
    store.act(obs[:2], ["b", "c"])  # a is the least recently used: dropped
    assert store.get("a") is None and len(store) == 2 and store.evicted == 1
    store.act(obs[2:3], ["a"])
    np.testing.assert_array_equal(store.get("a"), obs[2, [8, 9]])
    assert store.drop("a") and not store.drop("a")


def test_a_stateful_policy_needs_session_ids(wheelchair, exo):
    store = SessionStore(load_policy(wheelchair.onnx))
    with pytest.raises(ValueError, match="session"):
        store.act(np.zeros((1, 49), np.float32))
    exo_policy = load_policy(exo.onnx)
    dim = exo_policy.spec["observation"]["dim"]  # the exoskeleton's observation size
    stateless = SessionStore(exo_policy)
    act_dim = exo_policy.spec["action"]["dim"]
    assert stateless.act(np.zeros((2, dim), np.float32)).shape == (2, act_dim)
    assert len(stateless) == 0
