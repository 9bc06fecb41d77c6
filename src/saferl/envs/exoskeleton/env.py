"""``ExoGait-v0``: a hip-knee exoskeleton on a body-weight-supported treadmill (docs/envs/exoskeleton.md).

The agent commands the four exo joint torques (hip R, knee R, hip L, knee L) of a planar walker
whose own scripted controller is weakened, spastic and noisy by impairment level (the walker's
physics is :mod:`saferl.envs.exoskeleton.physics`, the simulated walker
:mod:`saferl.envs.exoskeleton.user`, the actuator :mod:`saferl.envs.exoskeleton.exo`). Control at 100 Hz, physics substeps of 2.5 ms
(configurable), 1000-step episodes (truncation only), per-step indicator costs with the
Safety-Gymnasium limit rate (25 per 1000 steps, strict 10). See docs/envs/exoskeleton.md.

Classes: :class:`ExoGaitVecEnv` (natively batched, ``N`` instances as float32 arrays),
:class:`ExoGaitEnv` (single instance, for ``gymnasium.make``), :func:`make_vec` (registry
factory). Scripted baselines in ``ExoGaitVecEnv.SCRIPTED_POLICIES``
(:mod:`saferl.envs.exoskeleton.baselines`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, ClassVar

import numpy as np
from gymnasium.spaces import Box

from saferl.envs.exoskeleton import physics as W
from saferl.envs.exoskeleton import user as U
from saferl.envs.exoskeleton.baselines import BASELINES
from saferl.envs.exoskeleton.costs import (
    COSTS,
    EPISODE_STEPS,
    EXO_CONSTRAINTS,
    CostThresholds,
    exo_constraints,
    step_costs,
)
from saferl.envs.exoskeleton.exo import (
    ASSIST_CORRECTION,
    ASSIST_GAIN_MAX,
    ASSIST_RATE,
    ROM_GUARD_MARGIN,
    TAU_EXO_BANDWIDTH,
    TAU_EXO_MAX,
    TAU_EXO_SLEW,
    aan_command,
    actuator_substep,
    cuff_forces,
    foot_lifter,
)
from saferl.envs.exoskeleton.observation import BELT_SCALE, RATE_SCALE, observation_layout
from saferl.envs.layout import ObsLayout
from saferl.envs.levels import IMPAIRMENT_LEVELS, levels_option, parse_levels
from saferl.envs.vector import SafeVectorEnv, ScriptedPolicy, SingleEnv
from saferl.safety import ConstraintSet
from saferl.utils import parse_choice

__all__ = [
    "ACTION_MODES",
    "CHALLENGES",
    "EPISODE_STEPS",
    "LEVELS",
    "OBJECTIVES",
    "ExoChallenge",
    "ExoGaitEnv",
    "ExoGaitVecEnv",
    "make_vec",
]

LEVELS: tuple[str, ...] = IMPAIRMENT_LEVELS  # the shared level names (envs/levels.py)
CONTROL_DT = U.CONTROL_DT  # 100 Hz
SETTLE_STEPS = 20  # 0.2 s start-up with the exo off before the first observation
OBJECTIVES: dict[str, tuple[float, float]] = {"assist": (0.02, 0.2), "rehab": (0.1, 0.0)}
REWARD_SIGMA = 0.1  # rad
REWARD_W_RATE = 0.05
#: ``torque``: 4 exo torques / TAU_EXO_MAX; ``assist``: the exo's assist-as-needed controller
#: (``exo.aan_command``) with 4 assistance levels and 4 torque corrections
ACTION_MODES: tuple[str, ...] = ("torque", "assist")


@dataclass(frozen=True)
class ExoChallenge:
    """Task difficulty: treadmill cadence range, BWS shift and fore-aft disturbance pushes."""

    period: tuple[float, float]  # stride period T ~ U(lo, hi) (s)
    bws_shift: float  # added to the level's BWS range (clipped to [0.2, 0.6])
    push_rate: float  # Poisson rate of pelvis pushes (1/s)
    push_force: tuple[float, float]  # |F| ~ U(lo, hi) (N), random sign
    push_duration: float  # s


CHALLENGES: dict[str, ExoChallenge] = {
    "easy": ExoChallenge((1.3, 1.6), 0.1, 0.0, (0.0, 0.0), 0.1),
    "standard": ExoChallenge((1.1, 1.8), 0.0, 0.0, (0.0, 0.0), 0.1),
    "hard": ExoChallenge((1.0, 1.8), 0.0, 0.3, (40.0, 120.0), 0.1),
}
_CHALLENGE_CODE = {name: i for i, name in enumerate(CHALLENGES)}
BODY_MASS = (55.0, 95.0)  # kg, U(lo, hi)
BODY_HEIGHT = (1.55, 1.90)  # m
INIT_ANGLE_STD = np.deg2rad(2.0)
INIT_RATE_STD = 0.2


class _SubsetRNG:
    """Maps local indices of a gathered subset to the env's per-instance streams."""

    def __init__(self, rng: Any, idx: np.ndarray) -> None:
        self.rng, self.idx = rng, idx

    def normal(self, k: int, idx: np.ndarray | None = None) -> np.ndarray:
        return self.rng.normal(k, self.idx if idx is None else self.idx[idx])


def _col(values: tuple[float, ...], dtype: Any) -> np.ndarray:
    return np.asarray(values, dtype)[:, None, None]


def _take(arr: np.ndarray, idx: np.ndarray, axis: int) -> np.ndarray:
    return np.take(arr, idx, axis=axis)


class ExoGaitVecEnv(SafeVectorEnv):
    """Natively batched ``ExoGait-v0``.

    Args:
        num_envs: number of instances N.
        impairment: ``"none" | "mild" | "moderate" | "severe" | "random"`` (sampled per episode;
            default) or a list of N names (fixed per instance, for evaluation).
        challenge: ``"easy" | "standard" | "hard"`` (cadence range, BWS, pushes).
        objective: ``"assist"`` (reduce human effort) or ``"rehab"`` (assist-as-needed).
        action_mode: ``"torque"`` (default: 4 torques / 60 N m) or ``"assist"`` (8: the
            assistance level of the exo's assist-as-needed impedance per joint, ``0.75 (a + 1)``
            in [0, 1.5], then a torque correction per joint, ``15 a`` N m; the exo's ROM guard
            and a 450 N m/s rate limit act on their sum, ``exo.aan_command``).
        random_levels: the levels an instance on ``"random"`` draws from, uniformly, per
            episode (default all four; e.g. ``["none", "mild", "moderate"]``).
        physics_dt: physics substep (s); the control step is 10 ms, so ``0.01 / physics_dt``
            substeps (default 0.0025 -> 4).
        dtype: ``"float32"`` (default) or ``"float64"`` (validation).
        privileged_obs: append the one-hot impairment level (4) to the observation (ablations).
        episode_steps: truncation horizon (default 1000 = 10 s).
        physics: a :class:`~saferl.envs.exoskeleton.PhysicsConfig` overriding the physics
            constants (validation and calibration studies; ``physics_dt`` still sets its time
            step).
        foot_lifter: the orthosis' passive foot lifters (elastic straps that dorsiflex a
            plantarflexed foot, ``exo.FOOT_LIFTER_K``); ``False`` removes them (ablation).
        instance_offset: global index of instance 0 (seeding of worker slices).
        render_mode: ``None`` or ``"rgb_array"``.

    Observation: float32 ``(N, 30)`` (34 with ``privileged_obs``) with the named fields of
    ``obs_layout`` (an :class:`~saferl.envs.layout.ObsLayout`; docs/envs/exoskeleton.md lists
    them): joint angles, rates, reference and error (hip R, knee R, hip L, knee L), gait phase,
    foot loads, pelvis height and speed, previous exo torques, cuff forces, belt speed, BWS.
    Action (4 in [-1, 1]): exo torque / 60 N m (``action_mode="torque"``); 8 in [-1, 1] with
    ``action_mode="assist"`` (assistance levels, then corrections; hip R, knee R, hip L, knee L).
    ``info``: ``cost``, ``cost_components`` (rom, joint_speed, cuff_force, torque_rate,
    collapse, trip), ``cost_magnitude`` (N,) (sum of normalised excesses), ``impairment``
    (N,) int8, ``rmse`` (N,) rad (instantaneous joint error RMS), ``peak_foot_force`` (N,) N.

    Curricula: :meth:`set_options` changes ``impairment`` (a level name, ``"random"`` or
    ``None`` = sampled per episode) and ``challenge`` for the episodes that start afterwards:
    level, body-weight support (the level's range shifted by the challenge), cadence and the
    learned feedforward are drawn at the episode's start, and the pushes of an episode follow
    the challenge it began with (``episode_challenge`` (N,) int8, index into ``CHALLENGES``).
    """

    SCRIPTED_POLICIES: ClassVar[dict[str, Callable[[], ScriptedPolicy]]] = BASELINES
    #: the env's constraints (readable from the class; instances with a non-default
    #: ``episode_steps`` carry limits scaled to their horizon)
    constraints: ConstraintSet = EXO_CONSTRAINTS
    #: the thresholds the cost indicators compare against (the constraints are written from them)
    COSTS: ClassVar[CostThresholds] = COSTS
    OBS_DIM = observation_layout().size  # 30
    #: per-episode levels each step's ``info`` carries: ``info[key]`` is the int8 index into
    #: the names, the level of the episode the step belongs to (also on the step that ends it;
    #: ``env.constraint_groups`` constrains each level's episodes separately)
    INFO_LEVELS: ClassVar[Mapping[str, tuple[str, ...]]] = {"impairment": LEVELS}
    SETTABLE_OPTIONS: ClassVar[Mapping[str, tuple[Any, ...]]] = {
        "impairment": (*LEVELS, "random", None),
        "challenge": tuple(CHALLENGES),
    }

    def __init__(
        self,
        num_envs: int = 1,
        *,
        impairment: Any = "random",
        challenge: str = "standard",
        objective: str = "assist",
        action_mode: str = "torque",
        random_levels: Any = LEVELS,
        physics_dt: float = 0.0025,
        dtype: str = "float32",
        privileged_obs: bool = False,
        episode_steps: int = EPISODE_STEPS,
        physics: W.PhysicsConfig | None = None,
        foot_lifter: bool = True,
        instance_offset: int = 0,
        render_mode: str | None = None,
    ) -> None:
        self.challenge_name = parse_choice(challenge, CHALLENGES, "challenge")
        self.challenge = CHALLENGES[self.challenge_name]
        self._built_challenge = self.challenge_name  # set_options may change challenge_name
        self.objective = parse_choice(objective, OBJECTIVES, "objective")
        self.w_exo, self.w_hum = OBJECTIVES[self.objective]
        self.action_mode = parse_choice(action_mode, ACTION_MODES, "action_mode")
        self._assist = self.action_mode == "assist"
        if isinstance(random_levels, str) or not len(random_levels):
            raise ValueError(
                f"random_levels: expected a list of level names, got {random_levels!r}"
            )
        for name in random_levels:
            parse_choice(name, LEVELS, "random_levels")
        self.random_levels = tuple(str(x) for x in random_levels)
        self._random_codes = np.array([LEVELS.index(x) for x in self.random_levels], np.int64)
        if dtype is np.float32 or dtype is np.float64 or isinstance(dtype, np.dtype):
            dtype = np.dtype(dtype).name
        self.dtype = np.dtype(parse_choice(dtype, ("float32", "float64"), "dtype"))
        if not (isinstance(physics_dt, (int, float)) and 0 < physics_dt <= CONTROL_DT):
            raise ValueError(
                f"physics_dt: expected a float in (0, {CONTROL_DT}], got {physics_dt!r}"
            )
        self.nsub = max(1, round(CONTROL_DT / physics_dt))
        if abs(self.nsub * physics_dt - CONTROL_DT) > 1e-9:
            raise ValueError(f"physics_dt: {physics_dt} must divide the 10 ms control step")
        if not isinstance(episode_steps, (int, np.integer)) or episode_steps < 1:
            raise ValueError(f"episode_steps: expected a positive int, got {episode_steps!r}")
        self.privileged_obs = bool(privileged_obs)
        if not isinstance(foot_lifter, (bool, np.bool_)):
            raise ValueError(f"foot_lifter: expected a bool, got {foot_lifter!r}")
        self.foot_lifter = bool(foot_lifter)
        #: trailing observation dims that are privileged (``algo.asymmetric_critic``)
        self.privileged_obs_dims = 4 if self.privileged_obs else 0
        #: the observation's named fields (name -> dims, scale, unit)
        self.obs_layout: ObsLayout = observation_layout(self.privileged_obs, self.COSTS)
        self._obs_at = {f.name: f.at for f in self.obs_layout}
        obs_dim = self.obs_layout.size
        self._obs_bound = 10.0
        constraints = EXO_CONSTRAINTS
        if episode_steps != EPISODE_STEPS:
            constraints = exo_constraints(self.COSTS, int(episode_steps))
        super().__init__(
            num_envs,
            observation_space=Box(-self._obs_bound, self._obs_bound, (obs_dim,), np.float32),
            action_space=Box(-1.0, 1.0, (8 if self._assist else 4,), np.float32),
            constraints=constraints,
            max_episode_steps=int(episode_steps),
            instance_offset=instance_offset,
            render_mode=render_mode,
        )
        n, dt = self.num_envs, self.dtype
        self.level_codes = parse_levels(impairment, n)
        if physics is not None and not isinstance(physics, W.PhysicsConfig):
            raise ValueError(f"physics: expected a PhysicsConfig or None, got {physics!r}")
        self.physics = replace(physics or W.PhysicsConfig(), dt=float(physics_dt))
        self.sim = W.WalkerSim(n, self.physics, dt)
        self.human = U.HumanController(n, dt)
        # exo actuator state (hip, knee) per leg, and the previous step's torques
        self.exo_h = np.zeros((2, n), dt)
        self.exo_k = np.zeros((2, n), dt)
        self.prev_h = np.zeros((2, n), dt)
        self.prev_k = np.zeros((2, n), dt)
        # the assist controller's last command (joint hip/knee, leg, instance), N m
        self.cmd = np.zeros((2, 2, n), dt)
        # per-instance episode parameters
        self.level = np.zeros(n, np.int8)
        self.paretic = np.zeros(n, np.int8)  # 0 right, 1 left
        self.rom_hip_lo = np.zeros((2, n), dt)
        self.rom_knee_hi = np.zeros((2, n), dt)
        self.push_t = np.zeros(n, np.int32)
        self.push_f = np.zeros(n, dt)
        self.fn_peak = np.zeros((2, n), dt)
        # the challenge (index into CHALLENGES) each instance's episode began with, and the
        # instances with pushes grouped by challenge (_push_groups: (challenge, None = all | idx))
        self.episode_challenge = np.full(n, _CHALLENGE_CODE[self.challenge_name], np.int8)
        self._update_push_groups()
        self._a_h = 1.0 - np.exp(-physics_dt / TAU_EXO_BANDWIDTH)
        self._slew = TAU_EXO_SLEW * physics_dt

    # ----------------------------------------------------------------------------- reset
    def _reset_instances(self, idx: np.ndarray) -> None:
        sim, hum, ch = self.sim, self.human, self.challenge
        u = self.rng.uniform(16, idx).astype(np.float64)
        codes = self.level_codes[idx].astype(np.int64)
        k = self._random_codes.size
        drawn = self._random_codes[np.minimum((u[:, 0] * k).astype(np.int64), k - 1)]
        codes = np.where(codes < 0, drawn, codes)
        self.level[idx] = codes
        code = _CHALLENGE_CODE[self.challenge_name]
        if (self.episode_challenge[idx] != code).any():  # only after set_options(challenge=)
            self.episode_challenge[idx] = code
            self._update_push_groups()
        lv = [U.WALKER_IMPAIRMENTS[LEVELS[c]] for c in range(4)]
        tab = lambda f: np.array([f(x) for x in lv])[codes]  # noqa: E731
        mass = BODY_MASS[0] + (BODY_MASS[1] - BODY_MASS[0]) * u[:, 1]
        height = BODY_HEIGHT[0] + (BODY_HEIGHT[1] - BODY_HEIGHT[0]) * u[:, 2]
        period = ch.period[0] + (ch.period[1] - ch.period[0]) * u[:, 3]
        b_lo = np.clip(tab(lambda x: x.bws[0]) + ch.bws_shift, 0.2, 0.6)
        b_hi = np.clip(tab(lambda x: x.bws[1]) + ch.bws_shift, 0.2, 0.6)
        beta = b_lo + (b_hi - b_lo) * u[:, 4]
        paretic = (u[:, 5] < 0.5).astype(np.int64)
        s_lo, s_hi = tab(lambda x: x.strength_paretic[0]), tab(lambda x: x.strength_paretic[1])
        s_par = s_lo + (s_hi - s_lo) * u[:, 6]
        s_non = tab(lambda x: x.strength_nonparetic)
        par_mask = np.stack([paretic == 0, paretic == 1])  # (2, n): True on the paretic leg
        self.paretic[idx] = paretic
        sim.set_body(mass, height, idx)
        sim.beta[idx] = beta
        sim.v_belt[idx] = W.belt_speed(period, height)
        sim.f_push[idx] = 0.0
        knee_shift = np.deg2rad(tab(lambda x: x.knee_rom_shift_deg))  # <= 0
        hip_shift = np.deg2rad(tab(lambda x: x.hip_rom_shift_deg))  # >= 0
        ankle_shift = np.deg2rad(tab(lambda x: x.ankle_rom_shift_deg))  # <= 0
        sim.hip_th1[:, idx] = W.ANDERSON_HIP_THETA[0] + np.where(par_mask, hip_shift, 0.0)
        # OpenSim knee-flexion limit th1 (negative): a ROM loss moves it towards zero
        sim.knee_th1[:, idx] = W.ANDERSON_KNEE_THETA[0] - np.where(par_mask, knee_shift, 0.0)
        # ankle dorsiflexion limit th2 (positive): a plantarflexor contracture lowers it
        sim.ankle_th2[:, idx] = W.ANDERSON_ANKLE_THETA[1] + np.where(par_mask, ankle_shift, 0.0)
        t = self.COSTS
        self.rom_hip_lo[:, idx] = np.deg2rad(t.hip_rom_deg[0]) + np.where(par_mask, hip_shift, 0.0)
        self.rom_knee_hi[:, idx] = np.deg2rad(t.knee_rom_deg[1]) + np.where(
            par_mask, knee_shift, 0.0
        )
        hum.strength[:, idx] = np.where(par_mask, s_par, s_non)
        hum.dorsi[:, idx] = np.where(par_mask, tab(lambda x: x.dorsiflexor_strength), 1.0)
        hum.tau_max[idx] = U.TAU_MAX_PER_KG * mass
        for j, (f_vth, f_gain) in enumerate(
            (
                (lambda x: x.spasticity_vth, lambda x: x.spasticity_gain),
                (lambda x: x.ankle_spasticity_vth, lambda x: x.ankle_spasticity_gain),
            )
        ):  # knee, ankle
            vth = tab(f_vth)
            hum.spas_vth[j, idx] = np.where(np.isfinite(vth), vth, 1e6)
            hum.spas_gain[j, :, idx] = np.where(par_mask, tab(f_gain), 0.0).T
        hum.noise_cv[idx] = tab(lambda x: x.motor_noise_cv)
        hum.phase_noise[idx] = tab(lambda x: x.phase_noise)
        hum.period[idx] = period
        hum.ff[idx] = U.interpolate_feedforward(mass, height, beta, period, self.physics)
        self.push_t[idx] = 0
        self.push_f[idx] = 0.0
        # initial state: reference at a random phase plus noise
        phase0 = u[:, 7]
        noise = self.rng.normal(8, idx).astype(np.float64).T
        W.place_on_reference(
            sim, idx, phase0, period, INIT_ANGLE_STD * noise[:4], INIT_RATE_STD * noise[4:]
        )
        hum.reset(sim, idx, phase0)
        for arr in (self.exo_h, self.exo_k, self.prev_h, self.prev_k, self.fn_peak):
            arr[:, idx] = 0.0
        self.cmd[..., idx] = 0.0
        self._settle(idx)

    def _settle(self, idx: np.ndarray) -> None:
        """Run instances ``idx`` for SETTLE_STEPS control steps with the exo off."""
        n = idx.size
        all_ = n == self.num_envs and np.array_equal(idx, self._all_idx)
        if all_:
            sim, hum, rng = self.sim, self.human, self.rng
        else:
            sim = W.WalkerSim(n, self.physics, self.dtype)
            hum = U.HumanController(n, self.dtype)
            _gather(self.sim, sim, idx, W.WalkerSim)
            _gather(self.human, hum, idx, U.HumanController)
            rng = _SubsetRNG(self.rng, idx)
        # the trainer's start-up: a joint guidance towards the reference (the stiff guidance
        # the feedforward was learned under), faded out linearly over the settling
        gk, gb = _col(U.ILC_GUIDE_K, self.dtype), _col(U.ILC_GUIDE_B, self.dtype)
        for step in range(SETTLE_STEPS):
            g = 1.0 - step / SETTLE_STEPS
            hum.begin_step(sim, rng)
            for k in range(self.nsub):
                t = k * self.physics.dt
                th, tk, ta, ka, ca = hum.torques(sim, t)
                tl, kl = foot_lifter(sim.b, sim.M, self.foot_lifter)
                q, qd = hum._joints(sim)
                guide = g * (gk * (hum.qr + hum.qdr * t - q) + gb * (hum.qdr - qd))
                sim.substep(
                    th + guide[0],
                    tk + guide[1],
                    ta + tl + guide[2],
                    ka + kl + g * gk[2],
                    ca + g * gb[2],
                )
            hum.end_step(sim)
        if not all_:
            # align the sub-batch ring buffers with the main pointer
            shift = int(self.human.ptr) - int(hum.ptr)
            for name in ("q_buf", "qd_buf"):
                setattr(hum, name, np.roll(getattr(hum, name), shift, axis=0))
            hum.ptr[...] = self.human.ptr
            _scatter(sim, self.sim, idx, W.WalkerSim)
            _scatter(hum, self.human, idx, U.HumanController)
        self.fn_peak[:, idx] = self.sim.fn[:, idx]

    # ----------------------------------------------------------------------------- step
    def _step_batch(
        self, actions: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray], dict[str, np.ndarray]]:
        sim, hum, dt = self.sim, self.human, self.dtype
        a = actions.astype(dt, copy=False)
        if self._assist:
            cmd_h, cmd_k = self._assist_command(a)
        else:
            cmd_h = a[:, 0::2].T * TAU_EXO_MAX  # (2, N): hip R, hip L
            cmd_k = a[:, 1::2].T * TAU_EXO_MAX
        self.prev_h[...] = self.exo_h
        self.prev_k[...] = self.exo_k
        hum.begin_step(sim, self.rng)
        if self._push_groups:
            self._pushes()
        fpk = self.fn_peak
        fpk[...] = 0.0
        h = self.physics.dt
        for k in range(self.nsub):
            th, tk, ta, ka, ca = hum.torques(sim, k * h)
            tl, kl = foot_lifter(sim.b, sim.M, self.foot_lifter)
            actuator_substep(self.exo_h, cmd_h, self._a_h, self._slew)
            actuator_substep(self.exo_k, cmd_k, self._a_h, self._slew)
            sim.substep(th + self.exo_h, tk + self.exo_k, ta + tl, ka + kl, ca)
            np.maximum(fpk, sim.fn, out=fpk)
        hum.end_step(sim)
        return self._evaluate()

    def aan_inputs(self) -> tuple[np.ndarray, ...]:
        """The assist-as-needed controller's inputs now, each ``(2, 2, N)`` (joint hip/knee,
        leg R/L, instance): tracking error and its rate against the walker's reference at its
        phase (rad, rad/s), joint angles (rad), and the guarded limits ``lo``, ``hi`` (rad):
        the safe range (contracture-shifted, as the `rom` cost's) less ``ROM_GUARD_MARGIN``."""
        qh, qk, qdh, qdk = self.sim.joint_angles()
        hum, t, m = self.human, self.COSTS, ROM_GUARD_MARGIN
        q = np.stack([qh, qk])
        err = hum.qr[:2] - q
        err_rate = hum.qdr[:2] - np.stack([qdh, qdk])
        lo = np.stack([self.rom_hip_lo, np.full_like(qk, np.deg2rad(t.knee_rom_deg[0]))]) + m
        hi = np.stack([np.full_like(qh, np.deg2rad(t.hip_rom_deg[1])), self.rom_knee_hi]) - m
        return err, err_rate, q, lo, hi

    def _assist_command(self, a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``action_mode="assist"``: actions (N, 8) -> the commanded hip and knee torques
        (2, N) each, through the exo's assist-as-needed controller (state: ``self.cmd``)."""
        # (N, 4) in the action order hip R, knee R, hip L, knee L -> (joint, leg, N)
        gain = (a[:, :4] + 1.0).T.reshape(2, 2, -1).transpose(1, 0, 2) * (0.5 * ASSIST_GAIN_MAX)
        corr = a[:, 4:].T.reshape(2, 2, -1).transpose(1, 0, 2) * ASSIST_CORRECTION
        err, err_rate, q, lo, hi = self.aan_inputs()
        self.cmd[...] = aan_command(
            err, err_rate, gain, corr, q, lo, hi, self.cmd, ASSIST_RATE * CONTROL_DT
        )
        return self.cmd[0], self.cmd[1]

    def _update_push_groups(self) -> None:
        groups: list[tuple[ExoChallenge, np.ndarray | None]] = []
        for code, ch in enumerate(CHALLENGES.values()):
            if ch.push_rate <= 0:
                continue
            on = self.episode_challenge == code
            if on.all():
                groups.append((ch, None))
            elif on.any():
                groups.append((ch, np.flatnonzero(on)))
        self._push_groups = groups

    def _pushes(self) -> None:
        # only the instances whose episode has pushes draw random numbers for them
        for ch, idx in self._push_groups:
            if idx is None:
                push_t, push_f = self.push_t, self.push_f
            else:
                push_t, push_f = self.push_t[idx], self.push_f[idx]
            u = self.rng.uniform(3, idx)
            start = (push_t <= 0) & (u[:, 0] < ch.push_rate * CONTROL_DT)
            mag = ch.push_force[0] + (ch.push_force[1] - ch.push_force[0]) * u[:, 1]
            sign = np.where(u[:, 2] < 0.5, -1.0, 1.0)
            dur = max(1, round(ch.push_duration / CONTROL_DT))
            f = np.where(start, sign * mag, np.where(push_t > 0, push_f, 0.0))
            t = np.where(start, dur, np.maximum(push_t - 1, 0))
            if idx is None:
                self.push_f[...] = f
                self.push_t[...] = t
                self.sim.f_push[...] = np.where(self.push_t > 0, self.push_f, 0.0)
            else:
                self.push_f[idx] = f
                self.push_t[idx] = t
                self.sim.f_push[idx] = np.where(self.push_t[idx] > 0, self.push_f[idx], 0.0)

    def _evaluate(self):
        sim, hum = self.sim, self.human
        qh, qk, _qdh, _qdk = sim.joint_angles()
        eh = qh - hum.qr_h
        ek = qk - hum.qr_k
        sq = (eh * eh).sum(axis=0) + (ek * ek).sum(axis=0)  # (N,)
        fth, fsh = cuff_forces(self.exo_h, self.exo_k, qk, sim.L1, sim.Lleg)
        dh = self.exo_h - self.prev_h
        dk = self.exo_k - self.prev_k
        rate = np.maximum(np.abs(dh).max(axis=0), np.abs(dk).max(axis=0)) / CONTROL_DT
        # joint speed as an encoder measures it: the 10 ms finite difference (impact spikes
        # inside a control step are not speed violations)
        p1 = (int(hum.ptr) - 2) % hum.q_buf.shape[0]
        vh = (qh - hum.q_buf[p1, 0]) * (1.0 / CONTROL_DT)
        vk = (qk - hum.q_buf[p1, 1]) * (1.0 / CONTROL_DT)
        mg = sim.M * W.GRAVITY
        load = sim.fn / mg
        comps, magnitude = step_costs(
            self.COSTS,
            qh,
            qk,
            self.rom_hip_lo,
            self.rom_knee_hi,
            vh,
            vk,
            fth,
            fsh,
            rate,
            sim.yp / sim.y0,
            hum.leg_phase,
            load,
            self.exo_h,
            self.exo_k,
        )
        self._last_components = np.stack(list(comps.values()))
        # reward: tracking term minus effort and torque-rate terms (docs/envs/exoskeleton.md)
        inv = 1.0 / TAU_EXO_MAX
        exo_e = ((self.exo_h * inv) ** 2).sum(axis=0) + ((self.exo_k * inv) ** 2).sum(axis=0)
        tmax = hum.tau_max
        hum_e = ((hum.act_h / tmax) ** 2).sum(axis=0) + ((hum.act_k / tmax) ** 2).sum(axis=0)
        rate_e = ((dh * inv) ** 2).sum(axis=0) + ((dk * inv) ** 2).sum(axis=0)
        reward = (
            np.exp(sq * (-0.5 / REWARD_SIGMA**2))
            - self.w_exo * exo_e
            - self.w_hum * 0.25 * hum_e
            - REWARD_W_RATE * rate_e
        ).astype(np.float32)
        terminated = np.zeros(self.num_envs, bool)
        extra = {
            "cost_magnitude": magnitude,
            "impairment": self.level.copy(),
            "rmse": np.sqrt(sq * 0.25).astype(np.float32),
            "peak_foot_force": self.fn_peak.max(axis=0).astype(np.float32),
        }
        return reward, terminated, comps, extra

    # ----------------------------------------------------------------------------- observe
    def _observe(self, idx: np.ndarray | None = None) -> np.ndarray:
        sim, hum = self.sim, self.human
        qh, qk, qdh, qdk = sim.joint_angles()
        n = self.num_envs
        obs = np.empty((n, self.single_observation_space.shape[0]), np.float32)
        o = obs.T  # (d, N) view: rows are features
        ix = self._obs_at
        o[ix["hip_angle"]] = qh
        o[ix["knee_angle"]] = qk
        o[ix["hip_rate"]] = qdh * (1 / RATE_SCALE)
        o[ix["knee_rate"]] = qdk * (1 / RATE_SCALE)
        o[ix["hip_ref"]] = hum.qr_h
        o[ix["knee_ref"]] = hum.qr_k
        o[ix["hip_error"]] = hum.qr_h - qh
        o[ix["knee_error"]] = hum.qr_k - qk
        ang = 2.0 * np.pi * hum.phase
        o[ix["phase_sin"]] = np.sin(ang)
        o[ix["phase_cos"]] = np.cos(ang)
        o[ix["foot_load"]] = sim.fn / (sim.M * W.GRAVITY)
        o[ix["pelvis_height"]] = sim.yp - sim.y0
        o[ix["pelvis_vy"]] = sim.vy
        o[ix["hip_torque"]] = self.exo_h / TAU_EXO_MAX
        o[ix["knee_torque"]] = self.exo_k / TAU_EXO_MAX
        fth, fsh = cuff_forces(self.exo_h, self.exo_k, qk, sim.L1, sim.Lleg)
        o[ix["cuff_thigh"]] = fth.max(axis=0) / self.COSTS.cuff_thigh
        o[ix["cuff_shank"]] = fsh.max(axis=0) / self.COSTS.cuff_shank
        o[ix["belt_speed"]] = sim.v_belt / BELT_SCALE
        o[ix["bws"]] = sim.beta
        o[ix["ankle_angle"]] = sim.b
        o[ix["ankle_rate"]] = sim.wb * (1 / RATE_SCALE)
        if self.privileged_obs:
            o[ix["level"]] = 0.0
            o[self.obs_layout["level"].dims[0] + self.level.astype(np.int64), np.arange(n)] = 1.0
        np.nan_to_num(obs, copy=False, nan=0.0)
        np.clip(obs, -self._obs_bound, self._obs_bound, out=obs)
        return obs if idx is None else obs[idx]

    # ----------------------------------------------------------------------------- state
    _STATE = (
        "exo_h", "exo_k", "prev_h", "prev_k", "level", "paretic", "rom_hip_lo", "rom_knee_hi",
        "push_t", "push_f", "fn_peak", "level_codes", "episode_challenge", "cmd",
    )  # fmt: skip

    def _get_options(self) -> dict[str, Any]:
        return {"impairment": levels_option(self.level_codes), "challenge": self.challenge_name}

    def _set_options(self, options: Mapping[str, Any]) -> None:
        # both only read by _reset_instances (the pushes follow episode_challenge): episodes
        # under way keep what they began with
        if "impairment" in options:
            value = options["impairment"]
            self.level_codes[:] = parse_levels("random" if value is None else value, self.num_envs)
        if "challenge" in options:
            name = parse_choice(options["challenge"], CHALLENGES, "challenge")
            self.challenge_name, self.challenge = name, CHALLENGES[name]

    def _fixed_options(self) -> dict[str, Any]:
        """The construction options a state_dict must match (the current values of the
        settable ones are restored from it)."""
        return {
            "challenge": self._built_challenge,
            "objective": self.objective,
            "action_mode": self.action_mode,
            "random_levels": list(self.random_levels),
            "physics_dt": self.physics.dt,
            "dtype": str(self.dtype),
            "privileged_obs": self.privileged_obs,
            "foot_lifter": self.foot_lifter,
            "physics": self.physics.key(),
        }

    def _get_state(self) -> dict[str, Any]:
        state = {k: getattr(self, k) for k in self._STATE}
        state["sim"] = self.sim.get_state()
        state["human"] = self.human.get_state()
        state["options"] = self._fixed_options()
        return state

    def _set_state(self, state: Mapping[str, Any]) -> None:
        opts, mine = dict(state["options"]), self._fixed_options()
        opts.setdefault("action_mode", "torque")  # saved before action modes
        opts.setdefault("random_levels", list(LEVELS))
        opts["random_levels"] = list(opts["random_levels"])
        if opts != mine:
            raise ValueError(f"state_dict options {opts} differ from this env's {mine}")
        for k in self._STATE:
            if k == "episode_challenge" and k not in state:  # saved before curricula
                self.episode_challenge[:] = _CHALLENGE_CODE[self.challenge_name]
            elif k == "cmd" and k not in state:  # saved before action modes
                self.cmd[...] = 0.0
            else:
                getattr(self, k)[...] = state[k]
        self._update_push_groups()
        self.sim.set_state(state["sim"])
        self.human.set_state(state["human"])

    # ----------------------------------------------------------------------------- render
    def render_instance(self, i: int = 0) -> np.ndarray:
        from saferl.envs.rendering import render_exoskeleton

        return render_exoskeleton(self, i)


# per-class array layout: the instance axis of each attribute (-1 for most, 0 for ff)
def _instance_axis(name: str) -> int:
    return 0 if name == "ff" else -1


def _gather(src: Any, dst: Any, idx: np.ndarray, cls: type) -> None:
    for name in (*cls.STATE, *cls.PARAMS, *cls.OUTPUTS):
        arr = getattr(src, name)
        if name == "ptr":
            dst.ptr[...] = arr
            continue
        getattr(dst, name)[...] = _take(arr, idx, _instance_axis(name) % arr.ndim)


def _scatter(src: Any, dst: Any, idx: np.ndarray, cls: type) -> None:
    for name in (*cls.STATE, *cls.PARAMS, *cls.OUTPUTS):
        if name == "ptr":
            continue
        arr = getattr(dst, name)
        if _instance_axis(name) == 0:
            arr[idx] = getattr(src, name)
        else:
            arr[..., idx] = getattr(src, name)


class ExoGaitEnv(SingleEnv):
    """Single-instance ``ExoGait-v0`` (a :class:`gymnasium.Env`); options as the vector env."""

    vector_cls = ExoGaitVecEnv


def make_vec(num_envs: int = 1, **options: Any) -> ExoGaitVecEnv:
    """saferl registry factory: the natively batched env with ``num_envs`` instances."""
    return ExoGaitVecEnv(num_envs, **options)
