"""saferl: safe reinforcement learning for human-robot shared control.

The public API used by the CLI, the examples and users' scripts. Heavy pieces (torch, the
environments' map libraries, the trainer) load on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

import saferl.envs  # noqa: F401  (registers the saferl/ ids with Gymnasium; simulators load lazily)
from saferl.config import Config, ConfigError, dump_config, load_config
from saferl.registry import ALGORITHMS, ENVS, TRACKERS, Registry, RegistryError

__version__ = "0.1.0"

# Attributes resolved on first access: name -> "module:attribute".
_LAZY = {
    "Constraint": "saferl.safety:Constraint",
    "ConstraintSet": "saferl.safety:ConstraintSet",
    "check_safe_env": "saferl.envs:check_safe_env",
    "ObservationEMA": "saferl.envs.wrappers:ObservationEMA",
    "Algorithm": "saferl.algos.base:Algorithm",
    "CPO": "saferl.algos.cpo:CPO",
    "PPOLagrangian": "saferl.algos.ppo_lagrangian:PPOLagrangian",
    "Trainer": "saferl.training.trainer:Trainer",
    "run_train": "saferl.training.trainer:run_train",
    "launch_distributed": "saferl.training.distributed:launch",
    "load_model": "saferl.training.evaluation:load_model",
    "evaluate_model": "saferl.training.evaluation:evaluate_model",
    "run_evaluate": "saferl.training.evaluation:run_evaluate",
    "run_compare": "saferl.training.evaluation:run_compare",
    "export_run": "saferl.deploy:export_run",
    "load_policy": "saferl.deploy:load_policy",
    "run_tune": "saferl.training.hyperopt:run_tune",
}

__all__ = [
    "ALGORITHMS",
    "ENVS",
    "TRACKERS",
    "Config",
    "ConfigError",
    "Registry",
    "RegistryError",
    "__version__",
    "dump_config",
    "load_config",
    "make_env",
    *_LAZY,
]


def make_env(env_id: str, num_envs: int = 1, **options: Any) -> Any:
    """A natively batched environment from saferl's registry (built-ins and plugins).

    Args:
        env_id: registered name, e.g. ``"WheelchairSC-v0"`` (see ``saferl envs``).
        num_envs: instances stepped together.
        **options: environment options (``impairment=``, ``challenge=``, ...).
    """
    return ENVS.get(env_id)(num_envs=num_envs, **options)


def __getattr__(name: str) -> Any:
    target = _LAZY.get(name)
    if target is None:
        raise AttributeError(f"module 'saferl' has no attribute {name!r}")
    module, _, attr = target.partition(":")
    value = getattr(importlib.import_module(module), attr)
    globals()[name] = value
    return value
