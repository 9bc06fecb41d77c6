"""Human operator models: a joystick user with impairment levels ``none|mild|moderate|severe``.

:class:`JoystickOperator` turns an *intended* 2-D joystick deflection (what an unimpaired user with
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
from typing import Any

import numpy as np

from saferl.envs.levels import IMPAIRMENT_LEVELS
from saferl.envs.vector import InstanceRNG

__all__ = [
    "IMPAIRMENT_LEVELS",
    "JOYSTICK_IMPAIRMENTS",
    "JoystickImpairment",
    "JoystickOperator",
]

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
