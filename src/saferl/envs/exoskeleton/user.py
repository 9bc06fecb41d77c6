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
    ANDERSON_HIP_K,
    ANDERSON_HIP_THETA,
    ANDERSON_KNEE_K,
    ANDERSON_KNEE_THETA,
    BELT_GAIN,
    FOOT_ROLL_RATIO,
    GRAVITY,
    REF_COEFFS,
    WINTER,
    PhysicsConfig,
    WalkerSim,
    belt_speed,
    place_on_reference,
    reference_lookup,
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


WALKER_IMPAIRMENTS: dict[str, ImpairmentLevel] = {
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
