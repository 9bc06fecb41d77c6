"""The example scripts run as written (tiny budgets)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).parents[1] / "examples"


def run(script: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(EXAMPLES / script), *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
    )


def test_train_then_evaluate_and_compare(tmp_path):
    res = run(
        "train_cpo_basic.py",
        "--env-type", "wheelchair", "--max-iterations", "2", "--steps-per-epoch", "512",
        "--num-envs", "8", "--name", "ex", "--set", "train.progress=false",
        cwd=tmp_path,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    run_dir = tmp_path / "runs" / "ex"
    rows = (run_dir / "metrics.csv").read_text().splitlines()
    assert len(rows) == 3  # header + 2 epochs
    res = run(
        "evaluate_and_compare.py", str(run_dir), "--episodes", "4", "--protocols", "standard",
        cwd=tmp_path,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    results = json.loads((run_dir / "eval" / "results.json").read_text())
    assert "standard" in results["protocols"]


def test_train_example_rejects_bad_override(tmp_path):
    res = run("train_cpo_basic.py", "--set", "algo.target_kl=0", cwd=tmp_path)
    assert res.returncode == 2
    assert res.stderr.strip() == "error: algo.target_kl: must be > 0, got 0"


def test_scripted_baselines_example(tmp_path):
    res = run("scripted_baselines.py", "--env", "ExoGait-v0", "--num-envs", "4", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    for name in ("zero_torque", "pd_guidance", "spline_pulse"):
        assert name in res.stdout
