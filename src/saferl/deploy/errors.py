"""The deploy package's user error."""

from __future__ import annotations

__all__ = ["DeployError", "require"]


class DeployError(ValueError):
    """A user error (bad argument, unreadable or mismatched artefact): one line, ready to print."""


def require(module: str, extra: str = "deploy") -> object:
    """Import an optional dependency, or raise :class:`DeployError` naming the extra to install.

    Args:
        module: the module to import (e.g. ``"onnxruntime"``).
        extra: the ``saferl[...]`` extra that provides it.
    """
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise DeployError(
            f"{module} is not installed; install the extra: pip install 'saferl[{extra}]'"
        ) from None
