"""Registries and entry-point plugin discovery."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from saferl.registry import ALGORITHMS, ENVS, TRACKERS, Registry, RegistryError, UnknownNameError


def _make_plugin_distribution(root: Path, group: str, name: str, module: str) -> Path:
    """Write a real installed-distribution layout (dist-info + module) under ``root``."""
    site = root / "site"
    (site / "saferl_demo_plugin-0.1.dist-info").mkdir(parents=True)
    (site / "saferl_demo_plugin-0.1.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: saferl-demo-plugin\nVersion: 0.1\n"
    )
    (site / "saferl_demo_plugin-0.1.dist-info" / "entry_points.txt").write_text(
        f"[{group}]\n{name} = {module}:make_vec\n"
    )
    (site / f"{module}.py").write_text(
        textwrap.dedent(
            '''
            """A third-party environment package."""
            from saferl.safety import Constraint, ConstraintSet

            def make_vec(num_envs=1, **options):
                """Demo plugin environment."""
                return ("demo-env", num_envs, options)

            make_vec.constraints = ConstraintSet(
                [Constraint("spill", "coffee spilled")], limit=3.0, strict_limit=1.0
            )
            '''
        )
    )
    return site


def test_entry_point_plugin_is_discovered(tmp_path, monkeypatch):
    site = _make_plugin_distribution(tmp_path, "saferl.envs", "DemoPlugin-v0", "demo_plugin_mod")
    monkeypatch.syspath_prepend(str(site))
    registry = Registry("environment", "saferl.envs")
    assert registry.load_plugins() == ["DemoPlugin-v0"]
    assert "DemoPlugin-v0" in registry
    assert registry.source("DemoPlugin-v0") == "plugin:saferl-demo-plugin"
    factory = registry.get("DemoPlugin-v0")
    assert factory(num_envs=4, level="x") == ("demo-env", 4, {"level": "x"})


def test_plugin_listed_by_cli_with_constraints(tmp_path):
    site = _make_plugin_distribution(tmp_path, "saferl.envs", "DemoPlugin-v0", "demo_plugin_mod")
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])
    )
    out = subprocess.run(
        [sys.executable, "-m", "saferl", "envs"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    assert "DemoPlugin-v0 (plugin:saferl-demo-plugin)" in out
    assert "spill" in out and "coffee spilled" in out


def test_plugin_does_not_shadow_builtin(tmp_path, monkeypatch):
    site = _make_plugin_distribution(tmp_path, "saferl.algorithms", "cpo", "demo_plugin_mod")
    monkeypatch.syspath_prepend(str(site))
    registry = Registry("algorithm", "saferl.algorithms")
    registry.register("cpo", "saferl.algos.cpo:CPO", source="builtin")
    assert registry.load_plugins() == []
    assert registry.source("cpo") == "builtin"


def test_unknown_name_lists_available():
    registry = Registry("tracker", "saferl.nonexistent-group")
    registry.register("local", lambda: "local")
    with pytest.raises(UnknownNameError, match=r"unknown tracker 'mlfow'; available: local"):
        registry.get("mlfow")


def test_register_decorator_duplicates_and_lazy_strings():
    registry = Registry("algorithm", "saferl.nonexistent-group")

    @registry.register("mine")
    def factory():
        return 1

    assert registry.get("mine") is factory
    with pytest.raises(RegistryError, match="already registered"):
        registry.register("mine", factory)
    registry.register("mine", lambda: 2, overwrite=True)
    assert registry.get("mine")() == 2
    registry.register("lazy", "json:dumps")
    import json

    assert registry.get("lazy") is json.dumps
    registry.register("broken", "no_such_module_xyz:thing")
    with pytest.raises(RegistryError, match="cannot be loaded from 'no_such_module_xyz:thing'"):
        registry.get("broken")


def test_builtins_are_registered():
    assert {"WheelchairSC-v0", "ExoGait-v0"} <= set(ENVS.names())
    assert {"cpo", "ppo_lagrangian"} <= set(ALGORITHMS.names())
    assert "local" in TRACKERS.names()
