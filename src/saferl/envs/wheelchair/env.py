"""``WheelchairSC-v0``: shared-control navigation of a powered wheelchair (docs/envs/wheelchair.md).

An impaired user drives a mid-wheel-drive powered wheelchair with a proportional joystick towards
one of three candidate goals in an 8 m x 8 m room (a partition wall with 1-2 doorways of real
widths, furniture discs, 0-2 pedestrians). The agent sees the joystick signal and the chair's
sensors, not the goal identity, and outputs ``a = (a0, a1, a2) in [-1, 1]^3``: the authority
``alpha = (a0 + 1) / 2`` left to the user and a robot command ``u_r = (a1 v_max, a2 omega_max0)``
(reverse capped at 0.5 m/s); the chair executes ``u = alpha u_h + (1 - alpha) u_r``
(``action_mode="blend"``) or ``u = clip(u_h + 0.5 a[1:] * u_max)`` (``action_mode="residual"``).
With ``action_mode="assist"`` the chair runs its own goal-inferring planner (the autopilot's) and
``u_r = clip(u_p + 0.5 a[1:] * u_max)`` is a correction of the planner's command ``u_p``; the
observation then also holds ``u_p`` and the planner's goal posterior (5 more dims).

Control step 0.1 s (10 Hz), physics and joystick at 50 Hz (5 substeps, exact unicycle arcs),
600-step episodes, terminated on success. Costs (indicators, combined by their union): collision,
near_miss, comfort, tip_risk, social; per-episode limit 15 (strict 6). ``info["cost_magnitude"]``
holds the penetration/overshoot magnitudes.

Classes: :class:`WheelchairSCVecEnv` (natively batched), :class:`WheelchairSCEnv` (single
instance, for ``gymnasium.make``) and :func:`make_vec`. Scripted baselines are in
``WheelchairSCVecEnv.SCRIPTED_POLICIES``. Units: SI, angles in rad. See docs/envs/wheelchair.md.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from gymnasium.spaces import Box

from saferl.envs.layout import ObsLayout
from saferl.envs.levels import IMPAIRMENT_LEVELS, levels_option, parse_levels
from saferl.envs.vector import SafeVectorEnv, ScriptedPolicy, SingleEnv
from saferl.envs.wheelchair import goals, user
from saferl.envs.wheelchair.baselines import BASELINES
from saferl.envs.wheelchair.costs import (
    COSTS,
    EPISODE_STEPS,
    WHEELCHAIR_CONSTRAINTS,
    CostThresholds,
    step_costs,
)
from saferl.envs.wheelchair.dynamics import (
    CONTROL_DT,
    TWO_PI,
    ChairParams,
    chair_substep,
    joystick_to_command,
)
from saferl.envs.wheelchair.maps import (
    MAX_PEDS,
    N_GOALS,
    N_WALLS,
    PED_RADIUS,
    MapLibrary,
    MapParams,
    door_table,
    field_at,
    get_map_library,
    lookahead_at,
)
from saferl.envs.wheelchair.observation import (
    ACCEL_SCALE,
    GOAL_RANGE,
    N_SECTORS,
    PED_RANGE,
    PED_SPEED,
    SECTOR_RANGE,
    observation_layout,
)
from saferl.envs.wheelchair.user import JoystickOperator
from saferl.safety import ConstraintSet
from saferl.utils import parse_choice

__all__ = [
    "CHALLENGES",
    "EPISODE_STEPS",
    "Challenge",
    "WheelchairSCEnv",
    "WheelchairSCVecEnv",
    "make_vec",
]

f32 = np.float32

# ------------------------------------------------------------------------------------------------
# Challenge levels


@dataclass(frozen=True)
class Challenge:
    """Challenge level: map clutter and door width, pedestrians and their speeds."""

    maps: MapParams
    n_peds: tuple[int, int]
    ped_speed: tuple[float, float]


CHALLENGES: dict[str, Challenge] = {
    "easy": Challenge(
        MapParams(door_width=(0.95, 1.10), n_discs=(2, 5)), n_peds=(0, 1), ped_speed=(0.4, 0.8)
    ),
    "standard": Challenge(MapParams(), n_peds=(0, 2), ped_speed=(0.5, 1.3)),
    "hard": Challenge(
        MapParams(door_width=(0.815, 0.85), n_discs=(7, 10)), n_peds=(2, 2), ped_speed=(0.8, 1.3)
    ),
}

GOAL_RADIUS = 0.3  # m: success when the centre is this close to the user's goal ...
SUCCESS_SPEED = 0.2  # m/s: ... and slower than this


# ------------------------------------------------------------------------------------------------
# The batched environment


_CHALLENGE_CODE = {name: i for i, name in enumerate(CHALLENGES)}


class WheelchairSCVecEnv(SafeVectorEnv):
    """Natively batched ``WheelchairSC-v0`` (N instances as float32 arrays).

    Args:
        num_envs: number of instances N.
        impairment: ``"none" | "mild" | "moderate" | "severe" | "random"`` (sampled per episode;
            default) or a list of N such names (fixed per instance, for evaluation).
        challenge: ``"easy" | "standard" | "hard"`` (map library, pedestrians).
        action_mode: ``"blend"`` (default), ``"residual"`` or ``"assist"`` (the robot command
            is a correction of the chair's planner: see :meth:`_plan`).
        privileged_obs: append the one-hot impairment level (4) and the true goal one-hot (3)
            to the observation (ablations only).
        instance_offset: global index of instance 0 (seeding of worker slices).
        render_mode: ``None`` or ``"rgb_array"``.
        use_map_cache: read/write the map library file cache.
        chair: the chair's parameters (default :class:`ChairParams`).

    Observation: float32 ``(N, d)`` with the named fields of ``obs_layout`` (an
    :class:`~saferl.envs.layout.ObsLayout`: 44 dims; ``assist`` appends 5 and ``privileged_obs``
    then 7; docs/envs/wheelchair.md lists them), clipped to [-10, 10]. Action: float32
    ``(N, 3)`` in [-1, 1]. ``info["cost_components"]``: the five indicators of
    :mod:`~saferl.envs.wheelchair.costs`, ``info["cost_magnitude"]`` (N,) float32 (penetration
    depth + near-miss shortfall + acceleration excess), ``info["success"]`` (N,) bool,
    ``info["impairment"]`` (N,) int8 level index.

    Curricula: :meth:`set_options` changes ``impairment`` (a level name, ``"random"`` or
    ``None`` = sampled per episode) and ``challenge`` for the episodes that start afterwards.
    Each instance keeps the map library of the challenge its episode began with
    (``episode_challenge`` (N,) int8, index into ``CHALLENGES``; ``map_id`` indexes that
    library); another challenge's library is loaded on first use and the lookup tables hold
    every library loaded so far.
    """

    SCRIPTED_POLICIES: ClassVar[dict[str, Callable[[], ScriptedPolicy]]] = BASELINES
    #: readable from the class (``saferl envs`` lists it without building the map library)
    constraints: ConstraintSet = WHEELCHAIR_CONSTRAINTS
    #: the thresholds the cost indicators compare against (the constraints are written from them)
    COSTS: ClassVar[CostThresholds] = COSTS
    OBS_DIM = observation_layout().size  # 44
    #: observation dims that ``action_mode="assist"`` appends after ``OBS_DIM`` (the planner's
    #: command (v, omega) / u_max and its posterior over the three goals)
    ASSIST_OBS_DIMS = observation_layout(action_mode="assist").size - OBS_DIM
    #: the planner's goal inference (Dragan & Srinivasa 2013 style): joystick likelihood width
    #: and the forgetting factor of the log-posterior (shared with the ``autopilot`` baseline)
    PLANNER_SIGMA = goals.PLANNER_SIGMA
    PLANNER_FORGET = goals.PLANNER_FORGET
    #: per-episode levels each step's ``info`` carries: ``info[key]`` is the int8 index into
    #: the names, the level of the episode the step belongs to (also on the step that ends it;
    #: ``env.constraint_groups`` constrains each level's episodes separately)
    INFO_LEVELS: ClassVar[Mapping[str, tuple[str, ...]]] = {"impairment": IMPAIRMENT_LEVELS}
    SETTABLE_OPTIONS: ClassVar[Mapping[str, tuple[Any, ...]]] = {
        "impairment": (*IMPAIRMENT_LEVELS, "random", None),
        "challenge": tuple(CHALLENGES),
    }

    def __init__(
        self,
        num_envs: int = 1,
        *,
        impairment: Any = "random",
        challenge: str = "standard",
        action_mode: str = "blend",
        privileged_obs: bool = False,
        instance_offset: int = 0,
        render_mode: str | None = None,
        use_map_cache: bool = True,
        chair: ChairParams | None = None,
    ) -> None:
        challenge = parse_choice(challenge, CHALLENGES, "challenge")
        self.action_mode = parse_choice(action_mode, ("blend", "residual", "assist"), "action_mode")
        self.challenge_name = challenge
        self.challenge = CHALLENGES[challenge]
        self._built_challenge = challenge  # set_options may change challenge_name
        self.chair = chair or ChairParams()
        self.privileged_obs = bool(privileged_obs)
        #: trailing observation dims that are privileged (``algo.asymmetric_critic``)
        self.privileged_obs_dims = 7 if self.privileged_obs else 0
        self._assist = self.action_mode == "assist"
        #: the observation's named fields (name -> dims, scale, unit)
        self.obs_layout: ObsLayout = observation_layout(
            self.chair, self.action_mode, self.privileged_obs
        )
        self._obs_at = {f.name: f.at for f in self.obs_layout}
        joy = [
            d
            for k in ("joystick", "joystick_mean", "joystick_std")
            for d in self.obs_layout[k].dims
        ]
        if joy != list(range(joy[0], joy[0] + 6)):
            raise RuntimeError("observation layout: the joystick fields must be contiguous")
        self._joy_block = slice(joy[0], joy[0] + 6)
        obs_dim = self.obs_layout.size
        self._priv_at = obs_dim - self.privileged_obs_dims
        low = np.full(obs_dim, -10.0, np.float32)
        high = np.full(obs_dim, 10.0, np.float32)
        super().__init__(
            num_envs,
            observation_space=Box(low, high, (obs_dim,), np.float32),
            action_space=Box(-1.0, 1.0, (3,), np.float32),
            constraints=WHEELCHAIR_CONSTRAINTS,
            max_episode_steps=EPISODE_STEPS,
            instance_offset=instance_offset,
            render_mode=render_mode,
        )
        self._obs_low, self._obs_high = low, high
        n = self.num_envs
        self.level_codes = parse_levels(impairment, n, "impairment")
        self.human = JoystickOperator(
            n, self.rng, control_dt=CONTROL_DT, substeps=self.chair.substeps
        )
        c = self.chair
        # state (struct of arrays)
        z = lambda *s: np.zeros((n, *s), np.float32)  # noqa: E731
        self.x, self.y, self.psi, self.v, self.omega = z(), z(), z(), z(), z()
        self.map_id = np.zeros(n, np.int64)
        # the challenge (index into CHALLENGES) each instance's episode began with: the library
        # map_id indexes; _gmap is the map's row in the lookup tables of all loaded libraries
        self.episode_challenge = np.full(n, _CHALLENGE_CODE[challenge], np.int8)
        self._gmap = np.zeros(n, np.int64)
        self.goal = np.zeros(n, np.int64)
        self.goal_xy = z(N_GOALS, 2)
        self.walls = z(N_WALLS, 4)
        # map libraries and their lookup tables (_add_library); only as many disc slots as the
        # most furnished map of a loaded library uses (the padding slots are far away, r = 0)
        self._use_map_cache = bool(use_map_cache)
        self._libs: dict[str, MapLibrary] = {}
        self._lib_offset = np.full(len(CHALLENGES), -1, np.int64)
        self._disc_slots = 0
        self.discs = z(0, 3)
        self.maps = self._add_library(challenge)
        self.ped = z(MAX_PEDS, 4)  # x, y, vx, vy
        self.ped_on = np.zeros((n, MAX_PEDS), bool)
        self.ped_box = z(MAX_PEDS, 4)
        self.v_pref = z()
        self.a_long = z()
        self.a_lat = z()
        self.prev_u = z(2)  # blended command (v, omega) of the last step, mean over substeps
        self.prev_alpha = z()
        self.joy = z(3, 2)  # joystick: last sample, mean and std over the last control step
        self.sectors = z(N_SECTORS)
        self.d_min = z()  # footprint clearance (m), after contact resolution
        self.geo_prev = z()
        self.bump_timer = z()  # s: the user backs off after feeling a bump
        self.bump_front = np.zeros(n, bool)  # the last bump was at the front of the footprint
        self.retry_timer = z()  # s: the user backs up to line up with a doorway again
        self.door_tries = z()  # failed line-ups at the current doorway
        # the chair's planner (action_mode="assist"): goal log-posterior and next command
        self.planner_logp = z(N_GOALS)
        self.planner_u = z(2)  # (v, omega) the planner proposes for the next step
        self._u_max = np.array([c.v_max, c.omega_max0], np.float32)
        centres = (np.arange(N_SECTORS) + 0.5) * (2 * np.pi / N_SECTORS)
        centres = (centres + np.pi) % (2 * np.pi) - np.pi
        self._sector_cos = np.cos(centres).astype(np.float32)
        self._sector_sin = np.sin(centres).astype(np.float32)

    # -------------------------------------------------------------------------------- options
    def _add_library(self, name: str) -> MapLibrary:
        """The map library of challenge ``name``, added to the lookup tables on first use.

        The tables (geodesic, preferred-route and lookahead fields, door table) hold the
        libraries in the order they were loaded; ``_lib_offset`` gives each one's first row.
        """
        lib = self._libs.get(name)
        if lib is not None:
            return lib
        lib = get_map_library(CHALLENGES[name].maps, use_cache=self._use_map_cache)
        if self._libs:
            first = next(iter(self._libs.values()))
            if (lib.params.room, lib.params.cell, lib.dist.shape[1:]) != (
                first.params.room,
                first.params.cell,
                first.dist.shape[1:],
            ):
                raise ValueError(f"challenge: the {name!r} map library has another grid")
        else:
            self.G = lib.dist.shape[-1]
        self._lib_offset[_CHALLENGE_CODE[name]] = sum(b.walls.shape[0] for b in self._libs.values())
        self._libs[name] = lib
        libs = list(self._libs.values())
        if len(libs) == 1:  # views, no copies
            self._dist_flat = lib.dist.reshape(-1)
            self._nav_flat = lib.nav.reshape(-1)
            self._look_flat = lib.look.reshape(-1)
            self._door_table = door_table(lib)
        else:
            self._dist_flat = np.concatenate([b.dist.reshape(-1) for b in libs])
            self._nav_flat = np.concatenate([b.nav.reshape(-1) for b in libs])
            self._look_flat = np.concatenate([b.look.reshape(-1) for b in libs])
            self._door_table = np.concatenate([self._door_table, door_table(lib)])
        slots = max(1, int((lib.discs[:, :, 2] > 0).sum(axis=1).max()))
        if slots > self._disc_slots:
            # padding slots never change a distance, a contact or a sector (far away, r = 0)
            discs = np.zeros((self.num_envs, slots, 3), np.float32)
            discs[:, :, :2] = 1e3
            discs[:, : self._disc_slots] = self.discs
            self.discs, self._disc_slots = discs, slots
        return lib

    def _get_options(self) -> dict[str, Any]:
        return {"impairment": levels_option(self.level_codes), "challenge": self.challenge_name}

    def _set_options(self, options: Mapping[str, Any]) -> None:
        # both only read by _reset_instances: episodes under way keep what they began with
        if "impairment" in options:
            value = options["impairment"]
            self.level_codes[:] = parse_levels(
                "random" if value is None else value, self.num_envs, "impairment"
            )
        if "challenge" in options and options["challenge"] != self.challenge_name:
            name = parse_choice(options["challenge"], CHALLENGES, "challenge")
            self.maps = self._add_library(name)
            self.challenge_name, self.challenge = name, CHALLENGES[name]

    # -------------------------------------------------------------------------------- helpers
    def _geodesic(self, x, y, goal_idx, map_id, grad: bool = False, nav: bool = False):
        """Bilinear geodesic distance (m; and its gradient) at (x, y) for the given goals
        (:func:`~saferl.envs.wheelchair.maps.field_at`).

        ``nav=True`` reads the user's preferred-route field instead of the metric one.
        ``map_id``: the map's row in the lookup tables of all loaded libraries (``_gmap``)."""
        flat = self._nav_flat if nav else self._dist_flat
        return field_at(flat, self.G, self.maps.params.cell, x, y, goal_idx, map_id, grad)

    def _lookahead(self, x, y, goal_idx, map_id):
        """The user's pure-pursuit target (m) at (x, y) (:func:`~saferl.envs.wheelchair.maps.lookahead_at`)."""
        return lookahead_at(self._look_flat, self.G, self.maps.params.cell, x, y, goal_idx, map_id)

    def joystick_to_command(self, j: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Joystick (..., 2) = (turn, forward) -> (v_c, omega_c) with the chair's mapping
        (:func:`~saferl.envs.wheelchair.dynamics.joystick_to_command`)."""
        return joystick_to_command(j, v, self.chair)

    def intended_joystick(self, goal_idx: np.ndarray, idx: np.ndarray | None = None) -> np.ndarray:
        """The joystick a perfect-perception user would push now towards ``goal_idx`` (N, 2).

        Pure pursuit along the preferred route, the doorway line-up (a carrot on the centre line
        of a doorway to the goal's side), social and obstacle repulsion, speed slowing with
        clearance. The user's reactive states (bump back-off, doorway back-up, set by the step
        from the true goal) are read, not changed, so this can be evaluated for other goals
        (:func:`~saferl.envs.wheelchair.user.intended_joystick`)."""
        return user.intended_joystick(self, goal_idx, idx)

    def candidate_joysticks(self, idx: np.ndarray | None = None) -> np.ndarray:
        """:meth:`intended_joystick` towards each of the three goals, (N or len(idx), 3, 2)."""
        rows = self._all_idx if idx is None else np.asarray(idx, np.int64)
        n = len(rows)
        # one pass over the (goal, instance) pairs: goal-major rows, then (n, 3, 2)
        goal = np.repeat(np.arange(N_GOALS, dtype=np.int64), n)
        j = user.intended_joystick(self, goal, np.tile(rows, N_GOALS))
        return j.reshape(N_GOALS, n, 2).transpose(1, 0, 2)

    def _plan(self, idx: np.ndarray | None = None) -> None:
        """The chair's planner (``action_mode="assist"``), the ``autopilot`` baseline's: update
        the goal log-posterior with the mean joystick of the step just taken and propose, for
        the next step, the command an ideal user would give towards the most likely goal."""
        sel = slice(None) if idx is None else idx
        cands = self.candidate_joysticks(idx)
        logp = self.planner_logp[sel]
        j = goals.infer_goal(logp, self.joy[sel, 1], cands, self.PLANNER_SIGMA, self.PLANNER_FORGET)
        self.planner_logp[sel] = logp
        self.planner_u[sel] = np.stack(self.joystick_to_command(j, self.v[sel]), axis=1)

    # ----------------------------------------------------------------------------- reset
    def _reset_instances(self, idx: np.ndarray) -> None:
        lib, ch = self.maps, self.challenge
        u = self.rng.uniform(8 + 6 * MAX_PEDS, idx)
        m = np.minimum((u[:, 0] * lib.walls.shape[0]).astype(np.int64), lib.walls.shape[0] - 1)
        g = np.minimum((u[:, 1] * N_GOALS).astype(np.int64), N_GOALS - 1)
        s = np.minimum((u[:, 2] * lib.starts.shape[2]).astype(np.int64), lib.starts.shape[2] - 1)
        self.map_id[idx] = m
        code = _CHALLENGE_CODE[self.challenge_name]
        self.episode_challenge[idx] = code
        gm = m + self._lib_offset[code]
        self._gmap[idx] = gm
        self.goal[idx] = g
        self.goal_xy[idx] = lib.goals[m]
        self.walls[idx] = lib.walls[m]
        self.discs[idx] = lib.discs[m, : self._disc_slots]
        start = lib.starts[m, g, s]
        # jitter within the start cell so starts are not on a lattice
        cell = f32(lib.params.cell)
        self.x[idx] = start[:, 0] + (u[:, 3] - f32(0.5)) * cell
        self.y[idx] = start[:, 1] + (u[:, 4] - f32(0.5)) * cell
        self.psi[idx] = (u[:, 5] - f32(0.5)) * TWO_PI
        self.v[idx] = 0.0
        self.omega[idx] = 0.0
        self.v_pref[idx] = f32(0.6) + f32(0.6) * u[:, 6]
        # pedestrians: count, half-room, position, heading, speed
        n_lo, n_hi = ch.n_peds
        n_peds = n_lo + np.minimum((u[:, 7] * (n_hi - n_lo + 1)).astype(np.int64), n_hi - n_lo)
        for p in range(MAX_PEDS):
            b = 8 + 6 * p
            on = p < n_peds
            half = (u[:, b] < 0.5).astype(np.int64)
            box = lib.halves[m, half].copy()
            box[:, :2] += PED_RADIUS
            box[:, 2:] -= PED_RADIUS
            px = box[:, 0] + (box[:, 2] - box[:, 0]) * u[:, b + 1]
            py = box[:, 1] + (box[:, 3] - box[:, 1]) * u[:, b + 2]
            # keep pedestrians >= 1.5 m from the start (else park them, inactive)
            on &= np.hypot(px - self.x[idx], py - self.y[idx]) > 1.5
            ang = TWO_PI * u[:, b + 3]
            spd = ch.ped_speed[0] + (ch.ped_speed[1] - ch.ped_speed[0]) * u[:, b + 4]
            self.ped[idx, p] = np.stack(
                [
                    np.where(on, px, f32(1e3)),
                    np.where(on, py, f32(1e3)),
                    np.where(on, spd * np.cos(ang), 0),
                    np.where(on, spd * np.sin(ang), 0),
                ],
                axis=1,
            )
            self.ped_on[idx, p] = on
            self.ped_box[idx, p] = box
        self.a_long[idx] = 0.0
        self.a_lat[idx] = 0.0
        self.prev_u[idx] = 0.0
        self.prev_alpha[idx] = 1.0
        self.bump_timer[idx] = 0.0
        self.bump_front[idx] = False
        self.retry_timer[idx] = 0.0
        self.door_tries[idx] = 0.0
        self.joy[idx] = 0.0
        self.human.reset(idx, self.level_codes[idx])
        self._geometry(idx)
        self.geo_prev[idx] = self._geodesic(self.x[idx], self.y[idx], g, gm)
        if self._assist:
            self.planner_logp[idx] = 0.0
            self._plan(idx)

    # ----------------------------------------------------------------------------- geometry
    def _distances(self, px, py, gidx, normals: bool = True):
        """Distance from points (n,) to every obstacle surface: (K, n) d (and nx, ny outward).

        ``gidx``: the instances the points belong to (``None``: all, in order)."""
        room = f32(self.maps.params.room)
        if gidx is None:
            walls, discs, ped, on = self.walls, self.discs, self.ped, self.ped_on
        else:
            walls, discs, ped, on = (
                self.walls[gidx],
                self.discs[gidx],
                self.ped[gidx],
                self.ped_on[gidx],
            )
        nw, nd = walls.shape[1], discs.shape[1]
        K = 4 + nw + nd + MAX_PEDS
        n = px.shape[0]
        D = np.empty((K, n), np.float32)
        if normals:
            NX = np.zeros((K, n), np.float32)
            NY = np.zeros((K, n), np.float32)
            NX[0], NX[1], NY[2], NY[3] = 1, -1, 1, -1
        # outer walls (half-planes)
        D[0], D[1], D[2], D[3] = px, room - px, py, room - py
        for k in range(nw):
            b = walls[:, k]
            cx = np.maximum(np.maximum(b[:, 0] - px, px - b[:, 2]), 0)
            cy = np.maximum(np.maximum(b[:, 1] - py, py - b[:, 3]), 0)
            d = np.sqrt(cx * cx + cy * cy)
            D[4 + k] = d
            if normals:
                inv = f32(1) / np.maximum(d, f32(1e-6))
                NX[4 + k] = np.copysign(cx * inv, px - b[:, 0])
                NY[4 + k] = np.copysign(cy * inv, py - b[:, 1])
        j = 4 + nw
        rx = px[None, :] - discs[:, :, 0].T
        ry = py[None, :] - discs[:, :, 1].T
        r = np.sqrt(rx * rx + ry * ry)
        D[j : j + nd] = r - discs[:, :, 2].T
        if normals:
            inv = f32(1) / np.maximum(r, f32(1e-6))
            NX[j : j + nd] = rx * inv
            NY[j : j + nd] = ry * inv
        j += nd
        rx = px[None, :] - ped[:, :, 0].T
        ry = py[None, :] - ped[:, :, 1].T
        r = np.sqrt(rx * rx + ry * ry)
        D[j:] = np.where(on.T, r - f32(PED_RADIUS), f32(1e3))
        if not normals:
            return D
        inv = f32(1) / np.maximum(r, f32(1e-6))
        NX[j:] = rx * inv
        NY[j:] = ry * inv
        return D, NX, NY

    def _project(self, x, y, hx, hy, gidx):
        """One projection pass for the instances ``gidx`` (``None``: all) at poses (x, y, h).

        Returns (x, y, penetration (n,), front-disc hit (n,), d_min (n,) before the move).
        Distances are computed for everyone; normals only for the instances in contact."""
        r_c, off = f32(self.chair.disc_radius), f32(self.chair.disc_offset)
        fx, fy = x + off * hx, y + off * hy
        rx, ry = x - off * hx, y - off * hy
        mF = self._distances(fx, fy, gidx, normals=False).min(axis=0)
        mR = self._distances(rx, ry, gidx, normals=False).min(axis=0)
        d_min = np.minimum(mF, mR) - r_c
        pF = np.maximum(r_c - mF, 0)
        pR = np.maximum(r_c - mR, 0)
        pmax = np.maximum(pF, pR)
        front_hit = pF >= pR
        hit = np.flatnonzero(pmax > 0)
        if hit.size:
            g = hit if gidx is None else gidx[hit]
            dF, nxF, nyF = self._distances(fx[hit], fy[hit], g)
            dR, nxR, nyR = self._distances(rx[hit], ry[hit], g)
            penF = np.maximum(r_c - dF, 0)
            penR = np.maximum(r_c - dR, 0)
            front = penF >= penR
            pen = np.where(front, penF, penR)
            x = x.copy()
            y = y.copy()
            x[hit] += (pen * np.where(front, nxF, nxR)).sum(axis=0)
            y[hit] += (pen * np.where(front, nyF, nyR)).sum(axis=0)
        return x, y, pmax, front_hit, d_min

    def _geometry(self, idx: np.ndarray | None = None) -> np.ndarray:
        """Resolve contacts, update d_min and the 16-sector proximity; returns penetration (n,).

        Contacts are resolved once per control step: the footprint is projected out of every
        overlapping obstacle (up to two passes for corners; later passes only for the instances
        still in contact)."""
        sel = (lambda a: a) if idx is None else (lambda a: a[idx])
        c = self.chair
        r_c, off = f32(c.disc_radius), f32(c.disc_offset)
        x, y, psi = sel(self.x), sel(self.y), sel(self.psi)
        hx, hy = np.cos(psi), np.sin(psi)
        x, y, pen_total, front_hit, d_min = self._project(x, y, hx, hy, idx)
        # which end of the footprint the last contact was at (kept until the next contact)
        if idx is None:
            np.copyto(self.bump_front, front_hit, where=pen_total > 0)
        else:
            self.bump_front[idx] = np.where(pen_total > 0, front_hit, self.bump_front[idx])
        sub = np.flatnonzero(pen_total > 0)
        if sub.size:
            gidx = sub if idx is None else idx[sub]
            xs, ys, pen2, _, dm = self._project(x[sub], y[sub], hx[sub], hy[sub], gidx)
            again = pen2 > 0
            if again.any():
                a = np.flatnonzero(again)
                xa, ya, _, _, dma = self._project(xs[a], ys[a], hx[sub][a], hy[sub][a], gidx[a])
                xs[a], ys[a] = xa, ya
                dm[a] = dma
            x[sub], y[sub] = xs, ys
            # after projection the footprint touches the obstacle (d_min = 0 up to the
            # residual of a corner that needed a third pass)
            d_min[sub] = np.maximum(dm, 0)
        # proximity sectors, measured from the chair centre to each obstacle's nearest point
        dC, nxC, nyC = self._distances(x, y, idx)
        bearing = np.arctan2(-nyC, -nxC) - psi[None, :]
        sec = (np.floor(bearing * f32(N_SECTORS / (2 * np.pi))).astype(np.int64)) % N_SECTORS
        # footprint clearance in that direction: the two discs extend r_c + off |cos(bearing)|
        cosb = np.abs(nxC * hx[None, :] + nyC * hy[None, :])
        clear = np.clip(dC - r_c - off * cosb, 0, SECTOR_RANGE)
        n = x.shape[0]
        sectors = np.full((n, N_SECTORS), SECTOR_RANGE, np.float32)
        flat = sectors.reshape(-1)
        rows = np.arange(n) * N_SECTORS
        for k in range(dC.shape[0]):
            fi = rows + sec[k]
            np.minimum(flat[fi], clear[k], out=clear[k])
            flat[fi] = clear[k]
        if idx is None:
            self.x[:], self.y[:] = x, y
            self.d_min[:] = d_min
            self.sectors[:] = sectors
        else:
            self.x[idx], self.y[idx] = x, y
            self.d_min[idx] = d_min
            self.sectors[idx] = sectors
        return pen_total

    # ----------------------------------------------------------------------------- step
    def _step_batch(self, actions):
        c = self.chair
        n, S = self.num_envs, c.substeps
        # 1. the human: intention from the current (true) state, delayed inside the model
        frame = user.door_frame(self, self.x, self.y, self.goal, self._gmap)
        user.door_check(self, frame)
        j_int = user.intended_joystick(self, self.goal, None, frame)
        joy = self.human.step(j_int)  # (N, S, 2)
        # 2. shared control
        blend = self.action_mode != "residual"
        if self.action_mode == "blend":
            alpha = (actions[:, 0] + f32(1)) * f32(0.5)
            a1 = actions[:, 1]
            v_r = np.where(a1 >= 0, f32(c.v_max), f32(c.v_rev)) * a1
            w_r = actions[:, 2] * f32(c.omega_max0)
        elif self._assist:  # a correction of the planner's command (computed after last step)
            alpha = (actions[:, 0] + f32(1)) * f32(0.5)
            v_r = np.clip(
                self.planner_u[:, 0] + f32(0.5 * c.v_max) * actions[:, 1], -c.v_rev, c.v_max
            )
            w_r = np.clip(
                self.planner_u[:, 1] + f32(0.5 * c.omega_max0) * actions[:, 2],
                -c.omega_max0,
                c.omega_max0,
            )
        else:
            alpha = np.ones(n, np.float32)
        v0 = self.v.copy()
        a_prev = self.a_long.copy()
        x, y, psi, v, w = self.x, self.y, self.psi, self.v, self.omega
        u_sum = np.zeros((n, 2), np.float32)
        uh_sum = np.zeros((n, 2), np.float32)
        for k in range(S):
            vh, wh = self.joystick_to_command(joy[:, k], v)
            if blend:
                vc = alpha * vh + (1 - alpha) * v_r
                wc = alpha * wh + (1 - alpha) * w_r
            else:
                vc = np.clip(vh + f32(0.5 * c.v_max) * actions[:, 1], -c.v_rev, c.v_max)
                wc = np.clip(
                    wh + f32(0.5 * c.omega_max0) * actions[:, 2], -c.omega_max0, c.omega_max0
                )
            u_sum[:, 0] += vc
            u_sum[:, 1] += wc
            uh_sum[:, 0] += vh
            uh_sum[:, 1] += wh
            chair_substep(x, y, psi, v, w, vc, wc, c)
        psi[:] = (psi + np.pi) % TWO_PI - np.pi
        # 3. pedestrians: constant velocity, reflecting off their half-room
        self._move_pedestrians()
        # 4. contacts (bump stop) and proximity
        pen = self._geometry()
        hit = pen > 0
        v[hit] = 0.0
        w[hit] = 0.0
        self.bump_timer -= f32(CONTROL_DT)
        np.maximum(self.bump_timer, 0, out=self.bump_timer)
        self.bump_timer[hit] = 0.5
        # 5. accelerations over the 0.1 s step, costs
        self.a_long[:] = (v - v0) / f32(CONTROL_DT)
        self.a_lat[:] = v * w
        jerk = (self.a_long - a_prev) / f32(CONTROL_DT)
        speed = np.abs(v)
        dped = np.full(n, 1e3, np.float32)
        for k in range(MAX_PEDS):
            dd = np.hypot(self.x - self.ped[:, k, 0], self.y - self.ped[:, k, 1])
            dped = np.minimum(dped, np.where(self.ped_on[:, k], dd, f32(1e3)))
        components, magnitude = step_costs(
            self.COSTS, hit, pen, self.d_min, speed, self.a_long, self.a_lat, jerk, dped
        )
        # 6. reward
        geo = self._geodesic(self.x, self.y, self.goal, self._gmap)
        gx = self.goal_xy[np.arange(n), self.goal]
        at_goal = np.hypot(self.x - gx[:, 0], self.y - gx[:, 1]) < GOAL_RADIUS
        success = at_goal & (speed < SUCCESS_SPEED)
        u_mean = u_sum / f32(S)
        uh_mean = uh_sum / f32(S)
        intent = (((u_mean - uh_mean) / self._u_max) ** 2).sum(axis=1) * f32(0.5)
        du = (((u_mean - self.prev_u) / self._u_max) ** 2).sum(axis=1) * f32(0.5)
        reward = (
            (self.geo_prev - geo)
            + f32(10.0) * success
            - f32(0.01)
            - f32(0.2) * intent
            + f32(0.05) * alpha
            - f32(0.05) * du
        ).astype(np.float32)
        self.geo_prev[:] = geo
        self.prev_u[:] = u_mean
        self.prev_alpha[:] = alpha
        self.joy[:, 0] = joy[:, -1]
        self.joy[:, 1] = joy.mean(axis=1)
        self.joy[:, 2] = joy.std(axis=1)
        if self._assist:  # the planner's proposal for the next step, from what it saw now
            self._plan()
        info = {
            "cost_magnitude": magnitude,
            "success": success,
            "impairment": self.human.level.copy(),
        }
        return reward, success, components, info

    def _move_pedestrians(self) -> None:
        """Constant velocity, reflecting off the half-room walls; a pedestrian about to walk
        into the chair (centre distance < 1.0 m and closing) turns back instead **[design]**."""
        p, box = self.ped, self.ped_box
        dt = f32(CONTROL_DT)
        rx = p[:, :, 0] - self.x[:, None]
        ry = p[:, :, 1] - self.y[:, None]
        closing = (rx * p[:, :, 2] + ry * p[:, :, 3]) < 0
        yield_ = closing & (rx * rx + ry * ry < f32(1.0)) & self.ped_on
        p[:, :, 2] = np.where(yield_, -p[:, :, 2], p[:, :, 2])
        p[:, :, 3] = np.where(yield_, -p[:, :, 3], p[:, :, 3])
        for ax in (0, 1):
            pos = p[:, :, ax] + p[:, :, 2 + ax] * dt
            lo, hi = box[:, :, ax], box[:, :, 2 + ax]
            below, above = pos < lo, pos > hi
            pos = np.where(below, 2 * lo - pos, np.where(above, 2 * hi - pos, pos))
            vel = np.where(below | above, -p[:, :, 2 + ax], p[:, :, 2 + ax])
            on = self.ped_on
            p[:, :, ax] = np.where(on, pos, p[:, :, ax])
            p[:, :, 2 + ax] = np.where(on, vel, p[:, :, 2 + ax])

    # ----------------------------------------------------------------------------- observation
    def _observe(self, idx: np.ndarray | None = None) -> np.ndarray:
        """float32 ``(n, d)`` observations of instances ``idx`` (all: ``None``), written field by
        field through ``obs_layout`` and clipped to the observation box."""
        sel = (lambda a: a) if idx is None else (lambda a: a[idx])
        ix = self._obs_at
        x, y, psi = sel(self.x), sel(self.y), sel(self.psi)
        n = x.shape[0]
        obs = np.empty((n, self.single_observation_space.shape[0]), np.float32)
        obs[:, ix["speed"]] = sel(self.v) / f32(self.chair.v_max)
        obs[:, ix["turn_rate"]] = sel(self.omega) / f32(self.chair.omega_max0)
        obs[:, ix["accel_long"]] = sel(self.a_long) * f32(1 / ACCEL_SCALE)
        obs[:, ix["accel_lat"]] = sel(self.a_lat) * f32(1 / ACCEL_SCALE)
        # joystick, joystick_mean, joystick_std: one block, (N, 3, 2) -> (N, 6) (checked in
        # __init__ to be contiguous and in this order)
        obs[:, self._joy_block] = sel(self.joy).reshape(n, 6)
        obs[:, ix["command"]] = sel(self.prev_u) / self._u_max
        obs[:, ix["authority"]] = sel(self.prev_alpha)
        obs[:, ix["sectors"]] = sel(self.sectors) * f32(1 / SECTOR_RANGE)
        cs, sn = np.cos(psi)[:, None], np.sin(psi)[:, None]
        g = sel(self.goal_xy)
        dx, dy = g[:, :, 0] - x[:, None], g[:, :, 1] - y[:, None]
        obs[:, ix["goal_dx"]] = (cs * dx + sn * dy) * f32(1 / GOAL_RANGE)
        obs[:, ix["goal_dy"]] = (-sn * dx + cs * dy) * f32(1 / GOAL_RANGE)
        ped, on = sel(self.ped), sel(self.ped_on)
        pdx, pdy = ped[:, :, 0] - x[:, None], ped[:, :, 1] - y[:, None]
        pdist = np.where(on, pdx * pdx + pdy * pdy, f32(1e9))
        order = np.argsort(pdist, axis=1) if MAX_PEDS > 1 else np.zeros((n, 1), np.int64)
        rows = np.arange(n)[:, None]
        pdx, pdy, on_s = pdx[rows, order], pdy[rows, order], on[rows, order]
        pvx, pvy = ped[:, :, 2][rows, order], ped[:, :, 3][rows, order]
        onf = on_s.astype(np.float32)
        obs[:, ix["ped_dx"]] = (cs * pdx + sn * pdy) * f32(1 / PED_RANGE) * onf
        obs[:, ix["ped_dy"]] = (-sn * pdx + cs * pdy) * f32(1 / PED_RANGE) * onf
        obs[:, ix["ped_vx"]] = (cs * pvx + sn * pvy) * f32(1 / PED_SPEED) * onf
        obs[:, ix["ped_vy"]] = (-sn * pvx + cs * pvy) * f32(1 / PED_SPEED) * onf
        obs[:, ix["time_left"]] = f32(1) - sel(self.elapsed).astype(np.float32) / f32(EPISODE_STEPS)
        if self._assist:
            logp = sel(self.planner_logp)
            post = np.exp(logp - logp.max(axis=1, keepdims=True))
            post /= post.sum(axis=1, keepdims=True)
            obs[:, ix["planner_command"]] = sel(self.planner_u) / self._u_max
            obs[:, ix["planner_posterior"]] = post
        if self.privileged_obs:
            lv = sel(self.human.level).astype(np.int64)
            obs[:, ix["level"]] = 0.0
            obs[:, ix["goal"]] = 0.0
            L = self.obs_layout
            obs[np.arange(n), L["level"].dims[0] + lv] = 1.0
            obs[np.arange(n), L["goal"].dims[0] + sel(self.goal)] = 1.0
        np.clip(obs, self._obs_low, self._obs_high, out=obs)
        return obs

    # ----------------------------------------------------------------------------- state
    _STATE = (
        "x",
        "y",
        "psi",
        "v",
        "omega",
        "map_id",
        "goal",
        "goal_xy",
        "walls",
        "discs",
        "ped",
        "ped_on",
        "ped_box",
        "v_pref",
        "a_long",
        "a_lat",
        "prev_u",
        "prev_alpha",
        "joy",
        "sectors",
        "d_min",
        "geo_prev",
        "bump_timer",
        "bump_front",
        "retry_timer",
        "door_tries",
        "level_codes",
        "episode_challenge",
        "planner_logp",
        "planner_u",
    )

    def _get_state(self) -> dict[str, Any]:
        state = {k: getattr(self, k) for k in self._STATE}
        state["human"] = self.human.state_dict()
        state["map_library"] = self.maps.key
        # every library loaded (in order): their disc slots shape ``discs``
        state["map_libraries"] = {name: lib.key for name, lib in self._libs.items()}
        state["options"] = self._fixed_options()
        return state

    def _fixed_options(self) -> dict[str, Any]:
        """The construction options a state_dict must match (the current values of the
        settable ones are restored from it)."""
        return {
            "challenge": self._built_challenge,
            "action_mode": self.action_mode,
            "privileged_obs": self.privileged_obs,
        }

    def _set_state(self, state: Mapping[str, Any]) -> None:
        opts, mine = dict(state["options"]), self._fixed_options()
        if opts != mine:
            raise ValueError(f"state_dict options {opts} differ from this env's {mine}")
        saved = dict(state.get("map_libraries") or {self.challenge_name: state["map_library"]})
        for name, key in saved.items():
            lib = self._add_library(name)
            if lib.key != key:
                raise ValueError(
                    f"state_dict was saved with another {name!r} map library ({key} != "
                    f"{lib.key}); the map generator or its parameters changed"
                )
        for k in self._STATE:
            if k == "discs":  # this env may pad more slots (it loaded more libraries)
                self.discs[:, : state[k].shape[1]] = state[k]
                self.discs[:, state[k].shape[1] :, :2] = 1e3
                self.discs[:, state[k].shape[1] :, 2] = 0.0
            elif k == "episode_challenge" and k not in state:  # saved before curricula
                self.episode_challenge[:] = _CHALLENGE_CODE[self.challenge_name]
            elif k.startswith("planner_") and k not in state:  # saved before action_mode assist
                getattr(self, k)[...] = 0.0
            else:
                getattr(self, k)[...] = state[k]
        self._gmap[:] = self._lib_offset[self.episode_challenge] + self.map_id
        self.human.load_state_dict(state["human"])

    # ----------------------------------------------------------------------------- render
    def render_instance(self, i: int = 0) -> np.ndarray:
        from saferl.envs.rendering import render_wheelchair

        return render_wheelchair(self, i)


class WheelchairSCEnv(SingleEnv):
    """Single-instance ``WheelchairSC-v0`` (a :class:`gymnasium.Env`); options as the vector env."""

    vector_cls = WheelchairSCVecEnv


def make_vec(num_envs: int = 1, **options: Any) -> WheelchairSCVecEnv:
    """saferl registry factory: the natively batched env with ``num_envs`` instances."""
    return WheelchairSCVecEnv(num_envs, **options)
