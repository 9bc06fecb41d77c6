"""Fixtures for trainer tests: the stand-in env/algorithm registered, small configs."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

import _standins


@pytest.fixture(autouse=True)
def _register_standins():
    _standins.register()
    yield
