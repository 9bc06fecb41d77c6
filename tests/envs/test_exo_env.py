"""ExoGait-v0 as an environment: the behaviour checks on the full env (impaired humans, exo,
costs), determinism, state round trips, API contracts and input validation."""

from __future__ import annotations

import copy
import itertools
import warnings

import gymnasium as gym
import numpy as np
import pytest

import saferl.envs  # noqa: F401  (registers the ids)
from saferl.envs import check_safe_env
from saferl.envs.exoskeleton import (
    COSTS,
    EXO_CONSTRAINTS,
    TAU_EXO_MAX,
    ExoGaitEnv,
    ExoGaitVecEnv,
    make_vec,
)
from saferl.envs.exoskeleton import physics as W
from saferl.envs.exoskeleton import user as U
from saferl.envs.vector import ScriptedPolicy

LEVELS = ("none", "mild", "moderate", "severe")


def rollout(env: ExoGaitVecEnv, policy: str | None = None, steps: int = 1000, seed: int = 0):
    """Run ``steps`` steps; returns per-instance joint RMSE (deg), episode cost, components,
    pelvis height / (0.53 H) trace and the rewards."""
    obs, _ = env.reset(seed=seed)
    pol = env.SCRIPTED_POLICIES[policy or "zero_torque"]()
    pol.reset(env)
    sq, cost, heights, rewards = [], [], [], []
    comps = {k: np.zeros(env.num_envs) for k in EXO_CONSTRAINTS.names}
    for _ in range(steps):
        obs, r, _, _, info = env.step(pol.act(obs, env))
        # joint error from the observation (index 12-15: reference - angle)
        sq.append((obs[:, 12:16].astype(np.float64) ** 2).mean(axis=1))
        cost.append(info["cost"])
        rewards.append(r)
        heights.append(env.sim.yp / (0.53 * env.sim.H))
        for k, v in info["cost_components"].items():
            comps[k] += v
    return {
        "rmse": np.degrees(np.sqrt(np.mean(sq, axis=0))),
        "cost": np.sum(cost, axis=0),
        "components": comps,
        "height": np.array(heights),
        "reward": np.sum(rewards, axis=0),
    }


@pytest.fixture(scope="module")
def by_level():
    return {lvl: rollout(ExoGaitVecEnv(16, impairment=lvl)) for lvl in LEVELS}


def test_unimpaired_walker_with_zero_exo_tracks_the_reference_without_cost(by_level):
    res = by_level["none"]
    # < 5 deg; over 192 seeded instances 1 reached 5.3 deg, hence the 90 % / 6 deg form
    assert np.mean(res["rmse"] < 5.0) >= 0.9 and res["rmse"].max() < 6.0, res["rmse"]
    assert res["rmse"].mean() < 4.5
    # the combined limit is 25 per episode; the unimpaired walker should stay far below it
    assert res["cost"].mean() <= 1.0, {k: v.sum() for k, v in res["components"].items()}


def test_gait_degrades_monotonically_with_impairment(by_level):
    rmse = [by_level[lvl]["rmse"].mean() for lvl in LEVELS]
    cost = [by_level[lvl]["cost"].mean() for lvl in LEVELS]
    assert all(a < b for a, b in itertools.pairwise(rmse)), rmse
    assert all(a <= b for a, b in itertools.pairwise(cost)), cost
    assert cost[-1] > 10 * EXO_CONSTRAINTS.limit  # severe unassisted: far beyond the limit
    # the severe walker sinks: lower mean pelvis height than the unimpaired one
    assert by_level["severe"]["height"].mean() < by_level["none"]["height"].mean() - 0.01


def test_severe_bilateral_weakness_collapses_into_the_harness():
    """Walker level (as in the prototype's strength sweep): s = 0.15 on both legs, beta = 0.4,
    zero exo torque -> the pelvis sinks into the collapse zone and the harness, not the legs,
    carries the weight; the unimpaired control walker stays up."""
    n = 2
    mass, height = np.array([75.0, 75.0]), np.array([1.75, 1.75])
    beta, period = np.array([0.4, 0.4]), np.array([1.3, 1.3])
    sim = W.WalkerSim(n, W.PhysicsConfig(), np.float64)
    sim.set_body(mass, height)
    sim.beta[:] = beta
    sim.v_belt[:] = W.belt_speed(period, height)
    hum = U.HumanController(n, np.float64)
    hum.tau_max[:] = U.TAU_MAX_PER_KG * mass
    hum.period[:] = period
    hum.ff[:] = U.interpolate_feedforward(mass, height, beta, period)
    hum.strength[:] = [[0.15, 1.0], [0.15, 1.0]]  # instance 0 weak, instance 1 unimpaired
    idx = np.arange(n)
    W.place_on_reference(sim, idx, np.zeros(n), period)
    hum.reset(sim, idx, np.zeros(n))
    ys, loads = [], []
    for _ in range(500):
        hum.begin_step(sim, None)
        for k in range(4):
            th, tk, ta, ka, ca = hum.torques(sim, k * 0.0025)
            sim.substep(th, tk, ta, ka, ca)
        hum.end_step(sim)
        ys.append(sim.yp / sim.y0)
        loads.append(sim.fn.sum(axis=0) / ((1 - beta) * mass * W.GRAVITY))
    ys, loads = np.array(ys[200:]), np.array(loads[200:])
    zone = COSTS.collapse_ratio  # the `collapse` cost's threshold, y_p / y0
    # weak: sunk into the collapse zone on average, bouncing on the harness (measured: 48 % of
    # the time below it, mean 0.89 y0, legs carrying 22 % of their share)
    assert ys[:, 0].mean() < zone and np.mean(ys[:, 0] < zone) > 0.4
    assert loads[:, 0].mean() < 0.5  # the legs carry less than half their share
    assert np.all(ys[:, 1] > zone + 0.05)  # unimpaired: never near it
    assert loads[:, 1].mean() > 0.9  # and its legs carry their share


def test_pd_guidance_restores_severe_gait_at_a_measurable_cost(by_level):
    guided = rollout(ExoGaitVecEnv(16, impairment="severe"), "pd_guidance")
    zero = by_level["severe"]
    # measured: mean 3.2 deg, 15 of 16 below 4.8 deg, one at 8.7 deg (a foot dropping past the
    # foot lifter's slack, docs/envs/exoskeleton.md)
    assert np.mean(guided["rmse"] < 8.0) >= 0.9 and guided["rmse"].mean() < 5.0, guided["rmse"]
    assert guided["rmse"].mean() < 0.5 * zero["rmse"].mean()
    # the guidance drives contracted joints through their safe range: cost above the limit
    assert guided["cost"].mean() > EXO_CONSTRAINTS.limit
    assert guided["components"]["rom"].sum() > 0


# ------------------------------------------------------------------------------------------
# foot loading of the unimpaired walker with zero exo torque against human gait data
# (docs/envs/exoskeleton.md, "Foot force against human gait data")


def stance_peaks(force: np.ndarray, on_level: float) -> tuple[np.ndarray, np.ndarray]:
    """Split one foot's vertical force ``(T,)`` into stances (runs of F > ``on_level``, complete
    ones only) and return, per stance, the first peak F1 (max over 5-45 % of the stance) and
    the second F2 (max over 55-95 %)."""
    on = force > on_level
    edge = np.diff(on.astype(np.int8))
    starts, ends = np.flatnonzero(edge == 1) + 1, np.flatnonzero(edge == -1) + 1
    f1, f2 = [], []
    for s in starts:
        later = ends[ends > s]
        if not later.size:
            break
        e = later[0]
        u = (np.arange(e - s) + 0.5) / (e - s)  # fraction of the stance
        if e - s >= 10:  # a stance, not a touch
            f1.append(force[s:e][(u >= 0.05) & (u <= 0.45)].max())
            f2.append(force[s:e][(u >= 0.55) & (u <= 0.95)].max())
    return np.array(f1), np.array(f2)


def test_stance_peaks_splits_a_synthetic_double_hump():
    t = np.arange(300)
    stance = (t % 100) < 60
    u = (t % 100) / 60
    force = np.where(stance, 1.0 + 0.2 * np.sin(2 * np.pi * u) ** 2, 0.0)  # humps at 25 %, 75 %
    force[(t % 100) == 15] = 1.5  # inside 5-45 %
    f1, f2 = stance_peaks(force, 0.02)
    assert len(f1) == 2  # the third stance is cut by the end of the record
    np.testing.assert_allclose(f1, 1.5)
    np.testing.assert_allclose(f2, 1.2, atol=1e-3)


@pytest.fixture(scope="module")
def foot_loads():
    """64 seeded unimpaired walkers, standard challenge, zero exo torque, one episode without
    autoreset, the first second dropped: each foot's vertical force per step (the maximum over
    the step's substeps) in units of (1 - beta) M g, whether both insoles read > 0.02 M g, and
    each walker's belt speed and body-weight support."""
    n = 64
    env = ExoGaitVecEnv(n, impairment="none")
    obs, _ = env.reset(seed=0)
    unsupported = (1.0 - env.sim.beta) * env.sim.M * W.GRAVITY  # fixed for the episode
    force, double = [], []
    for _ in range(999):
        obs, *_ = env.step(np.zeros((n, 4), np.float32))
        force.append(env.fn_peak / unsupported)
        double.append((obs[:, 18:20] > 0.02).all(axis=1))
    threshold = 0.02 * env.sim.M * W.GRAVITY / unsupported
    return {
        "force": np.array(force[100:]),  # (T, 2 feet, N)
        "double": np.array(double[100:]),
        "on": threshold,
        "v": env.sim.v_belt.astype(np.float64),
        "beta": env.sim.beta.astype(np.float64),
    }


@pytest.fixture(scope="module")
def walker_peaks(foot_loads):
    """Each walker's median first and second stance peaks (units of (1 - beta) M g)."""
    f = foot_loads["force"]
    n = f.shape[2]
    f1, f2 = np.full(n, np.nan), np.full(n, np.nan)
    for i in range(n):
        peaks = [stance_peaks(f[:, leg, i], foot_loads["on"][i]) for leg in range(2)]
        first = np.concatenate([p[0] for p in peaks])
        second = np.concatenate([p[1] for p in peaks])
        assert first.size >= 6, i  # 900 steps hold >= 3 stances per foot at T <= 1.8 s
        f1[i], f2[i] = np.median(first), np.median(second)
    return f1, f2


def test_unimpaired_gait_has_double_support(foot_loads):
    # the reference's stance is 60-62 % of the stride, i.e. ~20-24 % double support
    double = foot_loads["double"]
    assert 0.15 < double.mean() < 0.32, double.mean()
    assert double.mean(axis=0).min() > 0.10


def test_first_stance_peak_rises_with_belt_speed_as_in_human_gait(foot_loads, walker_peaks):
    """Human first peaks rise with speed by ~0.2-0.3 body weights per m/s (F1h = 0.9 + 0.2 v,
    anchored on Keller et al. 1996's 1.2 BW at 1.5 m/s); the walkers' F1 against belt speed."""
    f1, _ = walker_peaks
    slope = np.polyfit(foot_loads["v"], f1, 1)[0]
    assert 0.10 <= slope <= 0.50, slope
    assert np.median(f1) >= 0.98  # the stance carries the walker's weight


def test_stance_force_has_the_human_double_hump(walker_peaks):
    """Push-off: the late-stance peak is about as high as the loading peak (humans ~0.9-1.0)."""
    f1, f2 = walker_peaks
    assert np.median(f2 / f1) >= 0.85, np.median(f2 / f1)


def first_peak_bound(v: np.ndarray, beta: np.ndarray) -> np.ndarray:
    """The human first peak F1h(v) = 0.9 + 0.2 v body weights, in units of (1 - beta) M g under a
    constant-force support (the body's motion unchanged): P* = 1 + (F1h - 1) / (1 - beta)."""
    return 1.0 + (0.9 + 0.2 * v - 1.0) / (1.0 - beta)


def test_first_stance_peak_stays_near_the_human_bound(foot_loads, walker_peaks):
    """Guard of the measured level (docs: 75 % of these 64 walkers within P* + 0.10, 78-92 % at
    seeds 1-3; the largest excess 0.20)."""
    f1, _ = walker_peaks
    excess = f1 - first_peak_bound(foot_loads["v"], foot_loads["beta"])
    assert np.mean(excess <= 0.10) >= 0.70, np.mean(excess <= 0.10)
    assert excess.max() <= 0.25, excess.max()


@pytest.mark.xfail(
    strict=True,
    reason="75 % of these walkers have F1 <= P* + 0.10 (78-92 % at seeds 1-3; target 90 %): the "
    "slowest short walkers exceed it by 0.01-0.06, the fastest tall ones by up to 0.2 "
    "(docs/envs/exoskeleton.md)",
)
def test_first_stance_peak_meets_the_human_bound(foot_loads, walker_peaks):
    f1, _ = walker_peaks
    bound = first_peak_bound(foot_loads["v"], foot_loads["beta"])
    assert np.mean(f1 <= bound + 0.10) >= 0.9


def test_spline_pulse_applies_hip_flexion_torque_in_late_stance_and_swing():
    env = ExoGaitVecEnv(4, impairment="none")
    obs, _ = env.reset(seed=3)
    pol = env.SCRIPTED_POLICIES["spline_pulse"]()
    pol.reset(env)
    peak = 0.0
    for _ in range(200):
        a = pol.act(obs, env)
        lp = env.human.leg_phase.T  # (N, 2)
        assert np.all(a[:, 1::2] == 0)  # knees untouched
        assert np.all(a[:, 0::2] >= 0)  # flexion only
        assert np.all(a[:, 0::2][(lp < 0.5) | (lp > 0.8)] == 0)  # outside the pulse window
        obs, *_ = env.step(a)
        peak = max(peak, float(obs[:, 22:26:2].max()))
    assert 0.45 < peak <= 0.5  # the pulse peaks at 0.5 x 60 N m


# ------------------------------------------------------------------------------------------
# actuator, costs, reward


def test_actuator_bandwidth_slew_and_torque_rate_cost():
    env = ExoGaitVecEnv(2, impairment="none")
    env.reset(seed=0)
    a = np.zeros((2, 4), np.float32)
    a[:, 0] = 1.0  # full hip torque, right leg
    _, _, _, _, info = env.step(a)
    # one 10 ms step: the first-order lag alone would reach 60 (1 - 1/e) = 37.9 N m; the
    # 2000 N m/s slew limit caps it at 20 N m
    np.testing.assert_allclose(env.exo_h[0], 20.0, rtol=1e-5)
    assert np.all(info["cost_components"]["torque_rate"] == 1.0)
    for _ in range(30):
        _, _, _, _, info = env.step(a)
    np.testing.assert_allclose(env.exo_h[0], TAU_EXO_MAX, rtol=1e-3)
    assert np.all(info["cost_components"]["torque_rate"] == 0.0)  # steady torque, no rate


def test_cuff_force_cost_from_knee_torque():
    env = ExoGaitVecEnv(2, impairment="none")
    obs, _ = env.reset(seed=0)
    a = np.zeros((2, 4), np.float32)
    a[:, 1] = 0.4  # 24 N m at the right knee: F_shank = 24 / (0.6 L_leg) ~ 90 N < 130 N
    for _ in range(20):
        obs, _, _, _, info = env.step(a)
    f_shank = np.abs(env.exo_k[0]) / (0.6 * env.sim.Lleg)
    assert np.all(f_shank < 130.0)
    np.testing.assert_allclose(obs[:, 27], f_shank / 130.0, rtol=1e-4)
    a[:, 1] = 1.0  # 60 N m: ~230 N > 130 N
    for _ in range(20):
        obs, _, _, _, info = env.step(a)
    assert np.all(info["cost_components"]["cuff_force"] == 1.0)


def test_info_cost_contract():
    env = ExoGaitVecEnv(8, impairment="random", challenge="hard")
    env.reset(seed=1)
    rng = np.random.default_rng(0)
    for _ in range(50):
        _, _, _, _, info = env.step(rng.uniform(-1, 1, (8, 4)).astype(np.float32))
        comps = info["cost_components"]
        assert list(comps) == list(EXO_CONSTRAINTS.names)
        stacked = np.stack(list(comps.values()))
        assert set(np.unique(stacked)) <= {0.0, 1.0}
        np.testing.assert_array_equal(info["cost"], stacked.max(axis=0))
        mag = info["cost_magnitude"]
        assert mag.dtype == np.float32 and np.all(mag >= 0)
        np.testing.assert_array_equal(mag > 0, info["cost"] > 0)
    assert EXO_CONSTRAINTS.limit == 25 and EXO_CONSTRAINTS.strict_limit == 10


def test_reward_terms_and_objectives():
    """Both objectives see the same trajectory (the reward does not feed back); their per-step
    difference must equal the weighted effort terms of the reward, recomputed here from the state."""
    envs = {o: ExoGaitVecEnv(4, impairment="moderate", objective=o) for o in ("assist", "rehab")}
    for e in envs.values():
        e.reset(seed=5)
    rng = np.random.default_rng(0)
    for _ in range(60):
        a = rng.uniform(-0.6, 0.6, (4, 4)).astype(np.float32)
        r = {o: e.step(a)[1] for o, e in envs.items()}
        env = envs["assist"]
        exo = ((env.exo_h / 60) ** 2).sum(0) + ((env.exo_k / 60) ** 2).sum(0)
        tmax = env.human.tau_max
        hum = (((env.human.act_h / tmax) ** 2).sum(0) + ((env.human.act_k / tmax) ** 2).sum(0)) / 4
        expected = (0.1 - 0.02) * exo - 0.2 * hum  # r_assist - r_rehab
        np.testing.assert_allclose(r["assist"] - r["rehab"], expected, atol=1e-5)
        # rehab = tracking term - 0.1 exo effort - 0.05 torque-rate term
        e = envs["rehab"]
        err = np.concatenate([e.human.qr_h - e.sim.a1, e.human.qr_k - (e.sim.a1 - e.sim.a2)])
        track = np.exp(-(err.astype(np.float64) ** 2).sum(0) / (2 * 0.1**2))
        rate = (((e.exo_h - e.prev_h) / 60) ** 2).sum(0) + (((e.exo_k - e.prev_k) / 60) ** 2).sum(0)
        np.testing.assert_allclose(r["rehab"], track - 0.1 * exo - 0.05 * rate, atol=1e-5)


def test_hard_challenge_pushes_the_pelvis_and_easy_is_slower():
    hard = ExoGaitVecEnv(32, impairment="none", challenge="hard")
    hard.reset(seed=0)
    pushed = np.zeros(32, bool)
    for _ in range(300):
        hard.step(np.zeros((32, 4), np.float32))
        pushed |= hard.sim.f_push != 0
    assert pushed.mean() > 0.3  # rate 0.3/s over 3 s
    assert np.all(np.abs(hard.push_f[hard.push_f != 0]) >= 40.0)
    easy = ExoGaitVecEnv(64, impairment="none", challenge="easy")
    easy.reset(seed=0)
    assert easy.human.period.min() >= 1.3 and easy.human.period.max() <= 1.6
    std = ExoGaitVecEnv(64, impairment="none")
    std.reset(seed=0)
    assert easy.sim.beta.mean() > std.sim.beta.mean() + 0.05


# ------------------------------------------------------------------------------------------
# determinism, batching, precision, state


def _trajectory(env, steps, seed, actions):
    obs, _ = env.reset(seed=seed)
    out = [obs]
    for k in range(steps):
        obs, r, _, _, info = env.step(actions[k])
        out.append(np.concatenate([obs, r[:, None], info["cost"][:, None]], axis=1))
    return out


def test_same_seed_gives_identical_trajectories_and_other_seeds_differ():
    rng = np.random.default_rng(0)
    acts = rng.uniform(-1, 1, (120, 3, 4)).astype(np.float32)
    a = _trajectory(ExoGaitVecEnv(3, challenge="hard"), 120, 11, acts)
    b = _trajectory(ExoGaitVecEnv(3, challenge="hard"), 120, 11, acts)
    c = _trajectory(ExoGaitVecEnv(3, challenge="hard"), 120, 12, acts)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
    assert not np.allclose(a[-1], c[-1])


def test_batched_env_matches_single_instance_env():
    rng = np.random.default_rng(1)
    acts = rng.uniform(-1, 1, (150, 4)).astype(np.float32)
    single = ExoGaitEnv(impairment="moderate")
    batch = ExoGaitVecEnv(3, impairment="moderate")
    o1, _ = single.reset(seed=5)
    ob, _ = batch.reset(seed=5)
    np.testing.assert_allclose(o1, ob[0], atol=1e-6)
    for k in range(150):
        others = rng.uniform(-1, 1, (2, 4)).astype(np.float32)
        o1, r1, _, _, i1 = single.step(acts[k])
        ob, rb, _, _, ib = batch.step(np.concatenate([acts[k][None], others]))
        np.testing.assert_allclose(o1, ob[0], atol=1e-4, err_msg=f"step {k}")
        assert r1 == pytest.approx(float(rb[0]), abs=1e-4)
        assert i1["cost"] == ib["cost"][0]


def test_instance_streams_do_not_depend_on_the_worker_split():
    whole = ExoGaitVecEnv(4)
    part = ExoGaitVecEnv(2, instance_offset=2)
    ow, _ = whole.reset(seed=3)
    op, _ = part.reset(seed=3)
    np.testing.assert_allclose(ow[2:], op, atol=1e-6)
    np.testing.assert_array_equal(whole.level[2:], part.level)
    for _ in range(50):
        ow, *_ = whole.step(np.zeros((4, 4), np.float32))
        op, *_ = part.step(np.zeros((2, 4), np.float32))
    np.testing.assert_allclose(ow[2:], op, atol=1e-4)


def test_float32_and_float64_agree_over_an_episode():
    r32 = rollout(ExoGaitVecEnv(8, impairment="none", dtype="float32"), steps=1000, seed=2)
    r64 = rollout(ExoGaitVecEnv(8, impairment="none", dtype="float64"), steps=1000, seed=2)
    np.testing.assert_allclose(r32["rmse"], r64["rmse"], rtol=0.10)
    np.testing.assert_allclose(r32["height"].mean(0), r64["height"].mean(0), rtol=0.01)
    # and step by step for the first second
    e32, e64 = (
        ExoGaitVecEnv(8, impairment="none"),
        ExoGaitVecEnv(8, impairment="none", dtype="float64"),
    )
    o32, _ = e32.reset(seed=2)
    o64, _ = e64.reset(seed=2)
    for _ in range(100):
        o32, *_ = e32.step(np.zeros((8, 4), np.float32))
        o64, *_ = e64.step(np.zeros((8, 4), np.float32))
    assert np.abs(o32[:, :4] - o64[:, :4]).max() < np.deg2rad(1.0)


def test_state_dict_round_trip_mid_episode_continues_identically():
    env = ExoGaitVecEnv(4, impairment="random", challenge="hard")
    env.reset(seed=9)
    rng = np.random.default_rng(2)
    acts = rng.uniform(-1, 1, (80, 4, 4)).astype(np.float32)
    for k in range(37):
        env.step(acts[k])
    state = copy.deepcopy(env.state_dict())
    obs_then = env._observe().copy()
    ref = [env.step(acts[37 + k])[0] for k in range(40)]
    env.load_state_dict(state)
    again = [env.step(acts[37 + k])[0] for k in range(40)]
    fresh = ExoGaitVecEnv(4, impairment="random", challenge="hard")
    fresh.load_state_dict(state)
    np.testing.assert_array_equal(fresh._observe(), obs_then)  # observable right after loading
    other = [fresh.step(acts[37 + k])[0] for k in range(40)]
    for x, y, z in zip(ref, again, other, strict=True):
        np.testing.assert_array_equal(x, y)
        np.testing.assert_array_equal(x, z)
    with pytest.raises(ValueError, match="options"):
        ExoGaitVecEnv(4, impairment="random", challenge="easy").load_state_dict(state)


def test_partial_reset_matches_a_full_reset_of_that_instance():
    """reset_mask resets a subset through a gathered sub-batch (settling, delay buffers realigned
    to the batch's ring pointer); the reset instance must continue exactly as a fresh env."""
    alone = ExoGaitVecEnv(1, impairment="moderate")
    o_alone, _ = alone.reset(seed=21)
    mixed = ExoGaitVecEnv(2, impairment="moderate")
    mixed.reset(seed=3)
    for _ in range(7):  # move the batch's ring-buffer pointer
        mixed.step(np.zeros((2, 4), np.float32))
    o_mixed, _ = mixed.reset(seed=21, options={"reset_mask": np.array([True, False])})
    np.testing.assert_allclose(o_mixed[0], o_alone[0], atol=1e-6)
    rng = np.random.default_rng(4)
    for _ in range(60):
        a = rng.uniform(-1, 1, (2, 4)).astype(np.float32)
        o_alone, *_ = alone.step(a[:1])
        o_mixed, *_ = mixed.step(a)
        np.testing.assert_allclose(o_mixed[0], o_alone[0], atol=1e-4)


def test_autoreset_at_truncation_keeps_the_final_observation():
    env = ExoGaitVecEnv(2, episode_steps=30)
    env.reset(seed=0)
    for _k in range(30):
        obs, _, term, trunc, info = env.step(np.zeros((2, 4), np.float32))
    assert np.all(trunc) and not np.any(term)
    assert info["final_obs"][0].shape == (34,)
    assert not np.allclose(info["final_obs"][0], obs[0])  # obs is the new episode's
    assert np.all(env.elapsed == 0)
    assert env.constraints.limit == pytest.approx(0.75)


# ------------------------------------------------------------------------------------------
# API contracts and validation


def test_gymnasium_make_passes_gymnasium_and_safe_env_checkers():
    env = gym.make("saferl/ExoGait-v0")
    check_safe_env(env)
    from gymnasium.utils.env_checker import check_env

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a checker warning is a failure, as for the wheelchair
        check_env(env.unwrapped, skip_render_check=True)
    venv = gym.make_vec("saferl/ExoGait-v0", num_envs=3, vectorization_mode="vector_entry_point")
    assert isinstance(venv.unwrapped if hasattr(venv, "unwrapped") else venv, ExoGaitVecEnv)
    check_safe_env(venv)


def test_make_vec_factory_and_scripted_policies():
    env = make_vec(num_envs=3, impairment="mild")
    assert isinstance(env, ExoGaitVecEnv) and env.num_envs == 3
    assert env.constraints is EXO_CONSTRAINTS
    assert ExoGaitVecEnv.constraints is EXO_CONSTRAINTS  # readable without an instance
    assert set(ExoGaitVecEnv.SCRIPTED_POLICIES) == {
        "zero_torque",
        "pd_guidance",
        "spline_pulse",
        "aan_impedance",
    }
    obs, _ = env.reset(seed=0)
    for name, factory in ExoGaitVecEnv.SCRIPTED_POLICIES.items():
        pol = factory()
        assert isinstance(pol, ScriptedPolicy) and pol.name == name
        pol.reset(env)
        a = pol.act(obs, env)
        assert a.shape == (3, 4) and a.dtype == np.float32
        assert env.action_space.contains(a)


def test_observation_layout():
    env = ExoGaitVecEnv(3, impairment="none")
    obs, _ = env.reset(seed=4)
    qh, qk, qdh, _qdk = env.sim.joint_angles()
    np.testing.assert_allclose(obs[:, 0:4], np.stack([qh[0], qk[0], qh[1], qk[1]], 1), atol=1e-6)
    np.testing.assert_allclose(obs[:, 4:8:2], (qdh * 0.1).T, atol=1e-6)
    np.testing.assert_allclose(obs[:, 12:16], obs[:, 8:12] - obs[:, 0:4], atol=1e-6)
    np.testing.assert_allclose(obs[:, 16] ** 2 + obs[:, 17] ** 2, 1.0, atol=1e-5)
    np.testing.assert_allclose(obs[:, 29], env.sim.beta, atol=1e-6)
    np.testing.assert_allclose(obs[:, 30:32], env.sim.b.T, atol=1e-6)
    np.testing.assert_allclose(obs[:, 32:34], env.sim.wb.T * 0.1, atol=1e-6)
    assert obs.shape == (3, 34) and obs.dtype == np.float32
    priv = ExoGaitVecEnv(3, impairment=["none", "mild", "severe"], privileged_obs=True)
    o, _ = priv.reset(seed=0)
    np.testing.assert_array_equal(o[:, 34:], np.eye(4)[[0, 1, 3]])


@pytest.mark.parametrize(
    ("kwargs", "argname"),
    [
        ({"impairment": "sever"}, "impairment"),
        ({"impairment": ["none"] * 2}, "impairment"),
        ({"challenge": "extreme"}, "challenge"),
        ({"objective": "fun"}, "objective"),
        ({"physics_dt": 0.003}, "physics_dt"),
        ({"dtype": "float16"}, "dtype"),
        ({"episode_steps": 0}, "episode_steps"),
    ],
)
def test_bad_options_raise_clear_errors(kwargs, argname):
    with pytest.raises(ValueError, match=argname):
        ExoGaitVecEnv(3, **kwargs)


def test_bad_actions_raise_clear_errors():
    env = ExoGaitVecEnv(2)
    env.reset(seed=0)
    with pytest.raises(ValueError, match="actions"):
        env.step(np.zeros((2, 3), np.float32))
    bad = np.zeros((2, 4), np.float32)
    bad[1, 2] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        env.step(bad)
    single = ExoGaitEnv()
    single.reset(seed=0)
    with pytest.raises(ValueError, match="action"):
        single.step(np.zeros(5, np.float32))


def test_rgb_array_render_shows_the_walker_and_cost_lamps():
    env = ExoGaitEnv(render_mode="rgb_array", impairment="none")
    env.reset(seed=0)
    frame = env.render()
    assert frame.shape == (400, 400, 3) and frame.dtype == np.uint8
    a = np.array([1.0, -1.0, 1.0, -1.0], np.float32)  # bang-bang: torque-rate lamp lights
    for _ in range(3):
        env.step(a)
        a = -a
    lit = env.render()
    assert not np.array_equal(frame, lit)
    assert (lit != 245).any(axis=2).mean() > 0.01  # something drawn


# ------------------------------------------------------------------------------------------
# larger-sample versions of the behaviour statistics (run with -m slow)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_unimpaired_statistics_over_many_instances(seed):
    env = ExoGaitVecEnv(64, impairment="none")
    res = rollout(env, steps=999, seed=seed)  # 999: stay inside the episode (no autoreset)
    # no walker falls; a toe scuff of a few steps (`trip`) happens to ~1 in 64
    assert res["cost"].max() <= 10 and res["cost"].mean() < 0.5
    assert np.mean(res["rmse"] < 5.0) >= 0.95 and res["rmse"].max() < 6.0
    y = res["height"][500:] * (0.53 * env.sim.H)
    excursion = y.max(0) - y.min(0)  # pelvis vertical excursion: 4-8 cm (docs: plausibility)
    assert np.all((excursion > 0.03) & (excursion < 0.09))


@pytest.mark.slow
def test_monotone_degradation_over_many_instances():
    rmse = [rollout(ExoGaitVecEnv(64, impairment=lvl), seed=7)["rmse"].mean() for lvl in LEVELS]
    assert all(a < b for a, b in itertools.pairwise(rmse)), rmse
