"""Each cost indicator fires in a constructed situation and stays silent in its near twin."""

import numpy as np
import pytest

from saferl.envs.wheelchair import WheelchairSCVecEnv


def _empty_room(n=2, **chair):
    """An env whose instances have no furniture, partition or pedestrians (outer walls only)."""
    env = WheelchairSCVecEnv(n, impairment="none")
    env.reset(seed=0)
    env.discs[:] = [1e3, 1e3, 0.0]
    env.walls[:] = [1e3, 1e3, 1e3 + 1, 1e3 + 1]
    env.ped_on[:] = False
    env.ped[:] = [1e3, 1e3, 0.0, 0.0]
    env.bump_timer[:] = 0
    for k, val in chair.items():
        getattr(env, k)[:] = val
    env.a_long[:] = 0.0
    return env


def _robot(n, v, w=0.0):
    """Actions with alpha = 0 and the robot command (v, w) (v >= 0)."""
    a = np.zeros((n, 3), np.float32)
    a[:, 0] = -1.0
    a[:, 1] = v / 1.5
    a[:, 2] = w / 1.5
    return a


def test_driving_into_a_wall_at_speed_is_a_collision_and_a_tip_risk():
    # instance 0 heads into the east wall 0.05 m away at 1.2 m/s; instance 1 heads away from it
    env = _empty_room(x=8.0 - 0.55 - 0.05, y=4.0, psi=[0.0, np.pi], v=1.2)
    env.joy[:] = 0
    _, _, _, _, info = env.step(_robot(2, 1.2))
    c = info["cost_components"]
    assert c["collision"].tolist() == [1.0, 0.0]
    assert c["tip_risk"].tolist() == [1.0, 0.0]  # bump stop: 1.2 m/s -> 0 within 0.1 s
    assert c["comfort"][0] == 1.0
    assert env.v[0] == 0.0 and env.d_min[0] >= -1e-6  # bump stop, projected out
    assert info["cost"][0] == 1.0 and info["cost_magnitude"][0] > 0


def test_near_miss_requires_speed_and_a_small_gap():
    # both drive north along the west wall with a 0.05 m gap; only instance 0 is fast
    env = _empty_room(x=0.35 + 0.05, y=2.0, psi=np.pi / 2, v=[0.8, 0.2])
    a = np.array([[-1, 0.8 / 1.5, 0], [-1, 0.2 / 1.5, 0]], np.float32)
    _, _, _, _, info = env.step(a)
    c = info["cost_components"]
    assert c["collision"].tolist() == [0.0, 0.0]
    assert c["near_miss"].tolist() == [1.0, 0.0]


def test_social_cost_for_speed_inside_a_personal_zone():
    env = _empty_room(x=3.0, y=4.0, psi=0.0, v=[1.0, 0.3])
    env.ped_on[:, 0] = True
    env.ped[:, 0] = [3.1, 4.7, 1.0, 0.0]  # 0.7 m to the side, walking along
    env.ped_box[:, 0] = [0.25, 0.25, 7.75, 7.75]
    a = np.array([[-1, 1.0 / 1.5, 0], [-1, 0.3 / 1.5, 0]], np.float32)
    _, _, _, _, info = env.step(a)
    c = info["cost_components"]
    assert c["social"].tolist() == [1.0, 0.0]
    assert c["collision"].tolist() == [0.0, 0.0]


def test_lateral_acceleration_beyond_one_m_s2_is_uncomfortable():
    env = _empty_room(x=4.0, y=4.0, psi=0.0, v=1.2, omega=[1.2, 0.3])
    a = np.array([[-1, 1.2 / 1.5, 1.2 / 1.5], [-1, 1.2 / 1.5, 0.3 / 1.5]], np.float32)
    _, _, _, _, info = env.step(a)
    # |v w| = 1.2 * 1.2 (after the wheel-speed limit ~1.3) > 1.0 vs 1.2 * 0.3 = 0.36
    assert info["cost_components"]["comfort"].tolist() == [1.0, 0.0]
    assert np.abs(env.a_lat[0]) > 1.0 > np.abs(env.a_lat[1])


def test_reaching_the_goal_slowly_terminates_with_the_success_bonus():
    env = _empty_room()
    g = env.goal_xy[np.arange(2), env.goal]
    env.x[:] = g[:, 0]
    env.y[:] = g[:, 1]
    env.v[:] = [0.0, 0.6]
    env.geo_prev[:] = env._geodesic(env.x, env.y, env.goal, env.map_id)
    _, r, term, _, info = env.step(_robot(2, 0.0))
    assert term.tolist() == [True, False]  # instance 1 is still too fast (0.2 m/s limit)
    assert r[0] > 9.0 and r[1] < 1.0
    assert info["final_info"]["episode_length"][0] == 1


@pytest.mark.parametrize("alpha_action,expected", [(1.0, 1.0), (-1.0, 0.0)])
def test_authority_is_recorded_in_the_observation(alpha_action, expected):
    env = _empty_room(n=1)
    a = np.array([[alpha_action, 0.0, 0.0]], np.float32)
    obs, *_ = env.step(a)
    assert obs[0, 12] == pytest.approx(expected)
