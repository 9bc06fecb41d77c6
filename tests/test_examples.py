"""The example scripts run as written and start from the config of the env they name (tiny
budgets)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

from saferl.config import config_to_dict, load_config
from saferl.training import setup
from saferl.training.evaluation.models import scripted_policies

ROOT = Path(__file__).parents[1]
EXAMPLES = ROOT / "examples"
#: the examples' configs, made tiny
TINY = ["env.num_envs=8", "train.steps_per_epoch=512", "train.progress=false"]


def run(script: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(EXAMPLES / script), *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
    )


def sets(items: list[str]) -> list[str]:
    return [a for item in items for a in ("--set", item)]


def test_train_from_the_packaged_default_then_evaluate_and_compare(tmp_path):
    tiny = [*TINY, "train.best_eval_episodes=0"]
    res = run(
        "train_cpo_basic.py", "--env-type", "wheelchair", "--max-iterations", "2",
        "--name", "ex", *sets(tiny),
        cwd=tmp_path,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    run_dir = tmp_path / "runs" / "ex"
    expected = load_config(None, [*tiny, "train.name=ex", "train.total_steps=1024"])
    assert yaml.safe_load((run_dir / "config.yaml").read_text()) == config_to_dict(expected)
    rows = (run_dir / "metrics.csv").read_text().splitlines()
    assert len(rows) == 3  # header + 2 epochs (--max-iterations)
    res = run(
        "evaluate_and_compare.py", str(run_dir), "--episodes", "4", "--protocols", "standard",
        cwd=tmp_path,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    results = json.loads((run_dir / "eval" / "results.json").read_text())
    assert "standard" in results["protocols"]


def test_exoskeleton_starts_from_its_own_config(tmp_path):
    res = run(
        "train_cpo_basic.py", "--env-type", "exoskeleton", "--max-iterations", "1",
        "--early-stopping", "--name", "exo", *sets(TINY),
        cwd=tmp_path,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    expected = load_config(
        ROOT / "configs" / "exo_cpo.yaml",
        [*TINY, "train.early_stopping.enabled=true", "train.name=exo", "train.total_steps=512"],
    )
    got = yaml.safe_load((tmp_path / "runs" / "exo" / "config.yaml").read_text())
    assert got == config_to_dict(expected)
    assert got["env"]["obs_ema"] is None  # not the wheelchair's averages


def test_train_example_refuses_a_bad_override_in_one_line(tmp_path):
    res = run("train_cpo_basic.py", "--set", "algo.target_kl=0", cwd=tmp_path)
    assert res.returncode == 2
    assert res.stderr.strip() == "error: algo.target_kl: must be > 0, got 0"
    res = run(
        "train_cpo_basic.py", "--max-iterations", "2", "--set", "train.total_steps=5", cwd=tmp_path
    )
    assert res.returncode == 2 and res.stderr.count("\n") == 1
    assert "--max-iterations" in res.stderr and "train.total_steps" in res.stderr
    assert not (tmp_path / "runs").exists()


def test_scripted_baselines_run_in_the_configs_env(tmp_path):
    res = run("scripted_baselines.py", "--env-type", "exoskeleton", "--num-envs", "1", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    # configs/exo_cpo.yaml's assist action mode: the baselines that drive the assist controller
    exo = setup.env_spec(load_config(ROOT / "configs" / "exo_cpo.yaml"))
    exo_defined = set(scripted_policies(exo.factory, exo.options))
    assert {"zero_torque", "aan_impedance"} <= exo_defined
    assert {line.split()[0] for line in res.stdout.splitlines()[1:]} == exo_defined
    # the packaged default's env: only the baselines defined for its options
    spec = setup.env_spec(load_config())
    defined = set(scripted_policies(spec.factory, spec.options))
    res = run("scripted_baselines.py", "--num-envs", "1", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    printed = {line.split()[0] for line in res.stdout.splitlines()[1:]}
    assert printed == defined
