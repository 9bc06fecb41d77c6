"""Fixtures for trainer tests: the stand-in env/algorithm registered, small configs."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

import _standins

from saferl.config import Config, load_config

HERE = Path(__file__).parent


def toy_overrides(**extra: object) -> list[str]:
    """``--set`` strings for a tiny, fast run of the stand-ins (64 steps per epoch)."""
    base = {
        "env.id": "Toy-v0",
        "algo.name": "toy",
        "env.num_envs": 4,
        "train.total_steps": 640,
        "train.steps_per_epoch": 64,
        "train.checkpoint_every": 3,
        "train.plot_every": 1000,
        "train.progress": False,
        "algo.critic_minibatch": 32,
        "algo.critic_epochs": 2,
    }
    base.update(extra)
    return [f"{k}={v}" for k, v in base.items()]


def toy_config(runs_dir: Path, name: str = "run", **extra: object) -> Config:
    return load_config(
        None, [*toy_overrides(**extra), f"train.runs_dir={runs_dir}", f"train.name={name}"]
    )


@pytest.fixture(autouse=True)
def _register_standins():
    _standins.register()
    yield
