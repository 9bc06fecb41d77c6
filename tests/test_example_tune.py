"""examples/hyperparameter_optimization.py runs as written (a tiny budget)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).parents[1] / "examples" / "hyperparameter_optimization.py"


def test_tuning_example_runs_a_tiny_exoskeleton_study_with_plots(tmp_path):
    (tmp_path / "space.yaml").write_text(
        "algo.target_kl: {type: float, low: 0.005, high: 0.05, log: true}\n"
        "algo.activation: {type: categorical, choices: [tanh, relu]}\n"
    )
    res = subprocess.run(
        [
            sys.executable, str(EXAMPLE), "--env-type", "exoskeleton", "--n-trials", "2",
            "--optimize-metric", "multi", "--generate-plots", "--trial-steps", "1024",
            "--set", "env.num_envs=8", "--set", "train.steps_per_epoch=512",
            "--set", "hyperopt.eval_episodes=2", "--set", "eval.num_envs=2",
            "--set", "hyperopt.compute=env_steps", "--space", str(tmp_path / "space.yaml"),
        ],
        capture_output=True, text=True, timeout=600, cwd=tmp_path,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-2000:]
    out = tmp_path / "runs" / "studies" / "exoskeleton_multi"
    rows = (out / "trials.csv").read_text().splitlines()
    assert len(rows) == 3 and all(",COMPLETE," in r for r in rows[1:])
    for name in ("summary.md", "pareto_front.html", "pareto_front.png", "pareto_front_3d.html"):
        assert (out / name).is_file(), name


def test_tuning_example_rejects_bad_override(tmp_path):
    res = subprocess.run(
        [sys.executable, str(EXAMPLE), "--set", "hyperopt.trial_steps=0"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )  # fmt: skip
    assert res.returncode == 2
    assert res.stderr.strip() == "error: hyperopt.trial_steps: must be >= 1, got 0"
