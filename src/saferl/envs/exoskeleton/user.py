"""The simulated walker: an impaired human controller and its learned feedforward.

The human half of ``ExoGait-v0`` (docs/envs/exoskeleton.md), vectorised over ``N`` instances
(leg arrays ``(2, N)``, row 0 = right):

* :class:`ImpairmentLevel` / :data:`WALKER_IMPAIRMENTS`: the walker's parameters per level.
* :class:`HumanController`: intrinsic impedance + delayed reflex correction + learned
  feedforward, scaled by strength, with motor noise, spasticity and contracture by level.
* :func:`feedforward_grid`: the feedforward torque learned once by iterative learning control
  (ILC, :func:`learn_feedforward`), cached on disk, interpolated per instance
  (:func:`interpolate_feedforward`).

Joint angles in rad (hip flexion +, knee flexion +), torques in N m.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from saferl.envs.exoskeleton.physics import (
    ANDERSON_ANKLE_K,
    ANDERSON_ANKLE_THETA,
    ANDERSON_HIP_K,
    ANDERSON_HIP_THETA,
    ANDERSON_KNEE_K,
    ANDERSON_KNEE_THETA,
    BELT_GAIN,
    FOOT_BALL,
    FOOT_HEEL,
    GRAVITY,
    REF_COEFFS,
    WINTER,
    PhysicsConfig,
    WalkerSim,
    belt_speed,
    place_on_reference,
    reference_table,
)
from saferl.utils import atomic_write, cache_dir

__all__ = [
    "CONTROL_DT",
    "TAU_MAX_PER_KG",
    "WALKER_IMPAIRMENTS",
    "HumanController",
    "ImpairmentLevel",
    "feedforward_grid",
    "interpolate_feedforward",
    "learn_feedforward",
]


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
    # the paretic ankle: dorsiflexor strength relative to the leg's (foot drop), plantarflexor
    # stretch reflex on dorsiflexion speed (spastic plantarflexion), and the loss of passive
    # dorsiflexion range (plantarflexor contracture, negative)
    dorsiflexor_strength: float = 1.0
    ankle_spasticity_vth: float = np.inf  # rad/s dorsiflexion velocity threshold
    ankle_spasticity_gain: float = 0.0  # N m s/rad
    ankle_rom_shift_deg: float = 0.0


WALKER_IMPAIRMENTS: dict[str, ImpairmentLevel] = {
    lvl.name: lvl
    for lvl in (
        ImpairmentLevel(
            "none", (0.95, 1.0), 1.00, np.inf, 0.0, 0.0, 0.0, 0.02, 0.01, (0.2, 0.3),
            1.0, np.inf, 0.0, 0.0,
        ),
        ImpairmentLevel(
            "mild", (0.6, 0.8), 0.95, 4.0, 1.0, -10.0, 5.0, 0.05, 0.02, (0.2, 0.4),
            0.8, 3.0, 1.0, -5.0,
        ),
        ImpairmentLevel(
            "moderate", (0.3, 0.5), 0.90, 2.5, 3.0, -20.0, 10.0, 0.10, 0.04, (0.3, 0.45),
            0.5, 2.0, 3.0, -10.0,
        ),
        ImpairmentLevel(
            "severe", (0.1, 0.25), 0.85, 1.5, 6.0, -30.0, 15.0, 0.15, 0.06, (0.4, 0.5),
            0.3, 1.0, 6.0, -15.0,
        ),
    )
}  # fmt: skip


# --------------------------------------------------------------------------------------------
# Human walker controller (docs/envs/exoskeleton.md); per joint (hip, knee, ankle)
# hip, knee: N m/rad and N m s/rad; the ankle's per kg of body mass (at 75 kg: 225 N m/rad,
# 4.5 N m s/rad, 45, 0.75), the order of the ankle's stance quasi-stiffness in level walking
K_INT = (150.0, 100.0)  # intrinsic stiffness
B_INT = (15.0, 6.0)  # intrinsic damping
K_REF = (100.0, 60.0)  # delayed (long-latency) stiffness
B_REF = (5.0, 2.0)  # delayed damping
ANKLE_GAINS_PER_KG = (3.0, 0.06, 0.6, 0.01)  # (K_int, B_int, K_ref, B_ref) per kg
TAU_MAX_PER_KG = 2.0  # isometric strength, N m/kg (hip, knee; ankle plantarflexion) [verify]
TAU_MAX_DORSI_PER_KG = 0.6  # ankle dorsiflexion strength, N m/kg [verify]
CONTROL_DT = 0.01  # human control-rate updates (s)
REFLEX_DELAY_STEPS = 6  # 60 ms long-latency delay
SPAS_DELAY_STEPS = 4  # 40 ms stretch-reflex delay
SPAS_TAU = 0.03  # spasticity activation time constant (s)
NOISE_HOLD_STEPS = 5  # motor noise held for 50 ms
FF_BINS = 100  # feedforward phase bins
N_JOINTS = 3  # hip, knee, ankle
FF_JOINTS = 2  # the learned feedforward: hip and knee (the ankle has none, see learn_feedforward)
_BUF = 8  # ring-buffer slots (>= max delay + 1)
_col = lambda v: np.asarray(v, np.float64)[:, None, None]  # noqa: E731  (J,) -> (J, 1, 1)
_ANKLE_GAINS = np.asarray(ANKLE_GAINS_PER_KG)[:, None, None]


class HumanController:
    """Batched scripted human walker: per leg and joint j (hip, knee, ankle),

    ``tau_j = clip(s_j [ff_j(phi) + K_int e + B_int e' + K_ref e(t - 60 ms) + B_ref e'(t - 60 ms)]
    (1 + cv xi), lo_j, hi_j) + tau_spas_j`` (passive moments are added by :class:`WalkerSim`).
    Hip and knee are limited to ``+-s tau_max``; the ankle to ``-s tau_max`` (plantarflexion)
    and ``+s_df tau_dorsi`` (dorsiflexion), where the dorsiflexion gain ``s_df`` is the leg's
    strength times its dorsiflexor strength (foot drop).

    Slow parts (phase clock, reference, feedforward, delayed reflex, spasticity, noise) update once
    per 10 ms control step (:meth:`begin_step`); the intrinsic impedance acts at every physics
    substep (:meth:`torques`). Delays use ring buffers at the control rate.

    Per-instance parameters (set by the owner, e.g. the env's reset): ``strength`` (2, N),
    ``dorsi`` (2, N) (dorsiflexor strength factor), ``tau_max`` (N,), ``spas_gain`` (2, 2, N)
    (knee, ankle; zero on the non-paretic leg), ``spas_vth`` (2, N) (knee, ankle),
    ``noise_cv`` (N,), ``phase_noise`` (N,), ``period`` (N,), ``ff`` (N, FF_BINS, 2) (hip, knee).
    Stacked per-joint arrays are ``(3, 2, N)`` (joint, leg, instance); ``qr_h``, ``act_k``, ...
    are views of their rows.
    """

    STATE = ("phase", "rate_mult", "q_buf", "qd_buf", "spas_act", "noise", "noise_t", "ptr")
    PARAMS = (
        "strength", "dorsi", "tau_max", "spas_gain", "spas_vth", "noise_cv", "phase_noise",
        "period", "ff",
    )  # fmt: skip
    #: per-step outputs (recomputed every control step; copied with sub-batches)
    OUTPUTS = (
        "qr", "qdr", "slow", "gain", "gain_df", "lo", "hi", "tau_spas", "leg_phase", "fb", "act",
        "ff_now", "gains",
    )  # fmt: skip

    def __init__(self, num: int, dtype: Any = np.float32) -> None:
        self.num = n = int(num)
        self.dtype = dt = np.dtype(dtype)
        self.strength = np.ones((2, n), dt)
        self.dorsi = np.ones((2, n), dt)
        self.tau_max = np.full(n, TAU_MAX_PER_KG * 75.0, dt)
        self.spas_gain = np.zeros((2, 2, n), dt)
        self.spas_vth = np.full((2, n), 1e6, dt)
        self.noise_cv = np.zeros(n, dt)
        self.phase_noise = np.zeros(n, dt)
        self.period = np.full(n, 1.2, dt)
        self.ff = np.zeros((n, FF_BINS, FF_JOINTS), dt)
        self.phase = np.zeros(n, np.float64)  # float64 clock: no drift over long episodes
        self.rate_mult = np.ones(n, np.float64)
        self.q_buf = np.zeros((_BUF, N_JOINTS, 2, n), dt)
        self.qd_buf = np.zeros((_BUF, N_JOINTS, 2, n), dt)
        self.spas_act = np.zeros((2, 2, n), dt)
        self.noise = np.zeros((N_JOINTS, 2, n), dt)
        self.noise_t = np.zeros(n, np.int64)
        self.ptr = np.zeros((), np.int64)
        for name in ("qr", "qdr", "slow", "gain", "lo", "hi", "tau_spas", "fb", "act", "ff_now"):
            setattr(self, name, np.zeros((N_JOINTS, 2, n), dt))
        self.gain_df = np.zeros((2, n), dt)
        self.leg_phase = np.zeros((2, n), dt)
        self._inst = np.arange(n)[None, :] * FF_BINS
        # per-joint gains (3, 1, N): hip and knee fixed, the ankle's scaled with the body mass
        # (recomputed from tau_max = TAU_MAX_PER_KG M at every control step)
        self.gains = np.zeros((4, N_JOINTS, 1, n), dt)  # K_int, B_int, K_ref, B_ref
        for g, values in enumerate((K_INT, B_INT, K_REF, B_REF)):
            self.gains[g, :2] = _col(values)

    # views: the names the env, baselines and tests read
    qr_h = property(lambda self: self.qr[0])
    qr_k = property(lambda self: self.qr[1])
    qr_a = property(lambda self: self.qr[2])
    qdr_h = property(lambda self: self.qdr[0])
    qdr_k = property(lambda self: self.qdr[1])
    qdr_a = property(lambda self: self.qdr[2])
    act_h = property(lambda self: self.act[0])
    act_k = property(lambda self: self.act[1])
    act_a = property(lambda self: self.act[2])

    def get_state(self) -> dict[str, np.ndarray]:
        keys = (*self.STATE, *self.PARAMS, *self.OUTPUTS)
        return {k: np.array(getattr(self, k), copy=True) for k in keys}

    def set_state(self, state: dict[str, Any]) -> None:
        for k in (*self.STATE, *self.PARAMS, *self.OUTPUTS):
            getattr(self, k)[...] = state[k]

    @staticmethod
    def _joints(sim: WalkerSim) -> tuple[np.ndarray, np.ndarray]:
        qh, qk, qdh, qdk = sim.joint_angles()
        qa, qda = sim.ankle_angles()
        return np.stack([qh, qk, qa]), np.stack([qdh, qdk, qda])

    # ---------------------------------------------------------------------------------------
    def reset(self, sim: WalkerSim, idx: np.ndarray, phase: np.ndarray) -> None:
        """Start instances ``idx`` at right-leg phase ``phase``; fill the delay buffers with the
        current state of ``sim`` (call after placing the body)."""
        self.phase[idx] = phase
        self.rate_mult[idx] = 1.0
        q, qd = self._joints(sim)
        self.q_buf[..., idx] = q[..., idx][None]
        self.qd_buf[..., idx] = qd[..., idx][None]
        self.spas_act[..., idx] = 0.0
        self.noise[..., idx] = 0.0
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
        ref = reference_table(lp, self.dtype)  # (6, 2, N)
        rate = (self.rate_mult / self.period).astype(self.dtype)
        self.qr[...] = ref[:3]
        np.multiply(ref[3:], rate, out=self.qdr)
        # feedforward (linear interpolation in phase, periodic)
        x = lp * FF_BINS
        i0 = np.minimum(x.astype(np.int64), FF_BINS - 1)
        f = (x - i0).astype(self.dtype)
        j0 = (self._inst + i0) * FF_JOINTS
        j1 = (self._inst + (i0 + 1) % FF_BINS) * FF_JOINTS
        ffl = self.ff.reshape(-1)
        for j in range(FF_JOINTS):
            lo = ffl[j0 + j]
            self.ff_now[j] = lo + f * (ffl[j1 + j] - lo)
        mass = (self.tau_max / TAU_MAX_PER_KG)[None, None, :]
        self.gains[:, 2] = _ANKLE_GAINS * mass
        # delayed correction
        p = int(self.ptr)
        sd = (p - 1 - REFLEX_DELAY_STEPS) % _BUF
        self.slow[...] = (
            self.ff_now
            + self.gains[2] * (self.qr - self.q_buf[sd])
            + self.gains[3] * (self.qdr - self.qd_buf[sd])
        )
        # spasticity (knee, ankle): delayed stretch velocity above threshold (knee flexion,
        # ankle dorsiflexion), first-order activation; the reflex torque opposes the stretch
        ss = (p - 1 - SPAS_DELAY_STEPS) % _BUF
        target = np.maximum(self.qd_buf[ss, 1:] - self.spas_vth[:, None, :], 0.0)
        self.spas_act += (target - self.spas_act) * (1.0 - np.exp(-dt_control / SPAS_TAU))
        np.multiply(self.spas_act, -self.spas_gain, out=self.tau_spas[1:])
        # motor noise, held for NOISE_HOLD_STEPS control steps
        if rng is not None:
            due = self.noise_t <= 0
            if due.any():
                idx = np.flatnonzero(due)
                xi = rng.normal(2 * N_JOINTS, idx).T.reshape(N_JOINTS, 2, -1)
                self.noise[..., idx] = np.clip(xi, -3.0, 3.0)
                self.noise_t[idx] = NOISE_HOLD_STEPS
            self.noise_t -= 1
        s = self.strength
        np.multiply(s, 1.0 + self.noise_cv * self.noise, out=self.gain)
        np.multiply(self.gain[2], self.dorsi, out=self.gain_df)
        lim = s * self.tau_max
        self.hi[:2] = lim
        self.lo[:2] = -lim
        self.lo[2] = -lim
        self.hi[2] = s * self.dorsi * (TAU_MAX_DORSI_PER_KG / TAU_MAX_PER_KG) * self.tau_max

    def torques(self, sim: WalkerSim, t_sub: float) -> tuple[np.ndarray, ...]:
        """Human joint torques ``(tau_h, tau_k, tau_a, k_a, c_a)`` (2, N) at ``t_sub`` s into the
        control step; ``k_a``, ``c_a``: the ankle torque's stiffness and damping (its slopes in
        the ankle angle and rate), for the physics' implicit foot step.

        Also stores the feedback part (``fb``, before strength and noise) and the active
        torques (``act``, without spasticity).
        """
        q, qd = self._joints(sim)
        fb = self.gains[0] * (self.qr + self.qdr * t_sub - q) + self.gains[1] * (self.qdr - qd)
        fb += self.slow
        g = self.gain.copy()
        g[2] = np.where(fb[2] > 0.0, self.gain_df, g[2])
        np.multiply(fb, g, out=self.act)
        np.clip(self.act, self.lo, self.hi, out=self.act)
        np.subtract(fb, self.ff_now, out=self.fb)  # feedback part only (for ILC)
        ga = g[2]
        return (
            self.act[0],
            self.act[1] + self.tau_spas[1],
            self.act[2] + self.tau_spas[2],
            ga * self.gains[0, 2],
            ga * self.gains[1, 2],
        )

    def end_step(self, sim: WalkerSim) -> None:
        """Record the state at the end of the control step into the delay buffers."""
        p = int(self.ptr)
        q, qd = self._joints(sim)
        self.q_buf[p] = q
        self.qd_buf[p] = qd
        self.ptr[...] = (p + 1) % _BUF


# --------------------------------------------------------------------------------------------
# Feedforward by iterative learning control, on a grid, cached on disk
ILC_GAIN = 0.2
ILC_SMOOTH = 5
ILC_STRIDES = 50
# Learning from zero feedforward diverges (the stance knee buckles, impacts grow): during the
# first ILC_GUIDE_STRIDES strides a stiff joint-space guidance (a teacher, faded out linearly)
# keeps the body near the reference, and its torque counts as feedback to be learned.
ILC_GUIDE_K = (600.0, 600.0, 300.0)  # hip, knee, ankle
ILC_GUIDE_B = (40.0, 20.0, 10.0)
ILC_GUIDE_STRIDES = 25
ILC_GUIDE_BWS = 0.9  # body-weight support at the start of learning (faded with the guidance)
FF_GRID_BETA = (0.2, 0.3, 0.4, 0.5, 0.6)
# dimensionless stride period T sqrt(g / H); covers T in [1.0, 1.9] s over H in [1.55, 1.90] m
FF_GRID_TN = (2.2, 2.6, 3.0, 3.4, 3.8, 4.2, 4.6)
FF_NOMINAL = (75.0, 1.75)  # body the grid is learned on; tables scale with M g H
_FF_VERSION = 2


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
    strides (docs/envs/exoskeleton.md). All inputs ``(n,)``; returns ``(n, FF_BINS, 2)`` (N m,
    hip and knee; both legs share the table shifted by half a cycle). The ankle has no learned
    feedforward: in stance it acts as a spring about its reference (the walker's intent), so
    that its push-off follows the load the leading leg takes over; learning it to track the
    reference made the stance ankle kinematic and the foot loading collide
    (docs/envs/exoskeleton.md). ``history``: if a
    list, the per-stride RMS feedback torque ``(n,)`` of each update is appended (convergence
    check).
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
    sums = np.zeros((n, FF_BINS, FF_JOINTS))
    counts = np.zeros((n, FF_BINS))
    done = np.zeros(n, np.int64)
    inst = np.arange(n)
    kernel_offsets = np.arange(ILC_SMOOTH) - ILC_SMOOTH // 2
    max_steps = int(np.ceil(strides * np.max(period) * 1.2 / CONTROL_DT)) + 10
    gk, gb = _col(ILC_GUIDE_K), _col(ILC_GUIDE_B)
    for _ in range(max_steps):
        prev = hum.phase.copy()
        hum.begin_step(sim, None)
        fb = np.zeros((N_JOINTS, 2, n))
        g = max(0.0, 1.0 - float(done.min()) / max(1, guidance_strides))
        sim.beta[:] = beta + (ILC_GUIDE_BWS - beta) * g
        for k in range(nsub):
            t = k * sim.config.dt
            th, tk, ta, ka, ca = hum.torques(sim, t)
            q, qd = hum._joints(sim)
            guide = g * (gk * (hum.qr + hum.qdr * t - q) + gb * (hum.qdr - qd))
            fb += hum.fb + guide
            sim.substep(th + guide[0], tk + guide[1], ta + guide[2], ka + g * gk[2], ca + g * gb[2])
        hum.end_step(sim)
        bins = np.minimum((hum.leg_phase * FF_BINS).astype(np.int64), FF_BINS - 1)
        for leg in range(2):
            for j in range(FF_JOINTS):
                np.add.at(sums, (inst, bins[leg], j), fb[j, leg] / nsub)
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
        "gains": [K_INT, B_INT, K_REF, B_REF, ANKLE_GAINS_PER_KG, TAU_MAX_PER_KG],
        "dorsi": TAU_MAX_DORSI_PER_KG,
        "guide": [ILC_GUIDE_K, ILC_GUIDE_B, ILC_GUIDE_STRIDES, ILC_GUIDE_BWS],
        "delays": [REFLEX_DELAY_STEPS, CONTROL_DT],
        "belt": BELT_GAIN,
        "ilc": [ILC_GAIN, ILC_SMOOTH, ILC_STRIDES],
        "grid": [FF_GRID_BETA, FF_GRID_TN, FF_NOMINAL],
        "physics": _learning_config(config).key(),
        "ref": REF_COEFFS.round(6).tolist(),
        "passive": [
            ANDERSON_HIP_K,
            ANDERSON_HIP_THETA,
            ANDERSON_KNEE_K,
            ANDERSON_KNEE_THETA,
            ANDERSON_ANKLE_K,
            ANDERSON_ANKLE_THETA,
        ],
        "foot": [FOOT_HEEL, FOOT_BALL],
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
            if grid.shape == (len(FF_GRID_BETA), len(FF_GRID_TN), FF_BINS, FF_JOINTS):
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
    grid = (ff / (M0 * GRAVITY * H0)).reshape(
        len(FF_GRID_BETA), len(FF_GRID_TN), FF_BINS, FF_JOINTS
    )
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
