"""ExoGait physics checks (docs/envs/exoskeleton.md checklist), with oracles that
are computed here independently of the simulator's equations."""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

from saferl.envs.exoskeleton import physics as W
from saferl.envs.exoskeleton import user as U
from saferl.utils import cache_dir

G = W.GRAVITY


def _energy(sim: W.WalkerSim, cfg: W.PhysicsConfig) -> float:
    """Total mechanical energy from the segment COM velocities (not from the solver's terms)."""
    mp = sim.M - 2 * (sim.m1 + sim.m2)
    ke = 0.5 * mp * (sim.vx**2 + sim.vy**2)
    pe = mp * G * sim.yp
    for i in range(2):
        a1, a2, w1, w2 = sim.a1[i], sim.a2[i], sim.w1[i], sim.w2[i]
        v1 = np.hypot(sim.vx + sim.c1 * np.cos(a1) * w1, sim.vy + sim.c1 * np.sin(a1) * w1)
        v2x = sim.vx + sim.L1 * np.cos(a1) * w1 + sim.c2 * np.cos(a2) * w2
        v2y = sim.vy + sim.L1 * np.sin(a1) * w1 + sim.c2 * np.sin(a2) * w2
        ke += 0.5 * sim.m1 * v1**2 + 0.5 * sim.I1 * w1**2
        ke += 0.5 * sim.m2 * (v2x**2 + v2y**2) + 0.5 * sim.I2 * w2**2
        pe += sim.m1 * G * (sim.yp - sim.c1 * np.cos(a1))
        pe += sim.m2 * G * (sim.yp - sim.L1 * np.cos(a1) - sim.c2 * np.cos(a2))
        # the foot: its rotation about the ankle and its weight's moment (its mass is lumped
        # with the shank's)
        ke += 0.5 * sim.IA * (w2 + sim.wb[i]) ** 2
        pe += sim.mf * G * sim.df * np.sin(a2 + sim.b[i])
    # harness springs and the constant BWS force are conservative
    pe += 0.5 * cfg.kx * sim.xp**2 + 0.5 * cfg.ky * (sim.yp - sim.y0) ** 2
    pe -= sim.beta * sim.M * G * sim.yp
    return float((ke + pe)[0])


def _swinging_walker(cfg: W.PhysicsConfig) -> W.WalkerSim:
    sim = W.WalkerSim(1, cfg, np.float64)
    sim.beta[:] = 1.0  # full support: pelvis floats on the harness springs
    sim.yp[:] = sim.y0
    sim.a1[:] = [[0.5], [-0.3]]
    sim.a2[:] = [[0.1], [-0.6]]
    sim.b[:] = [[0.2], [-0.3]]
    sim.wb[:] = [[1.0], [-2.0]]
    return sim


def _rest_energy(cfg: W.PhysicsConfig) -> float:
    sim = W.WalkerSim(1, cfg, np.float64)
    sim.beta[:] = 1.0
    # equilibrium pelvis height: ky (y - y0) = (beta - 1) M g = 0
    sim.yp[:] = sim.y0
    return _energy(sim, cfg)


def test_passive_energy_is_bounded_without_damping():
    cfg = W.PhysicsConfig(
        dt=0.001, contact=False, passive=False, joint_damping=0.0, harness_damping=False
    )
    sim = _swinging_walker(cfg)
    e0 = _energy(sim, cfg)
    swing = e0 - _rest_energy(cfg)
    assert swing > 5.0  # a real swing, several joules
    zero = np.zeros((2, 1))
    dev = 0.0
    for _ in range(10_000):  # 10 s at 1 ms
        sim.substep(zero, zero)
        dev = max(dev, abs(_energy(sim, cfg) - e0))
    assert dev <= 0.005 * swing, f"energy drift {dev:.4f} J of {swing:.2f} J"


def test_energy_never_increases_with_damping():
    cfg = W.PhysicsConfig(dt=0.001, contact=False, passive=False, joint_damping=0.5)
    sim = _swinging_walker(cfg)
    e0 = _energy(sim, cfg)
    swing = e0 - _rest_energy(cfg)
    zero = np.zeros((2, 1))
    samples = []
    for k in range(5_000):
        sim.substep(zero, zero)
        if k % 100 == 99:
            samples.append(_energy(sim, cfg))
    samples = np.array(samples)
    # symplectic Euler's bounded O(dt) oscillation is far below 0.5 % of the swing energy
    assert np.all(np.diff(samples) <= 0.005 * swing)
    assert samples[-1] < e0 - 0.2 * swing  # and damping really dissipates


def _linearised_periods(mass: float, height: float) -> np.ndarray:
    """Double-pendulum mode periods from a Lagrangian built here with sympy from the segment
    COM positions (thigh hinged at a fixed hip, shank+foot at the knee)."""
    p = W.body_parameters(mass, height, np.float64)
    a1, a2, w1, w2 = sp.symbols("a1 a2 w1 w2")
    m1, m2, c1, c2, L1, I1, I2 = (sp.Float(float(p[k])) for k in "m1 m2 c1 c2 L1 I1 I2".split())
    x1, y1 = c1 * sp.sin(a1), -c1 * sp.cos(a1)
    x2, y2 = L1 * sp.sin(a1) + c2 * sp.sin(a2), -L1 * sp.cos(a1) - c2 * sp.cos(a2)
    q, qd = [a1, a2], [w1, w2]

    def vel(expr):
        return sum(sp.diff(expr, qi) * wi for qi, wi in zip(q, qd, strict=False))

    T = (m1 * (vel(x1) ** 2 + vel(y1) ** 2) + m2 * (vel(x2) ** 2 + vel(y2) ** 2)) / 2
    T += (I1 * w1**2 + I2 * w2**2) / 2
    V = G * (m1 * y1 + m2 * y2)
    at0 = {a1: 0, a2: 0, w1: 0, w2: 0}
    Mm = np.array([[float(sp.diff(T, a, b).subs(at0)) for b in qd] for a in qd])
    K = np.array([[float(sp.diff(V, a, b).subs(at0)) for b in q] for a in q])
    evals, evecs = np.linalg.eig(np.linalg.solve(Mm, K))
    order = np.argsort(-evals.real)  # shortest period first
    return 2 * np.pi / np.sqrt(evals.real[order]), evecs.real[:, order]


def _measured_period(mode: np.ndarray, mass: float, height: float) -> float:
    cfg = W.PhysicsConfig(
        dt=0.001, contact=False, harness=False, passive=False, joint_damping=0.0, fixed_pelvis=True
    )
    sim = W.WalkerSim(1, cfg, np.float64)
    sim.set_body(np.array([mass]), np.array([height]))
    amp = 0.01 * mode / np.abs(mode).max()
    sim.a1[0] = amp[0]
    sim.a2[0] = amp[1]
    zero = np.zeros((2, 1))
    trace = []
    for _ in range(8000):
        sim.substep(zero, zero)
        trace.append(sim.a1[0, 0])
    x = np.array(trace)
    up = np.flatnonzero((x[:-1] < 0) & (x[1:] >= 0))
    # linear interpolation of the upward zero crossings
    t = up + (-x[up]) / (x[up + 1] - x[up])
    return float(np.mean(np.diff(t)) * cfg.dt)


@pytest.mark.parametrize(("mass", "height"), [(75.0, 1.75), (55.0, 1.55)])
def test_small_oscillation_periods_match_linearisation(mass, height):
    periods, modes = _linearised_periods(mass, height)
    if (mass, height) == (75.0, 1.75):
        # the oracle itself agrees with the documented values (0.70 s and 1.60 s)
        np.testing.assert_allclose(periods, [0.70, 1.60], rtol=0.01)
    for k in range(2):
        measured = _measured_period(modes[:, k], mass, height)
        assert measured == pytest.approx(periods[k], rel=0.01), (k, measured, periods[k])


# ------------------------------------------------------------------------------------------
# walking: the scripted unimpaired human on the treadmill, deterministic (no noise)


def _walk(mass, height, beta, period, dt=0.0025, steps=700, dtype=np.float64):
    n = len(mass)
    cfg = W.PhysicsConfig(dt=dt)
    sim = W.WalkerSim(n, cfg, dtype)
    sim.set_body(np.asarray(mass), np.asarray(height))
    sim.beta[:] = beta
    sim.v_belt[:] = W.belt_speed(np.asarray(period), np.asarray(height))
    hum = U.HumanController(n, dtype)
    hum.tau_max[:] = U.TAU_MAX_PER_KG * np.asarray(mass)
    hum.period[:] = period
    hum.ff[:] = U.interpolate_feedforward(mass, height, beta, period)
    idx = np.arange(n)
    W.place_on_reference(sim, idx, np.zeros(n), np.asarray(period))
    hum.reset(sim, idx, np.zeros(n))
    nsub = round(U.CONTROL_DT / dt)
    out = {"err": [], "fn": [], "yp": [], "touch": [], "ankle_err": []}
    for step in range(steps):
        hum.begin_step(sim, None)
        for k in range(nsub):
            th, tk, ta, ka, ca = hum.torques(sim, k * dt)
            sim.substep(th, tk, ta, ka, ca)
            if step >= 200:
                out["fn"].append(sim.fn.sum(axis=0).copy())
                out["touch"].append(sim.fn[0] > 0.02 * sim.M * G)
        hum.end_step(sim)
        if step >= 200:
            qh, qk, _, _ = sim.joint_angles()
            out["err"].append(np.concatenate([hum.qr_h - qh, hum.qr_k - qk]))
            out["ankle_err"].append(hum.qr_a - sim.b)
            out["yp"].append(sim.yp.copy())
    res = {k: np.array(v) for k, v in out.items()}
    res["rmse_deg"] = np.degrees(np.sqrt(np.mean(res["err"] ** 2, axis=(0, 1))))
    res["ankle_rmse_deg"] = np.degrees(np.sqrt(np.mean(res["ankle_err"] ** 2, axis=(0, 1))))
    touch = res["touch"]
    periods = []
    for i in range(n):
        on = np.flatnonzero(touch[1:, i] & ~touch[:-1, i])
        # debounce: touch-downs closer than 40 % of a stride are the same landing
        keep = [on[0]] if on.size else []
        for t in on[1:]:
            if (t - keep[-1]) * dt > 0.4 * period[i]:
                keep.append(t)
        periods.append(np.median(np.diff(keep)) * dt if len(keep) > 2 else np.nan)
    res["stride_period"] = np.array(periods)
    return res


BODIES = dict(
    mass=np.array([75.0, 60.0, 90.0]),
    height=np.array([1.75, 1.60, 1.85]),
    beta=np.array([0.25, 0.3, 0.2]),
    period=np.array([1.4, 1.3, 1.6]),
)


@pytest.fixture(scope="module")
def walk():
    return _walk(**BODIES)


def test_unimpaired_walker_tracks_reference_at_the_treadmill_cadence(walk):
    assert np.all(walk["rmse_deg"] < 5.0), walk["rmse_deg"]
    np.testing.assert_allclose(walk["stride_period"], BODIES["period"], rtol=0.02)


def test_stride_mean_vertical_load_equals_unsupported_weight(walk):
    period = BODIES["period"]
    dt = 0.0025
    for i in range(3):
        n_stride = round(period[i] / dt)
        fn = walk["fn"][: (len(walk["fn"]) // n_stride) * n_stride, i]
        mean_load = fn.reshape(-1, n_stride).mean(axis=1)
        expected = (1 - BODIES["beta"][i]) * BODIES["mass"][i] * G
        np.testing.assert_allclose(mean_load, expected, rtol=0.05)


def test_timestep_convergence_of_gait_metrics(walk):
    fine = _walk(**BODIES, dt=0.00125)
    for key in ("rmse_deg", "stride_period"):
        np.testing.assert_allclose(fine[key], walk[key], rtol=0.10, err_msg=key)
    np.testing.assert_allclose(fine["yp"].mean(axis=0), walk["yp"].mean(axis=0), rtol=0.10)


def test_reference_table_matches_fourier_series():
    phase = np.random.default_rng(0).random(500)
    q, dq = W.reference_fourier(phase)
    table = W.reference_lookup(phase, np.float64)
    for j in range(3):
        np.testing.assert_allclose(table[j], q[j], atol=1e-4)
        np.testing.assert_allclose(table[3 + j], dq[j], atol=3e-3)
    # the series reproduces the documented ranges (hip -14..29 deg, knee -2..58 deg, ankle
    # -16..11 deg)
    grid = np.degrees(W.reference_fourier(np.linspace(0, 1, 1001))[0])
    np.testing.assert_allclose(grid.min(axis=1), [-14.1, -1.8, -16.3], atol=0.3)
    np.testing.assert_allclose(grid.max(axis=1), [28.9, 58.1, 11.4], atol=0.3)


def test_reference_foot_strikes_with_the_heel_and_leaves_from_the_toes():
    """The sole's angle from the horizontal on the reference (hip - knee + ankle): toes up at
    heel strike, near flat in mid-stance, heel raised in terminal stance, toes down at toe-off."""
    (h, k, a), _ = W.reference_fourier(np.array([0.0, 0.3, 0.5, 0.6]))
    sole = np.degrees(h - k + a)
    assert sole[0] > 15.0 and abs(sole[1]) < 8.0 and sole[2] < -5.0 and sole[3] < -40.0


def test_winter_anthropometrics_nominal_values():
    p = W.body_parameters(75.0, 1.75, np.float64)
    assert float(p["L1"]) == pytest.approx(0.429, abs=1e-3)
    assert float(p["L2"]) == pytest.approx(0.499, abs=1e-3)
    assert float(p["m1"]) == pytest.approx(7.50)
    assert float(p["m2"]) == pytest.approx(4.575)
    assert float(p["I1"]) == pytest.approx(0.144, abs=1e-3)
    assert float(p["I2"]) == pytest.approx(0.147, abs=1e-3)
    assert float(p["L1"] + p["L2"]) == pytest.approx(0.53 * 1.75)
    # foot: 0.0145 M, heel 0.038 H behind and metatarsal heads 0.072 H ahead of the ankle, the
    # sole 0.039 H below it; inertia about the ankle m (0.475^2 + 0.5^2) l^2
    assert float(p["mf"]) == pytest.approx(1.0875)
    assert float(p["x_heel"]) == pytest.approx(-0.0665)
    assert float(p["x_ball"]) == pytest.approx(0.126)
    assert float(p["IA"]) == pytest.approx(1.0875 * (0.475**2 + 0.25) * 0.126**2)


def test_harness_and_contact_constants_scale_with_the_body():
    """Dimensional analysis: forces with M g, lengths with H, times with sqrt(H / g); at the
    nominal body the configured values hold."""
    cfg = W.PhysicsConfig()
    nominal = W.body_parameters(75.0, 1.75, np.float64, cfg)
    for name in W.BODY_SCALED:
        assert float(nominal[name]) == pytest.approx(getattr(cfg, name))
    p = W.body_parameters(60.0, 1.60, np.float64, cfg)
    m, h = 60.0 / 75.0, 1.60 / 1.75
    assert float(p["ky"]) == pytest.approx(cfg.ky * m / h)  # N/m
    assert float(p["cy"]) == pytest.approx(cfg.cy * m / np.sqrt(h))  # N s/m
    assert float(p["contact_k"]) == pytest.approx(cfg.contact_k * m / h**1.5)  # N/m^1.5
    assert float(p["contact_c"]) == pytest.approx(cfg.contact_c / np.sqrt(h))  # s/m
    # a static foot load in units of body weight then sinks the foot by the same fraction of H
    load = 0.7 * np.array([75.0, 60.0]) * G
    sink = (load / np.array([nominal["contact_k"], p["contact_k"]]).ravel()) ** (2 / 3)
    np.testing.assert_allclose(sink / [1.75, 1.60], sink[0] / 1.75, rtol=1e-9)
    fixed = W.body_parameters(60.0, 1.60, np.float64, W.PhysicsConfig(scale_with_body=False))
    assert float(fixed["ky"]) == cfg.ky


def test_foot_contact_points_follow_shank_and_ankle_rotation():
    """Heel and metatarsal points from rotation matrices built here: the sole at right angles to
    the shank at zero ankle angle, rotated by the shank angle plus the ankle angle."""
    p = W.body_parameters(75.0, 1.75, np.float64)
    rng = np.random.default_rng(1)
    a2 = rng.uniform(-1.0, 1.0, 50)
    b = rng.uniform(-0.5, 0.4, 50)
    rx, ry = W.foot_contact_offsets(a2, b, p["Lleg"], p["hf"], (p["x_heel"], p["x_ball"]))
    for j, x in enumerate((float(p["x_heel"]), float(p["x_ball"]))):
        for i in range(50):
            rot = lambda t: np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])  # noqa: E731
            ankle = rot(a2[i]) @ [0.0, -float(p["Lleg"])]
            point = ankle + rot(a2[i] + b[i]) @ [x, -float(p["hf"])]
            np.testing.assert_allclose([rx[j, i], ry[j, i]], point, atol=1e-12)
    # dorsiflexion (b > 0) lifts the toes: the ball rises relative to the heel
    _, ry0 = W.foot_contact_offsets(0.0, 0.0, p["Lleg"], p["hf"], (p["x_heel"], p["x_ball"]))
    _, ry1 = W.foot_contact_offsets(0.0, 0.2, p["Lleg"], p["hf"], (p["x_heel"], p["x_ball"]))
    assert ry0[0] == pytest.approx(ry0[1]) and ry1[1] > ry1[0]


def test_ankle_passive_moment_is_andersons():
    """Anderson's ankle curve (OpenSim sign, dorsiflexion +) with the joint damping, computed here
    from the published coefficients; a plantarflexor contracture moves the dorsiflexion stop."""
    sim = W.WalkerSim(3, W.PhysicsConfig(), np.float64)
    sim.b[:] = np.array([[-0.9, 0.0, 0.6], [-0.9, 0.0, 0.6]])
    sim.wb[:] = 0.5
    k1, k2, k3, k4 = -2.03, 38.11, 0.18, -12.12
    q = sim.b[0]
    expected = k1 * np.exp(k2 * (q - 0.52)) + k3 * np.exp(k4 * (q + 0.74)) - 0.1 * 0.5
    expected += W.ANKLE_STOP_K * np.maximum(W.ANKLE_PF_STOP - q, 0.0)  # the stop beyond 50 deg
    _, _, ta, slope = sim.passive_moments()
    np.testing.assert_allclose(ta[0], expected, rtol=1e-9)
    assert ta[0, 0] > 0.5 and ta[0, 2] < -10.0  # plantarflexion and dorsiflexion stops
    assert np.all(slope[0] < 0)  # restoring
    sim.ankle_th2[1] = 0.52 - np.deg2rad(15.0)
    _, _, ta, _ = sim.passive_moments()
    assert ta[1, 2] < 10 * ta[0, 2]  # the contracted ankle resists dorsiflexion far more


def test_light_foot_step_is_stable_under_stiff_contact_damping():
    """The foot's inertia about the ankle is ~0.01 kg m^2: an explicit step with the heel pad's
    damping (hundreds of N s/m at 7 cm from the ankle) would diverge at 2.5 ms. Standing on a
    flat foot, the linearly implicit step keeps the ankle still and the feet loaded."""
    sim = W.WalkerSim(1, W.PhysicsConfig(), np.float64)
    sim.beta[:] = 0.3
    W.place_on_reference(sim, np.arange(1), np.array([0.25]), np.array([1.4]))
    sim.a1[:] = 0.0
    sim.a2[:] = 0.0
    sim.b[:] = 0.0
    sim.wb[:] = 0.0
    _, ry = sim.contact_offsets()
    sim.yp[:] = sim.L1 - ry.min() - 0.01
    for _ in range(2000):  # 5 s, legs held straight by stiff joint torques
        qh, qk, qdh, qdk = sim.joint_angles()
        sim.substep(-2000 * qh - 50 * qdh, -2000 * qk - 50 * qdk, -300 * sim.b - 5 * sim.wb, 300, 5)
    assert np.all(np.isfinite(sim.b)) and np.abs(sim.b).max() < np.deg2rad(2.0)
    # vertical balance at rest: the feet carry the unsupported weight plus the harness spring's pull
    carried = 0.7 * 75 * G + float(sim.ky[0] * (sim.yp[0] - sim.y0[0]) + sim.cy[0] * sim.vy[0])
    assert sim.fn.sum() == pytest.approx(carried, rel=0.05)
    assert abs(float(sim.vy[0])) < 0.01
    assert np.all(sim.fn_pt > 0)  # heel and ball both carry load


def test_feedforward_cache_round_trip(tmp_path, monkeypatch):
    grid = U.feedforward_grid()
    monkeypatch.setenv("SAFERL_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(U, "_FF_GRIDS", {})
    path = cache_dir() / f"exo_ff_{U._grid_key()}.npz"
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, grid=grid * 2.0)  # a marked cache file must be read, not recomputed
    np.testing.assert_allclose(U.feedforward_grid(), grid * 2.0)
