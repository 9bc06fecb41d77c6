"""The wheelchair's world: procedural rooms, their geodesic fields and the on-disk cache.

A library of ``MapParams.n_maps`` verified maps per challenge (an 8 m x 8 m room, a partition wall
with 1-2 doorways, furniture discs, three candidate goals, start candidates), each with its
geodesic distance fields on a 0.1 m grid: ``dist`` (metric, for the progress reward),
``nav`` (the simulated user's preferred routes) and ``look`` (the user's pure-pursuit target).
Built once per parameter set (deterministic in ``MapParams``), cached in memory and in
``<cache dir>/wheelchair_maps_<hash>.npz`` (:func:`get_map_library`). :func:`field_at` and
:func:`lookahead_at` read the fields at (x, y) for a batch of instances; :func:`door_table`
lists each map's doorways per goal. Units: m.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from saferl.utils import atomic_write, cache_dir

__all__ = [
    "MAX_PEDS",
    "N_GOALS",
    "PED_RADIUS",
    "MapLibrary",
    "MapParams",
    "build_map_library",
    "door_table",
    "field_at",
    "get_map_library",
    "lookahead_at",
]

f32 = np.float32

N_GOALS = 3
N_WALLS = 3  # partition boxes (1-2 doorways -> 2-3 boxes, padded)
WALL_THICKNESS = 0.1
PED_RADIUS = 0.25  # m
MAX_PEDS = 2


@dataclass(frozen=True)
class MapParams:
    """Procedural room generator. One library of ``n_maps`` maps per parameter set."""

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


def door_table(lib: MapLibrary) -> np.ndarray:
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


def field_at(
    flat: np.ndarray,
    grid: int,
    cell: float,
    x: np.ndarray,
    y: np.ndarray,
    goal_idx: np.ndarray,
    map_id: np.ndarray,
    grad: bool = False,
) -> Any:
    """Bilinear value (and gradient) of a per-map, per-goal field at points (x, y) (m).

    Args:
        flat: the fields of all loaded maps, flattened ``(maps * N_GOALS * grid * grid,)``.
        grid: cells per side; ``cell``: cell size (m), cell centres at ``(i + 0.5) cell``.
        x, y: float32 ``(n,)`` positions; ``goal_idx``, ``map_id``: int ``(n,)`` rows.
        grad: also return the gradient ``(d/dx, d/dy)`` (field units per m).

    Returns:
        float32 ``(n,)``, or ``(value, ddx, ddy)`` with ``grad``.
    """
    G, h = grid, cell
    gx = np.clip(x / f32(h) - f32(0.5), 0, G - 1.001)
    gy = np.clip(y / f32(h) - f32(0.5), 0, G - 1.001)
    ix = gx.astype(np.int64)
    iy = gy.astype(np.int64)
    fx = (gx - ix).astype(np.float32)
    fy = (gy - iy).astype(np.float32)
    base = (map_id * N_GOALS + goal_idx) * (G * G) + iy * G + ix
    D = flat
    d00, d10, d01, d11 = D[base], D[base + 1], D[base + G], D[base + G + 1]
    val = (d00 * (1 - fx) + d10 * fx) * (1 - fy) + (d01 * (1 - fx) + d11 * fx) * fy
    if not grad:
        return val
    ddx = ((d10 - d00) * (1 - fy) + (d11 - d01) * fy) / f32(h)
    ddy = ((d01 - d00) * (1 - fx) + (d11 - d10) * fx) / f32(h)
    return val, ddx, ddy


def lookahead_at(
    look_flat: np.ndarray,
    grid: int,
    cell: float,
    x: np.ndarray,
    y: np.ndarray,
    goal_idx: np.ndarray,
    map_id: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """The user's pure-pursuit target at (x, y): the bilinear blend of the four neighbouring
    cells' lookahead cells (``MapLibrary.look``, flattened like :func:`field_at`'s ``flat``).

    Returns:
        float32 ``(tx, ty)``, each ``(n,)``, in m.
    """
    G, h = grid, f32(cell)
    gx = np.clip(x / h - f32(0.5), 0, G - 1.001)
    gy = np.clip(y / h - f32(0.5), 0, G - 1.001)
    ix = gx.astype(np.int64)
    iy = gy.astype(np.int64)
    fx = (gx - ix).astype(np.float32)
    fy = (gy - iy).astype(np.float32)
    base = (map_id * N_GOALS + goal_idx) * (G * G) + iy * G + ix
    L = look_flat
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
