"""Planar walker on a body-weight-supported treadmill and its impaired human controller.

The physics and the human half of ``ExoGait-v0`` (docs/envs/exoskeleton.md),
vectorised over ``N`` instances as struct-of-arrays:

* :func:`body_parameters`: Winter anthropometrics for a body of mass ``M`` and height ``H``.
* :class:`WalkerSim`: pelvis ``(x, y)`` plus two 2-segment legs (absolute segment angles
  ``alpha1`` = hip angle, ``alpha2`` = hip - knee), a rolling foot with Hunt-Crossley normal force
  and a stick-slip belt anchor, dynamic body-weight support with a harness catch, Anderson passive
  joint moments; semi-implicit Euler with an analytic Schur-complement solve (no ``np.linalg``).
* :class:`HumanController`: intrinsic impedance + delayed reflex correction + learned
  feedforward, scaled by strength, with motor noise, spasticity and contracture by level.
* :func:`feedforward_grid`: the feedforward torque learned once by iterative learning control
  (ILC), cached on disk, interpolated per instance.

Conventions: leg arrays have shape ``(2, N)`` with row 0 = right, row 1 = left. Joint angles in
rad: hip flexion +, knee flexion +. Ground at ``y = 0``; the belt moves at ``-v_belt`` along x.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, fields, replace
from typing import Any

import numpy as np

from saferl.utils import atomic_write, cache_dir

__all__ = [
    "GRAVITY",
    "IMPAIRMENT_LEVELS",
    "REF_COEFFS",
    "HumanController",
    "ImpairmentLevel",
    "PhysicsConfig",
    "WalkerSim",
    "body_parameters",
    "feedforward_grid",
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


# --------------------------------------------------------------------------------------------
# Impairment levels (docs/envs/exoskeleton.md): data, one row per level.
@dataclass(frozen=True)
class ImpairmentLevel:
    """Human-walker parameters of one impairment level (ranges are sampled per episode)."""

    name: str
    strength_paretic: tuple[float, float]  # U(lo, hi), MRC-graded weakness
    strength_nonparetic: float
    spasticity_vth: float  # rad/s knee-flexion velocity threshold (inf: off)
    spasticity_gain: float  # N m s/rad
    knee_rom_shift_deg: float  # knee-flexion passive-limit loss (negative)
    hip_rom_shift_deg: float  # hip-extension limit shift (positive: flexion contracture)
    motor_noise_cv: float
    phase_noise: float  # std of the relative stride-period jitter, per stride
    bws: tuple[float, float]  # body-weight-support fraction beta ~ U(lo, hi)


IMPAIRMENT_LEVELS: dict[str, ImpairmentLevel] = {
    lvl.name: lvl
    for lvl in (
        ImpairmentLevel("none", (0.95, 1.0), 1.00, np.inf, 0.0, 0.0, 0.0, 0.02, 0.01, (0.2, 0.3)),
        ImpairmentLevel("mild", (0.6, 0.8), 0.95, 4.0, 1.0, -10.0, 5.0, 0.05, 0.02, (0.2, 0.4)),
        ImpairmentLevel(
            "moderate", (0.3, 0.5), 0.90, 2.5, 3.0, -20.0, 10.0, 0.10, 0.04, (0.3, 0.45)
        ),
        ImpairmentLevel("severe", (0.1, 0.25), 0.85, 1.5, 6.0, -30.0, 15.0, 0.15, 0.06, (0.4, 0.5)),
    )
}


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
    contact_k: float = 7.0e4  # N/m^1.5 (heel pad; spec 5e5, see docs: peak-force calibration)
    contact_c: float = 2.0  # s/m (spec)
    tangent_k: float = 2.0e4  # N/m
    tangent_c: float = 1.5e3  # N s/m
    mu_s: float = 0.5  # spec 0.9 [verify]; 0.5/0.4 calibrated for robustness, see docs
    mu_k: float = 0.4
    # harness / pelvis guidance
    kx: float = 2000.0  # N/m
    cx: float = 400.0  # N s/m
    ky: float = 3000.0  # N/m
    cy: float = 500.0  # N s/m (spec 1500: see docs, peak-force calibration)
    y0_ratio: float = 0.94  # y0 = y0_ratio * 0.53 H; spec 0.96 (mean walking height, see docs)
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


# --------------------------------------------------------------------------------------------
# Human walker controller (docs/envs/exoskeleton.md)
K_INT = (150.0, 100.0)  # intrinsic stiffness (hip, knee), N m/rad
B_INT = (15.0, 6.0)  # intrinsic damping, N m s/rad
K_REF = (100.0, 60.0)  # delayed (long-latency) stiffness
B_REF = (5.0, 2.0)  # delayed damping
TAU_MAX_PER_KG = 2.0  # isometric strength, N m/kg (hip, knee) [verify]
CONTROL_DT = 0.01  # human control-rate updates (s)
REFLEX_DELAY_STEPS = 6  # 60 ms long-latency delay
SPAS_DELAY_STEPS = 4  # 40 ms stretch-reflex delay
SPAS_TAU = 0.03  # spasticity activation time constant (s)
NOISE_HOLD_STEPS = 5  # motor noise held for 50 ms
FF_BINS = 100  # feedforward phase bins
_BUF = 8  # ring-buffer slots (>= max delay + 1)


# Belt speed = BELT_GAIN x the reference's mean stance-foot speed 1.17 (1.1/T)(H/1.75) (§1.3).
# With the kinematic value the ILC walker's stance feet brake against the belt (stride-mean
# friction +50..150 N forward per leg) and the hip saturates in extension for most of stance; at
# 1.1x the stride-mean friction is ~0 (calibration in docs/envs/exoskeleton.md).
BELT_GAIN = 1.1


def belt_speed(period: np.ndarray, height: np.ndarray) -> np.ndarray:
    """Treadmill belt speed (m/s): ``BELT_GAIN * 1.17 (1.1/T)(H/1.75)``."""
    return BELT_GAIN * 1.17 * (1.1 / np.asarray(period)) * (np.asarray(height) / 1.75)


class HumanController:
    """Batched scripted human walker: per leg and joint,

    ``tau = clip(s [ff(phi) + K_int e + B_int e' + K_ref e(t - 60 ms) + B_ref e'(t - 60 ms)]
    (1 + cv xi), +-s tau_max) + tau_spas`` (passive moments are added by :class:`WalkerSim`).

    Slow parts (phase clock, reference, feedforward, delayed reflex, spasticity, noise) update once
    per 10 ms control step (:meth:`begin_step`); the intrinsic impedance acts at every physics
    substep (:meth:`torques`). Delays use ring buffers at the control rate.

    Per-instance parameters (set by the owner, e.g. :meth:`configure`): ``strength`` (2, N),
    ``tau_max`` (N,), ``spas_gain`` (2, N) (zero on the non-paretic leg), ``spas_vth`` (N,),
    ``noise_cv`` (N,), ``phase_noise`` (N,), ``period`` (N,), ``ff`` (N, FF_BINS, 2).
    """

    STATE = (
        "phase", "rate_mult", "qh_buf", "qk_buf", "qdh_buf", "qdk_buf", "spas_act", "noise",
        "noise_t", "ptr",
    )  # fmt: skip
    PARAMS = (
        "strength", "tau_max", "spas_gain", "spas_vth", "noise_cv", "phase_noise", "period",
        "ff",
    )  # fmt: skip
    #: per-step outputs (recomputed every control step; copied with sub-batches)
    OUTPUTS = (
        "qr_h", "qr_k", "qdr_h", "qdr_k", "slow_h", "slow_k", "gain_h", "gain_k", "lim_h",
        "lim_k", "tau_spas", "leg_phase", "fb_h", "fb_k", "act_h", "act_k", "ff_h", "ff_k",
    )  # fmt: skip

    def __init__(self, num: int, dtype: Any = np.float32) -> None:
        self.num = n = int(num)
        self.dtype = dt = np.dtype(dtype)
        self.strength = np.ones((2, n), dt)
        self.tau_max = np.full(n, TAU_MAX_PER_KG * 75.0, dt)
        self.spas_gain = np.zeros((2, n), dt)
        self.spas_vth = np.full(n, np.inf, dt)
        self.noise_cv = np.zeros(n, dt)
        self.phase_noise = np.zeros(n, dt)
        self.period = np.full(n, 1.2, dt)
        self.ff = np.zeros((n, FF_BINS, 2), dt)
        self.phase = np.zeros(n, np.float64)  # float64 clock: no drift over long episodes
        self.rate_mult = np.ones(n, np.float64)
        for name in ("qh_buf", "qk_buf", "qdh_buf", "qdk_buf"):
            setattr(self, name, np.zeros((_BUF, 2, n), dt))
        self.spas_act = np.zeros((2, n), dt)
        self.noise = np.zeros((2, 2, n), dt)  # (joint, leg, N)
        self.noise_t = np.zeros(n, np.int64)
        self.ptr = np.zeros((), np.int64)
        # control-step outputs
        for name in self.OUTPUTS:
            setattr(self, name, np.zeros((2, n), dt))
        self._inst = np.arange(n)[None, :] * FF_BINS

    def get_state(self) -> dict[str, np.ndarray]:
        keys = (*self.STATE, *self.PARAMS, *self.OUTPUTS)
        return {k: np.array(getattr(self, k), copy=True) for k in keys}

    def set_state(self, state: dict[str, Any]) -> None:
        for k in (*self.STATE, *self.PARAMS, *self.OUTPUTS):
            getattr(self, k)[...] = state[k]

    # ---------------------------------------------------------------------------------------
    def reset(self, sim: WalkerSim, idx: np.ndarray, phase: np.ndarray) -> None:
        """Start instances ``idx`` at right-leg phase ``phase``; fill the delay buffers with the
        current state of ``sim`` (call after placing the body)."""
        self.phase[idx] = phase
        self.rate_mult[idx] = 1.0
        qh, qk, qdh, qdk = sim.joint_angles()
        for buf, val in (
            (self.qh_buf, qh), (self.qk_buf, qk), (self.qdh_buf, qdh), (self.qdk_buf, qdk)
        ):  # fmt: skip
            buf[:, :, idx] = val[:, idx][None]
        self.spas_act[:, idx] = 0.0
        self.noise[:, :, idx] = 0.0
        self.noise_t[idx] = 0

    def begin_step(self, sim: WalkerSim, rng: Any | None, dt_control: float = CONTROL_DT) -> None:
        """Control-rate update: advance the clock, reference, feedforward, delayed correction,
        spasticity and motor noise. ``rng``: an ``InstanceRNG``-like object with
        ``normal(k, idx)``, or ``None`` for a noise-free human."""
        # clock with per-stride period jitter (phase noise)
        self.phase += self.rate_mult * (dt_control / self.period.astype(np.float64))
        wrapped = self.phase >= 1.0
        if wrapped.any():
            self.phase -= wrapped
            if rng is not None:
                idx = np.flatnonzero(wrapped)
                xi = rng.normal(1, idx)[:, 0].astype(np.float64)
                self.rate_mult[idx] = 1.0 + self.phase_noise[idx] * np.clip(xi, -3.0, 3.0)
        lp = self.leg_phase
        lp[0] = self.phase
        lp[1] = self.phase + 0.5
        lp[1] -= lp[1] >= 1.0
        qh, qk, dh, dk = reference_lookup(lp, self.dtype)
        rate = (self.rate_mult / self.period).astype(self.dtype)
        self.qr_h[...] = qh
        self.qr_k[...] = qk
        np.multiply(dh, rate, out=self.qdr_h)
        np.multiply(dk, rate, out=self.qdr_k)
        # feedforward (linear interpolation in phase, periodic)
        x = lp * FF_BINS
        i0 = np.minimum(x.astype(np.int64), FF_BINS - 1)
        f = (x - i0).astype(self.dtype)
        j0 = (self._inst + i0) * 2
        j1 = (self._inst + (i0 + 1) % FF_BINS) * 2
        ffl = self.ff.reshape(-1)
        ffh = ffl[j0] + f * (ffl[j1] - ffl[j0])
        ffk = ffl[j0 + 1] + f * (ffl[j1 + 1] - ffl[j0 + 1])
        # delayed correction
        p = int(self.ptr)
        sd = (p - 1 - REFLEX_DELAY_STEPS) % _BUF
        self.ff_h[...] = ffh
        self.ff_k[...] = ffk
        self.slow_h[...] = (
            ffh + K_REF[0] * (qh - self.qh_buf[sd]) + B_REF[0] * (self.qdr_h - self.qdh_buf[sd])
        )
        self.slow_k[...] = (
            ffk + K_REF[1] * (qk - self.qk_buf[sd]) + B_REF[1] * (self.qdr_k - self.qdk_buf[sd])
        )
        # spasticity: delayed knee-flexion velocity above threshold, first-order activation
        ss = (p - 1 - SPAS_DELAY_STEPS) % _BUF
        target = np.maximum(self.qdk_buf[ss] - self.spas_vth, 0.0)
        self.spas_act += (target - self.spas_act) * (1.0 - np.exp(-dt_control / SPAS_TAU))
        np.multiply(self.spas_act, -self.spas_gain, out=self.tau_spas)
        # motor noise, held for NOISE_HOLD_STEPS control steps
        if rng is not None:
            due = self.noise_t <= 0
            if due.any():
                idx = np.flatnonzero(due)
                xi = rng.normal(4, idx).T.reshape(2, 2, -1)
                self.noise[:, :, idx] = np.clip(xi, -3.0, 3.0)
                self.noise_t[idx] = NOISE_HOLD_STEPS
            self.noise_t -= 1
        s = self.strength
        np.multiply(s, 1.0 + self.noise_cv * self.noise[0], out=self.gain_h)
        np.multiply(s, 1.0 + self.noise_cv * self.noise[1], out=self.gain_k)
        np.multiply(s, self.tau_max, out=self.lim_h)
        self.lim_k[...] = self.lim_h

    def torques(self, sim: WalkerSim, t_sub: float) -> tuple[np.ndarray, np.ndarray]:
        """Human joint torques ``(tau_h, tau_k)`` (2, N) at ``t_sub`` s into the control step.

        Also stores the feedback part (``fb_h``, ``fb_k``, before strength and noise) and the
        active torques (``act_h``, ``act_k``, without spasticity).
        """
        qh, qk, qdh, qdk = sim.joint_angles()
        fb_h = K_INT[0] * (self.qr_h + self.qdr_h * t_sub - qh) + B_INT[0] * (self.qdr_h - qdh)
        fb_k = K_INT[1] * (self.qr_k + self.qdr_k * t_sub - qk) + B_INT[1] * (self.qdr_k - qdk)
        fb_h += self.slow_h
        fb_k += self.slow_k
        np.multiply(fb_h, self.gain_h, out=self.act_h)
        np.multiply(fb_k, self.gain_k, out=self.act_k)
        np.clip(self.act_h, -self.lim_h, self.lim_h, out=self.act_h)
        np.clip(self.act_k, -self.lim_k, self.lim_k, out=self.act_k)
        np.subtract(fb_h, self.ff_h, out=self.fb_h)  # feedback part only (for ILC)
        np.subtract(fb_k, self.ff_k, out=self.fb_k)
        return self.act_h, self.act_k + self.tau_spas

    def end_step(self, sim: WalkerSim) -> None:
        """Record the state at the end of the control step into the delay buffers."""
        p = int(self.ptr)
        qh, qk, qdh, qdk = sim.joint_angles()
        self.qh_buf[p] = qh
        self.qk_buf[p] = qk
        self.qdh_buf[p] = qdh
        self.qdk_buf[p] = qdk
        self.ptr[...] = (p + 1) % _BUF


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


# --------------------------------------------------------------------------------------------
# Feedforward by iterative learning control, on a grid, cached on disk
ILC_GAIN = 0.2
ILC_SMOOTH = 5
ILC_STRIDES = 50
# Learning from zero feedforward diverges (the stance knee buckles, impacts grow): during the
# first ILC_GUIDE_STRIDES strides a stiff joint-space guidance (a teacher, faded out linearly)
# keeps the body near the reference, and its torque counts as feedback to be learned.
ILC_GUIDE_K = (600.0, 600.0)
ILC_GUIDE_B = (40.0, 20.0)
ILC_GUIDE_STRIDES = 25
ILC_GUIDE_BWS = 0.9  # body-weight support at the start of learning (faded with the guidance)
FF_GRID_BETA = (0.2, 0.3, 0.4, 0.5, 0.6)
# dimensionless stride period T sqrt(g / H); covers T in [1.0, 1.9] s over H in [1.55, 1.90] m
FF_GRID_TN = (2.2, 2.6, 3.0, 3.4, 3.8, 4.2, 4.6)
FF_NOMINAL = (75.0, 1.75)  # body the grid is learned on; tables scale with M g H
_FF_VERSION = 1


def learn_feedforward(
    mass: np.ndarray,
    height: np.ndarray,
    beta: np.ndarray,
    period: np.ndarray,
    strides: int = ILC_STRIDES,
    config: PhysicsConfig | None = None,
    dtype: Any = np.float64,
    history: list | None = None,
    guidance_strides: int = ILC_GUIDE_STRIDES,
) -> np.ndarray:
    """Learn the human feedforward by ILC on the unimpaired model with zero exo torque.

    ``tau_ff <- tau_ff + 0.2 * smooth5(<feedback torque>_bin)`` once per stride, for ``strides``
    strides (docs/envs/exoskeleton.md). All inputs ``(n,)``; returns ``(n, FF_BINS, 2)`` (N m, hip
    and knee, both legs share the table shifted by half a cycle). ``history``: if a list, the
    per-stride RMS feedback torque ``(n,)`` of each update is appended (convergence check).
    """
    n = len(mass)
    sim = WalkerSim(n, config, dtype)
    sim.set_body(np.asarray(mass), np.asarray(height))
    beta = np.asarray(beta, np.float64)
    sim.beta[:] = beta
    sim.v_belt[:] = belt_speed(period, height)
    hum = HumanController(n, dtype)
    hum.tau_max[:] = TAU_MAX_PER_KG * np.asarray(mass)
    hum.period[:] = period
    idx = np.arange(n)
    place_on_reference(sim, idx, np.zeros(n), np.asarray(period))
    hum.reset(sim, idx, np.zeros(n))
    nsub = max(1, round(CONTROL_DT / sim.config.dt))
    sums = np.zeros((n, FF_BINS, 2))
    counts = np.zeros((n, FF_BINS))
    done = np.zeros(n, np.int64)
    inst = np.arange(n)
    kernel_offsets = np.arange(ILC_SMOOTH) - ILC_SMOOTH // 2
    max_steps = int(np.ceil(strides * np.max(period) * 1.2 / CONTROL_DT)) + 10
    for _ in range(max_steps):
        prev = hum.phase.copy()
        hum.begin_step(sim, None)
        fbh = np.zeros((2, n))
        fbk = np.zeros((2, n))
        g = max(0.0, 1.0 - float(done.min()) / max(1, guidance_strides))
        sim.beta[:] = beta + (ILC_GUIDE_BWS - beta) * g
        for k in range(nsub):
            th, tk = hum.torques(sim, k * sim.config.dt)
            qh, qk, qdh, qdk = sim.joint_angles()
            t = k * sim.config.dt
            gh = g * (
                ILC_GUIDE_K[0] * (hum.qr_h + hum.qdr_h * t - qh)
                + ILC_GUIDE_B[0] * (hum.qdr_h - qdh)
            )
            gk = g * (
                ILC_GUIDE_K[1] * (hum.qr_k + hum.qdr_k * t - qk)
                + ILC_GUIDE_B[1] * (hum.qdr_k - qdk)
            )
            fbh += hum.fb_h + gh
            fbk += hum.fb_k + gk
            sim.substep(th + gh, tk + gk)
        hum.end_step(sim)
        bins = np.minimum((hum.leg_phase * FF_BINS).astype(np.int64), FF_BINS - 1)
        for leg in range(2):
            np.add.at(sums, (inst, bins[leg], 0), fbh[leg] / nsub)
            np.add.at(sums, (inst, bins[leg], 1), fbk[leg] / nsub)
            np.add.at(counts, (inst, bins[leg]), 1.0)
        wrapped = np.flatnonzero((hum.phase < prev) & (done < strides))
        rms = np.full(n, np.nan)
        for i in wrapped:
            mean = sums[i] / np.maximum(counts[i], 1.0)[:, None]
            sm = np.mean([np.roll(mean, -o, axis=0) for o in kernel_offsets], axis=0)
            hum.ff[i] += ILC_GAIN * sm
            rms[i] = np.sqrt(np.mean(mean**2))
            sums[i] = 0.0
            counts[i] = 0.0
            done[i] += 1
        if history is not None and wrapped.size:
            history.append(rms)
        if (done >= strides).all():
            break
    return hum.ff.astype(np.float64)


def _learning_config(config: PhysicsConfig | None) -> PhysicsConfig:
    """The physics the feedforward is learned with: ``config`` at the default 2.5 ms step (the
    table is a property of the human, not of the integrator)."""
    return replace(config or PhysicsConfig(), dt=PhysicsConfig.dt)


def _grid_key(config: PhysicsConfig | None = None) -> str:
    key = {
        "version": _FF_VERSION,
        "winter": WINTER,
        "roll": FOOT_ROLL_RATIO,
        "gains": [K_INT, B_INT, K_REF, B_REF, TAU_MAX_PER_KG],
        "delays": [REFLEX_DELAY_STEPS, CONTROL_DT],
        "belt": BELT_GAIN,
        "ilc": [ILC_GAIN, ILC_SMOOTH, ILC_STRIDES],
        "grid": [FF_GRID_BETA, FF_GRID_TN, FF_NOMINAL],
        "physics": _learning_config(config).key(),
        "ref": REF_COEFFS.round(6).tolist(),
        "passive": [ANDERSON_HIP_K, ANDERSON_HIP_THETA, ANDERSON_KNEE_K, ANDERSON_KNEE_THETA],
    }
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]


_FF_GRIDS: dict[str, np.ndarray] = {}


def feedforward_grid(cache: bool = True, config: PhysicsConfig | None = None) -> np.ndarray:
    """The normalised feedforward grid ``(n_beta, n_Tn, FF_BINS, 2)`` in units of ``M g H``.

    Learned by :func:`learn_feedforward` on the nominal body for every (beta, T sqrt(g/H)) grid
    point, once per physics ``config`` (its time step excluded): kept in memory and in
    ``<cache dir>/exo_ff_<hash>.npz`` (:func:`saferl.utils.cache_dir`), keyed by a hash of every
    parameter that shapes it and written atomically (:func:`saferl.utils.atomic_write`), so concurrent processes never
    read a partial file. Takes ~10 s on one core when the cache is cold.
    """
    key = _grid_key(config)
    if key in _FF_GRIDS:
        return _FF_GRIDS[key]
    path = cache_dir() / f"exo_ff_{key}.npz"
    if cache and path.exists():
        try:
            with np.load(path) as data:
                grid = data["grid"]
            if grid.shape == (len(FF_GRID_BETA), len(FF_GRID_TN), FF_BINS, 2):
                _FF_GRIDS[key] = grid
                return grid
        except (OSError, ValueError, KeyError):
            pass  # unreadable cache: recompute
    M0, H0 = FF_NOMINAL
    bb, tt = np.meshgrid(FF_GRID_BETA, FF_GRID_TN, indexing="ij")
    period = tt.ravel() * np.sqrt(H0 / GRAVITY)
    n = bb.size
    ff = learn_feedforward(
        np.full(n, M0), np.full(n, H0), bb.ravel(), period, config=_learning_config(config)
    )
    grid = (ff / (M0 * GRAVITY * H0)).reshape(len(FF_GRID_BETA), len(FF_GRID_TN), FF_BINS, 2)
    if cache:
        try:
            atomic_write(path, lambda fh: np.savez(fh, grid=grid))
        except OSError:
            pass  # read-only cache dir: keep it in memory only
    _FF_GRIDS[key] = grid
    return grid


def interpolate_feedforward(
    mass: np.ndarray,
    height: np.ndarray,
    beta: np.ndarray,
    period: np.ndarray,
    config: PhysicsConfig | None = None,
) -> np.ndarray:
    """Per-instance feedforward tables ``(n, FF_BINS, 2)`` (N m): bilinear in (beta, T sqrt(g/H))
    on :func:`feedforward_grid`, scaled by ``M g H`` (clamped to the grid's range)."""
    grid = feedforward_grid(config=config)
    gb = np.asarray(FF_GRID_BETA)
    gt = np.asarray(FF_GRID_TN)
    b = np.clip(np.asarray(beta, np.float64), gb[0], gb[-1])
    tn = np.clip(np.asarray(period) * np.sqrt(GRAVITY / np.asarray(height)), gt[0], gt[-1])
    ib = np.clip(np.searchsorted(gb, b) - 1, 0, len(gb) - 2)
    it = np.clip(np.searchsorted(gt, tn) - 1, 0, len(gt) - 2)
    fb = ((b - gb[ib]) / (gb[ib + 1] - gb[ib]))[:, None, None]
    ft = ((tn - gt[it]) / (gt[it + 1] - gt[it]))[:, None, None]
    tab = (
        (1 - fb) * (1 - ft) * grid[ib, it]
        + fb * (1 - ft) * grid[ib + 1, it]
        + (1 - fb) * ft * grid[ib, it + 1]
        + fb * ft * grid[ib + 1, it + 1]
    )
    scale = (np.asarray(mass) * GRAVITY * np.asarray(height))[:, None, None]
    return tab * scale


__all__ += [
    "belt_speed",
    "foot_offset",
    "interpolate_feedforward",
    "learn_feedforward",
    "place_on_reference",
]
