"""Rendering: top-view frames (plain numpy) and ``record_episode`` (GIF or PNG frames).

``render_wheelchair(env, i)`` draws instance ``i`` of a :class:`WheelchairSCVecEnv`: walls,
furniture, pedestrians, the three candidate goals (the true one filled), the chair's two-disc
footprint with its heading, the 16-sector proximity ring, and an inset comparing the user's
joystick (orange) with the executed command (blue) in joystick coordinates.
``render_exoskeleton(env, i)`` draws instance ``i`` of an :class:`ExoGaitVecEnv`: the walker's
legs on the belt, the exo torque bars and a lamp per cost component.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["record_episode", "render_exoskeleton", "render_wheelchair"]

_WHITE = (255, 255, 255)
_WALL = (60, 60, 60)
_FURN = (150, 110, 70)
_PED = (200, 60, 160)
_GOAL = (40, 160, 60)
_CHAIR = (40, 90, 200)
_HUMAN = (240, 140, 20)
_BLEND = (40, 90, 200)


class _Canvas:
    def __init__(self, size: int, extent: float) -> None:
        self.img = np.full((size, size, 3), 255, np.uint8)
        self.size = size
        self.scale = size / extent
        yy, xx = np.mgrid[0:size, 0:size]
        self.X = (xx + 0.5) / self.scale
        self.Y = (size - yy - 0.5) / self.scale  # y up

    def _window(self, x0, y0, x1, y1):
        c0 = max(int(x0 * self.scale) - 1, 0)
        c1 = min(int(x1 * self.scale) + 2, self.size)
        r0 = max(int(self.size - y1 * self.scale) - 1, 0)
        r1 = min(int(self.size - y0 * self.scale) + 2, self.size)
        return slice(r0, r1), slice(c0, c1)

    def disc(self, x, y, r, color, ring: float | None = None) -> None:
        win = self._window(x - r, y - r, x + r, y + r)
        d2 = (self.X[win] - x) ** 2 + (self.Y[win] - y) ** 2
        mask = d2 <= r * r
        if ring is not None:
            mask &= d2 >= (r - ring) ** 2
        self.img[win][mask] = color

    def box(self, x0, y0, x1, y1, color) -> None:
        win = self._window(x0, y0, x1, y1)
        X, Y = self.X[win], self.Y[win]
        mask = (X >= x0) & (X <= x1) & (Y >= y0) & (Y <= y1)
        self.img[win][mask] = color

    def line(self, x0, y0, x1, y1, color, width: float = 0.03) -> None:
        n = max(2, int(np.hypot(x1 - x0, y1 - y0) * self.scale * 2))
        for t in np.linspace(0, 1, n):
            self.disc(x0 + t * (x1 - x0), y0 + t * (y1 - y0), width, color)


def render_wheelchair(env: Any, i: int = 0, size: int = 400) -> np.ndarray:
    """(size, size + size // 3, 3) uint8 top view of instance ``i`` (see the module docstring)."""
    room = float(env.maps.params.room)
    cv = _Canvas(size, room)
    for b in env.walls[i]:
        if b[0] < room:
            cv.box(*b, _WALL)
    for x, y, r in env.discs[i]:
        if r > 0:
            cv.disc(x, y, r, _FURN)
    for k, (gx, gy) in enumerate(env.goal_xy[i]):
        true = k == env.goal[i]
        cv.disc(gx, gy, 0.3, _GOAL, ring=None if true else 0.05)
    for k in range(env.ped.shape[1]):
        if env.ped_on[i, k]:
            px, py, vx, vy = env.ped[i, k]
            cv.disc(px, py, 0.25, _PED)
            cv.line(px, py, px + 0.5 * vx, py + 0.5 * vy, _PED, 0.02)
    c = env.chair
    x, y, psi = float(env.x[i]), float(env.y[i]), float(env.psi[i])
    hx, hy = np.cos(psi), np.sin(psi)
    color = (220, 40, 40) if env.d_min[i] <= 0 else _CHAIR
    for s in (1, -1):
        cv.disc(x + s * c.disc_offset * hx, y + s * c.disc_offset * hy, c.disc_radius, color, 0.04)
    cv.line(x, y, x + 0.5 * hx, y + 0.5 * hy, color, 0.03)
    # proximity ring: sector clearances as dots around the chair
    for s in range(16):
        ang = psi + (s + 0.5) * 2 * np.pi / 16
        r = c.disc_radius + c.disc_offset + float(env.sectors[i, s])
        if r < 4:
            cv.disc(x + r * np.cos(ang), y + r * np.sin(ang), 0.04, (120, 120, 120))
    frame = cv.img
    # inset: joystick (turn, forward) vs executed command, in joystick units
    ins = _Canvas(size // 3, 2.2)
    ins.disc(1.1, 1.1, 1.0, (235, 235, 235))
    ins.line(0.1, 1.1, 2.1, 1.1, (200, 200, 200), 0.01)
    ins.line(1.1, 0.1, 1.1, 2.1, (200, 200, 200), 0.01)
    j = env.joy[i, 1]
    u = env.prev_u[i] / env._u_max  # (v, omega) normalised
    ins.line(1.1, 1.1, 1.1 + j[0], 1.1 + j[1], _HUMAN, 0.04)
    ins.line(1.1, 1.1, 1.1 + u[1], 1.1 + u[0], _BLEND, 0.03)
    alpha = float(env.prev_alpha[i])
    bar = np.full((size - size // 3, size // 3, 3), 255, np.uint8)
    h = int((size - size // 3 - 20) * alpha)
    bar[-10 - h : -10, size // 6 - 8 : size // 6 + 8] = _HUMAN
    side = np.concatenate([ins.img, bar], axis=0)
    return np.concatenate([frame, side], axis=1)


def record_episode(
    env_id: str,
    out_path: str | Path,
    policy: Any = None,
    seed: int = 0,
    max_steps: int = 600,
    fps: int = 10,
    **env_options: Any,
) -> Path:
    """Run one episode and write it as a GIF (``.gif``) or a folder of PNG frames.

    Args:
        env_id: ``"WheelchairSC-v0"`` or ``"saferl/WheelchairSC-v0"`` (any registered saferl env
            whose vector class implements ``render_instance``).
        out_path: ``*.gif`` for an animated GIF; anything else is a directory of PNG frames.
        policy: ``None`` (the env's ``human_only`` baseline if it has one, else random actions),
            a scripted-policy name from ``SCRIPTED_POLICIES``, a :class:`ScriptedPolicy`, or a
            callable ``obs (1, d) -> action (1, act_dim)``.
        seed: reset seed.
        max_steps: stop after this many steps (or at the end of the episode).
        env_options: passed to the env constructor (e.g. ``impairment="severe"``).

    Returns:
        The path written.
    """
    import gymnasium as gym
    from PIL import Image

    import saferl.envs  # noqa: F401  (registration)

    full_id = env_id if "/" in env_id else f"saferl/{env_id}"
    if full_id not in gym.registry:
        raise ValueError(f"env_id: unknown environment {env_id!r}")
    env = gym.make_vec(
        full_id,
        num_envs=1,
        vectorization_mode="vector_entry_point",
        render_mode="rgb_array",
        **env_options,
    )
    base = env.unwrapped
    policies = getattr(base, "SCRIPTED_POLICIES", {})
    if policy is None:
        policy = "human_only" if "human_only" in policies else "random"
    if isinstance(policy, str):
        if policy == "random":
            rng = np.random.default_rng(seed)

            def act(obs, _env):
                return rng.uniform(-1, 1, base.action_space.shape).astype(np.float32)

        elif policy in policies:
            pol = policies[policy]()
            act = pol.act
        else:
            raise ValueError(
                f"policy: unknown scripted policy {policy!r}; available: "
                f"{[*sorted(policies), 'random']}"
            )
    elif hasattr(policy, "act"):
        pol = policy
        act = pol.act
    elif callable(policy):

        def act(obs, _env):
            return policy(obs)

    else:
        raise ValueError(
            f"policy: expected None, a name, a ScriptedPolicy or a callable, got {policy!r}"
        )
    obs, _ = env.reset(seed=seed)
    if hasattr(act, "__self__") and hasattr(act.__self__, "reset"):
        act.__self__.reset(base)
    frames = [base.render_instance(0)]
    for _ in range(max_steps):
        obs, _, term, trunc, _info = env.step(act(obs, base))
        if term[0] or trunc[0]:
            break
        frames.append(base.render_instance(0))
    env.close()
    out = Path(out_path)
    if out.suffix.lower() == ".gif":
        out.parent.mkdir(parents=True, exist_ok=True)
        images = [Image.fromarray(f) for f in frames]
        images[0].save(
            out, save_all=True, append_images=images[1:], duration=int(1000 / fps), loop=0
        )
    else:
        out.mkdir(parents=True, exist_ok=True)
        for k, f in enumerate(frames):
            Image.fromarray(f).save(out / f"frame_{k:04d}.png")
    return out


# ------------------------------------------------------------------------------------------------
# ExoGait-v0

_COST_COLORS = np.array(
    [[220, 50, 50], [230, 140, 30], [200, 60, 200], [60, 120, 220], [120, 80, 40], [30, 160, 90]],
    np.uint8,
)


def _draw_line(img: np.ndarray, p0, p1, color, width: int = 2) -> None:
    h, w, _ = img.shape
    n = int(max(abs(p1[0] - p0[0]), abs(p1[1] - p0[1]))) + 1
    xs = np.linspace(p0[0], p1[0], n).round().astype(int)
    ys = np.linspace(p0[1], p1[1], n).round().astype(int)
    for dx in range(-(width // 2), width - width // 2):
        for dy in range(-(width // 2), width - width // 2):
            x = np.clip(xs + dx, 0, w - 1)
            y = np.clip(ys + dy, 0, h - 1)
            img[y, x] = color


def render_exoskeleton(env: Any, i: int = 0, size: tuple[int, int] = (400, 400)) -> np.ndarray:
    """An ``(H, W, 3)`` uint8 frame of instance ``i``: legs with feet (right dark, left light), belt,
    exo torque bars (hip/knee, R/L; green <= 50 % of max, red above) and one lamp per cost
    component (lit when violated at the last step) of an :class:`ExoGaitVecEnv`."""
    from saferl.envs.exoskeleton.exo import TAU_EXO_MAX

    hgt, wid = size
    img = np.full((hgt, wid, 3), 245, np.uint8)
    sim = env.sim
    scale = 0.75 * hgt / (0.53 * float(sim.H[i]) + 0.35)
    ox, oy = wid // 2, int(0.85 * hgt)

    def px(x: float, y: float) -> tuple[float, float]:
        return ox + x * scale, oy - y * scale

    _draw_line(img, (0, oy), (wid - 1, oy), (90, 90, 90), 3)  # belt
    xk, yk, xa, ya, xp, yp = sim.foot_points()
    hip = px(float(sim.xp[i]), float(sim.yp[i]))
    for leg, col in ((1, (150, 150, 220)), (0, (30, 30, 140))):
        knee = px(float(xk[leg, i]), float(yk[leg, i]))
        ankle = px(float(xa[leg, i]), float(ya[leg, i]))
        heel = px(float(xp[0, leg, i]), float(yp[0, leg, i]))
        ball = px(float(xp[1, leg, i]), float(yp[1, leg, i]))
        _draw_line(img, hip, knee, col, 4)
        _draw_line(img, knee, ankle, col, 4)
        # the foot: ankle, heel and metatarsal heads (the human's own ankle joint)
        _draw_line(img, ankle, heel, col, 3)
        _draw_line(img, ankle, ball, col, 3)
        _draw_line(img, heel, ball, col, 3)
    _draw_line(img, hip, px(float(sim.xp[i]), float(sim.yp[i]) + 0.3), (60, 60, 60), 5)  # trunk
    # torque bars
    taus = [env.exo_h[0, i], env.exo_k[0, i], env.exo_h[1, i], env.exo_k[1, i]]
    for j, tau in enumerate(taus):
        frac = float(np.clip(tau / TAU_EXO_MAX, -1, 1))
        x0 = 20 + j * 25
        col = (40, 170, 40) if abs(frac) <= 0.5 else (210, 40, 40)
        y_mid = 60
        y_end = int(y_mid - 40 * frac)
        lo, hi = sorted((y_mid, y_end))
        img[lo : hi + 1, x0 : x0 + 15] = col
        img[y_mid, x0 - 2 : x0 + 17] = (0, 0, 0)
    # cost lamps
    comps = getattr(env, "_last_components", None)
    for k in range(len(env.constraints)):
        x0 = wid - 20 - (len(env.constraints) - k) * 22
        lit = comps is not None and comps[k, i] > 0
        img[15:33, x0 : x0 + 18] = _COST_COLORS[k] if lit else (210, 210, 210)
    return img
