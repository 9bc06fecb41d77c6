"""Named observation layouts and named cost thresholds: the layout is what ``_observe`` writes,
names resolve to the same dims as indices, and the docs hold the tables the code renders."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from saferl.config import ObsEMAConfig, load_config
from saferl.envs.docs import constraints_markdown
from saferl.envs.exoskeleton import ExoGaitVecEnv
from saferl.envs.exoskeleton import costs as exo_costs
from saferl.envs.exoskeleton.observation import OBS_PRIVILEGED as EXO_OBS
from saferl.envs.layout import ObsField, ObsLayout
from saferl.envs.wheelchair import WheelchairSCVecEnv
from saferl.envs.wheelchair import costs as wc_costs
from saferl.envs.wheelchair.observation import OBS_ASSIST_PRIVILEGED as WC_OBS
from saferl.envs.wrappers import ObservationEMA

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs" / "envs"


def _run(env, steps: int, seed: int = 0) -> np.ndarray:
    obs, _ = env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        a = rng.uniform(-1, 1, (env.num_envs, *env.single_action_space.shape))
        obs, *_ = env.step(a.astype(np.float32))
    return obs


@pytest.mark.parametrize("mode", ["blend", "residual", "assist"])
@pytest.mark.parametrize("privileged", [False, True])
def test_wheelchair_layout_covers_the_observation_and_privileged_dims_are_last(mode, privileged):
    env = WheelchairSCVecEnv(2, action_mode=mode, privileged_obs=privileged)
    layout = env.obs_layout
    assert layout.size == env.single_observation_space.shape[0]
    trailing = [d for f in layout if f.privileged for d in f.dims]
    assert trailing == list(range(layout.size - env.privileged_obs_dims, layout.size))


def test_wheelchair_observation_fields_hold_what_their_names_say():
    env = WheelchairSCVecEnv(16, action_mode="assist", privileged_obs=True, impairment="severe")
    obs = _run(env, 40)
    L, c = env.obs_layout, env.chair
    col = lambda name: obs[:, L[name].at]  # noqa: E731
    np.testing.assert_allclose(col("speed") * L["speed"].scale, env.v, atol=1e-6)
    np.testing.assert_allclose(col("turn_rate") * c.omega_max0, env.omega, atol=1e-6)
    np.testing.assert_array_equal(col("joystick"), env.joy[:, 0])
    np.testing.assert_array_equal(col("joystick_mean"), env.joy[:, 1])
    np.testing.assert_array_equal(col("joystick_std"), env.joy[:, 2])
    assert (col("joystick_std") > 0).any()  # severe tremor: the evidence is there
    np.testing.assert_allclose(col("sectors") * L["sectors"].scale, env.sectors, atol=1e-6)
    np.testing.assert_allclose(col("authority"), env.prev_alpha)
    np.testing.assert_allclose(col("time_left"), 1 - env.elapsed / 600, atol=1e-6)
    # goal offsets in the chair's frame: their norm is the distance to each goal / 8
    gx, gy = col("goal_dx") * 8, col("goal_dy") * 8
    dist = np.hypot(env.goal_xy[:, :, 0] - env.x[:, None], env.goal_xy[:, :, 1] - env.y[:, None])
    np.testing.assert_allclose(np.hypot(gx, gy), np.minimum(dist, 80), atol=1e-4)
    np.testing.assert_allclose(col("planner_posterior").sum(axis=1), 1, atol=1e-5)
    np.testing.assert_array_equal(col("level").argmax(axis=1), env.human.level)
    np.testing.assert_array_equal(col("goal").argmax(axis=1), env.goal)


def test_exoskeleton_observation_fields_hold_what_their_names_say():
    env = ExoGaitVecEnv(4, privileged_obs=True, impairment="moderate")
    obs = _run(env, 30)
    L = env.obs_layout
    assert L.size == env.single_observation_space.shape[0] == 38
    col = lambda name: obs[:, L[name].at].T  # noqa: E731  (fields, N) like the sim's arrays
    qh, qk, qdh, _ = env.sim.joint_angles()
    np.testing.assert_allclose(col("hip_angle"), qh, atol=1e-6)
    np.testing.assert_allclose(col("knee_angle"), qk, atol=1e-6)
    np.testing.assert_allclose(col("hip_rate") * L["hip_rate"].scale, qdh, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(col("knee_error"), env.human.qr_k - qk, atol=1e-6)
    np.testing.assert_allclose(col("hip_torque") * 60.0, env.exo_h, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(col("bws"), env.sim.beta, atol=1e-6)
    np.testing.assert_allclose(col("phase_sin") ** 2 + col("phase_cos") ** 2, 1, atol=1e-5)
    np.testing.assert_array_equal(col("level").argmax(axis=0), env.level)


def test_docs_hold_the_tables_the_code_renders():
    wheelchair = (DOCS / "wheelchair.md").read_text()
    exo = (DOCS / "exoskeleton.md").read_text()
    assert WC_OBS.markdown() in wheelchair
    assert constraints_markdown(wc_costs.WHEELCHAIR_CONSTRAINTS) in wheelchair
    assert EXO_OBS.markdown() in exo
    assert constraints_markdown(exo_costs.EXO_CONSTRAINTS) in exo


def test_constraint_descriptions_and_costs_follow_the_named_thresholds():
    t = wc_costs.CostThresholds(near_miss_distance=0.2, social_distance=1.5)
    cs = wc_costs.wheelchair_constraints(t)
    assert "0.20 m" in cs["near_miss"].threshold and "1.5 m" in cs["social"].threshold
    z = np.zeros(3, np.float32)
    d_min = np.array([0.15, 0.15, 0.05], np.float32)
    speed = np.array([1.0, 0.1, 1.0], np.float32)
    ped = np.array([1.0, 1.0, 1e3], np.float32)
    args = (np.zeros(3, bool), z, d_min, speed, z, z, z, ped)
    default, _ = wc_costs.step_costs(wc_costs.COSTS, *args)
    wider, _ = wc_costs.step_costs(t, *args)
    np.testing.assert_array_equal(default["near_miss"], [0, 0, 1])
    np.testing.assert_array_equal(wider["near_miss"], [1, 0, 1])
    np.testing.assert_array_equal(default["social"], [0, 0, 0])
    np.testing.assert_array_equal(wider["social"], [1, 0, 0])
    e = exo_costs.exo_constraints(exo_costs.CostThresholds(cuff_thigh=180.0), 500)
    assert "F_thigh > 180 N" in e["cuff_force"].threshold
    assert e.limit == 12.5 and e.strict_limit == 5.0


def test_the_default_training_config_names_the_tremor_evidence_and_builds_dims_8_9():
    cfg = load_config(ROOT / "src" / "saferl" / "configs" / "default.yaml")
    assert cfg.env.obs_ema.dims == ["joystick_std"]
    env = ObservationEMA(WheelchairSCVecEnv(2, action_mode="assist"), cfg.env.obs_ema.dims)
    assert env.dims.tolist() == [8, 9]


@pytest.mark.parametrize(
    ("dims", "ok"),
    [(["joystick_std", 0], True), (["8", "joystick_std.turn"], True), ([True], False),
     (["a b"], False), ([], False)],
)  # fmt: skip
def test_obs_ema_config_takes_indices_and_names(dims, ok):
    if ok:
        got = ObsEMAConfig(dims=dims).dims
        assert [type(d) for d in got] == [type(d) if not str(d).isdigit() else int for d in dims]
    else:
        with pytest.raises(ValueError):  # pydantic.ValidationError
            ObsEMAConfig(dims=dims)


def test_a_layout_refuses_overlaps_gaps_and_repeated_names():
    f = lambda n, s: ObsField(n, s, "-", 1.0, n)  # noqa: E731
    with pytest.raises(ValueError, match="once each"):
        ObsLayout([f("a", slice(0, 2)), f("b", slice(1, 3))])
    with pytest.raises(ValueError, match="once each"):
        ObsLayout([f("a", slice(0, 1)), f("b", slice(2, 3))])
    with pytest.raises(ValueError, match="distinct"):
        ObsLayout([f("a", slice(0, 1)), f("a", slice(1, 2))])
    layout = ObsLayout([f("b", slice(1, 3)), f("a", slice(0, 1))])
    assert layout.names == ("a", "b") and layout.resolve(["b", 0]) == [1, 2, 0]
