"""ObservationEMA on the real wheelchair env, checked against a per-instance scalar recomputation
from the unwrapped env's observation stream (the wrapper must not change the dynamics)."""

from __future__ import annotations

import numpy as np
import pytest

from saferl.envs.wheelchair import WheelchairSCVecEnv, make_vec
from saferl.envs.wrappers import ObservationEMA

DIMS, WEIGHTS = [8, 9, 0], [0.05, 0.3]
N, STEPS = 6, 610  # past the 600-step time limit: every instance restarts


def _actions(t: int) -> np.ndarray:
    rng = np.random.default_rng(t)
    return rng.uniform(-1, 1, (N, 3)).astype(np.float32)


def _raw_stream():
    """(obs, final_obs, done) per step of the unwrapped env with the same seed and actions."""
    env = make_vec(N, privileged_obs=True)
    obs, _ = env.reset(seed=5)
    out = [(obs.copy(), None, np.zeros(N, bool))]
    for t in range(STEPS):
        obs, _, te, tr, info = env.step(_actions(t))
        done = te | tr
        out.append((obs.copy(), info.get("final_obs"), done))
    return out


def test_averages_match_a_scalar_recomputation_with_episode_restarts():
    wrapped = ObservationEMA(make_vec(N, privileged_obs=True), DIMS, WEIGHTS)
    d = WheelchairSCVecEnv.OBS_DIM
    assert wrapped.single_observation_space.shape == (d + 6 + 7,)
    assert wrapped.privileged_obs_dims == 7
    raw = _raw_stream()
    obs, _ = wrapped.reset(seed=5)
    ema = {(i, w, k): float(raw[0][0][i, k]) for i in range(N) for w in WEIGHTS for k in DIMS}
    restarts = 0

    def expected(i: int, x: np.ndarray, table: dict) -> np.ndarray:
        feats = [table[(i, w, k)] for w in WEIGHTS for k in DIMS]
        return np.concatenate([x[:d], np.asarray(feats, np.float32), x[d:]])

    np.testing.assert_allclose(obs[0], expected(0, raw[0][0][0], ema), rtol=0, atol=1e-6)
    for t in range(STEPS):
        obs, _, te, tr, info = wrapped.step(_actions(t))
        x, final, done = raw[t + 1]
        np.testing.assert_array_equal(te | tr, done)  # same dynamics
        for i in range(N):
            upd = {
                key: (1 - key[1]) * v + key[1] * float((final[i] if done[i] else x[i])[key[2]])
                for key, v in ema.items()
                if key[0] == i
            }
            if done[i]:  # the terminal observation carries the ended episode's averages
                got = info["final_obs"][i]
                np.testing.assert_allclose(got, expected(i, final[i], upd), rtol=0, atol=1e-5)
                upd = {key: float(x[i][key[2]]) for key in upd}  # the next episode restarts
                restarts += 1
            ema.update(upd)
            np.testing.assert_allclose(obs[i], expected(i, x[i], ema), rtol=0, atol=1e-5)
    assert restarts >= N  # the check covered episode boundaries


def test_state_dict_continues_bit_exactly():
    a = ObservationEMA(make_vec(N), DIMS, WEIGHTS)
    a.reset(seed=1)
    for t in range(40):
        a.step(_actions(t))
    state = a.state_dict()
    rest_a = [a.step(_actions(100 + t))[0] for t in range(30)]
    b = ObservationEMA(make_vec(N), DIMS, WEIGHTS)
    b.reset(seed=99)
    b.load_state_dict(state)
    rest_b = [b.step(_actions(100 + t))[0] for t in range(30)]
    for x, y in zip(rest_a, rest_b, strict=True):
        np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize(
    ("dims", "weights", "match"),
    [([44], [0.1], "^dims: "), ([8, 8], [0.1], "^dims: "), ([8], [0.0], "^weights: ")],
)
def test_bad_arguments_name_the_argument(dims, weights, match):
    # 44.. are the privileged dims: averaging them would leak them to the actor.
    with pytest.raises(ValueError, match=match):
        ObservationEMA(make_vec(2, privileged_obs=True), dims, weights)


def test_partial_reset_restarts_only_the_reset_instances():
    env = ObservationEMA(make_vec(N), DIMS, WEIGHTS)
    env.reset(seed=2)
    for t in range(30):
        obs, *_ = env.step(_actions(t))
    mask = np.zeros(N, bool)
    mask[[1, 4]] = True
    before = env._ema.copy()
    obs, _ = env.reset(options={"reset_mask": mask})
    np.testing.assert_array_equal(env._ema[~mask], before[~mask])  # running episodes keep them
    np.testing.assert_array_equal(env._ema[mask][:, 0], obs[mask][:, DIMS])  # restarted


def test_state_of_other_averages_is_refused():
    a = ObservationEMA(make_vec(N), DIMS, WEIGHTS)
    a.reset(seed=1)
    b = ObservationEMA(make_vec(N), [8, 9], WEIGHTS)
    b.reset(seed=1)
    with pytest.raises(ValueError, match=r"^obs_ema: the state averages dims \[8, 9, 0\]"):
        b.load_state_dict(a.state_dict())


def test_names_from_the_layout_select_the_same_dims_as_indices():
    by_index = ObservationEMA(make_vec(N, action_mode="assist"), [8, 9, 0, 46], WEIGHTS)
    names = ["joystick_std", "speed", "planner_posterior.goal0"]
    by_name = ObservationEMA(make_vec(N, action_mode="assist"), names, WEIGHTS)
    assert by_name.dims.tolist() == [8, 9, 0, 46]
    a, _ = by_index.reset(seed=3)
    b, _ = by_name.reset(seed=3)
    np.testing.assert_array_equal(a, b)
    for t in range(20):
        a = by_index.step(_actions(t))[0]
        b = by_name.step(_actions(t))[0]
        np.testing.assert_array_equal(a, b)
    assert by_name.state_dict()["dims"] == [8, 9, 0, 46]  # a checkpoint stores indices


def test_unknown_name_is_one_line_naming_the_field_and_the_allowed_names():
    with pytest.raises(ValueError) as err:
        ObservationEMA(make_vec(2), ["tremor_x", "joystick_std"], WEIGHTS)
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith("dims: unknown observation field 'tremor_x'")
    assert "joystick_std" in msg and "sectors" in msg and "0..43" in msg


def test_a_privileged_field_name_is_refused_like_its_indices():
    with pytest.raises(ValueError, match=r"^dims: \[44, 45, 46, 47\] must be distinct"):
        ObservationEMA(make_vec(2, privileged_obs=True), ["level"], WEIGHTS)


def test_names_on_an_env_without_a_layout_are_refused():
    class NoLayout:
        num_envs = 2
        privileged_obs_dims = 0
        single_observation_space = make_vec(1).single_observation_space

    with pytest.raises(ValueError, match=r"^dims: .*declares no observation layout"):
        ObservationEMA(NoLayout(), ["speed"], WEIGHTS)
