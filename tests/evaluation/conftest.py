"""Fixtures: the toy env registered as EvalToy-v0 (helpers live in _evalhelpers.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from _evalhelpers import TOY_ID
from _evaltoy import make_vec

from saferl.registry import ENVS


@pytest.fixture(scope="session", autouse=True)
def _register_toy():
    ENVS.register(TOY_ID, make_vec, overwrite=True)
    yield
