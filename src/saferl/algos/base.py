"""The contract between an algorithm and everything that drives it.

The trainer, the parameter schedules, the recovery from a non-finite update and hyperparameter
search talk to an algorithm only through :class:`Algorithm`; nothing outside an algorithm looks
into its attributes or changes its ``config``. CPO and PPO-Lagrangian implement it through
:class:`saferl.algos.common.ActorCritic`; a plugin registers any class that implements it (and,
for its own config fields, a ``config_model``: see :func:`saferl.config.register_algo_config`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

import torch

__all__ = ["ALGORITHM_MEMBERS", "Algorithm", "HyperparameterError"]

#: the members :class:`Algorithm` requires (named in the error for a class that lacks some)
ALGORITHM_MEMBERS = (
    "cost_limit",
    "act",
    "update",
    "state_dict",
    "load_state_dict",
    "optimizers",
    "hyperparameters",
    "set_hyperparameter",
    "shrink_step",
)


class HyperparameterError(KeyError):
    """A name that is not one of the algorithm's settable hyperparameters."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


@runtime_checkable
class Algorithm(Protocol):
    """What the trainer needs from a learning algorithm.

    Observations and actions are batched: ``obs`` is ``(N, obs_dim)`` float32 (numpy or torch),
    one row per env instance.
    """

    #: per-episode cost limit d the constraint is optimised against (a schedule may move it
    #: through :meth:`set_hyperparameter`)
    cost_limit: float

    def act(self, obs: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Sample actions for a batch: ``(action (N, A) raw sample, log_prob (N,), value_r (N,),
        value_c (N, K))``. The env receives the action clipped to its box."""
        ...

    def update(self, batch: Any) -> dict[str, Any]:
        """One update on a rollout batch; returns its diagnostics (scalars by name)."""
        ...

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly (plain tensors and containers)."""
        ...

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict`."""
        ...

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """The algorithm's optimisers by name (``critic``, ``actor``): learning-rate schedules
        target ``<name>_lr``, and the finiteness check reads their gradients."""
        ...

    def hyperparameters(self) -> dict[str, float]:
        """The numeric hyperparameters that may change during a run (schedules, recovery), by
        name, with their current values. Saved in checkpoints and restored on resume."""
        ...

    def set_hyperparameter(self, name: str, value: float) -> None:
        """Set one of :meth:`hyperparameters`.

        Raises:
            HyperparameterError: ``name`` is not one of them.
            ValueError: the value is out of the field's range.
        """
        ...

    def shrink_step(self, factor: float) -> list[str]:
        """Make the next update more cautious after a non-finite one was rolled back (e.g. a
        smaller trust region, lower learning rates); returns what was changed, for the log."""
        ...
