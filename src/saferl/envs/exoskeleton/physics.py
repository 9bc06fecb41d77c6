"""Walker physics: a planar walker with human ankles on a body-weight-supported treadmill.

The physics of ``ExoGait-v0`` (docs/envs/exoskeleton.md), vectorised over ``N`` instances as
struct-of-arrays (the simulated walker's controller is :mod:`saferl.envs.exoskeleton.user`):

* :func:`reference_fourier` / :func:`reference_lookup`: the normative hip, knee and ankle
  reference gait.
* :func:`body_parameters`: Winter anthropometrics for a body of mass ``M`` and height ``H``, and
  the harness and contact constants scaled with the body.
* :class:`WalkerSim`: pelvis ``(x, y)`` plus two legs of thigh, shank and foot (absolute thigh
  and shank angles ``alpha1`` = hip angle, ``alpha2`` = hip - knee, and the ankle angle ``b``
  of the foot relative to the shank), heel and forefoot contact points with Hunt-Crossley normal
  forces and stick-slip belt anchors, dynamic body-weight support with a harness catch, Anderson
  passive joint moments; semi-implicit Euler with an analytic Schur-complement solve for the
  pelvis and the legs (no ``np.linalg``) and a linearly implicit step for the light foot.
* :func:`belt_speed` (the treadmill) and :func:`place_on_reference` (initial posture).

Conventions: leg arrays have shape ``(2, N)`` with row 0 = right, row 1 = left. Joint angles in
rad: hip flexion +, knee flexion +, ankle dorsiflexion + (0 with the sole at right angles to
the shank). Ground at ``y = 0``; the belt moves at ``-v_belt`` along x.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import numpy as np

__all__ = [
    "GRAVITY",
    "NOMINAL_BODY",
    "REF_COEFFS",
    "PhysicsConfig",
    "WalkerSim",
    "belt_speed",
    "body_parameters",
    "foot_contact_offsets",
    "place_on_reference",
    "reference_fourier",
    "reference_lookup",
    "reference_table",
]

GRAVITY = 9.81
#: the body (kg, m) at which the harness and contact constants of :class:`PhysicsConfig` hold
NOMINAL_BODY = (75.0, 1.75)

# --------------------------------------------------------------------------------------------
# Anthropometrics: Winter, Biomechanics and Motor Control of Human Movement, Table 4.1
# (segment lengths as fractions of H, masses as fractions of M, COM and radius of gyration as
# fractions of the segment length). The foot's mass stays in Winter's "foot and leg" segment;
# the foot adds its own rotation about the ankle (mass 0.0145 M, COM at 0.5 and radius of
# gyration 0.475 of the ankle-to-metatarsal length).
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
    "foot_mass": 0.0145,  # x M
    "foot_com": 0.5,  # from the ankle, x ankle-to-metatarsal length
    "foot_gyr": 0.475,  # about the COM, x ankle-to-metatarsal length
}
# Foot contact points along the sole, from the ankle (x H): the heel behind it and the
# metatarsal heads ahead of it. Foot length 0.152 H (Winter), the ankle at a quarter of it from
# the heel; metatarsal heads at ~72 % of the foot length from the heel.
FOOT_HEEL = 0.038
FOOT_BALL = 0.072

# Anderson (1999) passive joint moments, tau = k1 e^{k2 (q - th2)} + k3 e^{k4 (q - th1)} - d qdot,
# OpenSim sign conventions (hip flexion +, knee flexion -, ankle dorsiflexion +). Values from
# antoinefalisse/3dpredictsim: PassiveMoments/PassiveMomentsData.m.
ANDERSON_HIP_K = (-2.44, 5.05, 1.51, -21.88)
ANDERSON_HIP_THETA = (-0.6981, 1.81)
ANDERSON_KNEE_K = (-6.09, 33.94, 11.03, -11.33)
ANDERSON_KNEE_THETA = (-2.4, 0.13)
ANDERSON_ANKLE_K = (-2.03, 38.11, 0.18, -12.12)
ANDERSON_ANKLE_THETA = (-0.74, 0.52)
PASSIVE_EXP_CAP = 4.0  # exponent cap: beyond it the moment grows linearly (explicit stability)
# Anderson's plantarflexion element is weak (0.18 N m at its limit of -42 deg, ~10 N m at
# -61 deg): beyond 50 deg of plantarflexion (the ankle's anatomical range) a stiff stop holds a
# hanging, spastic or loaded foot [design]
ANKLE_PF_STOP = -0.87  # rad
ANKLE_STOP_K = 1000.0  # N m/rad

# Reference gait: Fourier series q(phi) = a0 + sum_k a_k cos(2 pi k phi) + b_k sin(2 pi k phi),
# k = 1..6, phi = 0 at heel strike. Fitted (RMS error hip 0.21 deg, knee 0.45 deg, ankle
# 1.10 deg) to neumovelab/myoassist: ctrl_optim/optim/ref_data/ref_kinematics_radians.csv
# (100 samples; its left-leg columns), converted from the reflex model's interior angles as
# hip = pi - col, knee = pi - col, ankle = pi/2 - col. The data's hip angle is relative to a
# trunk leaning forward by 8-10 deg; this model's trunk is upright and takes it as the thigh's
# angle from the vertical (docs/envs/exoskeleton.md: the alternative, measured).
# Columns: a0, a1, b1, a2, b2, ..., a6, b6 (rad).
REF_COEFFS = np.array(
    [
        [0.1861, 0.3713, -0.0884, -0.0624, -0.0174, 0.0015, 0.0360,
         0.0017, -0.0004, -0.0036, 0.0031, 0.0000, 0.0023],  # hip
        [0.3127, 0.0023, -0.3549, -0.2560, 0.1280, -0.0144, 0.0921,
         0.0010, 0.0098, -0.0050, 0.0073, 0.0046, -0.0009],  # knee
        [0.0150, -0.0319, 0.0863, 0.0079, -0.1091, -0.0711, 0.0230,
         0.0409, -0.0028, -0.0131, -0.0300, 0.0074, 0.0061],  # ankle
    ]
)  # fmt: skip
N_JOINTS = 3  # hip, knee, ankle


def reference_fourier(phase: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Reference (hip, knee, ankle) angles and their phase derivatives, from the series.

    Args:
        phase: gait phase in cycles, any shape (float64 recommended).

    Returns:
        ``q`` and ``dq/dphi`` (rad and rad per cycle), each of shape ``(3, *phase.shape)``.
    """
    phase = np.asarray(phase, np.float64)
    q = np.zeros((N_JOINTS, *phase.shape))
    dq = np.zeros((N_JOINTS, *phase.shape))
    for j in range(N_JOINTS):
        q[j] += REF_COEFFS[j, 0]
        for k in range(1, 7):
            a, b = REF_COEFFS[j, 2 * k - 1], REF_COEFFS[j, 2 * k]
            w = 2.0 * np.pi * k
            q[j] += a * np.cos(w * phase) + b * np.sin(w * phase)
            dq[j] += w * (-a * np.sin(w * phase) + b * np.cos(w * phase))
    return q, dq


_REF_BINS = 1024
_ref_grid = np.arange(_REF_BINS + 1) / _REF_BINS
_REF_Q, _REF_DQ = reference_fourier(_ref_grid)  # (3, BINS+1), last = first (periodic)
_REF_TABLES: dict[Any, np.ndarray] = {}


def reference_lookup(phase: np.ndarray, dtype: Any = np.float32) -> tuple[np.ndarray, ...]:
    """Table lookup (1024 bins, linear) of the reference:
    ``(q_hip, q_knee, q_ankle, dq_hip, dq_knee, dq_ankle)``.

    ``phase`` in ``[0, 1)`` cycles, any shape; derivatives are per cycle. Interpolation error
    < 1e-5 rad.
    """
    return tuple(reference_table(phase, dtype))


def reference_table(phase: np.ndarray, dtype: Any = np.float32) -> np.ndarray:
    """:func:`reference_lookup` as one array ``(6, *phase.shape)``."""
    key = np.dtype(dtype).str
    tab = _REF_TABLES.get(key)
    if tab is None:
        tab = _REF_TABLES[key] = np.concatenate([_REF_Q, _REF_DQ]).astype(dtype)  # (6, B+1)
    x = np.asarray(phase) * _REF_BINS
    i = np.minimum(x.astype(np.int64), _REF_BINS - 1)
    f = (x - i).astype(dtype)
    lo = tab[:, i]
    return lo + f * (tab[:, i + 1] - lo)


# --------------------------------------------------------------------------------------------
@dataclass
class PhysicsConfig:
    """Physics switches and constants (defaults: docs/envs/exoskeleton.md, calibration).

    Harness and contact constants hold for the nominal body (75 kg, 1.75 m); with
    ``scale_with_body`` each instance gets them scaled by dimensional analysis (forces with
    ``M g``, lengths with ``H``, times with ``sqrt(H / g)``), so that forces in units of body
    weight do not depend on the body. The switches exist for validation tests (energy
    conservation, linearised periods).
    """

    dt: float = 0.0025  # physics substep (s)
    contact: bool = True  # foot-belt contact
    harness: bool = True  # BWS force, pelvis springs/dampers, harness catch
    harness_damping: bool = True  # c_x, c_y (off: the harness is conservative)
    passive: bool = True  # Anderson elastic passive moments
    joint_damping: float = 0.1  # passive joint damping d (N m s/rad), Anderson / 3dpredictsim
    fixed_pelvis: bool = False  # pelvis clamped (linearisation tests)
    scale_with_body: bool = True  # harness and contact constants scaled with M and H
    # foot: heel and metatarsal contact points along the sole (x H behind / ahead of the ankle)
    foot_heel: float = FOOT_HEEL
    foot_ball: float = FOOT_BALL
    # contact (per point): Hunt-Crossley normal force and stick-slip tangential anchor
    contact_k: float = 4.0e4  # N/m^1.5 (heel pad, shoe and soft tissue; calibrated, see docs)
    contact_c: float = 2.0  # s/m [design]
    tangent_k: float = 2.0e4  # N/m
    tangent_c: float = 1.5e3  # N s/m
    mu_s: float = 0.5  # first value 0.9 [verify]; 0.5/0.4 calibrated for robustness, see docs
    mu_k: float = 0.4
    # harness / pelvis guidance
    kx: float = 2000.0  # N/m
    cx: float = 400.0  # N s/m
    ky: float = 500.0  # N/m (a near-constant-force support; first value 3000, see docs)
    cy: float = 0.0  # N s/m (first value 1500, then 500 without an ankle: see docs)
    y0_ratio: float = 0.937  # y0 = y0_ratio * 0.53 H, the mean walking height (see docs)
    catch_ratio: float = 0.80  # harness catch below catch_ratio * 0.53 H
    catch_k: float = 2.0e4  # N/m

    def key(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def __post_init__(self) -> None:
        for name in ("dt", "foot_heel", "foot_ball", "contact_k", "tangent_k", "mu_s", "mu_k"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and value > 0):
                raise ValueError(f"physics.{name}: expected a positive number, got {value!r}")
        if self.mu_k > self.mu_s:
            raise ValueError(f"physics.mu_k: {self.mu_k} exceeds mu_s = {self.mu_s}")


#: constants scaled with the body: name -> (mass exponent, height exponent)
BODY_SCALED = {
    "contact_k": (1.0, -1.5),  # N/m^1.5: M g / H^1.5
    "contact_c": (0.0, -0.5),  # s/m: 1 / sqrt(g H)
    "tangent_k": (1.0, -1.0),  # N/m: M g / H
    "tangent_c": (1.0, -0.5),  # N s/m: M sqrt(g / H)
    "kx": (1.0, -1.0),
    "cx": (1.0, -0.5),
    "ky": (1.0, -1.0),
    "cy": (1.0, -0.5),
    "catch_k": (1.0, -1.0),
}


def body_parameters(
    mass: np.ndarray,
    height: np.ndarray,
    dtype: Any = np.float32,
    config: PhysicsConfig | None = None,
) -> dict:
    """Segment parameters (Winter) for bodies of mass ``mass`` (kg) and height ``height`` (m).

    Returns a dict of arrays shaped like the inputs: lengths ``L1`` (thigh), ``Lleg`` (knee ->
    ankle), ``L2`` (knee -> sole), the foot (sole height below the ankle ``hf``, heel and
    metatarsal points ``x_heel`` < 0 < ``x_ball`` along the sole from the ankle, rotational
    inertia ``IA`` about the ankle, mass ``mf`` and COM distance ``df``), masses ``m1``, ``m2``,
    COM distances ``c1``, ``c2``, inertias ``I1``, ``I2`` about the COM, the Lagrangian constants
    ``A11``, ``A12``, ``A22``, ``e1``, ``e2`` (docs/envs/exoskeleton.md), and the harness and
    contact constants of :data:`BODY_SCALED` (scaled from ``config``'s nominal values when
    ``config.scale_with_body``).
    """
    M = np.asarray(mass, np.float64)
    H = np.asarray(height, np.float64)
    cfg = config or PhysicsConfig()
    L1 = WINTER["thigh_len"] * H
    Lleg = WINTER["leg_len"] * H
    hf = WINTER["foot_h"] * H
    L2 = Lleg + hf
    m1 = WINTER["thigh_mass"] * M
    m2 = WINTER["shank_foot_mass"] * M
    c1 = WINTER["thigh_com"] * L1
    c2 = WINTER["shank_com"] * Lleg
    I1 = m1 * (WINTER["thigh_gyr"] * L1) ** 2
    I2 = m2 * (WINTER["shank_gyr"] * Lleg) ** 2
    lf = cfg.foot_ball * H
    mf = WINTER["foot_mass"] * M
    df = WINTER["foot_com"] * lf
    IA = mf * ((WINTER["foot_gyr"] * lf) ** 2 + df**2)
    p = {
        "M": M, "H": H, "L1": L1, "Lleg": Lleg, "L2": L2, "hf": hf,
        "x_heel": -cfg.foot_heel * H, "x_ball": lf, "IA": IA, "mf": mf, "df": df,
        "m1": m1, "m2": m2, "c1": c1, "c2": c2, "I1": I1, "I2": I2,
        "A11": I1 + m1 * c1**2 + m2 * L1**2, "A22": I2 + m2 * c2**2, "A12": m2 * L1 * c2,
        "e1": m1 * c1 + m2 * L1, "e2": m2 * c2,
    }  # fmt: skip
    M0, H0 = NOMINAL_BODY
    for name, (em, eh) in BODY_SCALED.items():
        value = float(getattr(cfg, name))
        if cfg.scale_with_body:
            p[name] = value * (M / M0) ** em * (H / H0) ** eh
        else:
            p[name] = value + 0.0 * M
    return {k: np.asarray(v + 0.0 * M, dtype) for k, v in p.items()}


def foot_contact_offsets(a2, b, Lleg, hf, x_pts) -> tuple[np.ndarray, np.ndarray]:
    """Heel and metatarsal points relative to the knee, ``(P_x - K_x, P_y - K_y)``.

    Args:
        a2: shank angles from the downward vertical, shape ``S``.
        b: ankle angles (dorsiflexion +), shape ``S``.
        Lleg, hf: knee -> ankle length and sole height below the ankle, broadcastable to ``S``.
        x_pts: ``(heel, ball)`` positions along the sole from the ankle (heel < 0), each
            broadcastable to ``S``.

    Returns:
        Two arrays of shape ``(2, *S)`` (point 0 = heel, 1 = ball).
    """
    pf = a2 + b  # foot angle: the sole's forward direction, counter-clockwise from +x
    sf, cf = np.sin(pf), np.cos(pf)
    xs = np.stack([np.broadcast_to(x, np.shape(pf)) for x in x_pts])
    ax, ay = Lleg * np.sin(a2), -Lleg * np.cos(a2)
    return ax + xs * cf + hf * sf, ay + xs * sf - hf * cf


def _passive_exp(x: np.ndarray) -> np.ndarray:
    """``exp(min(x, cap)) * (1 + max(x - cap, 0))``: exponential with a linear continuation."""
    over = np.maximum(x - PASSIVE_EXP_CAP, 0.0)
    return np.exp(np.minimum(x, PASSIVE_EXP_CAP)) * (1.0 + over)


def _passive_exp_slope(x: np.ndarray) -> np.ndarray:
    """Derivative of :func:`_passive_exp`."""
    return np.exp(np.minimum(x, PASSIVE_EXP_CAP))


class WalkerSim:
    """Batched planar walker dynamics (``N`` instances, struct-of-arrays).

    State: pelvis ``xp, yp, vx, vy`` ``(N,)``; per leg ``a1, a2`` (absolute thigh/shank angles
    from the downward vertical), ``w1, w2`` (their rates), the ankle angle ``b`` and rate ``wb``,
    all ``(2, N)``; per contact point (heel, ball) and leg the belt anchor stretch ``anchor`` and
    ``contact`` flag, ``(2, 2, N)``. Per-instance parameters (body, BWS ``beta``, belt speed
    ``v_belt``, passive-limit shifts, external push ``f_push``) are plain attributes set by the
    owner.

    Args:
        num: number of instances.
        config: physics switches and constants.
        dtype: ``np.float32`` (default) or ``np.float64`` (validation).
    """

    STATE = ("xp", "yp", "vx", "vy", "a1", "a2", "w1", "w2", "b", "wb", "anchor", "contact")
    #: per-substep outputs: foot forces (per foot, and per point ``fn_pt``), passive moments
    OUTPUTS = ("fn", "ft", "fn_pt", "tau_pass_h", "tau_pass_k", "tau_pass_a")
    PARAMS = (
        "M", "H", "L1", "Lleg", "L2", "hf", "x_heel", "x_ball", "IA", "mf", "df", "m1", "m2",
        "c1", "c2", "I1", "I2", "A11", "A22", "A12", "e1", "e2", *BODY_SCALED, "beta",
        "v_belt", "y0", "y_catch", "hip_th1", "knee_th1", "ankle_th2", "f_push",
    )  # fmt: skip

    def __init__(self, num: int, config: PhysicsConfig | None = None, dtype: Any = np.float32):
        self.num = int(num)
        self.config = config or PhysicsConfig()
        self.dtype = np.dtype(dtype)
        n, dt = self.num, self.dtype
        for name in ("xp", "yp", "vx", "vy"):
            setattr(self, name, np.zeros(n, dt))
        for name in ("a1", "a2", "w1", "w2", "b", "wb", "fn", "ft"):
            setattr(self, name, np.zeros((2, n), dt))
        self.anchor = np.zeros((2, 2, n), dt)
        self.fn_pt = np.zeros((2, 2, n), dt)
        self.contact = np.zeros((2, 2, n), bool)
        self.set_body(np.full(n, 75.0), np.full(n, 1.75))
        self.beta = np.zeros(n, dt)
        self.v_belt = np.zeros(n, dt)
        self.f_push = np.zeros(n, dt)
        self.hip_th1 = np.full((2, n), ANDERSON_HIP_THETA[0], dt)
        self.knee_th1 = np.full((2, n), ANDERSON_KNEE_THETA[0], dt)
        self.ankle_th2 = np.full((2, n), ANDERSON_ANKLE_THETA[1], dt)
        self.tau_pass_h = np.zeros((2, n), dt)
        self.tau_pass_k = np.zeros((2, n), dt)
        self.tau_pass_a = np.zeros((2, n), dt)

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

    def ankle_angles(self) -> tuple[np.ndarray, np.ndarray]:
        """Ankle angle (dorsiflexion +) and rate ``(q_a, qd_a)``, each ``(2, N)``."""
        return self.b, self.wb

    def contact_offsets(self) -> tuple[np.ndarray, np.ndarray]:
        """Heel and ball points relative to the knee, each ``(2 points, 2 legs, N)``."""
        return foot_contact_offsets(self.a2, self.b, self.Lleg, self.hf, (self.x_heel, self.x_ball))

    def foot_points(self) -> tuple[np.ndarray, ...]:
        """Knee, ankle, heel and ball positions ``(x_K, y_K, x_A, y_A, x_P, y_P)``: the first
        four ``(2, N)``, the points ``(2 points, 2 legs, N)``."""
        xk = self.xp + self.L1 * np.sin(self.a1)
        yk = self.yp - self.L1 * np.cos(self.a1)
        rx, ry = self.contact_offsets()
        xa = xk + self.Lleg * np.sin(self.a2)
        ya = yk - self.Lleg * np.cos(self.a2)
        return xk, yk, xa, ya, xk + rx, yk + ry

    def passive_moments(self) -> tuple[np.ndarray, ...]:
        """Anderson passive moments (elastic + damping) at hip, knee and ankle, ``(2, N)`` each
        (N m; ankle dorsiflexion +), and the ankle's elastic slope ``d tau / d q_a``."""
        cfg = self.config
        qh, qk, qdh, qdk = self.a1, self.a1 - self.a2, self.w1, self.w1 - self.w2
        th = np.zeros_like(self.a1)
        tk = np.zeros_like(self.a1)
        ta = np.zeros_like(self.a1)
        ka = np.zeros_like(self.a1)
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
            # ankle: OpenSim's sign (dorsiflexion +); th2 (the dorsiflexion limit) may be
            # shifted per instance (plantarflexor contracture)
            k1, k2, k3, k4 = ANDERSON_ANKLE_K
            x2 = k2 * (self.b - self.ankle_th2)
            x1 = k4 * (self.b - ANDERSON_ANKLE_THETA[0])
            over = np.maximum(ANKLE_PF_STOP - self.b, 0.0)
            ta = k1 * _passive_exp(x2) + k3 * _passive_exp(x1) + ANKLE_STOP_K * over
            ka = (
                k1 * k2 * _passive_exp_slope(x2)
                + k3 * k4 * _passive_exp_slope(x1)
                - ANKLE_STOP_K * (over > 0)
            )
        if cfg.joint_damping:
            th = th - cfg.joint_damping * qdh
            tk = tk - cfg.joint_damping * qdk
            ta = ta - cfg.joint_damping * self.wb
        cast = lambda x: x.astype(self.dtype, copy=False)  # noqa: E731
        return cast(th), cast(tk), cast(ta), cast(ka)

    # ---------------------------------------------------------------------------------------
    def substep(
        self,
        tau_h: np.ndarray,
        tau_k: np.ndarray,
        tau_a: np.ndarray | float = 0.0,
        ankle_k: np.ndarray | float = 0.0,
        ankle_c: np.ndarray | float = 0.0,
        dt: float | None = None,
    ) -> None:
        """Advance by one step under active joint torques ``(2, N)`` (N m).

        ``tau_a`` is the active ankle torque on the foot (dorsiflexion +); ``ankle_k`` and
        ``ankle_c`` its slopes ``-d tau_a / d q_a`` and ``-d tau_a / d qd_a`` (N m/rad, N m s/rad,
        >= 0), which the implicit foot step uses. Adds passive moments, the foot's weight,
        contact, BWS and harness forces; stores the foot forces in ``fn``/``ft`` (per foot) and
        ``fn_pt`` (per point) and the passive moments in ``tau_pass_*``.

        Scheme: the thigh, shank and pelvis take a semi-implicit (symplectic) Euler step with
        the forces of the current state; the foot's rotation, whose inertia about the ankle is
        ~50x smaller than the shank's, then takes a linearly implicit Euler step of its own
        equation ``IA (alpha2'' + b'') = tau_ankle + M_ground + M_weight`` (the contact and ankle
        damping would make an explicit step unstable).
        """
        cfg = self.config
        h = cfg.dt if dt is None else dt
        a1, a2, w1, w2, b, wb = self.a1, self.a2, self.w1, self.w2, self.b, self.wb
        s1, c1, s2, c2 = np.sin(a1), np.cos(a1), np.sin(a2), np.cos(a2)
        d = a1 - a2
        sd, cd = np.sin(d), np.cos(d)
        L1, Lleg = self.L1, self.Lleg
        e1, e2, A11, A22, A12 = self.e1, self.e2, self.A11, self.A22, self.A12

        tph, tpk, tpa, kpa = self.passive_moments()
        self.tau_pass_h[...] = tph
        self.tau_pass_k[...] = tpk
        self.tau_pass_a[...] = tpa
        th = tau_h + tph
        tk = tau_k + tpk
        pf = a2 + b
        sf, cf = np.sin(pf), np.cos(pf)
        # moments on the foot about the ankle: the ankle's (active + passive), whose reaction
        # acts on the shank, and the foot's weight (its mass is lumped with the shank's, so
        # only its moment about the ankle acts on the foot)
        m_joint = tau_a + tpa
        m_ank = m_joint - self.mf * GRAVITY * self.df * cf
        Q1 = th + tk
        Q2 = -tk - m_joint

        w1s = w1 * w1
        w2s = w2 * w2
        if cfg.contact:
            # heel and ball relative to the ankle (ra) and to the knee (rk): (point, leg, N)
            shape = b.shape
            xs = np.stack(
                [np.broadcast_to(self.x_heel, shape), np.broadcast_to(self.x_ball, shape)]
            )
            hf = self.hf
            rax = xs * cf + hf * sf
            ray = xs * sf - hf * cf
            rky = -Lleg * c2 + ray
            pen = L1 * c1 - rky - self.yp
            touch = pen > 0.0
            penp = np.maximum(pen, 0.0)
            # material velocity of each point: pelvis + thigh + shank + foot rotation
            vy_p = self.vy + L1 * s1 * w1 + Lleg * s2 * w2 + (w2 + wb) * rax
            vx_p = self.vx + L1 * c1 * w1 + Lleg * c2 * w2 - (w2 + wb) * ray + self.v_belt
            kc = self.contact_k
            fe = kc * penp * np.sqrt(penp)  # elastic part
            damp = np.maximum(1.0 - 1.5 * self.contact_c * vy_p, 0.0)
            fn = fe * damp
            # stick-slip: a spring anchored on the belt at touch-down, stretched by the slip of
            # the material contact point
            kt, ct = self.tangent_k, self.tangent_c
            stretch = np.where(touch & self.contact, self.anchor, 0.0)
            ft = -kt * stretch - ct * vx_p
            lim = cfg.mu_s * fn
            slip = np.abs(ft) > lim
            ft = np.where(slip, np.sign(ft) * (cfg.mu_k * fn), ft)
            # slip re-seats the anchor so that the spring alone carries the kinetic force
            stretch = np.where(slip, -ft / kt, stretch)
            self.anchor[...] = np.where(touch, stretch + vx_p * h, 0.0)
            self.contact[...] = touch
            self.fn_pt[...] = fn
            fnf = fn[0] + fn[1]
            ftf = ft[0] + ft[1]
            self.fn[...] = fnf
            self.ft[...] = ftf
            # ground moment about the ankle and its slopes in the ankle angle and rate
            m_gnd = (fn * rax - ft * ray).sum(axis=0)
            stick = touch & ~slip
            c_gnd = (
                1.5 * self.contact_c * fe * np.where(damp > 0, 1.0, 0.0) * rax * rax
                + np.where(stick, ct, 0.0) * ray * ray
            ).sum(axis=0)
            k_gnd = (
                1.5 * kc * np.sqrt(penp) * damp * rax * rax + np.where(stick, kt, 0.0) * ray * ray
            ).sum(axis=0)
            # forces on the shank at the ankle
            Q1 = Q1 + L1 * (ftf * c1 + fnf * s1)
            Q2 = Q2 + Lleg * (ftf * c2 + fnf * s2)
            fx = ftf.sum(axis=0)
            fy = fnf.sum(axis=0)
        else:
            m_gnd = c_gnd = k_gnd = 0.0
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
                fy = fy + self.beta * M * GRAVITY - self.ky * (self.yp - self.y0)
                fx = fx - self.kx * self.xp
                if cfg.harness_damping:
                    fy = fy - self.cy * self.vy
                    fx = fx - self.cx * self.vx
                fy = fy + self.catch_k * np.maximum(self.y_catch - self.yp, 0.0)
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
        # the foot: IA (b'' + alpha2'') = m_ank + m_gnd, linearly implicit in (b, wb)
        ia = self.IA
        force = m_ank + m_gnd - ia * b2
        cc = ankle_c + cfg.joint_damping + c_gnd
        kk = np.maximum(ankle_k - kpa, 0.0) + k_gnd
        dwb = (force - kk * h * wb) / (ia / h + cc + kk * h)
        wb += dwb.astype(self.dtype, copy=False)
        b += wb * h
        w1 += (b1 * h).astype(self.dtype, copy=False)
        w2 += (b2 * h).astype(self.dtype, copy=False)
        a1 += w1 * h
        a2 += w2 * h


# Belt speed = BELT_GAIN x the reference's mean stance-foot speed 1.17 (1.1/T)(H/1.75) m/s.
# With the kinematic value the walker's stance feet brake against the belt (docs/envs/exoskeleton.md).
BELT_GAIN = 1.1
BELT_KINEMATIC = 1.17


def belt_speed(period: np.ndarray, height: np.ndarray) -> np.ndarray:
    """Treadmill belt speed (m/s): ``BELT_GAIN * 1.17 (1.1/T)(H/1.75)``."""
    return BELT_GAIN * BELT_KINEMATIC * (1.1 / np.asarray(period)) * (np.asarray(height) / 1.75)


def place_on_reference(
    sim: WalkerSim,
    idx: np.ndarray,
    phase: np.ndarray,
    period: np.ndarray,
    angle_noise: np.ndarray | None = None,
    rate_noise: np.ndarray | None = None,
) -> None:
    """Put instances ``idx`` on the reference posture at right-leg ``phase`` (cycles).

    The pelvis is placed at the height where the lowest foot point carries the static load;
    ``angle_noise``/``rate_noise``: optional ``(4, n)`` additions (hip R, knee R, hip L, knee L)
    in rad and rad/s (the ankles start on the reference).
    """
    ph = np.stack([phase, (phase + 0.5) % 1.0]).astype(np.float64)
    q, dq = reference_fourier(ph)
    qh, qk, qa = q
    rate = 1.0 / np.asarray(period, np.float64)
    qdh, qdk, qda = dq[0] * rate, dq[1] * rate, dq[2] * rate
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
    sim.b[:, idx] = qa
    sim.wb[:, idx] = qda
    get = lambda k: getattr(sim, k)[idx].astype(np.float64)  # noqa: E731
    _, ry = foot_contact_offsets(
        qh - qk, qa, get("Lleg"), get("hf"), (get("x_heel"), get("x_ball"))
    )
    drop = sim.L1[idx] * np.cos(qh) - ry.min(axis=0)  # (2 legs, n)
    load = np.maximum(1.0 - sim.beta[idx], 0.0) * sim.M[idx] * GRAVITY
    pen = (load / get("contact_k")) ** (2.0 / 3.0)
    sim.yp[idx] = drop.max(axis=0) - pen
    sim.xp[idx] = 0.0
    sim.vx[idx] = 0.0
    sim.vy[idx] = 0.0
    sim.contact[..., idx] = False
    sim.anchor[..., idx] = 0.0
    sim.fn[:, idx] = 0.0
    sim.ft[:, idx] = 0.0
    sim.fn_pt[..., idx] = 0.0
