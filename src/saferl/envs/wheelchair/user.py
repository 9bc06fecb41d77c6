"""The simulated wheelchair user: a joystick operator with impairment levels
``none|mild|moderate|severe`` and its driving strategy.

The strategy (:func:`intended_joystick`, with the doorway manoeuvre :func:`door_frame` and
:func:`door_check`) is where an unimpaired user with perfect perception would push the joystick,
computed from the env's true state at 10 Hz. :class:`JoystickOperator` turns an *intended* 2-D joystick deflection (what an unimpaired user with
perfect perception would push, computed by the env from its state at 10 Hz) into the joystick
signal actually produced at 50 Hz (docs/envs/wheelchair.md, "Human"):

1. perception with reaction delay ``δ`` (a ring buffer of intentions, linear interpolation between
   the 10 Hz samples, so ``δ`` is continuous);
2. decisions at 10 Hz with execution noise (direction rotated by ``N(0, σ_θ)``, magnitude scaled by
   ``1 + N(0, 0.1)``) and lapses (with probability ``p_lag`` the previous decision is held);
3. the hand: a first-order lag ``τ_hand`` towards the decision, the reach limit ``|j| <= r_max``,
   tremor ``A [sin(2π f t + φ1), sin(2π f t + φ2)]`` plus band-limited noise (OU, std
   ``0.3 A``), with ``f`` drifting within ``±0.5 Hz``, and involuntary spasm bursts (Poisson rate
   ``λ``; 0.3 s at ``|j| = 0.8`` in a random direction); the result is clipped to the unit disk.

Parameters are data: one :class:`JoystickImpairment` per level, with ``(low, high)`` ranges drawn
per instance and episode (domain randomisation). Everything is vectorised over N instances, and
the internals (buffers, phases, timers) are in :meth:`JoystickOperator.state_dict`.

Random numbers come from the env's per-instance :class:`~saferl.envs.vector.InstanceRNG`, so the
human of instance ``i`` does not depend on the batch size.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

import numpy as np

from saferl.envs.levels import IMPAIRMENT_LEVELS
from saferl.envs.vector import InstanceRNG
from saferl.envs.wheelchair.dynamics import CONTROL_DT, TWO_PI
from saferl.envs.wheelchair.maps import MAX_PEDS

if TYPE_CHECKING:
    from saferl.envs.wheelchair.env import WheelchairSCVecEnv

__all__ = [
    "JOYSTICK_IMPAIRMENTS",
    "DoorFrame",
    "JoystickImpairment",
    "JoystickOperator",
    "door_check",
    "door_frame",
    "intended_joystick",
]

f32 = np.float32
#: (in_zone (n,) bool, s, e, nx, ny, half_width (n,) float32): see :func:`door_frame`
DoorFrame = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]

Range = tuple[float, float]


@dataclass(frozen=True)
class JoystickImpairment:
    """Parameters of one impairment level; each range ``(low, high)`` is drawn per episode.

    Attributes:
        reaction_delay: perception/reaction delay δ (s).
        tremor_amplitude: tremor sine amplitude A (fraction of full deflection).
        tremor_frequency: tremor centre frequency f (Hz).
        direction_noise_deg: std of the direction error per decision σ_θ (degrees).
        lapse_prob: probability p_lag that a 10 Hz decision is skipped (previous one held).
        reach: maximum deflection r_max the hand achieves (weakness, range of motion).
        hand_lag: first-order hand time constant τ_hand (s).
        spasm_rate: Poisson rate λ of spasm bursts (1/s).
        magnitude_noise: std of the relative magnitude error per decision.
        tremor_noise_ratio: std of the band-limited tremor noise relative to A.
        tremor_freq_drift: maximum drift of f around its drawn value (Hz).
        spasm_duration: duration of a spasm burst (s).
        spasm_magnitude: deflection during a spasm burst.
    """

    reaction_delay: Range
    tremor_amplitude: Range
    tremor_frequency: Range
    direction_noise_deg: Range
    lapse_prob: Range
    reach: Range
    hand_lag: Range
    spasm_rate: Range
    magnitude_noise: float = 0.1
    tremor_noise_ratio: float = 0.3
    tremor_freq_drift: float = 0.5
    spasm_duration: float = 0.3
    spasm_magnitude: float = 0.8

    def ranges(self) -> dict[str, Range]:
        return {
            f.name: getattr(self, f.name)
            for f in fields(self)
            if isinstance(getattr(self, f.name), tuple)
        }


# docs/envs/wheelchair.md ("Human"), with the point values widened into ranges (domain randomisation) and
# calibrated so that the unassisted user meets the success/collision targets; see
# docs/envs/wheelchair.md for the calibration table.
JOYSTICK_IMPAIRMENTS: dict[str, JoystickImpairment] = {
    "none": JoystickImpairment(
        reaction_delay=(0.22, 0.28),
        tremor_amplitude=(0.0, 0.0),
        tremor_frequency=(6.0, 6.0),
        direction_noise_deg=(2.0, 2.0),
        lapse_prob=(0.0, 0.0),
        reach=(1.0, 1.0),
        hand_lag=(0.07, 0.09),
        spasm_rate=(0.0, 0.0),
    ),
    "mild": JoystickImpairment(
        reaction_delay=(0.30, 0.40),
        tremor_amplitude=(0.05, 0.10),
        tremor_frequency=(4.0, 8.0),
        direction_noise_deg=(4.0, 6.0),
        lapse_prob=(0.05, 0.15),
        reach=(0.85, 0.95),
        hand_lag=(0.10, 0.14),
        spasm_rate=(0.0, 0.0),
    ),
    "moderate": JoystickImpairment(
        reaction_delay=(0.45, 0.60),
        tremor_amplitude=(0.15, 0.25),
        tremor_frequency=(4.0, 8.0),
        direction_noise_deg=(12.0, 18.0),
        lapse_prob=(0.30, 0.50),
        reach=(0.65, 0.75),
        hand_lag=(0.16, 0.24),
        spasm_rate=(0.05, 0.15),
    ),
    "severe": JoystickImpairment(
        reaction_delay=(0.65, 0.85),
        tremor_amplitude=(0.30, 0.45),
        tremor_frequency=(3.0, 6.0),
        direction_noise_deg=(15.0, 25.0),
        lapse_prob=(0.4, 0.6),
        reach=(0.5, 0.6),
        hand_lag=(0.25, 0.35),
        spasm_rate=(0.05, 0.15),
    ),
}


class JoystickOperator:
    """Vectorised joystick user (see the module docstring).

    Args:
        num_envs: number of instances N.
        rng: the env's per-instance random streams.
        control_dt: decision period (s), the env's control step (0.1 s).
        substeps: joystick samples per control step (5 -> 50 Hz).
        levels: level name -> :class:`JoystickImpairment` (defaults to JOYSTICK_IMPAIRMENTS).
        buffer_slots: ring-buffer length in control steps (must exceed the largest delay).
    """

    #: uint64 words drawn per control step (see :meth:`step`)
    def __init__(
        self,
        num_envs: int,
        rng: InstanceRNG,
        *,
        control_dt: float = 0.1,
        substeps: int = 5,
        levels: Mapping[str, JoystickImpairment] | None = None,
        buffer_slots: int = 12,
    ) -> None:
        self.num_envs = n = int(num_envs)
        self.rng = rng
        self.control_dt = float(control_dt)
        self.substeps = int(substeps)
        self.dt = self.control_dt / self.substeps
        self.levels = dict(JOYSTICK_IMPAIRMENTS if levels is None else levels)
        if list(self.levels) != list(IMPAIRMENT_LEVELS):
            raise ValueError(f"levels must define exactly {IMPAIRMENT_LEVELS} in this order")
        self.B = int(buffer_slots)
        max_delay = max(lv.reaction_delay[1] for lv in self.levels.values())
        if max_delay / self.control_dt > self.B - 2:
            raise ValueError("buffer_slots too small for the largest reaction delay")
        # parameter table: (levels, params, 2) float32 low/high
        self._param_names = list(next(iter(self.levels.values())).ranges())
        self._table = np.array(
            [[lv.ranges()[p] for p in self._param_names] for lv in self.levels.values()],
            np.float32,
        )
        f32 = np.float32
        self.level = np.zeros(n, np.int8)
        self.params = {p: np.zeros(n, f32) for p in self._param_names}
        self.buffer = np.zeros((n, self.B, 2), f32)
        self.head = 0  # slot of the most recent intention (shared: all instances step together)
        self.target = np.zeros((n, 2), f32)  # current 10 Hz decision
        self.hand = np.zeros((n, 2), f32)  # hand position before tremor/spasm
        self.joystick = np.zeros((n, 2), f32)  # last produced joystick sample
        self.tremor_phase = np.zeros((n, 2), f32)  # rad
        self.tremor_drift = np.zeros(n, f32)  # Hz
        self.tremor_noise = np.zeros((n, 2), f32)
        self.spasm_timer = np.zeros(n, f32)  # s remaining
        self.spasm_dir = np.zeros((n, 2), f32)
        self.time = np.zeros(n, f32)  # s since reset
        c = {k: v for k, v in self.levels["none"].__dict__.items() if not isinstance(v, tuple)}
        self.magnitude_noise = np.float32(c["magnitude_noise"])
        self.tremor_noise_ratio = np.float32(c["tremor_noise_ratio"])
        self.freq_drift_max = np.float32(c["tremor_freq_drift"])
        self.spasm_duration = np.float32(c["spasm_duration"])
        self.spasm_magnitude = np.float32(c["spasm_magnitude"])
        self._rows = np.arange(n)

    # ------------------------------------------------------------------------------------------
    def reset(self, idx: np.ndarray, level_codes: np.ndarray) -> None:
        """Start episodes for instances ``idx`` with levels ``level_codes`` (-1: draw one)."""
        k = len(self._param_names)
        u = self.rng.uniform(k + 4, idx)
        codes = np.asarray(level_codes, np.int64).copy()
        rand = codes < 0
        codes[rand] = np.minimum((u[rand, k] * 4).astype(np.int64), 3)
        self.level[idx] = codes
        lo = self._table[codes, :, 0]
        hi = self._table[codes, :, 1]
        vals = lo + (hi - lo) * u[:, :k]
        for j, p in enumerate(self._param_names):
            self.params[p][idx] = vals[:, j]
        self.tremor_phase[idx] = np.float32(2 * np.pi) * u[:, k + 1 : k + 3]
        self.tremor_drift[idx] = 0.0
        self.tremor_noise[idx] = 0.0
        self.buffer[idx] = 0.0
        self.target[idx] = 0.0
        self.hand[idx] = 0.0
        self.joystick[idx] = 0.0
        self.spasm_timer[idx] = 0.0
        self.spasm_dir[idx] = 0.0
        self.time[idx] = 0.0

    def step(self, intention: np.ndarray) -> np.ndarray:
        """Advance one control step.

        Args:
            intention: float32 ``(N, 2)``, the joystick the user would push now given the true
                current state (unit disk).

        Returns:
            float32 ``(N, substeps, 2)``: the joystick samples at ``dt`` spacing.
        """
        n, S = self.num_envs, self.substeps
        p = self.params
        f32 = np.float32
        # one block of random words per control step: 1 (decision normals) + 1 (lapse)
        # + 1 (drift normal + spasm direction) + S (tremor-noise normals) + S (spasm onsets)
        w = self.rng.words(3 + 2 * S)
        z_dir, z_mag = InstanceRNG.normal_pair_from(w[:, 0])
        u_lapse = InstanceRNG.uniform_from(w[:, 1])
        z_drift, _ = InstanceRNG.normal_pair_from(w[:, 2])
        u_sdir = InstanceRNG.uniform_from(w[:, 2] >> np.uint64(16))
        zx, zy = InstanceRNG.normal_pair_from(w[:, 3 : 3 + S])
        u_spasm = InstanceRNG.uniform_from(w[:, 3 + S :])

        # 1. perception: push the intention, read it back delayed by δ (linear interpolation)
        self.head = (self.head + 1) % self.B
        self.buffer[:, self.head] = intention
        d = p["reaction_delay"] / f32(self.control_dt)
        lag0 = np.floor(d).astype(np.int64)
        frac = (d - lag0).astype(f32)[:, None]
        flat = self.buffer.reshape(n * self.B, 2)
        base = self._rows * self.B
        i0 = base + (self.head - lag0) % self.B
        i1 = base + (self.head - lag0 - 1) % self.B
        perceived = flat[i0] * (f32(1) - frac) + flat[i1] * frac

        # 2. decision with execution noise and lapses
        theta = z_dir * np.deg2rad(p["direction_noise_deg"]).astype(f32)
        c, s = np.cos(theta), np.sin(theta)
        gain = f32(1) + self.magnitude_noise * z_mag
        px, py = perceived[:, 0], perceived[:, 1]
        nx = (c * px - s * py) * gain
        ny = (s * px + c * py) * gain
        mag = np.sqrt(nx * nx + ny * ny)
        scale = np.minimum(f32(1), p["reach"] / np.maximum(mag, f32(1e-6)))
        update = u_lapse >= p["lapse_prob"]
        self.target[:, 0] = np.where(update, nx * scale, self.target[:, 0])
        self.target[:, 1] = np.where(update, ny * scale, self.target[:, 1])

        # tremor frequency drift: OU (τ = 2 s, std 0.25 Hz) clipped to ±0.5 Hz, per control step
        a = f32(np.exp(-self.control_dt / 2.0))
        self.tremor_drift *= a
        self.tremor_drift += f32(0.25 * np.sqrt(1 - a * a)) * z_drift
        np.clip(self.tremor_drift, -self.freq_drift_max, self.freq_drift_max, self.tremor_drift)
        omega = f32(2 * np.pi) * (p["tremor_frequency"] + self.tremor_drift)
        amp = p["tremor_amplitude"]
        # 3. the hand over the S substeps, in closed form (the decision is constant within a
        # control step): first-order lag, tremor sines, OU tremor noise
        dt = f32(self.dt)
        ks = np.arange(1, S + 1, dtype=f32)
        hand_a = np.exp(-dt / p["hand_lag"])
        apow = hand_a[:, None] ** ks[None, :]  # (n, S)
        hand = self.target[:, None, :] + (self.hand - self.target)[:, None, :] * apow[:, :, None]
        phase = self.tremor_phase[:, None, :] + (omega * dt)[:, None, None] * ks[None, :, None]
        noise_a = f32(np.exp(-self.dt / 0.1))
        noise_b = f32(np.sqrt(1 - noise_a * noise_a)) * self.tremor_noise_ratio * amp
        # (a recursion, not a matmul: BLAS kernels depend on the batch size and would break
        # the batch-size invariance of per-instance results)
        noise = np.empty((n, S, 2), f32)
        acc = self.tremor_noise.copy()
        for k in range(S):
            acc *= noise_a
            acc[:, 0] += noise_b * zx[:, k]
            acc[:, 1] += noise_b * zy[:, k]
            noise[:, k] = acc
        out = hand + amp[:, None, None] * np.sin(phase) + noise
        self.hand[:] = hand[:, -1]
        self.tremor_phase[:] = phase[:, -1] % f32(2 * np.pi)
        self.tremor_noise[:] = noise[:, -1]
        # spasm bursts override the hand (rare: loop over substeps only for the instances with
        # a burst running or starting in this control step)
        onset = u_spasm < (p["spasm_rate"] * dt)[:, None]
        rows = np.flatnonzero(onset.any(axis=1) | (self.spasm_timer > 0))
        if rows.size:
            ang = f32(2 * np.pi) * u_sdir[rows]
            sdx, sdy = np.cos(ang), np.sin(ang)
            timer = self.spasm_timer[rows]
            sdir = self.spasm_dir[rows]
            for k in range(S):
                start = onset[rows, k] & (timer <= 0)
                timer[start] = self.spasm_duration
                sdir[start, 0] = sdx[start]
                sdir[start, 1] = sdy[start]
                active = timer > 0
                sub = rows[active]
                out[sub, k, :] = self.spasm_magnitude * sdir[active]
                timer[active] -= dt
            self.spasm_timer[rows] = timer
            self.spasm_dir[rows] = sdir
        # clip to the unit disk
        r = np.sqrt((out * out).sum(axis=2, keepdims=True))
        out *= np.minimum(f32(1), f32(1) / np.maximum(r, f32(1e-6)))
        self.joystick[:] = out[:, -1]
        self.time += f32(self.control_dt)
        return out

    # ------------------------------------------------------------------------------------------
    _STATE = (
        "level",
        "buffer",
        "target",
        "hand",
        "joystick",
        "tremor_phase",
        "tremor_drift",
        "tremor_noise",
        "spasm_timer",
        "spasm_dir",
        "time",
    )

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {k: getattr(self, k).copy() for k in self._STATE}
        state["params"] = {k: v.copy() for k, v in self.params.items()}
        state["head"] = int(self.head)
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        for k in self._STATE:
            getattr(self, k)[...] = state[k]
        for k, v in state["params"].items():
            self.params[k][...] = v
        self.head = int(state["head"])


# ------------------------------------------------------------------------------------------------
# The user's driving strategy: where the joystick would point with perfect perception
#
# the simulated user's doorway manoeuvre **[design]** (door_frame, door_check,
# intended_joystick; docs/envs/wheelchair.md "Human" and "Calibration")
DOOR_APPROACH = 1.5  # m before the door plane: start lining up with the door's centre line
DOOR_LATERAL = 1.5  # m either side of the centre line
DOOR_STAGE = 0.9  # m before the door plane: the line-up point
DOOR_ALIGN_E = 0.3  # m: lateral offset below which the carrot moves on towards the door
DOOR_EXIT = 0.65  # m past the door plane: keep straight until the rear disc is out
DOOR_CARROT = 0.5  # m: pure-pursuit distance along the centre line
DOOR_SPEED = 0.3  # m/s in the doorway zone
DOOR_GATE = 0.75  # m before the door plane: the go/no-go check before the front enters
DOOR_SPARE = -0.04  # m: check passes if |e| + 0.5 |sin θ| <= gap each side - DOOR_SPARE
DOOR_BACK = 0.35  # m: back up this far behind the check line ...
DOOR_RETRY = 4.0  # s (at most) ...
DOOR_MAX_TRIES = 2  # failed line-ups before the user drives in regardless
DOOR_RETRY_SPEED = 0.2  # m/s ... at this speed


def door_frame(
    env: WheelchairSCVecEnv,
    x: np.ndarray,
    y: np.ndarray,
    goal_idx: np.ndarray,
    map_id: np.ndarray,
) -> DoorFrame:
    """The doorway the user is lining up with or leaving, in its frame.

    Returns (in_zone, s, e, nx, ny, half_width): ``s`` the signed distance of the chair centre along the
    door normal ``(nx, ny)`` (pointing to the goal's side), ``e`` the lateral offset from the
    door's centre line. ``in_zone``: ``-DOOR_APPROACH < s < 0`` and ``|e| < DOOR_LATERAL``
    (approaching a doorway that leads to the goal's side), or ``0 <= s < DOOR_EXIT`` and
    within the door's width (the rear of the footprint is still in the doorway)."""
    T = env._door_table[map_id, goal_idx]  # (n, 2, 5)
    nx, ny, hw = T[:, :, 2], T[:, :, 3], T[:, :, 4]
    rx = x[:, None] - T[:, :, 0]
    ry = y[:, None] - T[:, :, 1]
    s = rx * nx + ry * ny
    e = ry * nx - rx * ny
    ae = np.abs(e)
    app = (s > f32(-DOOR_APPROACH)) & (s < 0) & (ae < f32(DOOR_LATERAL))
    ext = (s >= 0) & (s < f32(DOOR_EXIT)) & (ae < hw + f32(0.1))
    m = (app | ext) & (hw > 0)
    # the zones of two doors (>= 1.5 m apart) hardly overlap: take the first one
    k = (~m[:, 0]).astype(np.int64)
    rows = np.arange(x.shape[0])
    zone = m[rows, k]
    return zone, s[rows, k], e[rows, k], nx[rows, k], ny[rows, k], hw[rows, k]


def door_check(env: WheelchairSCVecEnv, frame: DoorFrame) -> None:
    """The user's go/no-go check at a doorway's entry (updates ``retry_timer``).

    About to put the front of the footprint into the doorway (``s`` within 0.2 m after
    ``-DOOR_GATE``, moving forward) and the footprint would not clear the jambs if driven
    straight on (``|e| + 0.5 |sin θ|`` above the gap each side minus ``DOOR_SPARE``) -> back
    up to ``DOOR_GATE + DOOR_BACK`` before the door plane (at most ``DOOR_RETRY`` s, or until
    the rear sectors read < 0.1 m) and line up again; after ``DOOR_MAX_TRIES`` failed checks
    at the same doorway (counted until the chair leaves its zone) the user drives in."""
    door, s, e, nx, ny, hw = frame
    t = env.retry_timer
    t -= f32(CONTROL_DT)
    # stop backing up at the line-up distance, or when the rear is getting close
    t[~door | (s < f32(-DOOR_GATE - DOOR_BACK))] = 0.0
    np.maximum(t, 0, out=t)
    busy = np.flatnonzero(t > 0)
    if busy.size:
        rear = env.sectors[busy, 6:10].min(axis=1)
        t[busy[rear < f32(0.1)]] = 0.0
    env.door_tries[~door] = 0.0
    entry = np.flatnonzero(
        door & (s > f32(-DOOR_GATE)) & (s < f32(-DOOR_GATE + 0.2)) & (env.v > 0.02) & (t <= 0)
    )
    if not entry.size:
        return
    psi = env.psi[entry]
    sin_t = nx[entry] * np.sin(psi) - ny[entry] * np.cos(psi)
    tol = hw[entry] - f32(env.chair.disc_radius) - f32(DOOR_SPARE)
    bad = np.abs(e[entry]) + f32(0.5) * np.abs(sin_t) > tol
    # after DOOR_MAX_TRIES failed line-ups at this doorway the user drives in anyway
    retry = entry[bad & (env.door_tries[entry] < f32(DOOR_MAX_TRIES))]
    t[retry] = f32(DOOR_RETRY)
    env.door_tries[retry] += f32(1)


def intended_joystick(
    env: WheelchairSCVecEnv,
    goal_idx: np.ndarray,
    idx: np.ndarray | None = None,
    frame: DoorFrame | None = None,
) -> np.ndarray:
    """The joystick (float32 ``(n, 2)``, (turn, forward) in the unit disk) an unimpaired user
    with perfect, instantaneous perception pushes now towards ``goal_idx`` (``(n,)``), for the
    instances ``idx`` (``None``: all): pure pursuit along the preferred route, the doorway
    line-up (a carrot on the centre line of a doorway to the goal's side), social and obstacle
    repulsion, speed slowing with clearance, the reactive states (bump back-off, doorway
    back-up) read from ``env``, not changed. ``frame``: :func:`door_frame` for these
    instances and goals, if already computed."""
    sel = (lambda a: a) if idx is None else (lambda a: a[idx])
    x, y, psi, v = sel(env.x), sel(env.y), sel(env.psi), sel(env.v)
    # pure pursuit: head for the point ~0.8-1.1 m further along the preferred route
    # (bilinear blend of the four neighbouring cells' lookahead targets)
    mid = sel(env._gmap)
    d_goal = env._geodesic(x, y, goal_idx, mid)
    tx, ty = env._lookahead(x, y, goal_idx, mid)
    gxy = env.goal_xy[idx if idx is not None else slice(None)]
    gsel = gxy[np.arange(x.shape[0]), goal_idx]
    near_goal = d_goal < f32(0.6)
    tx = np.where(near_goal, gsel[:, 0], tx)
    ty = np.where(near_goal, gsel[:, 1], ty)
    # doorway line-up: in the approach zone of a doorway to the goal's side, and until the
    # rear of the footprint has left it, pursue a carrot on the door's centre line
    if frame is None:
        frame = door_frame(env, x, y, goal_idx, mid)
    door, s_door, e_door, nx_d, ny_d, _ = frame
    door = door & ~near_goal
    # the carrot stays at the staging line (DOOR_STAGE before the door) until the chair is
    # on the centre line: line up first, then drive in
    ok = np.clip(f32(1) - np.abs(e_door) / f32(DOOR_ALIGN_E), 0, 1)
    s_c = np.minimum(s_door + f32(DOOR_CARROT), f32(-DOOR_STAGE) * (f32(1) - ok) + f32(1) * ok)
    adv = s_c - s_door
    tx = np.where(door, x + nx_d * adv + e_door * ny_d, tx)
    ty = np.where(door, y + ny_d * adv - e_door * nx_d, ty)
    dx, dy = tx - x, ty - y
    norm = np.sqrt(dx * dx + dy * dy) + f32(1e-6)
    dx /= norm
    dy /= norm
    # social force from pedestrians (seen with the same delay as everything else)
    ped, on = sel(env.ped), sel(env.ped_on)
    for k in range(MAX_PEDS):
        rx = x - ped[:, k, 0]
        ry = y - ped[:, k, 1]
        dist = np.sqrt(rx * rx + ry * ry) + f32(1e-6)
        push = np.where(on[:, k], f32(1.5) * np.exp(-(dist - f32(0.6)) / f32(0.4)), 0)
        dx += push * rx / dist
        dy += push * ry / dist
    # repulsion from the obstacles the user sees (sector clearances, ego frame)
    sect = sel(env.sectors)
    rep = np.exp(-sect / f32(0.1)) * f32(0.4)
    rx_e = -(rep * env._sector_cos).sum(axis=1)
    ry_e = -(rep * env._sector_sin).sum(axis=1)
    cpsi, spsi = np.cos(psi), np.sin(psi)
    dx += cpsi * rx_e - spsi * ry_e
    dy += spsi * rx_e + cpsi * ry_e
    desired = np.arctan2(dy, dx)
    err = (desired - psi + np.pi) % TWO_PI - np.pi
    c = env.chair
    d_clear = sel(env.d_min) + f32(c.disc_radius)
    v_des = sel(env.v_pref) * np.clip((d_clear - f32(0.3)) / f32(0.8), 0.15, 1.0)
    v_des = np.minimum(v_des, f32(0.6) * d_goal + f32(0.05))
    v_des = np.where(door, np.minimum(v_des, f32(DOOR_SPEED)), v_des)
    v_des *= np.maximum(np.cos(err), 0) ** 2
    # reactive recovery: back away from an obstacle touching the front of the footprint
    front = np.minimum(sect[:, 0], sect[:, 15])
    rear = sect[:, 6:10].min(axis=1)
    v_des = np.where((front < f32(0.05)) & (rear > f32(0.3)), f32(-0.25), v_des)
    # after a bump the user backs off for a moment (straight back if there is room)
    bumped = sel(env.bump_timer) > 0
    back_off = np.where(sel(env.bump_front), f32(-0.3), f32(0.2))
    v_des = np.where(bumped, back_off, v_des)
    # not lined up at the doorway's entry: back up slowly, turning to the door's axis
    retry = np.flatnonzero(door & (sel(env.retry_timer) > 0) & ~bumped)
    if retry.size:
        v_des[retry] = f32(-DOOR_RETRY_SPEED)
        axis = np.arctan2(ny_d[retry], nx_d[retry])
        err[retry] = (axis - psi[retry] + np.pi) % TWO_PI - np.pi
    wmax = f32(c.omega_max0) * (f32(1) - f32(0.5 / c.v_max) * np.abs(v))
    # crossover-model gain: the user lowers the steering gain as their loop delay grows
    hp = env.human.params
    lag = sel(hp["reaction_delay"]) + sel(hp["hand_lag"]) + f32(c.tau_omega)
    gain = np.minimum(f32(2.0), f32(0.7) / lag)
    w_des = np.clip(gain * err, -wmax, wmax)
    jx = w_des / wmax
    jy = v_des / np.where(v_des >= 0, f32(c.v_max), f32(c.v_rev))
    r = np.sqrt(jx * jx + jy * jy)
    s = np.minimum(f32(1), f32(1) / np.maximum(r, f32(1e-6)))
    return np.stack([jx * s, jy * s], axis=1).astype(np.float32)
