"""Name -> factory registries for environments, algorithms and tracking backends.

Built-in entries are registered by import string (``"module:attribute"``) so that listing names
imports nothing heavy. Third-party packages add entries through Python entry points in the groups
``saferl.envs``, ``saferl.algorithms`` and ``saferl.trackers``; an entry point's name is the
registered name and its object is the factory::

    [project.entry-points."saferl.envs"]
    "MyEnv-v0" = "my_package.envs:make_vec"

Factory conventions (what each registry's ``get`` returns):

* environments: ``factory(num_envs: int, **env_options) -> VectorEnv``, a natively batched
  env with a ``constraints`` attribute (a :class:`saferl.safety.ConstraintSet`);
* algorithms: ``factory(observation_space, action_space, algo_config, *, cost_limit, seed)``
  returning an algorithm (``act``, ``update``, ``state_dict``); keywords ``device``,
  ``constraint_names`` and ``constraint_limits`` are passed when the factory accepts them;
* trackers: ``factory(run_dir, tracking_config) -> Tracker``.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any

logger = logging.getLogger(__name__)

__all__ = [
    "ALGORITHMS",
    "ENVS",
    "TRACKERS",
    "Registry",
    "RegistryError",
    "UnknownNameError",
]


class RegistryError(ValueError):
    """A registration conflict or a factory that cannot be loaded."""


class UnknownNameError(RegistryError, KeyError):
    """A name that is not registered; the message lists the available names."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


@dataclass
class _Entry:
    target: Callable[..., Any] | str
    source: str  # "builtin", "plugin:<distribution>" or "user"

    def load(self, kind: str, name: str) -> Callable[..., Any]:
        if callable(self.target):
            return self.target
        module_name, _, attr = self.target.partition(":")
        try:
            obj: Any = importlib.import_module(module_name)
            for part in attr.split("."):
                obj = getattr(obj, part)
        except (ImportError, AttributeError) as exc:
            raise RegistryError(
                f"{kind} '{name}' ({self.source}) cannot be loaded from '{self.target}': {exc}"
            ) from exc
        if not callable(obj):
            raise RegistryError(f"{kind} '{name}': '{self.target}' is not callable")
        self.target = obj
        return obj


class Registry:
    """A mapping from names to factories, filled by built-ins, user code and entry points.

    Args:
        kind: human-readable kind used in error messages ("environment", ...).
        group: entry-point group scanned for plugins ("saferl.envs", ...).
    """

    def __init__(self, kind: str, group: str) -> None:
        self.kind = kind
        self.group = group
        self._entries: dict[str, _Entry] = {}
        self._prefixes: dict[str, _Entry] = {}
        self._plugins_loaded = False

    def register(
        self,
        name: str,
        target: Callable[..., Any] | str | None = None,
        *,
        overwrite: bool = False,
        source: str = "user",
    ) -> Any:
        """Register ``target`` (a callable or ``"module:attr"`` string) under ``name``.

        Used as a decorator when ``target`` is omitted. Registering an existing name raises
        :class:`RegistryError` unless ``overwrite=True``.
        """
        if target is None:

            def decorator(fn: Callable[..., Any]) -> Callable[..., Any]:
                self.register(name, fn, overwrite=overwrite, source=source)
                return fn

            return decorator
        if not isinstance(name, str) or not name:
            raise RegistryError(f"{self.kind} name must be a non-empty string, got {name!r}")
        if name in self._entries and not overwrite:
            raise RegistryError(
                f"{self.kind} '{name}' is already registered "
                f"({self._entries[name].source}); pass overwrite=True to replace it"
            )
        self._entries[name] = _Entry(target, source)
        return target

    def register_prefix(
        self, prefix: str, resolver: Callable[..., Any] | str, *, source: str = "user"
    ) -> None:
        """Names ``prefix + rest`` resolve to ``resolver(rest)``, a factory (e.g. ``gym:`` for
        any Gymnasium id). ``resolver`` raises ValueError for a ``rest`` it does not know.
        Registered names take precedence over prefixes."""
        if not prefix or not prefix.endswith(":"):
            raise RegistryError(f"a {self.kind} prefix must end with ':', got {prefix!r}")
        self._prefixes[prefix] = _Entry(resolver, source)

    def prefixes(self) -> list[str]:
        """The registered prefixes (``["gym:", ...]``), sorted."""
        return sorted(self._prefixes)

    def _prefixed(self, name: str) -> tuple[str, _Entry] | None:
        for prefix, entry in self._prefixes.items():
            if name.startswith(prefix) and len(name) > len(prefix):
                return name[len(prefix) :], entry
        return None

    def load_plugins(self) -> list[str]:
        """Scan the entry-point group once; returns the names that plugins added."""
        if self._plugins_loaded:
            return []
        self._plugins_loaded = True
        added = []
        for ep in entry_points(group=self.group):
            dist = getattr(ep, "dist", None)
            source = f"plugin:{dist.name}" if dist is not None else "plugin"
            if ep.name in self._entries:
                logger.warning(
                    "%s plugin '%s' from %s ignored: name already registered (%s)",
                    self.kind,
                    ep.name,
                    source,
                    self._entries[ep.name].source,
                )
                continue
            self._entries[ep.name] = _Entry(ep.value, source)
            added.append(ep.name)
        if added:
            logger.debug("loaded %s plugins: %s", self.kind, ", ".join(added))
        return added

    def names(self) -> list[str]:
        """All registered names (built-ins, user registrations, plugins), sorted."""
        self.load_plugins()
        return sorted(self._entries)

    def source(self, name: str) -> str:
        """Where ``name`` came from: "builtin", "user" or "plugin:<distribution>"."""
        return self._lookup(name).source

    def get(self, name: str) -> Callable[..., Any]:
        """The factory registered under ``name``; :class:`UnknownNameError` lists alternatives."""
        return self._lookup(name).load(self.kind, name)

    def _lookup(self, name: str) -> _Entry:
        self.load_plugins()
        try:
            return self._entries[name]
        except KeyError:
            pass
        hit = self._prefixed(name) if isinstance(name, str) else None
        if hit is not None:
            rest, entry = hit
            resolver = entry.load(self.kind, name)
            try:
                return _Entry(resolver(rest), entry.source)
            except ValueError as exc:
                raise UnknownNameError(f"{self.kind} '{name}': {exc}") from None
        available = ", ".join([*sorted(self._entries), *(f"{p}..." for p in self.prefixes())])
        raise UnknownNameError(
            f"unknown {self.kind} '{name}'; available: {available or 'none'}"
        ) from None

    def __contains__(self, name: object) -> bool:
        self.load_plugins()
        return name in self._entries or (isinstance(name, str) and self._prefixed(name) is not None)

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())


ENVS = Registry("environment", "saferl.envs")
ALGORITHMS = Registry("algorithm", "saferl.algorithms")
TRACKERS = Registry("tracker", "saferl.trackers")


# Built-ins, by import string: listing names imports nothing.
for _name, _target in {
    "WheelchairSC-v0": "saferl.envs.wheelchair:make_vec",
    "ExoGait-v0": "saferl.envs.exoskeleton:make_vec",
    "HopperVelocity-v0": "saferl.envs.adapters.velocity:hopper_velocity",
    "HalfCheetahVelocity-v0": "saferl.envs.adapters.velocity:half_cheetah_velocity",
    "Walker2dVelocity-v0": "saferl.envs.adapters.velocity:walker2d_velocity",
    "SwimmerVelocity-v0": "saferl.envs.adapters.velocity:swimmer_velocity",
    "AntVelocity-v0": "saferl.envs.adapters.velocity:ant_velocity",
    "HumanoidVelocity-v0": "saferl.envs.adapters.velocity:humanoid_velocity",
}.items():
    ENVS.register(_name, _target, source="builtin")
# external envs: any Gymnasium id with a cost in info, and Safety-Gymnasium's 6-tuple API
ENVS.register_prefix("gym:", "saferl.envs.adapters:gym_factory", source="builtin")
ENVS.register_prefix("safety:", "saferl.envs.adapters:safety_factory", source="builtin")
for _name, _target in {
    "cpo": "saferl.algos.cpo:CPO",
    "ppo_lagrangian": "saferl.algos.ppo_lagrangian:PPOLagrangian",
}.items():
    ALGORITHMS.register(_name, _target, source="builtin")
for _name, _target in {
    "local": "saferl.training.tracking:LocalTracker",
    "mlflow": "saferl.training.tracking.mlflow_backend:MLflowTracker",
    "wandb": "saferl.training.tracking.wandb_backend:WandbTracker",
    "tensorboard": "saferl.training.tracking.tensorboard_backend:TensorBoardTracker",
}.items():
    TRACKERS.register(_name, _target, source="builtin")
