"""Walker physics: a planar walker on a body-weight-supported treadmill.

The physics of ``ExoGait-v0`` (docs/envs/exoskeleton.md), vectorised over ``N`` instances as
struct-of-arrays (the simulated walker's controller is :mod:`saferl.envs.exoskeleton.user`):

* :func:`reference_fourier` / :func:`reference_lookup`: the normative hip and knee reference gait.
* :func:`body_parameters`: Winter anthropometrics for a body of mass ``M`` and height ``H``.
* :class:`WalkerSim`: pelvis ``(x, y)`` plus two 2-segment legs (absolute segment angles
  ``alpha1`` = hip angle, ``alpha2`` = hip - knee), a rolling foot with Hunt-Crossley normal force
  and a stick-slip belt anchor, dynamic body-weight support with a harness catch, Anderson passive
  joint moments; semi-implicit Euler with an analytic Schur-complement solve (no ``np.linalg``).
* :func:`belt_speed` (the treadmill) and :func:`place_on_reference` (initial posture).

Conventions: leg arrays have shape ``(2, N)`` with row 0 = right, row 1 = left. Joint angles in
rad: hip flexion +, knee flexion +. Ground at ``y = 0``; the belt moves at ``-v_belt`` along x.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import numpy as np

__all__ = [
    "GRAVITY",
    "REF_COEFFS",
    "PhysicsConfig",
    "WalkerSim",
    "belt_speed",
    "body_parameters",
    "foot_offset",
    "place_on_reference",
    "reference_fourier",
    "reference_lookup",
]

GRAVITY = 9.81

# --------------------------------------------------------------------------------------------
# Anthropometrics: Winter, Biomechanics and Motor Control of Human Movement, Table 4.1
# (segment lengths as fractions of H, masses as fractions of M, COM and radius of gyration as
# fractions of the segment length). Shank and foot form one rigid segment (ankle locked).
WINTER = {
    "thigh_len": 0.245,  # hip -> knee, x H
    "leg_len": 0.246,  # knee -> ankle, x H
    "foot_h": 0.039,  # ankle -> sole, x H
    "thigh_mass": 0.100,  # x M
    "shank_foot_mass": 0.061,  # "foot and leg", x M
    "thigh_com": 0.433,  # from the hip, x thigh length
    "shank_com": 0.606,  # from the knee, x leg length
    "thigh_gyr": 0.323,  # radius of gyration about the COM, x thigh length
    "shank_gyr": 0.416,  # x leg length
}
FOOT_ROLL_RATIO = 0.3  # roll-over radius / leg length (Hansen et al. 2004, arc approximation)
FOOT_LEN = 0.152  # heel -> toe tip, x H (Winter)

# Anderson (1999) passive joint moments, tau = k1 e^{k2 (q - th2)} + k3 e^{k4 (q - th1)} - d qdot,
# OpenSim sign conventions (hip flexion +, knee flexion -). Values from
# antoinefalisse/3dpredictsim: PassiveMoments/PassiveMomentsData.m.
ANDERSON_HIP_K = (-2.44, 5.05, 1.51, -21.88)
ANDERSON_HIP_THETA = (-0.6981, 1.81)
ANDERSON_KNEE_K = (-6.09, 33.94, 11.03, -11.33)
ANDERSON_KNEE_THETA = (-2.4, 0.13)
PASSIVE_EXP_CAP = 4.0  # exponent cap: beyond it the moment grows linearly (explicit stability)

# Reference gait: Fourier series q(phi) = a0 + sum_k a_k cos(2 pi k phi) + b_k sin(2 pi k phi),
# k = 1..6, phi = 0 at heel strike. Fitted (RMS error hip 0.21 deg, knee 0.45 deg) to
# neumovelab/myoassist: ctrl_optim/optim/ref_data/ref_kinematics_radians.csv (100 samples),
# converted from the reflex model's interior angles as hip = pi - col, knee = pi - col
# (docs/envs/exoskeleton.md). Columns: a0, a1, b1, a2, b2, ..., a6, b6 (rad).
REF_COEFFS = np.array(
    [
        [0.1861, 0.3713, -0.0884, -0.0624, -0.0174, 0.0015, 0.0360,
         0.0017, -0.0004, -0.0036, 0.0031, 0.0000, 0.0023],  # hip
        [0.3127, 0.0023, -0.3549, -0.2560, 0.1280, -0.0144, 0.0921,
         0.0010, 0.0098, -0.0050, 0.0073, 0.0046, -0.0009],  # knee
    ]
)  # fmt: skip


def reference_fourier(phase: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Reference (hip, knee) angles and their phase derivatives, evaluated from the series.

    Args:
        phase: gait phase in cycles, any shape (float64 recommended).

    Returns:
        ``q`` and ``dq/dphi`` (rad and rad per cycle), each of shape ``(2, *phase.shape)``.
    """
    phase = np.asarray(phase, np.float64)
    q = np.zeros((2, *phase.shape))
    dq = np.zeros((2, *phase.shape))
    for j in range(2):
        q[j] += REF_COEFFS[j, 0]
        for k in range(1, 7):
            a, b = REF_COEFFS[j, 2 * k - 1], REF_COEFFS[j, 2 * k]
            w = 2.0 * np.pi * k
            q[j] += a * np.cos(w * phase) + b * np.sin(w * phase)
            dq[j] += w * (-a * np.sin(w * phase) + b * np.cos(w * phase))
    return q, dq


_REF_BINS = 1024
_ref_grid = np.arange(_REF_BINS + 1) / _REF_BINS
_REF_Q, _REF_DQ = reference_fourier(_ref_grid)  # (2, BINS+1), last = first (periodic)


def reference_lookup(phase: np.ndarray, dtype: Any = np.float32) -> tuple[np.ndarray, ...]:
    """Table lookup (1024 bins, linear) of the reference: ``(q_hip, q_knee, dq_hip, dq_knee)``.

    ``phase`` in ``[0, 1)`` cycles, any shape; derivatives are per cycle. Interpolation error
    < 1e-5 rad.
    """
    x = np.asarray(phase) * _REF_BINS
    i = np.minimum(x.astype(np.int64), _REF_BINS - 1)
    f = (x - i).astype(dtype)
    out = []
    for tab in (_REF_Q[0], _REF_Q[1], _REF_DQ[0], _REF_DQ[1]):
        t = tab.astype(dtype)
        lo = t[i]
        out.append(lo + f * (t[i + 1] - lo))
    return tuple(out)


def body_parameters(
    mass: np.ndarray,
    height: np.ndarray,
    dtype: Any = np.float32,
    config: PhysicsConfig | None = None,
) -> dict:
    """Segment parameters (Winter) for bodies of mass ``mass`` (kg) and height ``height`` (m).

    Returns a dict of arrays shaped like the inputs: lengths ``L1`` (thigh), ``Lleg``, ``L2``
    (knee -> sole), the foot (roll-over arc radius ``Rf``, its centre ``lr`` = L2 - Rf along the
    shank and ``fd`` ahead of it, the arc's heel and toe end angles ``psi_h``, ``psi_t`` from the
    shank axis), masses ``m1``, ``m2``, COM distances ``c1``, ``c2``, inertias ``I1``, ``I2``
    about the COM, and the Lagrangian constants ``A11``, ``A12``, ``A22``, ``e1``, ``e2`` of
    docs/envs/exoskeleton.md ``config`` sets the foot shape (default :class:`PhysicsConfig`).
    """
    M = np.asarray(mass, np.float64)
    H = np.asarray(height, np.float64)
    L1 = WINTER["thigh_len"] * H
    Lleg = WINTER["leg_len"] * H
    L2 = Lleg + WINTER["foot_h"] * H
    m1 = WINTER["thigh_mass"] * M
    m2 = WINTER["shank_foot_mass"] * M
    c1 = WINTER["thigh_com"] * L1
    c2 = WINTER["shank_com"] * Lleg
    I1 = m1 * (WINTER["thigh_gyr"] * L1) ** 2
    I2 = m2 * (WINTER["shank_gyr"] * Lleg) ** 2
    cfg = config or PhysicsConfig()
    Rf = cfg.foot_radius * (L1 + L2)
    fd = cfg.foot_ahead * (L1 + L2)
    # arc ends: the heel and toe points lie on the arc, ``foot_heel``/``foot_toe`` x H behind and
    # ahead of the ankle (angles from the shank axis, toe +); a full circle without them
    span = np.pi if cfg.foot_heel is None else 1.0
    psi_h = -span if cfg.foot_heel is None else np.arcsin((-cfg.foot_heel * H - fd) / Rf)
    psi_t = span if cfg.foot_toe is None else np.arcsin((cfg.foot_toe * H - fd) / Rf)
    p = {
        "M": M, "H": H, "L1": L1, "Lleg": Lleg, "L2": L2, "Rf": Rf, "lr": L2 - Rf, "fd": fd,
        "psi_h": psi_h + 0.0 * H, "psi_t": psi_t + 0.0 * H,
        "m1": m1, "m2": m2, "c1": c1, "c2": c2, "I1": I1, "I2": I2,
        "A11": I1 + m1 * c1**2 + m2 * L1**2, "A22": I2 + m2 * c2**2, "A12": m2 * L1 * c2,
        "e1": m1 * c1 + m2 * L1, "e2": m2 * c2,
    }  # fmt: skip
    return {k: np.asarray(v, dtype) for k, v in p.items()}


def foot_offset(a2, lr, fd, rf, psi_h, psi_t, sc=None) -> tuple[np.ndarray, np.ndarray]:
    """Lowest point ``P`` of the foot relative to the knee, ``(P_x - K_x, P_y - K_y)``.

    The foot is the roll-over arc (centre ``lr`` down the shank axis and ``fd`` ahead of it,
    radius ``rf``) between its heel and toe end angles ``psi_h`` < 0 < ``psi_t`` (from the shank
    axis, toe +). The lowest point is the arc point straight below the centre while that lies on
    the arc, else the heel or toe end point; either way a material point of the shank-foot
    segment at this instant. ``a2``: shank angle(s) from the downward vertical; ``sc``: their
    ``(sin, cos)`` if already computed. ``psi_h=None`` means a full circle, whose lowest point is
    always the one below the centre (the same result as end angles of -pi, pi, without the trig).
    """
    s2, c2 = (np.sin(a2), np.cos(a2)) if sc is None else sc
    if psi_h is None:
        return lr * s2 + fd * c2, fd * s2 - lr * c2 - rf
    g = a2 + np.clip(-a2, psi_h, psi_t)  # 0 while the lowest point is on the arc
    return lr * s2 + fd * c2 + rf * np.sin(g), fd * s2 - lr * c2 - rf * np.cos(g)


# --------------------------------------------------------------------------------------------
@dataclass
class PhysicsConfig:
    """Physics switches and constants (defaults: docs/envs/exoskeleton.md plus docs/ calibration).

    The switches exist for validation tests (energy conservation, linearised periods).
    """

    dt: float = 0.0025  # physics substep (s)
    contact: bool = True  # foot-belt contact
    harness: bool = True  # BWS force, pelvis springs/dampers, harness catch
    harness_damping: bool = True  # c_x, c_y (off: the harness is conservative)
    passive: bool = True  # Anderson elastic passive moments
    joint_damping: float = 0.1  # passive joint damping d (N m s/rad), Anderson / 3dpredictsim
    fixed_pelvis: bool = False  # pelvis clamped (linearisation tests)
    # foot: roll-over arc (radius and centre offset ahead of the shank axis, x leg length
    # L1 + L2) between a heel and a toe end point (x H behind / ahead of the ankle; None: a
    # full circle)
    foot_radius: float = FOOT_ROLL_RATIO
    foot_ahead: float = 0.0
    foot_heel: float | None = None
    foot_toe: float | None = None
    # contact: Hunt-Crossley normal force and stick-slip tangential anchor
    contact_k: float = 7.0e4  # N/m^1.5 (heel pad; first 5e5, see docs: peak-force calibration)
    contact_c: float = 2.0  # s/m [design]
    tangent_k: float = 2.0e4  # N/m
    tangent_c: float = 1.5e3  # N s/m
    mu_s: float = 0.5  # first value 0.9 [verify]; 0.5/0.4 calibrated for robustness, see docs
    mu_k: float = 0.4
    # harness / pelvis guidance
    kx: float = 2000.0  # N/m
    cx: float = 400.0  # N s/m
    ky: float = 3000.0  # N/m
    cy: float = 500.0  # N s/m (first value 1500: see docs, peak-force calibration)
    y0_ratio: float = 0.94  # y0 = y0_ratio * 0.53 H, mean walking height (first 0.96, see docs)
    catch_ratio: float = 0.80  # harness catch below catch_ratio * 0.53 H
    catch_k: float = 2.0e4  # N/m

    def key(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def _passive_exp(x: np.ndarray) -> np.ndarray:
    """``exp(min(x, cap)) * (1 + max(x - cap, 0))``: exponential with a linear continuation."""
    over = np.maximum(x - PASSIVE_EXP_CAP, 0.0)
    return np.exp(np.minimum(x, PASSIVE_EXP_CAP)) * (1.0 + over)


class WalkerSim:
    """Batched planar walker dynamics (``N`` instances, struct-of-arrays).

    State: pelvis ``xp, yp, vx, vy`` ``(N,)``; per leg ``a1, a2`` (absolute thigh/shank angles from
    the downward vertical), ``w1, w2`` (their rates), the belt anchor ``anchor`` and ``contact``
    flag, all ``(2, N)``. Per-instance parameters (body, BWS ``beta``, belt speed ``v_belt``,
    passive-limit shifts, external push ``f_push``) are plain attributes set by the owner.

    Args:
        num: number of instances.
        config: physics switches and constants.
        dtype: ``np.float32`` (default) or ``np.float64`` (validation).
    """

    STATE = ("xp", "yp", "vx", "vy", "a1", "a2", "w1", "w2", "anchor", "contact")
    #: per-substep outputs (foot forces, passive moments)
    OUTPUTS = ("fn", "ft", "tau_pass_h", "tau_pass_k")
    # ``anchor``: stretch (m) of the tangential stick spring, 0 while airborne
    PARAMS = (
        "M", "H", "L1", "Lleg", "L2", "Rf", "lr", "fd", "psi_h", "psi_t", "m1", "m2", "c1",
        "c2", "I1", "I2",
        "A11", "A22", "A12", "e1", "e2", "beta", "v_belt", "y0", "y_catch",
        "hip_th1", "knee_th1", "f_push",
    )  # fmt: skip

    def __init__(self, num: int, config: PhysicsConfig | None = None, dtype: Any = np.float32):
        self.num = int(num)
        self.config = config or PhysicsConfig()
        self.dtype = np.dtype(dtype)
        n, dt = self.num, self.dtype
        for name in ("xp", "yp", "vx", "vy"):
            setattr(self, name, np.zeros(n, dt))
        for name in ("a1", "a2", "w1", "w2", "anchor", "fn", "ft"):
            setattr(self, name, np.zeros((2, n), dt))
        self.contact = np.zeros((2, n), bool)
        self.set_body(np.full(n, 75.0), np.full(n, 1.75))
        self.beta = np.zeros(n, dt)
        self.v_belt = np.zeros(n, dt)
        self.f_push = np.zeros(n, dt)
        self.hip_th1 = np.full((2, n), ANDERSON_HIP_THETA[0], dt)
        self.knee_th1 = np.full((2, n), ANDERSON_KNEE_THETA[0], dt)
        self.tau_pass_h = np.zeros((2, n), dt)
        self.tau_pass_k = np.zeros((2, n), dt)

    # ---------------------------------------------------------------------------------------
    def set_body(self, mass: np.ndarray, height: np.ndarray, idx: np.ndarray | None = None):
        """Set the anthropometrics (and y0, catch height) of instances ``idx`` (all: None)."""
        p = body_parameters(mass, height, self.dtype, self.config)
        hip_h = 0.53 * p["H"]
        p["y0"] = (self.config.y0_ratio * hip_h).astype(self.dtype)
        p["y_catch"] = (self.config.catch_ratio * hip_h).astype(self.dtype)
        for k, v in p.items():
            if idx is None or not hasattr(self, k):
                setattr(self, k, np.array(np.broadcast_to(v, (self.num,)), self.dtype))
            else:
                getattr(self, k)[idx] = v

    def get_state(self) -> dict[str, np.ndarray]:
        return {k: getattr(self, k).copy() for k in (*self.STATE, *self.PARAMS, *self.OUTPUTS)}

    def set_state(self, state: dict[str, Any]) -> None:
        for k in (*self.STATE, *self.PARAMS, *self.OUTPUTS):
            getattr(self, k)[...] = state[k]

    # ---------------------------------------------------------------------------------------
    def joint_angles(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Hip and knee angles and rates ``(q_h, q_k, qd_h, qd_k)``, each ``(2, N)``."""
        return self.a1, self.a1 - self.a2, self.w1, self.w1 - self.w2

    def foot_offset(self, a2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Lowest foot point relative to the knee at shank angles ``a2`` (:func:`foot_offset`)."""
        return self._foot_offset(a2)

    def _foot_offset(self, a2, sc=None) -> tuple[np.ndarray, np.ndarray]:
        bounded = self.config.foot_heel is not None or self.config.foot_toe is not None
        psi_h = self.psi_h if bounded else None
        return foot_offset(a2, self.lr, self.fd, self.Rf, psi_h, self.psi_t, sc)

    def foot_points(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Knee position and the foot's lowest point ``(x_K, y_K, x_P, y_P)``, each ``(2, N)``."""
        xk = self.xp + self.L1 * np.sin(self.a1)
        yk = self.yp - self.L1 * np.cos(self.a1)
        rx, ry = self.foot_offset(self.a2)
        return xk, yk, xk + rx, yk + ry

    def passive_moments(self) -> tuple[np.ndarray, np.ndarray]:
        """Anderson passive moments (elastic + damping) at hip and knee, ``(2, N)`` each (N m)."""
        cfg = self.config
        qh, qk, qdh, qdk = self.a1, self.a1 - self.a2, self.w1, self.w1 - self.w2
        th = np.zeros_like(self.a1)
        tk = np.zeros_like(self.a1)
        if cfg.passive:
            k1, k2, k3, k4 = ANDERSON_HIP_K
            th = k1 * _passive_exp(k2 * (qh - ANDERSON_HIP_THETA[1])) + k3 * _passive_exp(
                k4 * (qh - self.hip_th1)
            )
            # OpenSim knee angle is -q_k; our knee moment is minus OpenSim's.
            k1, k2, k3, k4 = ANDERSON_KNEE_K
            tk = -(
                k1 * _passive_exp(k2 * (-qk - ANDERSON_KNEE_THETA[1]))
                + k3 * _passive_exp(k4 * (-qk - self.knee_th1))
            )
        if cfg.joint_damping:
            th = th - cfg.joint_damping * qdh
            tk = tk - cfg.joint_damping * qdk
        return th.astype(self.dtype, copy=False), tk.astype(self.dtype, copy=False)

    # ---------------------------------------------------------------------------------------
    def substep(self, tau_h: np.ndarray, tau_k: np.ndarray, dt: float | None = None) -> None:
        """Advance by one semi-implicit Euler step under active joint torques ``(2, N)`` (N m).

        Adds passive moments, contact, BWS and harness forces; stores the foot forces in
        ``fn``/``ft`` and the passive moments in ``tau_pass_h``/``tau_pass_k``.
        """
        cfg = self.config
        h = cfg.dt if dt is None else dt
        a1, a2, w1, w2 = self.a1, self.a2, self.w1, self.w2
        s1, c1, s2, c2 = np.sin(a1), np.cos(a1), np.sin(a2), np.cos(a2)
        d = a1 - a2
        sd, cd = np.sin(d), np.cos(d)
        L1 = self.L1
        e1, e2, A11, A22, A12 = self.e1, self.e2, self.A11, self.A22, self.A12

        tph, tpk = self.passive_moments()
        self.tau_pass_h[...] = tph
        self.tau_pass_k[...] = tpk
        th = tau_h + tph
        tk = tau_k + tpk
        Q1 = th + tk
        Q2 = -tk

        w1s = w1 * w1
        w2s = w2 * w2
        if cfg.contact:
            # lowest foot point P (a material point of segment 2 at this instant), P - K
            rx, ry = self._foot_offset(a2, (s2, c2))
            pen = L1 * c1 - ry - self.yp
            touch = pen > 0.0
            penp = np.maximum(pen, 0.0)
            vyc = self.vy + L1 * s1 * w1 + rx * w2
            fn = (
                cfg.contact_k
                * penp
                * np.sqrt(penp)
                * np.maximum(1.0 - 1.5 * cfg.contact_c * vyc, 0.0)
            )
            # material velocity of the contact point relative to the belt
            vrel = self.vx + L1 * c1 * w1 - ry * w2 + self.v_belt
            # stick-slip: a spring anchored on the belt at touch-down, stretched by the slip of
            # the material contact point (rolling does not stretch it)
            stretch = np.where(touch & self.contact, self.anchor, 0.0)
            ft = -cfg.tangent_k * stretch - cfg.tangent_c * vrel
            lim = cfg.mu_s * fn
            slip = np.abs(ft) > lim
            ft = np.where(slip, np.sign(ft) * (cfg.mu_k * fn), ft)
            # slip re-seats the anchor so that the spring alone carries the kinetic force
            stretch = np.where(slip, -ft / cfg.tangent_k, stretch)
            self.anchor[...] = np.where(touch, stretch + vrel * h, 0.0)
            self.contact[...] = touch
            self.fn[...] = fn
            self.ft[...] = ft
            Q1 = Q1 + L1 * (ft * c1 + fn * s1)
            Q2 = Q2 - ft * ry + fn * rx
            fx = ft.sum(axis=0)
            fy = fn.sum(axis=0)
        else:
            fx = np.zeros_like(self.xp)
            fy = np.zeros_like(self.xp)

        r1 = Q1 - e1 * GRAVITY * s1 - A12 * sd * w2s
        r2 = Q2 - e2 * GRAVITY * s2 + A12 * sd * w1s
        m12 = A12 * cd
        inv_det = 1.0 / (A11 * A22 - m12 * m12)
        # M^-1 r and M^-1 B (B rows: alpha1, alpha2 equations; columns: x, y)
        z1 = (A22 * r1 - m12 * r2) * inv_det
        z2 = (A11 * r2 - m12 * r1) * inv_det
        if cfg.fixed_pelvis:
            ax = ay = None
            b1 = z1
            b2 = z2
        else:
            e1c, e1s, e2c, e2s = e1 * c1, e1 * s1, e2 * c2, e2 * s2
            u1x = (A22 * e1c - m12 * e2c) * inv_det
            u1y = (A22 * e1s - m12 * e2s) * inv_det
            u2x = (A11 * e2c - m12 * e1c) * inv_det
            u2y = (A11 * e2s - m12 * e1s) * inv_det
            sxx = (e1c * u1x + e2c * u2x).sum(axis=0)
            sxy = (e1c * u1y + e2c * u2y).sum(axis=0)
            syy = (e1s * u1y + e2s * u2y).sum(axis=0)
            gx = (e1c * z1 + e2c * z2).sum(axis=0)
            gy = (e1s * z1 + e2s * z2).sum(axis=0)
            M = self.M
            fx = fx + self.f_push
            fy = fy - M * GRAVITY
            if cfg.harness:
                fy = fy + self.beta * M * GRAVITY - cfg.ky * (self.yp - self.y0)
                fx = fx - cfg.kx * self.xp
                if cfg.harness_damping:
                    fy = fy - cfg.cy * self.vy
                    fx = fx - cfg.cx * self.vx
                fy = fy + cfg.catch_k * np.maximum(self.y_catch - self.yp, 0.0)
            rx = fx + (e1s * w1s + e2s * w2s).sum(axis=0) - gx
            ry = fy - (e1c * w1s + e2c * w2s).sum(axis=0) - gy
            kxx = M - sxx
            kyy = M - syy
            kxy = -sxy
            idet = 1.0 / (kxx * kyy - kxy * kxy)
            ax = (kyy * rx - kxy * ry) * idet
            ay = (kxx * ry - kxy * rx) * idet
            b1 = z1 - u1x * ax - u1y * ay
            b2 = z2 - u2x * ax - u2y * ay
            self.vx += (ax * h).astype(self.dtype, copy=False)
            self.vy += (ay * h).astype(self.dtype, copy=False)
            self.xp += self.vx * h
            self.yp += self.vy * h
        w1 += (b1 * h).astype(self.dtype, copy=False)
        w2 += (b2 * h).astype(self.dtype, copy=False)
        a1 += w1 * h
        a2 += w2 * h


# Belt speed = BELT_GAIN x the reference's mean stance-foot speed 1.17 (1.1/T)(H/1.75) m/s.
# With the kinematic value the ILC walker's stance feet brake against the belt (stride-mean
# friction +50..150 N forward per leg) and the hip saturates in extension for most of stance; at
# 1.1x the stride-mean friction is ~0 (calibration in docs/envs/exoskeleton.md).
BELT_GAIN = 1.1


def belt_speed(period: np.ndarray, height: np.ndarray) -> np.ndarray:
    """Treadmill belt speed (m/s): ``BELT_GAIN * 1.17 (1.1/T)(H/1.75)``."""
    return BELT_GAIN * 1.17 * (1.1 / np.asarray(period)) * (np.asarray(height) / 1.75)


def place_on_reference(
    sim: WalkerSim,
    idx: np.ndarray,
    phase: np.ndarray,
    period: np.ndarray,
    angle_noise: np.ndarray | None = None,
    rate_noise: np.ndarray | None = None,
) -> None:
    """Put instances ``idx`` on the reference posture at right-leg ``phase`` (cycles).

    The pelvis is placed at the height where the lower foot carries its static share of the
    load; ``angle_noise``/``rate_noise``: optional ``(4, n)`` additions (hip R, knee R, hip L,
    knee L) in rad and rad/s.
    """
    ph = np.stack([phase, (phase + 0.5) % 1.0]).astype(np.float64)
    q, dq = reference_fourier(ph)
    qh, qk = q[0], q[1]
    rate = 1.0 / np.asarray(period, np.float64)
    qdh, qdk = dq[0] * rate, dq[1] * rate
    if angle_noise is not None:
        qh = qh + angle_noise[[0, 2]]
        qk = qk + angle_noise[[1, 3]]
    if rate_noise is not None:
        qdh = qdh + rate_noise[[0, 2]]
        qdk = qdk + rate_noise[[1, 3]]
    sim.a1[:, idx] = qh
    sim.a2[:, idx] = qh - qk
    sim.w1[:, idx] = qdh
    sim.w2[:, idx] = qdh - qdk
    foot = [getattr(sim, k)[idx].astype(np.float64) for k in ("lr", "fd", "Rf", "psi_h", "psi_t")]
    _, ry = foot_offset(qh - qk, *foot)
    drop = sim.L1[idx] * np.cos(qh) - ry
    load = np.maximum(1.0 - sim.beta[idx], 0.0) * sim.M[idx] * GRAVITY
    pen = (load / sim.config.contact_k) ** (2.0 / 3.0)
    sim.yp[idx] = drop.max(axis=0) - pen
    sim.xp[idx] = 0.0
    sim.vx[idx] = 0.0
    sim.vy[idx] = 0.0
    sim.contact[:, idx] = False
    sim.anchor[:, idx] = 0.0
    sim.fn[:, idx] = 0.0
    sim.ft[:, idx] = 0.0
