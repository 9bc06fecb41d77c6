"""The velocity-constrained MuJoCo tasks of the safe-RL literature, on Gymnasium 1.x.

Safety-Gymnasium's ``Safety<Robot>Velocity-v1`` tasks subclass Gymnasium's MuJoCo v4 envs and
add a cost of 1 on every step where the robot is faster than a per-robot threshold; the field
reports them with a limit of 25 per 1000-step episode. saferl rebuilds them on Gymnasium's
MuJoCo envs (``v5`` by default, ``v4`` on request: ``version="v4"``) with the same speed
definition and thresholds, taken from Safety-Gymnasium's source
(``safety_gymnasium/tasks/safe_velocity/safety_<robot>_velocity_v1.py`` and the ``v0`` files
they subclass):

=============== ========= ============================================ ==========
saferl name     robot     speed (m/s), cost 1 when speed > threshold   threshold
=============== ========= ============================================ ==========
HopperVelocity  Hopper    x-velocity of ``qpos[0]`` (signed)           0.7402
HalfCheetah...  HalfCh.   x-velocity of ``qpos[0]`` (signed)           3.2096
Walker2d...     Walker2d  x-velocity of ``qpos[0]`` (signed)           2.3415
SwimmerVelocity Swimmer   x-velocity of ``qpos[0]`` (signed)           0.2282
AntVelocity     Ant       planar speed of the torso, ``|(vx, vy)|``    2.6222
Humanoid...     Humanoid  planar speed of the centre of mass           1.4149
=============== ========= ============================================ ==========

The velocities are Gymnasium's own ``info["x_velocity"]`` / ``info["y_velocity"]`` (position
difference over one control step divided by ``dt``), computed as Safety-Gymnasium computes
them. The differences between Gymnasium's v5 and v4 robots are listed in
``docs/envs/adapters.md``.

MuJoCo is an optional dependency (``pip install 'saferl[mujoco]'``), imported when an env is
built, never when the names are listed.
"""

from __future__ import annotations

import importlib
import math
import warnings
from dataclasses import dataclass
from typing import Any

import gymnasium as gym

from saferl.envs.adapters.gymnasium_vec import GymnasiumVecEnv
from saferl.safety import Constraint, ConstraintSet

__all__ = [
    "COST_LIMIT",
    "EPISODE_LENGTH",
    "VELOCITY_TASKS",
    "VelocityCost",
    "VelocityTask",
    "make_single",
]

#: per-episode cost limit the field uses for these tasks (Safety-Gymnasium's benchmarks)
COST_LIMIT = 25.0
#: episode length (Gymnasium's MuJoCo time limit)
EPISODE_LENGTH = 1000
#: the Gymnasium MuJoCo versions the tasks can be built on
VERSIONS = ("v5", "v4")
_SOURCE = "Safety-Gymnasium safe_velocity (Safety{robot}Velocity-v1)"


class VelocityCost(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Adds Safety-Gymnasium's velocity cost to a Gymnasium MuJoCo locomotion env.

    ``info["speed"]`` is the x-velocity (signed) or, with ``planar``, the norm of the (x, y)
    velocity; ``info["cost"] = 1.0`` when it exceeds ``threshold``, else ``0.0``;
    ``info["cost_components"] = {"velocity": cost}``.

    Args:
        env: a Gymnasium MuJoCo env whose ``info`` has ``x_velocity`` (and ``y_velocity``).
        threshold: speed threshold in m/s.
        planar: use the planar speed instead of the x-velocity.
    """

    def __init__(self, env: gym.Env, threshold: float, planar: bool = False) -> None:
        gym.utils.RecordConstructorArgs.__init__(self, threshold=threshold, planar=planar)
        super().__init__(env)
        self.threshold = float(threshold)
        self.planar = bool(planar)

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        vx = float(info["x_velocity"])
        speed = math.hypot(vx, float(info["y_velocity"])) if self.planar else vx
        cost = float(speed > self.threshold)
        info = dict(info)
        info["speed"] = speed
        info["cost"] = cost
        info["cost_components"] = {"velocity": cost}
        return obs, reward, terminated, truncated, info


def _require_mujoco(name: str) -> None:
    try:
        importlib.import_module("mujoco")
    except ImportError:
        raise ImportError(
            f"{name} needs MuJoCo, which is not installed: pip install 'saferl[mujoco]'"
        ) from None


@dataclass(frozen=True)
class _Task:
    robot: str
    threshold: float
    planar: bool


def _check_version(version: str) -> str:
    if version not in VERSIONS:
        raise ValueError(f"version: unknown value {version!r}; expected one of {list(VERSIONS)}")
    return version


def _make_robot(task: _Task, version: str, kwargs: dict[str, Any]) -> gym.Env:
    with warnings.catch_warnings():
        # Gymnasium marks v4 out of date; asking for it here is deliberate
        warnings.filterwarnings("ignore", message=".*is out of date.*")
        env = gym.make(f"{task.robot}-{version}", **kwargs)
    return VelocityCost(env, task.threshold, task.planar)


class VelocityTask:
    """saferl factory of one velocity task: ``task(num_envs, version="v5", ...)``.

    ``constraints`` is readable without building an env (``saferl envs`` lists it without
    MuJoCo installed).
    """

    def __init__(self, name: str, robot: str, threshold: float, planar: bool) -> None:
        self.name = name
        self.task = _Task(robot, float(threshold), bool(planar))
        speed = "planar speed |(vx, vy)|" if planar else "x-velocity"
        self.constraints = ConstraintSet(
            [
                Constraint(
                    "velocity",
                    f"the {robot}'s {speed} stays at or below {threshold} m/s",
                    threshold=f"{'|v_xy|' if planar else 'v_x'} > {threshold} m/s",
                    source=_SOURCE.format(robot=robot),
                )
            ],
            limit=COST_LIMIT,
            episode_length=EPISODE_LENGTH,
        )
        self.__name__ = self.__qualname__ = name.replace("-", "_")
        self.__doc__ = (
            f"{name}: Gymnasium's {robot} (MuJoCo) with cost 1 per step where its {speed} "
            f"exceeds {threshold} m/s; limit {COST_LIMIT:g} per {EPISODE_LENGTH}-step episode."
        )

    def __call__(
        self,
        num_envs: int = 1,
        *,
        version: str = "v5",
        vectorization: str = "sync",
        instance_offset: int = 0,
        **kwargs: Any,
    ) -> GymnasiumVecEnv:
        """``num_envs`` instances; ``version`` picks Gymnasium's MuJoCo ``v5`` or ``v4`` robot;
        ``vectorization`` ``"sync"`` or ``"async"``; ``kwargs`` go to ``gymnasium.make`` (e.g.
        ``ctrl_cost_weight``)."""
        _check_version(version)
        _require_mujoco(self.name)
        if isinstance(num_envs, bool) or not isinstance(num_envs, int) or num_envs < 1:
            raise ValueError(f"num_envs must be a positive int, got {num_envs!r}")
        task = self.task

        def env_fn() -> gym.Env:
            return _make_robot(task, version, kwargs)

        env = GymnasiumVecEnv(
            [env_fn] * num_envs,
            name=self.name if version == "v5" else f"{self.name}[{version}]",
            cost_key="cost",
            constraints=self.constraints,
            vectorization=vectorization,
            instance_offset=instance_offset,
            component="velocity",
        )
        return env

    def single(self, version: str = "v5", **kwargs: Any) -> gym.Env:
        """One plain Gymnasium env of this task (``gymnasium.make("saferl/<name>")``)."""
        _check_version(version)
        _require_mujoco(self.name)
        env = _make_robot(self.task, version, kwargs)
        env.constraints = self.constraints  # type: ignore[attr-defined]
        return env


#: saferl name -> factory
VELOCITY_TASKS: dict[str, VelocityTask] = {
    name: VelocityTask(name, robot, threshold, planar)
    for name, robot, threshold, planar in (
        ("HopperVelocity-v0", "Hopper", 0.7402, False),
        ("HalfCheetahVelocity-v0", "HalfCheetah", 3.2096, False),
        ("Walker2dVelocity-v0", "Walker2d", 2.3415, False),
        ("SwimmerVelocity-v0", "Swimmer", 0.2282, False),
        ("AntVelocity-v0", "Ant", 2.6222, True),
        ("HumanoidVelocity-v0", "Humanoid", 1.4149, True),
    )
}

# module attributes for the registries' "module:attribute" entry points
hopper_velocity = VELOCITY_TASKS["HopperVelocity-v0"]
half_cheetah_velocity = VELOCITY_TASKS["HalfCheetahVelocity-v0"]
walker2d_velocity = VELOCITY_TASKS["Walker2dVelocity-v0"]
swimmer_velocity = VELOCITY_TASKS["SwimmerVelocity-v0"]
ant_velocity = VELOCITY_TASKS["AntVelocity-v0"]
humanoid_velocity = VELOCITY_TASKS["HumanoidVelocity-v0"]


def make_single(name: str, **kwargs: Any) -> gym.Env:
    """One Gymnasium env of the velocity task ``name`` (e.g. ``"HopperVelocity-v0"``)."""
    return VELOCITY_TASKS[name].single(**kwargs)
