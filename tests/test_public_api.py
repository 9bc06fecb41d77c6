"""The public API in saferl/__init__ (what the CLI, examples and users call)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np


def test_import_saferl_registers_gymnasium_ids_in_a_fresh_process():
    code = (
        "import gymnasium as gym, saferl, numpy as np\n"
        "env = gym.make('saferl/WheelchairSC-v0', impairment='severe', challenge='hard')\n"
        "obs, info = env.reset(seed=0)\n"
        "obs, r, term, trunc, info = env.step(env.action_space.sample())\n"
        "assert np.isfinite(info['cost']) and set(info['cost_components']) == "
        "{'collision', 'near_miss', 'comfort', 'tip_risk', 'social'}\n"
        "print('ok')\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "ok"


def test_make_env_returns_the_native_batched_env():
    import saferl

    env = saferl.make_env("ExoGait-v0", num_envs=3)
    obs, _ = env.reset(seed=1)
    assert obs.shape == (3, 34) and obs.dtype == np.float32
    _, _, _, _, info = env.step(np.zeros((3, 4), np.float32))
    assert info["cost"].shape == (3,)
    env.close()


def test_lazy_names_resolve_to_the_objects_of_their_modules():
    import importlib

    import saferl

    for name, target in saferl._LAZY.items():
        module, _, attr = target.partition(":")
        assert getattr(saferl, name) is getattr(importlib.import_module(module), attr), name
        assert name in saferl.__all__ and name in dir(saferl), name
    assert saferl.CPO.__name__ == "CPO" and saferl.Trainer.__name__ == "Trainer"
    assert set(saferl._LAZY) >= {"Algorithm", "CPO", "PPOLagrangian", "Trainer", "run_compare"}


def test_unknown_public_name_is_an_attribute_error():
    import pytest

    import saferl

    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        saferl.Nope  # noqa: B018
