"""The velocity-constrained MuJoCo tasks (the mujoco extra; skipped without it)."""

from __future__ import annotations

import copy

import gymnasium as gym
import numpy as np
import pytest

import saferl
from saferl.envs import check_safe_env
from saferl.envs.adapters import VELOCITY_TASKS, GymnasiumVecEnv

mujoco = pytest.importorskip("mujoco")

# Safety-Gymnasium's v1 thresholds (safety_gymnasium/tasks/safe_velocity/*_v1.py)
THRESHOLDS = {
    "HopperVelocity-v0": 0.7402,
    "HalfCheetahVelocity-v0": 3.2096,
    "Walker2dVelocity-v0": 2.3415,
    "SwimmerVelocity-v0": 0.2282,
    "AntVelocity-v0": 2.6222,
    "HumanoidVelocity-v0": 1.4149,
}


def test_thresholds_limits_and_speed_definitions_are_safety_gymnasiums():
    assert set(VELOCITY_TASKS) == set(THRESHOLDS)
    for name, task in VELOCITY_TASKS.items():
        assert task.task.threshold == THRESHOLDS[name]
        assert task.task.planar == (name in ("AntVelocity-v0", "HumanoidVelocity-v0"))
        assert task.constraints.limit == 25.0 and task.constraints.episode_length == 1000


def _speed_from_state(env, robot: str, before: np.ndarray, after: np.ndarray) -> float:
    dt = env.unwrapped.dt
    v = (after - before) / dt
    return float(np.hypot(v[0], v[1])) if robot in ("Ant", "Humanoid") else float(v[0])


def _position(env, robot: str) -> np.ndarray:
    data = env.unwrapped.data
    if robot == "Ant":
        return data.body("torso").xpos[:2].copy()
    if robot == "Humanoid":  # centre of mass of all bodies
        mass = env.unwrapped.model.body_mass[:, None]
        return (np.sum(mass * data.xipos, axis=0) / mass.sum())[:2].copy()
    return data.qpos[:2].copy()


@pytest.mark.parametrize("name", ["HopperVelocity-v0", "AntVelocity-v0", "HumanoidVelocity-v0"])
def test_cost_equals_an_independent_computation_from_the_mujoco_state(name):
    task = VELOCITY_TASKS[name]
    env = task.single()
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    costs, seen = 0.0, 0
    # push hard forward at times so both cost values occur
    for t in range(300):
        before = _position(env, task.task.robot)
        a = rng.uniform(-1, 1, env.action_space.shape) * (0.4 if t % 50 < 25 else 1.0)
        *_, term, trunc, info = env.step(a.astype(np.float32))
        speed = _speed_from_state(env, task.task.robot, before, _position(env, task.task.robot))
        assert info["speed"] == pytest.approx(speed, rel=1e-6, abs=1e-6)
        assert info["cost"] == float(speed > THRESHOLDS[name])
        assert info["cost_components"] == {"velocity": info["cost"]}
        costs += info["cost"]
        seen += 1
        if term or trunc:
            env.reset()
    if name == "HopperVelocity-v0":
        assert 0 < costs < seen  # both sides of the threshold were checked
    # (random torques do not carry the Ant or the Humanoid past their thresholds: their cost
    # is 0 here, and equal to the independent one on every step)


def test_hopper_velocity_passes_the_checker_and_resumes_bit_exactly():
    env = saferl.make_env("HopperVelocity-v0", num_envs=2)
    assert isinstance(env, GymnasiumVecEnv) and env.max_episode_steps == 1000
    check_safe_env(env, seed=1, steps=60)
    rng = np.random.default_rng(3)
    actions = rng.uniform(-0.5, 0.5, (400, 2, 3)).astype(np.float32)
    env.reset(seed=5)
    for a in actions[:250]:
        env.step(a)
    state = copy.deepcopy(env.state_dict())
    ref = [env.step(a) for a in actions[250:]]
    fresh = saferl.make_env("HopperVelocity-v0", num_envs=2)
    fresh.load_state_dict(state)
    for t, a in enumerate(actions[250:]):
        got = fresh.step(a)
        for x, y in zip(got[:4], ref[t][:4], strict=True):
            assert np.array_equal(x, y), t
        assert np.array_equal(got[4]["cost"], ref[t][4]["cost"])


def test_gymnasium_ids_and_the_v4_robots():
    single = gym.make("saferl/HalfCheetahVelocity-v0")
    obs, _ = single.reset(seed=0)
    *_, info = single.step(single.action_space.sample())
    assert obs.shape == (17,) and "cost" in info
    vec = gym.make_vec(
        "saferl/SwimmerVelocity-v0", num_envs=2, vectorization_mode="vector_entry_point"
    )
    assert isinstance(vec, GymnasiumVecEnv) and vec.constraints.names == ("velocity",)
    # Ant: v5 observes contact forces by default (105 dims), v4 (Safety-Gymnasium's base) not
    assert saferl.make_env("AntVelocity-v0").single_observation_space.shape == (105,)
    v4 = saferl.make_env("AntVelocity-v0", version="v4")
    assert v4.single_observation_space.shape == (27,) and v4.name == "AntVelocity-v0[v4]"
