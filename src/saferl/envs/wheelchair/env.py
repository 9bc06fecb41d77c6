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

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import numpy as np
from gymnasium.spaces import Box

from saferl.envs.wheelchair.user import JoystickOperator
from saferl.envs.levels import IMPAIRMENT_LEVELS, levels_option, parse_levels
from saferl.envs.vector import SafeVectorEnv, ScriptedPolicy, SingleEnv
from saferl.safety import Constraint, ConstraintSet
from saferl.utils import atomic_write, cache_dir, parse_choice

__all__ = [
    "CHALLENGES",
    "IMPAIRMENT_LEVELS",
    "WHEELCHAIR_CONSTRAINTS",
    "ChairParams",
    "MapLibrary",
    "MapParams",
    "WheelchairSCEnv",
    "WheelchairSCVecEnv",
    "arc_step",
    "chair_substep",
    "get_map_library",
    "make_vec",
]

f32 = np.float32
TWO_PI = f32(2 * np.pi)

# ------------------------------------------------------------------------------------------------
# Parameters


@dataclass(frozen=True)
class ChairParams:
    """Chair dynamics (§2.3, typical indoor PWC **[design]**)."""

    v_max: float = 1.5  # m/s forward
    v_rev: float = 0.5  # m/s reverse
    omega_max0: float = 1.5  # rad/s at standstill
    tau_v: float = 0.25  # s
    tau_omega: float = 0.15  # s
    a_acc: float = 1.0  # m/s^2 (speeding up)
    a_dec: float = 1.5  # m/s^2 (slowing down)
    alpha_max: float = 3.0  # rad/s^2
    track: float = 0.55  # m (wheel base b)
    v_wheel_max: float = 1.6  # m/s per drive wheel
    disc_radius: float = 0.32  # m, footprint = two discs (0.64 m wide, 1.04 m long) ...
    disc_offset: float = 0.20  # ... at +-0.20 m along the heading
    cg_height: float = 0.55  # m
    dt: float = 0.02  # s physics
    substeps: int = 5  # per 0.1 s control step


@dataclass(frozen=True)
class MapParams:
    """Procedural room generator (§2.2). One library of ``n_maps`` maps per parameter set."""

    n_maps: int = 256
    room: float = 8.0
    cell: float = 0.1
    door_width: tuple[float, float] = (0.815, 0.915)  # ADA 32-36 in
    n_discs: tuple[int, int] = (4, 8)
    disc_radius: tuple[float, float] = (0.2, 0.5)
    max_discs: int = 10
    turn_clearance: float = 0.7625  # half the 1.525 m ADA turning circle
    n_starts: int = 48  # start candidates stored per map and goal
    min_start_goal: float = 2.5  # m geodesic
    chair_radius: float = 0.32  # obstacle inflation for the distance fields (= disc_radius)
    comfort_clearance: float = 0.65  # cells closer than this cost ``near_cost`` x
    near_cost: float = 10.0
    inflated_cost: float = 40.0  # cells closer than the chair radius
    lookahead_cells: int = 8  # the simulated user aims ~0.8-1.1 m ahead along the route
    seed: int = 20261125
    version: int = 4  # bump when the generator changes (part of the cache key)


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

EPISODE_STEPS = 600
CONTROL_DT = 0.1
PED_RADIUS = 0.25
MAX_PEDS = 2
N_SECTORS = 16
N_GOALS = 3
N_WALLS = 3  # partition boxes (1-2 doorways -> 2-3 boxes, padded)
WALL_THICKNESS = 0.1
GOAL_RADIUS = 0.3
SUCCESS_SPEED = 0.2
JERK_LIMIT = 5.0  # m/s^3 over 0.1 s; raised from 2.0, see docs/envs/wheelchair.md
# the simulated user's doorway manoeuvre **[design]** (WheelchairSCVecEnv._door_frame,
# _door_check, intended_joystick; docs/envs/wheelchair.md "Human" and "Calibration")
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
A_TIP = 9.81 * (0.55 / 2) / 0.55  # g (b/2)/h ~ 4.9 m/s^2

WHEELCHAIR_CONSTRAINTS = ConstraintSet(
    [
        Constraint(
            "collision",
            "any footprint overlap with a wall, furniture or a pedestrian",
            threshold="d_min < 0",
            source="Safety-Gym hazard analogue",
        ),
        Constraint(
            "near_miss",
            "passing closer than 0.10 m at speed",
            threshold="0 <= d_min < 0.10 m and v > 0.3 m/s",
            source="design",
        ),
        Constraint(
            "comfort",
            "uncomfortable acceleration or jerk (0.1 s means)",
            threshold="|a_long| > 1.0 or |a_lat| > 1.0 m/s^2 or |jerk| > 5.0 m/s^3",
            source="de Winkel et al. 2023; Gulati et al. 2013",
        ),
        Constraint(
            "tip_risk",
            "horizontal acceleration above half the static tipping limit",
            threshold="|(a_long, a_lat)| > 0.5 g (b/2)/h = 2.45 m/s^2",
            source="ISO 7176-1/-2 stability geometry, design margin",
        ),
        Constraint(
            "social",
            "fast inside a pedestrian's personal zone",
            threshold="v > 0.5 m/s within 0.8 m of a pedestrian",
            source="Hall 1966 proxemics",
        ),
    ],
    limit=15.0,
    strict_limit=6.0,
    combine_mode="max",
    episode_length=EPISODE_STEPS,
)

# ------------------------------------------------------------------------------------------------
# Map library


def _box_distance(px, py, box):
    """Euclidean distance from points to an axis-aligned box ``(x0, y0, x1, y1)`` (0 inside)."""
    dx = np.maximum(np.maximum(box[..., 0] - px, px - box[..., 2]), 0)
    dy = np.maximum(np.maximum(box[..., 1] - py, py - box[..., 3]), 0)
    return np.sqrt(dx * dx + dy * dy)


@dataclass
class MapLibrary:
    """Pre-generated maps: geometry, goals, start candidates and geodesic distance fields.

    Arrays (M maps): ``walls`` (M, 3, 4) partition boxes (x0, y0, x1, y1), unused ones far away;
    ``discs`` (M, 10, 3) (x, y, r), unused ones far away with r = 0; ``goals`` (M, 3, 2);
    ``starts`` (M, 3, S, 2) start candidates per goal (turning circle free, >= 2.5 m geodesic
    from that goal); ``dist`` (M, 3, G, G) float32 geodesic distance (m) to each goal on the
    ``cell`` grid (cell centres at (i + 0.5) cell), obstacles inflated by the chair radius
    (cells closer than the radius cost ``inflated_cost`` x, cells inside obstacles are
    unreachable and hold the largest finite value); ``nav`` the same with cells closer than
    ``comfort_clearance`` also penalised (the routes the simulated user prefers: room to turn);
    ``look`` (M, 3, G, G) int16 the flat index of the cell ``lookahead_cells`` further along the
    preferred route (the user's pure-pursuit target); ``halves`` (M, 2, 4) the two half-rooms (for pedestrians);
    ``door_width`` (M,) narrowest doorway; ``partition`` (M, 3) (axis, coordinate, n_doors).
    """

    params: MapParams
    walls: np.ndarray
    discs: np.ndarray
    goals: np.ndarray
    starts: np.ndarray
    dist: np.ndarray
    nav: np.ndarray
    look: np.ndarray
    halves: np.ndarray
    door_width: np.ndarray
    doors: np.ndarray
    min_path_clearance: np.ndarray

    @property
    def key(self) -> str:
        return _params_key(self.params)

    def clearance_grid(self, m: int, chair_radius: float = 0.0) -> np.ndarray:
        """(G, G) distance from each cell centre to the nearest obstacle surface, minus radius."""
        return _clearance(self.params, self.walls[m], self.discs[m]) - chair_radius


def _params_key(p: MapParams) -> str:
    blob = json.dumps(asdict(p), sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def _cell_centres(p: MapParams) -> tuple[np.ndarray, np.ndarray]:
    g = round(p.room / p.cell)
    c = (np.arange(g) + 0.5) * p.cell
    # index [iy, ix]
    return np.meshgrid(c, c, indexing="xy")


def _clearance(p: MapParams, walls: np.ndarray, discs: np.ndarray) -> np.ndarray:
    X, Y = _cell_centres(p)
    d = np.minimum(np.minimum(X, p.room - X), np.minimum(Y, p.room - Y))
    for b in walls:
        inside = (X >= b[0]) & (X <= b[2]) & (Y >= b[1]) & (Y <= b[3])
        d = np.minimum(d, np.where(inside, -0.01, _box_distance(X, Y, b)))
    for x, y, r in discs:
        d = np.minimum(d, np.hypot(X - x, Y - y) - r)
    return d


def _geodesic(
    p: MapParams,
    clear: np.ndarray,
    chair_r: float,
    goal: np.ndarray,
    weighted: bool = True,
    return_lookahead: bool = False,
) -> Any:
    """8-connected Dijkstra from the goal cell.

    ``weighted``: cells within ``comfort_clearance`` cost ``near_cost`` x and cells within the
    chair radius ``inflated_cost`` x (the user's preferred routes); otherwise metric distance
    with only the inflated zone penalised (the progress reward)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import dijkstra

    g = clear.shape[0]
    ok = clear > 0
    # graded costs: keep 0.6 m (room to rotate the 1.1 m footprint) where possible, never
    # closer than the chair radius unless forced (doorways)
    near = p.near_cost if weighted else 1.0
    w = np.where(
        clear >= p.comfort_clearance,
        1.0,
        np.where(clear >= chair_r, near, p.inflated_cost),
    )
    idx = np.arange(g * g).reshape(g, g)
    rows, cols, vals = [], [], []
    for dy, dx in ((0, 1), (1, 0), (1, 1), (1, -1)):
        ys = slice(0, g - dy)
        yd = slice(dy, g)
        xs = slice(max(0, -dx), g - max(0, dx))
        xd = slice(max(0, dx), g - max(0, -dx))
        a, b = idx[ys, xs].ravel(), idx[yd, xd].ravel()
        valid = ok[ys, xs].ravel() & ok[yd, xd].ravel()
        length = p.cell * (np.sqrt(2.0) if dx and dy else 1.0)
        cost = length * 0.5 * (w[ys, xs].ravel() + w[yd, xd].ravel())
        rows += [a[valid], b[valid]]
        cols += [b[valid], a[valid]]
        vals += [cost[valid], cost[valid]]
    graph = coo_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(g * g,) * 2
    ).tocsr()
    gi = np.clip((goal / p.cell).astype(int), 0, g - 1)
    d, pred = dijkstra(graph, indices=gi[1] * g + gi[0], return_predecessors=True)
    d = d.reshape(g, g)
    finite = np.isfinite(d)
    d[~finite] = d[finite].max() + 1.0
    if not return_lookahead:
        return d.astype(np.float32)
    # lookahead: the cell `lookahead_cells` steps further along the shortest path (pointer
    # jumping over the predecessor tree, which points towards the goal)
    nxt = np.where(pred < 0, np.arange(g * g), pred)
    tgt = np.arange(g * g)
    for _ in range(p.lookahead_cells):
        tgt = nxt[tgt]
    return d.astype(np.float32), tgt.reshape(g, g).astype(np.int16)


def _connected(mask: np.ndarray, seed_cells: np.ndarray) -> np.ndarray:
    """4-connected component of ``mask`` containing the seed cells (flood fill)."""
    from scipy.ndimage import label

    lab, _ = label(mask)
    ids = {int(lab[iy, ix]) for ix, iy in seed_cells}
    ids.discard(0)
    return np.isin(lab, list(ids)) if ids else np.zeros_like(mask)


def _generate_map(p: MapParams, rng: np.random.Generator, chair_r: float) -> dict[str, Any] | None:
    room, cell = p.room, p.cell
    G = round(room / cell)
    axis = int(rng.integers(2))  # 0: vertical partition x = c, 1: horizontal y = c
    c = (int(rng.integers(30, 50)) + 0.5) * cell  # on a cell-centre line
    n_doors = int(rng.integers(1, 3))
    widths = rng.uniform(*p.door_width, size=n_doors)
    # door centres on cell centres, 1.0 m from the outer walls, doors >= 1.5 m apart
    for _ in range(50):
        centres = (rng.integers(10, 70, size=n_doors) + 0.5) * cell
        if n_doors == 1 or abs(centres[0] - centres[1]) > 1.5 + widths.sum() / 2:
            break
    else:
        return None
    order = np.argsort(centres)
    centres, widths = centres[order], widths[order]
    # partition boxes along the free coordinate t in [0, room] minus the door gaps
    spans, t0 = [], 0.0
    for tc, w in zip(centres, widths, strict=True):
        spans.append((t0, tc - w / 2))
        t0 = tc + w / 2
    spans.append((t0, room))
    walls = np.full((N_WALLS, 4), 1e3, np.float64)
    walls[:, 2:] += 1.0
    h = WALL_THICKNESS / 2
    for k, (a, b) in enumerate(spans):
        walls[k] = (c - h, a, c + h, b) if axis == 0 else (a, c - h, b, c + h)
    doors = np.zeros((2, 3))  # (x, y, width) of each door (second may be empty)
    for k, (tc, w) in enumerate(zip(centres, widths, strict=True)):
        doors[k] = (c, tc, w) if axis == 0 else (tc, c, w)
    # goals: a doorway (in front of an outer wall), a table, a bed; each with a free turning
    # circle, one goal on each side of the partition at least
    n_discs = int(rng.integers(p.n_discs[0], p.n_discs[1] + 1))
    discs = np.zeros((p.max_discs, 3))
    discs[:, :2] = 1e3
    no_discs = _clearance(p, walls, np.zeros((0, 3)))
    goals = np.zeros((N_GOALS, 2))
    X, Y = _cell_centres(p)
    side = (X if axis == 0 else Y) < c
    for k in range(N_GOALS):
        want_side = k % 2 == 0
        cand = (no_discs > p.turn_clearance + 0.05) & (side == want_side)
        if k == 0:  # the doorway goal: within 1.0 m of an outer wall
            near = np.minimum(np.minimum(X, room - X), np.minimum(Y, room - Y)) < 1.0
            cand &= near
        for g_prev in goals[:k]:
            cand &= np.hypot(X - g_prev[0], Y - g_prev[1]) > 2.5
        ys, xs = np.nonzero(cand)
        if len(xs) == 0:
            return None
        j = int(rng.integers(len(xs)))
        goals[k] = (X[ys[j], xs[j]], Y[ys[j], xs[j]])
    # furniture discs away from doors, goals' turning circles and each other
    placed = 0
    for _ in range(400):
        if placed == n_discs:
            break
        r = rng.uniform(*p.disc_radius)
        x, y = rng.uniform(r + 0.1, room - r - 0.1, size=2)
        if any(np.hypot(x - d[0], y - d[1]) < r + 1.0 + d[2] / 2 for d in doors if d[2] > 0):
            continue
        if (np.hypot(goals[:, 0] - x, goals[:, 1] - y) < r + p.turn_clearance + 0.05).any():
            continue
        if (
            placed
            and (
                np.hypot(discs[:placed, 0] - x, discs[:placed, 1] - y) < discs[:placed, 2] + r + 0.2
            ).any()
        ):
            continue
        if _box_distance(x, y, walls).min() < r + 0.05:
            continue
        discs[placed] = (x, y, r)
        placed += 1
    if placed < p.n_discs[0]:
        return None
    clear = _clearance(p, walls, discs)
    # verification: a path of width >= the narrowest door (centre clearance >= w_min/2) joins
    # all goals (4-connected, so no diagonal corner-cutting)
    w_min = float(widths.min())
    wide = clear >= w_min / 2 - 1e-6
    gcells = np.clip((goals / cell).astype(int), 0, G - 1)
    comp = _connected(wide, gcells[:1])
    if not all(comp[iy, ix] for ix, iy in gcells):
        return None
    dist = np.stack([_geodesic(p, clear, chair_r, g, weighted=False) for g in goals])
    navs = [_geodesic(p, clear, chair_r, g, weighted=True, return_lookahead=True) for g in goals]
    nav = np.stack([n[0] for n in navs])
    look = np.stack([n[1] for n in navs])
    # start candidates per goal: turning circle free, reachable, >= min_start_goal away
    starts = np.zeros((N_GOALS, p.n_starts, 2))
    reach = comp & (clear >= p.turn_clearance)
    for k in range(N_GOALS):
        ys, xs = np.nonzero(reach & (dist[k] >= p.min_start_goal) & (dist[k] < 1e3))
        if len(xs) < p.n_starts:
            return None
        pick = rng.choice(len(xs), size=p.n_starts, replace=False)
        starts[k] = np.stack([X[ys[pick], xs[pick]], Y[ys[pick], xs[pick]]], axis=1)
    if axis == 0:
        halves = np.array([[0, 0, c - h, room], [c + h, 0, room, room]])
    else:
        halves = np.array([[0, 0, room, c - h], [0, c + h, room, room]])
    return {
        "walls": walls,
        "discs": discs,
        "goals": goals,
        "starts": starts,
        "dist": dist,
        "nav": nav,
        "look": look,
        "halves": halves,
        "door_width": w_min,
        "doors": doors,
        "min_path_clearance": float(w_min / 2),
    }


def build_map_library(p: MapParams) -> MapLibrary:
    """Generate ``p.n_maps`` verified maps (deterministic in ``p``)."""
    chair_r = p.chair_radius
    rng = np.random.default_rng(p.seed)
    maps: list[dict[str, Any]] = []
    tries = 0
    while len(maps) < p.n_maps:
        tries += 1
        if tries > 50 * p.n_maps:
            raise RuntimeError("map generation keeps failing; check MapParams")
        m = _generate_map(p, rng, chair_r)
        if m is not None:
            maps.append(m)
    stack = {k: np.stack([m[k] for m in maps]) for k in maps[0]}
    return MapLibrary(
        params=p,
        walls=stack["walls"].astype(np.float32),
        discs=stack["discs"].astype(np.float32),
        goals=stack["goals"].astype(np.float32),
        starts=stack["starts"].astype(np.float32),
        dist=stack["dist"].astype(np.float32),
        nav=stack["nav"].astype(np.float32),
        look=stack["look"].astype(np.int16),
        halves=stack["halves"].astype(np.float32),
        door_width=stack["door_width"].astype(np.float32),
        doors=stack["doors"].astype(np.float32),
        min_path_clearance=stack["min_path_clearance"].astype(np.float32),
    )


_LIBRARIES: dict[str, MapLibrary] = {}
_ARRAYS = (
    "walls",
    "discs",
    "goals",
    "starts",
    "dist",
    "nav",
    "look",
    "halves",
    "door_width",
    "doors",
    "min_path_clearance",
)


def get_map_library(p: MapParams, use_cache: bool = True) -> MapLibrary:
    """The library for ``p``: from memory, else from the file cache, else built and cached.

    The file is ``<cache>/wheelchair_maps_<hash>.npz`` (:func:`saferl.utils.cache_dir`), keyed
    by a hash of ``p``, written atomically (:func:`saferl.utils.atomic_write`). A corrupt or unwritable cache falls back to building.
    """
    key = _params_key(p)
    if key in _LIBRARIES:
        return _LIBRARIES[key]
    path = cache_dir() / f"wheelchair_maps_{key}.npz"
    lib = None
    if use_cache and path.exists():
        try:
            with np.load(path) as z:
                lib = MapLibrary(params=p, **{k: z[k] for k in _ARRAYS})
            if lib.walls.shape[0] != p.n_maps:
                lib = None
        except (OSError, ValueError, KeyError):
            lib = None
    if lib is None:
        lib = build_map_library(p)
        if use_cache:
            arrays = {k: getattr(lib, k) for k in _ARRAYS}
            try:
                atomic_write(path, lambda fh: np.savez(fh, **arrays))
            except OSError:
                pass  # read-only cache dir: keep it in memory only
    _LIBRARIES[key] = lib
    return lib


def chair_substep(x, y, psi, v, w, vc, wc, chair: ChairParams) -> None:
    """Advance the chair by ``chair.dt`` in place (all float32 arrays of the same shape).

    Motor controller: first-order lags towards the command (exact discretisation of
    ``v' = (v_c - v) / tau_v``), rate-limited by ``a_acc`` when speeding up and ``a_dec`` when
    slowing down, and by ``alpha_max`` for the turn rate; drive-wheel speeds ``v -+ omega b/2``
    are limited to ``v_wheel_max`` by scaling the command ``(v_c, omega_c)`` (curvature
    preserved) and, during transients, the state ``(v, omega)``. The
    pose then follows the exact unicycle arc for constant ``(v, omega)`` over ``dt``.
    """
    c = chair
    dt = f32(c.dt)
    half_b = f32(c.track / 2)
    # the controller scales wheel-speed commands beyond the limit (curvature preserved) ...
    wheel_c = np.abs(vc) + np.abs(wc) * half_b
    sc = np.minimum(f32(1), f32(c.v_wheel_max) / np.maximum(wheel_c, f32(1e-6)))
    vc = vc * sc
    wc = wc * sc
    kv = f32(1 - np.exp(-c.dt / c.tau_v))
    kw = f32(1 - np.exp(-c.dt / c.tau_omega))
    dv = (vc - v) * kv
    lim = np.where(dv * v >= 0, f32(c.a_acc), f32(c.a_dec)) * dt
    v += np.clip(dv, -lim, lim)
    w += np.clip((wc - w) * kw, -f32(c.alpha_max) * dt, f32(c.alpha_max) * dt)
    # ... and the wheels never exceed it during the lagged transient either
    wheel = np.abs(v) + np.abs(w) * half_b
    scale = np.minimum(f32(1), f32(c.v_wheel_max) / np.maximum(wheel, f32(1e-6)))
    v *= scale
    w *= scale
    arc_step(x, y, psi, v, w, dt)


def arc_step(x, y, psi, v, w, dt) -> None:
    """Exact unicycle arc for constant (v, omega) over dt, in place (chord form, stable at 0)."""
    dpsi = w * dt
    chord = v * dt * np.sinc(dpsi / TWO_PI)  # sin(dpsi/2) / (dpsi/2)
    mid = psi + f32(0.5) * dpsi
    x += chord * np.cos(mid)
    y += chord * np.sin(mid)
    psi += dpsi


# ------------------------------------------------------------------------------------------------
# The batched environment


def _door_table(lib: MapLibrary) -> np.ndarray:
    """(M, 3, 2, 5) float32 per map, goal and doorway: centre (x, y), the partition normal
    pointing to the goal's side (nx, ny) and the half width (0 for an absent second door)."""
    room = lib.params.room
    axis0 = lib.halves[:, 0, 2] < room - 1e-3  # vertical partition x = c (else horizontal)
    nrm = np.where(axis0[:, None], [1.0, 0.0], [0.0, 1.0])  # (M, 2)
    c = lib.doors[:, 0, :2]  # a point on the partition
    side = np.sign(((lib.goals - c[:, None, :]) * nrm[:, None, :]).sum(axis=2))  # (M, 3)
    side[side == 0] = 1.0
    T = np.zeros((lib.goals.shape[0], N_GOALS, 2, 5), np.float32)
    T[..., 0:2] = lib.doors[:, None, :, 0:2]
    T[..., 2:4] = (side[:, :, None] * nrm[:, None, :])[:, :, None, :]
    T[..., 4] = lib.doors[:, None, :, 2] * 0.5
    return T


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

    Observation (44 float32, §2.6; ``assist`` appends 5 and ``privileged_obs`` then 7),
    action (3 float32 in [-1, 1], §2.5), reward (§2.7),
    ``info["cost_components"]`` (§2.8), ``info["cost_magnitude"]`` (N,) float32 (penetration
    depth + near-miss shortfall + acceleration excess), ``info["success"]`` (N,) bool,
    ``info["impairment"]`` (N,) int8 level index.

    Curricula: :meth:`set_options` changes ``impairment`` (a level name, ``"random"`` or
    ``None`` = sampled per episode) and ``challenge`` for the episodes that start afterwards.
    Each instance keeps the map library of the challenge its episode began with
    (``episode_challenge`` (N,) int8, index into ``CHALLENGES``; ``map_id`` indexes that
    library); another challenge's library is loaded on first use and the lookup tables hold
    every library loaded so far.
    """

    SCRIPTED_POLICIES: ClassVar[dict[str, Callable[[], ScriptedPolicy]]] = {}
    #: readable from the class (``saferl envs`` lists it without building the map library)
    constraints: ConstraintSet = WHEELCHAIR_CONSTRAINTS
    OBS_DIM = 44
    #: observation dims that ``action_mode="assist"`` appends after ``OBS_DIM`` (the planner's
    #: command (v, omega) / u_max and its posterior over the three goals)
    ASSIST_OBS_DIMS = 5
    #: the planner's goal inference (Dragan & Srinivasa 2013 style): joystick likelihood width
    #: and the forgetting factor of the log-posterior (shared with the ``autopilot`` baseline)
    PLANNER_SIGMA = 0.35
    PLANNER_FORGET = 0.97
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
        self._priv_at = self.OBS_DIM + (self.ASSIST_OBS_DIMS if self._assist else 0)
        obs_dim = self._priv_at + self.privileged_obs_dims
        low = np.full(obs_dim, -10.0, np.float32)
        high = np.full(obs_dim, 10.0, np.float32)
        super().__init__(
            int(num_envs) if isinstance(num_envs, (int, np.integer)) else num_envs,
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
            self._door_table = _door_table(lib)
        else:
            self._dist_flat = np.concatenate([b.dist.reshape(-1) for b in libs])
            self._nav_flat = np.concatenate([b.nav.reshape(-1) for b in libs])
            self._look_flat = np.concatenate([b.look.reshape(-1) for b in libs])
            self._door_table = np.concatenate([self._door_table, _door_table(lib)])
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
        """Bilinear geodesic distance (and its gradient) at (x, y) for the given goals.

        ``nav=True`` reads the user's preferred-route field instead of the metric one.
        ``map_id``: the map's row in the lookup tables of all loaded libraries (``_gmap``)."""
        G, h = self.G, self.maps.params.cell
        gx = np.clip(x / f32(h) - f32(0.5), 0, G - 1.001)
        gy = np.clip(y / f32(h) - f32(0.5), 0, G - 1.001)
        ix = gx.astype(np.int64)
        iy = gy.astype(np.int64)
        fx = (gx - ix).astype(np.float32)
        fy = (gy - iy).astype(np.float32)
        base = (map_id * N_GOALS + goal_idx) * (G * G) + iy * G + ix
        D = self._nav_flat if nav else self._dist_flat
        d00, d10, d01, d11 = D[base], D[base + 1], D[base + G], D[base + G + 1]
        val = (d00 * (1 - fx) + d10 * fx) * (1 - fy) + (d01 * (1 - fx) + d11 * fx) * fy
        if not grad:
            return val
        ddx = ((d10 - d00) * (1 - fy) + (d11 - d01) * fy) / f32(h)
        ddy = ((d01 - d00) * (1 - fx) + (d11 - d10) * fx) / f32(h)
        return val, ddx, ddy

    def _lookahead(self, x, y, goal_idx, map_id):
        G, h = self.G, f32(self.maps.params.cell)
        gx = np.clip(x / h - f32(0.5), 0, G - 1.001)
        gy = np.clip(y / h - f32(0.5), 0, G - 1.001)
        ix = gx.astype(np.int64)
        iy = gy.astype(np.int64)
        fx = (gx - ix).astype(np.float32)
        fy = (gy - iy).astype(np.float32)
        base = (map_id * N_GOALS + goal_idx) * (G * G) + iy * G + ix
        L = self._look_flat
        tx = np.zeros_like(x)
        ty = np.zeros_like(x)
        for off, wgt in (
            (0, (1 - fx) * (1 - fy)),
            (1, fx * (1 - fy)),
            (G, (1 - fx) * fy),
            (G + 1, fx * fy),
        ):
            t = L[base + off].astype(np.int64)
            tx += wgt * ((t % G).astype(np.float32) + f32(0.5)) * h
            ty += wgt * ((t // G).astype(np.float32) + f32(0.5)) * h
        return tx, ty

    def _door_frame(self, x, y, goal_idx, map_id):
        """The doorway the user is lining up with or leaving, in its frame.

        Returns (in_zone, s, e, nx, ny, half_width): ``s`` the signed distance of the chair centre along the
        door normal ``(nx, ny)`` (pointing to the goal's side), ``e`` the lateral offset from the
        door's centre line. ``in_zone``: ``-DOOR_APPROACH < s < 0`` and ``|e| < DOOR_LATERAL``
        (approaching a doorway that leads to the goal's side), or ``0 <= s < DOOR_EXIT`` and
        within the door's width (the rear of the footprint is still in the doorway)."""
        T = self._door_table[map_id, goal_idx]  # (n, 2, 5)
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

    def _door_check(self, frame) -> None:
        """The user's go/no-go check at a doorway's entry (updates ``retry_timer``).

        About to put the front of the footprint into the doorway (``s`` within 0.2 m after
        ``-DOOR_GATE``, moving forward) and the footprint would not clear the jambs if driven
        straight on (``|e| + 0.5 |sin θ|`` above the gap each side minus ``DOOR_SPARE``) -> back
        up to ``DOOR_GATE + DOOR_BACK`` before the door plane (at most ``DOOR_RETRY`` s, or until
        the rear sectors read < 0.1 m) and line up again; after ``DOOR_MAX_TRIES`` failed checks
        at the same doorway (counted until the chair leaves its zone) the user drives in."""
        door, s, e, nx, ny, hw = frame
        t = self.retry_timer
        t -= f32(CONTROL_DT)
        # stop backing up at the line-up distance, or when the rear is getting close
        t[~door | (s < f32(-DOOR_GATE - DOOR_BACK))] = 0.0
        np.maximum(t, 0, out=t)
        busy = np.flatnonzero(t > 0)
        if busy.size:
            rear = self.sectors[busy, 6:10].min(axis=1)
            t[busy[rear < f32(0.1)]] = 0.0
        self.door_tries[~door] = 0.0
        entry = np.flatnonzero(
            door & (s > f32(-DOOR_GATE)) & (s < f32(-DOOR_GATE + 0.2)) & (self.v > 0.02) & (t <= 0)
        )
        if not entry.size:
            return
        psi = self.psi[entry]
        sin_t = nx[entry] * np.sin(psi) - ny[entry] * np.cos(psi)
        tol = hw[entry] - f32(self.chair.disc_radius) - f32(DOOR_SPARE)
        bad = np.abs(e[entry]) + f32(0.5) * np.abs(sin_t) > tol
        # after DOOR_MAX_TRIES failed line-ups at this doorway the user drives in anyway
        retry = entry[bad & (self.door_tries[entry] < f32(DOOR_MAX_TRIES))]
        t[retry] = f32(DOOR_RETRY)
        self.door_tries[retry] += f32(1)

    def joystick_to_command(self, j: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Joystick (..., 2) = (turn, forward) -> (v_c, omega_c) with the PWC's mapping."""
        c = self.chair
        jx, jy = j[..., 0], j[..., 1]
        vc = np.where(jy >= 0, f32(c.v_max), f32(c.v_rev)) * jy
        wmax = f32(c.omega_max0) * (f32(1) - f32(0.5 / c.v_max) * np.abs(v))
        return vc.astype(np.float32), (wmax * jx).astype(np.float32)

    def intended_joystick(self, goal_idx: np.ndarray, idx: np.ndarray | None = None) -> np.ndarray:
        """The joystick a perfect-perception user would push now towards ``goal_idx`` (N, 2).

        Pure pursuit along the preferred route, the doorway line-up (a carrot on the centre line
        of a doorway to the goal's side), social and obstacle repulsion, speed slowing with
        clearance. The user's reactive states (bump back-off, doorway back-up, set by the step
        from the true goal) are read, not changed, so this can be evaluated for other goals."""
        return self._intended_joystick(goal_idx, idx)

    def candidate_joysticks(self, idx: np.ndarray | None = None) -> np.ndarray:
        """:meth:`intended_joystick` towards each of the three goals, (N or len(idx), 3, 2)."""
        rows = self._all_idx if idx is None else np.asarray(idx, np.int64)
        n = len(rows)
        # one pass over the (goal, instance) pairs: goal-major rows, then (n, 3, 2)
        goals = np.repeat(np.arange(N_GOALS, dtype=np.int64), n)
        j = self._intended_joystick(goals, np.tile(rows, N_GOALS))
        return j.reshape(N_GOALS, n, 2).transpose(1, 0, 2)

    def _plan(self, idx: np.ndarray | None = None) -> None:
        """The chair's planner (``action_mode="assist"``), the ``autopilot`` baseline's: update
        the goal log-posterior with the mean joystick of the step just taken and propose, for
        the next step, the command an ideal user would give towards the most likely goal."""
        sel = slice(None) if idx is None else idx
        cands = self.candidate_joysticks(idx)
        logp = self.planner_logp[sel]
        j = infer_goal(logp, self.joy[sel, 1], cands, self.PLANNER_SIGMA, self.PLANNER_FORGET)
        self.planner_logp[sel] = logp
        self.planner_u[sel] = np.stack(self.joystick_to_command(j, self.v[sel]), axis=1)

    def _intended_joystick(self, goal_idx, idx=None, door_frame=None) -> np.ndarray:
        sel = (lambda a: a) if idx is None else (lambda a: a[idx])
        x, y, psi, v = sel(self.x), sel(self.y), sel(self.psi), sel(self.v)
        # pure pursuit: head for the point ~0.8-1.1 m further along the preferred route
        # (bilinear blend of the four neighbouring cells' lookahead targets)
        mid = sel(self._gmap)
        d_goal = self._geodesic(x, y, goal_idx, mid)
        tx, ty = self._lookahead(x, y, goal_idx, mid)
        gxy = self.goal_xy[idx if idx is not None else slice(None)]
        gsel = gxy[np.arange(x.shape[0]), goal_idx]
        near_goal = d_goal < f32(0.6)
        tx = np.where(near_goal, gsel[:, 0], tx)
        ty = np.where(near_goal, gsel[:, 1], ty)
        # doorway line-up: in the approach zone of a doorway to the goal's side, and until the
        # rear of the footprint has left it, pursue a carrot on the door's centre line
        if door_frame is None:
            door_frame = self._door_frame(x, y, goal_idx, mid)
        door, s_door, e_door, nx_d, ny_d, _ = door_frame
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
        ped, on = sel(self.ped), sel(self.ped_on)
        for k in range(MAX_PEDS):
            rx = x - ped[:, k, 0]
            ry = y - ped[:, k, 1]
            dist = np.sqrt(rx * rx + ry * ry) + f32(1e-6)
            push = np.where(on[:, k], f32(1.5) * np.exp(-(dist - f32(0.6)) / f32(0.4)), 0)
            dx += push * rx / dist
            dy += push * ry / dist
        # repulsion from the obstacles the user sees (sector clearances, ego frame)
        sect = sel(self.sectors)
        rep = np.exp(-sect / f32(0.1)) * f32(0.4)
        rx_e = -(rep * self._sector_cos).sum(axis=1)
        ry_e = -(rep * self._sector_sin).sum(axis=1)
        cpsi, spsi = np.cos(psi), np.sin(psi)
        dx += cpsi * rx_e - spsi * ry_e
        dy += spsi * rx_e + cpsi * ry_e
        desired = np.arctan2(dy, dx)
        err = (desired - psi + np.pi) % TWO_PI - np.pi
        c = self.chair
        d_clear = sel(self.d_min) + f32(c.disc_radius)
        v_des = sel(self.v_pref) * np.clip((d_clear - f32(0.3)) / f32(0.8), 0.15, 1.0)
        v_des = np.minimum(v_des, f32(0.6) * d_goal + f32(0.05))
        v_des = np.where(door, np.minimum(v_des, f32(DOOR_SPEED)), v_des)
        v_des *= np.maximum(np.cos(err), 0) ** 2
        # reactive recovery: back away from an obstacle touching the front of the footprint
        front = np.minimum(sect[:, 0], sect[:, 15])
        rear = sect[:, 6:10].min(axis=1)
        v_des = np.where((front < f32(0.05)) & (rear > f32(0.3)), f32(-0.25), v_des)
        # after a bump the user backs off for a moment (straight back if there is room)
        bumped = sel(self.bump_timer) > 0
        back_off = np.where(sel(self.bump_front), f32(-0.3), f32(0.2))
        v_des = np.where(bumped, back_off, v_des)
        # not lined up at the doorway's entry: back up slowly, turning to the door's axis
        retry = np.flatnonzero(door & (sel(self.retry_timer) > 0) & ~bumped)
        if retry.size:
            v_des[retry] = f32(-DOOR_RETRY_SPEED)
            axis = np.arctan2(ny_d[retry], nx_d[retry])
            err[retry] = (axis - psi[retry] + np.pi) % TWO_PI - np.pi
        wmax = f32(c.omega_max0) * (f32(1) - f32(0.5 / c.v_max) * np.abs(v))
        # crossover-model gain: the user lowers the steering gain as their loop delay grows
        hp = self.human.params
        lag = sel(hp["reaction_delay"]) + sel(hp["hand_lag"]) + f32(c.tau_omega)
        gain = np.minimum(f32(2.0), f32(0.7) / lag)
        w_des = np.clip(gain * err, -wmax, wmax)
        jx = w_des / wmax
        jy = v_des / np.where(v_des >= 0, f32(c.v_max), f32(c.v_rev))
        r = np.sqrt(jx * jx + jy * jy)
        s = np.minimum(f32(1), f32(1) / np.maximum(r, f32(1e-6)))
        return np.stack([jx * s, jy * s], axis=1).astype(np.float32)

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
        clear = np.clip(dC - r_c - off * cosb, 0, 4)
        n = x.shape[0]
        sectors = np.full((n, N_SECTORS), 4.0, np.float32)
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
        frame = self._door_frame(self.x, self.y, self.goal, self._gmap)
        self._door_check(frame)
        j_int = self._intended_joystick(self.goal, None, frame)
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
        a_tot = np.sqrt(self.a_long**2 + self.a_lat**2)
        speed = np.abs(v)
        collision = hit | (self.d_min < 0)
        near = (~collision) & (self.d_min < 0.10) & (speed > 0.3)
        comfort = (
            (np.abs(self.a_long) > 1.0) | (np.abs(self.a_lat) > 1.0) | (np.abs(jerk) > JERK_LIMIT)
        )
        tip = a_tot > f32(0.5 * A_TIP)
        dped = np.full(n, 1e3, np.float32)
        for k in range(MAX_PEDS):
            dd = np.hypot(self.x - self.ped[:, k, 0], self.y - self.ped[:, k, 1])
            dped = np.minimum(dped, np.where(self.ped_on[:, k], dd, f32(1e3)))
        social = (speed > 0.5) & (dped < 0.8)
        components = {
            "collision": collision.astype(np.float32),
            "near_miss": near.astype(np.float32),
            "comfort": comfort.astype(np.float32),
            "tip_risk": tip.astype(np.float32),
            "social": social.astype(np.float32),
        }
        magnitude = (
            pen
            + np.where(near, f32(0.10) - self.d_min, 0)
            + np.maximum(np.abs(self.a_long) - 1.0, 0)
            + np.maximum(np.abs(self.a_lat) - 1.0, 0)
            + np.maximum(np.abs(jerk) - JERK_LIMIT, 0) * f32(0.1)
        ).astype(np.float32)
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
        sel = (lambda a: a) if idx is None else (lambda a: a[idx])
        c = self.chair
        x, y, psi = sel(self.x), sel(self.y), sel(self.psi)
        n = x.shape[0]
        obs = np.empty((n, self.single_observation_space.shape[0]), np.float32)
        obs[:, 0] = sel(self.v) / f32(c.v_max)
        obs[:, 1] = sel(self.omega) / f32(c.omega_max0)
        obs[:, 2] = sel(self.a_long) * f32(0.5)
        obs[:, 3] = sel(self.a_lat) * f32(0.5)
        obs[:, 4:10] = sel(self.joy).reshape(n, 6)
        obs[:, 10:12] = sel(self.prev_u) / self._u_max
        obs[:, 12] = sel(self.prev_alpha)
        obs[:, 13:29] = sel(self.sectors) * f32(0.25)
        cs, sn = np.cos(psi)[:, None], np.sin(psi)[:, None]
        g = sel(self.goal_xy)
        dx, dy = g[:, :, 0] - x[:, None], g[:, :, 1] - y[:, None]
        obs[:, 29:35:2] = (cs * dx + sn * dy) * f32(1 / 8)
        obs[:, 30:35:2] = (-sn * dx + cs * dy) * f32(1 / 8)
        ped, on = sel(self.ped), sel(self.ped_on)
        pdx, pdy = ped[:, :, 0] - x[:, None], ped[:, :, 1] - y[:, None]
        pdist = np.where(on, pdx * pdx + pdy * pdy, f32(1e9))
        order = np.argsort(pdist, axis=1) if MAX_PEDS > 1 else np.zeros((n, 1), np.int64)
        rows = np.arange(n)[:, None]
        pdx, pdy, on_s = pdx[rows, order], pdy[rows, order], on[rows, order]
        pvx, pvy = ped[:, :, 2][rows, order], ped[:, :, 3][rows, order]
        onf = on_s.astype(np.float32)
        obs[:, 35:43:4] = (cs * pdx + sn * pdy) * f32(0.25) * onf
        obs[:, 36:43:4] = (-sn * pdx + cs * pdy) * f32(0.25) * onf
        obs[:, 37:43:4] = (cs * pvx + sn * pvy) * f32(1 / 1.5) * onf
        obs[:, 38:43:4] = (-sn * pvx + cs * pvy) * f32(1 / 1.5) * onf
        obs[:, 43] = f32(1) - sel(self.elapsed).astype(np.float32) / f32(EPISODE_STEPS)
        if self._assist:
            logp = sel(self.planner_logp)
            post = np.exp(logp - logp.max(axis=1, keepdims=True))
            post /= post.sum(axis=1, keepdims=True)
            obs[:, 44:46] = sel(self.planner_u) / self._u_max
            obs[:, 46:49] = post
        if self.privileged_obs:
            p = self._priv_at
            lv = sel(self.human.level).astype(np.int64)
            obs[:, p : p + 7] = 0.0
            obs[np.arange(n), p + lv] = 1.0
            obs[np.arange(n), p + 4 + sel(self.goal)] = 1.0
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


# ------------------------------------------------------------------------------------------------
# Goal inference (the planner of action_mode="assist" and the autopilot baseline)


def infer_goal(
    logp: np.ndarray, joy: np.ndarray, cands: np.ndarray, sigma: float, forget: float
) -> np.ndarray:
    """One Bayesian update of the goal log-posterior ``logp`` (N, G), in place, and the
    candidate joystick (N, 2) of the most likely goal.

    The likelihood of the observed mean joystick ``joy`` (N, 2) under goal g is
    ``exp(-|joy - cands[:, g]|^2 / (2 sigma^2))`` (Dragan & Srinivasa 2013 style); the
    log-posterior forgets with factor ``forget`` so the estimate can follow a change of mind,
    and a joystick at rest (every axis within 0.05) carries no evidence.
    """
    moving = (np.abs(joy) > 0.05).any(axis=1)
    ll = -((joy[:, None, :] - cands) ** 2).sum(axis=2) / f32(2 * sigma**2)
    logp *= f32(forget)
    logp += np.where(moving[:, None], ll, f32(0))
    best = np.argmax(logp, axis=1)
    return cands[np.arange(len(best)), best]


# ------------------------------------------------------------------------------------------------
# Scripted baselines (§2.10)


class _Base:
    name = "base"

    @staticmethod
    def available(options: Mapping[str, Any]) -> bool:
        """Defined for an env built with ``options``: a command of the robot's own needs
        ``action_mode`` ``blend`` or ``assist``."""
        return options.get("action_mode", "blend") in ("blend", "assist")

    def reset(self, env: WheelchairSCVecEnv) -> None:
        pass

    def _action(self, alpha, v_r, w_r, env: WheelchairSCVecEnv) -> np.ndarray:
        """The env's action for authority ``alpha`` and robot command ``(v_r, w_r)``: in
        ``assist`` mode the correction of the planner's command that gives ``u_r`` (clipped to
        the action box, so within 0.5 u_max of the planner's command).

        Raises:
            ValueError: the baseline is not :meth:`available` in the env's ``action_mode``.
        """
        if not self.available({"action_mode": env.action_mode}):
            raise ValueError(
                f"action_mode: the {self.name} baseline is not defined for {env.action_mode!r}"
            )
        c = env.chair
        if env.action_mode == "assist":
            a1 = (v_r - env.planner_u[:, 0]) / f32(0.5 * c.v_max)
            a2 = (w_r - env.planner_u[:, 1]) / f32(0.5 * c.omega_max0)
        else:
            a1 = np.where(v_r >= 0, v_r / f32(c.v_max), v_r / f32(c.v_rev))
            a2 = w_r / f32(c.omega_max0)
        a = np.stack([np.broadcast_to(f32(2) * alpha - f32(1), v_r.shape), a1, a2], axis=1)
        return np.clip(a, -1, 1).astype(np.float32)


class HumanOnly(_Base):
    """alpha = 1: the user drives alone."""

    name = "human_only"

    @staticmethod
    def available(options: Mapping[str, Any]) -> bool:
        return True  # a0 = 1 (blend, assist) and a zero residual (residual) are the user alone

    def act(self, obs: np.ndarray, env: WheelchairSCVecEnv) -> np.ndarray:
        a = np.zeros((env.num_envs, 3), np.float32)
        a[:, 0] = 1.0
        return a


class Autopilot(_Base):
    """alpha = 0: drive to the most likely goal under a Bayesian posterior from the joystick.

    The likelihood of the observed joystick (mean over the last step) given goal g is
    ``exp(-|j - j_int(g)|^2 / (2 sigma^2))`` with ``j_int(g)`` the joystick an ideal user would
    push towards g (Dragan & Srinivasa 2013 style); the log-posterior is accumulated with a
    forgetting factor so the estimate can follow a change of mind (:func:`infer_goal`). In
    ``action_mode="assist"`` the chair's planner is this computation, and the baseline reads it.
    """

    name = "autopilot"
    alpha = 0.0

    def reset(self, env: WheelchairSCVecEnv) -> None:
        self.logp = np.zeros((env.num_envs, N_GOALS), np.float32)

    def _command(self, obs: np.ndarray, env: WheelchairSCVecEnv) -> tuple[np.ndarray, ...]:
        if env.action_mode == "assist":
            return env.planner_u[:, 0].copy(), env.planner_u[:, 1].copy()
        if getattr(self, "logp", None) is None or self.logp.shape[0] != env.num_envs:
            self.reset(env)
        self.logp[env.elapsed == 0] = 0.0
        j = infer_goal(
            self.logp, obs[:, 6:8], env.candidate_joysticks(), env.PLANNER_SIGMA, env.PLANNER_FORGET
        )
        return env.joystick_to_command(j, env.v)

    def act(self, obs: np.ndarray, env: WheelchairSCVecEnv) -> np.ndarray:
        v_r, w_r = self._command(obs, env)
        return self._action(f32(self.alpha), v_r, w_r, env)


class FixedBlend(Autopilot):
    """alpha = 0.5 between the user and the autopilot."""

    name = "fixed_blend"
    alpha = 0.5


class TremorSwitch(Autopilot):
    """Switched arbitration: the user drives alone (alpha = 1) while the joystick is steady
    (its standard deviation over the last step, obs 8-9, has norm below 0.05), else the
    autopilot drives (alpha = 0)."""

    name = "tremor_switch"
    threshold = 0.05

    def act(self, obs: np.ndarray, env: WheelchairSCVecEnv) -> np.ndarray:
        v_r, w_r = self._command(obs, env)
        steady = np.sqrt((obs[:, 8:10] ** 2).sum(axis=1)) < f32(self.threshold)
        return self._action(np.where(steady, f32(1), f32(0)), v_r, w_r, env)


class SafetyFilter(_Base):
    """The user's command with its speed scaled by the clearance in the heading sectors (VFH-like)."""

    name = "safety_filter"

    @staticmethod
    def available(options: Mapping[str, Any]) -> bool:
        # its command (the user's, slowed) is not within reach of assist's correction of the
        # planner's command
        return options.get("action_mode", "blend") == "blend"

    def act(self, obs: np.ndarray, env: WheelchairSCVecEnv) -> np.ndarray:
        vh, wh = env.joystick_to_command(obs[:, 6:8], env.v)
        sect = obs[:, 13:29] * 4.0
        forward = np.minimum(sect[:, [0, 15]].min(axis=1), sect[:, [1, 14]].min(axis=1) + 0.1)
        backward = sect[:, 7:9].min(axis=1)
        clear = np.where(vh >= 0, forward, backward)
        scale = np.clip((clear - 0.05) / 0.6, 0.0, 1.0)
        return self._action(f32(0.0), vh * scale, wh, env)


WheelchairSCVecEnv.SCRIPTED_POLICIES = {
    "human_only": HumanOnly,
    "autopilot": Autopilot,
    "fixed_blend": FixedBlend,
    "tremor_switch": TremorSwitch,
    "safety_filter": SafetyFilter,
}
