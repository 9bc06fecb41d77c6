"""Errors of the evaluation package."""

from __future__ import annotations

__all__ = ["EvaluationError"]


class EvaluationError(ValueError):
    """A user error in evaluation or comparison: the message is one line, ready to print."""
